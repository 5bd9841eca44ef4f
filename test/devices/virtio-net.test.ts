/**
 * virtio-net (src/devices/virtio/net.ts) driven the way Linux's virtio_net.c drives it:
 * receive buffers posted on queue 0, frames with a 12-byte header on queue 1, and the
 * offloads checked against an independent checksum.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  VirtioMmio, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_STATUS, VIRTIO_STATUS_DEVICE_NEEDS_RESET,
} from '../../src/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1 } from '../../src/devices/virtio/device.js';
import {
  VirtioNet, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_STATUS, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_SIZE,
} from '../../src/devices/virtio/net.js';
import type { NetBackend, NetPort } from '../../src/devices/bus.js';
import { MAX_FRAME_BYTES, foldComplement, sum16 } from '../../src/devices/net/frame.js';
import type { GuestMemory } from '../../src/devices/guest-memory.js';
import { FakeIrq, MultiQueueDriver, RAM_BASE, makeRam } from './helpers.js';

const PAGE = 4096;
const MAC = Uint8Array.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const PEER = Uint8Array.from([0x02, 0xfc, 0, 0, 0, 1]);

/** A backend that records what the device sends and lets the test push frames. */
class FakeBackend implements NetBackend {
  port: NetPort | null = null;
  sent: Uint8Array[] = [];
  accept = true;
  resumes = 0;
  attach(port: NetPort): void { this.port = port; }
  send(frame: Uint8Array): boolean { this.sent.push(frame.slice()); return this.accept; }
  resume(): void { this.resumes++; }
  close(): void {}
}

/** A driver for the two queues, as virtnet_probe + add_recvbuf_mergeable + xmit_skb. */
class NetDriver extends MultiQueueDriver {
  private posted = new Map<number, { addr: number; len: number }>();

  constructor(dev: VirtioMmio, mem: GuestMemory, queueSize = 16) { super(dev, mem, queueSize); }

  features(): bigint { return this.deviceFeatures(); }

  probe(accept: (offered: bigint) => bigint = (f) => f): void {
    this.negotiate(accept(this.deviceFeatures()) | VIRTIO_F_VERSION_1);
    this.setupQueues(2);
  }

