/**
 * virtio-gpu in 2D mode (virtio-v1.2-cs01 §5.7 "GPU Device"), one scanout, as Linux's
 * `virtio_gpu` DRM driver drives it (and QEMU's virtio-gpu-device answers it):
 *
 *  - feature VIRTIO_GPU_F_EDID (§5.7.3): GET_EDID answers a 128-byte EDID 1.4 block whose
 *    preferred detailed timing is the configured resolution, with standard timings for
 *    the usual smaller modes, so the guest lists modes and can change among them;
 *  - controlq (queue 0): GET_DISPLAY_INFO, GET_EDID, RESOURCE_CREATE_2D, RESOURCE_UNREF,
 *    RESOURCE_ATTACH_BACKING, RESOURCE_DETACH_BACKING, SET_SCANOUT, TRANSFER_TO_HOST_2D,
 *    RESOURCE_FLUSH (§5.7.6.7-8); anything else answers ERR_UNSPEC. A fenced request
 *    (VIRTIO_GPU_FLAG_FENCE) is answered with its fence, after it is done: commands
 *    complete in the QueueNotify that brought them;
 *  - cursorq (queue 1): UPDATE_CURSOR (a 64x64 image from a resource) and MOVE_CURSOR;
 *    no response is written (Linux queues cursor commands without one).
 *
 * **Graphics memory** (`vramBytes`, as QEMU's `max_hostmem`): the host memory of every
 * resource together (width x height x 4 bytes each) is bounded; RESOURCE_CREATE_2D past it
 * answers ERR_OUT_OF_MEMORY.
 *
 * **Hostile input** is answered with the spec's errors and never used: resource ids
 * (0, unknown, taken), formats, sizes (0, above 16384, past the budget), every rectangle
 * (inside its resource, a scanout's at least 16x16), the transfer offset and length
 * (inside the backing), backing entries (at most 16384, each inside guest RAM), the scanout
 * id. A chain too short for its command answers ERR_UNSPEC; one with no room for the
 * response header sets DEVICE_NEEDS_RESET.
 */
import type { MmioWidth } from '../bus.js';
import { readConfigBytes, serveChains, type VirtioDevice, type VirtioDeviceContext } from './device.js';
import type { DescriptorChain, Virtqueue } from './queue.js';
import type { GuestMemory } from '../guest-memory.js';

/** Device ID of a GPU (§5). */
export const VIRTIO_ID_GPU = 16;
/** Feature bits (§5.7.3). */
export const VIRTIO_GPU_F_EDID = 1n << 1n;
/** Config event: the display configuration changed (§5.7.4). */
export const VIRTIO_GPU_EVENT_DISPLAY = 1;
/** Header flag: the driver wants a fence (§5.7.6.7). */
export const VIRTIO_GPU_FLAG_FENCE = 1;

/** Command and response types (§5.7.6.7). */
export const GPU_CMD = {
  GET_DISPLAY_INFO: 0x0100, RESOURCE_CREATE_2D: 0x0101, RESOURCE_UNREF: 0x0102, SET_SCANOUT: 0x0103,
  RESOURCE_FLUSH: 0x0104, TRANSFER_TO_HOST_2D: 0x0105, RESOURCE_ATTACH_BACKING: 0x0106,
  RESOURCE_DETACH_BACKING: 0x0107, GET_CAPSET_INFO: 0x0108, GET_CAPSET: 0x0109, GET_EDID: 0x010a,
  UPDATE_CURSOR: 0x0300, MOVE_CURSOR: 0x0301,
} as const;
export const GPU_RESP = {
  OK_NODATA: 0x1100, OK_DISPLAY_INFO: 0x1101, OK_EDID: 0x1104,
  ERR_UNSPEC: 0x1200, ERR_OUT_OF_MEMORY: 0x1201, ERR_INVALID_SCANOUT_ID: 0x1202,
  ERR_INVALID_RESOURCE_ID: 0x1203, ERR_INVALID_CONTEXT_ID: 0x1204, ERR_INVALID_PARAMETER: 0x1205,
} as const;

