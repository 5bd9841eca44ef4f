/**
 * qcow2 interoperability with QEMU's own tools (Debian qemu-utils: qemu-img, qemu-io):
 * images tsvisor creates and writes pass `qemu-img check` and convert to the model's
 * bytes; images QEMU makes (overlays over raw bases, data and zero clusters written by
 * qemu-io, compressed images, version 2, 512-byte clusters, 1- and 64-bit refcounts,
 * dirty lazy-refcount images) read back right and, written by tsvisor, still check clean.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DiskImage } from '../../src/devices/block/image.js';
import { createDisk, openDisk } from '../../src/devices/node/disk.js';
import { findTool, mustRun, qemuCheck, randomWrites, rng, sha256, type WriteOp } from './qcow2-helpers.js';

const KiB = 1024, MiB = 1024 * 1024;
let dir = '';

before(() => {
  for (const t of ['qemu-img', 'qemu-io']) {
    assert.ok(findTool(t), `${t} is missing: the qcow2 interoperability tests need Debian's qemu-utils (npm run test:deps)`);
  }
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-qcow2-'));
});
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

const p = (name: string) => join(dir, name);

function readAll(d: DiskImage): Uint8Array {
  const b = new Uint8Array(d.size);
  d.read(b, 0);
  return b;
}

function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r() & 0xff;
  return b;
}

/** Write `ops` through tsvisor into `path` (and into `model`), flush, close. */
function writeOps(path: string, ops: WriteOp[], model: Uint8Array): void {
  const d = openDisk(path);
  for (const op of ops) { d.write(op.data, op.offset); model.set(op.data, op.offset); }
  d.flush();
  d.close();
}

/** qemu-img check: exit 0, no errors, corruptions or leaks. */
function assertClean(path: string): void {
  const c = qemuCheck(path);
  assert.equal(c.status, 0, `qemu-img check ${path}: exit ${c.status}\n${c.text}`);
  assert.equal(c.report['check-errors'] ?? 0, 0, c.text);
  assert.equal(c.report.corruptions ?? 0, 0, c.text);
  assert.equal(c.report.leaks ?? 0, 0, c.text);
}

/** qemu-img convert -O raw of `path` equals `model`. */
function assertConvertsTo(path: string, model: Uint8Array): void {
  const out = path + '.raw';
  mustRun('qemu-img', ['convert', '-O', 'raw', path, out]);
  const got = readFileSync(out);
  rmSync(out);
  assert.equal(got.length, model.length, 'converted size');
  assert.equal(sha256(got), sha256(model), `qemu-img convert of ${path} differs from the model`);
}

function qemuInfo(path: string): Record<string, unknown> {
  return JSON.parse(mustRun('qemu-img', ['info', '--output=json', path])) as Record<string, unknown>;
}

describe('images tsvisor creates and writes', () => {
  for (const cluster of [64 * KiB, 512]) {
    test(`${cluster}-byte clusters: qemu-img info and check accept it; written by tsvisor, check is clean and convert gives the model`, () => {
      const img = p(`ours-${cluster}.qcow2`);
      const size = cluster === 512 ? 24 * MiB : 64 * MiB;
      createDisk(img, { format: 'qcow2', size, clusterSize: cluster });
      const info = qemuInfo(img);
      assert.equal(info.format, 'qcow2');
      assert.equal(info['virtual-size'], size);
      assert.equal(info['cluster-size'], cluster);
      assert.equal((info['format-specific'] as { data: { compat: string; 'refcount-bits': number } }).data.compat, '1.1');
      assertClean(img);
      const model = new Uint8Array(size);
      writeOps(img, randomWrites(31, 300, size, cluster === 512 ? 300 * KiB : 2 * MiB), model);
      assertClean(img);
      assertConvertsTo(img, model);
    });
  }

  test('an overlay over a raw base: base unchanged, qemu-img sees the chain, check clean, convert gives the model', () => {
    const base = p('base-ours.raw');
    const baseBytes = randomBytes(8 * MiB, 41);
    writeFileSync(base, baseBytes);
    const ov = p('ov-ours.qcow2');
    createDisk(ov, { format: 'qcow2', backing: 'base-ours.raw', size: 12 * MiB }); // larger than its base
    const info = qemuInfo(ov);
    assert.equal(info['backing-filename'], 'base-ours.raw');
    assert.equal(info['backing-filename-format'], 'raw');
    assert.equal(info['virtual-size'], 12 * MiB);
    const model = new Uint8Array(12 * MiB);
    model.set(baseBytes);
    writeOps(ov, randomWrites(42, 200, 12 * MiB, 700 * KiB), model);
    assertClean(ov);
    assertConvertsTo(ov, model);
    assert.equal(sha256(readFileSync(base)), sha256(baseBytes), 'the base was written');
    // QEMU writes into our overlay; we read what it wrote
    mustRun('qemu-io', ['-c', 'write -P 0x6b 100k 300k', ov]);
    model.fill(0x6b, 100 * KiB, 400 * KiB);
    const d = openDisk(ov, { readonly: true });
    assert.equal(sha256(readAll(d)), sha256(model));
    d.close();
  });
});

