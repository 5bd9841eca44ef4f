import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Virtqueue,
  VirtqueueError,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from '../../src/devices/virtio/queue.js';
import { makeRam, RAM_BASE } from './helpers.js';

const DESC = RAM_BASE + 0x1000;
const AVAIL = RAM_BASE + 0x2000;
const USED = RAM_BASE + 0x3000;
const SIZE = 8;

function setup(state?: { lastAvail: number; usedIdx: number; signalledUsed: number }, features = { indirect: true, eventIdx: false }) {
  const mem = makeRam(1 << 20);
  const q = new Virtqueue(mem, { size: SIZE, desc: DESC, driver: AVAIL, device: USED }, features, state);
  const desc = (table: number, i: number, addr: number, len: number, flags: number, next = 0) => {
    mem.writeU64(table + 16 * i, addr);
    mem.writeU32(table + 16 * i + 8, len);
    mem.writeU16(table + 16 * i + 12, flags);
    mem.writeU16(table + 16 * i + 14, next);
  };
  let availIdx = state?.lastAvail ?? 0;
  const publish = (head: number) => {
    mem.writeU16(AVAIL + 4 + 2 * (availIdx % SIZE), head);
    availIdx = (availIdx + 1) & 0xffff;
    mem.writeU16(AVAIL + 2, availIdx);
  };
  return { mem, q, desc, publish };
}

test('pop walks a chain into readable and writable parts; pushUsed writes the used ring', () => {
  const { q, desc, publish, mem } = setup();
  desc(DESC, 2, RAM_BASE + 0x4000, 16, VIRTQ_DESC_F_NEXT, 5);
  desc(DESC, 5, RAM_BASE + 0x5000, 100, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 7);
  desc(DESC, 7, RAM_BASE + 0x6000, 1, VIRTQ_DESC_F_WRITE);
  assert.equal(q.pop(), null);
  publish(2);
  assert.equal(q.hasAvailable(), true);
  const c = q.pop()!;
  assert.equal(c.head, 2);
  assert.deepEqual(c.readable, [{ addr: RAM_BASE + 0x4000, len: 16, writable: false }]);
  assert.equal(c.writable.length, 2);
  assert.equal(c.readableLength, 16);
  assert.equal(c.writableLength, 101);
  assert.equal(q.pop(), null);
  q.pushUsed(2, 101);
  assert.equal(mem.readU16(USED + 2), 1);
  assert.equal(mem.readU32(USED + 4), 2);
  assert.equal(mem.readU32(USED + 8), 101);
  assert.equal(q.needsNotification(), true);
  assert.equal(q.needsNotification(), false, 'nothing new since');
});

test('pushUsedMany writes every entry and moves used.idx by their count', () => {
  const { q, mem } = setup({ lastAvail: 0, usedIdx: 65534, signalledUsed: 65534 });
  mem.writeU16(USED + 2, 65534);
  q.pushUsedMany([{ head: 3, len: 4096 }, { head: 6, len: 4096 }, { head: 1, len: 12 }]);
  assert.equal(mem.readU16(USED + 2), 1, 'used.idx wrapped past 65535 by 3');
  assert.deepEqual([0, 1, 2].map((i) => mem.readU32(USED + 4 + 8 * ((65534 + i) % SIZE))), [3, 6, 1]);
  assert.deepEqual([0, 1, 2].map((i) => mem.readU32(USED + 8 + 8 * ((65534 + i) % SIZE))), [4096, 4096, 12]);
  assert.equal(q.needsNotification(), true);
});

test('16-bit ring indexes wrap around', () => {
  const { q, desc, publish, mem } = setup({ lastAvail: 65534, usedIdx: 65534, signalledUsed: 65534 });
  for (let i = 0; i < 4; i++) desc(DESC, i, RAM_BASE + 0x4000, 1, VIRTQ_DESC_F_WRITE);
  for (let i = 0; i < 4; i++) publish(i);
  assert.equal(mem.readU16(AVAIL + 2), 2);
  const heads: number[] = [];
  for (let c = q.pop(); c; c = q.pop()) {
    heads.push(c.head);
    q.pushUsed(c.head, 1);
  }
  assert.deepEqual(heads, [0, 1, 2, 3]);
  assert.equal(mem.readU16(USED + 2), 2);
  assert.equal(mem.readU32(USED + 4 + 8 * (65535 % SIZE)), 1);
  assert.deepEqual(q.save(), { lastAvail: 2, usedIdx: 2, signalledUsed: 65534 });
});

