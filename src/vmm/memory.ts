/**
 * A VM's memory while it runs: the guest boots with `maxBytes` of RAM in its device tree
 * and the balloon (virtio-balloon) holds the difference to `currentBytes`, so the memory
 * can move in both directions without a reboot (libvirt's `currentMemory` under
 * `maxMemory`). This file keeps the target across guest reboots, decides whether a
 * change can be made now, and reports the figures; the device is src/devices/virtio/balloon.ts.
 */
import type { BalloonConfig } from '../machine/board.js';
import type { BalloonStats, VirtioBalloon } from '../devices/virtio/balloon.js';
import type { VmMemoryStatus } from './control-api.js';
import { MIN_MEMORY_BYTES as MIN_GUEST_MEMORY_BYTES } from './vm-config.js';
import { backedRamBytes } from '../engine/layout.js';
import { SHRINK_RESERVE_BYTES, newPolicyState, policyTarget, type MemoryPolicy, type PolicyState } from './memory-policy.js';

export { SHRINK_RESERVE_BYTES };

const MIB = 1024 * 1024;
/** The longest the dynamic policy waits for the balloon to reach its last target before it decides again (ms). */
const POLICY_SETTLE_MS = 2000;
/** Statistics older than this are refreshed when the status is read (ms). */
const STATS_REFRESH_MS = 2000;

/** A change that cannot be made; `status` is 400 (out of range) or 409 (not now). */
export class MemoryChangeError extends Error {
  constructor(readonly status: 400 | 409, message: string) {
    super(message);
    this.name = 'MemoryChangeError';
  }
}

function mib(bytes: number): string {
  return `${Math.floor(bytes / MIB)} MiB`;
}

/** The memory of one VM process, across the boards of its guest's reboots. */
export class VmMemory {
  private current: number;
  private balloon: VirtioBalloon | null = null;
  private policy: MemoryPolicy | null = null;
  private policyState: PolicyState = newPolicyState();
  /** When the statistics the policy last acted on were taken (ms). */
  private policySeenMs = 0;
  /** Since when the balloon has not reached its target (ms; null: it has). */
  private unsettledSinceMs: number | null = null;
  /** The last move took memory away and the balloon has not reached it yet. */
  private shrinkInFlight = false;
  /** The figures the dynamic policy's last move was decided on, for the VM's log. */
  lastMoveFigures = '';

  /**
   * @param maxBytes the RAM the guest boots with (bytes, whole MiB)
   * @param currentBytes the memory it should have (bytes, whole MiB, at most `maxBytes`)
   * @throws RangeError when `currentBytes` is not in [MIN_GUEST_MEMORY_BYTES, maxBytes]
   */
  constructor(readonly maxBytes: number, currentBytes: number) {
    if (currentBytes > maxBytes || currentBytes < Math.min(MIN_GUEST_MEMORY_BYTES, maxBytes)) {
      throw new RangeError(`memory ${mib(currentBytes)} is outside ${mib(MIN_GUEST_MEMORY_BYTES)}..${mib(maxBytes)}`);
    }
    this.current = currentBytes;
  }

  /** The memory the guest should have, in bytes. */
  get currentBytes(): number { return this.current; }

  /**
   * What the balloon holds when the guest should have `bytes` (bytes): the RAM memory backs
   * less `bytes` (a VM above MAX_BACKED_RAM_BYTES boots the rest reserved; engine/layout.ts).
   */
  private balloonFor(bytes: number): number {
    return Math.max(0, backedRamBytes(this.maxBytes) - bytes);
  }

  /**
   * The board's balloon for the next boot: it starts at the current target; under the dynamic
   * policy the guest may take pages back from it rather than OOM-kill (deflate on OOM), while
   * the policy catches up with a guest that fills its memory faster than it reads the figures.
   */
  boardConfig(): BalloonConfig {
    return { targetBytes: this.balloonFor(this.current), ...(this.policy ? { deflateOnOom: true } : {}) };
  }

  /** The balloon of the board that now runs (null between boards). */
  attach(balloon: VirtioBalloon | null): void {
    this.balloon = balloon;
  }

