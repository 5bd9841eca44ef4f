/**
 * Disk I/O limits of one VM (`--disk-iops`, `--disk-bps`), shared by all its disks: two
 * token buckets, as Firecracker's block rate limiter (operations and bytes per second),
 * each {@link IO_BURST_SECONDS} deep. A request may start while neither bucket is in
 * debt, and then takes its operation and bytes (possibly into debt), so requests of any
 * size pass and the averages hold. The limits can change at any time.
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

/** The limiter; see the file comment. */
export class IoLimiter {
  private limits: IoLimits = { iops: 0, bps: 0 };
  private readonly ops: TokenBucket;
  private readonly bytes: TokenBucket;
  /** Times a request found a bucket in debt and had to wait. */
  throttled = 0;

  /**
   * @param limits the starting limits
   * @param now the clock in ms (default performance.now)
   * @throws RangeError for a negative or non-finite limit
   */
  constructor(limits: IoLimits, private readonly now: () => number = () => performance.now()) {
    this.ops = new TokenBucket(now);
    this.bytes = new TokenBucket(now);
    this.set(limits);
  }

  /** The limits now. */
  get current(): IoLimits { return { ...this.limits }; }

  /** True when any limit is set. */
  get active(): boolean { return this.limits.iops > 0 || this.limits.bps > 0; }

  /** Change the limits (the buckets start full). @throws RangeError for a negative or non-finite limit. */
  set(limits: IoLimits): void {
    for (const [k, v] of Object.entries(limits)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`disk ${k} limit ${v}: expected a number >= 0`);
    }
    this.limits = { iops: limits.iops, bps: limits.bps };
    this.ops.fill(Math.max(1, limits.iops * IO_BURST_SECONDS));
    this.bytes.fill(Math.max(1, limits.bps * IO_BURST_SECONDS));
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
    if (wait > 0) this.throttled++;
    return wait;
  }

  /** A request of `bytes` started: take its tokens. */
  charge(bytes: number): void {
    if (this.limits.iops > 0) this.ops.tokens -= 1;
    if (this.limits.bps > 0) this.bytes.tokens -= bytes;
  }
}
