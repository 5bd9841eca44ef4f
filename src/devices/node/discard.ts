/**
 * Advice to the host kernel about guest RAM on Linux, through madvise(2) on the range of
 * the VM's shared `WebAssembly.Memory` (a private anonymous mapping), called through
 * `koffi`:
 * - giving it back: `MADV_DONTNEED` frees the pages at once (the VM process's RSS drops)
 *   and a later touch maps a fresh zero page;
 * - backing it with transparent huge pages: `MADV_HUGEPAGE`, as QEMU does for its guest RAM.
 */
import { createRequire } from 'node:module';
import type { RamDiscarder } from '../guest-memory.js';

/** madvise(2) advice: MADV_DONTNEED (the same value on every Linux architecture). */
const MADV_DONTNEED = 4;
/** madvise(2) advice: MADV_HUGEPAGE (the same value on every Linux architecture). */
const MADV_HUGEPAGE = 14;
/** Host page size assumed for alignment; a larger real page size only makes madvise fail, and the range is zero-filled instead. */
const HOST_PAGE = 4096;

type Madvise = (addr: Uint8Array, len: number, advice: number) => number;
let madviseFn: Madvise | null | undefined;

/** libc's madvise through koffi, loaded on first use; null where it cannot be loaded. */
function madvise(): Madvise | null {
  if (madviseFn === undefined) {
    try {
      const koffi = createRequire(import.meta.url)('koffi') as {
        load(name: string): { func(decl: string): (...a: unknown[]) => unknown };
      };
      const f = koffi.load('libc.so.6').func('int madvise(void *addr, size_t len, int advice)');
      madviseFn = (addr, len, advice) => f(addr, len, advice) as number;
    } catch {
      madviseFn = null;
    }
  }
  return madviseFn;
}

/** The byte offsets in its buffer of the first and past the last whole host page inside `view` (first >= last when none). */
function wholePages(view: Uint8Array): [number, number] {
  return [Math.ceil(view.byteOffset / HOST_PAGE) * HOST_PAGE, Math.floor((view.byteOffset + view.byteLength) / HOST_PAGE) * HOST_PAGE];
}

/**
 * A {@link RamDiscarder} for a view into a `WebAssembly.Memory` (whose buffer starts on
 * a host page boundary): the whole host pages inside the view are madvised away, the
 * partial pages at its ends are zero-filled. Where madvise is unavailable or fails, the
 * whole view is zero-filled (same contents, no memory returned).
 */
export const madviseDiscarder: RamDiscarder = (view: Uint8Array): void => {
  const f = madvise();
  const start = view.byteOffset;
  const end = start + view.byteLength;
  const [first, last] = wholePages(view);
  if (!f || last <= first) {
    view.fill(0);
    return;
  }
  const buf = view.buffer;
  new Uint8Array(buf, start, first - start).fill(0);
  new Uint8Array(buf, last, end - last).fill(0);
  if (f(new Uint8Array(buf, first, last - first), last - first, MADV_DONTNEED) !== 0) {
    new Uint8Array(buf, first, last - first).fill(0);
  }
};

/**
 * Ask the host kernel to back guest RAM `view` (inside a `WebAssembly.Memory`) with
 * transparent huge pages (madvise(2) `MADV_HUGEPAGE`, as QEMU does for guest RAM): where
 * /sys/kernel/mm/transparent_hugepage/enabled is `madvise`, a first touch of guest RAM
 * then maps 2 MiB at once instead of 4 KiB. Loading a 31 MiB kernel into guest RAM took
 * 9 ms instead of 65-120 ms, and a boot to `true` a median 3.14 s against 3.30 s with 7%
 * less CPU, for about 15 MiB more resident memory (6%) at the end of that boot. Memory
 * the balloon gives back (madviseDiscarder) is still freed: the kernel splits a huge page
 * partly discarded. Does nothing where madvise is unavailable or refuses (no THP).
 */
export function adviseHugePages(view: Uint8Array): void {
  const f = madvise();
  const [first, last] = wholePages(view);
  if (f && last > first) f(new Uint8Array(view.buffer, first, last - first), last - first, MADV_HUGEPAGE);
}
