/**
 * The memory of a running VM (src/vmm/memory.ts): the balloon's target follows the
 * memory asked for; a shrink is allowed only as far as the guest's available memory,
 * less a reserve, goes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmMemory, MemoryChangeError, SHRINK_RESERVE_BYTES } from '../../src/vmm/memory.js';
import type { BalloonStats, VirtioBalloon } from '../../src/devices/virtio/balloon.js';

const MIB = 1 << 20;

/** The part of a VirtioBalloon that VmMemory uses. */
class FakeBalloon {
  active = true;
  targets: number[] = [];
  requests = 0;
  targetPages = 0;
  actualPages = 0;
  metrics = { discardedBytes: 5 * MIB };
  /** The last statistics; `actualPages` (the balloon when they came) defaults to the balloon now. */
  stats: { stats: BalloonStats; atMs: number; actualPages?: number } | null = null;
  lastStats() { return this.stats ? { actualPages: this.actualPages, ...this.stats } : null; }
  setTargetPages(p: number) { this.targets.push(p); this.targetPages = p; }
  requestStats() { this.requests++; return true; }
}

/** A VmMemory under the dynamic policy (min 96 MiB, buffer 20 %), its balloon asked to hold `targetMiB` and holding `actualMiB`. */
function underPolicy(max: number, current: number, targetMiB: number, actualMiB: number): { m: VmMemory; b: FakeBalloon } {
  const { m, b } = attached(max, current);
  b.targetPages = (targetMiB * MIB) / 4096;
  b.actualPages = (actualMiB * MIB) / 4096;
  m.setPolicy({ minBytes: 96 * MIB, ceilingBytes: max, bufferPercent: 20 });
  return { m, b };
}

function attached(max: number, current: number): { m: VmMemory; b: FakeBalloon } {
  const m = new VmMemory(max, current);
  const b = new FakeBalloon();
  m.attach(b as unknown as VirtioBalloon);
  return { m, b };
}

test('VmMemory: the board starts with the balloon holding max - current', () => {
  assert.deepEqual(new VmMemory(2048 * MIB, 512 * MIB).boardConfig(), { targetBytes: 1536 * MIB });
  assert.deepEqual(new VmMemory(512 * MIB, 512 * MIB).boardConfig(), { targetBytes: 0 });
  assert.throws(() => new VmMemory(512 * MIB, 1024 * MIB), RangeError);
});

test('VmMemory: growing moves the target down in 4 KiB pages; above the maximum is refused', () => {
  const { m, b } = attached(2048 * MIB, 512 * MIB);
  m.set(2000 * MIB);
  assert.deepEqual(b.targets, [(48 * MIB) / 4096]);
  assert.equal(m.currentBytes, 2000 * MIB);
  assert.throws(() => m.set(2049 * MIB), (e: unknown) => e instanceof MemoryChangeError && e.status === 400 && /maximum of 2048 MiB/.test(e.message));
  assert.throws(() => m.set(32 * MIB), (e: unknown) => e instanceof MemoryChangeError && e.status === 400);
  assert.equal(m.currentBytes, 2000 * MIB);
});

test('VmMemory: shrinking needs statistics, and stops at available memory less the reserve', () => {
  const { m, b } = attached(1024 * MIB, 1024 * MIB);
  assert.throws(() => m.set(512 * MIB), (e: unknown) => e instanceof MemoryChangeError && e.status === 409 && /statistics/.test(e.message));
  b.stats = { stats: { availableMemory: 300 * MIB, totalMemory: 990 * MIB }, atMs: Date.now() };
  const most = 300 * MIB - SHRINK_RESERVE_BYTES;
  assert.throws(() => m.set(1024 * MIB - most - MIB), (e: unknown) => e instanceof MemoryChangeError && e.status === 409 && /cannot give/.test(e.message) && /smallest possible now: 756 MiB/.test(e.message));
  assert.equal(b.targets.length, 0, 'nothing changed');
  m.set(1024 * MIB - most);
  assert.deepEqual(b.targets, [most / 4096]);
  b.active = false;
  assert.throws(() => m.set(512 * MIB), (e: unknown) => e instanceof MemoryChangeError && /not running/.test(e.message));
});

test('VmMemory: the status reports the figures and asks for fresh statistics when they are old', () => {
  const { m, b } = attached(1024 * MIB, 768 * MIB);
  b.actualPages = (256 * MIB) / 4096;
  const s0 = m.status(123);
  assert.equal(b.requests, 1);
  assert.deepEqual(s0, { currentBytes: 768 * MIB, maxBytes: 1024 * MIB, balloonBytes: 256 * MIB, returnedBytes: 5 * MIB, guest: null, rssBytes: 123 });
  b.stats = { stats: { freeMemory: 10, totalMemory: 20, availableMemory: 15, oomKills: 0 }, atMs: Date.now() };
  const s1 = m.status(1);
  assert.equal(b.requests, 1, 'fresh statistics are not asked for again');
  assert.equal(s1.guest?.freeBytes, 10);
  assert.equal(s1.guest?.totalBytes, 20);
  b.stats.atMs -= 10_000;
  m.status(1);
  assert.equal(b.requests, 2);
});

