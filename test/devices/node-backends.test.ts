import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileBlockBackend } from '../../src/devices/node/file-block.js';
import { StdioCharBackend } from '../../src/devices/node/stdio-char.js';

function tmpFile(bytes: Uint8Array): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvisor-blk-'));
  const p = path.join(dir, 'disk.img');
  fs.writeFileSync(p, bytes);
  return p;
}

test('file block backend: read, write, flush, size rounded down to 512', () => {
  const init = new Uint8Array(2 * 512 + 100);
  for (let i = 0; i < init.length; i++) init[i] = i & 0xff;
  const p = tmpFile(init);
  try {
    const b = new FileBlockBackend(p);
    assert.equal(b.size, 1024);
    assert.equal(b.ignoredBytes, 100);
    assert.equal(b.readonly, false);
    const buf = new Uint8Array(512);
    b.read(buf, 512);
    assert.deepEqual(buf, init.subarray(512, 1024));
    b.write(new Uint8Array(512).fill(9), 0);
    b.flush();
    assert.throws(() => b.read(new Uint8Array(512), 1024), RangeError);
    assert.throws(() => b.write(new Uint8Array(1), 1024), RangeError);
    b.close();
    assert.throws(() => b.read(buf, 0), /closed/);
    const after = fs.readFileSync(p);
    assert.ok(after.subarray(0, 512).every((x) => x === 9));
    assert.equal(after.length, init.length, 'tail untouched');
  } finally {
    fs.rmSync(path.dirname(p), { recursive: true });
  }
});

test('file block backend: readonly refuses writes and leaves the file unchanged', () => {
  const init = new Uint8Array(512).fill(3);
  const p = tmpFile(init);
  try {
    const b = new FileBlockBackend(p, { readonly: true });
    assert.equal(b.readonly, true);
    assert.throws(() => b.write(new Uint8Array(512), 0), /readonly/);
    b.close();
    assert.deepEqual(new Uint8Array(fs.readFileSync(p)), init);
  } finally {
    fs.rmSync(path.dirname(p), { recursive: true });
  }
});

test('file block backend: a missing file is a clear error', () => {
  assert.throws(() => new FileBlockBackend('/nonexistent/tsvisor/disk.img'), /disk image not found: \/nonexistent/);
});

test('stdio char backend buffers pushed input and forwards output', () => {
  const out: number[] = [];
  let inputs = 0;
  const c = new StdioCharBackend((b) => out.push(...b), { maxBuffered: 8, onInput: () => inputs++ });
  c.push('ab');
  c.push(new Uint8Array([1, 2, 3]));
  assert.equal(c.pending(), 5);
  assert.equal(inputs, 2);
  assert.deepEqual([...c.read(3)], [0x61, 0x62, 1]);
  assert.deepEqual([...c.read(10)], [2, 3]);
  assert.equal(c.read(4).length, 0);
  c.push(new Uint8Array(10));
  assert.equal(c.pending(), 8);
  assert.equal(c.dropped, 2);
  c.write(new Uint8Array([0x68, 0x69]));
  assert.deepEqual(out, [0x68, 0x69]);
});
