/**
 * virtio-net device (virtio-v1.2-cs01 §5.1 "Network Device"), one queue pair, over a
 * {@link NetBackend} that carries whole Ethernet frames.
 *
 * Virtqueues (§5.1.2): 0 receiveq1 (device → driver), 1 transmitq1 (driver → device).
 * No control queue (VIRTIO_NET_F_CTRL_VQ is not offered, as on Firecracker).
 *
 * Offered features (§5.1.3): MAC, STATUS (link up/down), MRG_RXBUF, CSUM and GUEST_CSUM,
 * HOST_TSO4/6 and GUEST_TSO4/6. Every buffer starts with the 12-byte `virtio_net_hdr`
 * (§5.1.6; VIRTIO_F_VERSION_1 makes `num_buffers` always present):
 * `{ u8 flags; u8 gso_type; le16 hdr_len; le16 gso_size; le16 csum_start; le16 csum_offset; le16 num_buffers; }`.
 *
 * Transmit (§5.1.6.2): the header and the frame come in the chain's device-readable
 * buffers. A partial checksum (NEEDS_CSUM) is completed and a TSO frame (GSO_TCPV4/6) is
 * cut into `gso_size` segments here, so the backend always gets finished frames and the
 * emulated guest spends no cycles on checksums or segmentation. A chain shorter than a
 * header plus an Ethernet header (runt), longer than the header plus
 * {@link MAX_FRAME_BYTES} (oversize), outside guest RAM, or with offload fields that do
 * not fit the frame is dropped and counted; the chain is still returned.
 *
 * Receive (§5.1.6.3/4): each frame gets a header with DATA_VALID when GUEST_CSUM was
 * negotiated (the backends deliver frames with correct checksums) and no GSO. With
 * MRG_RXBUF the frame spreads over as many receive chains as it needs (`num_buffers`);
 * without it, it must fit one chain, else it is dropped and counted. When the driver has
 * not posted enough buffers the backend holds the frame until it posts more (no drop).
 * Used-buffer interrupts are sent once per batch of frames.
 *
 * Guest errors never throw: a structurally broken ring puts the device in
 * DEVICE_NEEDS_RESET (§2.1.2); nothing more is processed until the driver resets it.
 */
import type { MmioWidth, NetBackend, NetPort } from '../bus.js';
import { VIRTIO_ID_NET, readConfigBytes, type VirtioDevice, type VirtioDeviceContext } from './device.js';
import type { DescriptorChain, Segment, Virtqueue } from './queue.js';
import { ETH_HLEN, MAX_FRAME_BYTES, FrameError, completeChecksum, segmentTcp } from '../net/frame.js';

/** Feature bits (§5.1.3), as masks. */
export const VIRTIO_NET_F_CSUM = 1n << 0n;
export const VIRTIO_NET_F_GUEST_CSUM = 1n << 1n;
export const VIRTIO_NET_F_MTU = 1n << 3n;
export const VIRTIO_NET_F_MAC = 1n << 5n;
export const VIRTIO_NET_F_GUEST_TSO4 = 1n << 7n;
export const VIRTIO_NET_F_GUEST_TSO6 = 1n << 8n;
export const VIRTIO_NET_F_GUEST_ECN = 1n << 9n;
export const VIRTIO_NET_F_HOST_TSO4 = 1n << 11n;
export const VIRTIO_NET_F_HOST_TSO6 = 1n << 12n;
export const VIRTIO_NET_F_HOST_ECN = 1n << 13n;
export const VIRTIO_NET_F_MRG_RXBUF = 1n << 15n;
export const VIRTIO_NET_F_STATUS = 1n << 16n;
export const VIRTIO_NET_F_CTRL_VQ = 1n << 17n;

/** `virtio_net_hdr.flags` (§5.1.6). */
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
/** `virtio_net_hdr.gso_type` (§5.1.6). */
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;
/** `virtio_net_config.status` (§5.1.4). */
export const VIRTIO_NET_S_LINK_UP = 1;

/** Size of `struct virtio_net_hdr` with VIRTIO_F_VERSION_1 (§5.1.6), bytes. */
export const VIRTIO_NET_HDR_SIZE = 12;
/** Size of the configuration space used here (mac, status, max_virtqueue_pairs, mtu), bytes. */
const CONFIG_SIZE = 12;
/** Most receive chains one frame may take with MRG_RXBUF (num_buffers is a le16). */
const MAX_RX_CHAINS = 0xffff;

