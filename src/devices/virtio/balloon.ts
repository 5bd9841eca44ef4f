/**
 * virtio-balloon (virtio-v1.2-cs01 §5.5 "Traditional Memory Balloon Device"), with the
 * statistics queue (VIRTIO_BALLOON_F_STATS_VQ) and free page reporting
 * (VIRTIO_BALLOON_F_PAGE_REPORTING). DEFLATE_ON_OOM is offered only when asked for:
 * without it Linux takes ballooned pages out of `MemTotal`, which is what a VM whose
 * memory is resized while it runs wants (the host's policy, not the guest, prevents OOM).
 *
 * Virtqueues (§5.5.2), in the order Linux's virtio_balloon numbers them: 0 inflateq,
 * 1 deflateq, then statsq if STATS_VQ was negotiated, then reporting_vq if
 * PAGE_REPORTING was (FREE_PAGE_HINT is not offered, so its queue never exists).
 *
 * Configuration space (§5.5.4), little-endian: `num_pages` (le32, the target in 4 KiB
 * pages, written by the device) at 0, `actual` (le32, pages in the balloon, written by
 * the driver) at 4, `free_page_hint_cmd_id` at 8 and `poison_val` at 12 (both 0 here).
 *
 * Every page the guest hands over (an inflated PFN, or a range on the reporting queue)
 * is given back to the host at once through {@link GuestMemory.discard}: it reads as
 * zeros when the guest touches it again, as on QEMU and Firecracker. Deflated pages need
 * nothing (MUST_TELL_HOST is not offered: the guest may reuse them at once, §5.5.6.1).
 *
 * Hostile input: PFNs and reported ranges outside RAM are skipped and counted; reported
 * ranges are shrunk to whole 4 KiB pages; inflate/deflate buffers are read only up to
 * {@link VIRTIO_BALLOON_MAX_BUFFER_BYTES}; a structurally broken queue sets
 * DEVICE_NEEDS_RESET.
 */
import type { MmioWidth } from '../bus.js';
import { VIRTIO_ID_BALLOON, readConfigBytes, type VirtioDevice, type VirtioDeviceContext } from './device.js';
import type { DescriptorChain, Virtqueue } from './queue.js';

/** Feature bits (§5.5.3), as masks. */
export const VIRTIO_BALLOON_F_MUST_TELL_HOST = 1n << 0n;
export const VIRTIO_BALLOON_F_STATS_VQ = 1n << 1n;
export const VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 1n << 2n;
export const VIRTIO_BALLOON_F_FREE_PAGE_HINT = 1n << 3n;
export const VIRTIO_BALLOON_F_PAGE_POISON = 1n << 4n;
export const VIRTIO_BALLOON_F_PAGE_REPORTING = 1n << 5n;

/** The balloon's page: PFNs on the inflate and deflate queues count 4 KiB pages (§5.5.6). */
export const VIRTIO_BALLOON_PFN_SHIFT = 12;
export const VIRTIO_BALLOON_PAGE_BYTES = 1 << VIRTIO_BALLOON_PFN_SHIFT;

/** Statistic tags (§5.5.6.3; 10..15 from Linux's include/uapi/linux/virtio_balloon.h). */
export const VIRTIO_BALLOON_S_SWAP_IN = 0;
export const VIRTIO_BALLOON_S_SWAP_OUT = 1;
export const VIRTIO_BALLOON_S_MAJFLT = 2;
export const VIRTIO_BALLOON_S_MINFLT = 3;
export const VIRTIO_BALLOON_S_MEMFREE = 4;
export const VIRTIO_BALLOON_S_MEMTOT = 5;
export const VIRTIO_BALLOON_S_AVAIL = 6;
export const VIRTIO_BALLOON_S_CACHES = 7;
export const VIRTIO_BALLOON_S_HTLB_PGALLOC = 8;
export const VIRTIO_BALLOON_S_HTLB_PGFAIL = 9;
export const VIRTIO_BALLOON_S_OOM_KILL = 10;
export const VIRTIO_BALLOON_S_ALLOC_STALL = 11;
export const VIRTIO_BALLOON_S_ASYNC_SCAN = 12;
export const VIRTIO_BALLOON_S_DIRECT_SCAN = 13;
export const VIRTIO_BALLOON_S_ASYNC_RECLAIM = 14;
export const VIRTIO_BALLOON_S_DIRECT_RECLAIM = 15;

