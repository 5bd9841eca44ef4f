import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileBlockBackend } from '../../src/devices/node/file-block.js';
import { NodeFile } from '../../src/devices/node/file.js';
import { createDisk, openDisk } from '../../src/devices/node/disk.js';
import { StdioCharBackend } from '../../src/devices/node/stdio-char.js';
import { Duplex } from 'node:stream';
import { createServer as createNetServer, connect as netConnect, Socket as NetSocket } from 'node:net';
import { StreamNetBackend, StreamReader, READ_BUFFER_BYTES } from '../../src/devices/node/stream-net.js';
import { socketBufferBytes, unixStreamPair } from '../../src/devices/node/socketpair.js';
import type { NetPort } from '../../src/devices/bus.js';

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

test('host file: vectored reads and writes (preadv/pwritev) fill and write each buffer in turn, past IOV_MAX buffers, with zeros past the end of the file', () => {
  const init = new Uint8Array(10_000);
  for (let i = 0; i < init.length; i++) init[i] = (i * 7 + (i >> 8)) & 0xff;
  const p = tmpFile(init);
  try {
    const f = new NodeFile(p);
    // buffers of 3, 0, 4096, 5000 and 2000 bytes from 100: the last 1196 bytes are past the end
    const bufs = [3, 0, 4096, 5000, 2000].map((n) => new Uint8Array(n).fill(0xee));
    assert.equal(f.readv(bufs, 100), 9900);
    const got = Buffer.concat(bufs);
    assert.deepEqual(new Uint8Array(got.subarray(0, 9900)), init.subarray(100));
    assert.ok(got.subarray(9900).every((x) => x === 0), 'zeros past the end');
    // 3000 one-byte buffers: more than one system call takes (IOV_MAX is 1024 on Linux)
    const ones = Array.from({ length: 3000 }, () => new Uint8Array(1));
    assert.equal(f.readv(ones, 5), 3000);
    assert.deepEqual(new Uint8Array(ones.map((b) => b[0])), init.subarray(5, 3005));
    const parts = Array.from({ length: 2500 }, (_, k) => new Uint8Array(k % 3).fill(k & 0xff));
    f.writev(parts, 9000);
    f.close();
    const after = new Uint8Array(fs.readFileSync(p));
    const written = new Uint8Array(Buffer.concat(parts));
    assert.equal(after.length, 9000 + written.length, 'the file grew by what went past its end');
    assert.deepEqual(after.subarray(9000), written);
    assert.deepEqual(after.subarray(0, 9000), init.subarray(0, 9000));
  } finally {
    fs.rmSync(path.dirname(p), { recursive: true });
  }
});

