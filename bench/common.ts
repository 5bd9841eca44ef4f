/**
 * Shared pieces of the benchmarks: booting the default image under tsvisor (the CLI, as a
 * user runs it) and under `qemu-system-riscv64` (TCG, OpenSBI) with the same kernel,
 * initramfs, command archive, kernel command line, RAM and vCPU count, and reading the
 * in-guest timings both print.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDefaultImage, type DefaultImage } from '../src/images/index.js';
import { initrdWithCommand, kernelBootargs } from '../src/cli/run.js';
import { ExitMarkerFilter } from '../src/vmm/console.js';
import { VM_NODE_FLAGS } from '../src/vmm/node-flags.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/*.js
export const TSVISOR_BIN = join(REPO_ROOT, 'bin', 'tsvisor.js');
/**
 * Node's arguments that start `tsvisor` as the installed command does: the flags of its
 * first line (a VM process's, src/vmm/node-flags.ts), then the script. Started without
 * them, `run` would restart itself with them, and each boot would pay a second Node start.
 */
export const TSVISOR_CMD: readonly string[] = [...VM_NODE_FLAGS, TSVISOR_BIN];
export const QEMU = process.env.BENCH_QEMU ?? 'qemu-system-riscv64';
/** QEMU's `rv64` minus the extensions tsvisor's hart lacks (H, Zb*, Sstc), so both guests run the same code paths. */
const QEMU_CPU = 'rv64,h=false,zba=false,zbb=false,zbc=false,zbs=false,sstc=false';
const TIMEOUT_MS = 10 * 60_000;

/** Progress on stderr (the report goes to stdout). */
export const log = (s: string): void => { process.stderr.write(`bench: ${s}\n`); };
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Quote one word for a POSIX shell. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Deterministic test data (4 KiB blocks of random bytes or text), as the e2e tests make it. */
export { pseudoRandomBytes } from '../test/e2e/helpers.js';

/** A guest run as seen from the host. */
export interface Outcome {
  /** Seconds from spawn to the first "READY" on the console (null if never seen). */
  ready: number | null;
  /** Seconds from spawn to exit. */
  total: number;
  exitCode: number | null;
  /** Guest console output (exit marker removed). */
  out: string;
  stderr: string;
}

/** Hooks into a running guest process. */
export interface RunHooks {
  /** Called once when "READY" appears, with the host pid of the VM process. */
  onReady?(pid: number): void;
}

/** Spawn `cmd args`, watch its (guest console) stdout for READY and the exit marker. */
export function runGuest(cmd: string, args: string[], opts: { env?: Record<string, string>; filterMarker: boolean; hooks?: RunHooks }): Promise<Outcome> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const filter = opts.filterMarker ? new ExitMarkerFilter() : null;
    let out = '';
    let stderr = '';
    let ready: number | null = null;
    let reaper = false;
    const dec = new TextDecoder();
    child.stdout.on('data', (b: Buffer) => {
      out += dec.decode(filter ? filter.push(b) : b, { stream: true });
      if (ready === null && out.includes('READY')) {
        ready = (performance.now() - t0) / 1000;
        if (child.pid) opts.hooks?.onReady?.(child.pid);
      }
      // QEMU powers off by itself after the marker; give it a moment, then make sure
      if (filter?.exitCode != null && !reaper) {
        reaper = true;
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }
    });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        ready, total: (performance.now() - t0) / 1000, out, stderr,
        exitCode: filter ? filter.exitCode : code,
      });
    });
  });
}

/**
 * `@@ key start end status` lines (start/end from /proc/uptime) -> key -> seconds.
 * @throws Error when a workload's status is not 0.
 */
export function parseTimes(out: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of out.split('\n')) {
    const f = /@@ (\S+) ([\d.]+) ([\d.]+) (\d+)/.exec(line);
    if (!f) continue;
    if (f[4] !== '0') throw new Error(`guest workload ${f[1]} failed with status ${f[4]}`);
    m.set(f[1], Number(f[3]) - Number(f[2]));
  }
  return m;
}

/** Shell function `w KEY CMD`: runs CMD and prints `@@ KEY start end status` (times from /proc/uptime). */
export const TIMED_SHELL_FN = 'w() { n=$1; shift; read a x < /proc/uptime; eval "$*"; s=$?; read b x < /proc/uptime; echo "@@ $n $a $b $s"; }';

/** @throws Error when the guest run did not end with status 0. */
export function check(what: string, o: Outcome): void {
  if (o.exitCode !== 0) {
    throw new Error(`${what} failed (exit ${o.exitCode}) after ${o.total.toFixed(1)} s\n${o.out.slice(-2000)}\n${o.stderr.slice(-2000)}`);
  }
}

/** The median of `xs` (the mean of the middle two when their count is even; NaN when empty). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** A guest to boot: vCPUs, RAM (`512M`), read-only disks, the command /init runs. */
export interface GuestSpec {
  cpus: number;
  memory: string;
  disks?: string[];
  command: string[];
  hooks?: RunHooks;
  /** Host CPUs to pin the whole VM process to (`taskset -c LIST`), e.g. `0`; default: free. */
  pin?: string;
  /** tsvisor's `--engine` (default: tsvisor's default, jit). */
  engine?: 'jit' | 'interp';
}

