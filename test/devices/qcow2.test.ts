/**
 * The disk formats in memory (src/devices/block): raw and qcow2 round trips against a
 * byte-array model (with and without raw/qcow2 backing files), crash consistency at
 * every write of the image file, and hostile headers and tables.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { BlockError } from '../../src/devices/block/errors.js';
import { MemoryFile } from '../../src/devices/block/file.js';
import { detectFormat, imageChain, openImage, type DiskFormat, type DiskImage } from '../../src/devices/block/image.js';
import { createQcow2 } from '../../src/devices/block/qcow2-create.js';
import { readQcow2Header } from '../../src/devices/block/qcow2-header.js';
import { RawBackend } from '../../src/devices/block/raw.js';
import { inflateCluster } from '../../src/devices/node/disk.js';
import { checkQcow2Bytes, JournalFile, MemFs, randomWrites, rng, sha256 } from './qcow2-helpers.js';

const KiB = 1024, MiB = 1024 * 1024;

/** A new qcow2 image's bytes. */
function newQcow2(size: number, clusterBits = 16, backing?: { name: string; format: DiskFormat }, refcountTableClusters?: number): Uint8Array {
  const f = new MemoryFile(new Uint8Array(0), 'new');
  createQcow2(f, { size, clusterBits, backing, refcountTableClusters });
  return f.bytes();
}

function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r() & 0xff;
  return b;
}

function readAll(d: DiskImage): Uint8Array {
  const b = new Uint8Array(d.size);
  d.read(b, 0);
  return b;
}

/** First offset where a and b differ, or -1. */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const d = firstDiff(actual, expected);
  assert.equal(d, -1, `${what}: first difference at byte ${d} (0x${d.toString(16)})`);
}