test('file block backend: vectored reads and writes stay inside the disk, and are refused when read-only', () => {
  const init = new Uint8Array(4 * 512).map((_, i) => i & 0xff);
  const p = tmpFile(init);
  try {
    const b = new FileBlockBackend(p);
    const bufs = [new Uint8Array(100), new Uint8Array(412), new Uint8Array(512)];
    b.readv(bufs, 512);
    assert.deepEqual(new Uint8Array(Buffer.concat(bufs)), init.subarray(512, 1536));
    assert.throws(() => b.readv([new Uint8Array(512), new Uint8Array(1)], 1536), RangeError);
    assert.throws(() => b.writev([new Uint8Array(1024), new Uint8Array(512)], 1024), RangeError);
    b.writev([new Uint8Array(256).fill(1), new Uint8Array(256).fill(2)], 0);
    b.close();
    const ro = new FileBlockBackend(p, { readonly: true });
    assert.throws(() => ro.writev([new Uint8Array(512)], 0), /readonly/);
    ro.close();
    const after = new Uint8Array(fs.readFileSync(p));
    assert.ok(after.subarray(0, 256).every((x) => x === 1) && after.subarray(256, 512).every((x) => x === 2));
    assert.deepEqual(after.subarray(512), init.subarray(512), 'nothing else written');
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

test('raw disk resize: the file grows sparsely, data kept, zeros beyond; shrinking and read-only are refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvisor-raw-resize-'));
  try {
    const f = path.join(dir, 'd.raw');
    createDisk(f, { format: 'raw', size: 1 << 20 });
    const d = openDisk(f);
    d.write(new Uint8Array(512).fill(7), (1 << 20) - 512);
    assert.throws(() => d.resize(512 * 1024), { name: 'BlockError', message: /smaller than/ });
    d.resize(8 << 20);
    assert.equal(d.size, 8 << 20);
    assert.equal(fs.statSync(f).size, 8 << 20);
    const b = new Uint8Array(1024);
    d.read(b, (1 << 20) - 512);
    assert.ok(b.subarray(0, 512).every((x) => x === 7) && b.subarray(512).every((x) => x === 0));
    d.close();
    const ro = openDisk(f, { readonly: true });
    assert.throws(() => ro.resize(16 << 20), { name: 'BlockError', message: /read-only/ });
    ro.close();
    assert.equal(fs.statSync(f).size, 8 << 20);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
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

// ------------------------------------------------------------ StreamNetBackend


/** A connected pair of Unix stream sockets (as passt's --fd socket pair). */
async function socketPair(): Promise<[NetSocket, NetSocket]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvisor-net-'));
  const p = path.join(dir, 's');
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(p, () => r()));
  const accepted = new Promise<NetSocket>((r) => srv.once('connection', r));
  const a = netConnect(p);
  const b = await accepted;
  srv.close();
  await new Promise<void>((r) => (a.connecting ? a.once('connect', () => r()) : r()));
  a.unref();
  b.unref();
  return [a, b];
}

const lenPrefixed = (frames: Uint8Array[]) => Buffer.concat(frames.map((f) => { const h = Buffer.alloc(4); h.writeUInt32BE(f.length); return Buffer.concat([h, f]); }));
const until = async (cond: () => boolean, ms = 2000) => { const t = Date.now(); while (!cond()) { if (Date.now() - t > ms) throw new Error('timeout'); await new Promise((r) => setTimeout(r, 5)); } };

test('stream net backend: 4-byte big-endian framing both ways, frames split across reads', async () => {
  const [a, peer] = await socketPair();
  const got: Uint8Array[] = [];
  const backend = new StreamNetBackend(a);
  backend.attach({ receive: (f) => { got.push(new Uint8Array(f)); return true; }, writable: () => {} });
  const frames = [new Uint8Array(60).fill(1), new Uint8Array(9000).fill(2), new Uint8Array(14).fill(3)];
  const bytes = lenPrefixed(frames);
  peer.write(bytes.subarray(0, 7));
  await new Promise((r) => setTimeout(r, 20));
  peer.write(bytes.subarray(7));
  await until(() => got.length === 3);
  assert.deepEqual(got, frames);
  const echoed: Buffer[] = [];
  peer.on('data', (d: Buffer) => echoed.push(d));
  backend.send(new Uint8Array(15).fill(9));
  await until(() => Buffer.concat(echoed).length === 19);
  assert.deepEqual(Buffer.concat(echoed), lenPrefixed([new Uint8Array(15).fill(9)]));
  backend.close();
  peer.destroy();
});

test('stream net backend: sent frames are copied (the caller reuses its array) and arrive intact while the send ring wraps and overflows', async () => {
  const [a, peer] = await socketPair();
  const backend = new StreamNetBackend(a);
  backend.attach({ receive: () => true, writable: () => {} });
  const received: Buffer[] = [];
  let receivedBytes = 0;
  peer.pause();
  peer.on('data', (d: Buffer) => { received.push(d); receivedBytes += d.length; });
  const expected: Uint8Array[] = [];
  const scratch = new Uint8Array(65536);
  let seed = 7;
  const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 8; };
  for (let i = 0; i < 300; i++) {
    const n = 14 + (rand() % (65536 - 14));
    for (let j = 0; j < n; j += 997) scratch[j] = (i + j) & 0xff;
    scratch[n - 1] = i & 0xff;
    expected.push(scratch.slice(0, n));
    backend.send(scratch.subarray(0, n));
    scratch.fill(0xee, 0, n); // the backend must have copied it
    if (i === 60) peer.resume(); // 60 frames held first: the ring fills, frames past it get their own buffers
    if (i > 60 && i % 7 === 0) await new Promise((r) => setImmediate(r));
  }
  const want = lenPrefixed(expected);
  await until(() => receivedBytes >= want.length, 10_000);
  assert.ok(Buffer.concat(received).equals(want), 'the byte stream is the frames, in order, unchanged');
  backend.close();
  peer.destroy();
});

