import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bufferBytes, policyTarget, underPressure, SHRINK_CALM_MS, type MemoryPolicy, type PolicyState } from '../../src/vmm/memory-policy.js';

const MiB = 1024 * 1024;
const policy: MemoryPolicy = { minBytes: 256 * MiB, ceilingBytes: 2048 * MiB, bufferPercent: 20 };
const fresh = (): PolicyState => ({ lastStalls: -1, lastPressureMs: 0 });
/** A guest of `total` MiB using `ws` MiB that it cannot reclaim. */
const sample = (total: number, ws: number, allocStalls = 0) => ({ totalBytes: total * MiB, availableBytes: (total - ws) * MiB, allocStalls });

test('the buffer is a share of the working set, 32 MiB at least, in whole MiB', () => {
  assert.equal(bufferBytes(1000 * MiB, 20), 200 * MiB);
  assert.equal(bufferBytes(10 * MiB, 20), 32 * MiB);
  assert.equal(bufferBytes(1001 * MiB, 10), 101 * MiB);
});

test('pressure: less than half the buffer available, or new stalls while below the buffer', () => {
  assert.equal(underPressure(sample(1024, 1000), -1, 20), true); // 24 MiB free of a 200 MiB buffer
  assert.equal(underPressure(sample(1024, 500), -1, 20), false);
  assert.equal(underPressure(sample(1024, 900, 7), 5, 20), true); // stalls, 124 < 180 MiB buffer
  assert.equal(underPressure(sample(2048, 500, 7), 5, 20), false); // stalls with room to spare: a balloon inflating
  assert.equal(underPressure(sample(1024, 900, 7), -1, 20), false); // no earlier reading to compare
});

test('a busy guest grows at once to its working set plus buffer, faster under pressure, never above the ceiling', () => {
  const st = fresh();
  assert.equal(policyTarget(policy, 512 * MiB, sample(512, 450), st, 1000), 540 * MiB, 'working set 450 + buffer 90');
  assert.equal(policyTarget(policy, 512 * MiB, sample(512, 400), st, 1000), 512 * MiB, 'enough: no change');
  // short of memory: at least half again
  assert.equal(policyTarget(policy, 512 * MiB, sample(512, 500), fresh(), 1000), 768 * MiB);
  assert.equal(policyTarget({ ...policy, ceilingBytes: 600 * MiB }, 512 * MiB, sample(512, 500), fresh(), 1000), 600 * MiB);
});

test('an idle guest shrinks only after a calm spell, toward working set plus buffer, never below its minimum nor past what it can give', () => {
  const st = fresh();
  // pressure at t=1000 (half-buffer rule), then calm
  assert.equal(policyTarget(policy, 1024 * MiB, sample(1024, 1000), st, 1000), 1536 * MiB);
  assert.equal(policyTarget(policy, 1536 * MiB, sample(1536, 100), st, 1000 + SHRINK_CALM_MS - 1), 1536 * MiB, 'too soon after the pressure');
  assert.equal(policyTarget(policy, 1536 * MiB, sample(1536, 100), st, 1000 + SHRINK_CALM_MS), 256 * MiB, 'working set 100 + 32 buffer, raised to the minimum');
  assert.equal(policyTarget({ ...policy, minBytes: 64 * MiB }, 1536 * MiB, sample(1536, 100), fresh(), 10_000), 132 * MiB);
  // a 5 % buffer: working set 1236 + 62
  assert.equal(policyTarget({ ...policy, bufferPercent: 5 }, 1536 * MiB, sample(1536, 1236), fresh(), 10_000), 1298 * MiB);
  // a small difference is left alone
  assert.equal(policyTarget(policy, 300 * MiB, sample(300, 240), fresh(), 10_000), 300 * MiB);
});

test('a ceiling cut below the memory is followed at once, as far as the guest can give', () => {
  assert.equal(policyTarget({ ...policy, ceilingBytes: 512 * MiB }, 1024 * MiB, sample(1024, 200), fresh(), 0), 512 * MiB);
  assert.equal(policyTarget({ ...policy, ceilingBytes: 512 * MiB }, 1024 * MiB, sample(1024, 800), fresh(), 0), 832 * MiB, 'it keeps 32 MiB of its 224 available');
  assert.equal(policyTarget({ ...policy, ceilingBytes: 512 * MiB }, 1024 * MiB, sample(1024, 1000), fresh(), 0), 1024 * MiB, 'under pressure it gives nothing');
  assert.equal(policyTarget({ ...policy, ceilingBytes: 512 * MiB }, 1024 * MiB, sample(1024, 700), fresh(), 0), 1024 * MiB - 292 * MiB);
});
