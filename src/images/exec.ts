/**
 * Running host tools (apt-get, dpkg-deb, xz) with clear errors.
 */
import { spawn } from 'node:child_process';
import { ImageError } from './errors.js';

/** What a finished host command produced. */
export interface RunResult {
  /** Exit code (or 128 + signal number when killed by a signal). */
  code: number;
  stdout: Buffer;
  stderr: Buffer;
}

/** Options of {@link run}. */
export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** What the tool is needed for, used in the "not installed" message. */
  purpose?: string;
  /** Debian package that provides the tool, used in the "not installed" message. */
  providedBy?: string;
  /** Called with every chunk the command writes to stdout/stderr (for progress parsing). */
  onOutput?: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
}

/**
 * Runs `cmd args` without a shell, collecting stdout and stderr, and resolves when it
 * exits, whatever its exit code.
 * @throws ImageError when the program is not installed (ENOENT) or cannot be started.
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => {
      out.push(c);
      opts.onOutput?.(c, 'stdout');
    });
    child.stderr.on('data', (c: Buffer) => {
      err.push(c);
      opts.onOutput?.(c, 'stderr');
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        const pkg = opts.providedBy ? ` (apt-get install ${opts.providedBy})` : '';
        const why = opts.purpose ? `, needed to ${opts.purpose}` : '';
        reject(new ImageError(`${cmd} is not installed${why}${pkg}`, { cause: e }));
      } else {
        reject(new ImageError(`cannot run ${cmd}: ${e.message}`, { cause: e }));
      }
    });
    child.on('close', (code, signal) => {
      const sigNum = signal ? 128 + (signalNumbers[signal] ?? 0) : 0;
      resolvePromise({ code: code ?? sigNum, stdout: Buffer.concat(out), stderr: Buffer.concat(err) });
    });
  });
}

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15, SIGPIPE: 13 };

/**
 * Like {@link run}, but a non-zero exit becomes an ImageError
 * `"<what> failed: <last meaningful stderr line>"`.
 * @throws ImageError
 */
export async function runChecked(what: string, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new ImageError(`${what} failed: ${lastErrorLine(r)}`);
  return r;
}

/** The most informative single line of a failed command's output (prefers `E:` lines of apt). */
export function lastErrorLine(r: RunResult): string {
  const lines = (r.stderr.toString('utf8') + '\n' + r.stdout.toString('utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const apt = lines.filter((l) => l.startsWith('E: '));
  if (apt.length > 0) return apt[0]!.slice(3);
  const stderrLines = r.stderr.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return stderrLines.at(-1) ?? lines.at(-1) ?? `exit code ${r.code}`;
}