/**
 * Pixel formats (§5.7.6.8 virtio_gpu_formats): the name is the byte order in memory. The
 * value is where red, green and blue (and alpha, or -1) sit in each 4-byte pixel.
 */
export const GPU_FORMATS: ReadonlyMap<number, readonly [number, number, number, number]> = new Map([
  [1, [2, 1, 0, 3]], // B8G8R8A8
  [2, [2, 1, 0, -1]], // B8G8R8X8 (Linux's XRGB8888)
  [3, [1, 2, 3, 0]], // A8R8G8B8
  [4, [1, 2, 3, -1]], // X8R8G8B8
  [67, [0, 1, 2, 3]], // R8G8B8A8
  [68, [3, 2, 1, -1]], // X8B8G8R8
  [121, [3, 2, 1, 0]], // A8B8G8R8
  [134, [0, 1, 2, -1]], // R8G8B8X8
] as [number, readonly [number, number, number, number]][]);

const HDR = 24;
const QUEUE_SIZE = 256;
const MAX_SCANOUTS = 16;
const MAX_BACKING_ENTRIES = 16384;
const MAX_DIMENSION = 16384;
const CURSOR_SIZE = 64;

/** A rectangle in pixels. */
export interface GpuRect { x: number; y: number; width: number; height: number }

/** Options of the device. */
export interface VirtioGpuOptions {
  /** Bytes all resources together may take (their pixels, 4 bytes each). */
  vramBytes: number;
  /** The preferred mode, in pixels (EDID and GET_DISPLAY_INFO). */
  width: number;
  height: number;
  /** The scanout's pixels changed inside `rect` (scanout coordinates): a RESOURCE_FLUSH. */
  onFlush?(rect: GpuRect): void;
  /** The scanout was set to another resource or size, or disabled. */
  onScanout?(mode: { width: number; height: number } | null): void;
  /** RESOURCE_CREATE_2D was refused: `width` x `height` (`bytes`) past the graphics memory, `usedBytes` of it taken. */
  onOutOfMemory?(refused: { width: number; height: number; bytes: number; usedBytes: number }): void;
}

/** Counters of the device (mutated in place). */
export interface VirtioGpuMetrics {
  commands: number;
  /** Commands answered with an error. */
  errors: number;
  flushes: number;
  /** Bytes copied by TRANSFER_TO_HOST_2D. */
  transferredBytes: number;
}

interface Resource {
  id: number;
  format: number;
  width: number;
  height: number;
  /** width x height x 4 bytes, in `format`. */
  pixels: Uint8Array;
  /** Guest memory backing it, in order; null when detached. */
  backing: Array<{ addr: number; len: number }> | null;
  /** Byte offset of each backing entry in the concatenation (for a binary search). */
  backingStarts: number[];
  backingBytes: number;
}

class GpuError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

const writeDtd = (e: Uint8Array, at: number, w: number, h: number): void => {
  const hblank = 160;
  const hfront = 48;
  const hsync = 32;
  const vblank = Math.max(23, Math.ceil(h * 0.035));
  const vfront = 3;
  const vsync = 6;
  const clock = Math.round(((w + hblank) * (h + vblank) * 60) / 10_000); // 10 kHz units
  const hmm = Math.round((w * 254) / 960); // ~96 dpi
  const vmm = Math.round((h * 254) / 960);
  e[at] = clock & 0xff; e[at + 1] = (clock >> 8) & 0xff;
  e[at + 2] = w & 0xff; e[at + 3] = hblank & 0xff; e[at + 4] = ((w >> 8) << 4) | (hblank >> 8);
  e[at + 5] = h & 0xff; e[at + 6] = vblank & 0xff; e[at + 7] = ((h >> 8) << 4) | (vblank >> 8);
  e[at + 8] = hfront & 0xff; e[at + 9] = hsync & 0xff; e[at + 10] = ((vfront & 0xf) << 4) | (vsync & 0xf);
  e[at + 11] = ((hfront >> 8) << 6) | ((hsync >> 8) << 4) | ((vfront >> 4) << 2) | (vsync >> 4);
  e[at + 12] = hmm & 0xff; e[at + 13] = vmm & 0xff; e[at + 14] = ((hmm >> 8) << 4) | (vmm >> 8);
  e[at + 17] = 0x1e; // digital separate sync, both polarities positive
};

