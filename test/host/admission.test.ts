import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admitMemory, humanBytes, memoryBudget } from '../../src/host/admission.js';
import { HostError } from '../../src/host/errors.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

test('memoryBudget: limit = floor(capacity × overcommit), free never negative', () => {
  const b = memoryBudget(8 * GiB, 1.5, 3 * GiB);
  assert.equal(b.limitBytes, 12 * GiB);
  assert.equal(b.freeBytes, 9 * GiB);
  assert.equal(memoryBudget(1000, 0.333, 0).limitBytes, 333);
  assert.equal(memoryBudget(4 * GiB, 1, 5 * GiB).freeBytes, 0);
});

test('admitMemory: admits exactly up to the limit', () => {
  admitMemory('a', 1 * GiB, memoryBudget(4 * GiB, 1, 3 * GiB)); // 4 GiB of 4 GiB
  admitMemory('a', 6 * GiB, memoryBudget(4 * GiB, 2, 2 * GiB)); // overcommit 2: 8 GiB of 8 GiB
  assert.throws(() => admitMemory('a', 1 * GiB + 1, memoryBudget(4 * GiB, 1, 3 * GiB)), HostError);
});

test('admitMemory: the refusal names requested, allocated and capacity × ratio', () => {
  try {
    admitMemory('web', 1 * GiB, memoryBudget(4 * GiB, 0.5, 1536 * MiB));
    assert.fail('should refuse');
  } catch (e) {
    assert.ok(e instanceof HostError);
    assert.equal(e.code, 'insufficient_resources');
    assert.match(e.message, /web/);
    assert.match(e.message, /requested 1 GiB \(1073741824 bytes\)/);
    assert.match(e.message, /allocated 1\.5 GiB \(1610612736 bytes\)/);
    assert.match(e.message, /limit 2 GiB \(2147483648 bytes = capacity 4 GiB × overcommit 0\.5\)/);
    assert.deepEqual(e.details, { requestedBytes: GiB, allocatedBytes: 1536 * MiB, limitBytes: 2 * GiB, capacityBytes: 4 * GiB, overcommit: 0.5 });
  }
});

test('humanBytes', () => {
  assert.equal(humanBytes(256 * MiB), '256 MiB');
  assert.equal(humanBytes(1536 * MiB), '1.5 GiB');
  assert.equal(humanBytes(10), '10 B');
});
