/**
 * A cross-process lock file, so that two tsvisor processes (e.g. two VMs started at
 * once) do not run apt or build the same image concurrently.
 */
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { ImageError } from './errors.js';

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `fn` while holding the lock file `path` (created with O_EXCL, containing our pid).
 * A lock whose owner process is gone is taken over. Waits for a live owner, calling
 * `onWait(pid)` once, for at most `timeoutMs` (default 30 minutes).
 * @throws ImageError when the lock cannot be obtained in time.
 */
export async function withFileLock<T>(
  path: string,
  fn: () => Promise<T>,
  opts: { timeoutMs?: number; onWait?: (ownerPid: number) => void } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
  let told = false;
  for (;;) {
    let fd: number | undefined;
    try {
      fd = openSync(path, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new ImageError(`cannot create lock file ${path}: ${(e as Error).message}`);
      }
    }
    if (fd !== undefined) {
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      try {
        return await fn();
      } finally {
        rmSync(path, { force: true });
      }
    }
    let owner = NaN;
    try {
      owner = Number.parseInt(readFileSync(path, 'utf8'), 10);
    } catch {
      /* vanished or being written: retry */
    }
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && !alive(owner)) {
      rmSync(path, { force: true });
      continue;
    }
    if (!Number.isInteger(owner) && ageMs(path) > 10_000) {
      // An owner that died between creating and writing the file.
      rmSync(path, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new ImageError(`timed out waiting for lock ${path} (held by pid ${owner})`);
    if (!told && Number.isInteger(owner)) {
      told = true;
      opts.onWait?.(owner);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
