import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Aclint } from '../../src/devices/aclint.js';

const MSIP = (h: number) => 4 * h;
const MTIMECMP = (h: number) => 0x4000 + 8 * h;
const MTIME = 0xbff8;

function setup(harts = 2) {
  let now = 1000n;
  const sw: [number, boolean][] = [];
  const timer: [number, boolean][] = [];
  const clint = new Aclint(harts, () => now, (h, l) => sw.push([h, l]), (h, l) => timer.push([h, l]));
  return {
    clint, sw, timer,
    advance: (d: bigint) => { now += d; },
    setNow: (t: bigint) => { now = t; },
    r: (o: number) => clint.read(o, 4),
    w: (o: number, v: number) => clint.write(o, 4, v),
  };
}

test('msip raises and clears the software interrupt of one hart', () => {
  const { sw, r, w } = setup();
  w(MSIP(1), 1);
  assert.deepEqual(sw, [[1, true]]);
  assert.equal(r(MSIP(1)), 1);
  assert.equal(r(MSIP(0)), 0);
  w(MSIP(1), 0xfffffffe); // only bit 0 counts
  assert.deepEqual(sw, [[1, true], [1, false]]);
  w(MSIP(5), 1); // no such hart
  assert.equal(sw.length, 2);
});

test('mtime reads the time source in two halves; writes set an offset', () => {
  const { clint, r, w, advance } = setup();
  assert.equal(r(MTIME), 1000);
  assert.equal(r(MTIME + 4), 0);
  advance(5n);
  assert.equal(r(MTIME), 1005);
  w(MTIME + 4, 1);
  assert.equal(clint.mtime(), (1n << 32n) + 1005n);
  advance(10n);
  assert.equal(r(MTIME), 1015);
  assert.equal(r(MTIME + 4), 1);
});

test('mtimecmp halves, lazy timer comparison and nextDeadline', () => {
  const { clint, timer, r, w, advance } = setup();
  assert.equal(r(MTIMECMP(0)), 0xffffffff, 'reset value: never');
  assert.equal(clint.nextDeadline(0), (1n << 64n) - 1n);
  // program 2000 the way a 32-bit-safe sequence does: high, then low
  w(MTIMECMP(0) + 4, 0);
  w(MTIMECMP(0), 2000);
  assert.equal(clint.getMtimecmp(0), 2000n);
  assert.equal(clint.nextDeadline(0), 2000n);
  assert.deepEqual(timer, []);
  advance(999n);
  clint.update();
  assert.deepEqual(timer, [], 'mtime 1999 < 2000');
  advance(1n);
  clint.update();
  assert.deepEqual(timer, [[0, true]]);
  assert.equal(clint.timerPending(0), true);
  clint.update();
  assert.equal(timer.length, 1, 'callback only on change');
  w(MTIMECMP(0), 5000); // moving the compare value into the future clears MTIP at once
  assert.deepEqual(timer, [[0, true], [0, false]]);
  assert.equal(r(MTIMECMP(0)), 5000);
  assert.equal(r(MTIMECMP(0) + 4), 0);
});

test('nextDeadline accounts for an mtime offset', () => {
  const { clint } = setup();
  clint.setMtime(11000n); // time() is 1000: offset +10000
  clint.setMtimecmp(1, 12000n);
  assert.equal(clint.nextDeadline(1), 2000n);
  clint.setMtimecmp(1, 5000n);
  assert.equal(clint.nextDeadline(1), 0n, 'clamped: already due');
  assert.equal(clint.timerPending(1), true);
});

test('save/restore keeps guest mtime continuous on a new time source', () => {
  const a = setup();
  a.w(MSIP(0), 1);
  a.clint.setMtimecmp(1, 1500n);
  a.advance(200n); // mtime 1200
  const state = JSON.parse(JSON.stringify(a.clint.save()));
  const b = setup();
  b.setNow(50n);
  b.clint.restore(state);
  assert.equal(b.clint.mtime(), 1200n);
  assert.deepEqual(b.sw, [[0, true], [1, false]]);
  assert.deepEqual(b.timer, [[0, false], [1, false]]);
  b.advance(300n);
  b.clint.update();
  assert.deepEqual(b.timer.at(-1), [1, true]);
});

test('non-32-bit accesses are ignored', () => {
  const { r, clint, sw } = setup();
  clint.write(MSIP(0), 1, 1);
  assert.deepEqual(sw, []);
  assert.equal(clint.read(MTIME, 2), 0);
  assert.equal(r(0x8000), 0);
});
