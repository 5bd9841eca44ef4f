import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostShortfall, planCeilings, readHostMemory, waterFill, type PlanVm } from '../../src/host/memory-plan.js';

const MiB = 1024 * 1024;
const vm = (name: string, priority: number, min: number, max: number, want: number): PlanVm =>
  ({ name, priority, minBytes: min * MiB, maxBytes: max * MiB, wantBytes: want * MiB });
const inMiB = (m: Map<string, number>) => Object.fromEntries([...m].map(([k, v]) => [k, v / MiB]));

test('water filling splits evenly, no one above its need', () => {
  assert.deepEqual(waterFill([100, 100, 100], 90), [30, 30, 30]);
  assert.deepEqual(waterFill([10, 100, 100], 90), [10, 40, 40]);
  assert.deepEqual(waterFill([10, 20], 1000), [10, 20]);
  assert.deepEqual(waterFill([5, 5, 5], 10).reduce((a, b) => a + b), 10);
  assert.deepEqual(waterFill([], 10), []);
});

test('minima first, then needs, then headroom up to the maxima', () => {
  const vms = [vm('a', 50, 256, 2048, 300), vm('b', 50, 256, 2048, 1500)];
  // plenty: everyone up to its maximum
  assert.deepEqual(inMiB(planCeilings(vms, 8192 * MiB)), { a: 2048, b: 2048 });
  // 2048: needs (300 + 1500 = 1800) met, 248 of headroom split evenly
  assert.deepEqual(inMiB(planCeilings(vms, 2048 * MiB)), { a: 300 + 124, b: 1500 + 124 });
  // 1024: the needs cannot all be met; the even split of 512 above the minima gives a its 44 and b the rest
  assert.deepEqual(inMiB(planCeilings(vms, 1024 * MiB)), { a: 300, b: 724 });
  // less than the minima: the minima, whatever the pool
  assert.deepEqual(inMiB(planCeilings(vms, 100 * MiB)), { a: 256, b: 256 });
});

test('higher priority is served first and lower priority gives back first', () => {
  const vms = [vm('low', 10, 256, 2048, 1024), vm('high', 90, 256, 2048, 1024)];
  assert.deepEqual(inMiB(planCeilings(vms, 2048 * MiB)), { low: 1024, high: 1024 });
  assert.deepEqual(inMiB(planCeilings(vms, 1536 * MiB)), { low: 512, high: 1024 });
  assert.deepEqual(inMiB(planCeilings(vms, 1280 * MiB)), { low: 256, high: 1024 });
  // the sum never exceeds the pool once the minima fit
  for (const pool of [600, 777, 1300, 2500, 4096]) {
    const sum = [...planCeilings(vms, pool * MiB).values()].reduce((a, b) => a + b, 0);
    assert.ok(sum <= pool * MiB, `pool ${pool}: ${sum / MiB}`);
  }
});

test('the host runs short when MemAvailable falls below its reserve or tasks stall on memory', () => {
  const G = 1024 * MiB;
  assert.equal(hostShortfall({ totalBytes: 24 * G, availableBytes: 10 * G, stallPercent: 0 }), 0);
  assert.equal(hostShortfall({ totalBytes: 20 * G, availableBytes: 512 * MiB, stallPercent: null }), 512 * MiB); // reserve 1 GiB
  assert.equal(hostShortfall({ totalBytes: 2 * G, availableBytes: 200 * MiB, stallPercent: null }), 56 * MiB); // reserve 256 MiB
  assert.equal(hostShortfall({ totalBytes: 24 * G, availableBytes: 10 * G, stallPercent: 25.5 }), 128 * MiB);
  assert.equal(hostShortfall(null), 0);
});

test('readHostMemory reads /proc/meminfo and /proc/pressure/memory', () => {
  const root = mkdtempSync(join(tmpdir(), 'proc-'));
  try {
    writeFileSync(join(root, 'meminfo'), 'MemTotal:       16384000 kB\nMemFree:         1000 kB\nMemAvailable:    8192000 kB\n');
    assert.deepEqual(readHostMemory(root), { totalBytes: 16384000 * 1024, availableBytes: 8192000 * 1024, stallPercent: null });
    mkdirSync(join(root, 'pressure'));
    writeFileSync(join(root, 'pressure', 'memory'), 'some avg10=12.50 avg60=3.00 avg300=1.00 total=123\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=12\n');
    assert.equal(readHostMemory(root)?.stallPercent, 12.5);
    assert.equal(readHostMemory(join(root, 'nowhere')), null);
    assert.ok(readHostMemory()!.totalBytes > 0, 'this host');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
