import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SmpControl, POST_SLOTS, W_DOORBELL } from '../../src/vmm/smp.js';

test('posted writes are taken in order, per hart, and a full ring refuses more', () => {
  const c = new SmpControl(2);
  assert.equal(c.postWrite(1, 0x1000_1050, 4, 7), true);
  assert.equal(c.postWrite(0, 0x1000_2050, 4, 1), true);
  assert.equal(c.postWrite(1, 0xffff_fff0, 2, 0xffff_ffff), true);
  assert.equal(Atomics.load(c.words, W_DOORBELL), 3, 'each post rings the doorbell');
  const got: number[][] = [];
  assert.equal(c.takePosted(1, (pa, size, value) => got.push([pa, size, value])), 2);
  assert.deepEqual(got, [[0x1000_1050, 4, 7], [0xffff_fff0, 2, 0xffff_ffff]]);
  assert.equal(c.takePosted(1, () => assert.fail('taken twice')), 0);
  assert.equal(c.takePosted(0, () => {}), 1);
  for (let i = 0; i < POST_SLOTS; i++) assert.equal(c.postWrite(0, 0x50, 4, i), true);
  assert.equal(c.postWrite(0, 0x50, 4, 99), false, 'full');
  const values: number[] = [];
  c.takePosted(0, (_pa, _size, v) => values.push(v));
  assert.deepEqual(values, Array.from({ length: POST_SLOTS }, (_, i) => i));
});

test('the ring keeps working when its counters wrap', () => {
  const c = new SmpControl(1);
  // put head and tail just below the Int32 wrap (the ring's words follow the per-hart blocks)
  const base = c.words.length - (2 + 3 * POST_SLOTS);
  c.words[base] = 0x7fff_fffe;
  c.words[base + 1] = 0x7fff_fffe;
  const values: number[] = [];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < POST_SLOTS; i++) assert.equal(c.postWrite(0, 0x50, 4, round * 100 + i), true);
    assert.equal(c.postWrite(0, 0x50, 4, -1), false);
    c.takePosted(0, (_pa, _size, v) => values.push(v));
  }
  assert.deepEqual(values, [0, 1, 2].flatMap((r) => Array.from({ length: POST_SLOTS }, (_, i) => r * 100 + i)));
});