test('VmMemory.refreshStats: asks the guest and waits for figures taken from then on; gives up after the timeout', async () => {
  const { m, b } = attached(1024 * MIB, 1024 * MIB);
  b.stats = { stats: { availableMemory: 300 * MIB }, atMs: Date.now() - 5000 };
  setTimeout(() => { b.stats = { stats: { availableMemory: 900 * MIB }, atMs: Date.now() }; }, 100);
  assert.equal(await m.refreshStats(2000), true);
  assert.equal(b.requests, 1);
  m.set(256 * MIB);
  assert.deepEqual(b.targets, [(768 * MIB) / 4096], 'decided on the fresh figures');
  const t0 = Date.now();
  b.stats = { stats: { availableMemory: 300 * MIB }, atMs: t0 - 5000 };
  assert.equal(await m.refreshStats(150), false, 'the guest did not answer');
  assert.ok(Date.now() - t0 >= 150);
  b.active = false;
  assert.equal(await m.refreshStats(1000), false, 'no driver: no wait');
});

test('VmMemory.policyTick: under pressure, a growth goes on while the balloon still deflates, counting what it still owes; a shrink waits for the balloon to settle', () => {
  const { m, b } = underPolicy(1536 * MIB, 512 * MIB, 1024, 1024);
  let now = 100_000;
  const stats = (availableMiB: number) => { b.stats = { stats: { availableMemory: availableMiB * MIB, allocStalls: 0 }, atMs: now - 10 }; };
  stats(4); // 512 MiB held, 4 MiB available: short of memory
  assert.equal(m.policyTick(now), 1024 * MIB, 'pressure: twice the memory');
  // the balloon has not deflated yet (actual > target): the 512 MiB it owes count as held and available
  now += 250;
  stats(2);
  assert.equal(m.policyTick(now), null, 'the growth in flight covers the pressure it was made for: no second growth');
  // figures the guest took before the balloon deflated, read after it did: the guest's size then counts
  const deflatedBefore = b.actualPages;
  b.actualPages = b.targetPages;
  now += 250;
  b.stats = { stats: { availableMemory: 2 * MIB, allocStalls: 0 }, atMs: now - 10, actualPages: deflatedBefore };
  assert.equal(m.policyTick(now), null, 'MemAvailable from before the deflate, with the memory from after it, is no pressure');
  b.actualPages = deflatedBefore;
  // most of it came, and the guest filled that too: still short, counting the 16 MiB still owed
  b.actualPages = b.targetPages + (16 * MIB) / 4096;
  now += 250;
  stats(2);
  assert.equal(m.policyTick(now), 1536 * MIB, 'grows again before the balloon caught up');
  // the guest took pages back from the balloon on OOM (actual < target, no shrink of ours in flight); at the ceiling already
  b.actualPages = b.targetPages - (64 * MIB) / 4096;
  now += 250;
  stats(3);
  assert.equal(m.policyTick(now), null, 'at the ceiling already: nothing to grow, but the figures were read');
  // a shrink in flight (actual < target): fresh figures wait for the balloon, up to 2 s
  const { m: m2, b: b2 } = underPolicy(1536 * MIB, 1024 * MIB, 512, 512);
  assert.equal(m2.boardConfig().deflateOnOom, true, 'under the policy the guest may deflate on OOM');
  b2.stats = { stats: { availableMemory: 900 * MIB, allocStalls: 0 }, atMs: now };
  assert.equal(m2.policyTick(now + 10), 896 * MIB, 'idle: a shrink step of 1/8');
  b2.stats = { stats: { availableMemory: 4 * MIB, allocStalls: 0 }, atMs: now + 200 };
  assert.equal(m2.policyTick(now + 260), null, 'the balloon has not inflated yet: wait');
  b2.stats = { stats: { availableMemory: 4 * MIB, allocStalls: 0 }, atMs: now + 2400 };
  assert.equal(m2.policyTick(now + 2500), 1536 * MIB, 'after POLICY_SETTLE_MS it decides anyway');
  // the same with the balloon short of a target no shrink of ours set: at once
  const { m: m3, b: b3 } = underPolicy(1536 * MIB, 1024 * MIB, 512, 448); // the guest deflated 64 MiB on OOM
  b3.stats = { stats: { availableMemory: 2 * MIB, allocStalls: 5 }, atMs: now };
  assert.equal(m3.policyTick(now + 10), 1536 * MIB, 'short of memory after an OOM deflate: grows at once');
  assert.equal(new VmMemory(2048 * MIB, 512 * MIB).boardConfig().deflateOnOom, undefined, 'a fixed size: no deflate on OOM');
});
