import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Plic } from '../../src/devices/plic.js';

const PRIO = (s: number) => 4 * s;
const PENDING = 0x1000;
const ENABLE = (ctx: number) => 0x2000 + 0x80 * ctx;
const THRESHOLD = (ctx: number) => 0x200000 + 0x1000 * ctx;
const CLAIM = (ctx: number) => 0x200004 + 0x1000 * ctx;

function setup(numContexts = 4) {
  const events: [number, boolean][] = [];
  const levels = new Map<number, boolean>();
  const plic = new Plic(96, numContexts, (ctx, level) => {
    events.push([ctx, level]);
    levels.set(ctx, level);
  });
  const r = (o: number) => plic.read(o, 4);
  const w = (o: number, v: number) => plic.write(o, 4, v);
  return { plic, events, levels, r, w };
}

test('claim returns the highest priority pending enabled source; ties go to the lowest ID', () => {
  const { plic, r, w } = setup();
  w(PRIO(3), 1);
  w(PRIO(5), 5);
  w(PRIO(7), 5);
  w(PRIO(40), 7);
  w(ENABLE(1), (1 << 3) | (1 << 5) | (1 << 7));
  plic.line(3).set(true);
  plic.line(5).set(true);
  plic.line(7).set(true);
  plic.line(40).set(true); // not enabled for context 1
  assert.equal(r(PENDING), (1 << 3) | (1 << 5) | (1 << 7));
  assert.equal(r(PENDING + 4), 1 << 8);
  assert.equal(r(CLAIM(1)), 5);
  assert.equal(r(PENDING) & (1 << 5), 0, 'claim clears pending');
  assert.equal(r(CLAIM(1)), 7);
  assert.equal(r(CLAIM(1)), 3);
  assert.equal(r(CLAIM(1)), 0, 'nothing left');
  w(ENABLE(1) + 4, 1 << 8);
  assert.equal(r(CLAIM(1)), 40);
});

test('threshold masks priorities at or below it; priority 0 never interrupts', () => {
  const { plic, r, w, levels } = setup();
  w(ENABLE(1), (1 << 1) | (1 << 2));
  w(PRIO(1), 0);
  w(PRIO(2), 3);
  plic.line(1).set(true);
  assert.equal(levels.get(1) ?? false, false, 'priority 0 source never interrupts');
  w(THRESHOLD(1), 3);
  assert.equal(r(THRESHOLD(1)), 3);
  plic.line(2).set(true);
  assert.equal(levels.get(1) ?? false, false, 'priority 3 <= threshold 3');
  assert.equal(r(CLAIM(1)), 0);
  w(THRESHOLD(1), 2);
  assert.equal(levels.get(1), true);
  assert.equal(r(CLAIM(1)), 2);
  assert.equal(r(CLAIM(1)), 0, 'source 1 has priority 0');
});

test('enables are per context; the output follows enable, pending and threshold', () => {
  const { plic, r, w, events } = setup();
  w(PRIO(10), 1);
  plic.line(10).set(true);
  assert.deepEqual(events, []);
  w(ENABLE(3), 1 << 10);
  assert.deepEqual(events, [[3, true]]);
  assert.equal(r(ENABLE(3)), 1 << 10);
  assert.equal(r(ENABLE(1)), 0);
  assert.equal(r(CLAIM(1)), 0, 'context 1 has it disabled');
  w(ENABLE(0), 1 << 10);
  assert.deepEqual(events, [[3, true], [0, true]]);
  assert.equal(r(CLAIM(0)), 10, 'M-mode context of hart 0 claims');
  assert.deepEqual(events.slice(2), [[0, false], [3, false]], 'claimed: no longer pending anywhere');
  assert.equal(r(CLAIM(3)), 0);
});

test('complete reopens the gateway: a still-high line is pending again; a low line is not', () => {
  const { plic, r, w, levels } = setup();
  w(PRIO(4), 1);
  w(ENABLE(1), 1 << 4);
  const line = plic.line(4);
  line.set(true);
  assert.equal(r(CLAIM(1)), 4);
  assert.equal(levels.get(1), false);
  w(CLAIM(1), 4); // complete, line still high
  assert.equal(levels.get(1), true);
  assert.equal(r(CLAIM(1)), 4);
  line.set(false);
  w(CLAIM(1), 4);
  assert.equal(levels.get(1), false);
  assert.equal(r(PENDING), 0);
  assert.equal(r(CLAIM(1)), 0);
});

test('completion of a source not enabled for the context is ignored', () => {
  const { plic, r, w } = setup();
  w(PRIO(6), 1);
  w(ENABLE(1), 1 << 6);
  plic.line(6).set(true);
  assert.equal(r(CLAIM(1)), 6);
  w(CLAIM(3), 6); // context 3 does not have 6 enabled
  assert.equal(r(PENDING) & (1 << 6), 0, 'still claimed');
  w(CLAIM(1), 999); // out of range
  w(CLAIM(1), 0);
  w(CLAIM(1), 6);
  assert.notEqual(r(PENDING) & (1 << 6), 0);
});

test('lowering a line before it is claimed withdraws the request; callbacks only on level changes', () => {
  const { plic, w, events } = setup(2);
  w(PRIO(9), 2);
  w(ENABLE(1), 1 << 9);
  plic.line(9).set(true);
  plic.line(9).set(true);
  w(PRIO(9), 3); // still above threshold: no new event
  assert.deepEqual(events, [[1, true]]);
  plic.line(9).set(false);
  assert.deepEqual(events, [[1, true], [1, false]]);
  assert.equal(plic.claim(1), 0);
});

test('pending bits are read-only, source 0 cannot be enabled or prioritised, bad accesses are ignored', () => {
  const { plic, r, w } = setup();
  w(PENDING, 0xffffffff);
  assert.equal(r(PENDING), 0);
  w(ENABLE(1), 0xffffffff);
  assert.equal(r(ENABLE(1)), 0xfffffffe);
  w(ENABLE(1) + 8, 0xffffffff);
  assert.equal(r(ENABLE(1) + 8), 0xffffffff, 'sources 64..95');
  w(ENABLE(1) + 12, 0xffffffff);
  assert.equal(r(ENABLE(1) + 12), 0, 'no sources 96..127');
  w(PRIO(0), 5);
  assert.equal(r(PRIO(0)), 0);
  w(PRIO(1), 0xff);
  assert.equal(r(PRIO(1)), 7, 'priority is a 3-bit field');
  assert.equal(plic.read(PRIO(1), 1), 0, 'byte access reads 0');
  assert.equal(r(THRESHOLD(50)), 0, 'context out of range');
  assert.equal(r(CLAIM(50)), 0);
  assert.throws(() => plic.line(0), RangeError);
  assert.throws(() => plic.line(96), RangeError);
});

test('save/restore', () => {
  const a = setup();
  a.w(PRIO(2), 4);
  a.w(PRIO(3), 2);
  a.w(ENABLE(1), (1 << 2) | (1 << 3));
  a.w(THRESHOLD(1), 1);
  a.plic.line(2).set(true);
  a.plic.line(3).set(true);
  assert.equal(a.r(CLAIM(1)), 2);
  const state = JSON.parse(JSON.stringify(a.plic.save()));
  const b = setup();
  b.plic.restore(state);
  assert.equal(b.levels.get(1), true, 'source 3 pending');
  assert.equal(b.levels.get(0), false);
  assert.equal(b.r(CLAIM(1)), 3);
  b.w(CLAIM(1), 2);
  assert.equal(b.r(CLAIM(1)), 2, 'source 2 was claimed and its line is still high');
});