/** Names of the statistics, indexed by tag. Memory figures are in bytes, the others are counts. */
export const BALLOON_STAT_NAMES = [
  'swapIn', 'swapOut', 'majorFaults', 'minorFaults', 'freeMemory', 'totalMemory', 'availableMemory', 'diskCaches',
  'hugetlbAllocations', 'hugetlbFailures', 'oomKills', 'allocStalls', 'asyncScans', 'directScans', 'asyncReclaims', 'directReclaims',
] as const;

/** The guest's memory statistics (§5.5.6.3): the tags it sent, by name. Bytes for memory figures. */
export type BalloonStats = Partial<Record<(typeof BALLOON_STAT_NAMES)[number], number>>;

/**
 * Largest inflate or deflate buffer read, in bytes (Linux sends at most 256 PFNs, 1 KiB,
 * per buffer): bounds what one hostile request makes the device thread do.
 */
export const VIRTIO_BALLOON_MAX_BUFFER_BYTES = 64 * 1024;
/** Largest statistics buffer read: 64 entries of 10 bytes (Linux sends 16 at most). */
const MAX_STATS_BYTES = 640;
const STAT_ENTRY_BYTES = 10;
const CONFIG_SIZE = 16;
const NUM_QUEUES = 4;

/** Counters for `vm info` and metering. */
export interface VirtioBalloonMetrics {
  /** PFNs received on the inflate queue (valid ones). */
  inflatedPages: number;
  /** PFNs received on the deflate queue (valid ones). */
  deflatedPages: number;
  /** Free page reports served, and the bytes they covered. */
  reports: number;
  reportedBytes: number;
  /** Bytes given back to the host (inflated plus reported). */
  discardedBytes: number;
  /** PFNs or reported ranges outside RAM, skipped. */
  invalid: number;
  /** Statistics buffers received from the driver. */
  statsUpdates: number;
  /** Times the device entered DEVICE_NEEDS_RESET. */
  needsReset: number;
}

/** Options for {@link VirtioBalloon}. */
export interface VirtioBalloonOptions {
  /** Initial target: pages (4 KiB) the guest should give up (default 0). */
  targetPages?: number;
  /** Offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM (default false). */
  deflateOnOom?: boolean;
  /** Offer VIRTIO_BALLOON_F_PAGE_REPORTING (default true). */
  pageReporting?: boolean;
  /** QueueNumMax of every queue, a power of 2 in 32..32768 (default 128; Linux's page reporting needs 32). */
  queueSize?: number;
  /** Told of each statistics update from the guest. */
  onStats?: (stats: BalloonStats) => void;
  /** Told when the driver writes `actual` (pages in the balloon). */
  onActual?: (pages: number) => void;
}

/** Saved state of a {@link VirtioBalloon} (plain JSON). */
export interface VirtioBalloonState {
  targetPages: number;
  actualPages: number;
  metrics: VirtioBalloonMetrics;
}

function newMetrics(): VirtioBalloonMetrics {
  return { inflatedPages: 0, deflatedPages: 0, reports: 0, reportedBytes: 0, discardedBytes: 0, invalid: 0, statsUpdates: 0, needsReset: 0 };
}

type Role = 'inflate' | 'deflate' | 'stats' | 'reporting';

/**
 * The balloon device. Host it in a `VirtioMmio` transport; the host moves the target
 * with {@link setTargetPages} and asks for fresh statistics with {@link requestStats}.
 */
