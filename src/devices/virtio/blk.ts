/**
 * virtio-blk device (virtio-v1.2-cs01 §5.2 "Block Device"), one request queue.
 *
 * Offered features (§5.2.3): VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE,
 * VIRTIO_BLK_F_FLUSH, and VIRTIO_BLK_F_RO for a readonly backend.
 *
 * Configuration space (§5.2.4), little-endian: capacity (le64, 512-byte
 * sectors) at 0, size_max (le32) at 8, seg_max (le32) at 12, geometry at 16,
 * blk_size (le32) at 20, topology at 24, writeback at 32, ... up to 72 bytes. Read-only.
 *
 * Requests (§5.2.6): `{ le32 type; le32 reserved; le64 sector; u8 data[]; u8 status; }`
 * framed any way the driver likes (§2.6.4): the header is the first 16 bytes
 * of the device-readable part, the status is the last byte of the
 * device-writable part. Supported types: IN, OUT, FLUSH, GET_ID; others get
 * UNSUPP. Errors:
 *
 * - IN/OUT with a data length that is not a multiple of 512, reaching past
 *   the capacity, or over VIRTIO_BLK_MAX_REQUEST_BYTES: IOERR.
 * - A request of more than seg_max + 2 descriptors (the advertised seg_max data
 *   segments plus header and status; indirect tables count by their entries): IOERR.
 * - OUT on a readonly backend: IOERR, the backend is not called (§5.2.6.2).
 * - A header shorter than 16 bytes or any buffer outside guest RAM: IOERR,
 *   checked before any backend access, so a malformed request never writes to
 *   the backend.
 * - A backend exception: IOERR.
 * - No writable status byte (or one outside RAM), or a structurally broken
 *   chain or ring (bad index, loop, bad indirect table): the device enters
 *   DEVICE_NEEDS_RESET; nothing more is processed until the driver resets it.
 */
import type { BlockBackend, MmioWidth } from '../bus.js';
import type { IoLimiter } from '../io-limiter.js';
import { VIRTIO_ID_BLOCK, readConfigBytes, type VirtioDevice, type VirtioDeviceContext } from './device.js';
import type { DescriptorChain, Virtqueue } from './queue.js';

/** Feature bits (§5.2.3), as masks. */
export const VIRTIO_BLK_F_SIZE_MAX = 1n << 1n;
export const VIRTIO_BLK_F_SEG_MAX = 1n << 2n;
export const VIRTIO_BLK_F_GEOMETRY = 1n << 4n;
export const VIRTIO_BLK_F_RO = 1n << 5n;
export const VIRTIO_BLK_F_BLK_SIZE = 1n << 6n;
export const VIRTIO_BLK_F_FLUSH = 1n << 9n;
export const VIRTIO_BLK_F_TOPOLOGY = 1n << 10n;
export const VIRTIO_BLK_F_CONFIG_WCE = 1n << 11n;
export const VIRTIO_BLK_F_MQ = 1n << 12n;
export const VIRTIO_BLK_F_DISCARD = 1n << 13n;
export const VIRTIO_BLK_F_WRITE_ZEROES = 1n << 14n;

/** Request types (§5.2.6). */
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_GET_LIFETIME = 10;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;

/** Request status values (§5.2.6). */
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

/** Sector size of the virtio-blk protocol (sector numbers and capacity are in these units). */
export const VIRTIO_BLK_SECTOR_SIZE = 512;
/** Length of the GET_ID serial string (§5.2.6). */
export const VIRTIO_BLK_ID_BYTES = 20;

const CONFIG_SIZE = 72;
const HEADER_SIZE = 16;
/**
 * Largest data transfer of one IN/OUT request, in bytes. Linux sends at most
 * max_sectors_kb (1280 KiB by default); the cap stops a hostile driver from making
 * one request move the whole disk while this VM's device thread waits.
 */
export const VIRTIO_BLK_MAX_REQUEST_BYTES = 64 << 20;