  /**
   * Give the guest `bytes` of memory. Growing is always possible up to `maxBytes` (the
   * balloon deflates; before the driver runs, the guest starts at the new size). Shrinking
   * needs the guest's statistics and at most its available memory less
   * SHRINK_RESERVE_BYTES.
   * @throws MemoryChangeError (400: not whole MiB, below the floor or above the RAM the
   *   guest booted with; 409: no balloon driver or statistics yet, or more than the guest
   *   can give now), with the figures.
   */
  set(bytes: number): void {
    if (bytes % MIB !== 0) throw new MemoryChangeError(400, `memory ${bytes}: must be a whole number of MiB`);
    if (bytes > this.maxBytes) {
      throw new MemoryChangeError(400, `memory ${mib(bytes)} is above this VM's maximum of ${mib(this.maxBytes)} (the RAM it booted with; raise --max-memory and restart it for more)`);
    }
    if (bytes < MIN_GUEST_MEMORY_BYTES) throw new MemoryChangeError(400, `memory ${mib(bytes)} is below the minimum of ${mib(MIN_GUEST_MEMORY_BYTES)}`);
    const give = this.balloonFor(bytes) - this.balloonFor(this.current);
    if (give > 0) {
      const b = this.balloon;
      if (!b || !b.active) throw new MemoryChangeError(409, "the guest's balloon driver is not running (yet): its memory cannot shrink now");
      const avail = b.lastStats()?.stats.availableMemory;
      if (avail === undefined) throw new MemoryChangeError(409, 'the guest has not reported its memory statistics yet: try again in a few seconds');
      const can = Math.max(0, avail - SHRINK_RESERVE_BYTES);
      if (give > can) {
        throw new MemoryChangeError(409, `the guest cannot give ${mib(give)} now: it has ${mib(avail)} available, and keeps ${mib(SHRINK_RESERVE_BYTES)} of it (smallest possible now: ${mib(Math.ceil((this.current - can) / MIB) * MIB)})`);
      }
    }
    this.shrinkInFlight = bytes < this.current;
    this.current = bytes;
    this.balloon?.setTargetPages(this.balloonFor(bytes) / 4096);
  }

