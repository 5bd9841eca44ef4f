/**
 * virtio-balloon (virtio-v1.2-cs01 §5.5) with STATS_VQ and PAGE_REPORTING, driven the way
 * Linux's drivers/virtio/virtio_balloon.c drives it: the statistics buffer queued before
 * DRIVER_OK, PFN arrays of 4 KiB pages on the inflate/deflate queues, `actual` written
 * back, free ranges on the reporting queue as device-writable descriptors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  VirtioMmio, VIRTIO_F_VERSION_1, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_DEVICE_NEEDS_RESET,
} from '../../src/devices/virtio/mmio.js';
import {
  VirtioBalloon, VIRTIO_BALLOON_F_DEFLATE_ON_OOM, VIRTIO_BALLOON_F_PAGE_REPORTING, VIRTIO_BALLOON_F_STATS_VQ,
  VIRTIO_BALLOON_S_MEMFREE, VIRTIO_BALLOON_S_MEMTOT, VIRTIO_BALLOON_S_OOM_KILL, type BalloonStats, type VirtioBalloonOptions,
} from '../../src/devices/virtio/balloon.js';
import { GuestMemory } from '../../src/devices/guest-memory.js';
import { adviseHugePages, madviseDiscarder } from '../../src/devices/node/discard.js';
import { FakeIrq, MultiQueueDriver, RAM_BASE } from './helpers.js';

const RAM_SIZE = 4 << 20;
const PAGE = 4096;
/** Pages 512.. (2 MiB on) hold the test's data; the rings and heap live below. */
const DATA = RAM_BASE + (2 << 20);

interface Rig {
  mem: GuestMemory;
  dev: VirtioMmio;
  balloon: VirtioBalloon;
  drv: MultiQueueDriver;
  irq: FakeIrq;
  /** Ranges told to GuestMemory's onWrite (offset, length). */
  written: Array<[number, number]>;
  stats: BalloonStats[];
}

function rig(options: VirtioBalloonOptions = {}): Rig {
  const written: Array<[number, number]> = [];
  const mem = new GuestMemory(new Uint8Array(RAM_SIZE), RAM_BASE, (off, len) => written.push([off, len]));
  const stats: BalloonStats[] = [];
  const balloon = new VirtioBalloon({ onStats: (s) => stats.push(s), ...options });
  const irq = new FakeIrq();
  const dev = new VirtioMmio(balloon, mem, irq, { eventIdx: false, indirect: false });
  return { mem, dev, balloon, drv: new MultiQueueDriver(dev, mem, 32), irq, written, stats };
}

/** A statistics buffer of `{ le16 tag; le64 val }` entries. */
function statsBuffer(r: Rig, entries: Array<[number, number]>): number {
  const a = r.drv.alloc(10 * entries.length);
  entries.forEach(([tag, v], i) => {
    r.mem.writeU16(a + 10 * i, tag);
    r.mem.writeU32(a + 10 * i + 2, v % 2 ** 32);
    r.mem.writeU32(a + 10 * i + 6, Math.floor(v / 2 ** 32));
  });
  return a;
}

/** Probe as virtballoon_probe does: every queue, the primed statistics buffer, DRIVER_OK. */
function probe(r: Rig, accept = VIRTIO_F_VERSION_1 | VIRTIO_BALLOON_F_STATS_VQ | VIRTIO_BALLOON_F_PAGE_REPORTING): void {
  r.drv.negotiate(accept);
  const queues = 2 + (accept & VIRTIO_BALLOON_F_STATS_VQ ? 1 : 0) + (accept & VIRTIO_BALLOON_F_PAGE_REPORTING ? 1 : 0);
  r.drv.setupQueues(queues, () => {
    if (accept & VIRTIO_BALLOON_F_STATS_VQ) {
      const a = statsBuffer(r, [[VIRTIO_BALLOON_S_MEMFREE, 100 * PAGE], [VIRTIO_BALLOON_S_MEMTOT, 1000 * PAGE]]);
      r.drv.rings[2].add([{ addr: a, len: 20 }]);
      r.drv.kick(2); // before DRIVER_OK: the device must still find it
    }
  });
}

/** Put a PFN array on queue `q` (0 inflate, 1 deflate) and kick. */
function sendPfns(r: Rig, q: number, pfns: number[]): void {
  const a = r.drv.alloc(4 * pfns.length);
  pfns.forEach((p, i) => r.mem.writeU32(a + 4 * i, p));
  r.drv.rings[q].add([{ addr: a, len: 4 * pfns.length }]);
  r.drv.kick(q);
}

