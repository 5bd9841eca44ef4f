import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  VirtioMmio,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_INT_VRING,
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_SHM_LEN_LOW,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VENDOR_ID,
  VIRTIO_MMIO_VERSION,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET,
  VIRTIO_STATUS_DRIVER_OK,
} from '../../src/devices/virtio/mmio.js';
import {
  VirtioBlk,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from '../../src/devices/virtio/blk.js';
import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../src/devices/virtio/queue.js';
import { IoLimiter } from '../../src/devices/io-limiter.js';
import type { BlockBackend } from '../../src/devices/bus.js';
import { RawBackend } from '../../src/devices/block/raw.js';
import { MemoryFile } from '../../src/devices/block/file.js';
import { DESC_ADDR, Driver, FakeIrq, INDIRECT_ADDR, MemBlock, RAM_BASE, makeRam, type Buf } from './helpers.js';

const DISK_BYTES = 64 * 512;
const RAM_SIZE = 1 << 20;

function setup(opts: { readonly?: boolean; serial?: string; queueSize?: number; limiter?: IoLimiter; backend?: BlockBackend } = {}) {
  const mem = makeRam(RAM_SIZE);
  const disk = new MemBlock(DISK_BYTES, opts.readonly ?? false);
  const blk = new VirtioBlk(opts.backend ?? disk, { serial: opts.serial ?? 'tsvisor-disk0', limiter: opts.limiter });
  const irq = new FakeIrq();
  const reasons: string[] = [];
  const dev = new VirtioMmio(blk, mem, irq, { onNeedsReset: (r) => reasons.push(r) });
  const drv = new Driver(dev, mem, opts.queueSize ?? 16);
  return { mem, disk, blk, irq, dev, drv, reasons };
}

/** Lay out a request as Linux's virtio_blk does: header (RO), data (RO for OUT, WO for IN), status (WO). */
function request(drv: Driver, type: number, sector: number, dataLen: number) {
  const hdr = drv.alloc(16);
  drv.mem.writeU32(hdr, type);
  drv.mem.writeU32(hdr + 4, 0);
  drv.mem.writeU64(hdr + 8, sector);
  const data = dataLen > 0 ? drv.alloc(dataLen) : 0;
  const status = drv.alloc(1);
  drv.mem.writeU8(status, 0xff);
  const bufs: Buf[] = [{ addr: hdr, len: 16 }];
  if (dataLen > 0) bufs.push({ addr: data, len: dataLen, write: type !== VIRTIO_BLK_T_OUT });
  bufs.push({ addr: status, len: 1, write: true });
  return { hdr, data, status, bufs };
}

function statusOf(drv: Driver, addr: number): number {
  return drv.mem.readU8(addr);
}

test('virtio-mmio identification registers and blk config', () => {
  const { dev, drv } = setup();
  assert.equal(dev.read(VIRTIO_MMIO_MAGIC_VALUE, 4), 0x74726976);
  assert.equal(dev.read(VIRTIO_MMIO_VERSION, 4), 2);
  assert.equal(dev.read(VIRTIO_MMIO_DEVICE_ID, 4), 2);
  assert.equal(dev.read(VIRTIO_MMIO_VENDOR_ID, 4), 0x554d4551);
  assert.equal(dev.read(VIRTIO_MMIO_SHM_LEN_LOW, 4), 0xffffffff);
  const f = drv.deviceFeatures();
  for (const bit of [VIRTIO_F_VERSION_1, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH]) {
    assert.notEqual(f & bit, 0n, `feature 0x${bit.toString(16)} offered`);
  }
  assert.equal(f & VIRTIO_BLK_F_RO, 0n);
  assert.equal(f & VIRTIO_F_RING_PACKED, 0n);
  // capacity (le64) as two 32-bit reads, as vm_get does; also byte-wide reads
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 0, 4), 64);
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 4, 4), 0);
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 0, 1), 64);
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 12, 4), 254); // seg_max
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 20, 4), 512); // blk_size
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 20, 2), 512);
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 0x80, 4), 0); // past the config structure
  assert.equal(dev.read(VIRTIO_MMIO_QUEUE_NUM_MAX, 4), 256);
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG_GENERATION, 4), 0);
  // registers need 32-bit access
  assert.equal(dev.read(VIRTIO_MMIO_MAGIC_VALUE, 2), 0);
});

test('FEATURES_OK is refused without VERSION_1 or with unoffered bits, accepted otherwise', () => {
  const { drv } = setup();
  assert.equal(drv.negotiate((f) => f & ~VIRTIO_F_VERSION_1), false);
  assert.equal(drv.negotiate((f) => f | VIRTIO_F_RING_PACKED), false);
  assert.equal(drv.negotiate((f) => f | (1n << 63n)), false);
  assert.equal(drv.negotiate((f) => f), true);
  assert.equal(drv.negotiate(() => VIRTIO_F_VERSION_1), true);
});