describe('qcow2 round trip against a byte model', () => {
  const cases: Array<{ cb: number; size: number; maxLen: number; backing: 'none' | 'raw' | 'qcow2' }> = [];
  for (const backing of ['none', 'raw', 'qcow2'] as const) {
    cases.push({ cb: 16, size: 6 * MiB, maxLen: 300 * KiB, backing });
    cases.push({ cb: 9, size: 1 * MiB, maxLen: 6 * KiB, backing });
  }
  for (const c of cases) {
    test(`${2 ** c.cb}-byte clusters, backing ${c.backing}: 300 random writes and reads`, () => {
      const fs = new MemFs();
      const baseSize = c.size - 3 * 2 ** c.cb - 7 * 512; // the overlay is larger than its base
      const model = new Uint8Array(c.size);
      let baseHash = '';
      if (c.backing === 'raw') {
        const base = randomBytes(baseSize, 11);
        fs.add('base', base);
        model.set(base);
      } else if (c.backing === 'qcow2') {
        fs.add('base', newQcow2(baseSize, c.cb === 16 ? 15 : 10)); // a different cluster size below
        const b = openImage('base', fs);
        for (const op of randomWrites(5, 60, baseSize, c.maxLen)) { b.write(op.data, op.offset); model.set(op.data, op.offset); }
        b.close();
      }
      if (c.backing !== 'none') baseHash = sha256(fs.bytes('base'));
      fs.add('top', newQcow2(c.size, c.cb, c.backing === 'none' ? undefined : { name: 'base', format: c.backing }));
      const d = openImage('top', fs);
      assert.equal(d.format, 'qcow2');
      assert.equal(d.size, c.size);
      assert.equal(d.backing?.format, c.backing === 'none' ? undefined : c.backing);
      assertSame(readAll(d), model, 'before writing');
      const r = rng(c.cb * 1000 + c.backing.length);
      const ops = randomWrites(c.cb * 7 + c.backing.length, 300, c.size, c.maxLen);
      ops.forEach((op, i) => {
        d.write(op.data, op.offset);
        model.set(op.data, op.offset);
        // a random unaligned read
        const len = 1 + (r() % c.maxLen);
        const off = r() % (c.size - len + 1);
        const got = new Uint8Array(len);
        d.read(got, off);
        assertSame(got, model.subarray(off, off + len), `read ${off}+${len} after write ${i}`);
        if (i % 100 === 99) assertSame(readAll(d), model, `whole disk after write ${i}`);
      });
      d.flush();
      d.close();
      // metadata persisted: a fresh open reads the same, and the image is consistent
      const again = openImage('top', fs, { readonly: true });
      assertSame(readAll(again), model, 'after reopening');
      again.close();
      const check = checkQcow2Bytes(fs.bytes('top'));
      assert.deepEqual(check.corruptions, []);
      assert.equal(check.leaks, 0);
      if (c.backing !== 'none') assert.equal(sha256(fs.bytes('base')), baseHash, 'the backing file was written');
    });
  }

  test('the refcount table grows (512-byte clusters, a one-cluster table covering 8 MiB)', () => {
    const fs = new MemFs();
    const size = 12 * MiB;
    fs.add('top', newQcow2(size, 9, undefined, 1));
    const before = readQcow2Header(fs.files.get('top')!);
    const d = openImage('top', fs);
    const model = new Uint8Array(size);
    for (const op of randomWrites(3, 40, size, 600 * KiB)) { d.write(op.data, op.offset); model.set(op.data, op.offset); }
    const seq = randomBytes(6 * MiB, 4); // plus a long sequential run
    d.write(seq, 5 * MiB); model.set(seq, 5 * MiB);
    d.close();
    const after = readQcow2Header(fs.files.get('top')!);
    assert.equal(before.refcountTableClusters, 1);
    assert.ok(after.refcountTableClusters > 1, `table still ${after.refcountTableClusters} cluster(s)`);
    assert.notEqual(after.refcountTableOffset, before.refcountTableOffset);
    const again = openImage('top', fs, { readonly: true });
    assertSame(readAll(again), model, 'after growth');
    again.close();
    const check = checkQcow2Bytes(fs.bytes('top'));
    assert.deepEqual(check.corruptions, []);
    assert.equal(check.leaks, 0, 'the old table was freed');
  });

  test('raw: round trip, size rounded down to 512, reads past the end refused', () => {
    const fs = new MemFs();
    fs.add('r', randomBytes(MiB + 100, 8));
    const model = fs.bytes('r').slice(0, MiB);
    const d = openImage('r', fs);
    assert.equal(d.format, 'raw');
    assert.equal(d.size, MiB);
    assert.equal((d as RawBackend).ignoredBytes, 100);
    for (const op of randomWrites(9, 200, MiB, 20 * KiB)) { d.write(op.data, op.offset); model.set(op.data, op.offset); }
    assertSame(readAll(d), model, 'raw');
    assert.throws(() => d.read(new Uint8Array(512), MiB), RangeError);
    d.close();
    assert.throws(() => d.read(new Uint8Array(1), 0), /closed/);
  });

  test('a detected raw image refuses a write that would make it look like qcow2', () => {
    const fs = new MemFs();
    fs.add('r', new Uint8Array(64 * KiB));
    const magic = new Uint8Array([0x51, 0x46, 0x49, 0xfb]);
    const d = openImage('r', fs);
    assert.throws(() => d.write(magic, 0), (e: Error) => e instanceof BlockError && /look like a qcow2 image/.test(e.message));
    d.write(new Uint8Array([0x51, 0x46]), 0); // harmless halves are fine
    assert.throws(() => d.write(new Uint8Array([0x49, 0xfb]), 2), /look like a qcow2 image/);
    d.close();
    assert.equal(detectFormat(fs.files.get('r')!), 'raw');
    const named = openImage('r', fs, { format: 'raw' }); // named explicitly: allowed
    named.write(magic, 0);
    named.close();
    assert.equal(detectFormat(fs.files.get('r')!), 'qcow2');
  });

  test('zero clusters read as zeros; writing into one allocates a cluster', () => {
    const fs = new MemFs();
    fs.add('top', newQcow2(MiB));
    const d = openImage('top', fs);
    d.write(new Uint8Array(192 * KiB).fill(0xab), 0);
    d.close();
    // turn guest cluster 1 into a plain zero cluster (L2 entry: only bit 0)
    const bytes = fs.bytes('top');
    const h = readQcow2Header(new MemoryFile(bytes));
    const v = new DataView(bytes.buffer);
    const l2 = Number(v.getBigUint64(h.l1TableOffset) & 0x00fffffffffffe00n);
    const oldHost = Number(v.getBigUint64(l2 + 8) & 0x00fffffffffffe00n);
    v.setBigUint64(l2 + 8, 1n);
    // and guest cluster 2 into a zero cluster with its preallocated host cluster
    v.setBigUint64(l2 + 16, v.getBigUint64(l2 + 16) | 1n);
    fs.add('top', bytes);
    const z = openImage('top', fs);
    const got = readAll(z);
    assert.ok(got.subarray(0, 64 * KiB).every((x) => x === 0xab));
    assert.ok(got.subarray(64 * KiB, 192 * KiB).every((x) => x === 0), 'zero clusters read as zeros');
    z.write(new Uint8Array([1, 2, 3]), 64 * KiB + 5);
    z.write(new Uint8Array([4]), 128 * KiB + 9);
    const after = readAll(z);
    assert.deepEqual([...after.subarray(64 * KiB, 64 * KiB + 9)], [0, 0, 0, 0, 0, 1, 2, 3, 0]);
    assert.equal(after[128 * KiB + 9], 4);
    assert.equal(after[128 * KiB + 8], 0);
    z.close();
    const check = checkQcow2Bytes(fs.bytes('top'));
    assert.deepEqual(check.corruptions, []);
    assert.equal(check.leaks, 1, `only the cluster dropped by hand (0x${oldHost.toString(16)}) leaks`);
  });

  test('compressed clusters read back (injected inflate), and partial writes over them copy them', () => {
    const fs = new MemFs();
    fs.add('top', newQcow2(MiB));
    const d = openImage('top', fs);
    d.write(new Uint8Array(64 * KiB).fill(1), 0); // allocates the L2 table
    d.close();
    // store guest cluster 3 compressed, appended at the end of the file (QEMU's layout rules)
    const content = new Uint8Array(64 * KiB);
    for (let i = 0; i < content.length; i++) content[i] = (i * 31) % 251 < 40 ? i & 0xff : 7;
    const comp = deflateRawSync(content);
    const bytes = fs.bytes('top');
    const h = readQcow2Header(new MemoryFile(bytes));
    const host = bytes.length + 64 * KiB + 300; // not aligned: compressed data is byte-addressed
    const out = new Uint8Array(host + comp.length);
    out.set(bytes);
    out.set(comp, host);
    const v = new DataView(out.buffer);
    const l2 = Number(v.getBigUint64(h.l1TableOffset) & 0x00fffffffffffe00n);
    const sectors = BigInt(Math.floor((host + comp.length - 1) / 512) - Math.floor(host / 512));
    v.setBigUint64(l2 + 3 * 8, (1n << 62n) | (sectors << 54n) | BigInt(host));
    // its host clusters need refcounts: set them in the (only) refcount block
    const rb = Number(v.getBigUint64(h.refcountTableOffset));
    for (let c = Math.floor(host / (64 * KiB)); c <= Math.floor((host + comp.length - 1) / (64 * KiB)); c++) v.setUint16(rb + 2 * c, 1);
    fs.add('top', out);
    assert.deepEqual(checkQcow2Bytes(fs.bytes('top')).corruptions, []);
    const without = openImage('top', fs, { readonly: true });
    assert.throws(() => readAll(without), /compressed cluster found but no decompressor/);
    without.close();
    const c = openImage('top', fs, { decompress: inflateCluster });
    const got = new Uint8Array(64 * KiB);
    c.read(got, 3 * 64 * KiB);
    assertSame(got, content, 'compressed cluster');
    c.write(new Uint8Array([9, 9]), 3 * 64 * KiB + 1000);
    content.set([9, 9], 1000);
    c.read(got, 3 * 64 * KiB);
    assertSame(got, content, 'after a partial write');
    c.close();
    const check = checkQcow2Bytes(fs.bytes('top'));
    assert.deepEqual(check.corruptions, []);
    assert.equal(check.leaks, 0, 'the compressed data was freed');
  });
});

