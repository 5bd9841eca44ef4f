/**
 * Fair disk I/O between VMs (src/host/disk-arbiter.ts): the plan (a share only while two or
 * more VMs keep the disk busy and one is slowed, only for the VMs above their weighted part;
 * relaxed afterwards), and the round that turns VM statuses into `POST /disk-share`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKLOG_FRACTION, DiskArbiter, MIN_SHARE, SHARE_HEADROOM, SHARE_RELAX, planDiskShares, type DiskMeter, type DiskUse } from '../../src/host/disk-arbiter.js';
import type { Entry } from '../../src/host/entry.js';
import type { VmDefinition } from '../../src/host/types.js';


const use = (name: string, weight: number, iops: number, bps: number, o: Partial<DiskUse> = {}): DiskUse =>
  ({ name, weight, iops, bps, busy: 1, latencyMs: 10, baselineMs: 1, share: null, ...o });

test('planDiskShares: nobody is held back unless two VMs keep the disk busy and one is slowed', () => {
  // one backlogged VM
  assert.deepEqual([...planDiskShares([use('a', 100, 1000, 1e8), use('b', 100, 10, 1e4, { busy: BACKLOG_FRACTION - 0.01 })])], [['a', null], ['b', null]]);
  // two backlogged, but each at its own pace (latency near its baseline): slow on their own
  const calm = planDiskShares([use('a', 100, 900, 1e8, { latencyMs: 1, baselineMs: 1 }), use('b', 100, 100, 1e6, { latencyMs: 20, baselineMs: 15 })]);
  assert.deepEqual([calm.get('a'), calm.get('b')], [null, null]);
  assert.equal(planDiskShares([]).size, 0);
});

test('planDiskShares: contended, each VM above its weighted part is held to it (with headroom)', () => {
  const plan = planDiskShares([use('heavy', 100, 300, 3e8), use('light', 300, 100, 1e6)]);
  // requests: 400 split 1:3 -> heavy's part 100 (used 300: held), light's 300 (used 100: free)
  // bytes: 3.01e8 split 1:3 -> heavy's part 7.5e7 (used 3e8: held)
  assert.deepEqual(plan.get('heavy'), { iops: Math.round(100 * SHARE_HEADROOM), bps: Math.round(3.01e8 / 4 * SHARE_HEADROOM) });
  assert.equal(plan.get('light'), null);
  // equal weights, equal use: nobody above its part
  const even = planDiskShares([use('a', 100, 200, 1e6), use('b', 100, 200, 1e6)]);
  assert.deepEqual([even.get('a'), even.get('b')], [null, null]);
  // a VM that is not backlogged is never held, and does not count in the split
  const idle = planDiskShares([use('a', 100, 500, 1e6), use('b', 100, 500, 1e6, { latencyMs: 1 }), use('c', 100, 5000, 1e9, { busy: 0.1 })]);
  assert.deepEqual([idle.get('a'), idle.get('b'), idle.get('c')], [null, null, null]);
  // a round of a few long requests (flushes): the shares stay as they are
  const flush = planDiskShares([use('a', 100, 2, 1e3, { latencyMs: 900, share: { iops: 50, bps: 0 } }), use('b', 100, 1, 1e3, { latencyMs: 900 })]);
  assert.deepEqual([flush.get('a'), flush.get('b')], [{ iops: 50, bps: 0 }, null]);
  // a share never goes below the floor
  const floor = planDiskShares([use('a', 1, 20, 1e6), use('b', 10000, 20, 1e6)]);
  assert.deepEqual(floor.get('a'), { iops: MIN_SHARE.iops, bps: MIN_SHARE.bps });
});

test('planDiskShares: once the disk is no longer contended, shares relax and go', () => {
  const held = { iops: 100, bps: 1e6 };
  // still reaching its share: it grows by SHARE_RELAX
  const r1 = planDiskShares([use('a', 100, 100, 1e6, { share: held, latencyMs: 1 })]);
  assert.deepEqual(r1.get('a'), { iops: Math.round(100 * SHARE_RELAX), bps: Math.round(1e6 * SHARE_RELAX) });
  // far below it: taken off
  const r2 = planDiskShares([use('a', 100, 10, 1e5, { share: held, latencyMs: 1 })]);
  assert.equal(r2.get('a'), null);
});

function entry(def: Partial<VmDefinition>, pid: number): Entry {
  return {
    def: { name: 'x', vcpus: 1, memoryBytes: 1 << 28, disks: [], cpuWeight: 100, cpuCap: 0, restart: 'no', createdAt: 0, ...def } as VmDefinition,
    rt: { state: 'running', restarts: 0, pid },
    lock: Promise.resolve(), statusBusy: false, waiters: [], deadTicks: 0,
  };
}

test('DiskArbiter: rounds turn VM statuses into shares, sent only when they change', async () => {
  const entries = new Map<string, Entry>([['a', entry({ name: 'a' }, 11)], ['b', entry({ name: 'b', diskWeight: 300 }, 12)]]);
  const posts: Array<[string, unknown]> = [];
  const arb = new DiskArbiter({ entries, post: async (name, path, body) => { assert.equal(path, '/disk-share'); posts.push([name, body]); }, log: () => {} });
  const meters = new Map<string, DiskMeter>([['a', { ops: 0, bytes: 0, serviceMs: 0, waitMs: 0, share: { iops: 0, bps: 0 } }], ['b', { ops: 0, bytes: 0, serviceMs: 0, waitMs: 0, share: { iops: 0, bps: 0 } }]]);
  let now = 1000;
  /** 2 s more of `ops` requests/s of 4 KiB at `latencyMs` each (busy all the time); `share` as the VM reports it. */
  const round = async (a: [number, number], b: [number, number]) => {
    now += 2000;
    for (const [name, [rate, lat]] of [['a', a], ['b', b]] as const) {
      const m = meters.get(name)!;
      const ops = rate * 2;
      const next = { ...m, ops: m.ops + ops, bytes: m.bytes + ops * 4096, serviceMs: m.serviceMs + ops * lat, waitMs: m.waitMs + Math.max(0, 2000 - ops * lat) };
      meters.set(name, next);
      entries.get(name)!.guest = { state: 'running', agent: true, at: now, ssh: null, memory: null, disk: next };
    }
    posts.length = 0;
    await arb.rebalance();
    for (const [name, body] of posts) meters.get(name)!.share = body as DiskMeter['share'];
  };
  await round([0, 0], [0, 0]);
  await round([600, 1], [200, 1]); // the baselines: 1 ms each
  assert.deepEqual(posts, [], 'nobody is slowed');
  await round([600, 1], [200, 4]); // b waits for a's requests now
  // 800 requests/s split 1:3: a's part is 200; bytes likewise
  assert.deepEqual(posts, [['a', { iops: Math.round(200 * SHARE_HEADROOM), bps: Math.round(200 * 4096 * SHARE_HEADROOM) }]]);
  const held = { iops: Math.round(200 * SHARE_HEADROOM), bps: Math.round(200 * 4096 * SHARE_HEADROOM) };
  await round([230, 1], [560, 3]); // a at its share, b faster but still slowed: a's share stays near
  assert.deepEqual(posts, [], `a's share moved less than the hysteresis: ${JSON.stringify(posts)}`);
  await round([230, 1], [560, 3]); // b no faster although a was held: slow on its own, a relaxes
  assert.deepEqual(posts, [['a', { iops: Math.round(held.iops * SHARE_RELAX), bps: Math.round(held.bps * SHARE_RELAX) }]]);
  await round([100, 1], [0, 0]); // a far below it, b idle: off
  assert.deepEqual(posts, [['a', { iops: 0, bps: 0 }]]);
});
