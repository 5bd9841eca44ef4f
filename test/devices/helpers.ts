/**
 * Test helpers for device models: fake RAM, in-memory backends, an IRQ
 * recorder and a minimal virtio-mmio driver that sets devices up the way
 * Linux's virtio_mmio / virtio_ring do.
 */
import type { BlockBackend, CharBackend, IrqLine } from '../../src/devices/bus.js';
import { GuestMemory } from '../../src/devices/guest-memory.js';
import {
  VirtioMmio,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_INTERRUPT_ACK,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
  VIRTIO_MMIO_QUEUE_DEVICE_LOW,
  VIRTIO_MMIO_QUEUE_DRIVER_HIGH,
  VIRTIO_MMIO_QUEUE_DRIVER_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_STATUS,
  VIRTIO_STATUS_ACKNOWLEDGE,
  VIRTIO_STATUS_DRIVER,
  VIRTIO_STATUS_DRIVER_OK,
  VIRTIO_STATUS_FEATURES_OK,
} from '../../src/devices/virtio/mmio.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../src/devices/virtio/queue.js';

export const RAM_BASE = 0x8000_0000;

/** Guest RAM of `size` bytes at 0x8000_0000. */
export function makeRam(size = 1 << 20): GuestMemory {
  return new GuestMemory(new Uint8Array(size), RAM_BASE);
}

/** Records an interrupt line's level and rising edges. */
export class FakeIrq implements IrqLine {
  level = false;
  rises = 0;
  sets = 0;
  set(level: boolean): void {
    this.sets++;
    if (level && !this.level) this.rises++;
    this.level = level;
  }
}

/** In-memory disk that counts calls. */
export class MemBlock implements BlockBackend {
  readonly data: Uint8Array;
  writes = 0;
  reads = 0;
  flushes = 0;
  failNext = false;
  constructor(sizeBytes: number, readonly readonly = false) {
    this.data = new Uint8Array(sizeBytes);
    for (let i = 0; i < sizeBytes; i++) this.data[i] = (i * 7 + (i >> 9)) & 0xff;
  }
  get size(): number {
    return this.data.length;
  }
  read(buf: Uint8Array, offset: number): void {
    this.reads++;
    if (this.failNext) {
      this.failNext = false;
      throw new Error('injected read failure');
    }
    if (offset < 0 || offset + buf.length > this.data.length) throw new RangeError('out of range');
    buf.set(this.data.subarray(offset, offset + buf.length));
  }
  write(buf: Uint8Array, offset: number): void {
    if (this.readonly) throw new Error('readonly');
    if (offset < 0 || offset + buf.length > this.data.length) throw new RangeError('out of range');
    this.writes++;
    this.data.set(buf, offset);
  }
  flush(): void {
    this.flushes++;
  }
}

/** In-memory console. */
export class MemChar implements CharBackend {
  out: number[] = [];
  input: number[] = [];
  write(bytes: Uint8Array): void {
    this.out.push(...bytes);
  }
  read(max: number): Uint8Array {
    return Uint8Array.from(this.input.splice(0, max));
  }
  pending(): number {
    return this.input.length;
  }
  get text(): string {
    return String.fromCharCode(...this.out);
  }
}

/** A buffer of a descriptor chain, as the driver describes it. */
export interface Buf {
  addr: number;
  len: number;
  write?: boolean;
}

/** Guest RAM layout used by {@link Driver}. */
export const DESC_ADDR = RAM_BASE + 0x1000;
export const AVAIL_ADDR = RAM_BASE + 0x3000;
export const USED_ADDR = RAM_BASE + 0x4000;
export const INDIRECT_ADDR = RAM_BASE + 0x8000;
export const HEAP_ADDR = RAM_BASE + 0x10000;

/**
 * A tiny virtio driver for one queue, following Linux's virtio_mmio probe
 * (status ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queue setup, DRIVER_OK)
 * and virtio_ring's split-ring producer.
 */
export class Driver {
  private heap = HEAP_ADDR;
  private nextDesc = 0;
  availIdx = 0;
  lastUsed = 0;

  constructor(readonly dev: VirtioMmio, readonly mem: GuestMemory, readonly queueSize = 16) {}