describe('crash consistency: the image after any prefix of its file writes', () => {
  /**
   * Run `ops` through a qcow2 image over a journaling file, then rebuild the file as it
   * was after each write (and with the write torn after its first page), and check it:
   * consistent (no corruption; leaks allowed), and its content is the model after the
   * guest writes completed so far, with the write in progress partly or wholly applied.
   */
  function crashTest(fs: MemFs, top: Uint8Array, ops: Array<{ offset: number; data: Uint8Array }>, model0: Uint8Array, sample: (i: number, n: number) => boolean): { points: number; maxLeaks: number } {
    const j = new JournalFile(top, 'top');
    fs.files.delete('top');
    const img = openImage('top', { open: (n, from, ro) => (n === 'top' ? { file: j, location: n, id: n } : fs.open(n, from, ro)) });
    ops.forEach((op, i) => { j.tag = i; img.write(op.data, op.offset); });
    img.close();
    // models[k]: the disk after ops 0..k-1
    const models: Uint8Array[] = [model0.slice()];
    for (const op of ops) { const m = models[models.length - 1].slice(); m.set(op.data, op.offset); models.push(m); }
    let points = 0, maxLeaks = 0;
    for (let n = 0; n <= j.log.length; n++) {
      if (!sample(n, j.log.length)) continue;
      const partials = n < j.log.length && j.log[n].data && j.log[n].data!.length > 4096 ? [0, 4096] : [0];
      for (const partial of partials) {
        const state = j.stateAt(n, partial);
        points++;
        const check = checkQcow2Bytes(state);
        assert.deepEqual(check.corruptions, [], `crash after ${n} writes (+${partial} bytes)`);
        maxLeaks = Math.max(maxLeaks, check.leaks);
        fs.add('crash', state);
        const d = openImage('crash', { open: (name, from, ro) => fs.open(name === 'crash' ? 'crash' : name, from, ro) }, { readonly: true });
        const got = readAll(d);
        d.close();
        // guest write k was in progress: everything before it is there, it may be partly there
        const k = n < j.log.length ? j.log[n].tag : ops.length;
        const before = models[k];
        const op = ops[k];
        for (let b = 0; b < got.length; b++) {
          if (got[b] === before[b]) continue;
          const inOp = op && b >= op.offset && b < op.offset + op.data.length && got[b] === op.data[b - op.offset];
          assert.ok(inOp, `crash after ${n} writes (+${partial}) during guest write ${k}: byte ${b} is ${got[b]}, expected ${before[b]}`);
        }
      }
    }
    return { points, maxLeaks };
  }

  test('64 KiB clusters over a raw backing file: every crash point', (t) => {
    const fs = new MemFs();
    const size = 2 * MiB;
    const base = randomBytes(size, 21);
    fs.add('base', base);
    const top = newQcow2(size, 16, { name: 'base', format: 'raw' });
    const r = crashTest(fs, top, randomWrites(22, 40, size, 150 * KiB), base, () => true);
    t.diagnostic(`${r.points} crash points, at most ${r.maxLeaks} leaked clusters`);
    assert.equal(sha256(fs.bytes('base')), sha256(base));
  });

  test('512-byte clusters with refcount table growth: sampled crash points, every one around the growth', (t) => {
    const fs = new MemFs();
    const size = 10 * MiB;
    const top = newQcow2(size, 9, undefined, 1);
    const ops = [...randomWrites(23, 12, size, 40 * KiB), { offset: MiB + 3, data: randomBytes(8 * MiB, 24) }, ...randomWrites(25, 12, size, 40 * KiB)];
    const r = rng(26);
    const sample = (n: number, total: number) => n === total || n < 50 || r() % 97 === 0;
    const res = crashTest(fs, top, ops, new Uint8Array(size), sample);
    t.diagnostic(`${res.points} crash points, at most ${res.maxLeaks} leaked clusters`);
    // and every write that touched the header (the table switch) and its neighbours
    const j = new JournalFile(top);
    const img = openImage('top', { open: () => ({ file: j, location: 'top', id: 'top' }) });
    for (const op of ops) img.write(op.data, op.offset);
    img.close();
    const headerWrites = j.log.map((w, i) => (w.offset < 512 ? i : -1)).filter((i) => i >= 0);
    assert.ok(headerWrites.length >= 1, 'the refcount table grew');
    for (const h of headerWrites) {
      for (let n = h - 3; n <= h + 3; n++) {
        const check = checkQcow2Bytes(j.stateAt(n));
        assert.deepEqual(check.corruptions, [], `crash after ${n} writes (header write ${h})`);
      }
    }
  });
});

