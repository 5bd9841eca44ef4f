/**
 * Helpers of the host daemon's tests: a temporary tsvisor home and runtime folder, the
 * fake VM process, and a fingerprint of a folder tree (to prove a request wrote nothing).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hostPaths, type HostPaths } from '../../src/host/paths.js';

/** The fake VM process (dist/test/host/fake-vmm.js). */
export const FAKE_VMM = fileURLToPath(new URL('./fake-vmm.js', import.meta.url));

/** A fresh home (TSVISOR_HOME) and runtime folder (XDG_RUNTIME_DIR) below one temporary folder. */
export function tempHome(prefix = 'tsvisor-host-'): { root: string; paths: HostPaths; env: Record<string, string> } {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const env = { TSVISOR_HOME: join(root, 'home'), XDG_RUNTIME_DIR: join(root, 'run') };
  mkdirSync(env.TSVISOR_HOME, { recursive: true });
  mkdirSync(env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
  return { root, paths: hostPaths(env), env };
}

/** A digest of every file's path, mode and content below `dir` (sockets and pid liveness aside). */
export function treeFingerprint(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    let names: string[];
    try { names = readdirSync(d).sort(); } catch { return; }
    for (const n of names) {
      const p = join(d, n);
      const st = lstatSync(p);
      h.update(`${p} ${st.mode}\n`);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

/** Poll `fn` until it returns a truthy value or `ms` pass. */
export async function waitFor<T>(fn: () => T | Promise<T>, ms = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
