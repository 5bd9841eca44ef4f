/**
 * Dynamic memory, the VM's own half (Hyper-V Dynamic Memory's guest-facing loop): four times a
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
  /**
   * The memory the guest holds: its RAM less what its balloon holds (not MemTotal, which
   * also leaves out what the kernel reserved at boot, memory the guest needs all the same).
   */
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
  /** The working set of the last reading (bytes; -1: none yet). */
  lastWorkingSet: number;
  /** How much it grew at the reading before (bytes). */
  lastGrowth: number;
  /** When the guest was last short of memory or its working set last grew (ms, the caller's clock). */
  lastActiveMs: number;
  /** The last decision was a step of a shrink (which then goes on to its end). */
  shrinking: boolean;
  /** When the last shrink step was decided (ms): the balloon inflating makes the guest reclaim, and stall, for a while. */
  lastShrinkMs: number;
}

/** A fresh {@link PolicyState}. */
export function newPolicyState(): PolicyState {
  return { lastStalls: -1, lastWorkingSet: -1, lastGrowth: 0, lastActiveMs: 0, shrinking: false, lastShrinkMs: -Infinity };
}

/** `--memory-buffer` when not given (percent), as Hyper-V's default. */
export const DEFAULT_BUFFER_PERCENT = 20;
/** `--min-memory` when not given: the startup memory, at most this (bytes). */
export const DEFAULT_MIN_MEMORY_BYTES = 256 * MIB;

/** The guarantee of a dynamic VM that starts with `memoryBytes` and did not name one (bytes). */
export function defaultMinMemory(memoryBytes: number): number {
  return Math.min(memoryBytes, DEFAULT_MIN_MEMORY_BYTES);
}

/** A shrink waits for this long without pressure nor a growing working set (ms). */
export const SHRINK_CALM_MS = 10_000;
/** Allocation stalls this soon after a shrink step are the balloon's own (ms). */
export const SHRINK_STALL_MS = 3000;
/** A working set that grew by more than this between two readings is busy (bytes). */
export const GROWTH_NOISE_BYTES = 4 * MIB;
/** The buffer is at least this (bytes): a guest with a tiny working set still has room to start a program. */
export const MIN_BUFFER_BYTES = 64 * MIB;
/**
 * What a shrink leaves the guest beyond the memory it cannot give (its `MemAvailable`
 * less this may go), so that reclaim never pushes it into its OOM killer (bytes). Also
 * what the policy's shrink leaves on top of the buffer.
 */
export const SHRINK_RESERVE_BYTES = 32 * MIB;
/** Smallest growth while the guest is short of memory (bytes). */
export const PRESSURE_GROW_BYTES = 256 * MIB;
/** How many of its last growths a growing working set gets on top of its buffer (at 4 readings a second: 1 s ahead). */
export const TREND_READINGS = 4;

/** `bytes` rounded up to whole MiB. */
export function ceilMiB(bytes: number): number {
  return Math.ceil(bytes / MIB) * MIB;
}

/**
 * The guest's working set from one reading: what it holds and cannot give
 * (its memory less `MemAvailable`), bytes.
 */
export function workingSetBytes(s: MemorySample): number {
  return Math.max(0, s.totalBytes - s.availableBytes);
}

/** The buffer a dynamic VM keeps above `workingSet` (bytes, whole MiB). */
export function bufferBytes(workingSet: number, bufferPercent: number): number {
  return ceilMiB(Math.max(MIN_BUFFER_BYTES, (workingSet * bufferPercent) / 100));
}

/**
 * The memory a guest with working set `ws` and memory `currentBytes` needs now (bytes,
 * whole MiB, not clamped): working set + buffer + `trendBytes`, and under pressure at
 * least twice its memory (PRESSURE_GROW_BYTES more at least). The VM's policy and the
 * daemon's plan (src/host/memory-balancer.ts) both grow by it.
 */
export function neededBytes(ws: number, bufferPercent: number, currentBytes: number, pressure: boolean, trendBytes = 0): number {
  const need = ceilMiB(ws + bufferBytes(ws, bufferPercent) + trendBytes);
  return pressure ? Math.max(need, ceilMiB(currentBytes + Math.max(currentBytes, PRESSURE_GROW_BYTES))) : need;
}

