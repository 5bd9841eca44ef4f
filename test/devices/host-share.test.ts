/**
 * The 9P2000.L server of a shared folder (src/devices/node/host-share.ts), driven with the
 * messages Linux's 9p client sends, and virtio-9p (src/devices/virtio/9p.ts) carrying them:
 * files written on one side read byte for byte on the other, directories listed, renames,
 * links, and the attacks: `..` past the root, symlinks out of the share (walked, created
 * over, opened), names with `/`, a read-only share, device nodes, malformed messages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HostShare } from '../../src/devices/node/host-share.js';
import {
  P9Reader, P9Writer, Errno, P9_QTDIR, P9_QTSYMLINK, P9_RLERROR, P9_TATTACH, P9_TCLUNK, P9_TGETATTR, P9_TLCREATE,
  P9_TLINK, P9_TLOPEN, P9_TMKDIR, P9_TMKNOD, P9_TREAD, P9_TREADDIR, P9_TREADLINK, P9_TRENAMEAT, P9_TSETATTR, P9_TSTATFS,
  P9_TSYMLINK, P9_TUNLINKAT, P9_TVERSION, P9_TWALK, P9_TWRITE, P9_NOFID, P9_HEADER_BYTES,
} from '../../src/devices/9p/wire.js';
import { VirtioP9, VIRTIO_9P_MOUNT_TAG, isValidMountTag } from '../../src/devices/virtio/9p.js';
import { VirtioMmio } from '../../src/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1, VIRTIO_ID_9P } from '../../src/devices/virtio/device.js';
import { FakeIrq, MultiQueueDriver, makeRam } from './helpers.js';

function tmp(): { dir: string; share: string; outside: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvisor-9p-'));
  const share = path.join(dir, 'share');
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(share);
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret'), 'host secret\n');
  return { dir, share, outside };
}

/** A 9P client over a server's handle(), as Linux's net/9p/client.c lays messages out. */
class Client {
  private tag = 1;
  constructor(readonly s: HostShare, readonly maxReply = 1 << 20) {}

  /** Send `type` with the body `build` writes; the reply's type and a reader of its body. */
  rpc(type: number, build: (w: P9Writer) => void): { type: number; r: P9Reader; errno?: number } {
    const w = new P9Writer();
    build(w);
    const reply = this.s.handle(w.finish(type, this.tag++ & 0xffff), this.maxReply);
    const v = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
    assert.equal(v.getUint32(0, true), reply.length, 'size field');
    const r = new P9Reader(reply.subarray(P9_HEADER_BYTES));
    if (reply[4] === P9_RLERROR) return { type: reply[4], r, errno: v.getUint32(7, true) };
    assert.equal(reply[4], type + 1, 'reply type');
    return { type: reply[4], r };
  }

  ok(type: number, build: (w: P9Writer) => void): P9Reader {
    const res = this.rpc(type, build);
    assert.equal(res.errno, undefined, `message ${type} failed with errno ${res.errno}`);
    return res.r;
  }

  err(type: number, build: (w: P9Writer) => void): number {
    const res = this.rpc(type, build);
    assert.notEqual(res.errno, undefined, `message ${type} succeeded`);
    return res.errno!;
  }

  start(msize = 131072): void {
    const r = this.ok(P9_TVERSION, (w) => w.u32(msize).str('9P2000.L'));
    assert.equal(r.u32(), msize);
    assert.equal(r.str(), '9P2000.L');
    this.ok(P9_TATTACH, (w) => w.u32(0).u32(P9_NOFID).str('root').str('').u32(0));
  }

  walk(fid: number, newfid: number, ...names: string[]) {
    return this.rpc(P9_TWALK, (w) => { w.u32(fid).u32(newfid).u16(names.length); for (const n of names) w.str(n); });
  }

  qids(r: P9Reader): { type: number; path: bigint }[] {
    const n = r.u16();
    const out = [];
    for (let i = 0; i < n; i++) { const type = r.u8(); r.u32(); out.push({ type, path: r.u64() }); }
    return out;
  }

