import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { Plic } from '../../src/devices/plic.js';
import { HartSignals, SIP_SEIP, createGuestMemory, readHartSnapshot } from '../../src/engine/hart.js';
import { HartMmio, WriteRoute, type HartMmioLayout } from '../../src/machine/hart-mmio.js';
import { VirtioMmio, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_INT_VRING } from '../../src/devices/virtio/mmio.js';
import { VirtioBlk, VIRTIO_BLK_T_IN } from '../../src/devices/virtio/blk.js';
import { Driver, MemBlock, makeRam } from '../devices/helpers.js';

const PLIC_BASE = 0xc00_0000;
const VIRTIO_BASE = 0x1000_1000;
const ENABLE_CTX1 = 0x2080;
const CLAIM_CTX1 = 0x201004;

/** A device-thread PLIC with one virtio slot (source 1, InterruptStatus word 0) and a hart-thread view of it. */
function setup() {
  const memory = createGuestMemory(1 << 20);
  const signals = [new HartSignals(memory, 0)];
  const plic = new Plic(96, 2, (ctx, level) => { if (ctx === 1) signals[0].setPending(SIP_SEIP, level); });
  const isr = new Int32Array(new SharedArrayBuffer(4 * 8));
  const layout: HartMmioLayout = {
    plicBase: PLIC_BASE, plicSize: plic.size, plicSources: 96, plicContexts: 2, plicBuffer: plic.buffer,
    virtio: [{ base: VIRTIO_BASE, size: 0x1000, irq: 1, isr: 0 }], isrBuffer: isr.buffer as SharedArrayBuffer,
    windows: [{ base: 0x1000_0000, size: 0x100 }, { base: VIRTIO_BASE, size: 0x1000 }],
  };
  const local = new HartMmio(layout, signals);
  const seip = () => (readHartSnapshot(memory, 0).irqNow & SIP_SEIP) !== 0;
  return { plic, isr, local, seip };
}

test('a hart thread claims and completes at the shared PLIC and acknowledges virtio interrupts itself', () => {
  const { plic, isr, local, seip } = setup();
  assert.equal(local.write(PLIC_BASE + 4, 4, 1), WriteRoute.Done); // priority of source 1
  assert.equal(local.write(PLIC_BASE + ENABLE_CTX1, 4, 1 << 1), WriteRoute.Done);
  assert.equal(plic.read(ENABLE_CTX1, 4), 1 << 1, 'the device thread sees the hart thread\'s write');
  // the device thread raises a used-buffer interrupt
  Atomics.or(isr, 0, 1);
  plic.wordLine(1, isr, 0).set(true);
  assert.equal(seip(), true);
  assert.equal(local.read(VIRTIO_BASE + 0x60, 4), 1, 'InterruptStatus');
  assert.equal(local.read(PLIC_BASE + CLAIM_CTX1, 4), 1, 'claim');
  assert.equal(seip(), false, 'claimed: no longer pending');
  assert.equal(local.write(VIRTIO_BASE + 0x64, 4, 1), WriteRoute.Done, 'InterruptACK');
  assert.equal(Atomics.load(isr, 0), 0);
  assert.equal(local.write(PLIC_BASE + CLAIM_CTX1, 4, 1), WriteRoute.Done, 'complete');
  assert.equal(plic.isPending(1), false, 'acknowledged before completion: the line is low');
  assert.equal(seip(), false);
  // a status bit set again by the device thread keeps the line high through a stale ack
  Atomics.or(isr, 0, 2);
  plic.wordLine(1, isr, 0).set(true);
  assert.equal(local.write(VIRTIO_BASE + 0x64, 4, 1), WriteRoute.Done, 'acknowledges bit 0 only');
  assert.equal(plic.isPending(1), true, 'bit 1 still set: the line stays high');
  assert.equal(seip(), true);
});

