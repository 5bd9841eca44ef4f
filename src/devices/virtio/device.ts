/**
 * The contract between a virtio transport (virtio-mmio, `mmio.ts`) and a virtio
 * device model (e.g. virtio-blk, `blk.ts`), after virtio-v1.2-cs01 §2 ("Basic
 * Facilities of a Virtio Device") and §3 ("General Initialization and Device
 * Operation").
 */
import type { MmioWidth, Persistable } from '../bus.js';
import type { GuestMemory } from '../guest-memory.js';
import type { DescriptorChain, Virtqueue } from './queue.js';

/** Device status bits (§2.1). */
export const VIRTIO_STATUS_ACKNOWLEDGE = 1;
export const VIRTIO_STATUS_DRIVER = 2;
export const VIRTIO_STATUS_DRIVER_OK = 4;
export const VIRTIO_STATUS_FEATURES_OK = 8;
export const VIRTIO_STATUS_DEVICE_NEEDS_RESET = 64;
export const VIRTIO_STATUS_FAILED = 128;

/** Reserved (device-independent) feature bits (§6), as masks. */
export const VIRTIO_F_INDIRECT_DESC = 1n << 28n;
export const VIRTIO_F_EVENT_IDX = 1n << 29n;
export const VIRTIO_F_VERSION_1 = 1n << 32n;
export const VIRTIO_F_ACCESS_PLATFORM = 1n << 33n;
export const VIRTIO_F_RING_PACKED = 1n << 34n;

/** Device IDs (§5). */
export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_CONSOLE = 3;
export const VIRTIO_ID_ENTROPY = 4;
export const VIRTIO_ID_BALLOON = 5;
export const VIRTIO_ID_9P = 9;

/**
 * What an activated device may do with its transport. Handed to
 * {@link VirtioDevice.activate} when the driver sets DRIVER_OK; becomes inert
 * (all calls ignored, `queue()` returns null) once the device is reset.
 */
export interface VirtioDeviceContext {
  /** Guest RAM, for DMA (bounds-checked). */
  readonly mem: GuestMemory;
  /** The feature bits negotiated at FEATURES_OK (§2.2, §3.1.1 step 5). */
  readonly features: bigint;
  /** The virtqueue `index` if the driver made it ready (QueueReady = 1), else null. */
  queue(index: number): Virtqueue | null;
  /**
   * Used buffers were added to queue `index`: send a used buffer notification
   * (interrupt) unless the driver suppressed it (§2.7.7, §2.7.10).
   */
  usedBuffers(index: number): void;
  /** The device configuration space changed: bump ConfigGeneration and send a configuration change notification (§2.5, §4.2.2). */
  configChanged(): void;
  /**
   * The driver broke the protocol (malformed queue, §2.7): set
   * DEVICE_NEEDS_RESET, send a configuration change notification (§2.1.2), and
   * stop passing queue notifications until the driver resets the device.
   */
  needsReset(reason: string): void;
}

/**
 * A virtio device model, independent of the transport (Firecracker's
 * `VirtioDevice`). The transport adds the transport/ring features it
 * implements (VIRTIO_F_VERSION_1, and optionally VIRTIO_F_INDIRECT_DESC and
 * VIRTIO_F_EVENT_IDX) to {@link features}.
 *
 * Methods must not throw for anything the guest did; the transport still
 * catches exceptions and turns them into DEVICE_NEEDS_RESET.
 */
export interface VirtioDevice extends Persistable<unknown> {
  /** Device ID (§5), e.g. 2 for a block device. */
  readonly deviceId: number;
  /** Device-specific feature bits offered (§2.2), as a 64-bit mask. */
  readonly features: bigint;
  /** Number of virtqueues. */
  readonly numQueues: number;
  /** Largest Queue Size for queue `index` (QueueNumMax); 0 if the queue does not exist. */
  queueMaxSize(index: number): number;
  /** Read `width` bytes of the device configuration space at `offset` (§2.5); out of range reads 0. */
  readConfig(offset: number, width: MmioWidth): number;
  /** Write the device configuration space (§2.5); read-only or out-of-range fields ignore writes. */
  writeConfig(offset: number, width: MmioWidth, value: number): void;
  /** The driver set DRIVER_OK (§3.1.1 step 8): the device may now use its queues through `ctx`. */
  activate(ctx: VirtioDeviceContext): void;
  /** Available buffer notification for queue `index` (§2.7.13, QueueNotify). Only called while activated. */
  queueNotify(index: number): void;
  /** Device reset (§2.4): forget the context and any in-flight work. */
  reset(): void;
}

/**
 * Serves every chain the driver made available on queue `index` of `ctx`: `serve` answers
 * one with the bytes it wrote to the chain's writable side, or -1 when the chain has no room
 * for a response (then the device needs a reset, §2.1.2, with `what` as the reason, and
 * nothing more is served). The driver is notified once for all the used buffers.
 */
export function serveChains(ctx: VirtioDeviceContext, index: number, what: string, serve: (vq: Virtqueue, chain: DescriptorChain) => number): void {
  const vq = ctx.queue(index);
  if (!vq) return;
  let pushed = false;
  for (let chain = vq.pop(); chain; chain = vq.pop()) {
    const used = serve(vq, chain);
    if (used < 0) {
      if (pushed) ctx.usedBuffers(index);
      ctx.needsReset(`${what}: request (head ${chain.head}) has no room for its response`);
      return;
    }
    vq.pushUsed(chain.head, used);
    pushed = true;
  }
  if (pushed) ctx.usedBuffers(index);
}

/**
 * Reads `width` bytes at `offset` of a device configuration space held as bytes
 * (little-endian, §2.5); bytes outside `config` read as 0.
 */
export function readConfigBytes(config: Uint8Array, offset: number, width: MmioWidth): number {
  let v = 0;
  for (let i = width - 1; i >= 0; i--) {
    const o = offset + i;
    v = v * 256 + (o >= 0 && o < config.length ? config[o] : 0);
  }
  return v;
}
