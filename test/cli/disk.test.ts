/**
 * `tsvisor disk create` and `tsvisor disk info` as a user runs them (node bin/tsvisor.js):
 * output, JSON, qemu-img's view of the result, refusals with one-line errors.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeRun, fileHash, findTool, tsvisor, type RunResult } from '../e2e/helpers.js';
import { mustRun } from '../devices/qcow2-helpers.js';

let dir = '';
before(() => {
  assert.ok(findTool('qemu-img'), 'qemu-img is missing: these tests need Debian\'s qemu-utils (npm run test:deps)');
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-disk-cli-'));
});
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

const p = (name: string) => join(dir, name);
const disk = (...args: string[]) => tsvisor(['disk', ...args], { timeoutMs: 60_000 });

/** The run failed with exactly one `tsvisor: ...` line matching `re`, status `code`, nothing on stdout. */
function assertOneLineError(r: RunResult, code: number, re: RegExp, what: string): void {
  assert.equal(r.code, code, describeRun(what, r));
  assert.equal(r.stdout, '', describeRun(what, r));
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, describeRun(`${what}: one line on stderr`, r));
  assert.match(lines[0], /^tsvisor: /);
  assert.match(lines[0], re, describeRun(what, r));
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
}

interface Info {
  path: string; format: string; virtualSize: number; actualSize: number; fileSize: number; clusterSize?: number;
  backingFile?: string; backingFormat?: string; fullBackingFile?: string;
  qcow2?: { version: number; refcountBits: number; dirty: boolean };
  chain: Array<{ path: string; format: string; virtualSize: number }>;
}