  r(off: number): number {
    return this.dev.read(off, 4);
  }
  w(off: number, v: number): void {
    this.dev.write(off, 4, v);
  }

  deviceFeatures(): bigint {
    this.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    const hi = this.r(VIRTIO_MMIO_DEVICE_FEATURES);
    this.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    const lo = this.r(VIRTIO_MMIO_DEVICE_FEATURES);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** Negotiate `accept(offered)` and return whether FEATURES_OK stuck. */
  negotiate(accept: (offered: bigint) => bigint = (f) => f): boolean {
    this.w(VIRTIO_MMIO_STATUS, 0);
    this.w(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    this.w(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    const f = accept(this.deviceFeatures());
    this.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    this.w(VIRTIO_MMIO_DRIVER_FEATURES, Number(f >> 32n) >>> 0);
    this.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    this.w(VIRTIO_MMIO_DRIVER_FEATURES, Number(f & 0xffffffffn) >>> 0);
    this.w(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    return (this.r(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK) !== 0;
  }

  /** Set up queue 0 at the fixed layout; returns QueueNumMax. */
  setupQueue(layout: { desc?: number; avail?: number; used?: number; size?: number } = {}): number {
    this.w(VIRTIO_MMIO_QUEUE_SEL, 0);
    if (this.r(VIRTIO_MMIO_QUEUE_READY) !== 0) throw new Error('queue already set up');
    const max = this.r(VIRTIO_MMIO_QUEUE_NUM_MAX);
    this.w(VIRTIO_MMIO_QUEUE_NUM, layout.size ?? this.queueSize);
    const desc = layout.desc ?? DESC_ADDR;
    const avail = layout.avail ?? AVAIL_ADDR;
    const used = layout.used ?? USED_ADDR;
    this.w(VIRTIO_MMIO_QUEUE_DESC_LOW, desc % 2 ** 32);
    this.w(VIRTIO_MMIO_QUEUE_DESC_HIGH, Math.floor(desc / 2 ** 32));
    this.w(VIRTIO_MMIO_QUEUE_DRIVER_LOW, avail % 2 ** 32);
    this.w(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, Math.floor(avail / 2 ** 32));
    this.w(VIRTIO_MMIO_QUEUE_DEVICE_LOW, used % 2 ** 32);
    this.w(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, Math.floor(used / 2 ** 32));
    this.w(VIRTIO_MMIO_QUEUE_READY, 1);
    return max;
  }

  driverOk(): void {
    this.w(VIRTIO_MMIO_STATUS, this.r(VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
  }

  /** Full init: negotiate everything offered, queue 0, DRIVER_OK. */
  init(accept?: (offered: bigint) => bigint): void {
    if (!this.negotiate(accept)) throw new Error('FEATURES_OK refused');
    this.setupQueue();
    this.driverOk();
  }

  /** Allocate `len` bytes of guest memory (8-aligned), zeroed. */
  alloc(len: number): number {
    const a = this.heap;
    this.heap += Math.ceil(len / 8) * 8;
    this.mem.slice(a, len).fill(0);
    return a;
  }

  /** Write a raw descriptor. */
  writeDesc(table: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const a = table + 16 * i;
    this.mem.writeU32(a, addr % 2 ** 32);
    this.mem.writeU32(a + 4, Math.floor(addr / 2 ** 32));
    this.mem.writeU32(a + 8, len >>> 0);
    this.mem.writeU16(a + 12, flags);
    this.mem.writeU16(a + 14, next);
  }

  /** Make a chain of `bufs` in the descriptor table (consecutive free slots, wrapping) and return its head. */
  chain(bufs: Buf[]): number {
    const head = this.nextDesc;
    for (let k = 0; k < bufs.length; k++) {
      const i = (head + k) % this.queueSize;
      const next = (head + k + 1) % this.queueSize;
      const flags = (bufs[k].write ? VIRTQ_DESC_F_WRITE : 0) | (k < bufs.length - 1 ? VIRTQ_DESC_F_NEXT : 0);
      this.writeDesc(DESC_ADDR, i, bufs[k].addr, bufs[k].len, flags, k < bufs.length - 1 ? next : 0);
    }
    this.nextDesc = (head + bufs.length) % this.queueSize;
    return head;
  }

  /** Put `bufs` in an indirect table at `table` and a single INDIRECT descriptor in the ring; returns the head. */
  indirectChain(bufs: Buf[], table = INDIRECT_ADDR): number {
    bufs.forEach((b, k) => {
      const flags = (b.write ? VIRTQ_DESC_F_WRITE : 0) | (k < bufs.length - 1 ? VIRTQ_DESC_F_NEXT : 0);
      this.writeDesc(table, k, b.addr, b.len, flags, k < bufs.length - 1 ? k + 1 : 0);
    });
    const head = this.nextDesc;
    this.writeDesc(DESC_ADDR, head, table, 16 * bufs.length, VIRTQ_DESC_F_INDIRECT, 0);
    this.nextDesc = (head + 1) % this.queueSize;
    return head;
  }

  /** Publish `head` in the available ring (without notifying). */
  publish(head: number): void {
    this.mem.writeU16(AVAIL_ADDR + 4 + 2 * (this.availIdx % this.queueSize), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.mem.writeU16(AVAIL_ADDR + 2, this.availIdx);
  }

  kick(q = 0): void {
    this.w(VIRTIO_MMIO_QUEUE_NOTIFY, q);
  }

  /** New used-ring entries since the last call; then sets used_event to the new position (as Linux does). */
  takeUsed(): { id: number; len: number }[] {
    const idx = this.mem.readU16(USED_ADDR + 2);
    const out: { id: number; len: number }[] = [];
    while (this.lastUsed !== idx) {
      const e = USED_ADDR + 4 + 8 * (this.lastUsed % this.queueSize);
      out.push({ id: this.mem.readU32(e), len: this.mem.readU32(e + 4) });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    // like virtqueue_get_buf_split: ask for an interrupt at the next used buffer
    this.setUsedEvent(this.lastUsed);
    return out;
  }

  /** Read and acknowledge InterruptStatus, as vm_interrupt does. */
  ackInterrupt(): number {
    const s = this.r(VIRTIO_MMIO_INTERRUPT_STATUS);
    this.w(VIRTIO_MMIO_INTERRUPT_ACK, s);
    return s;
  }

  /** used_event (EVENT_IDX): ask for an interrupt once used.idx passes `v`. */
  setUsedEvent(v: number): void {
    this.mem.writeU16(AVAIL_ADDR + 4 + 2 * this.queueSize, v);
  }

  /** avail flags (VIRTQ_AVAIL_F_NO_INTERRUPT). */
  setAvailFlags(v: number): void {
    this.mem.writeU16(AVAIL_ADDR, v);
  }

  /** avail_event written by the device (EVENT_IDX). */
  availEvent(): number {
    return this.mem.readU16(USED_ADDR + 4 + 8 * this.queueSize);
  }
}

/** One split virtqueue at any layout, driver side (virtio_ring's producer, no EVENT_IDX, no indirect), for devices with several queues. */
export class Ring {
  private nextDesc = 0;
  private availIdx = 0;
  private lastUsed = 0;
  constructor(readonly mem: GuestMemory, readonly index: number, readonly size: number, readonly desc: number, readonly avail: number, readonly used: number) {}

  /** Put a chain in the descriptor table and the available ring; returns its head. */
  add(bufs: Buf[]): number {
    const head = this.nextDesc;
    bufs.forEach((b, k) => {
      const i = (head + k) % this.size;
      const last = k === bufs.length - 1;
      const a = this.desc + 16 * i;
      this.mem.writeU32(a, b.addr % 2 ** 32);
      this.mem.writeU32(a + 4, Math.floor(b.addr / 2 ** 32));
      this.mem.writeU32(a + 8, b.len);
      this.mem.writeU16(a + 12, (b.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT));
      this.mem.writeU16(a + 14, last ? 0 : (i + 1) % this.size);
    });
    this.nextDesc = (head + bufs.length) % this.size;
    this.mem.writeU16(this.avail + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.mem.writeU16(this.avail + 2, this.availIdx);
    return head;
  }

  /** Publish a raw avail.idx (to break the ring on purpose). */
  setAvailIdx(v: number): void {
    this.mem.writeU16(this.avail + 2, v);
  }

  takeUsed(): { id: number; len: number }[] {
    const idx = this.mem.readU16(this.used + 2);
    const out: { id: number; len: number }[] = [];
    while (this.lastUsed !== idx) {
      const e = this.used + 4 + 8 * (this.lastUsed % this.size);
      out.push({ id: this.mem.readU32(e), len: this.mem.readU32(e + 4) });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }
}

/**
 * The driver side shared by the tests of devices with several queues, as Linux's
 * virtio_mmio probe does it: a bump allocator over guest RAM, register access, feature
 * negotiation, and the queues laid out one after another from 0x8000_1000.
 */
export class MultiQueueDriver {
  private heap = RAM_BASE + 0x10_0000;
  rings: Ring[] = [];

  constructor(readonly dev: VirtioMmio, readonly mem: GuestMemory, readonly queueSize: number) {}

  r(off: number): number { return this.dev.read(off, 4); }
  w(off: number, v: number): void { this.dev.write(off, 4, v); }

  /** `len` zeroed bytes of guest RAM (16-aligned). */
  alloc(len: number): number {
    const a = this.heap;
    this.heap += Math.ceil(len / 16) * 16;
    this.mem.slice(a, len).fill(0);
    return a;
  }

  /** The device's 64 feature bits. */
  deviceFeatures(): bigint {
    this.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    const hi = this.r(VIRTIO_MMIO_DEVICE_FEATURES);
    this.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    return (BigInt(hi) << 32n) | BigInt(this.r(VIRTIO_MMIO_DEVICE_FEATURES));
  }

  /** Reset, ACKNOWLEDGE | DRIVER, write `f`, FEATURES_OK (asserted accepted). */
  negotiate(f: bigint): void {
    this.w(VIRTIO_MMIO_STATUS, 0);
    this.w(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    this.w(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    this.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    this.w(VIRTIO_MMIO_DRIVER_FEATURES, Number(f >> 32n));
    this.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    this.w(VIRTIO_MMIO_DRIVER_FEATURES, Number(f & 0xffffffffn));
    this.w(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if ((this.r(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK) === 0) throw new Error('FEATURES_OK refused');
  }

  /**
   * Queues 0..count-1, `queueSize` entries each, one after another; then `beforeDriverOk`
   * (e.g. buffers a driver queues during probe), then DRIVER_OK.
   */
  setupQueues(count: number, beforeDriverOk?: () => void): void {
    let area = RAM_BASE + 0x1000;
    this.rings = [];
    for (let i = 0; i < count; i++) {
      this.w(VIRTIO_MMIO_QUEUE_SEL, i);
      const max = this.r(VIRTIO_MMIO_QUEUE_NUM_MAX);
      if (max < this.queueSize) throw new Error(`queue ${i} max ${max}`);
      const n = this.queueSize;
      const desc = area;
      const avail = desc + 16 * n;
      const used = Math.ceil((avail + 6 + 2 * n) / 4) * 4;
      area = Math.ceil((used + 6 + 8 * n) / 4096) * 4096;
      const set = (lo: number, hi: number, v: number) => { this.w(lo, v % 2 ** 32); this.w(hi, Math.floor(v / 2 ** 32)); };
      this.w(VIRTIO_MMIO_QUEUE_NUM, n);
      set(VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, desc);
      set(VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, avail);
      set(VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, used);
      this.w(VIRTIO_MMIO_QUEUE_READY, 1);
      this.rings.push(new Ring(this.mem, i, n, desc, avail, used));
    }
    beforeDriverOk?.();
    this.w(VIRTIO_MMIO_STATUS, this.r(VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
  }

  kick(q: number): void { this.w(VIRTIO_MMIO_QUEUE_NOTIFY, q); }

  /** Read and acknowledge InterruptStatus, as vm_interrupt does. */
  ackInterrupt(): number {
    const s = this.r(VIRTIO_MMIO_INTERRUPT_STATUS);
    this.w(VIRTIO_MMIO_INTERRUPT_ACK, s);
    return s;
  }
}
