import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bufferBytes, newPolicyState, policyTarget, underPressure, SHRINK_CALM_MS, type MemoryPolicy } from '../../src/vmm/memory-policy.js';

const MiB = 1024 * 1024;
const policy: MemoryPolicy = { minBytes: 256 * MiB, ceilingBytes: 2048 * MiB, bufferPercent: 20 };
const fresh = newPolicyState;
/** A guest of `total` MiB using `ws` MiB that it cannot reclaim. */
const sample = (total: number, ws: number, allocStalls = 0) => ({ totalBytes: total * MiB, availableBytes: (total - ws) * MiB, allocStalls });

test('the buffer is a share of the working set, 64 MiB at least, in whole MiB', () => {
  assert.equal(bufferBytes(1000 * MiB, 20), 200 * MiB);
  assert.equal(bufferBytes(10 * MiB, 20), 64 * MiB);
  assert.equal(bufferBytes(1001 * MiB, 10), 101 * MiB);
});

test('pressure: less than a quarter of the buffer available, or new stalls while below half of it', () => {
  assert.equal(underPressure(sample(1024, 1000), -1, 20), true); // 24 MiB free of a 200 MiB buffer
  assert.equal(underPressure(sample(1024, 500), -1, 20), false);
  assert.equal(underPressure(sample(1024, 950, 7), 5, 20), true); // stalls, 74 < 95 MiB (half the buffer)
  assert.equal(underPressure(sample(1024, 900, 7), 5, 20), false); // stalls, 124 MiB: room to spare
  assert.equal(underPressure(sample(2048, 500, 7), 5, 20), false); // stalls with room to spare: a balloon inflating
  assert.equal(underPressure(sample(1024, 950, 7), -1, 20), false); // no earlier reading to compare
});

test('a busy guest grows at once to its working set plus buffer, faster under pressure, never above the ceiling', () => {
  const st = fresh();
  assert.equal(policyTarget(policy, 512 * MiB, sample(512, 450), st, 1000), 540 * MiB, 'working set 450 + buffer 90');
  assert.equal(policyTarget(policy, 512 * MiB, sample(512, 400), st, 1000), 512 * MiB, 'enough: no change');
  // short of memory: double
  assert.equal(policyTarget(policy, 512 * MiB, sample(512, 500), fresh(), 1000), 1024 * MiB);
  assert.equal(policyTarget({ ...policy, ceilingBytes: 600 * MiB }, 512 * MiB, sample(512, 500), fresh(), 1000), 600 * MiB);
  // a working set that grew by 100 MiB since the last reading, and 120 MiB before: four times 100 MiB on top
  assert.equal(policyTarget(policy, 512 * MiB, sample(512, 400), { ...fresh(), lastWorkingSet: 300 * MiB, lastGrowth: 120 * MiB }, 1000), 880 * MiB);
  // one growth alone is not a trend
  assert.equal(policyTarget(policy, 512 * MiB, sample(512, 400), { ...fresh(), lastWorkingSet: 300 * MiB }, 1000), 512 * MiB);
  // growths under 4 MiB wait
  assert.equal(policyTarget(policy, 512 * MiB, sample(512, 425), fresh(), 1000), 512 * MiB);
});

test('an idle guest shrinks only after a calm spell, in steps, toward working set plus buffer, never below its minimum', () => {
  const st = fresh();
  // pressure at t=1000 (half-buffer rule), then calm
  assert.equal(policyTarget(policy, 1024 * MiB, sample(1024, 1000), st, 1000), 2048 * MiB);
  assert.equal(policyTarget(policy, 2048 * MiB, sample(2048, 100), st, 1000 + SHRINK_CALM_MS - 1), 2048 * MiB, 'too soon after the pressure');
  assert.equal(policyTarget(policy, 2048 * MiB, sample(2048, 100), st, 1000 + SHRINK_CALM_MS), 1792 * MiB, 'an eighth at a time');
  let cur = 1792 * MiB;
  const steps: number[] = [];
  for (let i = 0; i < 40; i++) {
    const next = policyTarget(policy, cur, sample(cur / MiB, 100), st, 1000 + SHRINK_CALM_MS + 500 * (i + 1));
    if (next === cur) break;
    steps.push(next / MiB);
    cur = next;
  }
  assert.equal(cur, 256 * MiB, `working set 100 + 64 buffer + 32 reserve, raised to the minimum: ${steps.join(' ')}`);
  assert.ok(steps.length < 20, 'within 10 s');
  // a working set that grows again stops the shrink and restarts the calm spell
  assert.equal(policyTarget(policy, 1024 * MiB, sample(1024, 200), { ...fresh(), lastWorkingSet: 100 * MiB, lastGrowth: 50 * MiB }, 60_000), 1024 * MiB);
  // a 5 % buffer (62 MiB, so the 64 MiB least): working set 1236 + 64 + the 32 MiB shrink reserve, in two steps
  const st5 = fresh();
  assert.equal(policyTarget({ ...policy, bufferPercent: 5 }, 1536 * MiB, sample(1536, 1236), st5, 20_000), 1344 * MiB);
  assert.equal(policyTarget({ ...policy, bufferPercent: 5 }, 1344 * MiB, sample(1344, 1236), st5, 20_500), 1332 * MiB);
  assert.equal(policyTarget({ ...policy, bufferPercent: 5 }, 1332 * MiB, sample(1332, 1236), st5, 21_000), 1332 * MiB);
  // a small difference is left alone
  assert.equal(policyTarget(policy, 300 * MiB, sample(300, 230), fresh(), 20_000), 300 * MiB);
});

test('a ceiling cut below the memory is followed at once, as far as the guest can give', () => {
  assert.equal(policyTarget({ ...policy, ceilingBytes: 512 * MiB }, 1024 * MiB, sample(1024, 200), fresh(), 0), 512 * MiB);
  assert.equal(policyTarget({ ...policy, ceilingBytes: 512 * MiB }, 1024 * MiB, sample(1024, 800), fresh(), 0), 832 * MiB, 'it keeps 32 MiB of its 224 available');
  assert.equal(policyTarget({ ...policy, ceilingBytes: 512 * MiB }, 1024 * MiB, sample(1024, 1000), fresh(), 0), 1024 * MiB, 'under pressure it gives nothing');
  assert.equal(policyTarget({ ...policy, ceilingBytes: 512 * MiB }, 1024 * MiB, sample(1024, 700), fresh(), 0), 1024 * MiB - 292 * MiB);
});
