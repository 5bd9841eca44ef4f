// Kernels and initrds read from files straight into guest RAM (src/vmm/boot-files.ts) and
// the command archive appended to an initrd (src/vmm/boot-config.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concatBlobs, fileBlob } from '../../src/vmm/boot-files.js';
import { commandArchive, initrdBlobWithCommand, initrdWithCommand } from '../../src/vmm/boot-config.js';
import { memoryBlob } from '../../src/machine/boot.js';

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

test('fileBlob: size taken at once, bytes read on demand; a file that shrank since is an error naming it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-blob-'));
  try {
    const path = join(dir, 'Image');
    const data = bytes(70_000, 3);
    writeFileSync(path, data);
    const blob = fileBlob(path);
    assert.equal(blob.length, 70_000);
    assert.deepEqual(blob.read(65_530, 100), data.subarray(65_530, 65_630));
    assert.deepEqual(blob.read(69_950, 100), data.subarray(69_950), 'a read past the end is cut');
    const ram = new Uint8Array(80_000).fill(0xee);
    blob.copyTo(ram);
    assert.deepEqual(ram.subarray(0, 70_000), data);
    assert.ok(ram.subarray(70_000).every((b) => b === 0xee), 'nothing written past its length');
    truncateSync(path, 1000);
    assert.throws(() => blob.copyTo(ram), new RegExp(`${path}: shorter than its 70000 bytes`));
    assert.throws(() => fileBlob(join(dir, 'missing')), /ENOENT/);
    assert.throws(() => fileBlob(dir), /not a regular file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('concatBlobs: parts at aligned offsets with zeros between, for whole copies and reads across parts', () => {
  const a = bytes(5, 1), b = bytes(7, 2), c = bytes(3, 3);
  const blob = concatBlobs([memoryBlob(a), memoryBlob(b), memoryBlob(c)], 4);
  const want = new Uint8Array(8 + 7 + 1 + 3);
  want.set(a, 0); want.set(b, 8); want.set(c, 16);
  assert.equal(blob.length, want.length);
  const out = new Uint8Array(want.length).fill(0xee);
  blob.copyTo(out);
  assert.deepEqual(out, want, 'the gaps are zeroed even over old bytes');
  for (const [off, n] of [[0, 19], [3, 7], [6, 12], [15, 10], [19, 4]] as const) assert.deepEqual(blob.read(off, n), want.slice(off, off + n), `read(${off}, ${n})`);
});

test('the initrd with the command archive: the same bytes whether joined in memory or loaded from parts', () => {
  const initrd = bytes(1001, 9);
  const cmd = ['sh', '-c', "echo 'hi'"];
  const joined = initrdWithCommand(initrd, cmd);
  const archive = commandArchive(cmd);
  assert.equal(joined.length, 1004 + archive.length, 'the archive starts 4-byte aligned');
  assert.deepEqual(joined.subarray(1004), archive);
  assert.ok(new TextDecoder().decode(archive).includes("sh -c 'echo '\\''hi'\\'''"), 'tsvisor/cmd holds the shell-quoted command');
  const blob = initrdBlobWithCommand(memoryBlob(initrd), cmd);
  const loaded = new Uint8Array(blob.length);
  blob.copyTo(loaded);
  assert.deepEqual(loaded, joined);
  assert.deepEqual(initrdWithCommand(undefined, cmd), archive, 'no initrd: the archive alone');
});