test('DRIVER_OK without FEATURES_OK puts the device in DEVICE_NEEDS_RESET', () => {
  const { dev, drv, irq } = setup();
  drv.w(VIRTIO_MMIO_STATUS, 0);
  drv.w(VIRTIO_MMIO_STATUS, 1 | 2 | 4);
  assert.notEqual(dev.read(VIRTIO_MMIO_STATUS, 4) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
  assert.equal(irq.level, true);
  assert.equal(dev.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4), VIRTIO_MMIO_INT_CONFIG);
});

test('status bits cannot be cleared except by a reset (§2.1.2): DRIVER_OK stays set', () => {
  const { dev, drv, disk } = setup();
  drv.init();
  const st = dev.read(VIRTIO_MMIO_STATUS, 4);
  assert.notEqual(st & VIRTIO_STATUS_DRIVER_OK, 0);
  drv.w(VIRTIO_MMIO_STATUS, st & ~VIRTIO_STATUS_DRIVER_OK);
  assert.equal(dev.read(VIRTIO_MMIO_STATUS, 4), st, 'the clear is ignored');
  drv.w(VIRTIO_MMIO_STATUS, st);
  const r = request(drv, VIRTIO_BLK_T_IN, 1, 512);
  drv.publish(drv.chain(r.bufs));
  drv.kick();
  assert.equal(statusOf(drv, r.status), VIRTIO_BLK_S_OK, 'still served, once');
  assert.deepEqual(drv.takeUsed().length, 1);
  assert.equal(disk.reads, 1);
});

test('read request: bytes, status, used ring and interrupt', () => {
  const { drv, disk, irq, blk, dev } = setup();
  drv.init();
  assert.notEqual(dev.read(VIRTIO_MMIO_STATUS, 4) & VIRTIO_STATUS_DRIVER_OK, 0);
  const r = request(drv, VIRTIO_BLK_T_IN, 3, 1024);
  const head = drv.chain(r.bufs);
  drv.publish(head);
  assert.equal(irq.level, false);
  drv.kick();
  assert.equal(statusOf(drv, r.status), VIRTIO_BLK_S_OK);
  assert.deepEqual(drv.mem.slice(r.data, 1024), disk.data.subarray(3 * 512, 5 * 512));
  assert.deepEqual(drv.takeUsed(), [{ id: head, len: 1025 }]);
  assert.equal(irq.level, true);
  assert.equal(drv.ackInterrupt(), VIRTIO_MMIO_INT_VRING);
  assert.equal(irq.level, false);
  assert.equal(blk.metrics.readBytes, 1024);
  assert.equal(blk.metrics.readRequests, 1);
  assert.equal(disk.writes, 0);
});

test('write request reaches the backend; flush calls backend.flush', () => {
  const { drv, disk, blk } = setup();
  drv.init();
  const w = request(drv, VIRTIO_BLK_T_OUT, 10, 512);
  drv.mem.slice(w.data, 512).fill(0xab);
  drv.publish(drv.chain(w.bufs));
  const f = request(drv, VIRTIO_BLK_T_FLUSH, 0, 0);
  const fh = drv.chain(f.bufs);
  drv.publish(fh);
  drv.kick();
  assert.equal(statusOf(drv, w.status), VIRTIO_BLK_S_OK);
  assert.equal(statusOf(drv, f.status), VIRTIO_BLK_S_OK);
  assert.ok(disk.data.subarray(10 * 512, 11 * 512).every((b) => b === 0xab));
  assert.notEqual(disk.data[11 * 512], 0xab);
  assert.equal(disk.flushes, 1);
  const used = drv.takeUsed();
  assert.equal(used.length, 2);
  assert.deepEqual(used[0].len, 1);
  assert.deepEqual(used[1], { id: fh, len: 1 });
  assert.equal(blk.metrics.writeBytes, 512);
  assert.equal(blk.metrics.flushRequests, 1);
});

test('GET_ID returns the serial, NUL-padded to 20 bytes', () => {
  const { drv } = setup({ serial: 'disk-7' });
  drv.init();
  const r = request(drv, VIRTIO_BLK_T_GET_ID, 0, 20);
  drv.mem.slice(r.data, 20).fill(0xee);
  drv.publish(drv.chain(r.bufs));
  drv.kick();
  assert.equal(statusOf(drv, r.status), VIRTIO_BLK_S_OK);
  const id = drv.mem.slice(r.data, 20);
  assert.equal(String.fromCharCode(...id.subarray(0, 6)), 'disk-7');
  assert.ok(id.subarray(6).every((b) => b === 0));
  assert.equal(drv.takeUsed()[0].len, 21);
});

test('unknown request types get UNSUPP', () => {
  const { drv, blk } = setup();
  drv.init();
  const r = request(drv, 99, 0, 0);
  drv.publish(drv.chain(r.bufs));
  drv.kick();
  assert.equal(statusOf(drv, r.status), VIRTIO_BLK_S_UNSUPP);
  assert.equal(blk.metrics.unsupported, 1);
});