  /**
   * Ask the guest for statistics taken from now on (§5.5.6.3) and wait for them, at most
   * `timeoutMs` (ms). True when they came; false without a balloon driver or in time (the
   * last figures stay). A shrink decided on figures a few seconds old would refuse memory
   * the guest has freed since, or take memory it has filled since.
   */
  async refreshStats(timeoutMs: number): Promise<boolean> {
    const t0 = Date.now();
    const b = this.balloon;
    if (!b || !b.active) return false;
    // false: a request is already pending; its answer is just as fresh
    b.requestStats();
    for (;;) {
      const last = this.balloon?.lastStats();
      if (last && last.atMs >= t0) return true;
      if (Date.now() - t0 >= timeoutMs || this.balloon !== b || !b.active) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Put the memory under the dynamic policy (vmm/memory-policy.ts), or take it off (null:
   * the memory stays where it is). A ceiling below the current memory makes the guest
   * give back what it can at the next {@link policyTick}.
   * @throws MemoryChangeError(400) when the figures are out of range (min below the
   *   floor or above the RAM the guest booted with, buffer outside 5..200 %).
   */
  setPolicy(p: MemoryPolicy | null): void {
    if (p) {
      for (const [k, v] of [['minBytes', p.minBytes], ['ceilingBytes', p.ceilingBytes]] as const) {
        if (!Number.isSafeInteger(v) || v % MIB !== 0) throw new MemoryChangeError(400, `${k} ${v}: must be a whole number of MiB`);
      }
      if (p.minBytes < Math.min(MIN_GUEST_MEMORY_BYTES, this.maxBytes) || p.minBytes > this.maxBytes) {
        throw new MemoryChangeError(400, `minimum ${mib(p.minBytes)} is outside ${mib(MIN_GUEST_MEMORY_BYTES)}..${mib(this.maxBytes)}`);
      }
      if (!Number.isInteger(p.bufferPercent) || p.bufferPercent < 5 || p.bufferPercent > 200) {
        throw new MemoryChangeError(400, `buffer ${p.bufferPercent}: expected a whole percentage from 5 to 200`);
      }
      p = { ...p, ceilingBytes: Math.min(Math.max(p.ceilingBytes, p.minBytes), this.maxBytes) };
    }
    if (p && !this.policy) this.policyState = newPolicyState();
    this.policy = p;
  }

  /**
   * One step of the dynamic policy (call it about four times a second): act on statistics the
   * guest took after its balloon reached the last target when that target took memory away
   * (older ones would count a move twice; after POLICY_SETTLE_MS, on the latest anyway), on
   * the latest at once when it gave memory, then ask it for fresh ones.
   * Returns the new memory (bytes) when it moved, else null.
   */
  policyTick(nowMs: number): number | null {
    const b = this.balloon;
    const p = this.policy;
    if (!p || !b || !b.active) return null;
    // while a shrink is in flight, decide only on figures the guest took once its balloon had
    // caught up with it, or after POLICY_SETTLE_MS when it does not (a guest that cannot give
    // what was asked). Otherwise (a growth in flight, or a guest that took pages back from the
    // balloon on OOM) nothing is held back: a guest filling its memory may need more before the
    // balloon is done (CI saw a guest writing a tmpfs at full speed OOM-kill its writer while a
    // growth waited here); the pages still owed to it count as its own below.
    if (b.actualPages !== b.targetPages) {
      this.unsettledSinceMs ??= nowMs;
      if (this.shrinkInFlight && b.actualPages < b.targetPages && nowMs - this.unsettledSinceMs < POLICY_SETTLE_MS) {
        this.policySeenMs = nowMs;
        b.requestStats();
        return null;
      }
    } else {
      this.unsettledSinceMs = null;
      this.shrinkInFlight = false;
    }
    const last = b.lastStats();
    let moved: number | null = null;
    const s = last?.stats;
    if (last && last.atMs > this.policySeenMs && s?.availableMemory !== undefined) {
      this.policySeenMs = last.atMs;
      // the guest's size when it took the figures (the balloon may have moved since: its
      // memory now with its MemAvailable then counts what came in between as used), and the
      // pages the balloon still owed it then (a growth in flight) as held and available: the
      // guest has them in a moment. Without both, readings taken while the balloon deflated
      // showed the pressure the growth was made for, and grew again: an idle guest left short
      // by a shrink step went 230 -> 342 -> 528 -> 1039 MiB in three readings.
      const owed = Math.max(0, last.actualPages - b.targetPages) * 4096;
      const held = backedRamBytes(this.maxBytes) - last.actualPages * 4096 + owed;
      const stallsBefore = this.policyState.lastStalls;
      const sample = { totalBytes: held, availableBytes: s.availableMemory + owed, allocStalls: s.allocStalls ?? 0 };
      const target = policyTarget(p, this.current, sample, this.policyState, nowMs);
      if (target !== this.current) {
        this.lastMoveFigures = `the guest holds ${mib(held)}, ${mib(sample.availableBytes)} available, ` +
          `${stallsBefore < 0 ? 'no earlier reading' : `${sample.allocStalls - stallsBefore} allocation stalls since the last reading`}, ` +
          `figures ${nowMs - last.atMs} ms old`;
        this.shrinkInFlight = target < this.current;
        this.current = target;
        b.setTargetPages(this.balloonFor(target) / 4096);
        moved = target;
        this.policySeenMs = nowMs;
      }
    }
    b.requestStats();
    return moved;
  }

  /** The figures for `GET /status`; asks the guest for fresh statistics when the last are old. */
  status(rssBytes: number): VmMemoryStatus {
    const b = this.balloon;
    const last = b?.lastStats() ?? null;
    if (b && (!last || Date.now() - last.atMs > STATS_REFRESH_MS)) b.requestStats();
    return {
      currentBytes: this.current,
      maxBytes: this.maxBytes,
      balloonBytes: (b?.actualPages ?? 0) * 4096,
      returnedBytes: b?.metrics.discardedBytes ?? 0,
      guest: last ? guestView(last.stats, last.atMs) : null,
      rssBytes,
      ...(this.policy ? { policy: { ...this.policy } } : {}),
    };
  }
}

function guestView(s: BalloonStats, atMs: number): NonNullable<VmMemoryStatus['guest']> {
  return {
    totalBytes: s.totalMemory, freeBytes: s.freeMemory, availableBytes: s.availableMemory, cachesBytes: s.diskCaches,
    oomKills: s.oomKills, allocStalls: s.allocStalls, atMs,
  };
}