/** Counters of one NIC (bytes are Ethernet frame bytes, without the virtio header). */
export interface VirtioNetMetrics {
  /** Frames and bytes the guest sent that went to the backend (after segmentation). */
  txPackets: number;
  txBytes: number;
  /** Frames and bytes delivered into the guest's receive buffers. */
  rxPackets: number;
  rxBytes: number;
  /** Guest frames dropped: shorter than an Ethernet header. */
  txRunt: number;
  /** Guest frames dropped: longer than {@link MAX_FRAME_BYTES}. */
  txOversize: number;
  /** Guest frames dropped: buffers outside RAM, or offload fields that do not fit the frame. */
  txBad: number;
  /** Frames from the network dropped: larger than the guest's buffers or than {@link MAX_FRAME_BYTES}, or the link is down. */
  rxDropped: number;
  /** Times the device entered DEVICE_NEEDS_RESET. */
  needsReset: number;
}

/** Options of {@link VirtioNet}. */
export interface VirtioNetOptions {
  /** The MAC address (6 bytes), reported in the config space (VIRTIO_NET_F_MAC). */
  mac: Uint8Array;
  /** QueueNumMax of both queues, a power of 2 in 2..32768 (default 256, as QEMU). */
  queueSize?: number;
  /** The link starts up (default true). */
  linkUp?: boolean;
}

/** Saved state (plain JSON): counters and link state; in-flight frames are not kept. */
export interface VirtioNetState {
  linkUp: boolean;
  metrics: VirtioNetMetrics;
}

function newMetrics(): VirtioNetMetrics {
  return { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0, txRunt: 0, txOversize: 0, txBad: 0, rxDropped: 0, needsReset: 0 };
}

/** The parsed `virtio_net_hdr`. */
interface NetHeader { flags: number; gsoType: number; gsoSize: number; csumStart: number; csumOffset: number }

function parseHeader(b: Uint8Array): NetHeader {
  const v = new DataView(b.buffer, b.byteOffset, VIRTIO_NET_HDR_SIZE);
  return { flags: b[0], gsoType: b[1], gsoSize: v.getUint16(4, true), csumStart: v.getUint16(6, true), csumOffset: v.getUint16(8, true) };
}

/**
 * virtio-net over a {@link NetBackend}. Host it in a `VirtioMmio` transport; transmit
 * requests are served inside `queueNotify`, received frames as the backend hands them.
 */
export class VirtioNet implements VirtioDevice, NetPort {
  readonly deviceId = VIRTIO_ID_NET;
  readonly numQueues = 2;
  readonly features = VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MRG_RXBUF | VIRTIO_NET_F_CSUM | VIRTIO_NET_F_GUEST_CSUM |
    VIRTIO_NET_F_HOST_TSO4 | VIRTIO_NET_F_HOST_TSO6 | VIRTIO_NET_F_GUEST_TSO4 | VIRTIO_NET_F_GUEST_TSO6;
  /** Live counters. */
  readonly metrics: VirtioNetMetrics = newMetrics();
  /** The MAC address. */
  readonly mac: Uint8Array;
  private readonly queueSize: number;
  private readonly config = new Uint8Array(CONFIG_SIZE);
  private ctx: VirtioDeviceContext | null = null;
  private broken = false;
  /** The backend refused more frames: stop draining the transmitq until writable(). */
  private txBlocked = false;
  /** A received frame is held by the backend for lack of buffers. */
  private rxBlocked = false;
  private rxNotifyPending = false;
  private txBusy = false;
  /** Where transmit chains are copied (a header and the largest frame); backends copy what they keep. */
  private readonly txBuffer = new Uint8Array(VIRTIO_NET_HDR_SIZE + MAX_FRAME_BYTES);
  /** Where a received frame gets its header before it is copied into the guest's buffers. */
  private readonly rxBuffer = new Uint8Array(VIRTIO_NET_HDR_SIZE + MAX_FRAME_BYTES);