function fillPages(r: Rig, first: number, count: number): void {
  for (let p = 0; p < count; p++) r.mem.slice(first + p * PAGE, PAGE).fill(0xa0 + p);
}

test('virtio-balloon: device ID 5; offers STATS_VQ and PAGE_REPORTING, DEFLATE_ON_OOM only when asked', () => {
  const r = rig();
  assert.equal(r.dev.read(VIRTIO_MMIO_DEVICE_ID, 4), 5);
  const f = r.drv.deviceFeatures();
  assert.ok(f & VIRTIO_BALLOON_F_STATS_VQ);
  assert.ok(f & VIRTIO_BALLOON_F_PAGE_REPORTING);
  assert.equal(f & VIRTIO_BALLOON_F_DEFLATE_ON_OOM, 0n);
  assert.ok(rig({ deflateOnOom: true }).drv.deviceFeatures() & VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
  assert.throws(() => new VirtioBalloon({ queueSize: 16 }), RangeError);
  assert.throws(() => new VirtioBalloon({ targetPages: -1 }), RangeError);
});

test('virtio-balloon: the target is num_pages; moving it sends a configuration change; the driver writes actual', () => {
  const r = rig({ targetPages: 300 });
  const actual: number[] = [];
  const r2 = rig({ targetPages: 300, onActual: (p) => actual.push(p) });
  assert.equal(r.dev.read(VIRTIO_MMIO_CONFIG, 4), 300);
  probe(r2);
  r2.drv.ackInterrupt();
  r2.balloon.setTargetPages(1234);
  assert.equal(r2.dev.read(VIRTIO_MMIO_CONFIG, 4), 1234);
  assert.ok(r2.drv.ackInterrupt() & VIRTIO_MMIO_INT_CONFIG, 'configuration change notification');
  r2.dev.write(VIRTIO_MMIO_CONFIG + 4, 4, 1000);
  assert.equal(r2.balloon.actualPages, 1000);
  assert.equal(r2.dev.read(VIRTIO_MMIO_CONFIG + 4, 4), 1000);
  assert.deepEqual(actual, [1000]);
  // num_pages is the device's: a driver write to it changes nothing
  r2.dev.write(VIRTIO_MMIO_CONFIG, 4, 7);
  assert.equal(r2.balloon.targetPages, 1234);
  assert.throws(() => r2.balloon.setTargetPages(2 ** 32), RangeError);
});

test('virtio-balloon: inflated pages read as zeros, their neighbours keep their data, code there is retired', () => {
  const r = rig();
  probe(r);
  fillPages(r, DATA, 8);
  const pfn0 = DATA / PAGE;
  r.written.length = 0;
  // pages 1, 2, 3 and 6 in shuffled order: two runs
  sendPfns(r, 0, [pfn0 + 3, pfn0 + 1, pfn0 + 6, pfn0 + 2]);
  assert.deepEqual(r.drv.rings[0].takeUsed().length, 1);
  for (let p = 0; p < 8; p++) {
    const page = r.mem.slice(DATA + p * PAGE, PAGE);
    const gone = [1, 2, 3, 6].includes(p);
    assert.ok(page.every((b) => b === (gone ? 0 : 0xa0 + p)), `page ${p} ${gone ? 'zeroed' : 'kept'}`);
  }
  assert.equal(r.balloon.metrics.inflatedPages, 4);
  assert.equal(r.balloon.metrics.discardedBytes, 4 * PAGE);
  const base = DATA - RAM_BASE;
  assert.deepEqual(r.written.filter(([o]) => o >= base), [[base + PAGE, 3 * PAGE], [base + 6 * PAGE, PAGE]]);
  // deflate: the guest takes pages back; nothing to do but count
  sendPfns(r, 1, [pfn0 + 1, pfn0 + 2]);
  assert.equal(r.drv.rings[1].takeUsed().length, 1);
  assert.equal(r.balloon.metrics.deflatedPages, 2);
});

test('virtio-balloon: PFNs outside RAM are skipped and counted, the rest are served', () => {
  const r = rig();
  probe(r);
  fillPages(r, DATA, 2);
  const pfn0 = DATA / PAGE;
  sendPfns(r, 0, [0, 0xffffffff, (RAM_BASE + RAM_SIZE) / PAGE, RAM_BASE / PAGE - 1, pfn0]);
  assert.equal(r.drv.rings[0].takeUsed().length, 1);
  assert.equal(r.balloon.metrics.invalid, 4);
  assert.equal(r.balloon.metrics.inflatedPages, 1);
  assert.ok(r.mem.slice(DATA, PAGE).every((b) => b === 0));
  assert.ok(r.mem.slice(DATA + PAGE, PAGE).every((b) => b === 0xa1));
  // a buffer that is not whole PFNs, and one outside RAM, break nothing
  const a = r.drv.alloc(8);
  r.mem.writeU32(a, pfn0 + 1);
  r.drv.rings[0].add([{ addr: a, len: 7 }]);
  r.drv.rings[0].add([{ addr: RAM_BASE + RAM_SIZE - 4, len: 64 }]);
  r.drv.kick(0);
  assert.equal(r.drv.rings[0].takeUsed().length, 2);
  assert.ok(r.mem.slice(DATA + PAGE, PAGE).every((b) => b === 0), 'the one whole PFN of the 7-byte buffer');
  assert.equal(r.dev.read(VIRTIO_MMIO_STATUS, 4) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
});

test('virtio-balloon: free page reports discard whole pages inside each range; ranges outside RAM are counted', () => {
  const r = rig();
  probe(r);
  fillPages(r, DATA, 8);
  // [page 0 .. page 2) exactly; page 4 plus a half page on each side (only page 4 is whole); one past RAM's end
  r.drv.rings[3].add([
    { addr: DATA, len: 2 * PAGE, write: true },
    { addr: DATA + 3 * PAGE + PAGE / 2, len: 2 * PAGE, write: true },
    { addr: RAM_BASE + RAM_SIZE - PAGE, len: 2 * PAGE, write: true },
  ]);
  r.drv.kick(3);
  const used = r.drv.rings[3].takeUsed();
  assert.equal(used.length, 1);
  assert.equal(used[0].len, 0);
  const zero = [0, 1, 4];
  for (let p = 0; p < 8; p++) {
    const page = r.mem.slice(DATA + p * PAGE, PAGE);
    assert.ok(page.every((b) => b === (zero.includes(p) ? 0 : 0xa0 + p)), `page ${p}`);
  }
  assert.equal(r.balloon.metrics.reports, 1);
  assert.equal(r.balloon.metrics.reportedBytes, 3 * PAGE);
  assert.equal(r.balloon.metrics.invalid, 1);
  assert.ok(r.irq.level, 'used buffer notification');
});

test('virtio-balloon: statistics come from the buffer queued at probe; requestStats hands it back for fresh ones', () => {
  const r = rig();
  assert.equal(r.balloon.requestStats(), false, 'no driver yet');
  probe(r);
  assert.deepEqual(r.stats, [{ freeMemory: 100 * PAGE, totalMemory: 1000 * PAGE }]);
  assert.equal(r.balloon.lastStats()?.stats.freeMemory, 100 * PAGE);
  assert.equal(r.drv.rings[2].takeUsed().length, 0, 'the device holds the buffer');
  r.drv.ackInterrupt();
  assert.equal(r.balloon.requestStats(), true);
  assert.equal(r.balloon.requestStats(), false, 'nothing held until the driver answers');
  assert.ok(r.drv.ackInterrupt() & VIRTIO_MMIO_INT_VRING);
  assert.equal(r.drv.rings[2].takeUsed().length, 1);
  // stats_request -> update_balloon_stats -> re-queue; an unknown tag is skipped
  r.dev.write(VIRTIO_MMIO_CONFIG + 4, 4, 700); // the driver's actual when it takes the figures
  const a = statsBuffer(r, [[VIRTIO_BALLOON_S_MEMFREE, 2 ** 40], [99, 5], [VIRTIO_BALLOON_S_OOM_KILL, 3]]);
  r.drv.rings[2].add([{ addr: a, len: 30 }]);
  r.drv.kick(2);
  assert.deepEqual(r.stats[1], { freeMemory: 2 ** 40, oomKills: 3 });
  r.dev.write(VIRTIO_MMIO_CONFIG + 4, 4, 900);
  assert.equal(r.balloon.lastStats()?.actualPages, 700, 'the balloon when the figures came, not now');
  // a second buffer while one is held: the older one is given back
  const b = statsBuffer(r, [[VIRTIO_BALLOON_S_MEMFREE, 1]]);
  r.drv.rings[2].add([{ addr: b, len: 10 }]);
  r.drv.kick(2);
  assert.equal(r.drv.rings[2].takeUsed().length, 1);
  assert.equal(r.stats[2].freeMemory, 1);
});

test('virtio-balloon: without STATS_VQ the reporting queue is queue 2 (queues are numbered by the features accepted)', () => {
  const r = rig();
  probe(r, VIRTIO_F_VERSION_1 | VIRTIO_BALLOON_F_PAGE_REPORTING);
  fillPages(r, DATA, 1);
  r.drv.rings[2].add([{ addr: DATA, len: PAGE, write: true }]);
  r.drv.kick(2);
  assert.equal(r.drv.rings[2].takeUsed().length, 1);
  assert.ok(r.mem.slice(DATA, PAGE).every((b) => b === 0));
  assert.equal(r.balloon.requestStats(), false);
});

test('virtio-balloon: a reset empties the balloon; save/restore keeps target and counters', () => {
  const r = rig({ targetPages: 10 });
  probe(r);
  r.dev.write(VIRTIO_MMIO_CONFIG + 4, 4, 10);
  sendPfns(r, 0, [DATA / PAGE]);
  const saved = JSON.parse(JSON.stringify(r.balloon.save()));
  r.dev.write(VIRTIO_MMIO_STATUS, 4, 0);
  assert.equal(r.balloon.actualPages, 0);
  assert.equal(r.balloon.active, false);
  const b = new VirtioBalloon();
  b.restore(saved);
  assert.equal(b.targetPages, 10);
  assert.equal(b.actualPages, 10);
  assert.equal(b.metrics.inflatedPages, 1);
  b.restore({ targetPages: -3, metrics: { inflatedPages: 'x' } });
  assert.equal(b.targetPages, 0);
  assert.equal(b.metrics.inflatedPages, 0);
});

function rssBytes(): number {
  return Number(readFileSync('/proc/self/statm', 'utf8').split(' ')[1]) * 4096;
}

/** 127 MiB of guest RAM from 1 MiB into a fresh shared 128 MiB WebAssembly.Memory (as a VM's), given back by madviseDiscarder. */
function madvisedRam(): { view: Uint8Array; ram: GuestMemory } {
  const size = 128 << 20;
  const wasm = new WebAssembly.Memory({ initial: size / 65536, maximum: size / 65536, shared: true });
  const view = new Uint8Array(wasm.buffer, 1 << 20, size - (1 << 20));
  return { view, ram: new GuestMemory(view, RAM_BASE, undefined, madviseDiscarder) };
}

test('madviseDiscarder: discarded guest RAM reads as zeros and leaves the process RSS', () => {
  const { ram } = madvisedRam();
  const len = 96 << 20;
  ram.slice(RAM_BASE, len).fill(0x5a);
  const before = rssBytes();
  // one byte short of a page at each end: those partial pages are zero-filled, the rest madvised
  ram.discard(RAM_BASE + 1, len - 2);
  const after = rssBytes();
  assert.ok(before - after > 64 << 20, `RSS ${before >> 20} MiB -> ${after >> 20} MiB`);
  assert.equal(ram.readU8(RAM_BASE), 0x5a);
  assert.equal(ram.readU8(RAM_BASE + len - 1), 0x5a);
  const mid = ram.slice(RAM_BASE + 1, len - 2);
  for (let i = 0; i < mid.length; i += 4093) assert.equal(mid[i], 0, `byte ${i}`);
  assert.equal(mid[mid.length - 1], 0);
});

/** Bytes of anonymous memory the process has in transparent huge pages (/proc/self/smaps_rollup). */
function anonHugeBytes(): number {
  const m = /^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** The host's THP mode: the bracketed word of /sys/kernel/mm/transparent_hugepage/enabled, or null. */
function thpMode(): string | null {
  try {
    return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

test('adviseHugePages: guest RAM gets transparent huge pages when first touched, and madviseDiscarder still frees it', { skip: thpMode() !== 'madvise' && 'THP is not in madvise mode on this host' }, () => {
  const { view, ram } = madvisedRam();
  const huge0 = anonHugeBytes();
  adviseHugePages(view);
  const len = 64 << 20;
  ram.slice(RAM_BASE, len).fill(0x5a);
  const huge1 = anonHugeBytes();
  // 64 MiB touched from an offset of 1 MiB holds 31 whole aligned 2 MiB pages; allow for a host short of free huge pages
  assert.ok(huge1 - huge0 >= 16 << 20, `AnonHugePages ${huge0 >> 10} KiB -> ${huge1 >> 10} KiB`);
  const before = rssBytes();
  ram.discard(RAM_BASE + 1, len - 2);
  const after = rssBytes();
  assert.ok(before - after > 48 << 20, `RSS ${before >> 20} MiB -> ${after >> 20} MiB`);
  assert.equal(ram.readU8(RAM_BASE), 0x5a);
  assert.equal(ram.readU8(RAM_BASE + len - 1), 0x5a);
  assert.equal(ram.readU8(RAM_BASE + (len >> 1)), 0);
});