/** I/O counters for metering. Bytes count only successful transfers. */
export interface VirtioBlkMetrics {
  /** Bytes read from the backend into guest memory (IN). */
  readBytes: number;
  /** Bytes written from guest memory to the backend (OUT). */
  writeBytes: number;
  readRequests: number;
  writeRequests: number;
  flushRequests: number;
  /** Requests answered with VIRTIO_BLK_S_IOERR. */
  ioErrors: number;
  /** Requests answered with VIRTIO_BLK_S_UNSUPP. */
  unsupported: number;
  /** Times the device entered DEVICE_NEEDS_RESET. */
  needsReset: number;
}

/** Options for {@link VirtioBlk}. */
export interface VirtioBlkOptions {
  /** GET_ID serial, ASCII; at most 20 bytes are used (default: empty). */
  serial?: string;
  /** QueueNumMax, a power of 2 in 4..32768 (default 256). seg_max is this minus 2. */
  queueSize?: number;
  /**
   * I/O limits (shared by the VM's disks): while a bucket is in debt, requests wait in
   * the queue and a timer serves them when it has refilled.
   */
  limiter?: IoLimiter;
}

/** Saved state of a {@link VirtioBlk} (plain JSON). Requests complete synchronously, so only counters persist. */
export interface VirtioBlkState {
  metrics: VirtioBlkMetrics;
}

function newMetrics(): VirtioBlkMetrics {
  return { readBytes: 0, writeBytes: 0, readRequests: 0, writeRequests: 0, flushRequests: 0, ioErrors: 0, unsupported: 0, needsReset: 0 };
}

/** Outcome of one request: the status byte and the bytes written before it. */
interface Outcome {
  status: number;
  written: number;
}

const IOERR: Outcome = { status: VIRTIO_BLK_S_IOERR, written: 0 };

/**
 * virtio-blk over a synchronous {@link BlockBackend}. Host it in a
 * `VirtioMmio` transport; requests are served inside `queueNotify`.
 * The capacity is `floor(backend.size / 512)` sectors.
 */