test('stream net backend: frames and their lengths cut anywhere across reads are gathered intact, also when one of them has to wait', async () => {
  const stream = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
  const backend = new StreamNetBackend(stream);
  const got: Uint8Array[] = [];
  let refuse = true;
  backend.attach({ receive: (f) => {
    if (f.length === 65_000 && refuse) { refuse = false; return false; } // the guest has no buffers yet
    got.push(new Uint8Array(f));
    return true;
  }, writable: () => {} });
  const frames = [60, 65_000, 14, 1500, 64_000, 61].map((n, k) => { const f = new Uint8Array(n); for (let i = 0; i < n; i++) f[i] = (i * 7 + k) & 0xff; return f; });
  const bytes = lenPrefixed(frames);
  // single bytes through the first frame's length and body, then cuts inside lengths and bodies
  const cuts = [1, 2, 3, 4, 5, 66, 67, 1000, 65_070, 65_071, 65_073, 65_090, 66_600, 100_000, bytes.length];
  let from = 0;
  for (const c of cuts) {
    stream.push(bytes.subarray(from, c));
    from = c;
    await new Promise((r) => setImmediate(r));
  }
  await until(() => got.length === 1);
  assert.equal(got[0].length, 60, 'the 64 KiB frame waits, and the frames after it wait behind it');
  backend.resume();
  await until(() => got.length === frames.length);
  assert.deepEqual(got, frames);
  backend.close();
});

test('stream net backend: refused frames wait in order in the receive queue; the socket is paused only past rxQueueBytes', async () => {
  const [a, peer] = await socketPair();
  const got: number[] = [];
  let room = 1;
  const port: NetPort = { receive: (f) => { if (room === 0) return false; room--; got.push(f[0]); return true; }, writable: () => {} };
  const backend = new StreamNetBackend(a, { rxQueueBytes: 100 });
  backend.attach(port);
  peer.write(lenPrefixed([1, 2, 3].map((n) => new Uint8Array(20).fill(n))));
  await until(() => got.length === 1);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(got, [1], 'frame 2 refused');
  assert.equal(backend.rxQueuedBytes, 40, 'frames 2 and 3 queued');
  assert.equal(a.isPaused(), false, 'under rxQueueBytes the socket is read on');
  // past rxQueueBytes (100): paused
  peer.write(lenPrefixed([4, 5, 6, 7].map((n) => new Uint8Array(20).fill(n))));
  await until(() => backend.rxQueuedBytes === 120);
  assert.equal(a.isPaused(), true, 'over rxQueueBytes the socket is paused');
  room = 3;
  backend.resume();
  assert.deepEqual(got, [1, 2, 3, 4], 'in order');
  assert.equal(backend.rxQueuedBytes, 60);
  assert.equal(a.isPaused(), true, 'still above half of rxQueueBytes');
  room = 100;
  backend.resume();
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7], 'in order, nothing lost');
  assert.equal(a.isPaused(), false, 'read on once the queue is drained');
  peer.write(lenPrefixed([new Uint8Array(20).fill(8)]));
  await until(() => got.length === 8);
  assert.throws(() => new StreamNetBackend(a, { rxQueueBytes: 0 }), RangeError);
  backend.close();
  peer.destroy();
});

test('stream net backend: runts are dropped and counted; an impossible length ends the link with an error', async () => {
  const [a, peer] = await socketPair();
  const got: Uint8Array[] = [];
  const errors: string[] = [];
  const backend = new StreamNetBackend(a, { onError: (m) => errors.push(m) });
  backend.attach({ receive: (f) => { got.push(f); return true; }, writable: () => {} });
  peer.write(lenPrefixed([new Uint8Array(5), new Uint8Array(20)]));
  await until(() => got.length === 1);
  assert.equal(backend.metrics.rxRunt, 1);
  const bad = Buffer.alloc(4);
  bad.writeUInt32BE(0x7fffffff);
  peer.write(bad);
  await until(() => errors.length === 1);
  assert.match(errors[0], /frame length of 2147483647/);
  assert.equal(backend.send(new Uint8Array(20)), true, 'a dead link swallows frames');
  peer.destroy();
});

