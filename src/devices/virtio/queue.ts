/**
 * Split virtqueue, device side (virtio-v1.2-cs01 §2.7 "Split Virtqueues").
 *
 * Layout in guest memory (little-endian), for a queue of `size` entries:
 *
 * - Descriptor Table (§2.7.5), 16-byte aligned, `16*size` bytes:
 *   `{ le64 addr; le32 len; le16 flags; le16 next; }`
 * - Driver Area = Available Ring (§2.7.6), 2-byte aligned, `6 + 2*size` bytes:
 *   `{ le16 flags; le16 idx; le16 ring[size]; le16 used_event; }`
 * - Device Area = Used Ring (§2.7.8), 4-byte aligned, `6 + 8*size` bytes:
 *   `{ le16 flags; le16 idx; struct { le32 id; le32 len; } ring[size]; le16 avail_event; }`
 *
 * Everything the driver wrote is untrusted. Every index, address, length and
 * `next` link is validated; a structural error (bad index, loop, bad indirect
 * table, readable descriptor after a writable one, avail index running ahead by
 * more than the queue size, a ring outside RAM) throws {@link VirtqueueError},
 * after which the device should set DEVICE_NEEDS_RESET. Buffer addresses in a
 * chain are *not* checked here: a buffer outside RAM is a per-request error that
 * the device reports in its own way (virtio-blk answers IOERR); use
 * {@link Virtqueue.checkBuffers} or GuestMemory's bounds checks.
 *
 * Shared-memory ordering: `avail.idx`, `used.idx`, `used_event` and
 * `avail_event` are accessed with `Atomics` (sequentially consistent) when the
 * RAM view allows it, so ring entries written before an index store are visible
 * to a hart that reads the index (the barriers of §2.7.7 and §2.7.13).
 */
import type { BlockBackend } from '../bus.js';
import { GuestMemory, GuestMemoryError } from '../guest-memory.js';

/** Descriptor flags (§2.7.5). */
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
/** Available ring flag: driver asks for no used-buffer notifications (§2.7.6). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** Used ring flag: device asks for no available-buffer notifications (§2.7.8). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;
/** Largest split queue size (§2.7: Queue Size is a power of 2, at most 32768). */
export const VIRTQ_MAX_SIZE = 32768;
/** Longest chain walked through one indirect table, whatever the table's size. */
export const VIRTQ_MAX_INDIRECT_CHAIN = 4096;

/** The driver broke a virtqueue rule (§2.7); the device should enter DEVICE_NEEDS_RESET. */
export class VirtqueueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VirtqueueError';
  }
}

/** Guest-physical addresses of a queue's three areas and its size (as written through the transport). */
export interface VirtqueueLayout {
  /** Queue Size chosen by the driver: a power of 2, 1..32768. */
  size: number;
  /** Descriptor Table address. */
  desc: number;
  /** Driver Area (available ring) address. */
  driver: number;
  /** Device Area (used ring) address. */
  device: number;
}

/** Negotiated features that change how the queue is processed. */
export interface VirtqueueFeatures {
  /** VIRTIO_F_INDIRECT_DESC (bit 28) negotiated: indirect descriptors allowed (§2.7.5.3). */
  indirect: boolean;
  /** VIRTIO_F_EVENT_IDX (bit 29) negotiated: used_event / avail_event suppression (§2.7.10). */
  eventIdx: boolean;
}

/** One buffer of a chain. `addr` is a guest physical address, not yet checked against RAM. */
export interface Descriptor {
  addr: number;
  /** Length in bytes (0..2^32-1). */
  len: number;
  /** Device-writable (VIRTQ_DESC_F_WRITE). */
  writable: boolean;
}

/** A descriptor chain taken from the available ring (§2.7.5.2). */
export interface DescriptorChain {
  /** Head descriptor index, to return in the used ring. */
  head: number;
  /** Device-readable buffers, in order (all come before the writable ones). */
  readable: Descriptor[];
  /** Device-writable buffers, in order. */
  writable: Descriptor[];
  /** Total bytes of the readable buffers. */
  readableLength: number;
  /** Total bytes of the writable buffers. */
  writableLength: number;
}

