/**
 * A virtual network's services (src/host/net-services.ts) and its switch
 * (src/host/switch.ts), with frames built here the way a guest's kernel builds them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { serve, serviceAddress, type ServicesContext } from '../../src/host/net-services.js';
import { VirtualSwitch } from '../../src/host/switch.js';
import { parseSubnet } from '../../src/host/networks.js';

const NET_MAC = Uint8Array.from([2, 0x54, 0, 1, 2, 3]);
const VM_MAC = Uint8Array.from([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
const VM_MAC_TEXT = '52:54:00:aa:bb:cc';
const subnet = parseSubnet('10.97.0.0/24');

function ctx(extra: Partial<ServicesContext> = {}): ServicesContext {
  return {
    name: 'lan', subnet, mac: NET_MAC,
    lease: (m) => (m === VM_MAC_TEXT ? 0x0a610002 : 0x0a610003),
    addressOf: (n) => (n === 'web' ? 0x0a610005 : null),
    ...extra,
  };
}

function eth(dst: Uint8Array, type: number, payload: Uint8Array, src = VM_MAC): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst, 0); f.set(src, 6); f[12] = type >> 8; f[13] = type & 255; f.set(payload, 14);
  return f;
}

function udp4(src: number, dst: number, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(28 + payload.length);
  p[0] = 0x45; p[2] = p.length >> 8; p[3] = p.length & 255; p[8] = 64; p[9] = 17;
  new DataView(p.buffer).setUint32(12, src); new DataView(p.buffer).setUint32(16, dst);
  p[20] = sport >> 8; p[21] = sport & 255; p[22] = dport >> 8; p[23] = dport & 255;
  p[24] = (8 + payload.length) >> 8; p[25] = (8 + payload.length) & 255;
  p.set(payload, 28);
  return p;
}

function dhcpMessage(type: number, opts: number[] = [], chaddr = VM_MAC): Uint8Array {
  const m = new Uint8Array(240 + 3 + opts.length + 1);
  m[0] = 1; m[1] = 1; m[2] = 6;
  m.set([0xde, 0xad, 0xbe, 0xef], 4);
  m.set(chaddr, 28);
  new DataView(m.buffer).setUint32(236, 0x63825363);
  m.set([53, 1, type, ...opts, 255], 240);
  return m;
}

/** DHCP options of a reply frame (code -> bytes), and its yiaddr. */
function dhcpReply(f: Uint8Array): { yiaddr: number; opts: Map<number, Uint8Array> } {
  const p = f.subarray(14 + 28);
  const opts = new Map<number, Uint8Array>();
  for (let i = 240; i < p.length && p[i] !== 255;) { const c = p[i]; const l = p[i + 1]; opts.set(c, p.subarray(i + 2, i + 2 + l)); i += 2 + l; }
  return { yiaddr: new DataView(p.buffer, p.byteOffset).getUint32(16), opts };
}

function dnsQuery(name: string, qtype = 1, id = 0x1234): Uint8Array {
  const labels = name.split('.').flatMap((l) => [l.length, ...Buffer.from(l)]);
  return Uint8Array.from([id >> 8, id & 255, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, qtype, 0, 1]);
}

const BCAST = new Uint8Array(6).fill(0xff);
const frames = (r: Array<Uint8Array | Promise<Uint8Array | null>>) => r.filter((x): x is Uint8Array => x instanceof Uint8Array);

test('ARP: the service address is answered with the network\'s MAC; other addresses are not', () => {
  const arp = (target: number) => {
    const a = new Uint8Array(28);
    a.set([0, 1, 8, 0, 6, 4, 0, 1], 0); a.set(VM_MAC, 8); new DataView(a.buffer).setUint32(14, 0x0a610002); new DataView(a.buffer).setUint32(24, target);
    return eth(BCAST, 0x0806, a);
  };
  const [r] = frames(serve(ctx(), arp(serviceAddress(subnet))));
  assert.deepEqual(r.subarray(0, 6), VM_MAC);
  assert.equal(r[14 + 7], 2, 'reply');
  assert.deepEqual(r.subarray(14 + 8, 14 + 14), NET_MAC, 'sender hardware address');
  assert.deepEqual(serve(ctx(), arp(0x0a610009)), []);
});

test('DHCP: DISCOVER -> OFFER with mask, DNS, domain, MTU; REQUEST of the lease -> ACK, of another address -> NAK', () => {
  const disc = eth(BCAST, 0x0800, udp4(0, 0xffffffff, 68, 67, dhcpMessage(1)));
  const [offer] = frames(serve(ctx(), disc));
  const o = dhcpReply(offer);
  assert.equal(o.yiaddr, 0x0a610002);
  assert.deepEqual([...o.opts.get(53)!], [2]);
  assert.deepEqual([...o.opts.get(1)!], [255, 255, 255, 0]);
  assert.deepEqual([...o.opts.get(6)!], [10, 97, 0, 1]);
  assert.equal(Buffer.from(o.opts.get(15)!).toString(), 'lan');
  assert.deepEqual([...o.opts.get(26)!], [0xff, 0xf0]);
  assert.equal(o.opts.get(3), undefined, 'no router: a virtual network does not lead anywhere');
  const req = (ip: number[]) => eth(BCAST, 0x0800, udp4(0, 0xffffffff, 68, 67, dhcpMessage(3, [50, 4, ...ip, 54, 4, 10, 97, 0, 1])));
  assert.deepEqual([...dhcpReply(frames(serve(ctx(), req([10, 97, 0, 2])))[0]).opts.get(53)!], [5]);
  assert.deepEqual([...dhcpReply(frames(serve(ctx(), req([10, 97, 0, 9])))[0]).opts.get(53)!], [6]);
});