/** Standard timings (EDID 1.4 §3.9, eight slots) the block may list besides the preferred mode: [width, height, aspect code]. */
const STANDARD_MODES: ReadonlyArray<[number, number, number]> = [
  [1280, 720, 3], [1280, 800, 0], [1280, 1024, 2], [1440, 900, 0], [1600, 900, 3], [1680, 1050, 0], [1920, 1080, 3], [1920, 1200, 0],
];
/** A larger mode than standard timings can name (at most 2288 wide), offered as a second detailed timing. */
const LARGE_MODE = [2560, 1600] as const;

/**
 * A 128-byte EDID 1.4 base block (VESA E-EDID) for a virtual monitor whose preferred mode
 * is `width` x `height` at 60 Hz (the first detailed timing), with the established (640x480,
 * 800x600, 1024x768) and standard timings ({@link STANDARD_MODES}) and the large mode
 * ({@link LARGE_MODE}, a second detailed timing) whose framebuffer (4
 * bytes a pixel) fits in `vramBytes` of graphics memory, a range limits and a name
 * descriptor: a guest choosing among the modes it is offered never picks one the device
 * would refuse.
 */
export function buildEdid(width: number, height: number, vramBytes = width * height * 4): Uint8Array {
  const fits = (w: number, h: number): boolean => w * h * 4 <= vramBytes;
  const e = new Uint8Array(128);
  e.set([0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
  const id = ((('T'.charCodeAt(0) - 64) << 10) | (('S'.charCodeAt(0) - 64) << 5) | ('V'.charCodeAt(0) - 64));
  e[8] = id >> 8; e[9] = id & 0xff; // manufacturer "TSV", big-endian
  e[10] = 0x01; // product code
  e[16] = 1; e[17] = 2026 - 1990; // week, year of manufacture
  e[18] = 1; e[19] = 4; // EDID 1.4
  e[20] = 0xa5; // digital, 8 bits per colour, DisplayPort
  e[21] = Math.max(1, Math.round(width / 37.8)); e[22] = Math.max(1, Math.round(height / 37.8)); // cm
  e[23] = 120; // gamma 2.2
  e[24] = 0x06; // sRGB default colour space, preferred timing is native
  e.set([0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54], 25); // sRGB chromaticity
  // established timings: 640x480@60, 800x600@60, 1024x768@60 where they fit
  if (fits(640, 480)) e[35] |= 0x20;
  if (fits(800, 600)) e[35] |= 0x01;
  if (fits(1024, 768)) e[36] |= 0x08;
  let s = 38;
  for (let i = 38; i < 54; i++) e[i] = 0x01; // unused standard timings
  for (const [w, h, aspect] of STANDARD_MODES) {
    if (!fits(w, h) || (w === width && h === height)) continue;
    e[s] = w / 8 - 31; e[s + 1] = aspect << 6; // 60 Hz
    s += 2;
  }
  writeDtd(e, 54, width, height);
  // monitor range limits: 50-70 Hz vertical, 30-255 kHz horizontal, up to 1270 MHz
  e.set([0, 0, 0, 0xfd, 0, 50, 70, 30, 255, 127, 0x00, 0x0a, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20], 72);
  e.set([0, 0, 0, 0xfc, 0, ...Buffer.from('tsvisor\n     ', 'latin1')], 90); // monitor name
  if (fits(LARGE_MODE[0], LARGE_MODE[1]) && (width !== LARGE_MODE[0] || height !== LARGE_MODE[1])) writeDtd(e, 108, LARGE_MODE[0], LARGE_MODE[1]);
  else e.set([0, 0, 0, 0x10, 0], 108); // dummy descriptor
  e[126] = 0; // no extension blocks
  let sum = 0;
  for (let i = 0; i < 127; i++) sum += e[i];
  e[127] = (256 - (sum & 0xff)) & 0xff;
  return e;
}

/** The virtio-gpu device; see the file comment. */
export class VirtioGpu implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_GPU;
  readonly features = VIRTIO_GPU_F_EDID;
  readonly numQueues = 2;
  readonly metrics: VirtioGpuMetrics = { commands: 0, errors: 0, flushes: 0, transferredBytes: 0 };
  private ctx: VirtioDeviceContext | null = null;
  private readonly resources = new Map<number, Resource>();
  private usedBytes = 0;
  private scanout: { resourceId: number; rect: GpuRect } | null = null;
  private eventsRead = 0;
  private mode: { width: number; height: number };
  /** The cursor: its 64x64 image (RGBA), hot spot and position on the scanout; null when hidden. */
  cursor: { rgba: Uint8Array; hotX: number; hotY: number; x: number; y: number } | null = null;

  /** @throws RangeError for a mode or budget that cannot work. */
  constructor(private readonly opts: VirtioGpuOptions) {
    if (!(opts.width >= 16 && opts.height >= 16 && opts.width <= MAX_DIMENSION && opts.height <= MAX_DIMENSION)) {
      throw new RangeError(`display mode ${opts.width}x${opts.height}: expected 16x16 to ${MAX_DIMENSION}x${MAX_DIMENSION}`);
    }
    if (opts.width * opts.height * 4 > opts.vramBytes) throw new RangeError(`display mode ${opts.width}x${opts.height} needs ${opts.width * opts.height * 4} bytes of graphics memory, more than ${opts.vramBytes}`);
    this.mode = { width: opts.width, height: opts.height };
  }

  /** Graphics memory the guest's resources take now (bytes). */
  get vramUsedBytes(): number {
    return this.usedBytes;
  }

  queueMaxSize(index: number): number {
    return index === 0 || index === 1 ? QUEUE_SIZE : 0;
  }

  private config(): Uint8Array {
    const c = new Uint8Array(16);
    const v = new DataView(c.buffer);
    v.setUint32(0, this.eventsRead, true);
    v.setUint32(8, 1, true); // num_scanouts
    return c; // events_clear reads 0, num_capsets 0
  }

  readConfig(offset: number, width: MmioWidth): number {
    return readConfigBytes(this.config(), offset, width);
  }

  /** events_clear (offset 4) clears the events written as 1. */
  writeConfig(offset: number, width: MmioWidth, value: number): void {
    if (offset === 4 && width === 4) this.eventsRead &= ~value;
  }

  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  /** Device reset (§2.4): every resource and the scanout go. */
  reset(): void {
    this.ctx = null;
    this.resources.clear();
    this.usedBytes = 0;
    this.cursor = null;
    if (this.scanout) { this.scanout = null; this.opts.onScanout?.(null); }
    this.eventsRead = 0;
  }

  /**
   * The host changes the preferred mode (a viewer resized): the guest is told through a
   * display event (§5.7.4) and reads GET_DISPLAY_INFO and GET_EDID again.
   * @throws RangeError as the constructor.
   */
  setPreferredMode(width: number, height: number): void {
    if (!(width >= 16 && height >= 16 && width <= MAX_DIMENSION && height <= MAX_DIMENSION) || width * height * 4 > this.opts.vramBytes) {
      throw new RangeError(`display mode ${width}x${height} does not fit`);
    }
    this.mode = { width, height };
    this.eventsRead |= VIRTIO_GPU_EVENT_DISPLAY;
    this.ctx?.configChanged();
  }

  /**
   * What the scanout shows: its size and its pixels as RGBA (alpha 255), or null when the
   * guest shows nothing.
   */
  screen(): { width: number; height: number; rgba: Uint8Array } | null {
    const s = this.scanout;
    const res = s ? this.resources.get(s.resourceId) : undefined;
    if (!s || !res) return null;
    const [ri, gi, bi] = GPU_FORMATS.get(res.format)!;
    const { x, y, width, height } = s.rect;
    const out = new Uint8Array(width * height * 4);
    for (let row = 0; row < height; row++) {
      let src = ((y + row) * res.width + x) * 4;
      let dst = row * width * 4;
      for (let col = 0; col < width; col++, src += 4, dst += 4) {
        out[dst] = res.pixels[src + ri];
        out[dst + 1] = res.pixels[src + gi];
        out[dst + 2] = res.pixels[src + bi];
        out[dst + 3] = 255;
      }
    }
    return { width, height, rgba: out };
  }

  /**
   * The scanout's pixels without a copy, for a viewer that converts what it sends: the
   * resource's bytes (`stride` bytes per row, 4 bytes per pixel, in the resource's
   * format, see GPU_FORMATS: `channels` gives where red, green and blue sit), the scanout's
   * origin in it (`x`, `y`, pixels) and size; null when the guest shows nothing. Valid
   * until the guest's next command.
   */
  scanoutView(): { pixels: Uint8Array; stride: number; channels: readonly [number, number, number, number]; x: number; y: number; width: number; height: number } | null {
    const s = this.scanout;
    const res = s ? this.resources.get(s.resourceId) : undefined;
    if (!s || !res) return null;
    return { pixels: res.pixels, stride: res.width * 4, channels: GPU_FORMATS.get(res.format)!, x: s.rect.x, y: s.rect.y, width: s.rect.width, height: s.rect.height };
  }

  /** The preferred mode now (the configured one, or the last setPreferredMode). */
  get preferredMode(): { width: number; height: number } {
    return { ...this.mode };
  }

  queueNotify(index: number): void {
    const ctx = this.ctx;
    if (!ctx || (index !== 0 && index !== 1)) return;
    serveChains(ctx, index, 'virtio-gpu', (vq, chain) => {
      if (index === 0) return this.controlCommand(vq, chain);
      this.cursorCommand(vq, chain);
      return 0;
    });
  }

  /** One controlq command: bytes written to its writable side, or -1 when the header does not fit. */
  private controlCommand(vq: Virtqueue, chain: DescriptorChain): number {
    this.metrics.commands++;
    if (chain.writableLength < HDR) return -1;
    const head = chain.readableLength >= HDR ? vq.readBuffers(chain.readable, 0, HDR) : null;
    const hv = head ? new DataView(head.buffer) : null;
    const type = hv ? hv.getUint32(0, true) : 0;
    const flags = hv ? hv.getUint32(4, true) : 0;
    let body: Uint8Array = new Uint8Array(0);
    let resp: Uint8Array;
    try {
      if (!head) throw new GpuError(GPU_RESP.ERR_UNSPEC, 'command shorter than its header');
      const need = GpuBodyBytes.get(type);
      if (need === undefined) throw new GpuError(GPU_RESP.ERR_UNSPEC, `unknown command 0x${type.toString(16)}`);
      if (chain.readableLength < HDR + need) throw new GpuError(GPU_RESP.ERR_UNSPEC, 'command shorter than its body');
      body = vq.readBuffers(chain.readable, HDR, need) ?? new Uint8Array(0);
      resp = this.execute(type, new DataView(body.buffer), vq, chain);
    } catch (e) {
      if (!(e instanceof GpuError)) throw e;
      this.metrics.errors++;
      resp = new Uint8Array(HDR);
      new DataView(resp.buffer).setUint32(0, e.code, true);
    }
    if (resp.length > chain.writableLength) {
      this.metrics.errors++;
      resp = new Uint8Array(HDR);
      new DataView(resp.buffer).setUint32(0, GPU_RESP.ERR_UNSPEC, true);
    }
    if (hv && flags & VIRTIO_GPU_FLAG_FENCE) {
      const rv = new DataView(resp.buffer);
      rv.setUint32(4, VIRTIO_GPU_FLAG_FENCE, true);
      rv.setBigUint64(8, hv.getBigUint64(8, true), true); // fence_id
      rv.setUint32(16, hv.getUint32(16, true), true); // ctx_id
      resp[20] = head![20]; // ring_idx
    }
    return vq.writeBuffers(chain.writable, resp) ? resp.length : -1;
  }

  private static ok(type: number = GPU_RESP.OK_NODATA, bytes = HDR): Uint8Array {
    const r = new Uint8Array(bytes);
    new DataView(r.buffer).setUint32(0, type, true);
    return r;
  }

  private resource(id: number): Resource {
    const r = this.resources.get(id);
    if (!r) throw new GpuError(GPU_RESP.ERR_INVALID_RESOURCE_ID, `no resource ${id}`);
    return r;
  }

  private static rect(v: DataView, at: number): GpuRect {
    return { x: v.getUint32(at, true), y: v.getUint32(at + 4, true), width: v.getUint32(at + 8, true), height: v.getUint32(at + 12, true) };
  }

  /** @throws GpuError(ERR_INVALID_PARAMETER) unless `r` lies inside `res`. */
  private static inside(r: GpuRect, res: { width: number; height: number }): void {
    if (r.x > res.width || r.y > res.height || r.width > res.width || r.height > res.height
      || r.x + r.width > res.width || r.y + r.height > res.height) {
      throw new GpuError(GPU_RESP.ERR_INVALID_PARAMETER, 'rectangle outside the resource');
    }
  }

  private execute(type: number, v: DataView, vq: Virtqueue, chain: DescriptorChain): Uint8Array {
    switch (type) {
      case GPU_CMD.GET_DISPLAY_INFO: {
        const r = VirtioGpu.ok(GPU_RESP.OK_DISPLAY_INFO, HDR + MAX_SCANOUTS * 24);
        const rv = new DataView(r.buffer);
        rv.setUint32(HDR + 8, this.mode.width, true);
        rv.setUint32(HDR + 12, this.mode.height, true);
        rv.setUint32(HDR + 16, 1, true); // enabled
        return r;
      }
      case GPU_CMD.GET_EDID: {
        if (v.getUint32(0, true) !== 0) throw new GpuError(GPU_RESP.ERR_INVALID_PARAMETER, 'no such scanout');
        const r = VirtioGpu.ok(GPU_RESP.OK_EDID, HDR + 8 + 1024);
        new DataView(r.buffer).setUint32(HDR, 128, true);
        r.set(buildEdid(this.mode.width, this.mode.height, this.opts.vramBytes), HDR + 8);
        return r;
      }
      case GPU_CMD.RESOURCE_CREATE_2D: {
        const id = v.getUint32(0, true);
        const format = v.getUint32(4, true);
        const width = v.getUint32(8, true);
        const height = v.getUint32(12, true);
        if (id === 0 || this.resources.has(id)) throw new GpuError(GPU_RESP.ERR_INVALID_RESOURCE_ID, 'resource id 0 or taken');
        if (!GPU_FORMATS.has(format)) throw new GpuError(GPU_RESP.ERR_INVALID_PARAMETER, `format ${format}`);
        if (width === 0 || height === 0 || width > MAX_DIMENSION || height > MAX_DIMENSION) throw new GpuError(GPU_RESP.ERR_INVALID_PARAMETER, 'size');
        const bytes = width * height * 4;
        if (this.usedBytes + bytes > this.opts.vramBytes) {
          this.opts.onOutOfMemory?.({ width, height, bytes, usedBytes: this.usedBytes });
          throw new GpuError(GPU_RESP.ERR_OUT_OF_MEMORY, 'past the graphics memory');
        }
        this.resources.set(id, { id, format, width, height, pixels: new Uint8Array(bytes), backing: null, backingStarts: [], backingBytes: 0 });
        this.usedBytes += bytes;
        return VirtioGpu.ok();
      }
      case GPU_CMD.RESOURCE_UNREF: {
        const res = this.resource(v.getUint32(0, true));
        this.resources.delete(res.id);
        this.usedBytes -= res.pixels.length;
        if (this.scanout?.resourceId === res.id) { this.scanout = null; this.opts.onScanout?.(null); }
        return VirtioGpu.ok();
      }
      case GPU_CMD.RESOURCE_ATTACH_BACKING: {
        const res = this.resource(v.getUint32(0, true));
        const n = v.getUint32(4, true);
        if (n === 0 || n > MAX_BACKING_ENTRIES) throw new GpuError(GPU_RESP.ERR_UNSPEC, `${n} backing entries`);
        if (chain.readableLength < HDR + 8 + 16 * n) throw new GpuError(GPU_RESP.ERR_UNSPEC, 'backing entries missing');
        const raw = vq.readBuffers(chain.readable, HDR + 8, 16 * n);
        if (!raw) throw new GpuError(GPU_RESP.ERR_UNSPEC, 'backing entries unreadable');
        const ev = new DataView(raw.buffer);
        const entries: Array<{ addr: number; len: number }> = [];
        const starts: number[] = [];
        let total = 0;
        for (let i = 0; i < n; i++) {
          const addr = Number(ev.getBigUint64(16 * i, true));
          const len = ev.getUint32(16 * i + 8, true);
          if (!insideRam(vq.mem, addr, len)) throw new GpuError(GPU_RESP.ERR_UNSPEC, `backing entry ${i} outside guest RAM`);
          entries.push({ addr, len });
          starts.push(total);
          total += len;
        }
        res.backing = entries;
        res.backingStarts = starts;
        res.backingBytes = total;
        return VirtioGpu.ok();
      }
      case GPU_CMD.RESOURCE_DETACH_BACKING: {
        const res = this.resource(v.getUint32(0, true));
        if (!res.backing) throw new GpuError(GPU_RESP.ERR_UNSPEC, 'no backing');
        res.backing = null;
        res.backingStarts = [];
        res.backingBytes = 0;
        return VirtioGpu.ok();
      }
      case GPU_CMD.SET_SCANOUT: {
        const r = VirtioGpu.rect(v, 0);
        const scanoutId = v.getUint32(16, true);
        const id = v.getUint32(20, true);
        if (scanoutId !== 0) throw new GpuError(GPU_RESP.ERR_INVALID_SCANOUT_ID, `scanout ${scanoutId}`);
        if (id === 0) {
          if (this.scanout) { this.scanout = null; this.opts.onScanout?.(null); }
          return VirtioGpu.ok();
        }
        const res = this.resource(id);
        if (r.width < 16 || r.height < 16) throw new GpuError(GPU_RESP.ERR_INVALID_PARAMETER, 'scanout smaller than 16x16');
        VirtioGpu.inside(r, res);
        this.scanout = { resourceId: id, rect: r };
        this.opts.onScanout?.({ width: r.width, height: r.height });
        return VirtioGpu.ok();
      }
      case GPU_CMD.TRANSFER_TO_HOST_2D: {
        const r = VirtioGpu.rect(v, 0);
        const offset = Number(v.getBigUint64(16, true));
        const res = this.resource(v.getUint32(24, true));
        VirtioGpu.inside(r, res);
        if (!res.backing) throw new GpuError(GPU_RESP.ERR_UNSPEC, 'no backing');
        const stride = res.width * 4;
        const rowBytes = r.width * 4;
        if (r.height > 0 && offset + (r.height - 1) * stride + rowBytes > res.backingBytes) {
          throw new GpuError(GPU_RESP.ERR_INVALID_PARAMETER, 'transfer past the backing');
        }
        for (let row = 0; row < r.height; row++) {
          copyFromBacking(vq.mem, res, offset + row * stride, ((r.y + row) * res.width + r.x) * 4, rowBytes);
        }
        this.metrics.transferredBytes += rowBytes * r.height;
        return VirtioGpu.ok();
      }
      case GPU_CMD.RESOURCE_FLUSH: {
        const r = VirtioGpu.rect(v, 0);
        const res = this.resource(v.getUint32(16, true));
        VirtioGpu.inside(r, res);
        const s = this.scanout;
        if (s && s.resourceId === res.id) {
          const x0 = Math.max(r.x, s.rect.x);
          const y0 = Math.max(r.y, s.rect.y);
          const x1 = Math.min(r.x + r.width, s.rect.x + s.rect.width);
          const y1 = Math.min(r.y + r.height, s.rect.y + s.rect.height);
          if (x1 > x0 && y1 > y0) {
            this.metrics.flushes++;
            this.opts.onFlush?.({ x: x0 - s.rect.x, y: y0 - s.rect.y, width: x1 - x0, height: y1 - y0 });
          }
        }
        return VirtioGpu.ok();
      }
      default:
        throw new GpuError(GPU_RESP.ERR_UNSPEC, `command 0x${type.toString(16)} (no 3D)`);
    }
  }

  /** One cursorq command (§5.7.6.10): no response. */
  private cursorCommand(vq: Virtqueue, chain: DescriptorChain): void {
    if (chain.readableLength < HDR + 32) return;
    const raw = vq.readBuffers(chain.readable, 0, HDR + 32);
    if (!raw) return;
    const v = new DataView(raw.buffer);
    const type = v.getUint32(0, true);
    const scanoutId = v.getUint32(HDR, true);
    const x = v.getUint32(HDR + 4, true);
    const y = v.getUint32(HDR + 8, true);
    if (scanoutId !== 0) return;
    if (type === GPU_CMD.MOVE_CURSOR) {
      if (this.cursor) { this.cursor.x = x; this.cursor.y = y; }
      return;
    }
    if (type !== GPU_CMD.UPDATE_CURSOR) return;
    const id = v.getUint32(HDR + 16, true);
    const res = id === 0 ? undefined : this.resources.get(id);
    if (!res || res.width < CURSOR_SIZE || res.height < CURSOR_SIZE) { this.cursor = null; return; }
    const [ri, gi, bi, ai] = GPU_FORMATS.get(res.format)!;
    const rgba = new Uint8Array(CURSOR_SIZE * CURSOR_SIZE * 4);
    for (let row = 0; row < CURSOR_SIZE; row++) {
      for (let col = 0; col < CURSOR_SIZE; col++) {
        const s = (row * res.width + col) * 4;
        const d = (row * CURSOR_SIZE + col) * 4;
        rgba[d] = res.pixels[s + ri]; rgba[d + 1] = res.pixels[s + gi]; rgba[d + 2] = res.pixels[s + bi];
        rgba[d + 3] = ai < 0 ? 255 : res.pixels[s + ai];
      }
    }
    this.cursor = { rgba, hotX: v.getUint32(HDR + 20, true), hotY: v.getUint32(HDR + 24, true), x, y };
  }

  /** Saved state: none (resources live in guest memory; the driver re-creates them after a restore). */
  save(): unknown { return {}; }

  restore(): void { /* nothing */ }
}

/** Bytes of each command's body after the 24-byte header (§5.7.6.8). */
const GpuBodyBytes = new Map<number, number>([
  [GPU_CMD.GET_DISPLAY_INFO, 0], [GPU_CMD.GET_EDID, 8], [GPU_CMD.RESOURCE_CREATE_2D, 16], [GPU_CMD.RESOURCE_UNREF, 8],
  [GPU_CMD.RESOURCE_ATTACH_BACKING, 8], [GPU_CMD.RESOURCE_DETACH_BACKING, 8], [GPU_CMD.SET_SCANOUT, 24],
  [GPU_CMD.TRANSFER_TO_HOST_2D, 32], [GPU_CMD.RESOURCE_FLUSH, 24],
]);

function insideRam(mem: GuestMemory, addr: number, len: number): boolean {
  try {
    mem.offset(addr, len);
    return true;
  } catch {
    return false;
  }
}

/** Copy `len` bytes at byte `off` of `res`'s backing (checked to hold them) into its pixels at `at`. */
function copyFromBacking(mem: GuestMemory, res: Resource, off: number, at: number, len: number): void {
  const backing = res.backing!;
  const starts = res.backingStarts;
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) { // the last entry starting at or before off
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= off) lo = mid; else hi = mid - 1;
  }
  let i = lo;
  let within = off - starts[i];
  while (len > 0 && i < backing.length) {
    const n = Math.min(len, backing[i].len - within);
    if (n > 0) {
      res.pixels.set(mem.slice(backing[i].addr + within, n), at);
      at += n;
      len -= n;
    }
    within = 0;
    i++;
  }
}