export class VirtioBlk implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly numQueues = 1;
  readonly features: bigint;
  /** Live counters (mutated in place; read them any time). */
  readonly metrics: VirtioBlkMetrics = newMetrics();
  private readonly config = new Uint8Array(CONFIG_SIZE);
  private readonly configView = new DataView(this.config.buffer);
  private readonly serial = new Uint8Array(VIRTIO_BLK_ID_BYTES);
  private readonly queueSize: number;
  private capacityBytes: number;
  private ctx: VirtioDeviceContext | null = null;
  private readonly limiter: IoLimiter | undefined;
  /** Serves the queue again once the limiter allows (set while requests wait). */
  private retry: ReturnType<typeof setTimeout> | null = null;

  /**
   * @param backend the disk; its `readonly` flag decides VIRTIO_BLK_F_RO.
   * @throws RangeError for a bad `queueSize`.
   */
  constructor(private readonly backend: BlockBackend, options: VirtioBlkOptions = {}) {
    const qs = options.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 4 || qs > 32768 || (qs & (qs - 1)) !== 0) {
      throw new RangeError(`virtio-blk queueSize must be a power of 2 in 4..32768, got ${qs}`);
    }
    this.queueSize = qs;
    this.limiter = options.limiter;
    const sectors = Math.floor(backend.size / VIRTIO_BLK_SECTOR_SIZE);
    this.capacityBytes = sectors * VIRTIO_BLK_SECTOR_SIZE;
    let f = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH;
    if (backend.readonly) f |= VIRTIO_BLK_F_RO;
    this.features = f;
    const c = this.configView;
    c.setBigUint64(0, BigInt(sectors), true); // capacity
    c.setUint32(8, 0, true); // size_max (F_SIZE_MAX not offered)
    c.setUint32(12, qs - 2, true); // seg_max: header and status take two descriptors
    c.setUint32(20, VIRTIO_BLK_SECTOR_SIZE, true); // blk_size
    const s = options.serial ?? '';
    for (let i = 0; i < Math.min(s.length, VIRTIO_BLK_ID_BYTES); i++) this.serial[i] = s.charCodeAt(i) & 0x7f;
  }

  /** Capacity in 512-byte sectors. */
  get capacity(): number {
    return this.capacityBytes / VIRTIO_BLK_SECTOR_SIZE;
  }

  /**
   * The backend's size changed (a disk grown while the VM runs): take the new capacity
   * and send a configuration change notification (§5.2.4, §2.5), upon which Linux's
   * virtio_blk re-reads it (virtblk_config_changed) and the guest sees the new size.
   */
  resized(): void {
    const sectors = Math.floor(this.backend.size / VIRTIO_BLK_SECTOR_SIZE);
    if (sectors * VIRTIO_BLK_SECTOR_SIZE === this.capacityBytes) return;
    this.capacityBytes = sectors * VIRTIO_BLK_SECTOR_SIZE;
    this.configView.setBigUint64(0, BigInt(sectors), true);
    this.ctx?.configChanged();
  }

  /** QueueNumMax (§4.2.2): `queueSize` for queue 0, 0 for any other queue. */
  queueMaxSize(index: number): number {
    return index === 0 ? this.queueSize : 0;
  }

  /** Config space read (§5.2.4), little-endian, any width; bytes past the structure read 0. */
  readConfig(offset: number, width: MmioWidth): number {
    return readConfigBytes(this.config, offset, width);
  }

  /** The configuration space is read-only here (CONFIG_WCE is not offered): writes are ignored. */
  writeConfig(_offset: number, _width: MmioWidth, _value: number): void {}

  /** DRIVER_OK (§3.1.1): start serving requests through `ctx`. */
  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  /** Device reset (§2.4): drop the context. Metrics are kept (they meter the VM, not the driver session). */
  reset(): void {
    this.ctx = null;
    if (this.retry) { clearTimeout(this.retry); this.limiter?.cancelWait(); }
    this.retry = null;
  }

  /**
   * Serve every available request on queue 0 (§5.2.6), then notify the driver once. With a
   * limiter, only what it allows now; a timer serves the rest when its buckets refill.
   */
  queueNotify(index: number): void {
    const ctx = this.ctx;
    if (!ctx || index !== 0) return;
    const vq = ctx.queue(0);
    if (!vq) return;
    let pushed = false;
    let failure: string | null = null;
    try {
      for (;;) {
        const wait = this.limiter?.active ? this.limiter.delayMs() : 0;
        if (wait > 0) {
          this.retry ??= setTimeout(() => { this.retry = null; this.queueNotify(0); }, wait);
          break;
        }
        const chain = vq.pop();
        if (!chain) break;
        const startedAt = this.limiter?.now();
        const res = this.serve(vq, chain);
        if (typeof res === 'string') {
          failure = res;
          break;
        }
        vq.pushUsed(chain.head, res);
        pushed = true;
        // what the request moved: its data, without the header and the status byte
        this.limiter?.charge(Math.max(0, chain.readableLength - HEADER_SIZE) + Math.max(0, chain.writableLength - 1), startedAt);
      }
    } catch (e) {
      failure = e instanceof Error ? e.message : String(e);
    }
    if (pushed) ctx.usedBuffers(0);
    if (failure !== null) {
      this.metrics.needsReset++;
      ctx.needsReset(failure);
    }
  }

  /** Serializable state (see {@link VirtioBlkState}). */
  save(): VirtioBlkState {
    return { metrics: { ...this.metrics } };
  }

  /** Restore counters from {@link save}; malformed fields read as 0. */
  restore(state: unknown): void {
    const s = state as VirtioBlkState;
    const m = newMetrics();
    for (const k of Object.keys(m) as (keyof VirtioBlkMetrics)[]) {
      const v = s?.metrics?.[k];
      if (typeof v === 'number' && Number.isFinite(v)) m[k] = v;
    }
    Object.assign(this.metrics, m);
  }

  // ---- internals ----

  /**
   * Serve one request. Returns the used length (bytes written into the chain,
   * status byte included) or, when no status byte can be written, a reason
   * string for DEVICE_NEEDS_RESET.
   */
  private serve(vq: Virtqueue, chain: DescriptorChain): number | string {
    const mem = vq.mem;
    // The status byte is the last byte of the device-writable part.
    let statusAddr = -1;
    for (let i = chain.writable.length - 1; i >= 0; i--) {
      const d = chain.writable[i];
      if (d.len > 0) {
        statusAddr = d.addr + d.len - 1;
        break;
      }
    }
    if (statusAddr < 0) return `virtio-blk: request (head ${chain.head}) has no writable status byte`;
    try {
      mem.offset(statusAddr, 1);
    } catch {
      return `virtio-blk: status byte 0x${statusAddr.toString(16)} (head ${chain.head}) is outside RAM`;
    }
    let out: Outcome;
    try {
      out = this.execute(vq, chain);
    } catch {
      out = IOERR; // a backend failure
    }
    if (out.status === VIRTIO_BLK_S_IOERR) this.metrics.ioErrors++;
    else if (out.status === VIRTIO_BLK_S_UNSUPP) this.metrics.unsupported++;
    mem.writeU8(statusAddr, out.status);
    return out.written + 1;
  }

  private execute(vq: Virtqueue, chain: DescriptorChain): Outcome {
    if (chain.readable.length + chain.writable.length > this.queueSize) return IOERR; // over seg_max + 2
    const hdr = vq.readBuffers(chain.readable, 0, HEADER_SIZE);
    if (!hdr) return IOERR;
    const hv = new DataView(hdr.buffer);
    const type = hv.getUint32(0, true);
    const sector = hv.getBigUint64(8, true);
    // Data bytes the driver lets the device write: everything but the status byte.
    const writableData = chain.writableLength - 1;

    switch (type) {
      case VIRTIO_BLK_T_IN: {
        const len = writableData;
        const pos = this.checkRange(sector, len);
        if (pos < 0) return IOERR;
        const segs = vq.checkBuffers(chain.writable, 0, len);
        if (!segs) return IOERR;
        this.metrics.readRequests++;
        vq.readFromBackend(segs, this.backend, pos);
        this.metrics.readBytes += len;
        return { status: VIRTIO_BLK_S_OK, written: len };
      }
      case VIRTIO_BLK_T_OUT: {
        if (this.backend.readonly) return IOERR;
        const len = chain.readableLength - HEADER_SIZE;
        const pos = this.checkRange(sector, len);
        if (pos < 0) return IOERR;
        const segs = vq.checkBuffers(chain.readable, HEADER_SIZE, len);
        if (!segs) return IOERR;
        this.metrics.writeRequests++;
        vq.writeToBackend(segs, this.backend, pos);
        this.metrics.writeBytes += len;
        return { status: VIRTIO_BLK_S_OK, written: 0 };
      }
      case VIRTIO_BLK_T_FLUSH:
        this.metrics.flushRequests++;
        if (!this.backend.readonly) this.backend.flush();
        return { status: VIRTIO_BLK_S_OK, written: 0 };
      case VIRTIO_BLK_T_GET_ID: {
        const n = Math.min(VIRTIO_BLK_ID_BYTES, writableData);
        if (!vq.writeBuffers(chain.writable, this.serial.subarray(0, n))) return IOERR;
        return { status: VIRTIO_BLK_S_OK, written: n };
      }
      default:
        return { status: VIRTIO_BLK_S_UNSUPP, written: 0 };
    }
  }

  /**
   * Byte offset of `sector` if `len` bytes from there fit the disk, len is a whole
   * number of sectors and at most VIRTIO_BLK_MAX_REQUEST_BYTES; else -1.
   */
  private checkRange(sector: bigint, len: number): number {
    if (len < 0 || len % VIRTIO_BLK_SECTOR_SIZE !== 0 || len > VIRTIO_BLK_MAX_REQUEST_BYTES) return -1;
    const start = sector * BigInt(VIRTIO_BLK_SECTOR_SIZE);
    if (start + BigInt(len) > BigInt(this.capacityBytes)) return -1;
    return Number(start);
  }
}
