/**
 * JIT profiles: the block starts of a guest kernel that became hot in its last run (see
 * CodeCache.hotStarts), kept in the cache so that the next run of the same kernel asks
 * for their translation after PROFILE_WARMUP executions instead of DEFAULT_HOT_THRESHOLD
 * (CodeCacheOptions.seed). A profile only moves translations earlier: each is still
 * made from the code in guest RAM when it is asked for, so a profile that does not match the
 * guest (another kernel at the same path, a damaged file) costs some early translations and
 * never changes what the guest computes.
 *
 * File format (`<cache>/jit/<key hash>.prof`): the 8 bytes "TSVJITP1", a u32 count, then
 * that many u32 offsets in bytes from the start of guest RAM; all little-endian. Written to
 * a temporary file and renamed over the old one, so a reader sees a whole profile or none.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MAX_PROFILE_STARTS } from '../engine/jit/code-cache.js';
import { cacheDir } from '../images/paths.js';

const MAGIC = 'TSVJITP1';
const HEADER_BYTES = 12;

/**
 * The profile file of a guest named by `parts` (see fileStamp): for a kernel booted
 * directly, its file's stamp; for a firmware boot, the firmware's and the system disk's.
 */
export function jitProfilePath(parts: readonly string[], cache: string = cacheDir()): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(`${p}\0`);
  return join(cache, 'jit', `${h.digest('hex').slice(0, 32)}.prof`);
}

/**
 * A file's part of a profile's name: its absolute path, size and modification time, so
 * that a file replaced in place gets a new profile. Throws (from fs.statSync) when it is
 * missing.
 */
export function fileStamp(path: string): string {
  const abs = resolve(path);
  const st = statSync(abs);
  return `${abs}:${st.size}:${st.mtimeMs}`;
}

/**
 * The block starts of the profile at `path` (RAM offsets in bytes), or an empty array when
 * there is no profile or it is not a valid one (not a regular file, bad magic, a count that
 * does not match the file's length or is over MAX_PROFILE_STARTS). Never throws.
 */
export function loadJitProfile(path: string): Uint32Array {
  let b: Buffer;
  try {
    // a regular file of at most a whole profile's size: never a FIFO or a device, nor a huge file read whole
    const st = statSync(path);
    if (!st.isFile() || st.size > HEADER_BYTES + 4 * MAX_PROFILE_STARTS) return new Uint32Array(0);
    b = readFileSync(path);
  } catch {
    return new Uint32Array(0);
  }
  if (b.length < HEADER_BYTES || b.toString('latin1', 0, 8) !== MAGIC) return new Uint32Array(0);
  const n = b.readUInt32LE(8);
  if (n > MAX_PROFILE_STARTS || b.length !== HEADER_BYTES + 4 * n) return new Uint32Array(0);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = b.readUInt32LE(HEADER_BYTES + 4 * i);
  return out;
}

/**
 * True when a run whose harts asked for `runStarts` translations of the kernel's code
 * (CodeCache.hotStarts, all harts) is to replace the profile of `seeded` starts it was
 * seeded with: unless it asked for fewer than a quarter as many, as a run stopped during
 * its boot does, which would leave the next run almost cold.
 */
export function replacesProfile(runStarts: number, seeded: number): boolean {
  return runStarts * 4 >= seeded;
}

/**
 * Write the profile at `path`, in place of the one there: the block starts of `runs` (each
 * hart's CodeCache.hotStarts, RAM offsets in bytes), without repeats, up to
 * MAX_PROFILE_STARTS. Only the last run counts: starts of an earlier run that this one
 * did not ask for (another workload's) would be seeded again in every run after it, and
 * translated whenever they run PROFILE_WARMUP times. The folder is created when missing.
 * Throws on a write error (the old profile is then left as it was).
 */
export function saveJitProfile(path: string, runs: ReadonlyArray<readonly number[]>): void {
  const seen = new Set<number>();
  for (const hart of runs) {
    for (const off of hart) {
      if (seen.size < MAX_PROFILE_STARTS && Number.isInteger(off) && off >= 0 && off <= 0xffff_ffff) seen.add(off);
    }
  }
  const b = Buffer.alloc(HEADER_BYTES + 4 * seen.size);
  b.write(MAGIC, 0, 'latin1');
  b.writeUInt32LE(seen.size, 8);
  let p = HEADER_BYTES;
  for (const off of seen) { b.writeUInt32LE(off, p); p += 4; }
  mkdirSync(join(path, '..'), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, b);
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* never written */ }
    throw e;
  }
}
