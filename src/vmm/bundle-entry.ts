/**
 * Whether a process that runs a VM loads an entry script from the bundle (dist/bundle,
 * scripts/bundle.js: a few files instead of about a hundred) or from tsc's output: the
 * bundle only when it was built after tsc's output, so that a tsc-only rebuild never runs
 * stale code. Imports only node:fs: `bin/tsvisor.js` reads it before it loads the CLI.
 */
import { statSync } from 'node:fs';

/** True when the file `bundled` exists and was modified no earlier than `tsc` (file URLs or paths). */
export function bundleIsFresh(bundled: URL | string, tsc: URL | string): boolean {
  const mtime = (p: URL | string) => statSync(p, { throwIfNoEntry: false })?.mtimeMs ?? -1;
  const b = mtime(bundled);
  return b >= 0 && b >= mtime(tsc);
}