describe('images QEMU makes', () => {
  test('qemu-img create -f qcow2 -b BASE -F raw: read as the base, written by tsvisor, check clean', () => {
    const base = p('base.raw');
    const baseBytes = randomBytes(16 * MiB, 51);
    writeFileSync(base, baseBytes);
    const ov = p('ov.qcow2');
    mustRun('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', ov]);
    const d = openDisk(ov);
    assert.equal(d.format, 'qcow2');
    assert.equal(d.backing?.format, 'raw');
    assert.equal(sha256(readAll(d)), sha256(baseBytes));
    d.close();
    const model = baseBytes.slice();
    writeOps(ov, randomWrites(52, 300, 16 * MiB, 500 * KiB), model);
    assertClean(ov);
    assertConvertsTo(ov, model);
    assert.equal(sha256(readFileSync(base)), sha256(baseBytes));
  });

  test('data and zero clusters written by qemu-io read back; tsvisor writes into a zero cluster', () => {
    const img = p('io.qcow2');
    mustRun('qemu-img', ['create', '-q', '-f', 'qcow2', img, '8M']);
    mustRun('qemu-io', ['-c', 'write -P 0xab 0 1M', '-c', 'write -P 0xcd 3M 100k', '-c', 'write -z 64k 64k', '-c', 'write -z 5M 1M', img]);
    const model = new Uint8Array(8 * MiB);
    model.fill(0xab, 0, MiB);
    model.fill(0, 64 * KiB, 128 * KiB);
    model.fill(0xcd, 3 * MiB, 3 * MiB + 100 * KiB);
    let d = openDisk(img);
    assert.equal(sha256(readAll(d)), sha256(model));
    d.write(new Uint8Array([1, 2, 3]), 64 * KiB + 7); // inside the zero cluster
    d.write(new Uint8Array(3000).fill(9), 5 * MiB + 4000);
    model.set([1, 2, 3], 64 * KiB + 7);
    model.fill(9, 5 * MiB + 4000, 5 * MiB + 7000);
    d.close();
    assertClean(img);
    assertConvertsTo(img, model);
    d = openDisk(img, { readonly: true });
    assert.equal(sha256(readAll(d)), sha256(model));
    d.close();
    mustRun('qemu-io', ['-c', 'read -P 0 64k 7', '-c', 'read -P 9 5246880 3000', img]);
  });

  test('a compressed image (qemu-img convert -c) reads back the same bytes; partial writes over compressed clusters', () => {
    const raw = p('comp-src.raw');
    const src = new Uint8Array(6 * MiB);
    const r = rng(61);
    for (let i = 0; i < src.length; i += 4096) { // text-like (compressible) and random blocks
      const text = (r() & 3) !== 0;
      for (let j = i; j < i + 4096; j++) src[j] = text ? 97 + (r() % 8) : r() & 0xff;
    }
    src.fill(0, 5 * MiB);
    writeFileSync(raw, src);
    const img = p('comp.qcow2');
    mustRun('qemu-img', ['convert', '-c', '-O', 'qcow2', raw, img]);
    const map = mustRun('qemu-img', ['check', img]);
    assert.match(map, /compressed clusters/);
    assert.doesNotMatch(map, / 0\.00% compressed clusters/, 'the image has compressed clusters');
    let d = openDisk(img, { readonly: true });
    assert.equal(sha256(readAll(d)), sha256(src));
    d.close();
    const model = src.slice();
    writeOps(img, randomWrites(62, 120, 6 * MiB, 20 * KiB), model);
    assertClean(img);
    assertConvertsTo(img, model);
    d = openDisk(img, { readonly: true });
    assert.equal(sha256(readAll(d)), sha256(model));
    d.close();
  });

  test('version 2 (compat=0.10): read and written', () => {
    const img = p('v2.qcow2');
    mustRun('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', img, '8M']);
    mustRun('qemu-io', ['-c', 'write -P 0x11 1M 256k', img]);
    const model = new Uint8Array(8 * MiB);
    model.fill(0x11, MiB, MiB + 256 * KiB);
    const d = openDisk(img, { readonly: true });
    assert.equal(d.describe().qcow2?.version, 2);
    assert.equal(sha256(readAll(d)), sha256(model));
    d.close();
    writeOps(img, randomWrites(71, 100, 8 * MiB, 300 * KiB), model);
    assertClean(img);
    assertConvertsTo(img, model);
  });

  test('512-byte clusters (refcount table grows several times), 1-bit and 64-bit refcounts', () => {
    for (const [name, opts, size] of [['c512', 'cluster_size=512', 40 * MiB], ['r1', 'refcount_bits=1', 32 * MiB], ['r64', 'refcount_bits=64,cluster_size=4096', 32 * MiB]] as const) {
      const img = p(`${name}.qcow2`);
      mustRun('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', opts, img, String(size)]);
      const model = new Uint8Array(size);
      writeOps(img, randomWrites(81, 150, size, 600 * KiB), model);
      const seq = randomBytes(16 * MiB, 82);
      writeOps(img, [{ offset: 10 * MiB + 1, data: seq }], model);
      assertClean(img);
      assertConvertsTo(img, model);
    }
  });

  test('a dirty image (lazy refcounts, qemu-io aborted): read-only works, read-write is refused until qemu-img check -r all', () => {
    const img = p('dirty.qcow2');
    mustRun('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', img, '4M']);
    const r = (() => { try { mustRun('qemu-io', ['-c', 'write -P 0x77 0 128k', '-c', 'abort', img]); return 'exited'; } catch { return 'aborted'; } })();
    assert.equal(r, 'aborted');
    const before = sha256(readFileSync(img));
    const d = openDisk(img, { readonly: true });
    assert.equal(d.describe().qcow2?.dirty, true, 'the dirty bit is set');
    const got = new Uint8Array(128 * KiB);
    d.read(got, 0);
    assert.ok(got.every((x) => x === 0x77));
    d.close();
    assert.throws(() => openDisk(img), { name: 'BlockError', message: new RegExp(`dirty bit set .*qemu-img check -r all ${img.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`) });
    assert.equal(sha256(readFileSync(img)), before, 'refusing wrote the file');
    mustRun('qemu-img', ['check', '-q', '-r', 'all', img]);
    const fixed = openDisk(img);
    fixed.write(new Uint8Array(10).fill(1), 5);
    fixed.close();
    assertClean(img);
  });

  test('a copy of an image keeps working after a backing file is moved next to it (relative names)', () => {
    const sub = p('sub');
    mustRun('mkdir', ['-p', sub]);
    writeFileSync(join(sub, 'b.raw'), randomBytes(MiB, 91));
    mustRun('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'b.raw', '-F', 'raw', join(sub, 'o.qcow2')]);
    copyFileSync(join(sub, 'o.qcow2'), p('o-copy.qcow2'));
    assert.throws(() => openDisk(p('o-copy.qcow2')), /cannot open its backing file b\.raw: disk image not found: .*\/b\.raw/);
    const d = openDisk(join(sub, 'o.qcow2'), { readonly: true });
    assert.equal(d.backing?.name, join(sub, 'b.raw'));
    d.close();
  });
  test('resize: a qcow2 image grows (L1 table in place, and moved to new clusters), keeps its data, checks clean and reads zeros beyond', () => {
    for (const [name, clusterSize, from, to] of [['grow64k.qcow2', 64 * KiB, 700 * MiB, 2048 * MiB], ['grow512.qcow2', 512, MiB, 4 * MiB]] as const) {
      const img = p(name);
      createDisk(img, { format: 'qcow2', size: from, clusterSize });
      const ops: WriteOp[] = [{ offset: 0, data: randomBytes(3072, 7) }, { offset: from - 1024, data: randomBytes(1024, 8) }];
      const d = openDisk(img);
      for (const op of ops) d.write(op.data, op.offset);
      assert.throws(() => d.resize(from - 512), { name: 'BlockError', message: /smaller than/ });
      assert.throws(() => d.resize(from + 100), { name: 'BlockError', message: /512-byte sectors/ });
      d.resize(to);
      assert.equal(d.size, to);
      // a write past the old end lands in the grown part
      d.write(randomBytes(4096, 9), to - 4096);
      d.close();
      assertClean(img);
      const info = JSON.parse(mustRun('qemu-img', ['info', '--output=json', img]));
      assert.equal(info['virtual-size'], to);
      const back = openDisk(img, { readonly: true });
      assert.equal(back.size, to);
      for (const op of ops) {
        const got = new Uint8Array(op.data.length);
        back.read(got, op.offset);
        assert.deepEqual(got, op.data, `${name}: data at ${op.offset}`);
      }
      const zeros = new Uint8Array(8192);
      back.read(zeros, from);
      assert.ok(zeros.every((b) => b === 0), `${name}: zeros past the old end`);
      const tail = new Uint8Array(4096);
      back.read(tail, to - 4096);
      assert.deepEqual(tail, randomBytes(4096, 9));
      back.close();
    }
  });
});