test('stream net backend over a StreamReader (one reused read buffer): frames that wait while later reads overwrite the buffer, pause and resume: all arrive intact, in order', async () => {
  const [x, y] = unixStreamPair();
  const reader = new StreamReader();
  const a = new NetSocket({ fd: x, readable: true, writable: true, onread: reader.onread });
  const peer = new NetSocket({ fd: y, readable: true, writable: true });
  a.unref();
  peer.unref();
  let seed = 11;
  const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 8; };
  const frames = Array.from({ length: 40 }, (_, k) => {
    const f = new Uint8Array(k === 0 ? 60 : 14 + (rand() % (65536 - 14)));
    for (let i = 0; i < f.length; i++) f[i] = (i * 13 + k * 7) & 0xff;
    return f;
  });
  const got: Uint8Array[] = [];
  let accept = true;
  const backend = new StreamNetBackend(a, { reader, rxQueueBytes: 4 * READ_BUFFER_BYTES });
  backend.attach({ receive: (f) => { if (!accept) return false; got.push(new Uint8Array(f)); return true; }, writable: () => {} });
  peer.write(lenPrefixed(frames.slice(0, 1)));
  await until(() => got.length === 1);
  accept = false; // the guest has no receive buffers: the next frames wait, and the reads after them reuse the buffer
  peer.write(lenPrefixed(frames.slice(1)));
  await until(() => a.isPaused(), 5000);
  assert.ok(backend.rxQueuedBytes > 4 * READ_BUFFER_BYTES, 'paused past rxQueueBytes');
  accept = true;
  backend.resume();
  await until(() => got.length === frames.length, 5000);
  assert.equal(got.findIndex((f, k) => !Buffer.from(f).equals(frames[k])), -1, 'every frame intact and in order');
  backend.close();
  peer.destroy();
});

test('StreamReader: reads before bind() are kept as copies and passed on first, in order', () => {
  const reader = new StreamReader();
  const buf = reader.onread.buffer;
  buf.fill(1, 0, 10);
  assert.equal(reader.onread.callback(10, buf), true);
  buf.fill(2, 0, 5);
  reader.onread.callback(5, buf);
  buf.fill(3, 0, 20); // the next read reuses the buffer
  const seen: number[][] = [];
  reader.bind((c) => seen.push([...c]));
  assert.deepEqual(seen, [Array(10).fill(1), Array(5).fill(2)]);
  reader.onread.callback(3, buf);
  assert.deepEqual(seen[2], [3, 3, 3], 'then each read as it comes');
});

test('unixStreamPair: both ends get the largest buffers the host allows (2 x net.core.wmem_max / rmem_max) and carry bytes both ways', async () => {
  const [x, y] = unixStreamPair();
  const wmax = Number(fs.readFileSync('/proc/sys/net/core/wmem_max', 'utf8'));
  const rmax = Number(fs.readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
  for (const fd of [x, y]) assert.deepEqual(socketBufferBytes(fd), { send: 2 * wmax, receive: 2 * rmax });
  const [small] = unixStreamPair(100_000);
  assert.equal(socketBufferBytes(small).send, 2 * Math.min(100_000, wmax));
  fs.closeSync(small);
  const a = new NetSocket({ fd: x, readable: true, writable: true });
  const b = new NetSocket({ fd: y, readable: true, writable: true });
  const got: Buffer[] = [];
  b.on('data', (d: Buffer) => { got.push(d); b.write(d); });
  const back: Buffer[] = [];
  a.on('data', (d: Buffer) => back.push(d));
  a.write('hello');
  await until(() => Buffer.concat(back).toString() === 'hello');
  assert.equal(Buffer.concat(got).toString(), 'hello');
  a.destroy();
  b.destroy();
});
