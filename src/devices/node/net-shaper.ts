/**
 * A {@link NetBackend} that sits between a network card and its link, meters the traffic
 * and holds it to a bandwidth cap.
 *
 * - Metering: frames and bytes each way (Ethernet frame bytes, no virtio header; sent
 *   frames counted after segmentation). The shaper outlives the card: a guest reboot
 *   attaches a new card to the same shaper, so the counters cover the whole VM process.
 * - Shaping: with a rate set, each direction has its own token bucket of `rate` bytes/s
 *   and a depth of {@link BURST_SECONDS} of traffic (at least one largest frame). A frame
 *   is passed when the bucket is not empty and may take it below zero (the debt delays
 *   the next one), so frames of any size pass and the average stays at the rate.
 *   Transmit: `send` answers "congested" while the bucket is in debt and calls the card's
 *   `writable` when it has refilled. Receive: a frame that arrives while the bucket is in
 *   debt is refused, the link holds it and stops reading (the peer's TCP slows down, as
 *   with a full receive ring), and is resumed when the bucket has refilled.
 * - The rate can change at any time ({@link setRate}); a change takes effect at the next
 *   frame.
 */
import type { NetBackend, NetPort } from '../bus.js';
import { MAX_FRAME_BYTES } from '../net/frame.js';
import { TokenBucket } from '../token-bucket.js';

/** Depth of each token bucket, in seconds of traffic at the rate. */
export const BURST_SECONDS = 0.05;

/** Traffic counters of one card (frames and Ethernet frame bytes). */
export interface NetCounters {
  /** Frames and bytes delivered to the guest. */
  rxPackets: number;
  rxBytes: number;
  /** Frames and bytes the guest sent, handed to the link. */
  txPackets: number;
  txBytes: number;
}

/** Options of {@link NetShaper}. */
export interface NetShaperOptions {
  /** Bandwidth cap in Mbit/s (10^6 bits/s) for each direction; 0 or absent: none. */
  rateMbit?: number;
  /** Clock in ms (default `performance.now`); for tests. */
  now?: () => number;
}

/** Meters and shapes the frames between a card and its link. */
export class NetShaper implements NetBackend, NetPort {
  /** Counters since the shaper was made. */
  readonly counters: NetCounters = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 };
  private port: NetPort | null = null;
  /** bytes/s; 0 = no cap */
  private rate = 0;
  private readonly tx: TokenBucket;
  private readonly rx: TokenBucket;
  /** The card was told "congested" because of the tx bucket (not the link). */
  private txWaiting = false;
  /** The link holds a frame because of the rx bucket. */
  private rxWaiting = false;
  /** The card itself had no receive buffers: the link waits for its `resume`. */
  private cardFull = false;
  /** The link itself is congested: the card waits for the link's `writable`. */
  private linkFull = false;
  private txTimer: NodeJS.Timeout | null = null;
  private rxTimer: NodeJS.Timeout | null = null;

  /** @throws RangeError for a rate that is not a finite number >= 0. */
  constructor(private readonly link: NetBackend, options: NetShaperOptions = {}) {
    const now = options.now ?? (() => performance.now());
    this.tx = new TokenBucket(now);
    this.rx = new TokenBucket(now);
    this.setRate(options.rateMbit ?? 0);
  }

  /** The cap in Mbit/s (0: none). */
  get rateMbit(): number { return (this.rate * 8) / 1e6; }

  /**
   * Set the cap (Mbit/s each way; 0 removes it). Buckets start full at the new rate.
   * @throws RangeError for a rate that is not a finite number >= 0.
   */
  setRate(mbit: number): void {
    if (!Number.isFinite(mbit) || mbit < 0) throw new RangeError(`network rate must be a number of Mbit/s >= 0, got ${mbit}`);
    this.rate = (mbit * 1e6) / 8;
    this.tx.fill(this.depth);
    this.rx.fill(this.depth);
    // whatever waited on a bucket may go now
    this.wakeTx();
    this.wakeRx();
  }

  private get depth(): number { return Math.max(MAX_FRAME_BYTES, this.rate * BURST_SECONDS); }

  // ------------------------------------------------------------ NetBackend (card side)

  /** A card attaches (again, after a guest reboot): the link delivers to it through the shaper. */
  attach(port: NetPort): void {
    this.port = port;
    this.cardFull = false;
    this.linkFull = false;
    this.link.attach(this);
  }

  /** A frame from the guest. */
  send(frame: Uint8Array): boolean {
    this.counters.txPackets++;
    this.counters.txBytes += frame.length;
    const linkOk = this.link.send(frame);
    if (!linkOk) this.linkFull = true;
    if (this.rate > 0) {
      this.tx.refill(this.rate, this.depth);
      this.tx.tokens -= frame.length;
      if (this.tx.tokens < 0) {
        this.txWaiting = true;
        this.armTx();
        return false;
      }
    }
    return linkOk;
  }

  /** The card has receive buffers again. */
  resume(): void {
    this.cardFull = false;
    if (!this.rxWaiting) this.link.resume();
  }

  /** Close the link and stop the timers. */
  close(): void {
    this.port = null;
    if (this.txTimer) clearTimeout(this.txTimer);
    if (this.rxTimer) clearTimeout(this.rxTimer);
    this.txTimer = this.rxTimer = null;
    this.link.close();
  }

  // ---------------------------------------------------------------- NetPort (link side)

  /** A frame from the network. */
  receive(frame: Uint8Array): boolean {
    const port = this.port;
    if (!port) return true; // no card: lost, as on a wire with no receiver
    if (this.rate > 0) {
      this.rx.refill(this.rate, this.depth);
      if (this.rx.tokens < 0) {
        this.rxWaiting = true;
        this.armRx();
        return false;
      }
    }
    if (!port.receive(frame)) {
      this.cardFull = true;
      return false;
    }
    this.counters.rxPackets++;
    this.counters.rxBytes += frame.length;
    if (this.rate > 0) this.rx.tokens -= frame.length;
    return true;
  }

  /** The link takes frames again. */
  writable(): void {
    this.linkFull = false;
    if (!this.txWaiting) this.port?.writable();
  }

  // ------------------------------------------------------------------------ timers

  private armTx(): void {
    if (this.txTimer) return;
    this.txTimer = setTimeout(() => { this.txTimer = null; this.wakeTx(); }, this.tx.waitMs(this.rate));
  }

  private armRx(): void {
    if (this.rxTimer) return;
    this.rxTimer = setTimeout(() => { this.rxTimer = null; this.wakeRx(); }, this.rx.waitMs(this.rate));
  }

  private wakeTx(): void {
    if (!this.txWaiting) return;
    if (this.rate > 0) {
      this.tx.refill(this.rate, this.depth);
      if (this.tx.tokens < 0) return this.armTx();
    }
    this.txWaiting = false;
    if (!this.linkFull) this.port?.writable();
  }

  private wakeRx(): void {
    if (!this.rxWaiting) return;
    if (this.rate > 0) {
      this.rx.refill(this.rate, this.depth);
      if (this.rx.tokens < 0) return this.armRx();
    }
    this.rxWaiting = false;
    if (!this.cardFull) this.link.resume();
  }
}