test('checkBuffers splits ranges across descriptors and rejects anything outside RAM', () => {
  const { q } = setup();
  const descs = [
    { addr: RAM_BASE + 0x100, len: 10, writable: false },
    { addr: RAM_BASE + 0x200, len: 20, writable: false },
  ];
  assert.deepEqual(q.checkBuffers(descs, 5, 10), [{ addr: RAM_BASE + 0x105, len: 5 }, { addr: RAM_BASE + 0x200, len: 5 }]);
  assert.equal(q.checkBuffers(descs, 0, 31), null, 'too short');
  assert.equal(q.checkBuffers([{ addr: RAM_BASE + 0xffff0, len: 0x20, writable: true }], 0, 0x20), null);
  assert.equal(q.checkBuffers([{ addr: 2 ** 64, len: 1, writable: true }], 0, 1), null);
});

test('indirect tables are bounded by their size and by VIRTQ_MAX_INDIRECT_CHAIN', () => {
  const { q, desc, publish, mem } = setup();
  const table = RAM_BASE + 0x8000;
  // a 5000-entry table whose chain never ends within 4096 steps
  for (let i = 0; i < 5000; i++) desc(table, i, RAM_BASE, 1, VIRTQ_DESC_F_NEXT, i + 1);
  desc(DESC, 0, table, 16 * 5000, VIRTQ_DESC_F_INDIRECT);
  publish(0);
  assert.throws(() => q.pop(), VirtqueueError);
  void mem;
});

test('layout validation and errors are VirtqueueErrors', () => {
  const mem = makeRam(1 << 16);
  const f = { indirect: false, eventIdx: false };
  assert.throws(() => new Virtqueue(mem, { size: 0, desc: DESC, driver: AVAIL, device: USED }, f), VirtqueueError);
  assert.throws(() => new Virtqueue(mem, { size: 65536, desc: DESC, driver: AVAIL, device: USED }, f), VirtqueueError);
  assert.throws(() => new Virtqueue(mem, { size: 8, desc: DESC + 4, driver: AVAIL, device: USED }, f), VirtqueueError);
  assert.throws(() => new Virtqueue(mem, { size: 8, desc: DESC, driver: AVAIL + 1, device: USED }, f), VirtqueueError);
  assert.throws(() => new Virtqueue(mem, { size: 8, desc: DESC, driver: AVAIL, device: USED + 2 }, f), VirtqueueError);
  assert.throws(() => new Virtqueue(mem, { size: 8, desc: DESC, driver: AVAIL, device: RAM_BASE + 0xfff0 }, f), VirtqueueError);
  assert.throws(() => new Virtqueue(mem, { size: 8, desc: 0, driver: AVAIL, device: USED }, f), VirtqueueError);
});

test('EVENT_IDX: avail_event follows the consumer, used_event gates notifications across wrap', () => {
  const { q, desc, publish, mem } = setup({ lastAvail: 65535, usedIdx: 65535, signalledUsed: 65535 }, { indirect: false, eventIdx: true });
  desc(DESC, 0, RAM_BASE + 0x4000, 1, VIRTQ_DESC_F_WRITE);
  publish(0);
  publish(0);
  q.pushUsed(q.pop()!.head, 1);
  assert.equal(mem.readU16(USED + 4 + 8 * SIZE), 0, 'avail_event = lastAvail (wrapped)');
  mem.writeU16(AVAIL + 4 + 2 * SIZE, 0); // used_event: interrupt when used.idx passes 0
  assert.equal(q.needsNotification(), false, 'used.idx is 0: not past used_event 0 yet');
  q.pushUsed(q.pop()!.head, 1);
  assert.equal(q.needsNotification(), true, 'used.idx 1 passed used_event 0');
});
