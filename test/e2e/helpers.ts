/**
 * Helpers of the end-to-end tests: run `bin/tsvisor.js` as a user would, find host
 * tools, make deterministic test data.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, statSync, symlinkSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileTail } from '../../src/host/vm-process.js';

/** The repository root (this file runs as dist/test/e2e/helpers.js). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The `tsvisor` executable as installed by npm (`bin` of package.json). */
export const TSVISOR_BIN = join(REPO_ROOT, 'bin', 'tsvisor.js');

/** Outcome of one `tsvisor` process. */
export interface RunResult {
  /** Exit status, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall-clock seconds from spawn to exit. */
  seconds: number;
  /** True when the process was killed because it exceeded its time limit. */
  timedOut: boolean;
}

/** Options of {@link tsvisor}. */
export interface TsvisorOptions {
  /** Kill the process (SIGKILL) after this many ms (default 5 minutes). */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** Run `node bin/tsvisor.js ARGS...` with stdin closed and collect its output. */
export function tsvisor(args: readonly string[], opts: TsvisorOptions = {}): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TSVISOR_BIN, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs ?? 5 * 60_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code, signal, timedOut,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        seconds: (performance.now() - t0) / 1000,
      });
    });
  });
}

/** A one-paragraph description of a run for assertion messages. */
export function describeRun(what: string, r: RunResult): string {
  const tail = (s: string) => (s.length > 3000 ? '...' + s.slice(-3000) : s);
  return `${what}: exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}${r.timedOut ? ' (killed: time limit exceeded)' : ''}`
    + ` after ${r.seconds.toFixed(1)} s\n--- stdout ---\n${tail(r.stdout)}\n--- stderr ---\n${tail(r.stderr)}`;
}

/** The absolute path of host command `name` (also looks in /sbin and /usr/sbin), or null. */
export function findTool(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try { accessSync(p, constants.X_OK); return p; } catch { /* next */ }
  }
  return null;
}