describe('tsvisor disk', { timeout: 5 * 60_000 }, () => {
  test('create qcow2 and raw; info --json; qemu-img agrees', async () => {
    let r = await disk('create', p('a.qcow2'), '1G');
    assert.equal(r.code, 0, describeRun('disk create', r));
    assert.equal(r.stdout, `created ${p('a.qcow2')}: qcow2, 1 GiB (1073741824 bytes)\n`);
    r = await disk('create', p('r.img'), '10M', '--format', 'raw');
    assert.equal(r.code, 0, describeRun('disk create raw', r));
    assert.equal(statSync(p('r.img')).size, 10 * 1024 * 1024);
    assert.ok(statSync(p('r.img')).blocks * 512 < 1024 * 1024, 'raw images are sparse');
    r = await disk('create', p('small.qcow2'), '3M', '--cluster-size', '4K');
    assert.equal(r.code, 0, describeRun('disk create --cluster-size', r));

    r = await disk('info', '--json', p('a.qcow2'));
    assert.equal(r.code, 0, describeRun('disk info', r));
    const info = JSON.parse(r.stdout) as Info;
    assert.equal(info.format, 'qcow2');
    assert.equal(info.virtualSize, 1024 ** 3);
    assert.equal(info.clusterSize, 65536);
    assert.equal(info.qcow2?.version, 3);
    assert.equal(info.qcow2?.refcountBits, 16);
    assert.equal(info.fileSize, statSync(p('a.qcow2')).size);
    assert.equal(info.actualSize, statSync(p('a.qcow2')).blocks * 512);
    assert.ok(info.actualSize < 1024 * 1024);
    assert.equal(info.backingFile, undefined);
    assert.equal(info.chain.length, 1);
    const q = JSON.parse(mustRun('qemu-img', ['info', '--output=json', p('small.qcow2')])) as Record<string, unknown>;
    assert.equal(q['virtual-size'], 3 * 1024 * 1024);
    assert.equal(q['cluster-size'], 4096);
    mustRun('qemu-img', ['check', p('a.qcow2')]);
    mustRun('qemu-img', ['check', p('small.qcow2')]);
    r = await disk('info', '--json', p('r.img'));
    assert.equal((JSON.parse(r.stdout) as Info).format, 'raw');

    r = await disk('info', p('a.qcow2'));
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^image: +.*a\.qcow2$/m);
    assert.match(r.stdout, /^format: +qcow2 \(version 3\)$/m);
    assert.match(r.stdout, /^virtual size: +1 GiB \(1073741824 bytes\)$/m);
    assert.match(r.stdout, /^cluster size: +64 KiB$/m);
  });

  test('an overlay: size from the backing, name stored as given and resolved next to the overlay, chain shown', async () => {
    mkdirSync(p('vms'));
    writeFileSync(p('base.img'), Buffer.alloc(4 * 1024 * 1024, 1));
    const baseHash = fileHash(p('base.img'));
    let r = await disk('create', p('vms/vm1.qcow2'), '--backing', '../base.img');
    assert.equal(r.code, 0, describeRun('disk create --backing', r));
    assert.match(r.stdout, /4 MiB .*backing \.\.\/base\.img \(raw\)/);
    r = await disk('create', p('vms/vm1-snap.qcow2'), '8M', '-b', 'vm1.qcow2');
    assert.equal(r.code, 0, describeRun('disk create over a qcow2', r));
    r = await disk('info', '--json', p('vms/vm1-snap.qcow2'));
    const info = JSON.parse(r.stdout) as Info;
    assert.equal(info.virtualSize, 8 * 1024 * 1024);
    assert.equal(info.backingFile, 'vm1.qcow2');
    assert.equal(info.backingFormat, 'qcow2');
    assert.equal(info.fullBackingFile, p('vms/vm1.qcow2'));
    assert.deepEqual(info.chain.map((c) => [c.format, c.virtualSize]), [['qcow2', 8 << 20], ['qcow2', 4 << 20], ['raw', 4 << 20]]);
    assert.equal(info.chain[2].path, p('base.img'));
    const q = JSON.parse(mustRun('qemu-img', ['info', '--output=json', p('vms/vm1.qcow2')])) as Record<string, unknown>;
    assert.equal(q['backing-filename'], '../base.img');
    assert.equal(q['backing-filename-format'], 'raw');
    assert.equal(q['virtual-size'], 4 * 1024 * 1024);
    mustRun('qemu-img', ['check', p('vms/vm1-snap.qcow2')]);
    r = await disk('info', p('vms/vm1-snap.qcow2'));
    assert.match(r.stdout, /^backing file: +vm1\.qcow2 \(.*vms\/vm1\.qcow2\)$/m);
    assert.match(r.stdout, /^chain: +.*vm1-snap\.qcow2 \(qcow2\) -> .*vm1\.qcow2 \(qcow2\) -> .*base\.img \(raw\)$/m);
    assert.equal(fileHash(p('base.img')), baseHash);
  });

  test('refusals: overwrite, bad sizes, formats, raw with a backing file, missing backing, hostile image', async () => {
    writeFileSync(p('exists.img'), 'precious');
    let r = await disk('create', p('exists.img'), '1M');
    assertOneLineError(r, 1, /exists\.img already exists \(refusing to overwrite it\)/, 'overwrite');
    assert.equal(readFileSync(p('exists.img'), 'utf8'), 'precious');
    r = await disk('create', p('x.qcow2'), 'lots');
    assertOneLineError(r, 2, /invalid disk size "lots"/, 'bad size');
    r = await disk('create', p('x.qcow2'), '1000');
    assertOneLineError(r, 2, /must be a multiple of 512/, 'unaligned size');
    r = await disk('create', p('x.qcow2'));
    assertOneLineError(r, 2, /needs a SIZE/, 'no size');
    r = await disk('create', p('x.qcow2'), '1M', '--format', 'vmdk');
    assertOneLineError(r, 2, /invalid --format "vmdk"/, 'bad format');
    r = await disk('create', p('x.img'), '1M', '--format', 'raw', '--backing', 'base.img');
    assertOneLineError(r, 2, /raw image cannot have a backing file/, 'raw with backing');
    r = await disk('create', p('x.qcow2'), '1M', '--cluster-size', '3K');
    assertOneLineError(r, 2, /--cluster-size "3K"/, 'bad cluster size');
    r = await disk('create', p('x.qcow2'), '--backing', 'nope.img');
    assertOneLineError(r, 1, /disk image not found: .*nope\.img/, 'missing backing');
    r = await disk('create', p('x.qcow2'), '1T', '--cluster-size', '512');
    assertOneLineError(r, 1, /too large for 512-byte clusters/, 'too large');
    for (const f of ['x.qcow2', 'x.img']) assert.throws(() => statSync(p(f)), /ENOENT/, `${f} was left behind`);

    r = await disk('info', p('none.qcow2'));
    assertOneLineError(r, 1, /disk image not found: .*none\.qcow2/, 'info of a missing file');
    const bad = readFileSync(p('a.qcow2'));
    bad.writeUInt32BE(22, 20); // cluster_bits
    writeFileSync(p('bad.qcow2'), bad);
    r = await disk('info', p('bad.qcow2'));
    assertOneLineError(r, 1, /^tsvisor: qcow2 image .*bad\.qcow2: cluster_bits 22 out of range/, 'info of a hostile image');
    // run --disk refuses it before booting anything
    const run = await tsvisor(['run', '--disk', p('bad.qcow2'), '--', 'true'], { timeoutMs: 60_000 });
    assertOneLineError(run, 2, /cluster_bits 22/, 'run --disk with a hostile image');
  });
});
