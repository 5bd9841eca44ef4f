import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { SmpControl, POST_SLOTS, W_DOORBELL } from '../../src/vmm/smp.js';

test('posted writes are taken in the order they were posted, and a full ring refuses more', () => {
  const c = new SmpControl(2);
  assert.equal(c.postWrite(0x1000_1050, 4, 7), true);
  assert.equal(c.postWrite(0x1000_2050, 4, 1), true);
  assert.equal(c.postWrite(0xffff_fff0, 2, 0xffff_ffff), true);
  assert.equal(Atomics.load(c.words, W_DOORBELL), 3, 'each post rings the doorbell');
  const got: number[][] = [];
  assert.equal(c.takePosted((pa, size, value) => got.push([pa, size, value])), 3);
  assert.deepEqual(got, [[0x1000_1050, 4, 7], [0x1000_2050, 4, 1], [0xffff_fff0, 2, 0xffff_ffff]]);
  assert.equal(c.takePosted(() => assert.fail('taken twice')), 0);
  for (let i = 0; i < POST_SLOTS; i++) assert.equal(c.postWrite(0x50, 4, i), true);
  assert.equal(c.postWrite(0x50, 4, 99), false, 'full');
  const values: number[] = [];
  c.takePosted((_pa, _size, v) => values.push(v));
  assert.deepEqual(values, Array.from({ length: POST_SLOTS }, (_, i) => i));
});

test('the ring keeps working when its counters wrap', () => {
  const c = new SmpControl(1);
  // put head and tail just below the Int32 wrap (the ring's words follow the per-hart blocks)
  const base = c.words.length - (2 + 4 * POST_SLOTS);
  c.words[base] = 0x7fff_fffe;
  c.words[base + 1] = 0x7fff_fffe;
  const values: number[] = [];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < POST_SLOTS; i++) assert.equal(c.postWrite(0x50, 4, round * 1000 + i), true);
    assert.equal(c.postWrite(0x50, 4, -1), false);
    c.takePosted((_pa, _size, v) => values.push(v));
  }
  assert.deepEqual(values, [0, 1, 2].flatMap((r) => Array.from({ length: POST_SLOTS }, (_, i) => r * 1000 + i)));
});

/**
 * Two hart threads write one register in turn under a lock of their own, as two vCPUs
 * do under a guest spin lock (Linux's 8250 driver stops transmission in IER on one hart
 * and starts it again on another). The device thread must apply the writes in that
 * order: per-hart rings taken hart by hart applied a later write of hart 0 before an
 * earlier one of hart 1, and the guest's UART stopped transmitting with output queued.
 */
test('writes posted by several threads in turn are applied in that order', async () => {
  const harts = 3;
  const total = 20_000;
  const c = new SmpControl(harts);
  const lock = new Int32Array(new SharedArrayBuffer(8)); // [0] the lock, [1] the next value to write
  const code = `
    const { workerData } = require('node:worker_threads');
    import(workerData.url).then(({ SmpControl }) => {
      const c = new SmpControl(workerData.harts, workerData.words);
      const lock = new Int32Array(workerData.lock);
      for (;;) {
        while (Atomics.compareExchange(lock, 0, 0, 1) !== 0) {}
        const v = lock[1];
        if (v >= workerData.total) { Atomics.store(lock, 0, 0); break; }
        while (!c.postWrite(0x1000_0001, 1, v)) {} // full: the device thread drains it
        lock[1] = v + 1;
        Atomics.store(lock, 0, 0);
      }
    });`;
  const url = new URL('../../src/vmm/smp.js', import.meta.url).href;
  const workers = Array.from({ length: harts }, () => new Worker(code, {
    eval: true, workerData: { url, harts, words: c.words.buffer, lock: lock.buffer, total },
  }));
  const exited = Promise.all(workers.map((w) => new Promise((resolve) => w.once('exit', resolve))));
  const seen: number[] = [];
  const deadline = Date.now() + 60_000;
  await new Promise<void>((resolve) => {
    const drain = () => {
      c.takePosted((_pa, _size, v) => seen.push(v));
      if (seen.length >= total || Date.now() > deadline) resolve(); else setImmediate(drain);
    };
    drain();
  });
  await exited;
  assert.equal(seen.length, total, 'every posted write was taken');
  const firstOutOfOrder = seen.findIndex((v, i) => v !== i);
  assert.equal(firstOutOfOrder, -1, `write ${firstOutOfOrder} taken out of order: ${seen.slice(Math.max(0, firstOutOfOrder - 2), firstOutOfOrder + 3).join(', ')}`);
});