/** Run a host command synchronously; throws with its stderr when it fails. Returns stdout. */
export function host(cmd: string, args: readonly string[], input?: string | Uint8Array): Buffer {
  const r = spawnSync(cmd, args, {
    input, maxBuffer: 256 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' },
  });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr.toString().trim()}`);
  }
  return r.stdout;
}

/** Hex digest of a file's bytes. */
export function fileHash(path: string, algo: 'md5' | 'sha256' = 'sha256'): string {
  return createHash(algo).update(readFileSync(path)).digest('hex');
}

/** sha256 (hex) of the first `bytes` bytes of a file, read 1 MiB at a time (for files of GiBs). */
export function fileHeadHash(path: string, bytes: number): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(1 << 20);
  try {
    for (let at = 0; at < bytes;) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, bytes - at), at);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
      at += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Hex digest of bytes. */
export function bytesHash(data: Uint8Array | string, algo: 'md5' | 'sha256' = 'sha256'): string {
  return createHash(algo).update(data).digest('hex');
}

/** A deterministic xorshift32 generator (never returns the same stream for different seeds). */
export function xorshift32(seed: number): () => number {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

/**
 * `size` bytes of deterministic pseudo-random data, in 4 KiB blocks that are either
 * random bytes or random text (letters, digits, spaces, newlines), so that deflate
 * has both incompressible runs and Huffman-coded matches to produce.
 */
export function pseudoRandomBytes(size: number, seed: number): Buffer {
  const r = xorshift32(seed);
  const alphabet = Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789 \n');
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4096) {
    const end = Math.min(size, i + 4096);
    const text = (r() & 1) === 0;
    for (let j = i; j < end; j++) b[j] = text ? alphabet[r() % alphabet.length] : r() & 0xff;
  }
  return b;
}

/** `lines` lines of deterministic CSV: name,integer,signed decimal,base-36 token. */
export function pseudoRandomCsv(lines: number, seed: number): string {
  const r = xorshift32(seed);
  const names = ['ada', 'bob', 'cyd', 'dee', 'eve', 'fay', 'gus', 'hal', 'ivy', 'jon'];
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const dec = ((r() % 2_000_000) - 1_000_000) / 1000;
    out.push(`${names[r() % names.length]}${r() % 100},${r() % 100_000},${dec},${r().toString(36)}\n`);
  }
  return out.join('');
}

/** `@@ key value...` lines of a guest script's output (the run's stdout) -> key -> value. */
export function results(r: RunResult): Map<string, string> {
  const m = new Map<string, string>();
  for (const raw of r.stdout.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const i = line.indexOf('@@ ');
    if (i < 0) continue;
    const rest = line.slice(i + 3);
    const sp = rest.indexOf(' ');
    m.set(sp < 0 ? rest : rest.slice(0, sp), sp < 0 ? '' : rest.slice(sp + 1));
  }
  return m;
}

/** The last `bytes` of a file as text, "..." first if cut ("(no file)" if it cannot be read). */
export function fileTail(path: string, bytes = 6000): string {
  try {
    return (statSync(path).size > bytes ? '...' : '') + readFileTail(path, bytes);
  } catch {
    return '(no file)';
  }
}

/**
 * Runs a test body that drives daemon VMs; when it fails, the error message gets the end of
 * each VM's logs (`home`/vms/NAME/vm.log, the VM process's own messages, and console.log),
 * so a CI failure shows what the guest and the engine said last.
 */
export async function withVmLogs<T>(home: () => string, vms: readonly string[], body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    const logs = vms.flatMap((vm) => ['vm.log', 'console.log'].map((f) => `--- vms/${vm}/${f} ---\n${fileTail(join(home(), 'vms', vm, f), 3000)}`)).join('\n');
    if (e instanceof Error) {
      e.message += `\n${logs}`;
      throw e;
    }
    throw new Error(`${String(e)}\n${logs}`);
  }
}

/** Starts `fn` once; later calls get the same promise (so boots can overlap tests). */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

/**
 * Build test/e2e/guest/`program`.c statically with Debian's cross compiler onto a 32 MiB
 * ext4 image, the program at its root: `work/<program>.img`, with the program's folder
 * `work/<program>-disk`. Returns the image path.
 * @throws Error naming the Debian package when riscv64-linux-gnu-gcc or mke2fs is missing
 *   (`what` names the caller in that message), or when a build step fails.
 */
export function buildGuestProgramDisk(work: string, program: string, what: string): string {
  const mke2fs = findTool('mke2fs');
  if (!mke2fs) throw new Error(`${what} needs mke2fs (apt-get install e2fsprogs)`);
  const cc = findTool('riscv64-linux-gnu-gcc');
  if (!cc) throw new Error(`${what} needs riscv64-linux-gnu-gcc (apt-get install gcc-riscv64-linux-gnu libc6-dev-riscv64-cross)`);
  const dir = join(work, `${program}-disk`);
  mkdirSync(dir, { recursive: true });
  host(cc, ['-O2', '-static', '-pthread', '-o', join(dir, program), join(REPO_ROOT, 'test', 'e2e', 'guest', `${program}.c`)]);
  const img = join(work, `${program}.img`);
  host(mke2fs, ['-q', '-t', 'ext4', '-F', '-d', dir, img, '32M']);
  return img;
}

/** {@link buildGuestProgramDisk} of atomics.c (4 threads of AMO and mutex increments). */
export function buildAtomicsDisk(work: string, what: string): string {
  return buildGuestProgramDisk(work, 'atomics', what);
}

/**
 * The image cache to borrow, so that nothing is downloaded or built again:
 * /tmp/tsvisor-home-images/cache, $TSVISOR_HOME/cache or ~/.local/share/tsvisor/cache,
 * the first holding a built default image; undefined when none does.
 */
export function findImageCache(): string | undefined {
  const candidates = ['/tmp/tsvisor-home-images/cache'];
  if (process.env.TSVISOR_HOME) candidates.push(join(process.env.TSVISOR_HOME, 'cache'));
  candidates.push(join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'tsvisor', 'cache'));
  return candidates.find((c) => existsSync(join(c, 'images', 'default.json')));
}

/**
 * A fresh temporary folder `root` (named after `prefix`) with a tsvisor home (`root/home`,
 * the image cache linked in, see {@link findImageCache}) and a runtime folder (`root/run`,
 * mode 0700): `env` points a daemon and the CLI at them. The caller removes `root`.
 */
export function tempTsvisorHome(prefix: string): { root: string; env: { TSVISOR_HOME: string; XDG_RUNTIME_DIR: string } } {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const env = { TSVISOR_HOME: join(root, 'home'), XDG_RUNTIME_DIR: join(root, 'run') };
  mkdirSync(env.TSVISOR_HOME, { recursive: true });
  mkdirSync(env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
  const cache = findImageCache();
  if (cache) symlinkSync(cache, join(env.TSVISOR_HOME, 'cache'));
  return { root, env };
}
