/**
 * Dynamic memory, the VM's own half (Hyper-V Dynamic Memory's guest-facing loop): twice a
 * second the VM process reads its guest's balloon statistics and moves the balloon so that
 * the guest keeps its working set plus a buffer. It grows at once (and faster while the
 * guest is short of memory), never beyond the ceiling the host daemon grants it (the
 * daemon divides the host's budget among its VMs: src/host/memory-plan.ts), and shrinks
 * only after a calm spell, never below the minimum nor past what the guest can give
 * without reclaim pushing it into its OOM killer.
 *
 * This file is pure: the decisions from the figures; src/vmm/memory.ts applies them.
 */

const MIB = 1024 * 1024;

/** What the daemon asks of a dynamic VM. Bytes, whole MiB. */
export interface MemoryPolicy {
  /** The least memory the guest keeps (its guarantee). */
  minBytes: number;
  /** The most it may take now without asking (its share of the host's budget; at most its RAM). */
  ceilingBytes: number;
  /** Free memory kept above the working set, in percent of it (5..200). */
  bufferPercent: number;
}

/** One reading of the guest's balloon statistics (virtio 1.2 §5.5.6.3), bytes. */
export interface MemorySample {
  /** MemTotal: follows the balloon. */
  totalBytes: number;
  /** MemAvailable: free memory plus what the guest can reclaim without swapping. */
  availableBytes: number;
  /** Allocations that had to wait for reclaim, since the guest booted (a count). */
  allocStalls: number;
}

/** What the controller remembers between two readings. */
export interface PolicyState {
  /** allocStalls of the last reading (-1: none yet). */
  lastStalls: number;
  /** When the guest was last short of memory (ms, the caller's clock). */
  lastPressureMs: number;
}

/** `--memory-buffer` when not given (percent), as Hyper-V's default. */
export const DEFAULT_BUFFER_PERCENT = 20;
/** `--min-memory` when not given: the startup memory, at most this (bytes). */
export const DEFAULT_MIN_MEMORY_BYTES = 256 * MIB;

/** The guarantee of a dynamic VM that starts with `memoryBytes` and did not name one (bytes). */
export function defaultMinMemory(memoryBytes: number): number {
  return Math.min(memoryBytes, DEFAULT_MIN_MEMORY_BYTES);
}

/** A shrink waits for this long without pressure (ms). */
export const SHRINK_CALM_MS = 3000;
/** The buffer is at least this (bytes): a guest with a tiny working set still has room to start a program. */
export const MIN_BUFFER_BYTES = 32 * MIB;
/** What a shrink leaves the guest beyond what it could give (bytes; see vmm/memory.ts SHRINK_RESERVE_BYTES). */
export const POLICY_SHRINK_RESERVE_BYTES = 32 * MIB;
/** Smallest growth while the guest is short of memory (bytes). */
export const PRESSURE_GROW_BYTES = 128 * MIB;

/** `bytes` rounded up to whole MiB. */
export function ceilMiB(bytes: number): number {
  return Math.ceil(bytes / MIB) * MIB;
}

/**
 * The guest's working set from one reading: what it uses and cannot reclaim
 * (`MemTotal - MemAvailable`), bytes.
 */
export function workingSetBytes(s: MemorySample): number {
  return Math.max(0, s.totalBytes - s.availableBytes);
}

/** The buffer a dynamic VM keeps above `workingSet` (bytes, whole MiB). */
export function bufferBytes(workingSet: number, bufferPercent: number): number {
  return ceilMiB(Math.max(MIN_BUFFER_BYTES, (workingSet * bufferPercent) / 100));
}

/**
 * Whether the guest is short of memory in reading `s`: less than half its buffer
 * available, or allocations stalled since the last reading while less than the whole
 * buffer is (a balloon inflating reclaims too, and stalls, with room to spare).
 */
export function underPressure(s: MemorySample, lastStalls: number, bufferPercent: number): boolean {
  const buffer = bufferBytes(workingSetBytes(s), bufferPercent);
  if (s.availableBytes < buffer / 2) return true;
  return lastStalls >= 0 && s.allocStalls > lastStalls && s.availableBytes < buffer;
}

/**
 * The memory the guest should have after reading `s` (bytes, whole MiB), given that it
 * has `currentBytes` now; updates `state`. Growth: to working set + buffer, and while
 * under pressure by at least half again (PRESSURE_GROW_BYTES at least), up to the
 * ceiling. Shrink: when above the ceiling, as far as the guest can give; otherwise after
 * SHRINK_CALM_MS without pressure, toward working set + buffer, when that frees at least
 * 1/16 of its memory (32 MiB at least), and never past `MemAvailable` less
 * POLICY_SHRINK_RESERVE_BYTES. Never below `minBytes`.
 */
export function policyTarget(p: MemoryPolicy, currentBytes: number, s: MemorySample, state: PolicyState, nowMs: number): number {
  const pressure = underPressure(s, state.lastStalls, p.bufferPercent);
  state.lastStalls = s.allocStalls;
  if (pressure) state.lastPressureMs = nowMs;
  const ceiling = Math.max(p.minBytes, p.ceilingBytes);
  const ws = workingSetBytes(s);
  let want = ceilMiB(ws + bufferBytes(ws, p.bufferPercent));
  if (pressure) want = Math.max(want, ceilMiB(currentBytes + Math.max(currentBytes / 2, PRESSURE_GROW_BYTES)));
  want = Math.min(Math.max(want, p.minBytes), ceiling);
  if (want > currentBytes) return want;
  const canGive = Math.max(0, s.availableBytes - POLICY_SHRINK_RESERVE_BYTES);
  const floor = Math.max(p.minBytes, ceilMiB(currentBytes - canGive));
  if (currentBytes > ceiling) return Math.min(currentBytes, Math.max(ceiling, floor));
  if (pressure || nowMs - state.lastPressureMs < SHRINK_CALM_MS) return currentBytes;
  if (currentBytes - want < Math.max(32 * MIB, currentBytes / 16)) return currentBytes;
  return Math.min(currentBytes, Math.max(want, floor));
}
