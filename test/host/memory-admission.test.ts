/**
 * Memory admission against the dynamic-memory balancer, without a daemon: entries in a
 * map, a control channel that answers at once, and VMs that give nothing back unless
 * the test moves their memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryAdmission } from '../../src/host/memory-admission.js';
import { MemoryBalancer } from '../../src/host/memory-balancer.js';
import { HostError } from '../../src/host/errors.js';
import type { Entry } from '../../src/host/entry.js';
import type { VmDefinition } from '../../src/host/types.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A running dynamic VM holding `heldMiB` (its ceiling too) whose guest uses `wsMiB`. */
function dynamicVm(heldMiB: number, wsMiB: number, priority: number): Entry {
  const def = { name: 'x', vcpus: 1, memoryBytes: GiB, maxMemoryBytes: 3 * GiB, memoryPolicy: 'dynamic', minMemoryBytes: 256 * MiB, memoryPriority: priority } as unknown as VmDefinition;
  return {
    def, rt: { state: 'running', memoryBytes: heldMiB * MiB, ceilingBytes: heldMiB * MiB, restarts: 0 },
    guest: {
      state: 'running', agent: true, at: Date.now(), ssh: undefined,
      memory: {
        currentBytes: heldMiB * MiB, maxBytes: 3 * GiB, balloonBytes: 3 * GiB - heldMiB * MiB, returnedBytes: 0, rssBytes: 0,
        guest: { totalBytes: heldMiB * MiB, availableBytes: (heldMiB - wsMiB) * MiB, allocStalls: 0 },
      },
    } as unknown as Entry['guest'],
    lock: Promise.resolve(), statusBusy: false, waiters: [], deadTicks: 0,
  };
}

function staticVm(memoryBytes: number): Entry {
  return {
    def: { name: 'y', vcpus: 1, memoryBytes } as unknown as VmDefinition, rt: { state: 'stopped', restarts: 0 },
    lock: Promise.resolve(), statusBusy: false, waiters: [], deadTicks: 0,
  };
}

/**
 * A 4 GiB host: busy (priority 80, 2560 MiB held, needs 1800) and two idle VMs at their
 * 256 MiB minimum; a start waits for no memory to come back (roomWaitMs 0).
 */
function setup() {
  const entries = new Map<string, Entry>([['busy', dynamicVm(2560, 1500, 80)], ['idle1', dynamicVm(256, 100, 50)], ['idle2', dynamicVm(256, 100, 50)]]);
  const posts: Array<[string, number]> = [];
  const balancer = new MemoryBalancer({
    entries, limitBytes: () => 4 * GiB, changed: () => {}, log: () => {}, hostMemory: () => null,
    post: async (name, _path, body) => { posts.push([name, (body as { ceilingBytes: number }).ceilingBytes]); },
  });
  const admission = new MemoryAdmission({ entries, capacity: { cores: 2, memoryBytes: 4 * GiB }, overcommit: 1, balancer, roomWaitMs: 0 });
  return { entries, balancer, admission, posts };
}

test('the room made for a start is held until the start books it: a division in between does not hand it back', async () => {
  const { entries, balancer, admission } = setup();
  const fixed = staticVm(GiB);
  entries.set('fixed', fixed);
  assert.equal(admission.budget().freeBytes, GiB);
  const release = await admission.admitStart('fixed', fixed);
  // the periodic division runs before the start books its memory: without the hold it
  // would raise busy's ceiling into the free GiB (its maximum is 3 GiB)
  await balancer.rebalance();
  assert.equal(entries.get('busy')!.rt.ceilingBytes, 2560 * MiB);
  admission.checkStart('fixed', fixed);
  fixed.rt = { ...fixed.rt, state: 'starting', memoryBytes: GiB };
  release();
  release(); // twice is once
  await balancer.rebalance();
  assert.equal(admission.budget().allocatedBytes, 4 * GiB, 'nothing raised past the budget once booked');
  // the start stopped: the next division gives busy its maximum
  fixed.rt = { state: 'stopped', restarts: 0 };
  await balancer.rebalance();
  assert.equal(entries.get('busy')!.rt.ceilingBytes, 3 * GiB);
});

test('a refused start releases the room it held', async () => {
  const { entries, balancer, admission, posts } = setup();
  const big = staticVm(2 * GiB);
  entries.set('big', big);
  // busy's ceiling is cut, but it gives nothing back before the (zero) wait ends
  await assert.rejects(admission.admitStart('big', big), (e: unknown) => e instanceof HostError && e.code === 'insufficient_resources' && /cannot start big: not enough memory: requested 2 GiB/.test(e.message));
  assert.deepEqual(posts[0], ['busy', 1536 * MiB], 'cut to the pool less the 2 GiB asked');
  await balancer.rebalance();
  assert.equal(entries.get('busy')!.rt.ceilingBytes, 3 * GiB, 'nothing held once refused');
});