  /** @throws RangeError for a MAC that is not 6 bytes, or a bad queue size. */
  constructor(private readonly backend: NetBackend, options: VirtioNetOptions) {
    if (options.mac.length !== 6) throw new RangeError('virtio-net: the MAC address must be 6 bytes');
    const qs = options.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 2 || qs > 32768 || (qs & (qs - 1)) !== 0) {
      throw new RangeError(`virtio-net queueSize must be a power of 2 in 2..32768, got ${qs}`);
    }
    this.queueSize = qs;
    this.mac = options.mac.slice();
    this.config.set(this.mac, 0);
    this.setStatus(options.linkUp ?? true);
    this.config[8] = 1; // max_virtqueue_pairs (meaningful with MQ only)
    backend.attach(this);
  }

  /** Whether the link is up (VIRTIO_NET_S_LINK_UP). */
  get linkUp(): boolean {
    return (this.config[6] & VIRTIO_NET_S_LINK_UP) !== 0;
  }

  /** Set the link state; the driver gets a configuration change notification (§5.1.4). */
  setLink(up: boolean): void {
    if (up === this.linkUp) return;
    this.setStatus(up);
    this.ctx?.configChanged();
    if (up) this.resumeRx();
  }

  private setStatus(up: boolean): void {
    this.config[6] = up ? VIRTIO_NET_S_LINK_UP : 0;
    this.config[7] = 0;
  }

  /** QueueNumMax (§4.2.2): `queueSize` for queues 0 and 1, else 0. */
  queueMaxSize(index: number): number {
    return index === 0 || index === 1 ? this.queueSize : 0;
  }

  /** Config space read (§5.1.4), little-endian, any width; bytes past the structure read 0. */
  readConfig(offset: number, width: MmioWidth): number {
    return readConfigBytes(this.config, offset, width);
  }

  /** The configuration space is read-only (§5.1.4: the driver must not write `mac` without VIRTIO_NET_F_CTRL_MAC_ADDR). */
  writeConfig(_offset: number, _width: MmioWidth, _value: number): void {}

  /** DRIVER_OK: serve the queues through `ctx`. */
  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
    this.broken = false;
    this.resumeRx();
  }

  /** Device reset (§2.4): forget the driver. Counters are kept (they meter the VM). */
  reset(): void {
    this.ctx = null;
    this.broken = false;
  }

  /** Available buffer notification: receive buffers posted (0) or frames to send (1). */
  queueNotify(index: number): void {
    if (!this.ctx || this.broken) return;
    if (index === 0) this.resumeRx();
    else if (index === 1) this.drainTx();
  }

  /** {@link NetPort}: the backend can take frames again. */
  writable(): void {
    this.txBlocked = false;
    this.drainTx();
  }

  /** Serializable state. */
  save(): VirtioNetState {
    return { linkUp: this.linkUp, metrics: { ...this.metrics } };
  }

  /** Restore from {@link save}; malformed fields read as defaults. */
  restore(state: unknown): void {
    const s = state as Partial<VirtioNetState> | null;
    this.setStatus(s?.linkUp !== false);
    const m = s?.metrics as Record<string, unknown> | undefined;
    for (const k of Object.keys(this.metrics) as Array<keyof VirtioNetMetrics>) {
      const v = m?.[k];
      this.metrics[k] = typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
    }
  }

  // ------------------------------------------------------------------ receive

  private resumeRx(): void {
    if (!this.rxBlocked) return;
    this.rxBlocked = false;
    this.backend.resume();
  }

  /**
   * {@link NetPort}: place one frame from the network in the guest's receive buffers.
   * @returns false (the backend keeps the frame) when the driver has not posted enough buffers.
   */
  receive(frame: Uint8Array): boolean {
    const ctx = this.ctx;
    if (!ctx || this.broken || !this.linkUp) {
      // no driver (or link down): the frame is lost, as on a wire with no receiver
      this.metrics.rxDropped++;
      return true;
    }
    if (frame.length < ETH_HLEN || frame.length > MAX_FRAME_BYTES) {
      this.metrics.rxDropped++;
      return true;
    }
    const vq = ctx.queue(0);
    if (!vq) {
      this.rxBlocked = true;
      return false;
    }
    try {
      const placed = this.placeFrame(ctx, vq, frame);
      if (placed === 'no-buffers') {
        this.rxBlocked = true;
        return false;
      }
      if (placed === 'placed') {
        this.metrics.rxPackets++;
        this.metrics.rxBytes += frame.length;
      } else {
        this.metrics.rxDropped++;
      }
      this.scheduleRxNotify();
      return true;
    } catch (e) {
      this.fail(ctx, e);
      return true;
    }
  }

  /** Write header + frame into as many receive chains as needed (one without MRG_RXBUF). */
  private placeFrame(ctx: VirtioDeviceContext, vq: Virtqueue, frame: Uint8Array): 'placed' | 'dropped' | 'no-buffers' {
    const mergeable = (ctx.features & VIRTIO_NET_F_MRG_RXBUF) !== 0n;
    const total = VIRTIO_NET_HDR_SIZE + frame.length;
    const chains: Array<{ head: number; segs: Segment[]; len: number }> = [];
    let room = 0;
    let retries = 0;
    while (room < total && (chains.length === 0 || (mergeable && chains.length < MAX_RX_CHAINS))) {
      const chain = vq.pop();
      if (!chain) {
        if (chains.length >= vq.size) break; // the whole ring is too small for this frame: drop it
        // give the chains back to the ring; retry at once if the driver added some meanwhile
        if (vq.rewind(chains.length) && ++retries <= 4) {
          chains.length = 0;
          room = 0;
          continue;
        }
        return 'no-buffers';
      }
      const take = Math.min(chain.writableLength, total - room);
      const segs = take > 0 ? vq.checkBuffers(chain.writable, 0, take) : null;
      if (!segs || (mergeable && take < Math.min(VIRTIO_NET_HDR_SIZE, total - room))) {
        // a buffer outside RAM, or one too small for a header (§5.1.6.3.1): return every chain empty
        vq.pushUsed(chain.head, 0);
        for (const c of chains) vq.pushUsed(c.head, 0);
        return 'dropped';
      }
      chains.push({ head: chain.head, segs, len: take });
      room += take;
    }
    if (room < total) {
      for (const c of chains) vq.pushUsed(c.head, 0);
      return 'dropped';
    }
    const packet = this.rxBuffer.subarray(0, total);
    packet.fill(0, 0, VIRTIO_NET_HDR_SIZE);
    if (ctx.features & VIRTIO_NET_F_GUEST_CSUM) packet[0] = VIRTIO_NET_HDR_F_DATA_VALID;
    packet[10] = chains.length & 0xff; // num_buffers (le16)
    packet[11] = chains.length >> 8;
    packet.set(frame, VIRTIO_NET_HDR_SIZE);
    let from = 0;
    for (const c of chains) {
      vq.copyToSegments(c.segs, packet.subarray(from, from + c.len));
      from += c.len;
    }
    // all of the frame's chains become used at once: the driver may be reading the ring now
    vq.pushUsedMany(chains);
    return 'placed';
  }

  private scheduleRxNotify(): void {
    if (this.rxNotifyPending) return;
    this.rxNotifyPending = true;
    queueMicrotask(() => {
      this.rxNotifyPending = false;
      if (this.ctx && !this.broken) this.ctx.usedBuffers(0);
    });
  }

  // ----------------------------------------------------------------- transmit

  /** Send every available transmit chain, until the backend is congested. */
  private drainTx(): void {
    const ctx = this.ctx;
    if (!ctx || this.broken || this.txBlocked || this.txBusy) return;
    const vq = ctx.queue(1);
    if (!vq) return;
    this.txBusy = true;
    let pushed = false;
    try {
      while (!this.txBlocked) {
        const chain = vq.pop();
        if (!chain) break;
        this.transmit(ctx, vq, chain);
        vq.pushUsed(chain.head, 0);
        pushed = true;
      }
    } catch (e) {
      this.fail(ctx, e);
    } finally {
      this.txBusy = false;
    }
    if (pushed && !this.broken) ctx.usedBuffers(1);
  }

  /** One transmit chain: header + frame in the readable buffers. Drops (and counts) what cannot be sent. */
  private transmit(ctx: VirtioDeviceContext, vq: Virtqueue, chain: DescriptorChain): void {
    const len = chain.readableLength;
    if (len < VIRTIO_NET_HDR_SIZE + ETH_HLEN) {
      this.metrics.txRunt++;
      return;
    }
    if (len > VIRTIO_NET_HDR_SIZE + MAX_FRAME_BYTES) {
      this.metrics.txOversize++;
      return;
    }
    // one buffer for every transmit: at 64 KiB a frame (passt's MTU), a fresh one each time
    // made the VM process's garbage collector run every few tens of ms
    const packet = this.txBuffer.subarray(0, len);
    if (!vq.readBuffersInto(chain.readable, 0, len, packet)) {
      this.metrics.txBad++;
      return;
    }
    if (!this.linkUp) return; // a NIC with no carrier sends nothing
    const h = parseHeader(packet);
    const frame = packet.subarray(VIRTIO_NET_HDR_SIZE);
    let frames: Uint8Array[];
    try {
      const gso = h.gsoType & ~VIRTIO_NET_HDR_GSO_ECN;
      if (gso === VIRTIO_NET_HDR_GSO_NONE) {
        if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
          if (!(ctx.features & VIRTIO_NET_F_CSUM)) throw new FrameError('NEEDS_CSUM without VIRTIO_NET_F_CSUM');
          completeChecksum(frame, h.csumStart, h.csumOffset);
        }
        frames = [frame];
      } else if (gso === VIRTIO_NET_HDR_GSO_TCPV4 && (ctx.features & VIRTIO_NET_F_HOST_TSO4)) {
        frames = segmentTcp(frame, 4, h.gsoSize);
      } else if (gso === VIRTIO_NET_HDR_GSO_TCPV6 && (ctx.features & VIRTIO_NET_F_HOST_TSO6)) {
        frames = segmentTcp(frame, 6, h.gsoSize);
      } else {
        throw new FrameError(`gso_type ${h.gsoType} not negotiated`);
      }
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
      this.metrics.txBad++;
      return;
    }
    for (const f of frames) {
      this.metrics.txPackets++;
      this.metrics.txBytes += f.length;
      if (!this.backend.send(f)) this.txBlocked = true;
    }
  }

  private fail(ctx: VirtioDeviceContext, e: unknown): void {
    if (this.broken) return;
    this.broken = true;
    this.metrics.needsReset++;
    ctx.needsReset(`virtio-net: ${e instanceof Error ? e.message : String(e)}`);
  }
}