test('any framing: header+data in one descriptor, data split, data+status together', () => {
  const { drv, disk } = setup();
  drv.init();
  // OUT: header and first 100 data bytes in one buffer, rest in another
  const buf = drv.alloc(16 + 512);
  drv.mem.writeU32(buf, VIRTIO_BLK_T_OUT);
  drv.mem.writeU64(buf + 8, 2);
  for (let i = 0; i < 512; i++) drv.mem.writeU8(buf + 16 + i, i & 0xff);
  const st1 = drv.alloc(1);
  drv.publish(drv.chain([{ addr: buf, len: 116 }, { addr: buf + 116, len: 412 }, { addr: st1, len: 1, write: true }]));
  // IN: data in three pieces, the last piece also holding the status byte
  const hdr = drv.alloc(16);
  drv.mem.writeU32(hdr, VIRTIO_BLK_T_IN);
  drv.mem.writeU64(hdr + 8, 2);
  const a = drv.alloc(100);
  const b = drv.alloc(300);
  const c = drv.alloc(112 + 1);
  const head2 = drv.chain([{ addr: hdr, len: 16 }, { addr: a, len: 100, write: true }, { addr: b, len: 300, write: true }, { addr: c, len: 113, write: true }]);
  drv.publish(head2);
  drv.kick();
  assert.equal(statusOf(drv, st1), VIRTIO_BLK_S_OK);
  for (let i = 0; i < 512; i++) assert.equal(disk.data[2 * 512 + i], i & 0xff);
  const back = new Uint8Array([...drv.mem.slice(a, 100), ...drv.mem.slice(b, 300), ...drv.mem.slice(c, 112)]);
  assert.deepEqual(back, disk.data.subarray(1024, 1536));
  assert.equal(statusOf(drv, c + 112), VIRTIO_BLK_S_OK);
  assert.deepEqual(drv.takeUsed()[1], { id: head2, len: 513 });
});