  read(fid: number, offset: number, count: number): Uint8Array {
    const r = this.ok(P9_TREAD, (w) => w.u32(fid).u64(offset).u32(count));
    return Uint8Array.from(r.bytes(r.u32()));
  }

  readAll(fid: number): Buffer {
    const parts: Uint8Array[] = [];
    for (let off = 0; ;) {
      const b = this.read(fid, off, 65536);
      if (b.length === 0) return Buffer.concat(parts);
      parts.push(b);
      off += b.length;
    }
  }

  readdir(fid: number): string[] {
    const names: string[] = [];
    let off = 0n;
    for (;;) {
      const r = this.ok(P9_TREADDIR, (w) => w.u32(fid).u64(off).u32(200));
      const count = r.u32();
      if (count === 0) return names;
      const body = new P9Reader(r.bytes(count));
      for (let used = 0; used < count;) {
        body.u8(); body.u32(); body.u64();
        off = body.u64();
        body.u8();
        const name = body.str();
        names.push(name);
        used += 13 + 8 + 1 + 2 + Buffer.byteLength(name);
      }
    }
  }
}

test('9p share: a host file reads byte for byte; a guest-created file lands on the host with its bytes and the host user as owner', () => {
  const { dir, share } = tmp();
  const data = Buffer.alloc(300_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
  fs.mkdirSync(path.join(share, 'sub'));
  fs.writeFileSync(path.join(share, 'sub', 'big.bin'), data);
  const s = new HostShare(share);
  const c = new Client(s);
  c.start();
  assert.deepEqual(c.qids(c.walk(0, 1, 'sub', 'big.bin').r).length, 2);
  c.ok(P9_TLOPEN, (w) => w.u32(1).u32(0));
  assert.ok(c.readAll(1).equals(data), 'read back the host file');
  const attr = c.ok(P9_TGETATTR, (w) => w.u32(1).u64(0x7ff));
  attr.u64(); attr.u8(); attr.u32(); attr.u64();
  attr.u32(); attr.u32(); attr.u32(); attr.u64(); attr.u64();
  assert.equal(attr.u64(), BigInt(data.length), 'getattr size');

  // the guest creates sub/new.txt, writes, and the host reads it
  c.qids(c.walk(0, 2, 'sub').r);
  c.ok(P9_TLCREATE, (w) => w.u32(2).str('new.txt').u32(0o1 | 0o100).u32(0o4755).u32(0));
  const payload = Buffer.from('written by the guest\n'.repeat(1000));
  let off = 0;
  while (off < payload.length) {
    const chunk = payload.subarray(off, off + 8000);
    const r = c.ok(P9_TWRITE, (w) => w.u32(2).u64(off).u32(chunk.length).bytes(chunk));
    off += r.u32();
  }
  c.ok(P9_TCLUNK, (w) => w.u32(2));
  const host = path.join(share, 'sub', 'new.txt');
  assert.ok(fs.readFileSync(host).equals(payload));
  const st = fs.statSync(host);
  assert.equal(st.uid, process.getuid!(), 'owned by the host user');
  assert.equal(st.mode & 0o7777, 0o755, 'no set-user-ID bit from the guest');

  // mkdir, symlink (kept as a link), readdir, rename, hard link, unlink
  c.ok(P9_TMKDIR, (w) => w.u32(0).str('d').u32(0o755).u32(0));
  c.ok(P9_TSYMLINK, (w) => w.u32(0).str('ln').str('sub/new.txt').u32(0));
  assert.equal(fs.readlinkSync(path.join(share, 'ln')), 'sub/new.txt');
  c.qids(c.walk(0, 3).r);
  c.ok(P9_TLOPEN, (w) => w.u32(3).u32(0));
  assert.deepEqual(c.readdir(3).sort(), ['.', '..', 'd', 'ln', 'sub']);
  c.qids(c.walk(0, 4, 'sub').r);
  c.qids(c.walk(0, 5, 'd').r);
  c.ok(P9_TRENAMEAT, (w) => w.u32(4).str('new.txt').u32(5).str('moved.txt'));
  assert.ok(fs.existsSync(path.join(share, 'd', 'moved.txt')));
  c.qids(c.walk(5, 6, 'moved.txt').r);
  c.ok(P9_TLINK, (w) => w.u32(4).u32(6).str('hard.txt'));
  assert.equal(fs.statSync(path.join(share, 'sub', 'hard.txt')).nlink, 2);
  c.ok(P9_TUNLINKAT, (w) => w.u32(4).str('hard.txt').u32(0));
  assert.ok(!fs.existsSync(path.join(share, 'sub', 'hard.txt')));
  // truncate through setattr
  c.ok(P9_TSETATTR, (w) => w.u32(6).u32(0x8).u32(0).u32(0).u32(0).u64(5).u64(0).u64(0).u64(0).u64(0));
  assert.equal(fs.statSync(path.join(share, 'd', 'moved.txt')).size, 5);
  const sf = c.ok(P9_TSTATFS, (w) => w.u32(0));
  sf.u32();
  assert.ok(sf.u32() > 0, 'statfs block size');
  s.close();
  fs.rmSync(dir, { recursive: true });
});

test('9p share: nothing outside the folder is reachable (.., absolute and relative symlinks, planted links, names with /)', () => {
  const { dir, share, outside } = tmp();
  fs.symlinkSync(path.join(outside, 'secret'), path.join(share, 'abs'));
  fs.symlinkSync('../outside', path.join(share, 'up'));
  fs.symlinkSync(outside, path.join(share, 'dirlink'));
  const s = new HostShare(share);
  const c = new Client(s);
  c.start();
  const root = c.qids(c.walk(0, 1).r);
  assert.equal(root.length, 0);
  // .. from the root is the root
  const up = c.qids(c.walk(0, 2, '..', '..', '..').r);
  assert.equal(up.length, 3);
  const rootIno = BigInt(fs.statSync(share).ino);
  for (const q of up) assert.equal(q.path, rootIno, '.. stays at the share root');
  const miss = c.walk(0, 4, '..', 'outside');
  assert.ok(miss.errno !== undefined || c.qids(miss.r).length < 2, 'outside is not found from the root\'s ..');
  // a symlink is walked to as itself, never through
  const abs = c.qids(c.walk(0, 5, 'abs').r);
  assert.equal(abs[0].type, P9_QTSYMLINK);
  assert.equal(c.err(P9_TLOPEN, (w) => w.u32(5).u32(0)), Errno.ELOOP, 'opening a symlink');
  assert.equal(c.ok(P9_TREADLINK, (w) => w.u32(5)).str(), path.join(outside, 'secret'), 'readlink gives the text only');
  const through = c.walk(0, 6, 'dirlink', 'secret');
  if (through.errno === undefined) assert.equal(c.qids(through.r).length, 1, 'the walk stops at the symlink');
  assert.equal(c.walk(0, 7, 'up', 'secret').errno, undefined);
  assert.equal(c.rpc(P9_TGETATTR, (w) => w.u32(7).u64(0x7ff)).errno, Errno.EBADF, 'no fid made by a partial walk');
  // creating over a planted symlink does not follow it
  assert.equal(c.err(P9_TLCREATE, (w) => w.u32(1).str('abs').u32(0o1 | 0o100).u32(0o644).u32(0)), Errno.ELOOP);
  assert.equal(fs.readFileSync(path.join(outside, 'secret'), 'utf8'), 'host secret\n', 'the host file is untouched');
  // names are single components
  assert.equal(c.walk(0, 8, 'sub/../../outside').errno, Errno.EINVAL);
  c.qids(c.walk(0, 9).r);
  assert.equal(c.err(P9_TMKDIR, (w) => w.u32(9).str('../escape').u32(0o755).u32(0)), Errno.EINVAL);
  assert.equal(c.err(P9_TSYMLINK, (w) => w.u32(9).str('..').str('x').u32(0)), Errno.EINVAL);
  assert.equal(c.err(P9_TMKNOD, (w) => w.u32(9).str('sda').u32(0o60644).u32(8).u32(0).u32(0)), Errno.EPERM, 'no device nodes');
  assert.ok(!fs.existsSync(path.join(dir, 'escape')));
  s.close();
  fs.rmSync(dir, { recursive: true });
});

test('9p share: readonly refuses every change; reads still work', () => {
  const { dir, share } = tmp();
  fs.writeFileSync(path.join(share, 'f'), 'keep');
  const s = new HostShare(share, { readonly: true });
  const c = new Client(s);
  c.start();
  c.qids(c.walk(0, 1, 'f').r);
  assert.equal(c.err(P9_TLOPEN, (w) => w.u32(1).u32(2)), Errno.EROFS, 'open for writing');
  assert.equal(c.err(P9_TLOPEN, (w) => w.u32(1).u32(0o1000)), Errno.EROFS, 'open with O_TRUNC');
  c.ok(P9_TLOPEN, (w) => w.u32(1).u32(0));
  assert.equal(Buffer.from(c.readAll(1)).toString(), 'keep');
  assert.equal(c.err(P9_TWRITE, (w) => w.u32(1).u64(0).u32(1).u8(0x41)), Errno.EROFS);
  c.qids(c.walk(0, 2).r);
  assert.equal(c.err(P9_TLCREATE, (w) => w.u32(2).str('n').u32(1).u32(0o644).u32(0)), Errno.EROFS);
  assert.equal(c.err(P9_TMKDIR, (w) => w.u32(0).str('d').u32(0o755).u32(0)), Errno.EROFS);
  assert.equal(c.err(P9_TUNLINKAT, (w) => w.u32(0).str('f').u32(0)), Errno.EROFS);
  assert.equal(c.err(P9_TSETATTR, (w) => w.u32(1).u32(0x1).u32(0o777).u32(0).u32(0).u64(0).u64(0).u64(0).u64(0).u64(0)), Errno.EROFS);
  assert.equal(fs.readFileSync(path.join(share, 'f'), 'utf8'), 'keep');
  assert.deepEqual(fs.readdirSync(share), ['f']);
  s.close();
  fs.rmSync(dir, { recursive: true });
});

test('9p share: malformed messages, unknown fids and types, the fid limit get errors, never exceptions', () => {
  const { dir, share } = tmp();
  const s = new HostShare(share, { maxFids: 3 });
  const c = new Client(s);
  assert.equal(new DataView(s.handle(Uint8Array.of(1, 2, 3), 100).buffer).getUint32(7, true), Errno.EPROTO);
  const lying = new P9Writer().u32(0).finish(P9_TCLUNK, 1);
  new DataView(lying.buffer).setUint32(0, 4000, true); // size beyond the message
  assert.equal(new DataView(s.handle(lying, 100).buffer).getUint32(7, true), Errno.EPROTO);
  c.start();
  assert.equal(c.err(P9_TCLUNK, (w) => w.u32(77)), Errno.EBADF);
  assert.equal(c.err(250, () => {}), Errno.EOPNOTSUPP);
  assert.equal(c.err(P9_TWALK, (w) => w.u32(0)), Errno.EPROTO, 'truncated body');
  c.qids(c.walk(0, 1).r);
  c.qids(c.walk(0, 2).r);
  assert.equal(c.walk(0, 3).errno, Errno.ENFILE, 'past maxFids');
  assert.equal(c.walk(0, 1).errno, Errno.EINVAL, 'newfid in use');
  assert.equal(c.err(P9_TREAD, (w) => w.u32(1).u64(0).u32(10)), Errno.EISDIR, 'read of a directory fid');
  const big = new Client(s, 20);
  assert.equal(big.rpc(P9_TREADDIR, (w) => w.u32(1).u64(0).u32(100)).errno, Errno.EBADF);
  s.close();
  fs.rmSync(dir, { recursive: true });
});

test('virtio-9p: device ID 9, the mount tag in the configuration, requests served over the queue', () => {
  const { dir, share } = tmp();
  fs.writeFileSync(path.join(share, 'hello'), 'hello from the host');
  assert.ok(isValidMountTag('data_1.x-y'));
  for (const bad of ['', 'a,b', 'a b', 'x'.repeat(32), 'é']) assert.ok(!isValidMountTag(bad), bad);
  const mem = makeRam(4 << 20);
  const server = new HostShare(share);
  const p9 = new VirtioP9('data', server);
  const reasons: string[] = [];
  const dev = new VirtioMmio(p9, mem, new FakeIrq(), { onNeedsReset: (r) => reasons.push(r) });
  assert.equal(dev.read(8, 4), VIRTIO_ID_9P);
  const drv = new MultiQueueDriver(dev, mem, 16);
  assert.equal(drv.deviceFeatures() & VIRTIO_9P_MOUNT_TAG, VIRTIO_9P_MOUNT_TAG);
  assert.equal(dev.read(0x100, 2), 4);
  assert.equal(String.fromCharCode(dev.read(0x102, 1), dev.read(0x103, 1), dev.read(0x104, 1), dev.read(0x105, 1)), 'data');
  drv.negotiate(VIRTIO_F_VERSION_1 | VIRTIO_9P_MOUNT_TAG);
  drv.setupQueues(1);
  let tag = 1;
  const send = (type: number, build: (w: P9Writer) => void, replyBytes = 8192, split = 0) => {
    const w = new P9Writer();
    build(w);
    const msg = w.finish(type, tag++);
    const out = drv.alloc(msg.length);
    mem.slice(out, msg.length).set(msg);
    const bufs: { addr: number; len: number; write?: boolean }[] = [{ addr: out, len: msg.length }];
    const inBuf = drv.alloc(replyBytes);
    if (split) { bufs.push({ addr: inBuf, len: split, write: true }, { addr: inBuf + split, len: replyBytes - split, write: true }); } else bufs.push({ addr: inBuf, len: replyBytes, write: true });
    drv.rings[0].add(bufs as never);
    drv.kick(0);
    const used = drv.rings[0].takeUsed();
    return { len: used[0]?.len ?? -1, bytes: Uint8Array.from(mem.slice(inBuf, replyBytes)) };
  };
  send(P9_TVERSION, (w) => w.u32(65536).str('9P2000.L'));
  send(P9_TATTACH, (w) => w.u32(0).u32(P9_NOFID).str('root').str('').u32(0));
  const walked = send(P9_TWALK, (w) => w.u32(0).u32(1).u16(1).str('hello'));
  assert.equal(walked.bytes[4], P9_TWALK + 1);
  send(P9_TLOPEN, (w) => w.u32(1).u32(0));
  // a zero-copy read: an 11-byte header buffer, then the data pages
  const rd = send(P9_TREAD, (w) => w.u32(1).u64(0).u32(4096), 4096 + 11, 11);
  assert.equal(rd.bytes[4], P9_TREAD + 1);
  assert.equal(rd.len, 11 + 19);
  assert.equal(Buffer.from(rd.bytes.subarray(11, 30)).toString(), 'hello from the host');
  const qd = send(P9_TWALK, (w) => w.u32(0).u32(2).u16(0));
  assert.equal(qd.bytes[4], P9_TWALK + 1);
  const tooSmall = send(P9_TREAD, (w) => w.u32(1).u64(0).u32(10), 4);
  assert.equal(tooSmall.len, -1, 'no room even for an error: not answered');
  assert.equal(reasons.length, 1, 'DEVICE_NEEDS_RESET');
  assert.equal(P9_QTDIR, 0x80);
  server.close();
  fs.rmSync(dir, { recursive: true });
});
