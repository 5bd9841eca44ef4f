/**
 * Files named on the command line.
 */
import { readFileSync, statSync } from 'node:fs';
import { UsageError } from './errors.js';

/**
 * The bytes of the regular file `path`, given as `what` (a flag or a name, for the error).
 * @throws UsageError (one line): missing, not a regular file, unreadable, or larger than `maxBytes`.
 */
export function readFileArg(path: string, what: string, maxBytes = Infinity): Buffer {
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UsageError(`${what} ${path}: not a regular file`);
    if (st.size > maxBytes) throw new UsageError(`${what} ${path}: larger than ${maxBytes >= 1 << 20 ? `${maxBytes / (1 << 20)} MiB` : `${maxBytes} bytes`}`);
    return readFileSync(path);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`${what} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
  }
}