/**
 * Whether the guest is short of memory in reading `s`: less than a quarter of its buffer
 * available, or allocations stalled since the last reading while less than half of it is
 * (a balloon inflating reclaims too, and stalls, with room to spare). `lastStalls` -1:
 * stalls do not count.
 */
export function underPressure(s: MemorySample, lastStalls: number, bufferPercent: number): boolean {
  const buffer = bufferBytes(workingSetBytes(s), bufferPercent);
  if (s.availableBytes < buffer / 4) return true;
  return lastStalls >= 0 && s.allocStalls > lastStalls && s.availableBytes < buffer / 2;
}

/**
 * The memory the guest should have after reading `s` (bytes, whole MiB), given that it
 * has `currentBytes` now; updates `state`.
 *
 * Allocation stalls within SHRINK_STALL_MS of a shrink step are not pressure (the balloon's).
 * Growth, at once and up to the ceiling: to working set + buffer; while the working set
 * grew at the last two readings, also TREND_READINGS times the smaller growth on top (the trend); under pressure
 * to at least twice the memory (PRESSURE_GROW_BYTES more at least). Growths of less than GROWTH_NOISE_BYTES wait for
 * more. Shrink: when above the ceiling, as far as the guest can give (`MemAvailable` less
 * SHRINK_RESERVE_BYTES); otherwise only after SHRINK_CALM_MS with neither pressure
 * nor a growing working set, toward working set + buffer + that reserve when it frees at least 1/16
 * of the memory (32 MiB at least), by at most 1/8 of it (64 MiB at least) per reading,
 * and on to the end once begun, never past what the guest can give. Never below `minBytes`.
 */
export function policyTarget(p: MemoryPolicy, currentBytes: number, s: MemorySample, state: PolicyState, nowMs: number): number {
  const pressure = underPressure(s, nowMs - state.lastShrinkMs < SHRINK_STALL_MS ? -1 : state.lastStalls, p.bufferPercent);
  const ws = workingSetBytes(s);
  const growth = state.lastWorkingSet >= 0 ? ws - state.lastWorkingSet : 0;
  // growing at two readings in a row (one alone may be free page reporting holding pages for a moment)
  const trend = Math.min(growth, state.lastGrowth);
  const busy = trend > GROWTH_NOISE_BYTES;
  state.lastStalls = s.allocStalls;
  state.lastWorkingSet = ws;
  state.lastGrowth = growth;
  if (pressure || busy) state.lastActiveMs = nowMs;
  const ceiling = Math.max(p.minBytes, p.ceilingBytes);
  // (under pressure the shrink below never runs, so one figure serves both ways)
  const need = neededBytes(ws, p.bufferPercent, currentBytes, pressure, busy ? TREND_READINGS * trend : 0);
  let want = Math.min(Math.max(need, p.minBytes), ceiling);
  const shrinking = state.shrinking;
  state.shrinking = false;
  if (want > currentBytes && (pressure || want - currentBytes >= GROWTH_NOISE_BYTES)) return want;
  const canGive = Math.max(0, s.availableBytes - SHRINK_RESERVE_BYTES);
  const floor = Math.max(p.minBytes, ceilMiB(currentBytes - canGive));
  if (currentBytes > ceiling) return Math.min(currentBytes, Math.max(ceiling, floor));
  // a shrink leaves the reserve on top of the buffer: growth and shrink do not chase each other
  want = Math.min(Math.max(need + SHRINK_RESERVE_BYTES, p.minBytes), ceiling);
  if (pressure || busy || nowMs - state.lastActiveMs < SHRINK_CALM_MS || want >= currentBytes) return currentBytes;
  // a shrink starts only when it is worth it, and then goes on to its end
  if (!shrinking && currentBytes - want < Math.max(32 * MIB, currentBytes / 16)) return currentBytes;
  const step = Math.max(64 * MIB, currentBytes / 8);
  const target = Math.min(currentBytes, ceilMiB(Math.max(want, floor, currentBytes - step)));
  state.shrinking = target < currentBytes;
  if (state.shrinking) state.lastShrinkMs = nowMs;
  return target;
}