/** `[cmd, args]` prefixed with `taskset -c pin` when `pin` is given. */
function pinned(pin: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return pin === undefined ? [cmd, args] : ['taskset', ['-c', pin, cmd, ...args]];
}

/** Launches the same guest under tsvisor and under QEMU. */
export class Guests {
  readonly img: DefaultImage;
  readonly bootargs = kernelBootargs();
  readonly qemuVersion: string;
  readonly haveQemu: boolean;
  qemuCpu = QEMU_CPU;
  private readonly baseInitrd: Buffer;

  private constructor(img: DefaultImage, private readonly work: string) {
    this.img = img;
    this.baseInitrd = readFileSync(img.initrd);
    const qv = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
    this.haveQemu = !qv.error && qv.status === 0;
    this.qemuVersion = this.haveQemu ? qv.stdout.split('\n')[0] : `${QEMU} not found (apt-get install qemu-system-misc opensbi)`;
  }

  /** @param work a scratch folder for QEMU's initramfs copies. */
  static async open(work: string): Promise<Guests> {
    return new Guests(await ensureDefaultImage({ quiet: true }), work);
  }

  /**
   * `tsvisor run` as a user runs it (TSVISOR_STATS=1: the instruction count on stderr), with
   * the devices QEMU gets: no network card (`--network none`), as QEMU is given no -netdev,
   * else our guest alone would load virtio-net and wait for DHCP before the command.
   */
  tsvisor(g: GuestSpec): Promise<Outcome> {
    return runGuest(...pinned(g.pin, process.execPath, [
      ...TSVISOR_CMD, 'run', '--memory', g.memory, '--cpus', String(g.cpus), '--network', 'none', ...(g.engine ? ['--engine', g.engine] : []),
      ...(g.disks ?? []).flatMap((d) => ['--disk', `${d},readonly`]), '--', ...g.command,
    ]), { env: { TSVISOR_STATS: '1' }, filterMarker: false, hooks: g.hooks });
  }

  /** QEMU TCG on the same kernel, initramfs + the same command archive, same command line. */
  async qemu(g: GuestSpec): Promise<Outcome> {
    const initrd = join(this.work, `qemu-initrd-${Math.random().toString(36).slice(2)}`);
    writeFileSync(initrd, initrdWithCommand(this.baseInitrd, g.command));
    const args = (cpu: string) => [
      '-machine', 'virt', '-cpu', cpu, '-nographic', '-m', g.memory, '-smp', String(g.cpus), '-bios', 'default', '-no-reboot',
      '-kernel', this.img.kernel, '-initrd', initrd, '-append', this.bootargs,
      ...(g.disks ?? []).flatMap((d, i) => ['-drive', `file=${d},format=raw,if=none,id=vd${i},readonly=on`, '-device', `virtio-blk-device,drive=vd${i}`]),
    ];
    try {
      let o = await runGuest(...pinned(g.pin, QEMU, args(this.qemuCpu)), { filterMarker: true, hooks: g.hooks });
      if (o.exitCode === null && /property|not found|unsupported/i.test(o.stderr) && this.qemuCpu !== 'rv64') {
        log(`QEMU rejected -cpu ${this.qemuCpu} (${o.stderr.trim().split('\n')[0]}); using -cpu rv64`);
        this.qemuCpu = 'rv64';
        o = await runGuest(...pinned(g.pin, QEMU, args(this.qemuCpu)), { filterMarker: true, hooks: g.hooks });
      }
      return o;
    } finally {
      rmSync(initrd, { force: true });
    }
  }

  /** One line naming both sides. */
  header(what: string): string[] {
    return [
      `tsvisor vs ${this.qemuVersion}`,
      `guest: Linux ${this.img.kernelVersion}, default initramfs, ${what}; QEMU: -machine virt -cpu ${this.qemuCpu} -bios default (OpenSBI), TCG`,
      `kernel command line (both): ${this.bootargs}`,
    ];
  }
}

/** Geometric mean of the positive numbers in `xs` (undefined when there are none). */
export function geomean(xs: Array<number | undefined>): number | undefined {
  const ok = xs.filter((x): x is number => x !== undefined && x > 0);
  return ok.length ? Math.exp(ok.reduce((a, x) => a + Math.log(x), 0) / ok.length) : undefined;
}

/** A table: label, tsvisor figure, QEMU figure, and their ratio. */
export function table(rows: Array<[string, number | undefined, number | undefined]>, unit = 's', digits = 2): string[] {
  const w0 = Math.max(...rows.map((r) => r[0].length), 7);
  const num = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(digits));
  const lines = [
    `${'measure'.padEnd(w0)}  ${`tsvisor ${unit}`.padStart(10)}  ${`QEMU ${unit}`.padStart(10)}  ${'tsvisor/QEMU'.padStart(12)}`,
    `${'-'.repeat(w0)}  ${'-'.repeat(10)}  ${'-'.repeat(10)}  ${'-'.repeat(12)}`,
  ];
  for (const [label, t, q] of rows) {
    const ratio = t !== undefined && q !== undefined && q > 0 ? `${(t / q).toFixed(2)}x` : 'n/a';
    lines.push(`${label.padEnd(w0)}  ${num(t).padStart(10)}  ${num(q).padStart(10)}  ${ratio.padStart(12)}`);
  }
  return lines;
}