test('DHCP: a client hardware address other than the sender\'s, or a truncated message, gets nothing', () => {
  const other = Uint8Array.from([0x52, 0x54, 0, 9, 9, 9]);
  assert.deepEqual(serve(ctx(), eth(BCAST, 0x0800, udp4(0, 0xffffffff, 68, 67, dhcpMessage(1, [], other)))), []);
  const short = dhcpMessage(1).subarray(0, 200);
  assert.deepEqual(serve(ctx(), eth(BCAST, 0x0800, udp4(0, 0xffffffff, 68, 67, short))), []);
  const bad = dhcpMessage(1, [12, 200]); // option length past the end
  assert.deepEqual(serve(ctx(), eth(BCAST, 0x0800, udp4(0, 0xffffffff, 68, 67, bad))), []);
});

test('DNS: a VM\'s name (and name.network) -> its address; unknown -> NXDOMAIN; malformed -> FORMERR', async () => {
  const ask = (q: Uint8Array, c = ctx()) => serve(c, eth(NET_MAC, 0x0800, udp4(0x0a610002, serviceAddress(subnet), 40000, 53, q)));
  const answer = (r: Array<Uint8Array | Promise<Uint8Array | null>>) => r[0] as Uint8Array;
  for (const n of ['web', 'WEB.lan']) {
    const d = answer(ask(dnsQuery(n))).subarray(14 + 28);
    assert.equal(d[3] & 15, 0, 'NOERROR');
    assert.equal((d[6] << 8) | d[7], 1, 'one answer');
    assert.deepEqual([...d.subarray(d.length - 4)], [10, 97, 0, 5]);
  }
  const nx = answer(ask(dnsQuery('nobody'))).subarray(14 + 28);
  assert.equal(nx[3] & 15, 3, 'NXDOMAIN');
  const bad = dnsQuery('web');
  bad[12] = 63; // label longer than the message
  assert.equal(answer(ask(bad)).subarray(14 + 28)[3] & 15, 1, 'FORMERR');
  // other names go to the host's resolver
  const up = ask(dnsQuery('example.test'), ctx({ resolveUpstream: async (n, t) => (n === 'example.test' && t === 'A' ? ['192.0.2.7'] : null) }));
  const f = await (up[0] as Promise<Uint8Array>);
  const d = f.subarray(14 + 28);
  assert.deepEqual([...d.subarray(d.length - 4)], [192, 0, 2, 7]);
  // the frame is the caller's only during the call (a backend reuses it): the upstream answer keeps the query's id and question
  const reused = eth(NET_MAC, 0x0800, udp4(0x0a610002, serviceAddress(subnet), 40000, 53, dnsQuery('example.test', 1, 0x4242)));
  const later = serve(ctx({ resolveUpstream: async () => ['192.0.2.7'] }), reused);
  reused.fill(0xee);
  const r = (await (later[0] as Promise<Uint8Array>)).subarray(14 + 28);
  assert.deepEqual([...r.subarray(0, 2)], [0x42, 0x42], 'the query id');
  assert.deepEqual([...r.subarray(12, 12 + 14)], [...dnsQuery('example.test').subarray(12, 12 + 14)], 'the question');
  const fail = ask(dnsQuery('example.test'), ctx({ resolveUpstream: async () => { throw new Error('down'); } }));
  assert.equal((await (fail[0] as Promise<Uint8Array>)).subarray(14 + 28)[3] & 15, 2, 'SERVFAIL');
});

/** An in-memory socket end for the switch: `frames` collects what the switch sends to it. */
function fakeSocket(): { end: Duplex; frames: Uint8Array[]; push: (f: Uint8Array) => void } {
  const frames: Uint8Array[] = [];
  let buf = Buffer.alloc(0);
  const end = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const n = buf.readUInt32BE(0);
        frames.push(new Uint8Array(buf.subarray(4, 4 + n)));
        buf = buf.subarray(4 + n);
      }
      cb();
    },
  });
  const push = (f: Uint8Array) => { const h = Buffer.alloc(4); h.writeUInt32BE(f.length); end.push(Buffer.concat([h, f])); };
  return { end, frames, push };
}

test('switch: forwards by MAC, drops spoofed sources and unknown destinations, limits broadcast floods', async () => {
  const sw = new VirtualSwitch({ name: 'lan', subnet: '10.97.0.0/24', createdAt: 0, leases: {} }, { saveLeases: () => {}, log: () => {} });
  const a = fakeSocket();
  const b = fakeSocket();
  const bMac = Uint8Array.from([0x52, 0x54, 0, 1, 1, 1]);
  sw.attach(a.end, 'a', VM_MAC_TEXT);
  sw.attach(b.end, 'b', '52:54:00:01:01:01');
  const tick = () => new Promise((r) => setImmediate(r));
  a.push(eth(bMac, 0x88b5, new Uint8Array(50).fill(1)));
  a.push(eth(bMac, 0x88b5, new Uint8Array(50).fill(2), Uint8Array.from([2, 0xde, 0xad, 0, 0, 1]))); // spoofed
  a.push(eth(Uint8Array.from([0x52, 0x54, 0, 7, 7, 7]), 0x88b5, new Uint8Array(50))); // nobody
  await tick();
  assert.equal(b.frames.length, 1);
  assert.equal(b.frames[0][14], 1);
  for (let i = 0; i < 3000; i++) a.push(eth(BCAST, 0x88b5, new Uint8Array(50)));
  await tick();
  const st = sw.stats().find((p) => p.vm === 'a')!;
  assert.equal(st.droppedSpoofed, 1);
  assert.equal(st.droppedOther, 1);
  assert.ok(st.droppedFlood >= 1000, `flood limited: ${st.droppedFlood}`);
  assert.ok(b.frames.length - 1 <= 1100, 'b got at most the burst');
  sw.close();
});
