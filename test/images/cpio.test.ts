import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CPIO_TRAILER, NEWC_HEADER_SIZE, S_IFCHR, S_IFDIR, S_IFREG, cpioDir, cpioFile, cpioNewc, cpioSymlink } from '../../src/images/index.js';
import { hasCommand, tempDir } from './helpers.js';

const dec = new TextDecoder('latin1');

interface Parsed {
  name: string;
  fields: number[];
  data: Uint8Array;
}

/** A reference reader written from the format description, to check the writer's bytes. */
function parseNewc(buf: Uint8Array): Parsed[] {
  const out: Parsed[] = [];
  let off = 0;
  for (;;) {
    assert.equal(off % 4, 0, 'header on a 4-byte boundary');
    const hdr = dec.decode(buf.subarray(off, off + NEWC_HEADER_SIZE));
    assert.equal(hdr.slice(0, 6), '070701');
    assert.match(hdr.slice(6), /^[0-9A-F]{104}$/);
    const fields = Array.from({ length: 13 }, (_, i) => parseInt(hdr.slice(6 + 8 * i, 14 + 8 * i), 16));
    const namesize = fields[11]!;
    const name = dec.decode(buf.subarray(off + NEWC_HEADER_SIZE, off + NEWC_HEADER_SIZE + namesize - 1));
    assert.equal(buf[off + NEWC_HEADER_SIZE + namesize - 1], 0, 'name NUL-terminated');
    let p = off + NEWC_HEADER_SIZE + namesize;
    p += (4 - (p % 4)) % 4;
    const size = fields[6]!;
    const data = buf.subarray(p, p + size);
    p += size;
    p += (4 - (p % 4)) % 4;
    out.push({ name, fields, data });
    off = p;
    if (name === CPIO_TRAILER) break;
  }
  assert.equal(off, buf.length, 'nothing after the trailer');
  return out;
}

test('newc header bytes, padding and trailer', () => {
  const archive = cpioNewc([
    cpioDir('/etc', 0o750),
    cpioFile('etc/a', 'x', 0o600),
    { path: 'etc/bb', mode: S_IFREG | 0o644, data: new Uint8Array([1, 2, 3, 4, 5]), uid: 1000, gid: 100, mtime: 0x12345678 },
    cpioSymlink('etc/link', 'a'),
    { path: 'dev-console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
  ]);
  assert.equal(archive.length % 4, 0);
  const first = dec.decode(archive.subarray(0, NEWC_HEADER_SIZE));
  // magic, ino 1, mode 040750, uid 0, gid 0, nlink 2, mtime 0, size 0, dev 0/0, rdev 0/0, namesize 4 ("etc\0"), check 0
  assert.equal(
    first,
    '070701' + '00000001' + '000041E8' + '00000000' + '00000000' + '00000002' + '00000000' + '00000000' +
      '00000000' + '00000000' + '00000000' + '00000000' + '00000004' + '00000000',
  );
  const entries = parseNewc(archive);
  assert.deepEqual(entries.map((e) => e.name), ['etc', 'etc/a', 'etc/bb', 'etc/link', 'dev-console', CPIO_TRAILER]);
  const bb = entries[2]!;
  assert.equal(bb.fields[1], S_IFREG | 0o644);
  assert.equal(bb.fields[2], 1000);
  assert.equal(bb.fields[3], 100);
  assert.equal(bb.fields[4], 1);
  assert.equal(bb.fields[5], 0x12345678);
  assert.deepEqual([...bb.data], [1, 2, 3, 4, 5]);
  assert.equal(dec.decode(entries[3]!.data), 'a');
  assert.equal(entries[4]!.fields[9], 5);
  assert.equal(entries[4]!.fields[10], 1);
  const inos = entries.slice(0, -1).map((e) => e.fields[0]);
  assert.equal(new Set(inos).size, inos.length, 'distinct inode numbers');
  const trailer = entries.at(-1)!;
  assert.equal(trailer.fields[4], 1);
  assert.equal(trailer.fields[6], 0);
});

test('every name and data length pads correctly', () => {
  for (let n = 1; n <= 9; n++) {
    for (let d = 0; d <= 9; d++) {
      const a = cpioNewc([cpioFile('x'.repeat(n), new Uint8Array(d).fill(0x41))]);
      const e = parseNewc(a);
      assert.equal(e[0]!.name, 'x'.repeat(n));
      assert.equal(e[0]!.data.length, d);
    }
  }
});

test('empty archive is just a trailer', () => {
  const e = parseNewc(cpioNewc([]));
  assert.deepEqual(e.map((x) => x.name), [CPIO_TRAILER]);
});

test('bad entries are refused', () => {
  assert.throws(() => cpioNewc([{ path: 'a', mode: 0o644 }]), /type bits/);
  assert.throws(() => cpioNewc([{ path: 'a', mode: 0o120777 }]), /no target/);
  assert.throws(() => cpioNewc([{ path: 'a/../b', mode: S_IFREG | 0o644 }]), /bad path/);
  assert.throws(() => cpioNewc([{ path: 'd', mode: S_IFDIR | 0o755, data: new Uint8Array([1]) }]), /not a regular file/);
});

test('host cpio extracts what the writer wrote', (t) => {
  if (!hasCommand('cpio')) {
    t.skip('cpio is not installed (apt-get install cpio): round-trip through the host cpio not checked');
    return;
  }
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const big = new Uint8Array(70_001).map((_, i) => (i * 31) & 0xff);
  const unicode = 'dir/ünïcödé name.txt';
  const archive = cpioNewc([
    cpioDir('dir', 0o755),
    cpioDir('dir/sub', 0o700),
    cpioFile('dir/hello.txt', 'hello world\n', 0o644),
    cpioFile('dir/empty', new Uint8Array(0), 0o600),
    cpioFile('dir/sub/big.bin', big, 0o755),
    cpioFile(unicode, 'u', 0o644),
    cpioSymlink('dir/link', 'hello.txt'),
    { path: 'dir/dated', mode: S_IFREG | 0o644, data: new TextEncoder().encode('d'), mtime: 1_700_000_000 },
    { path: 'console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
  ]);
  const file = join(dir, 'a.cpio');
  writeFileSync(file, archive);

  const list = spawnSync('cpio', ['-itv', '--quiet', '-F', file], { encoding: 'utf8' });
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /^crw-------.*5,\s*1.*console$/m);

  const out = join(dir, 'out');
  spawnSync('mkdir', [out]);
  // Device nodes need privileges; extract everything else.
  const r = spawnSync('cpio', ['-idm', '--quiet', '--no-absolute-filenames', '-F', file, 'dir/*'], { cwd: out, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(join(out, 'dir/hello.txt'), 'utf8'), 'hello world\n');
  assert.equal(readFileSync(join(out, 'dir/empty')).length, 0);
  assert.deepEqual(new Uint8Array(readFileSync(join(out, 'dir/sub/big.bin'))), big);
  assert.equal(readFileSync(join(out, unicode), 'utf8'), 'u');
  assert.equal(readlinkSync(join(out, 'dir/link')), 'hello.txt');
  assert.ok(lstatSync(join(out, 'dir/link')).isSymbolicLink());
  assert.equal(statSync(join(out, 'dir/sub/big.bin')).mode & 0o7777, 0o755);
  assert.equal(statSync(join(out, 'dir/empty')).mode & 0o7777, 0o600);
  assert.equal(statSync(join(out, 'dir/sub')).mode & 0o7777, 0o700);
  assert.equal(Math.floor(statSync(join(out, 'dir/dated')).mtimeMs / 1000), 1_700_000_000);
});