describe('hostile images: a clear BlockError, the file unchanged', () => {
  const CS = 64 * KiB;
  /** A 4 MiB image with data in guest clusters 0-2 and a backing-less header. */
  function good(): Uint8Array {
    const fs = new MemFs();
    fs.add('img', newQcow2(4 * MiB));
    const d = openImage('img', fs);
    d.write(new Uint8Array(3 * CS).fill(0x5a), 0);
    d.close();
    return fs.bytes('img');
  }
  const u32 = (b: Uint8Array, off: number, x: number) => new DataView(b.buffer).setUint32(off, x);
  const u64 = (b: Uint8Array, off: number, x: bigint) => new DataView(b.buffer).setBigUint64(off, x);
  const get64 = (b: Uint8Array, off: number) => new DataView(b.buffer).getBigUint64(off);
  const l2Of = (b: Uint8Array) => Number(get64(b, Number(get64(b, 40))) & 0x00fffffffffffe00n);

  /** Open (and optionally read/write) the mutated image; expect a BlockError matching `re`, and no write. */
  function expectBad(mutate: (b: Uint8Array) => void, re: RegExp, how: 'open' | 'open-rw' | 'read' | 'write' = 'open', format?: DiskFormat): void {
    const b = good();
    mutate(b);
    const fs = new MemFs();
    const f = fs.add('img', b);
    const before = sha256(b);
    let d: DiskImage | null = null;
    const attempt = () => {
      d = openImage('img', fs, { readonly: how === 'open' || how === 'read', format, decompress: inflateCluster });
      if (how === 'read') readAll(d);
      if (how === 'write') d.write(new Uint8Array(5000).fill(1), CS - 100);
    };
    assert.throws(attempt, (e: unknown) => {
      assert.ok(e instanceof BlockError, `not a BlockError: ${e}`);
      assert.match(e.message, re);
      assert.match(e.message, /^(qcow2 image img: |backing )/);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    });
    (d as DiskImage | null)?.close();
    assert.equal(f.writes, 0, 'the image was written');
    assert.equal(sha256(f.bytes()), before);
  }

  test('bad magic (format named qcow2)', () => expectBad((b) => { b[3] = 0; }, /bad magic/, 'open', 'qcow2'));
  test('version 1 and 4', () => {
    expectBad((b) => u32(b, 4, 1), /unsupported qcow2 version 1/);
    expectBad((b) => u32(b, 4, 4), /unsupported qcow2 version 4/);
  });
  test('cluster_bits 8 and 22', () => {
    expectBad((b) => u32(b, 20, 8), /cluster_bits 8 out of range/);
    expectBad((b) => u32(b, 20, 22), /cluster_bits 22 out of range/);
  });
  test('header_length', () => {
    expectBad((b) => u32(b, 100, 96), /header_length 96 too short/);
    expectBad((b) => u32(b, 100, 108), /header_length 108 not a multiple of 8/);
  });
  test('L1 table past the end of the file, unaligned, inside the header, too small', () => {
    expectBad((b) => u64(b, 40, BigInt(b.length + CS - (b.length % CS))), /L1 table past the end of the file/);
    expectBad((b) => u64(b, 40, get64(b, 40) + 8n), /L1 table offset 0x[0-9a-f]+ not aligned to a cluster/);
    expectBad((b) => u64(b, 40, 0n), /L1 table offset 0x0 inside the header/);
    expectBad((b) => u64(b, 24, 1n << 40n), /L1 table too small/);
  });
  test('refcount table: none, past the end of the file, overlapping L1', () => {
    expectBad((b) => u32(b, 56, 0), /no refcount table/);
    expectBad((b) => u32(b, 56, 100), /refcount table past the end of the file/);
    expectBad((b) => u64(b, 48, get64(b, 40)), /L1 table overlaps the refcount table/);
  });
  test('L2 table offset inside the header, unaligned, in the refcount table, reserved bits', () => {
    expectBad((b) => u64(b, Number(get64(b, 40)), (1n << 63n) | 0x200n), /L2 table offset 0x200 inside the header/);
    expectBad((b) => u64(b, Number(get64(b, 40)), (1n << 63n) | (get64(b, 40) + 0x200n)), /L2 table offset 0x[0-9a-f]+ not aligned/);
    expectBad((b) => u64(b, Number(get64(b, 40)), (1n << 63n) | get64(b, 48)), /L2 table offset 0x[0-9a-f]+ inside the refcount table/);
    expectBad((b) => u64(b, Number(get64(b, 40)), get64(b, Number(get64(b, 40))) | 2n), /L1 entry 0 has reserved bits set/);
  });
  test('data cluster offset inside the header, past the end of the file, aliasing metadata (read and write)', () => {
    for (const how of ['read', 'write'] as const) {
      expectBad((b) => u64(b, l2Of(b), (1n << 63n) | 0x200n), /data cluster offset 0x200 inside the header/, how);
      expectBad((b) => u64(b, l2Of(b), (1n << 63n) | BigInt(b.length + 4 * CS - (b.length % CS))), /data cluster offset 0x[0-9a-f]+ past the end of the file/, how);
      expectBad((b) => u64(b, l2Of(b) + 8, (1n << 63n) | BigInt(l2Of(b))), /data cluster offset 0x[0-9a-f]+ overlaps an L2 table/, how);
      expectBad((b) => u64(b, l2Of(b) + 8, (1n << 63n) | get64(b, Number(get64(b, 48)))), /data cluster offset 0x[0-9a-f]+ overlaps a refcount block/, how);
      expectBad((b) => u64(b, l2Of(b) + 8, get64(b, l2Of(b) + 8) | 0x100n), /L2 entry for guest offset 0x10000 has reserved bits set/, how);
    }
  });
  test('a compressed cluster inside the header', () => {
    expectBad((b) => u64(b, l2Of(b), (1n << 62n) | 0x100n), /compressed cluster offset 0x100 inside the header/, 'read');
  });
  test('refcounts: unsupported refcount_order, a shared cluster, a referenced cluster with refcount 0', () => {
    expectBad((b) => u32(b, 96, 7), /refcount_order 7 unsupported/);
    const rb = (b: Uint8Array) => Number(get64(b, Number(get64(b, 48))));
    const hostOf = (b: Uint8Array, i: number) => Number(get64(b, l2Of(b) + 8 * i) & 0x00fffffffffffe00n);
    // guest cluster 0's host cluster with refcount 2 (as a snapshot would leave it)
    expectBad((b) => { new DataView(b.buffer).setUint16(rb(b) + 2 * (hostOf(b, 0) / CS), 2); }, /data cluster 0x[0-9a-f]+ is shared \(refcount 2\)/, 'write');
    // guest cluster 1 as a preallocated zero cluster whose refcount says free
    expectBad((b) => {
      u64(b, l2Of(b) + 8, get64(b, l2Of(b) + 8) | 1n);
      new DataView(b.buffer).setUint16(rb(b) + 2 * (hostOf(b, 1) / CS), 0);
    }, /refcount of cluster 0x[0-9a-f]+ is 0 but it is referenced/, 'write');
  });
  test('refcount table entries: reserved bits, inside the header, listed twice', () => {
    expectBad((b) => u64(b, Number(get64(b, 48)) + 8, 0x10n), /refcount table entry 1 has reserved bits set/);
    expectBad((b) => u64(b, Number(get64(b, 48)) + 8, 0x200n), /refcount block \(table entry 1\) offset 0x200 inside the header/);
    expectBad((b) => u64(b, Number(get64(b, 48)) + 8, get64(b, Number(get64(b, 48)))), /listed twice/);
  });
  test('features: dirty, corrupt, external data file, compression type, extended L2, unknown, encryption', () => {
    expectBad((b) => { b[79] |= 1; }, /dirty bit set .*qemu-img check -r all/, 'open-rw');
    expectBad((b) => { b[79] |= 2; }, /marked corrupt/, 'open-rw');
    expectBad((b) => { b[79] |= 4; }, /external data files are not supported/);
    expectBad((b) => { b[79] |= 8; b[104] = 1; }, /compression type zstd is not supported/);
    expectBad((b) => { b[104] = 1; }, /compression_type 1 set without/);
    expectBad((b) => { b[79] |= 16; }, /extended L2 entries/);
    expectBad((b) => { b[79] |= 32; }, /unsupported incompatible feature bit 5/);
    expectBad((b) => { b[72] |= 0x80; }, /unsupported incompatible feature bit 63/);
    expectBad((b) => u32(b, 32, 2), /encrypted images are not supported/);
    // with a feature name table, the name is shown
    expectBad((b) => {
      b[79] |= 32;
      u32(b, 112, 0x6803f857); u32(b, 116, 48);
      b[120] = 0; b[121] = 5; b.set(new TextEncoder().encode('time travel'), 122);
    }, /bit 5 \(time travel\)/);
  });
  test('dirty and corrupt images open read-only and read', () => {
    for (const bit of [1, 2]) {
      const b = good();
      b[79] |= bit;
      const fs = new MemFs();
      fs.add('img', b);
      const d = openImage('img', fs, { readonly: true });
      const got = new Uint8Array(CS);
      d.read(got, 0);
      assert.ok(got.every((x) => x === 0x5a));
      d.close();
    }
  });
  test('internal snapshots: read-only only', () => {
    expectBad((b) => { u32(b, 60, 1); u64(b, 64, BigInt(CS) * 3n); }, /internal snapshot/, 'open-rw');
  });
  test('backing file name: past the header cluster, too long, NUL, outside the header cluster; bad backing format', () => {
    expectBad((b) => { u64(b, 8, BigInt(CS - 8)); u32(b, 16, 100); }, /backing file name \(100 bytes at 0xfff8\) runs past the header cluster/);
    expectBad((b) => { u64(b, 8, 512n); u32(b, 16, 2000); }, /backing file name too long/);
    expectBad((b) => { u64(b, 8, 512n); u32(b, 16, 4); b.set([0x61, 0, 0x62, 0x63], 512); }, /NUL/);
    expectBad((b) => { u64(b, 8, 24n); u32(b, 16, 4); }, /backing file name offset 0x18 outside the header cluster/);
    expectBad((b) => { u64(b, 8, 512n); u32(b, 16, 4); b.set([0x61, 0x62, 0x63, 0x64], 512); u32(b, 112, 0xe2792aca); u32(b, 116, 4); b.set([0x76, 0x6d, 0x64, 0x6b], 120); }, /backing format "vmdk" is not supported/);
    expectBad((b) => { u32(b, 112, 0xe2792aca); u32(b, 116, 70000); }, /header extension 0xe2792aca .* runs past/);
  });
  test('a missing backing file', () => {
    expectBad((b) => { u64(b, 8, 512n); u32(b, 16, 7); b.set(new TextEncoder().encode('nothere'), 512); },
      /^qcow2 image img: cannot open its backing file nothere: disk image not found: nothere$/);
  });

  test('backing file loops and chains deeper than 16 are refused', () => {
    const fs = new MemFs();
    fs.add('a', newQcow2(MiB, 16, { name: 'b', format: 'qcow2' }));
    fs.add('b', newQcow2(MiB, 16, { name: 'a', format: 'qcow2' }));
    fs.add('self', newQcow2(MiB, 16, { name: 'self', format: 'qcow2' }));
    const hashes = ['a', 'b', 'self'].map((n) => sha256(fs.bytes(n)));
    assert.throws(() => openImage('a', fs), (e: Error) => e instanceof BlockError && e.message === 'backing file loop: a -> b -> a');
    assert.throws(() => openImage('self', fs), { name: 'BlockError', message: 'backing file loop: self -> self' });
    // detected format on the loop too (no backing format extension)
    fs.add('c', newQcow2(MiB));
    const c = fs.files.get('c')!.bytes();
    u64(c, 8, 512n); u32(c, 16, 1); c[512] = 0x63; // backing "c"
    fs.add('c', c);
    assert.throws(() => openImage('c', fs), { name: 'BlockError', message: 'backing file loop: c -> c' });
    assert.deepEqual(['a', 'b', 'self'].map((n) => sha256(fs.bytes(n))), hashes);
    // a chain of 17 backing files below the top, then one of exactly 16
    fs.add('l0', new Uint8Array(MiB));
    for (let i = 1; i <= 18; i++) fs.add(`l${i}`, newQcow2(MiB, 16, { name: `l${i - 1}`, format: i === 1 ? 'raw' : 'qcow2' }));
    assert.throws(() => openImage('l18', fs), { name: 'BlockError', message: 'backing chain of l18 is deeper than 16 backing files' });
    const ok = openImage('l16', fs);
    assert.equal(imageChain(ok).length, 17);
    ok.close();
    for (const f of fs.files.values()) assert.equal(f.writes, 0);
  });
});