export class VirtioBalloon implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BALLOON;
  readonly numQueues = NUM_QUEUES;
  readonly features: bigint;
  /** Live counters (mutated in place). */
  readonly metrics: VirtioBalloonMetrics = newMetrics();
  private readonly queueSize: number;
  private target: number;
  private actual = 0;
  private ctx: VirtioDeviceContext | null = null;
  /** Queue index -> role, for the features the driver accepted. */
  private roles: Role[] = [];
  /** The statistics buffer the device holds until it wants fresh figures (§5.5.6.3), or null. */
  private statsHead: number | null = null;
  private stats: BalloonStats | null = null;
  private statsAtMs = 0;
  /** `actual` when the last statistics came. */
  private statsActualPages = 0;

  /** @throws RangeError for a bad `queueSize` or `targetPages`. */
  constructor(private readonly options: VirtioBalloonOptions = {}) {
    const qs = options.queueSize ?? 128;
    if (!Number.isInteger(qs) || qs < 32 || qs > 32768 || (qs & (qs - 1)) !== 0) {
      throw new RangeError(`virtio-balloon queueSize must be a power of 2 in 32..32768, got ${qs}`);
    }
    this.queueSize = qs;
    this.target = checkPages(options.targetPages ?? 0);
    let f = VIRTIO_BALLOON_F_STATS_VQ;
    if (options.pageReporting ?? true) f |= VIRTIO_BALLOON_F_PAGE_REPORTING;
    if (options.deflateOnOom) f |= VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
    this.features = f;
  }

  /** The target (`num_pages`): 4 KiB pages the guest is asked to give up. */
  get targetPages(): number { return this.target; }
  /** Pages the driver says are in the balloon (`actual`). */
  get actualPages(): number { return this.actual; }
  /** True once a driver has set DRIVER_OK (and not reset the device since). */
  get active(): boolean { return this.ctx !== null; }

  /**
   * Move the target (§5.5.6.1: the device writes `num_pages` and sends a configuration
   * change notification; the driver inflates or deflates towards it).
   * @throws RangeError unless `pages` is a whole number in 0..2^32-1.
   */
  setTargetPages(pages: number): void {
    this.target = checkPages(pages);
    this.ctx?.configChanged();
  }

  /**
   * The last statistics the guest sent, when they came (ms since the epoch, Date.now()) and
   * the pages its balloon held then (the driver's `actual`: the statistics describe the guest
   * at that size, which may have moved since), or null before the first.
   */
  lastStats(): { stats: BalloonStats; atMs: number; actualPages: number } | null {
    return this.stats ? { stats: { ...this.stats }, atMs: this.statsAtMs, actualPages: this.statsActualPages } : null;
  }

  /**
   * Ask the guest for fresh statistics (§5.5.6.3): hand the held statistics buffer back;
   * the driver refills and re-queues it, and `onStats` is told. Returns false when no
   * buffer is held (no driver, STATS_VQ not negotiated, or a request still pending).
   */
  requestStats(): boolean {
    const ctx = this.ctx;
    const q = this.queueOf('stats');
    if (!ctx || q < 0 || this.statsHead === null) return false;
    const vq = ctx.queue(q);
    if (!vq) return false;
    try {
      vq.pushUsed(this.statsHead, 0);
    } catch (e) {
      this.fail(ctx, e);
      return false;
    }
    this.statsHead = null;
    ctx.usedBuffers(q);
    return true;
  }

  /** QueueNumMax (§4.2.2): `queueSize` for queues 0..3, 0 beyond. */
  queueMaxSize(index: number): number {
    return index >= 0 && index < NUM_QUEUES ? this.queueSize : 0;
  }

  /** Config space read (§5.5.4), little-endian, any width. */
  readConfig(offset: number, width: MmioWidth): number {
    const c = new Uint8Array(CONFIG_SIZE);
    const v = new DataView(c.buffer);
    v.setUint32(0, this.target, true);
    v.setUint32(4, this.actual, true);
    return readConfigBytes(c, offset, width);
  }

  /** Config space write: only `actual` (bytes 4..7) is writable, by the driver. */
  writeConfig(offset: number, width: MmioWidth, value: number): void {
    if (offset < 4 || offset + width > 8) return;
    const c = new DataView(new ArrayBuffer(4));
    c.setUint32(0, this.actual, true);
    for (let i = 0; i < width; i++) c.setUint8(offset - 4 + i, (value >>> (8 * i)) & 0xff);
    this.actual = c.getUint32(0, true);
    this.options.onActual?.(this.actual);
  }

  /**
   * DRIVER_OK: map queue indexes to roles for the negotiated features, and take the
   * statistics buffer Linux queues before DRIVER_OK (virtio_balloon.c init_vqs()).
   */
  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
    this.roles = ['inflate', 'deflate'];
    if (ctx.features & VIRTIO_BALLOON_F_STATS_VQ) this.roles.push('stats');
    if (ctx.features & VIRTIO_BALLOON_F_PAGE_REPORTING) this.roles.push('reporting');
    this.statsHead = null;
    for (let q = 0; q < this.roles.length; q++) this.queueNotify(q);
  }

  /** Device reset (§2.4): forget the driver; the balloon is empty again for the next one. */
  reset(): void {
    this.ctx = null;
    this.roles = [];
    this.statsHead = null;
    this.actual = 0;
  }

  /** Serve the buffers available on queue `index`. */
  queueNotify(index: number): void {
    const ctx = this.ctx;
    const role = this.roles[index];
    if (!ctx || !role) return;
    const vq = ctx.queue(index);
    if (!vq) return;
    let pushed = false;
    try {
      for (;;) {
        const chain = vq.pop();
        if (!chain) break;
        if (role === 'stats') {
          if (this.takeStats(vq, chain)) pushed = true;
          continue;
        }
        if (role === 'reporting') this.report(vq, chain);
        else this.pfns(vq, chain, role === 'inflate');
        vq.pushUsed(chain.head, 0);
        pushed = true;
      }
    } catch (e) {
      this.fail(ctx, e);
      return;
    }
    if (pushed) ctx.usedBuffers(index);
  }

  /** Serializable state (see {@link VirtioBalloonState}). */
  save(): VirtioBalloonState {
    return { targetPages: this.target, actualPages: this.actual, metrics: { ...this.metrics } };
  }

  /** Restore from {@link save}; malformed fields read as 0. */
  restore(state: unknown): void {
    const s = state as Partial<VirtioBalloonState> | null;
    const num = (x: unknown) => (typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffffffff ? x : 0);
    this.target = num(s?.targetPages);
    this.actual = num(s?.actualPages);
    const m = newMetrics();
    for (const k of Object.keys(m) as (keyof VirtioBalloonMetrics)[]) {
      const v = s?.metrics?.[k];
      if (typeof v === 'number' && Number.isFinite(v)) m[k] = v;
    }
    Object.assign(this.metrics, m);
  }

  // ---- internals ----

  private queueOf(role: Role): number {
    return this.roles.indexOf(role);
  }

  private fail(ctx: VirtioDeviceContext, e: unknown): void {
    this.metrics.needsReset++;
    ctx.needsReset(`virtio-balloon: ${e instanceof Error ? e.message : String(e)}`);
  }

  /** Inflate or deflate (§5.5.6): an array of le32 PFNs in the device-readable part. */
  private pfns(vq: Virtqueue, chain: DescriptorChain, inflate: boolean): void {
    const len = Math.min(chain.readableLength, VIRTIO_BALLOON_MAX_BUFFER_BYTES) & ~3;
    const bytes = len > 0 ? vq.readBuffers(chain.readable, 0, len) : null;
    if (!bytes) return;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const mem = vq.mem;
    const pages: number[] = [];
    for (let i = 0; i < len; i += 4) {
      const gpa = view.getUint32(i, true) * VIRTIO_BALLOON_PAGE_BYTES;
      if (gpa < mem.ramBase || gpa + VIRTIO_BALLOON_PAGE_BYTES > mem.ramBase + mem.ramSize) {
        this.metrics.invalid++;
        continue;
      }
      pages.push(gpa);
    }
    if (!inflate) {
      this.metrics.deflatedPages += pages.length;
      return;
    }
    this.metrics.inflatedPages += pages.length;
    pages.sort((a, b) => a - b);
    // give back runs of adjacent pages with one call each
    for (let i = 0; i < pages.length;) {
      let j = i + 1;
      while (j < pages.length && pages[j] <= pages[j - 1] + VIRTIO_BALLOON_PAGE_BYTES) j++;
      const start = pages[i];
      const end = pages[j - 1] + VIRTIO_BALLOON_PAGE_BYTES;
      mem.discard(start, end - start);
      this.metrics.discardedBytes += end - start;
      i = j;
    }
  }

  /**
   * Free page reporting (virtio 1.2 §5.5.6.6 in its draft form, Linux's
   * virtballoon_free_page_report()): each device-writable descriptor is a free range the
   * device may discard; nothing is written back.
   */
  private report(vq: Virtqueue, chain: DescriptorChain): void {
    const mem = vq.mem;
    this.metrics.reports++;
    for (const d of chain.writable) {
      const start = Math.ceil(d.addr / VIRTIO_BALLOON_PAGE_BYTES) * VIRTIO_BALLOON_PAGE_BYTES;
      const end = Math.floor((d.addr + d.len) / VIRTIO_BALLOON_PAGE_BYTES) * VIRTIO_BALLOON_PAGE_BYTES;
      if (end <= start) continue;
      if (start < mem.ramBase || end > mem.ramBase + mem.ramSize) {
        this.metrics.invalid++;
        continue;
      }
      mem.discard(start, end - start);
      this.metrics.reportedBytes += end - start;
      this.metrics.discardedBytes += end - start;
    }
  }

  /**
   * A statistics buffer (§5.5.6.3): read its `{ le16 tag; le64 val }` entries and hold it.
   * A second buffer while one is held breaks the protocol; the older one is given back
   * (as QEMU does), and true is returned (a used buffer was added).
   */
  private takeStats(vq: Virtqueue, chain: DescriptorChain): boolean {
    const gaveBack = this.statsHead !== null;
    if (this.statsHead !== null) vq.pushUsed(this.statsHead, 0);
    this.statsHead = chain.head;
    const len = Math.min(chain.readableLength, MAX_STATS_BYTES);
    const n = Math.floor(len / STAT_ENTRY_BYTES);
    const bytes = n > 0 ? vq.readBuffers(chain.readable, 0, n * STAT_ENTRY_BYTES) : null;
    if (!bytes) return gaveBack;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const stats: BalloonStats = {};
    for (let i = 0; i < n; i++) {
      const tag = view.getUint16(i * STAT_ENTRY_BYTES, true);
      const name = BALLOON_STAT_NAMES[tag];
      if (!name) continue;
      const v = view.getBigUint64(i * STAT_ENTRY_BYTES + 2, true);
      stats[name] = v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
    }
    this.stats = stats;
    this.statsAtMs = Date.now();
    this.statsActualPages = this.actual;
    this.metrics.statsUpdates++;
    this.options.onStats?.({ ...stats });
    return gaveBack;
  }
}

function checkPages(pages: number): number {
  if (!Number.isInteger(pages) || pages < 0 || pages > 0xffffffff) throw new RangeError(`balloon target ${pages}: expected a whole number of pages in 0..2^32-1`);
  return pages;
}