test('a backend with vectored reads and writes gets one call per request, with the request\'s segments in order', () => {
  const image = new Uint8Array(DISK_BYTES).map((_, i) => (i * 13) & 0xff);
  const file = new MemoryFile(image);
  const raw = new RawBackend(file);
  const calls: string[] = [];
  const backend: BlockBackend = {
    get size() { return raw.size; },
    readonly: false,
    read: () => assert.fail('read per segment'),
    write: () => assert.fail('write per segment'),
    readv: (bufs, offset) => { calls.push(`readv ${bufs.map((b) => b.length).join('+')} @${offset}`); raw.readv(bufs, offset); },
    writev: (bufs, offset) => { calls.push(`writev ${bufs.map((b) => b.length).join('+')} @${offset}`); raw.writev(bufs, offset); },
    flush: () => raw.flush(),
  };
  const { drv } = setup({ backend });
  drv.init();
  // OUT of 512 bytes at sector 2 in two segments, then IN of sectors 1-2 in three
  const hdrW = drv.alloc(16);
  drv.mem.writeU32(hdrW, VIRTIO_BLK_T_OUT);
  drv.mem.writeU64(hdrW + 8, 2);
  const w1 = drv.alloc(200), w2 = drv.alloc(312), st1 = drv.alloc(1);
  drv.mem.slice(w1, 200).fill(0x11);
  drv.mem.slice(w2, 312).fill(0x22);
  drv.publish(drv.chain([{ addr: hdrW, len: 16 }, { addr: w1, len: 200 }, { addr: w2, len: 312 }, { addr: st1, len: 1, write: true }]));
  const hdrR = drv.alloc(16);
  drv.mem.writeU32(hdrR, VIRTIO_BLK_T_IN);
  drv.mem.writeU64(hdrR + 8, 1);
  const a = drv.alloc(100), b = drv.alloc(700), c = drv.alloc(224), st2 = drv.alloc(1);
  drv.publish(drv.chain([{ addr: hdrR, len: 16 }, { addr: a, len: 100, write: true }, { addr: b, len: 700, write: true }, { addr: c, len: 224, write: true }, { addr: st2, len: 1, write: true }]));
  drv.kick();
  assert.deepEqual(calls, ['writev 200+312 @1024', 'readv 100+700+224 @512']);
  assert.deepEqual([statusOf(drv, st1), statusOf(drv, st2)], [VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
  const expected = image.slice(512, 1536);
  expected.fill(0x11, 512, 712);
  expected.fill(0x22, 712, 1024);
  assert.deepEqual(new Uint8Array([...drv.mem.slice(a, 100), ...drv.mem.slice(b, 700), ...drv.mem.slice(c, 224)]), expected);
  assert.deepEqual(file.bytes().subarray(512, 1536), expected);
});

test('indirect descriptor table', () => {
  const { drv, disk } = setup();
  drv.init();
  const r = request(drv, VIRTIO_BLK_T_IN, 5, 512);
  const head = drv.indirectChain(r.bufs);
  drv.publish(head);
  drv.kick();
  assert.equal(statusOf(drv, r.status), VIRTIO_BLK_S_OK);
  assert.deepEqual(drv.mem.slice(r.data, 512), disk.data.subarray(5 * 512, 6 * 512));
  assert.deepEqual(drv.takeUsed(), [{ id: head, len: 513 }]);
});

test('a request over seg_max data segments fails with IOERR; one within it is served', () => {
  const { drv, disk, blk } = setup();
  drv.init();
  // the device advertises seg_max = 254 (QueueNumMax 256 minus header and status)
  assert.equal(drv.dev.read(VIRTIO_MMIO_CONFIG + 12, 4), 254);
  const split = (segments: number, table: number) => {
    const r = request(drv, VIRTIO_BLK_T_IN, 0, 4096);
    const step = 4096 / segments;
    const bufs: Buf[] = [r.bufs[0]];
    for (let k = 0; k < segments; k++) bufs.push({ addr: r.data + k * step, len: step, write: true });
    bufs.push(r.bufs[2]);
    const head = drv.indirectChain(bufs, table);
    drv.publish(head);
    drv.kick();
    return r;
  };
  const over = split(256, INDIRECT_ADDR); // 258 descriptors
  assert.equal(statusOf(drv, over.status), VIRTIO_BLK_S_IOERR);
  assert.equal(disk.reads, 0, 'refused before any backend access');
  const within = split(128, drv.alloc(16 * 130));
  assert.equal(statusOf(drv, within.status), VIRTIO_BLK_S_OK);
  assert.deepEqual(drv.mem.slice(within.data, 4096), disk.data.subarray(0, 4096));
  assert.equal(blk.metrics.ioErrors, 1);
});

test('out-of-range sectors and partial sectors fail with IOERR and touch nothing', () => {
  const { drv, disk, blk } = setup();
  drv.init();
  const before = disk.data.slice();
  const cases = [
    request(drv, VIRTIO_BLK_T_OUT, 63, 1024), // crosses the end
    request(drv, VIRTIO_BLK_T_OUT, 64, 512), // starts at the end
    request(drv, VIRTIO_BLK_T_IN, 2 ** 40, 512), // far away
    request(drv, VIRTIO_BLK_T_OUT, 0, 100), // not a multiple of 512
  ];
  for (const c of cases) drv.publish(drv.chain(c.bufs));
  // sector 2^63 (beyond 2^53): write the header's high word by hand
  const huge = request(drv, VIRTIO_BLK_T_IN, 0, 512);
  drv.mem.writeU32(huge.hdr + 12, 0x80000000);
  drv.publish(drv.chain(huge.bufs));
  drv.kick();
  for (const c of [...cases, huge]) assert.equal(statusOf(drv, c.status), VIRTIO_BLK_S_IOERR);
  assert.equal(disk.writes, 0);
  assert.deepEqual(disk.data, before);
  assert.equal(drv.takeUsed().length, 5);
  assert.equal(blk.metrics.ioErrors, 5);
});

test('readonly disk: VIRTIO_BLK_F_RO offered, writes fail with IOERR and never reach the backend', () => {
  const { drv, disk, blk } = setup({ readonly: true });
  assert.notEqual(drv.deviceFeatures() & VIRTIO_BLK_F_RO, 0n);
  drv.init();
  const before = disk.data.slice();
  const w = request(drv, VIRTIO_BLK_T_OUT, 0, 512);
  drv.mem.slice(w.data, 512).fill(1);
  drv.publish(drv.chain(w.bufs));
  const r = request(drv, VIRTIO_BLK_T_IN, 0, 512);
  drv.publish(drv.chain(r.bufs));
  const f = request(drv, VIRTIO_BLK_T_FLUSH, 0, 0);
  drv.publish(drv.chain(f.bufs));
  drv.kick();
  assert.equal(statusOf(drv, w.status), VIRTIO_BLK_S_IOERR);
  assert.equal(statusOf(drv, r.status), VIRTIO_BLK_S_OK);
  assert.equal(statusOf(drv, f.status), VIRTIO_BLK_S_OK);
  assert.equal(disk.writes, 0);
  assert.deepEqual(disk.data, before);
  assert.deepEqual(drv.mem.slice(r.data, 512), before.subarray(0, 512));
  assert.equal(blk.metrics.writeBytes, 0);
});

test('backend failure is reported as IOERR', () => {
  const { drv, disk } = setup();
  drv.init();
  disk.failNext = true;
  const r = request(drv, VIRTIO_BLK_T_IN, 0, 512);
  drv.publish(drv.chain(r.bufs));
  drv.kick();
  assert.equal(statusOf(drv, r.status), VIRTIO_BLK_S_IOERR);
  assert.equal(drv.takeUsed().length, 1);
});

test('buffers outside RAM (data, huge length, header) give IOERR, no backend write, no exception', () => {
  const { drv, disk, dev } = setup({ queueSize: 32 });
  drv.init();
  const before = disk.data.slice();
  const outside = request(drv, VIRTIO_BLK_T_OUT, 0, 512);
  outside.bufs[1].addr = RAM_BASE + RAM_SIZE - 256; // runs off the end of RAM
  const below = request(drv, VIRTIO_BLK_T_OUT, 0, 512);
  below.bufs[1].addr = 0x1000; // below RAM (host memory must never be touched)
  const hugeLen = request(drv, VIRTIO_BLK_T_OUT, 0, 512);
  hugeLen.bufs[1].len = 0xffffffff;
  const hugeIn = request(drv, VIRTIO_BLK_T_IN, 0, 512);
  hugeIn.bufs[1].len = 0xfffffe00;
  const badHdr = request(drv, VIRTIO_BLK_T_OUT, 0, 512);
  badHdr.bufs[0].addr = 2 ** 52;
  const shortHdr = request(drv, VIRTIO_BLK_T_OUT, 0, 512);
  shortHdr.bufs[0].len = 8;
  const all = [outside, below, hugeLen, hugeIn, badHdr, shortHdr];
  for (const c of all) drv.publish(drv.chain(c.bufs));
  assert.doesNotThrow(() => drv.kick());
  for (const c of all) assert.equal(statusOf(drv, c.status), VIRTIO_BLK_S_IOERR);
  assert.equal(disk.writes, 0);
  assert.deepEqual(disk.data, before);
  assert.equal(drv.takeUsed().length, all.length);
  assert.equal(dev.read(VIRTIO_MMIO_STATUS, 4) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
});

/** Expect the device to be in DEVICE_NEEDS_RESET with a config interrupt, no used entry, backend untouched. */
function expectNeedsReset(s: ReturnType<typeof setup>, usedBefore = 0): void {
  const { dev, drv, irq, disk, reasons } = s;
  assert.notEqual(dev.read(VIRTIO_MMIO_STATUS, 4) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0, 'DEVICE_NEEDS_RESET set');
  assert.notEqual(dev.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4) & VIRTIO_MMIO_INT_CONFIG, 0, 'config interrupt');
  assert.equal(irq.level, true);
  assert.equal(drv.takeUsed().length, usedBefore);
  assert.equal(disk.writes, 0);
  assert.equal(reasons.length, 1);
  assert.ok(dev.lastError);
}

test('next index out of range -> DEVICE_NEEDS_RESET', () => {
  const s = setup();
  s.drv.init();
  const r = request(s.drv, VIRTIO_BLK_T_OUT, 0, 512);
  const head = s.drv.chain(r.bufs);
  s.drv.writeDesc(DESC_ADDR, head, r.hdr, 16, VIRTQ_DESC_F_NEXT, 16); // queue size is 16
  s.drv.publish(head);
  assert.doesNotThrow(() => s.drv.kick());
  expectNeedsReset(s);
  assert.match(s.reasons[0], /out of range/);
});

test('loop in a descriptor chain -> DEVICE_NEEDS_RESET', () => {
  const s = setup();
  s.drv.init();
  const hdr = s.drv.alloc(16);
  s.drv.mem.writeU32(hdr, VIRTIO_BLK_T_OUT);
  const data = s.drv.alloc(512);
  s.drv.writeDesc(DESC_ADDR, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
  s.drv.writeDesc(DESC_ADDR, 1, data, 512, VIRTQ_DESC_F_NEXT, 0);
  s.drv.publish(0);
  s.drv.kick();
  expectNeedsReset(s);
  assert.match(s.reasons[0], /loop/);
});

test('loop inside an indirect table -> DEVICE_NEEDS_RESET', () => {
  const s = setup();
  s.drv.init();
  const hdr = s.drv.alloc(16);
  s.drv.writeDesc(INDIRECT_ADDR, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
  s.drv.writeDesc(INDIRECT_ADDR, 1, hdr, 16, VIRTQ_DESC_F_NEXT, 0);
  s.drv.writeDesc(DESC_ADDR, 0, INDIRECT_ADDR, 32, VIRTQ_DESC_F_INDIRECT, 0);
  s.drv.publish(0);
  s.drv.kick();
  expectNeedsReset(s);
});

test('indirect table outside RAM, of bad length, nested, or not negotiated -> DEVICE_NEEDS_RESET', () => {
  const variants: [string, (s: ReturnType<typeof setup>) => void][] = [
    ['outside RAM', (s) => s.drv.writeDesc(DESC_ADDR, 0, RAM_BASE + RAM_SIZE - 16, 48, VIRTQ_DESC_F_INDIRECT, 0)],
    ['huge', (s) => s.drv.writeDesc(DESC_ADDR, 0, INDIRECT_ADDR, 0xfffffff0, VIRTQ_DESC_F_INDIRECT, 0)],
    ['length 20', (s) => s.drv.writeDesc(DESC_ADDR, 0, INDIRECT_ADDR, 20, VIRTQ_DESC_F_INDIRECT, 0)],
    ['INDIRECT|NEXT', (s) => s.drv.writeDesc(DESC_ADDR, 0, INDIRECT_ADDR, 48, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1)],
    ['nested', (s) => {
      s.drv.writeDesc(INDIRECT_ADDR, 0, INDIRECT_ADDR + 0x100, 32, VIRTQ_DESC_F_INDIRECT, 0);
      s.drv.writeDesc(DESC_ADDR, 0, INDIRECT_ADDR, 16, VIRTQ_DESC_F_INDIRECT, 0);
    }],
    ['next out of table', (s) => {
      const r = request(s.drv, VIRTIO_BLK_T_IN, 0, 512);
      s.drv.writeDesc(INDIRECT_ADDR, 0, r.hdr, 16, VIRTQ_DESC_F_NEXT, 3);
      s.drv.writeDesc(DESC_ADDR, 0, INDIRECT_ADDR, 48, VIRTQ_DESC_F_INDIRECT, 0);
    }],
  ];
  for (const [name, make] of variants) {
    const s = setup();
    s.drv.init();
    make(s);
    s.drv.publish(0);
    assert.doesNotThrow(() => s.drv.kick(), name);
    expectNeedsReset(s);
  }
  // INDIRECT used although VIRTIO_F_INDIRECT_DESC was not negotiated
  const s = setup();
  s.drv.init((f) => f & ~VIRTIO_F_INDIRECT_DESC);
  const r = request(s.drv, VIRTIO_BLK_T_IN, 0, 512);
  s.drv.publish(s.drv.indirectChain(r.bufs));
  s.drv.kick();
  expectNeedsReset(s);
});

test('no writable status byte, or status outside RAM -> DEVICE_NEEDS_RESET', () => {
  {
    const s = setup();
    s.drv.init();
    const r = request(s.drv, VIRTIO_BLK_T_OUT, 0, 512);
    s.drv.publish(s.drv.chain(r.bufs.slice(0, 2))); // header + data, no status
    s.drv.kick();
    expectNeedsReset(s);
  }
  {
    const s = setup();
    s.drv.init();
    const r = request(s.drv, VIRTIO_BLK_T_OUT, 0, 512);
    r.bufs[2].addr = RAM_BASE + RAM_SIZE; // one past the end
    s.drv.publish(s.drv.chain(r.bufs));
    s.drv.kick();
    expectNeedsReset(s);
  }
});

test('readable descriptor after a writable one -> DEVICE_NEEDS_RESET', () => {
  const s = setup();
  s.drv.init();
  const r = request(s.drv, VIRTIO_BLK_T_OUT, 0, 512);
  s.drv.publish(s.drv.chain([r.bufs[0], r.bufs[2], r.bufs[1]]));
  s.drv.kick();
  expectNeedsReset(s);
});

test('head index out of range, or avail.idx too far ahead -> DEVICE_NEEDS_RESET', () => {
  {
    const s = setup();
    s.drv.init();
    s.drv.publish(100);
    s.drv.kick();
    expectNeedsReset(s);
  }
  {
    const s = setup();
    s.drv.init();
    s.drv.mem.writeU16(0x8000_3000 + 2, 17); // 17 entries in a 16-entry ring
    s.drv.kick();
    expectNeedsReset(s);
  }
});

test('queue areas outside RAM or misaligned are refused at QueueReady', () => {
  for (const layout of [{ desc: RAM_BASE + RAM_SIZE - 64 }, { used: 0x1000 }, { desc: DESC_ADDR + 8 }, { avail: 2 ** 40 }, { size: 12 }, { size: 512 }]) {
    const s = setup();
    assert.equal(s.drv.negotiate(), true);
    s.drv.setupQueue(layout);
    assert.equal(s.dev.read(VIRTIO_MMIO_QUEUE_READY, 4), 0, JSON.stringify(layout));
    assert.notEqual(s.dev.read(VIRTIO_MMIO_STATUS, 4) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
  }
});

test('a good request before a malformed one is completed; the device stops until reset, then works again', () => {
  const s = setup();
  const { drv, disk } = s;
  drv.init();
  const good = request(drv, VIRTIO_BLK_T_IN, 1, 512);
  drv.publish(drv.chain(good.bufs));
  drv.publish(200); // bad head
  drv.kick();
  assert.equal(statusOf(drv, good.status), VIRTIO_BLK_S_OK);
  expectNeedsReset(s, 1);
  // further notifications are ignored
  const later = request(drv, VIRTIO_BLK_T_IN, 1, 512);
  drv.publish(drv.chain(later.bufs));
  drv.kick();
  assert.equal(statusOf(drv, later.status), 0xff);
  // reset and start over
  drv.w(VIRTIO_MMIO_STATUS, 0);
  assert.equal(drv.r(VIRTIO_MMIO_STATUS), 0);
  assert.equal(drv.r(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
  assert.equal(s.irq.level, false);
  drv.mem.slice(0x8000_1000, 0x4000).fill(0);
  drv.availIdx = 0;
  drv.lastUsed = 0;
  drv.init();
  const again = request(drv, VIRTIO_BLK_T_IN, 4, 512);
  drv.publish(drv.chain(again.bufs));
  drv.kick();
  assert.equal(statusOf(drv, again.status), VIRTIO_BLK_S_OK);
  assert.deepEqual(drv.mem.slice(again.data, 512), disk.data.subarray(2048, 2560));
});

test('VIRTQ_AVAIL_F_NO_INTERRUPT suppresses the interrupt (without EVENT_IDX)', () => {
  const { drv, irq } = setup();
  drv.init((f) => f & ~VIRTIO_F_EVENT_IDX);
  drv.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  const r = request(drv, VIRTIO_BLK_T_IN, 0, 512);
  drv.publish(drv.chain(r.bufs));
  drv.kick();
  assert.equal(drv.takeUsed().length, 1);
  assert.equal(irq.level, false);
  drv.setAvailFlags(0);
  const r2 = request(drv, VIRTIO_BLK_T_IN, 0, 512);
  drv.publish(drv.chain(r2.bufs));
  drv.kick();
  assert.equal(irq.level, true);
});

test('EVENT_IDX: interrupt only when used.idx passes used_event; avail_event published', () => {
  const { drv, irq } = setup();
  drv.init();
  drv.setUsedEvent(2); // interrupt when the 3rd buffer is used
  for (let i = 0; i < 2; i++) {
    const r = request(drv, VIRTIO_BLK_T_IN, i, 512);
    drv.publish(drv.chain(r.bufs));
    drv.kick();
    assert.equal(irq.level, false, `no interrupt after buffer ${i + 1}`);
  }
  assert.equal(drv.availEvent(), 2);
  const r = request(drv, VIRTIO_BLK_T_IN, 2, 512);
  drv.publish(drv.chain(r.bufs));
  drv.kick();
  assert.equal(irq.level, true);
  assert.equal(drv.takeUsed().length, 3);
  assert.equal(drv.availEvent(), 3);
});

test('save/restore mid-stream keeps ring positions, queues and counters', () => {
  const a = setup();
  a.drv.init();
  for (let i = 0; i < 3; i++) {
    const r = request(a.drv, VIRTIO_BLK_T_IN, i, 512);
    a.drv.publish(a.drv.chain(r.bufs));
  }
  a.drv.kick();
  a.drv.ackInterrupt();
  assert.equal(a.drv.takeUsed().length, 3);
  const state = JSON.parse(JSON.stringify(a.dev.save()));

  // a fresh device over the same RAM and disk (as after migration)
  const irq = new FakeIrq();
  const blk = new VirtioBlk(a.disk, { serial: 'x' });
  const dev = new VirtioMmio(blk, a.mem, irq);
  dev.restore(state);
  assert.equal(blk.metrics.readRequests, 3);
  assert.equal(dev.read(VIRTIO_MMIO_STATUS, 4) & VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_DRIVER_OK);
  assert.equal(dev.read(VIRTIO_MMIO_QUEUE_READY, 4), 1);
  const drv = a.drv;
  (drv as { dev: VirtioMmio }).dev = dev;
  const w = request(drv, VIRTIO_BLK_T_OUT, 7, 512);
  drv.mem.slice(w.data, 512).fill(0x5a);
  const head = drv.chain(w.bufs);
  drv.publish(head);
  drv.kick();
  assert.equal(statusOf(drv, w.status), VIRTIO_BLK_S_OK);
  assert.deepEqual(drv.takeUsed(), [{ id: head, len: 1 }]);
  assert.ok(a.disk.data.subarray(7 * 512, 8 * 512).every((b) => b === 0x5a));
  assert.equal(irq.level, true);
  assert.equal(blk.metrics.writeRequests, 1);
});

test('restore processes buffers made available before the snapshot was taken', () => {
  const a = setup();
  a.drv.init();
  const r = request(a.drv, VIRTIO_BLK_T_IN, 1, 512);
  a.drv.publish(a.drv.chain(r.bufs)); // published, not yet kicked
  const state = JSON.parse(JSON.stringify(a.dev.save()));
  const blk = new VirtioBlk(a.disk);
  const irq = new FakeIrq();
  new VirtioMmio(blk, a.mem, irq).restore(state);
  assert.equal(statusOf(a.drv, r.status), VIRTIO_BLK_S_OK);
  assert.equal(irq.level, true);
});

test('notifications before DRIVER_OK or for unknown queues are ignored', () => {
  const { drv, disk } = setup();
  assert.equal(drv.negotiate(), true);
  drv.setupQueue();
  const r = request(drv, VIRTIO_BLK_T_IN, 0, 512);
  drv.publish(drv.chain(r.bufs));
  drv.kick();
  drv.kick(5);
  assert.equal(statusOf(drv, r.status), 0xff);
  assert.equal(disk.reads, 0);
  drv.driverOk();
  drv.kick();
  assert.equal(statusOf(drv, r.status), VIRTIO_BLK_S_OK);
});

test('descriptor flags with unknown bits and writes flagged on the indirect descriptor itself are tolerated', () => {
  const { drv } = setup();
  drv.init();
  const r = request(drv, VIRTIO_BLK_T_IN, 0, 512);
  const head = drv.indirectChain(r.bufs);
  // the device must ignore VIRTQ_DESC_F_WRITE on a descriptor that points to an indirect table
  drv.writeDesc(DESC_ADDR, head, INDIRECT_ADDR, 48, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
  drv.publish(head);
  drv.kick();
  assert.equal(statusOf(drv, r.status), VIRTIO_BLK_S_OK);
});

test('virtio-blk with an I/O limiter: requests beyond the rate wait in the queue and a timer serves them at the rate', async () => {
  // 20 requests/s, a bucket 2 deep: of 10 requests queued at once (30 descriptors), 2 go now, 8 over ~400 ms
  const limiter = new IoLimiter({ iops: 20, bps: 0 });
  const { drv, blk } = setup({ limiter, queueSize: 32 });
  drv.init();
  const reqs = Array.from({ length: 10 }, (_, i) => request(drv, VIRTIO_BLK_T_IN, i, 512));
  const t0 = performance.now();
  for (const r of reqs) drv.publish(drv.chain(r.bufs));
  drv.kick();
  const first = drv.takeUsed().length;
  assert.ok(first >= 2 && first <= 3, `served at once: ${first}`);
  let done = first;
  while (done < 10 && performance.now() - t0 < 5000) {
    await new Promise((r) => setTimeout(r, 20));
    done += drv.takeUsed().length;
  }
  const ms = performance.now() - t0;
  assert.equal(done, 10, 'every request is served in the end');
  assert.ok(ms >= 350, `8 requests over the burst at 20/s take at least 350 ms, took ${ms.toFixed(0)}`);
  assert.ok(reqs.every((r) => statusOf(drv, r.status) === VIRTIO_BLK_S_OK));
  assert.ok(limiter.throttled > 0);
  assert.equal(blk.metrics.readRequests, 10);
  // limits can change at any time; none: everything goes at once
  limiter.set({ iops: 0, bps: 0 });
  const more = Array.from({ length: 10 }, (_, i) => request(drv, VIRTIO_BLK_T_IN, i, 512));
  for (const r of more) drv.publish(drv.chain(r.bufs));
  drv.kick();
  assert.equal(drv.takeUsed().length, 10);
  assert.throws(() => limiter.set({ iops: -1, bps: 0 }), RangeError);
});

test('I/O limiter: the smaller of the user\'s limits and the daemon\'s share is in force; requests, bytes and busy time are metered', () => {
  let now = 0;
  const limiter = new IoLimiter({ iops: 100, bps: 0 }, () => now);
  assert.equal(limiter.active, true);
  limiter.setShare({ iops: 40, bps: 1 << 20 });
  assert.deepEqual(limiter.current, { iops: 100, bps: 0 }, 'the user\'s limits are kept');
  assert.deepEqual(limiter.share, { iops: 40, bps: 1 << 20 });
  // 40/s with a bucket 4 deep: 5 requests pass at once (the 5th into debt), the 6th waits 25 ms
  for (let i = 0; i < 5; i++) { assert.equal(limiter.delayMs(), 0); limiter.charge(4096, now); }
  assert.equal(limiter.delayMs(), 25);
  now += 25;
  assert.equal(limiter.delayMs(), 0);
  const started = now;
  now += 3; // served in 3 ms
  limiter.charge(4096, started);
  assert.deepEqual(limiter.meter, { ops: 6, bytes: 6 * 4096, serviceMs: 3, waitMs: 25 });
  // the share off: the user's 100/s again
  limiter.setShare({ iops: 0, bps: 0 });
  for (let i = 0; i < 11; i++) { assert.equal(limiter.delayMs(), 0); limiter.charge(512); }
  assert.ok(limiter.delayMs() > 0);
  limiter.cancelWait();
  limiter.set({ iops: 0, bps: 0 });
  assert.equal(limiter.active, false);
  assert.throws(() => limiter.setShare({ iops: -1, bps: 0 }), RangeError);
});
