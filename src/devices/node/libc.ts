/**
 * The C library, through `koffi` (FFI), for the few system calls Node does not offer
 * (tap devices' ioctl, socket buffer sizes). Loaded on first use: a VM that needs none of
 * them never loads koffi.
 */
import { createRequire } from 'node:module';

interface Koffi {
  load(name: string): { func(decl: string): (...a: unknown[]) => unknown };
  errno(): number;
}

let lib: { func(decl: string): (...a: unknown[]) => unknown } | null = null;
let koffi: Koffi | null = null;

/**
 * A libc function, from its C declaration in koffi's syntax (e.g.
 * `int close(int fd)`); call it with numbers and typed arrays, it returns what C returns.
 * @throws Error when koffi or libc.so.6 cannot be loaded, or the declaration is wrong.
 */
export function libcFunction(decl: string): (...args: unknown[]) => unknown {
  if (!lib) {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
    lib = koffi.load('libc.so.6');
  }
  return lib.func(decl);
}

/** errno after the last libc call made through {@link libcFunction} (0 before any). */
export function libcErrno(): number {
  return koffi ? koffi.errno() : 0;
}
