/**
 * Disk I/O limits of one VM (`--disk-iops`, `--disk-bps`), shared by all its disks: two
 * token buckets, as Firecracker's block rate limiter (operations and bytes per second),
 * each {@link IO_BURST_SECONDS} deep. A request may start while neither bucket is in
 * debt, and then takes its operation and bytes (possibly into debt), so requests of any
 * size pass and the averages hold. The limits can change at any time.
 *
 * Two sets of limits apply, the smaller of each: the user's, and the VM's share of a
 * contended host disk, which the daemon sets by `--disk-weight` (src/host/disk-arbiter.ts).
 * The limiter also meters what the daemon decides on: requests, bytes, and how long the
 * VM had a request being served or waiting for tokens (its disk busy time).
 */
import { TokenBucket } from './token-bucket.js';

/** Depth of each bucket, in seconds at its rate. */
export const IO_BURST_SECONDS = 0.1;

/** Per-second limits; 0 means none. */
export interface IoLimits {
  /** Requests (reads, writes, flushes) per second. */
  iops: number;
  /** Bytes read or written per second. */
  bps: number;
}

/** What an {@link IoLimiter} metered since it was made: requests, bytes, and busy time in ms. */
export interface IoMeter {
  ops: number;
  bytes: number;
  /** Time requests were being served (the backend's reads, writes and flushes). */
  serviceMs: number;
  /** Time a request waited for the buckets. */
  waitMs: number;
}

/** The smaller of two limits, 0 being none. */
function tighter(a: number, b: number): number {
  return a === 0 ? b : b === 0 ? a : Math.min(a, b);
}

function checkLimits(limits: IoLimits): void {
  for (const [k, v] of Object.entries(limits)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`disk ${k} limit ${v}: expected a number >= 0`);
  }
}

/** The limiter; see the file comment. */
export class IoLimiter {
  private user: IoLimits = { iops: 0, bps: 0 };
  private shared: IoLimits = { iops: 0, bps: 0 };
  /** The limits in force: the smaller of the user's and the share. */
  private limits: IoLimits = { iops: 0, bps: 0 };
  private readonly ops: TokenBucket;
  private readonly bytes: TokenBucket;
  /** Times a request found a bucket in debt and had to wait. */
  throttled = 0;
  /** Totals since the limiter was made (see {@link IoMeter}). */
  readonly meter: IoMeter = { ops: 0, bytes: 0, serviceMs: 0, waitMs: 0 };
  /** When the request now waiting for the buckets began to wait, or null. */
  private waitingSince: number | null = null;

  /**
   * @param limits the starting limits
   * @param now the clock in ms (default performance.now)
   * @throws RangeError for a negative or non-finite limit
   */
  constructor(limits: IoLimits, readonly now: () => number = () => performance.now()) {
    this.ops = new TokenBucket(now);
    this.bytes = new TokenBucket(now);
    this.set(limits);
  }

  /** The user's limits. */
  get current(): IoLimits { return { ...this.user }; }

  /** The share the daemon set (0: none). */
  get share(): IoLimits { return { ...this.shared }; }

  /** True when any limit is in force. */
  get active(): boolean { return this.limits.iops > 0 || this.limits.bps > 0; }

  /** Change the user's limits (the buckets start full). @throws RangeError for a negative or non-finite limit. */
  set(limits: IoLimits): void {
    checkLimits(limits);
    this.user = { iops: limits.iops, bps: limits.bps };
    this.apply();
  }

  /** Change the VM's share of the host disk (0: none). @throws RangeError for a negative or non-finite limit. */
  setShare(limits: IoLimits): void {
    checkLimits(limits);
    this.shared = { iops: limits.iops, bps: limits.bps };
    this.apply();
  }

  private apply(): void {
    this.limits = { iops: tighter(this.user.iops, this.shared.iops), bps: tighter(this.user.bps, this.shared.bps) };
    this.ops.fill(Math.max(1, this.limits.iops * IO_BURST_SECONDS));
    this.bytes.fill(Math.max(1, this.limits.bps * IO_BURST_SECONDS));
  }

  /** ms before the next request may start (0: now). */
  delayMs(): number {
    const { iops, bps } = this.limits;
    let wait = 0;
    if (iops > 0) {
      this.ops.refill(iops, Math.max(1, iops * IO_BURST_SECONDS));
      wait = Math.max(wait, this.ops.waitMs(iops));
    }
    if (bps > 0) {
      this.bytes.refill(bps, Math.max(1, bps * IO_BURST_SECONDS));
      wait = Math.max(wait, this.bytes.waitMs(bps));
    }
    if (wait > 0) {
      this.throttled++;
      this.waitingSince ??= this.now();
    }
    return wait;
  }

  /** Nothing waits any more (the device was reset): the wait ends uncounted. */
  cancelWait(): void {
    this.waitingSince = null;
  }

  /**
   * A request of `bytes` was served, from `startedAt` (this limiter's clock) until now:
   * take its tokens and meter it.
   */
  charge(bytes: number, startedAt?: number): void {
    if (this.limits.iops > 0) this.ops.tokens -= 1;
    if (this.limits.bps > 0) this.bytes.tokens -= bytes;
    const m = this.meter;
    m.ops++;
    m.bytes += bytes;
    const t = this.now();
    if (startedAt !== undefined) m.serviceMs += Math.max(0, t - startedAt);
    if (this.waitingSince !== null) {
      m.waitMs += Math.max(0, (startedAt ?? t) - this.waitingSince);
      this.waitingSince = null;
    }
  }
}
