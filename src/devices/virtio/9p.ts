/**
 * virtio-9p, the "9P transport" device (virtio-v1.2-cs01 §5, device ID 9), with the layout
 * of Linux's include/uapi/linux/virtio_9p.h and net/9p/trans_virtio.c (as QEMU's
 * virtio-9p-device):
 *  - feature VIRTIO_9P_MOUNT_TAG (bit 0): the configuration space holds the mount tag,
 *    `tag_len` (le16) then `tag_len` bytes, which the guest names in
 *    `mount -t 9p -o trans=virtio TAG DIR` (and lists in sysfs `mount_tag`);
 *  - one request queue: each chain carries one T-message on its readable side and gets its
 *    R-message on its writable side. Linux's zero-copy requests split the payload into
 *    pages after a short header; both sides are read and written as one byte stream over
 *    their buffers, so that needs nothing special.
 * The messages are served by a {@link P9Server} (src/devices/node/host-share.ts),
 * synchronously, in the QueueNotify that brought them.
 *
 * Hostile input: every buffer is checked by the queue (Virtqueue.readBuffers/writeBuffers);
 * a T-message is read up to the server's largest msize plus its header; a chain whose
 * writable side cannot hold even an error reply sets DEVICE_NEEDS_RESET.
 */
import type { MmioWidth } from '../bus.js';
import { VIRTIO_ID_9P, readConfigBytes, serveChains, type VirtioDevice, type VirtioDeviceContext } from './device.js';
import { P9_HEADER_BYTES, P9_MAX_MSIZE, p9Lerror, Errno, type P9Server } from '../9p/wire.js';

/** The mount tag is in the configuration space (virtio_9p.h). */
export const VIRTIO_9P_MOUNT_TAG = 1n << 0n;
/** Longest mount tag, in bytes (as QEMU's MAX_TAG_LEN). */
export const VIRTIO_9P_MAX_TAG_BYTES = 31;
const QUEUE_SIZE = 128;
/** An Rlerror: the least a request's writable side must hold. */
const MIN_REPLY_BYTES = P9_HEADER_BYTES + 4;

/**
 * Whether `tag` can be a mount tag: 1..31 bytes of letters, digits, `_`, `-` and `.`
 * (what a mount command line and a comma-separated option list carry safely).
 */
export function isValidMountTag(tag: string): boolean {
  return /^[A-Za-z0-9_.-]{1,31}$/.test(tag);
}

/** Counters of the device (mutated in place). */
export interface VirtioP9Metrics {
  requests: number;
  /** Chains that could not be answered (no room even for an error). */
  failed: number;
}

/** The virtio-9p device of one share; see the file comment. */
export class VirtioP9 implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_9P;
  readonly features = VIRTIO_9P_MOUNT_TAG;
  readonly numQueues = 1;
  readonly metrics: VirtioP9Metrics = { requests: 0, failed: 0 };
  private ctx: VirtioDeviceContext | null = null;
  private readonly config: Uint8Array;

  /**
   * @param tag the mount tag ({@link isValidMountTag}).
   * @param server answers the messages.
   * @throws RangeError for a tag that is not valid.
   */
  constructor(readonly tag: string, readonly server: P9Server) {
    if (!isValidMountTag(tag)) throw new RangeError(`mount tag ${JSON.stringify(tag)}: expected 1..31 letters, digits, '_', '-' or '.'`);
    const bytes = new TextEncoder().encode(tag);
    this.config = new Uint8Array(2 + bytes.length);
    new DataView(this.config.buffer).setUint16(0, bytes.length, true);
    this.config.set(bytes, 2);
  }

  queueMaxSize(index: number): number {
    return index === 0 ? QUEUE_SIZE : 0;
  }

  readConfig(offset: number, width: MmioWidth): number {
    return readConfigBytes(this.config, offset, width);
  }

  writeConfig(): void { /* read-only */ }

  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  /** Device reset (§2.4): the server forgets every fid. */
  reset(): void {
    this.ctx = null;
    this.server.reset();
  }

  queueNotify(index: number): void {
    const ctx = this.ctx;
    if (!ctx || index !== 0) return;
    serveChains(ctx, 0, 'virtio-9p', (vq, chain) => {
      this.metrics.requests++;
      if (chain.writableLength < MIN_REPLY_BYTES) {
        this.metrics.failed++;
        return -1;
      }
      const n = Math.min(chain.readableLength, P9_MAX_MSIZE + P9_HEADER_BYTES);
      const msg = vq.readBuffers(chain.readable, 0, n);
      let reply = msg ? this.server.handle(msg, chain.writableLength) : p9Lerror(0xffff, Errno.EPROTO);
      if (reply.length > chain.writableLength) reply = p9Lerror(new DataView(reply.buffer, reply.byteOffset).getUint16(5, true), Errno.ERANGE);
      if (!vq.writeBuffers(chain.writable, reply)) {
        this.metrics.failed++;
        reply = new Uint8Array(0);
      }
      return reply.length;
    });
  }

  /** Saved state: none (the guest remounts after a restore of the board). */
  save(): unknown { return {}; }

  restore(): void { /* nothing */ }
}
