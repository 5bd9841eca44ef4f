/**
 * The kernel command line and initrd a VM boots with, shared by `tsvisor run` (src/cli)
 * and the VM process (main.ts). The `tsvisor.*` parameters and the `/tsvisor/cmd`
 * archive are read by the default image's /init (contract in src/images/initramfs.ts).
 */
import { cpioNewc, cpioDir, cpioFile } from '../images/cpio.js';
import { memoryBlob, toBootBlob, type BootBlob } from '../machine/boot.js';
import { concatBlobs } from './boot-files.js';

/**
 * Skips the kernel's CPU-jitter entropy source (crypto/jitterentropy-kcapi.c), which at
 * boot times SHA3 over memory accesses some 1100 times to prove that the CPU's timing is
 * noisy: in a VM that is an emulated CPU's timing, and the guest seeds its random numbers
 * without it (only FIPS mode requires it). It took 0.44 s of a boot under tsvisor and
 * 0.20 s under QEMU (initcall_debug); a boot to a command, median of four, 3.11 -> 2.88 s
 * (QEMU's: 2.47 -> 2.36 s).
 */
export const JITTER_RNG_OFF = 'initcall_blacklist=jent_mod_init';

/** Options of {@link kernelBootargs}. */
export interface BootargsOptions {
  /** Keep the kernel's messages and tell /init to be verbose. */
  verbose?: boolean;
  /** Extra arguments, appended last. */
  append?: string;
  /** The guest's host name (`tsvisor.hostname=`, default `tsvisor`). */
  hostname?: string;
  /** CPUs the guest brings up at boot (`maxcpus=`), when the board has more harts; the rest stay offline until onlined. */
  maxcpus?: number;
}

/**
 * The kernel command line of a VM: serial console on ttyS0 (the board's NS16550A),
 * reboot on panic, Sv39 page tables, no crypto self-tests (slow in an interpreter), no
 * jitter entropy source (JITTER_RNG_OFF), quiet unless `verbose`, then the `tsvisor.*`
 * parameters and `append`.
 */
export function kernelBootargs(opts: BootargsOptions = {}): string {
  const quiet = opts.verbose ? '' : ' quiet loglevel=1';
  const hostname = opts.hostname ?? 'tsvisor';
  return `console=ttyS0 panic=-1 no4lvl cryptomgr.notests ${JITTER_RNG_OFF}${quiet} tsvisor.hostname=${hostname}${opts.verbose ? ' tsvisor.verbose' : ''}${opts.maxcpus ? ` maxcpus=${opts.maxcpus}` : ''}${opts.append ? ' ' + opts.append : ''}`;
}

/** Quote `args` for a POSIX shell. */
export function shellQuote(args: readonly string[]): string {
  return args.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * The newc archive holding `tsvisor/cmd` (the shell-quoted `command`), which the default
 * image's /init runs when it follows the image's initrd (the kernel unpacks concatenated
 * archives in order; each starts 4-byte aligned).
 */
export function commandArchive(command: readonly string[]): Uint8Array {
  return cpioNewc([cpioDir('tsvisor'), cpioFile('tsvisor/cmd', shellQuote(command) + '\n')]);
}

/** `initrd` followed by the commandArchive of `command`, 4-byte aligned, in one buffer. */
export function initrdWithCommand(initrd: Uint8Array | undefined, command: readonly string[]): Uint8Array {
  const blob = initrdBlobWithCommand(initrd, command);
  const joined = new Uint8Array(blob.length);
  blob.copyTo(joined);
  return joined;
}

/**
 * `initrd` (a file's bytes, read when the board loads it) followed by the commandArchive of
 * `command`, 4-byte aligned, without copying `initrd` here.
 */
export function initrdBlobWithCommand(initrd: Uint8Array | BootBlob | undefined, command: readonly string[]): BootBlob {
  const archive = memoryBlob(commandArchive(command));
  return initrd === undefined ? archive : concatBlobs([toBootBlob(initrd), archive], 4);
}
