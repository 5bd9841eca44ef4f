/**
 * The kernel command line and initrd a VM boots with, shared by `tsvisor run` (src/cli)
 * and the VM process (main.ts). The `tsvisor.*` parameters and the `/tsvisor/cmd`
 * archive are read by the default image's /init (contract in src/images/initramfs.ts).
 */
import { cpioNewc, cpioDir, cpioFile } from '../images/cpio.js';

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
 * reboot on panic, Sv39 page tables, no crypto self-tests (slow in an interpreter),
 * quiet unless `verbose`, then the `tsvisor.*` parameters and `append`.
 */
export function kernelBootargs(opts: BootargsOptions = {}): string {
  const quiet = opts.verbose ? '' : ' quiet loglevel=1';
  const hostname = opts.hostname ?? 'tsvisor';
  return `console=ttyS0 panic=-1 no4lvl cryptomgr.notests${quiet} tsvisor.hostname=${hostname}${opts.verbose ? ' tsvisor.verbose' : ''}${opts.maxcpus ? ` maxcpus=${opts.maxcpus}` : ''}${opts.append ? ' ' + opts.append : ''}`;
}

/** Quote `args` for a POSIX shell. */
export function shellQuote(args: readonly string[]): string {
  return args.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * `initrd` followed by a second newc archive holding `tsvisor/cmd` (the shell-quoted
 * `command`), which the default image's /init runs (the kernel unpacks concatenated
 * archives in order; the second starts 4-byte aligned).
 */
export function initrdWithCommand(initrd: Uint8Array | undefined, command: readonly string[]): Uint8Array {
  const extra = cpioNewc([cpioDir('tsvisor'), cpioFile('tsvisor/cmd', shellQuote(command) + '\n')]);
  const base = initrd ?? new Uint8Array(0);
  const pad = (4 - (base.length % 4)) % 4;
  const joined = new Uint8Array(base.length + pad + extra.length);
  joined.set(base, 0);
  joined.set(extra, base.length + pad);
  return joined;
}