test('writes inside device windows are posted; reads and writes elsewhere go to the device thread', () => {
  const { local } = setup();
  assert.equal(local.write(VIRTIO_BASE + 0x50, 4, 0), WriteRoute.Post, 'QueueNotify');
  assert.equal(local.write(VIRTIO_BASE + 0x70, 4, 0), WriteRoute.Post, 'Status');
  assert.equal(local.write(VIRTIO_BASE + 0x64, 2, 1), WriteRoute.Post, 'a 2-byte InterruptACK');
  assert.equal(local.write(0x1000_0000, 1, 0x41), WriteRoute.Post, 'the UART\'s THR');
  assert.equal(local.write(0x1000_00ff, 2, 0), WriteRoute.Remote, 'straddles the end of the UART window: faults');
  assert.equal(local.write(VIRTIO_BASE + 0x1050, 4, 0), WriteRoute.Remote, 'an unmapped slot: faults');
  assert.equal(local.write(0x100, 4, 0), WriteRoute.Remote, 'no device');
  assert.equal(local.read(VIRTIO_BASE + 0x0, 4), undefined, 'MagicValue');
  assert.equal(local.read(VIRTIO_BASE + 0x1060, 4), undefined, 'an unmapped slot');
  assert.equal(local.read(0x1000_0000, 1), undefined, 'the UART');
});

test('two threads changing the shared PLIC at once lose no update', async () => {
  const plic = new Plic(96, 2, () => {});
  const rounds = 20000;
  // the worker toggles sources 9..16 while this thread toggles sources 1..8: both rewrite pending word 0
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.url).then(({ Plic }) => {
      const p = Plic.attach(96, 2, workerData.buffer, () => {});
      for (let i = 0; i < workerData.rounds; i++) for (let s = 9; s <= 16; s++) p.setLevel(s, i % 2 === 0);
      for (let s = 9; s <= 16; s++) p.setLevel(s, true);
      parentPort.postMessage('done');
    });`;
  const url = new URL('../../src/devices/plic.js', import.meta.url).href;
  const worker = new Worker(code, { eval: true, workerData: { url, buffer: plic.buffer, rounds } });
  const done = new Promise((r) => worker.once('message', r));
  let finished = false;
  void done.then(() => { finished = true; });
  for (let i = 0; !finished || i < rounds; i++) {
    for (let s = 1; s <= 8; s++) plic.setLevel(s, i % 2 === 0);
    if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
  for (let s = 1; s <= 8; s++) plic.setLevel(s, true);
  await done;
  await worker.terminate();
  for (let s = 1; s <= 8; s++) assert.equal(plic.isPending(s), true, `source ${s}`);
  for (let s = 9; s <= 16; s++) assert.equal(plic.isPending(s), true, `source ${s}`);
  assert.equal(plic.read(0x1000, 4), 0x1fffe);
});

test('a virtio transport with a shared InterruptStatus: the hart thread acknowledges, the device thread sees it', () => {
  const { plic, isr, local, seip } = setup();
  local.write(PLIC_BASE + 4, 4, 1);
  local.write(PLIC_BASE + ENABLE_CTX1, 4, 1 << 1);
  const mem = makeRam(1 << 20);
  const dev = new VirtioMmio(new VirtioBlk(new MemBlock(64 * 512, false), { serial: 'd0' }), mem, plic.wordLine(1, isr, 0),
    { interruptStatus: { words: isr, index: 0 } });
  const drv = new Driver(dev, mem);
  drv.init((f) => f & ~(1n << 29n)); // no EVENT_IDX: every used buffer interrupts
  const hdr = drv.alloc(16);
  mem.writeU32(hdr, VIRTIO_BLK_T_IN);
  const data = drv.alloc(512);
  const status = drv.alloc(1);
  drv.publish(drv.chain([{ addr: hdr, len: 16 }, { addr: data, len: 512, write: true }, { addr: status, len: 1, write: true }]));
  drv.kick();
  assert.equal(mem.readU8(status), 0, 'request done');
  assert.equal(Atomics.load(isr, 0), VIRTIO_MMIO_INT_VRING, 'the transport set the shared word');
  assert.equal(dev.irqAsserted, true);
  assert.equal(seip(), true);
  assert.equal(local.read(VIRTIO_BASE + 0x60, 4), VIRTIO_MMIO_INT_VRING);
  assert.equal(local.read(PLIC_BASE + CLAIM_CTX1, 4), 1);
  local.write(VIRTIO_BASE + 0x64, 4, VIRTIO_MMIO_INT_VRING);
  local.write(PLIC_BASE + CLAIM_CTX1, 4, 1);
  assert.equal(dev.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4), 0, 'the device thread reads the acknowledged status');
  assert.equal(dev.irqAsserted, false);
  assert.equal(plic.isPending(1), false);
  assert.equal(seip(), false);
});
