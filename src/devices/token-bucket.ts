/**
 * A token bucket, as Firecracker's rate limiter and Linux's tbf shape traffic: tokens
 * (bytes, or operations) flow in at a rate up to a depth, work takes them out and may
 * leave the bucket in debt, which delays the next piece of work. Imports nothing from
 * Node: the clock is given.
 */

/** One bucket; `tokens` may go below zero (debt). Rates in tokens per second. */
export class TokenBucket {
  tokens = 0;
  private at: number;
  /** @param now the clock, in ms */
  constructor(private readonly now: () => number) { this.at = now(); }

  /** Full: `depth` tokens, counted from now. */
  fill(depth: number): void {
    this.tokens = depth;
    this.at = this.now();
  }

  /** Refill for the time since the last call, at `rate` tokens/s, up to `depth` tokens. */
  refill(rate: number, depth: number): void {
    const t = this.now();
    this.tokens = Math.min(depth, this.tokens + ((t - this.at) / 1000) * rate);
    this.at = t;
  }

  /** ms until the bucket is no longer in debt at `rate` tokens/s (0 if it is not). */
  waitMs(rate: number): number {
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / rate) * 1000);
  }
}