/** A contiguous piece of guest memory. */
export interface Segment {
  addr: number;
  len: number;
}

/** Run-time position of a queue (plain JSON). */
export interface VirtqueueState {
  /** Next available-ring slot to consume (free-running u16, §2.7.6). */
  lastAvail: number;
  /** Device's used.idx (free-running u16). */
  usedIdx: number;
  /** used.idx when the driver was last considered for notification. */
  signalledUsed: number;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isPowerOf2(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/**
 * Device side of one split virtqueue over guest memory.
 *
 * Typical device loop: `while ((c = q.pop())) { ...; q.pushUsed(c.head, len) }`,
 * then if `q.needsNotification()` raise the used-buffer interrupt. All methods
 * throw only {@link VirtqueueError}.
 */
export class Virtqueue {
  readonly size: number;
  readonly layout: Readonly<VirtqueueLayout>;
  readonly features: Readonly<VirtqueueFeatures>;
  private lastAvail = 0;
  private usedIdx = 0;
  private signalledUsed = 0;
  private readonly u16: Uint16Array | null;

  /**
   * Validate the layout (§2.7: size a power of 2 ≤ 32768; alignment 16/2/4 for
   * descriptor table / driver area / device area; each area inside RAM).
   * @throws VirtqueueError when the layout is invalid.
   */
  constructor(readonly mem: GuestMemory, layout: VirtqueueLayout, features: VirtqueueFeatures, state?: VirtqueueState) {
    const { size, desc, driver, device } = layout;
    if (!Number.isInteger(size) || !isPowerOf2(size) || size > VIRTQ_MAX_SIZE) {
      throw new VirtqueueError(`queue size ${size} is not a power of 2 in 1..${VIRTQ_MAX_SIZE}`);
    }
    if (desc % 16 !== 0) throw new VirtqueueError(`descriptor table 0x${desc.toString(16)} not 16-byte aligned`);
    if (driver % 2 !== 0) throw new VirtqueueError(`driver area 0x${driver.toString(16)} not 2-byte aligned`);
    if (device % 4 !== 0) throw new VirtqueueError(`device area 0x${device.toString(16)} not 4-byte aligned`);
    this.checkArea('descriptor table', desc, 16 * size);
    this.checkArea('driver area', driver, 6 + 2 * size);
    this.checkArea('device area', device, 6 + 8 * size);
    this.size = size;
    this.layout = { ...layout };
    this.features = { ...features };
    const b = mem.bytes;
    this.u16 = LITTLE_ENDIAN && b.byteOffset % 2 === 0 ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength >>> 1) : null;
    if (state) {
      this.lastAvail = state.lastAvail & 0xffff;
      this.usedIdx = state.usedIdx & 0xffff;
      this.signalledUsed = state.signalledUsed & 0xffff;
    }
  }

  /** Run-time position, for snapshots. */
  save(): VirtqueueState {
    return { lastAvail: this.lastAvail, usedIdx: this.usedIdx, signalledUsed: this.signalledUsed };
  }

  /** True when the driver has made buffers available that were not popped yet. @throws VirtqueueError if avail.idx is implausible. */
  hasAvailable(): boolean {
    return this.availCount() > 0;
  }

  /**
   * Take the next available descriptor chain (§2.7.13 device side), or null when
   * the ring is empty. With EVENT_IDX, also publishes `avail_event` so the driver
   * notifies when it adds the next buffer.
   * @throws VirtqueueError on a malformed ring or chain (the chain is consumed).
   */
  pop(): DescriptorChain | null {
    try {
      const n = this.availCount();
      if (n === 0) return null;
      const { driver, device } = this.layout;
      const head = this.mem.readU16(driver + 4 + 2 * (this.lastAvail & (this.size - 1)));
      this.lastAvail = (this.lastAvail + 1) & 0xffff;
      if (this.features.eventIdx) this.storeU16(device + 4 + 8 * this.size, this.lastAvail);
      return this.walk(head);
    } catch (e) {
      throw toQueueError(e);
    }
  }

  /**
   * Put the last `count` popped chains back as not yet taken (QEMU's virtqueue_rewind):
   * for a device that found too few buffers for a whole packet. With EVENT_IDX,
   * `avail_event` is set to the driver's current avail.idx, so that the next buffer the
   * driver adds is notified.
   * @returns true when the driver added buffers while this ran (the caller should retry
   *   rather than wait for a notification that may not come).
   * @throws VirtqueueError if `count` is more than were popped, or on a malformed ring.
   */
  rewind(count: number): boolean {
    try {
      if (!Number.isInteger(count) || count < 0 || count > this.size) throw new VirtqueueError(`cannot rewind ${count} chains`);
      this.lastAvail = (this.lastAvail - count) & 0xffff;
      const idxAt = this.layout.driver + 2;
      const idx = this.loadU16(idxAt);
      if (this.features.eventIdx) this.storeU16(this.layout.device + 4 + 8 * this.size, idx);
      return this.loadU16(idxAt) !== idx || ((idx - this.lastAvail) & 0xffff) > count;
    } catch (e) {
      throw toQueueError(e);
    }
  }

  /**
   * Return a chain to the driver (§2.7.8): write `{id: head, len}` into the used
   * ring, then publish the new used.idx.
   * @param len bytes the device wrote into the chain's writable buffers.
   * @throws VirtqueueError (only if RAM changed under the queue).
   */
  pushUsed(head: number, len: number): void {
    try {
      const slot = this.layout.device + 4 + 8 * (this.usedIdx & (this.size - 1));
      this.mem.writeU32(slot, head >>> 0);
      this.mem.writeU32(slot + 4, len >>> 0);
      this.usedIdx = (this.usedIdx + 1) & 0xffff;
      this.storeU16(this.layout.device + 2, this.usedIdx);
    } catch (e) {
      throw toQueueError(e);
    }
  }

  /**
   * Return several chains at once (QEMU's virtqueue_fill + virtqueue_flush): write every
   * `{id, len}` into the used ring, then publish used.idx once, so that a driver reading
   * the ring meanwhile (on another hart) sees all of them or none. virtio-net's mergeable
   * receive buffers need this (§5.1.6.4: the driver reads `num_buffers` chains at once;
   * Linux drops a packet whose later buffers are not there yet).
   * @param chains the chains' heads, in order, with `len`: bytes written into that chain.
   * @throws VirtqueueError (only if RAM changed under the queue).
   */
  pushUsedMany(chains: ReadonlyArray<{ readonly head: number; readonly len: number }>): void {
    try {
      let idx = this.usedIdx;
      for (const { head, len } of chains) {
        const slot = this.layout.device + 4 + 8 * (idx & (this.size - 1));
        this.mem.writeU32(slot, head >>> 0);
        this.mem.writeU32(slot + 4, len >>> 0);
        idx = (idx + 1) & 0xffff;
      }
      this.usedIdx = idx;
      this.storeU16(this.layout.device + 2, idx);
    } catch (e) {
      throw toQueueError(e);
    }
  }

  /**
   * Whether the driver wants a used-buffer notification for the buffers pushed
   * since the last call (§2.7.10): with EVENT_IDX, when used.idx passed
   * `used_event`; otherwise unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT.
   * Returns false when nothing was pushed since the last call.
   */
  needsNotification(): boolean {
    try {
      const newIdx = this.usedIdx;
      const old = this.signalledUsed;
      if (newIdx === old) return false;
      this.signalledUsed = newIdx;
      const { driver } = this.layout;
      if (this.features.eventIdx) {
        const usedEvent = this.loadU16(driver + 4 + 2 * this.size);
        // vring_need_event(): notify if used_event lies in [old, new).
        return ((newIdx - usedEvent - 1) & 0xffff) < ((newIdx - old) & 0xffff);
      }
      return (this.loadU16(driver) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    } catch (e) {
      throw toQueueError(e);
    }
  }

  /**
   * Split `len` bytes starting `skip` bytes into the concatenation of `descs`
   * into segments, checking each lies in RAM.
   * @returns the segments, or null if the buffers are shorter than skip+len or any segment is outside RAM.
   */
  checkBuffers(descs: readonly Descriptor[], skip: number, len: number): Segment[] | null {
    const out: Segment[] = [];
    let remaining = len;
    for (const d of descs) {
      if (remaining === 0) break;
      if (skip >= d.len) {
        skip -= d.len;
        continue;
      }
      const n = Math.min(d.len - skip, remaining);
      const addr = d.addr + skip;
      try {
        this.mem.offset(addr, n);
      } catch {
        return null;
      }
      out.push({ addr, len: n });
      remaining -= n;
      skip = 0;
    }
    return remaining === 0 ? out : null;
  }

  /**
   * Copy `len` bytes starting `skip` bytes into the concatenation of `descs` out of
   * guest RAM.
   * @returns the bytes, or null when {@link checkBuffers} refuses the range.
   */
  readBuffers(descs: readonly Descriptor[], skip: number, len: number): Uint8Array | null {
    const out = new Uint8Array(len);
    return this.readBuffersInto(descs, skip, len, out) ? out : null;
  }

  /**
   * As {@link readBuffers}, into `out` (at least `len` bytes) from its start, without
   * allocating: a device that copies every request keeps one buffer for them.
   * @returns false (`out` unchanged) when {@link checkBuffers} refuses the range.
   * @throws RangeError when `out` is shorter than `len`.
   */
  readBuffersInto(descs: readonly Descriptor[], skip: number, len: number, out: Uint8Array): boolean {
    if (out.length < len) throw new RangeError(`readBuffersInto: ${len} bytes into a ${out.length}-byte buffer`);
    const segs = this.checkBuffers(descs, skip, len);
    if (!segs) return false;
    let at = 0;
    for (const s of segs) {
      out.set(this.mem.slice(s.addr, s.len), at);
      at += s.len;
    }
    return true;
  }

  /** Copy `data` into guest RAM over `segs` (from {@link checkBuffers}; together exactly data.length bytes). */
  copyToSegments(segs: readonly Segment[], data: Uint8Array): void {
    let from = 0;
    for (const s of segs) {
      this.mem.slice(s.addr, s.len).set(data.subarray(from, from + s.len));
      this.mem.written(s.addr, s.len);
      from += s.len;
    }
  }

  /**
   * DMA from a block device into guest RAM: fill `segs` (from {@link checkBuffers}) with
   * the bytes of `backend` from byte `offset`, in one vectored call when the backend has
   * `readv`, else one `read` per segment. Every segment counts as written (GuestMemory's
   * `written`), also when the read fails part-way: it may have written some of them.
   * @throws what the backend throws.
   */
  readFromBackend(segs: readonly Segment[], backend: BlockBackend, offset: number): void {
    try {
      if (backend.readv) {
        backend.readv(segs.map((s) => this.mem.slice(s.addr, s.len)), offset);
      } else {
        let at = offset;
        for (const s of segs) {
          backend.read(this.mem.slice(s.addr, s.len), at);
          at += s.len;
        }
      }
    } finally {
      for (const s of segs) this.mem.written(s.addr, s.len);
    }
  }

  /**
   * DMA from guest RAM to a block device: write the bytes of `segs` (from
   * {@link checkBuffers}) to `backend` at byte `offset`, in one vectored call when the
   * backend has `writev`, else one `write` per segment.
   * @throws what the backend throws (a read-only one included).
   */
  writeToBackend(segs: readonly Segment[], backend: BlockBackend, offset: number): void {
    if (backend.writev) {
      backend.writev(segs.map((s) => this.mem.slice(s.addr, s.len)), offset);
      return;
    }
    let at = offset;
    for (const s of segs) {
      backend.write(this.mem.slice(s.addr, s.len), at);
      at += s.len;
    }
  }

  /**
   * Copy `data` into the concatenation of `descs` from its start.
   * @returns false (nothing written) when {@link checkBuffers} refuses the range.
   */
  writeBuffers(descs: readonly Descriptor[], data: Uint8Array): boolean {
    const segs = this.checkBuffers(descs, 0, data.length);
    if (!segs) return false;
    this.copyToSegments(segs, data);
    return true;
  }

  // ---- internals ----

  private checkArea(what: string, addr: number, len: number): void {
    try {
      this.mem.offset(addr, len);
    } catch {
      throw new VirtqueueError(`${what} 0x${addr.toString(16)}+${len} is outside RAM`);
    }
  }

  private availCount(): number {
    const idx = this.loadU16(this.layout.driver + 2);
    const n = (idx - this.lastAvail) & 0xffff;
    if (n > this.size) {
      throw new VirtqueueError(`avail.idx ${idx} is ${n} entries ahead of the device (${this.lastAvail}), more than the queue size ${this.size}`);
    }
    return n;
  }

  /** Walk a chain (§2.7.5.2, §2.7.5.3), validating its structure. */
  private walk(head: number): DescriptorChain {
    const chain: DescriptorChain = { head, readable: [], writable: [], readableLength: 0, writableLength: 0 };
    let table = this.layout.desc;
    let tableSize = this.size;
    let limit = this.size;
    let idx = head;
    let count = 0;
    let inIndirect = false;
    for (;;) {
      if (idx >= tableSize) {
        throw new VirtqueueError(`descriptor index ${idx} out of range (${inIndirect ? 'indirect table' : 'queue'} size ${tableSize})`);
      }
      if (++count > limit) {
        throw new VirtqueueError(`descriptor chain from head ${head} longer than ${limit} descriptors (loop?)`);
      }
      const a = table + 16 * idx;
      const addr = this.mem.readU32(a + 4) * 0x100000000 + this.mem.readU32(a);
      const len = this.mem.readU32(a + 8);
      const flags = this.mem.readU16(a + 12);
      const next = this.mem.readU16(a + 14);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (!this.features.indirect) throw new VirtqueueError('indirect descriptor without VIRTIO_F_INDIRECT_DESC');
        if (inIndirect) throw new VirtqueueError('indirect descriptor inside an indirect table');
        if (flags & VIRTQ_DESC_F_NEXT) throw new VirtqueueError('descriptor has both INDIRECT and NEXT');
        if (len === 0 || len % 16 !== 0) throw new VirtqueueError(`indirect table length ${len} is not a non-zero multiple of 16`);
        try {
          this.mem.offset(addr, len);
        } catch {
          throw new VirtqueueError(`indirect table 0x${addr.toString(16)}+${len} is outside RAM`);
        }
        table = addr;
        tableSize = len / 16;
        limit = Math.min(tableSize, VIRTQ_MAX_INDIRECT_CHAIN);
        idx = 0;
        count = 0;
        inIndirect = true;
        continue;
      }
      if (flags & VIRTQ_DESC_F_WRITE) {
        chain.writable.push({ addr, len, writable: true });
        chain.writableLength += len;
      } else {
        if (chain.writable.length > 0) throw new VirtqueueError('device-readable descriptor after a device-writable one');
        chain.readable.push({ addr, len, writable: false });
        chain.readableLength += len;
      }
      if (!(flags & VIRTQ_DESC_F_NEXT)) return chain;
      idx = next;
    }
  }

  private loadU16(gpa: number): number {
    const off = this.mem.offset(gpa, 2);
    if (this.u16 && (off & 1) === 0) return Atomics.load(this.u16, off >>> 1);
    return this.mem.readU16(gpa);
  }

  private storeU16(gpa: number, v: number): void {
    const off = this.mem.offset(gpa, 2);
    if (this.u16 && (off & 1) === 0) Atomics.store(this.u16, off >>> 1, v);
    else this.mem.writeU16(gpa, v);
  }
}

function toQueueError(e: unknown): VirtqueueError {
  if (e instanceof VirtqueueError) return e;
  if (e instanceof GuestMemoryError) return new VirtqueueError(e.message);
  return new VirtqueueError(e instanceof Error ? e.message : String(e));
}