  /** Post `count` receive buffers of `size` bytes and kick queue 0. */
  fill(count: number, size: number): void {
    for (let k = 0; k < count; k++) {
      const addr = this.alloc(size);
      this.posted.set(this.rings[0].add([{ addr, len: size, write: true }]), { addr, len: size });
    }
    this.w(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
  }

  /** Received packets: header fields and the frame, merged over num_buffers used buffers. */
  receive(): Array<{ flags: number; numBuffers: number; frame: Uint8Array }> {
    const used = this.rings[0].takeUsed();
    const out: Array<{ flags: number; numBuffers: number; frame: Uint8Array }> = [];
    for (let i = 0; i < used.length;) {
      const first = this.posted.get(used[i].id)!;
      const hdr = this.mem.slice(first.addr, VIRTIO_NET_HDR_SIZE);
      const n = hdr[10] | (hdr[11] << 8);
      const parts: Uint8Array[] = [];
      for (let k = 0; k < n; k++) {
        const u = used[i + k];
        const b = this.posted.get(u.id)!;
        assert.ok(u.len <= b.len);
        parts.push(this.mem.slice(b.addr, u.len).slice());
      }
      const all = concat(parts);
      out.push({ flags: hdr[0], numBuffers: n, frame: all.subarray(VIRTIO_NET_HDR_SIZE) });
      i += Math.max(n, 1);
    }
    return out;
  }

  /** xmit_skb: header + frame, as one buffer or split in two descriptors. */
  send(frame: Uint8Array, hdr: Partial<{ flags: number; gsoType: number; gsoSize: number; csumStart: number; csumOffset: number }> = {}, split = false): number {
    const h = new Uint8Array(VIRTIO_NET_HDR_SIZE);
    const v = new DataView(h.buffer);
    h[0] = hdr.flags ?? 0;
    h[1] = hdr.gsoType ?? 0;
    v.setUint16(4, hdr.gsoSize ?? 0, true);
    v.setUint16(6, hdr.csumStart ?? 0, true);
    v.setUint16(8, hdr.csumOffset ?? 0, true);
    const bytes = concat([h, frame]);
    const parts = split ? [bytes.subarray(0, VIRTIO_NET_HDR_SIZE), bytes.subarray(VIRTIO_NET_HDR_SIZE)] : [bytes];
    const bufs = parts.map((p) => {
      const a = this.alloc(p.length);
      this.mem.slice(a, p.length).set(p);
      return { addr: a, len: p.length };
    });
    const head = this.rings[1].add(bufs);
    this.w(VIRTIO_MMIO_QUEUE_NOTIFY, 1);
    return head;
  }

}

function concat(bs: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(bs.reduce((n, b) => n + b.length, 0));
  let p = 0;
  for (const b of bs) { out.set(b, p); p += b.length; }
  return out;
}

/** RFC 1071 checksum, written plainly (independent of frame.ts). */
function inetSum(parts: Uint8Array[]): number {
  let s = 0;
  for (const b of parts) for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) + (i + 1 < b.length ? b[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function ethernet(type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(PEER, 0);
  f.set(MAC, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  f.set(payload, 14);
  return f;
}

/** An IPv4 packet with the given transport bytes (header checksum filled in). */
function ipv4(proto: number, l4: Uint8Array, id = 0x1234): Uint8Array {
  const p = new Uint8Array(20 + l4.length);
  p[0] = 0x45; p[2] = p.length >> 8; p[3] = p.length & 0xff; p[4] = id >> 8; p[5] = id & 0xff;
  p[8] = 64; p[9] = proto;
  p.set([10, 0, 2, 15], 12); p.set([10, 0, 2, 2], 16);
  const c = ~inetSum([p.subarray(0, 20)]) & 0xffff;
  p[10] = c >> 8; p[11] = c & 0xff;
  p.set(l4, 20);
  return p;
}

function ipv6(proto: number, l4: Uint8Array): Uint8Array {
  const p = new Uint8Array(40 + l4.length);
  p[0] = 0x60; p[4] = l4.length >> 8; p[5] = l4.length & 0xff; p[6] = proto; p[7] = 64;
  p[8] = 0xfd; p[23] = 0x0f; p[24] = 0xfd; p[39] = 0x02;
  p.set(l4, 40);
  return p;
}

function tcp(payload: Uint8Array, seq: number, flags: number): Uint8Array {
  const t = new Uint8Array(20 + payload.length);
  t[0] = 0x9c; t[1] = 0x40; t[2] = 0x00; t[3] = 0x50;
  new DataView(t.buffer).setUint32(4, seq);
  t[12] = 5 << 4; t[13] = flags; t[14] = 0xff; t[15] = 0xff;
  t.set(payload, 20);
  return t;
}

/** The pseudo-header sum Linux leaves in the checksum field for CHECKSUM_PARTIAL. */
function pseudo4(ip: Uint8Array, proto: number, len: number): number {
  const ph = new Uint8Array(12);
  ph.set(ip.subarray(12, 20), 0); ph[9] = proto; ph[10] = len >> 8; ph[11] = len & 0xff;
  return inetSum([ph]);
}

/** True when an IPv4 TCP/UDP frame's transport checksum verifies. */
function l4ChecksumOk(frame: Uint8Array): boolean {
  const ip = frame.subarray(14);
  if ((ip[0] >> 4) === 4) {
    const ihl = (ip[0] & 15) * 4;
    const l4 = ip.subarray(ihl, (ip[2] << 8) | ip[3]);
    const ph = new Uint8Array(12);
    ph.set(ip.subarray(12, 20)); ph[9] = ip[9]; ph[10] = l4.length >> 8; ph[11] = l4.length & 0xff;
    return inetSum([ph, l4]) === 0xffff && inetSum([ip.subarray(0, ihl)]) === 0xffff;
  }
  const l4 = ip.subarray(40, 40 + ((ip[4] << 8) | ip[5]));
  const ph = new Uint8Array(40);
  ph.set(ip.subarray(8, 40)); ph[34] = l4.length >> 8; ph[35] = l4.length & 0xff; ph[39] = ip[6];
  return inetSum([ph, l4]) === 0xffff;
}

function setup(opts: { queueSize?: number } = {}) {
  const mem = makeRam(8 << 20);
  const backend = new FakeBackend();
  const net = new VirtioNet(backend, { mac: MAC, queueSize: opts.queueSize });
  const irq = new FakeIrq();
  const reasons: string[] = [];
  const dev = new VirtioMmio(net, mem, irq, { onNeedsReset: (r) => reasons.push(r), eventIdx: false, indirect: false });
  const drv = new NetDriver(dev, mem);
  return { mem, backend, net, irq, dev, drv, reasons };
}

const tick = () => new Promise((r) => setImmediate(r));

test('identification, offered features and the config space (§5.1.1-§5.1.4)', () => {
  const { dev, drv } = setup();
  assert.equal(dev.read(VIRTIO_MMIO_DEVICE_ID, 4), 1);
  const f = drv.features();
  for (const bit of [VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_GUEST_TSO4]) {
    assert.notEqual(f & bit, 0n, `feature ${bit}`);
  }
  assert.equal(f & VIRTIO_NET_F_CTRL_VQ, 0n);
  assert.deepEqual(Array.from({ length: 6 }, (_, i) => dev.read(VIRTIO_MMIO_CONFIG + i, 1)), [...MAC]);
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 6, 2), 1, 'status: link up');
  dev.write(VIRTIO_MMIO_CONFIG, 1, 0xff);
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG, 1), 0x52, 'read-only');
  assert.throws(() => new VirtioNet(new FakeBackend(), { mac: new Uint8Array(5) }), RangeError);
});

test('transmit: the frame without its header reaches the backend, header split or not', () => {
  const { backend, drv, net } = setup();
  drv.probe();
  const f = ethernet(0x0806, new Uint8Array(28).fill(7));
  drv.send(f);
  drv.send(f, {}, true);
  assert.deepEqual(backend.sent, [f, f]);
  assert.deepEqual(drv.rings[1].takeUsed().map((u) => u.len), [0, 0]);
  assert.equal(net.metrics.txPackets, 2);
  assert.equal(net.metrics.txBytes, 2 * f.length);
});

test('transmit NEEDS_CSUM: the partial UDP checksum is completed (§5.1.6.2)', () => {
  const { backend, drv } = setup();
  drv.probe();
  const udp = new Uint8Array(8 + 101);
  udp[0] = 0x13; udp[1] = 0x88; udp[2] = 0x00; udp[3] = 0x35; udp[4] = 0; udp[5] = udp.length;
  for (let i = 8; i < udp.length; i++) udp[i] = i * 7;
  const ip = ipv4(17, udp);
  const ps = pseudo4(ip, 17, udp.length);
  ip[20 + 6] = ps >> 8; ip[20 + 7] = ps & 0xff;
  drv.send(ethernet(0x0800, ip), { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 34, csumOffset: 6 });
  assert.equal(backend.sent.length, 1);
  assert.ok(l4ChecksumOk(backend.sent[0]), 'UDP checksum verifies');
});

test('transmit NEEDS_CSUM of 64 KiB frames (passt\'s MTU): each TCP checksum verifies', () => {
  const { backend, drv } = setup();
  drv.probe();
  for (const [n, fill] of [[65_000, 0xff], [40_001, 0], [65_400, -1]] as const) {
    const payload = new Uint8Array(n);
    for (let i = 0; i < n; i++) payload[i] = fill >= 0 ? fill : (i * 131 + (i >> 9)) & 0xff;
    const t = tcp(payload, 1000, 0x18);
    const ip = ipv4(6, t);
    const ps = pseudo4(ip, 6, t.length);
    ip[20 + 16] = ps >> 8; ip[20 + 17] = ps & 0xff;
    drv.send(ethernet(0x0800, ip), { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 34, csumOffset: 16 });
  }
  assert.equal(backend.sent.length, 3);
  for (const f of backend.sent) assert.ok(l4ChecksumOk(f), `TCP checksum of a ${f.length}-byte frame verifies`);
  assert.deepEqual(backend.sent.map((f) => f.length), [65_054, 40_055, 65_454]);
});

test('sum16: the same one\'s complement sum as byte pairs, for any start, length and parity', () => {
  let seed = 1;
  const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 8; };
  for (let k = 0; k < 300; k++) {
    const b = new Uint8Array(1 + (rand() % 70_000));
    for (let i = 0; i < b.length; i++) b[i] = k % 5 === 0 ? 0xff : rand() & 0xff;
    const start = rand() % Math.min(b.length, 7);
    const len = rand() % (b.length - start + 1);
    const init = rand() % 100_000;
    let want = init + inetSum([b.subarray(start, start + len)]);
    while (want > 0xffff) want = (want & 0xffff) + (want >>> 16);
    assert.equal(foldComplement(sum16(b, start, len, init)), ~want & 0xffff, `length ${len} from ${start}`);
  }
});

test('TSO: a 5000-byte TCPv4 segment is cut into MSS-sized frames with correct headers (§5.1.6.2)', () => {
  const { backend, drv, net } = setup();
  drv.probe();
  const payload = Uint8Array.from({ length: 5000 }, (_, i) => (i * 13) & 0xff);
  const ip = ipv4(6, tcp(payload, 0xfffff000, 0x19 /* FIN PSH ACK */), 0xfffe);
  drv.send(ethernet(0x0800, ip), { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1448, csumStart: 34, csumOffset: 16 });
  const segs = backend.sent;
  assert.equal(segs.length, 4);
  const got: Uint8Array[] = [];
  segs.forEach((s, i) => {
    const ipb = s.subarray(14);
    assert.equal((ipb[2] << 8) | ipb[3], ipb.length, 'IPv4 total length');
    assert.equal((ipb[4] << 8) | ipb[5], (0xfffe + i) & 0xffff, 'IPv4 id advances');
    assert.ok(l4ChecksumOk(s), `segment ${i} checksums`);
    const t = ipb.subarray(20);
    assert.equal(new DataView(t.buffer, t.byteOffset).getUint32(4), (0xfffff000 + i * 1448) >>> 0, 'sequence number');
    assert.equal(t[13], i === 3 ? 0x19 : 0x10, 'FIN and PSH on the last segment only');
    assert.ok(t.length - 20 <= 1448);
    got.push(t.subarray(20));
  });
  assert.deepEqual(concat(got), payload);
  assert.equal(net.metrics.txPackets, 4);
});

test('TSO over IPv6', () => {
  const { backend, drv } = setup();
  drv.probe();
  const payload = new Uint8Array(3000).fill(0xab);
  drv.send(ethernet(0x86dd, ipv6(6, tcp(payload, 1, 0x18))), { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV6, gsoSize: 1400, csumStart: 54, csumOffset: 16 });
  assert.equal(backend.sent.length, 3);
  for (const s of backend.sent) assert.ok(l4ChecksumOk(s));
  assert.deepEqual(backend.sent.map((s) => s.length - 14 - 40 - 20), [1400, 1400, 200]);
});

test('bad transmits are dropped and counted; the chains still come back', () => {
  const { backend, drv, net, mem } = setup();
  drv.probe((f) => f & ~VIRTIO_NET_F_HOST_TSO6);
  drv.send(new Uint8Array(10)); // runt: shorter than an Ethernet header
  drv.send(new Uint8Array(MAX_FRAME_BYTES + 1)); // oversize
  drv.send(ethernet(0x86dd, ipv6(6, tcp(new Uint8Array(100), 1, 0x10))), { gsoType: VIRTIO_NET_HDR_GSO_TCPV6, gsoSize: 10 }); // TSO6 not negotiated
  drv.send(ethernet(0x0800, ipv4(17, new Uint8Array(8))), { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 34, csumOffset: 5000 }); // field past the end
  drv.send(ethernet(0x0800, ipv4(6, tcp(new Uint8Array(10), 1, 0x10))), { gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 0 }); // no MSS
  // a buffer outside RAM
  drv.rings[1].add([{ addr: RAM_BASE + mem.bytes.length - 8, len: 100 }]);
  drv.dev.write(VIRTIO_MMIO_QUEUE_NOTIFY, 4, 1);
  assert.equal(backend.sent.length, 0);
  assert.equal(drv.rings[1].takeUsed().length, 6);
  assert.deepEqual([net.metrics.txRunt, net.metrics.txOversize, net.metrics.txBad], [1, 1, 4]);
});

test('receive with MRG_RXBUF: a frame spreads over several buffers, num_buffers and DATA_VALID set', async () => {
  const { backend, drv, net, irq } = setup();
  drv.probe();
  drv.fill(8, 1536);
  const frame = ethernet(0x0800, Uint8Array.from({ length: 4000 }, (_, i) => i & 0xff));
  assert.equal(backend.port!.receive(frame), true);
  assert.equal(backend.port!.receive(ethernet(0x0806, new Uint8Array(28))), true);
  await tick();
  assert.ok(irq.rises >= 1, 'one interrupt for the batch');
  const got = drv.receive();
  assert.equal(got.length, 2);
  assert.equal(got[0].numBuffers, 3);
  assert.equal(got[0].flags, VIRTIO_NET_HDR_F_DATA_VALID);
  assert.deepEqual(got[0].frame, frame);
  assert.equal(got[1].numBuffers, 1);
  assert.equal(net.metrics.rxPackets, 2);
});

test('receive without buffers holds the frame in the backend until the driver posts some', async () => {
  const { backend, drv } = setup();
  drv.probe();
  drv.fill(1, 1536);
  const frame = ethernet(0x0800, new Uint8Array(3000).fill(9));
  assert.equal(backend.port!.receive(frame), false, 'two buffers needed, one posted: held');
  assert.equal(backend.resumes, 0);
  drv.fill(2, 1536);
  assert.equal(backend.resumes, 1, 'posting buffers resumes the backend');
  assert.equal(backend.port!.receive(frame), true);
  await tick();
  const got = drv.receive();
  assert.equal(got.length, 1);
  assert.deepEqual(got[0].frame, frame, 'the first buffer was given back and reused in order');
});

test('receive without MRG_RXBUF: one buffer per frame; a frame that does not fit is dropped', async () => {
  const { backend, drv, net } = setup();
  drv.probe((f) => f & ~VIRTIO_NET_F_MRG_RXBUF & ~VIRTIO_NET_F_GUEST_CSUM);
  drv.fill(2, 1600);
  assert.equal(backend.port!.receive(ethernet(0x0800, new Uint8Array(2000))), true);
  const small = ethernet(0x0800, new Uint8Array(100).fill(1));
  assert.equal(backend.port!.receive(small), true);
  await tick();
  const used = drv.rings[0].takeUsed();
  assert.deepEqual(used.map((u) => u.len), [0, VIRTIO_NET_HDR_SIZE + small.length]);
  assert.equal(net.metrics.rxDropped, 1);
  assert.equal(net.metrics.rxPackets, 1);
});

test('a frame larger than the whole ring can hold is dropped, not held forever', () => {
  const { backend, drv, net } = setup();
  drv.probe();
  drv.fill(16, 64);
  assert.equal(backend.port!.receive(ethernet(0x0800, new Uint8Array(5000))), true);
  assert.equal(net.metrics.rxDropped, 1);
});

test('congestion: the device stops taking transmit chains until the backend is writable', () => {
  const { backend, drv, net } = setup();
  drv.probe();
  backend.accept = false;
  const f = ethernet(0x0806, new Uint8Array(28));
  drv.send(f);
  drv.send(f);
  assert.equal(backend.sent.length, 1, 'the second chain waits');
  assert.equal(drv.rings[1].takeUsed().length, 1);
  backend.accept = true;
  net.writable();
  assert.equal(backend.sent.length, 2);
});

test('link down: a config change notification, status 0, nothing sent or received', async () => {
  const { backend, drv, net, dev } = setup();
  drv.probe();
  drv.fill(2, 1536);
  drv.ackInterrupt();
  net.setLink(false);
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 6, 2), 0);
  assert.equal(drv.ackInterrupt() & 2, 2, 'configuration change interrupt');
  drv.send(ethernet(0x0806, new Uint8Array(28)));
  assert.equal(backend.sent.length, 0);
  assert.equal(backend.port!.receive(ethernet(0x0806, new Uint8Array(28))), true);
  await tick();
  assert.equal(drv.rings[0].takeUsed().length, 0);
  net.setLink(true);
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 6, 2), 1);
});

test('a broken ring puts the device in DEVICE_NEEDS_RESET; receive() never throws', () => {
  const { backend, drv, reasons } = setup();
  drv.probe();
  drv.rings[0].setAvailIdx(100); // more entries than the ring holds
  assert.doesNotThrow(() => backend.port!.receive(ethernet(0x0806, new Uint8Array(28))));
  assert.notEqual(drv.r(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
  assert.equal(reasons.length, 1);
});

test('save/restore keeps the counters and the link state', () => {
  const a = setup();
  a.drv.probe();
  a.drv.send(ethernet(0x0806, new Uint8Array(28)));
  a.net.setLink(false);
  const b = setup();
  b.net.restore(JSON.parse(JSON.stringify(a.net.save())));
  assert.equal(b.net.metrics.txPackets, 1);
  assert.equal(b.net.linkUp, false);
  b.net.restore({ metrics: { txPackets: -1 } });
  assert.equal(b.net.metrics.txPackets, 0);
});
