/**
 * The services a virtual network offers its VMs at its own address (the first of the
 * subnet): ARP for that address (RFC 826), a DHCP server (RFC 2131/2132) that leases each
 * VM a stable address, and an authoritative DNS server (RFC 1035) for the names of the
 * VMs on the network (`web` and `web.<network>`). Frames come from guests: every length
 * and offset is checked; anything malformed is ignored.
 */
import { ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, IPPROTO_UDP, foldComplement, formatMac, sum16 } from '../devices/net/frame.js';
import { prefixMask, type Subnet } from './networks.js';

/** The MTU offered by DHCP (as passt does): big frames mean far fewer of them for an emulated guest. */
export const NETWORK_MTU = 65520;
/** Lease time offered, seconds (infinite: addresses are stable per MAC anyway). */
const LEASE_SECONDS = 0xffffffff;
const DHCP_MAGIC = 0x63825363;
const DNS_TTL = 30;

/** What the services need to know about the network and its VMs. */
export interface ServicesContext {
  /** Network name: the DNS domain. */
  name: string;
  subnet: Subnet;
  /** The network's own MAC address (6 bytes). */
  mac: Uint8Array;
  /** The lease of `mac` (a VM's card), creating one if needed; null when the subnet is full. */
  lease(mac: string): number | null;
  /** The address of the running VM called `name` on this network, or null. */
  addressOf(name: string): number | null;
  /**
   * Resolves a name that is not a VM's through the host's resolver: IPv4 (`A`) or IPv6
   * (`AAAA`) addresses as text, or null when the name does not exist. Rejects on other
   * failures (answered SERVFAIL). Without it, other names get NXDOMAIN.
   */
  resolveUpstream?: (name: string, type: 'A' | 'AAAA') => Promise<string[] | null>;
}

/** The network's own address: the first host of the subnet. */
export function serviceAddress(s: Subnet): number {
  return (s.base + 1) >>> 0;
}

const u32 = (b: Uint8Array, at: number) => ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
const put32 = (b: Uint8Array, at: number, v: number) => { b[at] = v >>> 24; b[at + 1] = (v >>> 16) & 255; b[at + 2] = (v >>> 8) & 255; b[at + 3] = v & 255; };
const put16 = (b: Uint8Array, at: number, v: number) => { b[at] = (v >>> 8) & 255; b[at + 1] = v & 255; };

/**
 * Answers the frame `frame` from a VM if it is for the services (ARP for the service
 * address, DHCP to port 67, DNS to the service address on port 53). `frame` is read
 * only during the call (the caller may reuse it): nothing returned keeps a view of it.
 * @returns the reply frames (empty when the frame is not for the services or is malformed);
 *   a DNS answer that needs the host's resolver comes as a promise.
 */
export function serve(ctx: ServicesContext, frame: Uint8Array): Array<Uint8Array | Promise<Uint8Array | null>> {
  if (frame.length < ETH_HLEN + 28) return [];
  const type = (frame[12] << 8) | frame[13];
  if (type === ETHERTYPE_ARP) return arp(ctx, frame);
  if (type !== ETHERTYPE_IPV4) return [];
  const ip = ETH_HLEN;
  const ihl = (frame[ip] & 15) * 4;
  const total = (frame[ip + 2] << 8) | frame[ip + 3];
  if ((frame[ip] >> 4) !== 4 || ihl < 20 || total < ihl + 8 || ip + total > frame.length || frame[ip + 9] !== IPPROTO_UDP) return [];
  if (((frame[ip + 6] & 0x3f) | frame[ip + 7]) !== 0) return []; // fragments
  const udp = ip + ihl;
  const dport = (frame[udp + 2] << 8) | frame[udp + 3];
  const sport = (frame[udp] << 8) | frame[udp + 1];
  const ulen = (frame[udp + 4] << 8) | frame[udp + 5];
  if (ulen < 8 || udp + ulen > ip + total) return [];
  const payload = frame.subarray(udp + 8, udp + ulen);
  const dst = u32(frame, ip + 16);
  const src = u32(frame, ip + 12);
  const me = serviceAddress(ctx.subnet);
  if (dport === 67 && sport === 68) {
    const reply = dhcp(ctx, payload, formatMac(frame, 6));
    return reply ? [udpFrame(ctx, frame.subarray(6, 12), reply.to, 67, 68, reply.payload)] : [];
  }
  if (dport === 53 && dst === me) {
    // a copy: an upstream answer comes later, and the frame is the caller's only during this call
    const reply = dns(ctx, payload.slice());
    const to = frame.slice(6, 12);
    if (reply instanceof Promise) return [reply.then((r) => (r ? udpFrame(ctx, to, src, 53, sport, r) : null))];
    return reply ? [udpFrame(ctx, to, src, 53, sport, reply)] : [];
  }
  return [];
}

/** An ARP reply for a request that asks for the service address. */
function arp(ctx: ServicesContext, f: Uint8Array): Uint8Array[] {
  const a = ETH_HLEN;
  if (((f[a] << 8) | f[a + 1]) !== 1 || ((f[a + 2] << 8) | f[a + 3]) !== ETHERTYPE_IPV4 || f[a + 4] !== 6 || f[a + 5] !== 4) return [];
  if (((f[a + 6] << 8) | f[a + 7]) !== 1) return []; // not a request
  if (u32(f, a + 24) !== serviceAddress(ctx.subnet)) return [];
  const r = new Uint8Array(ETH_HLEN + 28);
  r.set(f.subarray(a + 8, a + 14), 0); // to the asker
  r.set(ctx.mac, 6);
  put16(r, 12, ETHERTYPE_ARP);
  r.set([0, 1, 0x08, 0x00, 6, 4, 0, 2], a);
  r.set(ctx.mac, a + 8);
  put32(r, a + 14, serviceAddress(ctx.subnet));
  r.set(f.subarray(a + 8, a + 18), a + 18); // target = the asker's MAC and address
  return [r];
}

/** An Ethernet + IPv4 + UDP frame from the service address. */
function udpFrame(ctx: ServicesContext, dstMac: Uint8Array, dstIp: number, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(ETH_HLEN + 20 + 8 + payload.length);
  f.set(dstMac, 0);
  f.set(ctx.mac, 6);
  put16(f, 12, ETHERTYPE_IPV4);
  const ip = ETH_HLEN;
  f[ip] = 0x45;
  put16(f, ip + 2, 20 + 8 + payload.length);
  f[ip + 8] = 64;
  f[ip + 9] = IPPROTO_UDP;
  put32(f, ip + 12, serviceAddress(ctx.subnet));
  put32(f, ip + 16, dstIp);
  put16(f, ip + 10, foldComplement(sum16(f, ip, 20)));
  const u = ip + 20;
  put16(f, u, sport);
  put16(f, u + 2, dport);
  put16(f, u + 4, 8 + payload.length);
  f.set(payload, u + 8);
  const pseudo = sum16(f, ip + 12, 8, IPPROTO_UDP + 8 + payload.length);
  const c = foldComplement(sum16(f, u, 8 + payload.length, pseudo));
  put16(f, u + 6, c === 0 ? 0xffff : c);
  return f;
}

/** DHCP options of a message (code -> value), or null when malformed. */
function dhcpOptions(p: Uint8Array): Map<number, Uint8Array> | null {
  const opts = new Map<number, Uint8Array>();
  let i = 240;
  while (i < p.length) {
    const code = p[i++];
    if (code === 0) continue;
    if (code === 255) return opts;
    if (i >= p.length) return null;
    const len = p[i++];
    if (i + len > p.length) return null;
    opts.set(code, p.subarray(i, i + len));
    i += len;
  }
  return opts;
}

/**
 * DISCOVER -> OFFER, REQUEST -> ACK (or NAK for an address that is not the client's
 * lease). Leases go only to the sending card's own MAC (`fromMac`): a guest cannot
 * exhaust the pool by inventing client addresses.
 */
function dhcp(ctx: ServicesContext, p: Uint8Array, fromMac: string): { to: number; payload: Uint8Array } | null {
  if (p.length < 240 || p[0] !== 1 || p[1] !== 1 || p[2] !== 6 || u32(p, 236) !== DHCP_MAGIC) return null;
  if (formatMac(p, 28) !== fromMac) return null;
  const opts = dhcpOptions(p);
  const type = opts?.get(53);
  if (!opts || !type || type.length !== 1) return null;
  const me = serviceAddress(ctx.subnet);
  const server = opts.get(54);
  if (server && (server.length !== 4 || u32(server, 0) !== me)) return null; // for another server
  const ip = ctx.lease(fromMac);
  if (ip === null) return null;
  let reply: number;
  if (type[0] === 1) reply = 2; // DISCOVER -> OFFER
  else if (type[0] === 3) {
    const req = opts.get(50);
    const asked = req && req.length === 4 ? u32(req, 0) : u32(p, 12);
    reply = asked === ip ? 5 : 6; // ACK or NAK
  } else return null;
  const o: number[] = [53, 1, reply, 54, 4, ...be32(me)];
  if (reply !== 6) {
    const domain = new TextEncoder().encode(ctx.name);
    o.push(51, 4, ...be32(LEASE_SECONDS), 1, 4, ...be32(prefixMask(ctx.subnet.prefix)), 6, 4, ...be32(me),
      15, domain.length, ...domain, 26, 2, NETWORK_MTU >> 8, NETWORK_MTU & 255);
  }
  o.push(255);
  const out = new Uint8Array(240 + o.length);
  out[0] = 2; out[1] = 1; out[2] = 6;
  out.set(p.subarray(4, 8), 4); // xid
  out.set(p.subarray(10, 12), 10); // flags
  if (reply !== 6) put32(out, 16, ip); // yiaddr
  put32(out, 20, me); // siaddr
  out.set(p.subarray(28, 44), 28); // chaddr
  put32(out, 236, DHCP_MAGIC);
  out.set(o, 240);
  return { to: 0xffffffff, payload: out };
}

function be32(v: number): number[] {
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
}

/**
 * One DNS query (one question, no compression) -> an answer: for a VM's name (`web`,
 * `web.<network>`) its address for A and no data for other types, authoritatively; any
 * other A or AAAA name through the host's resolver (NXDOMAIN, or SERVFAIL when it fails);
 * NXDOMAIN for other types; FORMERR/NOTIMP for anything but one standard query.
 */
function dns(ctx: ServicesContext, q: Uint8Array): Uint8Array | Promise<Uint8Array> | null {
  if (q.length < 12 || (q[2] & 0x80) !== 0) return null; // not a query
  const opcode = (q[2] >> 3) & 15;
  const qd = (q[4] << 8) | q[5];
  const labels: string[] = [];
  let i = 12;
  let ok = qd === 1 && opcode === 0;
  while (ok) {
    if (i >= q.length) { ok = false; break; }
    const len = q[i++];
    if (len === 0) break;
    if (len > 63 || i + len > q.length) { ok = false; break; }
    labels.push(String.fromCharCode(...q.subarray(i, i + len)).toLowerCase());
    i += len;
  }
  if (ok && i + 4 > q.length) ok = false;
  const head = (rcode: number, an: number) => {
    const h = new Uint8Array(12);
    h.set(q.subarray(0, 2), 0);
    h[2] = 0x84 | (q[2] & 0x01); // QR, AA, RD copied
    h[3] = rcode;
    put16(h, 4, ok ? 1 : 0);
    put16(h, 6, an);
    return h;
  };
  if (!ok) return head(opcode === 0 ? 1 : 4, 0); // FORMERR / NOTIMP
  const question = q.subarray(12, i + 4);
  const qtype = (q[i] << 8) | q[i + 1];
  const qclass = (q[i + 2] << 8) | q[i + 3];
  let name = labels.join('.');
  if (name.endsWith(`.${ctx.name}`)) name = name.slice(0, -ctx.name.length - 1);
  const addr = name.includes('.') || qclass !== 1 ? null : ctx.addressOf(name);
  if (addr === null) {
    const full = labels.join('.');
    if (qclass !== 1 || (qtype !== 1 && qtype !== 28) || !ctx.resolveUpstream || !full.includes('.') || full.endsWith(`.${ctx.name}`)) {
      return concat(head(3, 0), question); // NXDOMAIN
    }
    return ctx.resolveUpstream(full, qtype === 1 ? 'A' : 'AAAA').then((addrs) => {
      if (addrs === null) return concat(head(3, 0), question);
      const records = addrs.map((a) => {
        const rdata = qtype === 1 ? Uint8Array.from(a.split('.').map(Number)) : ipv6Bytes(a);
        const r = new Uint8Array(12 + rdata.length);
        r.set([0xc0, 12, 0, qtype, 0, 1], 0);
        put32(r, 6, DNS_TTL);
        put16(r, 10, rdata.length);
        r.set(rdata, 12);
        return r;
      }).slice(0, 16);
      const h = head(0, records.length);
      h[2] &= ~0x04; // not authoritative
      h[3] = 0x80; // RA
      return concat(h, question, ...records);
    }, () => concat(head(2, 0), question)); // SERVFAIL
  }
  if (qtype !== 1) return concat(head(0, 0), question);
  const answer = new Uint8Array(16);
  answer.set([0xc0, 12, 0, 1, 0, 1], 0);
  put32(answer, 6, DNS_TTL);
  put16(answer, 10, 4);
  put32(answer, 12, addr);
  return concat(head(0, 1), question, answer);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** 16 bytes of an IPv6 address in text (`::` allowed; no embedded IPv4). */
function ipv6Bytes(a: string): Uint8Array {
  const [l, r] = a.split('::');
  const words = (x: string | undefined) => (x ? x.split(':').map((w) => parseInt(w, 16) & 0xffff) : []);
  const left = words(l);
  const right = a.includes('::') ? words(r) : [];
  const all = [...left, ...new Array(Math.max(0, 8 - left.length - right.length)).fill(0), ...right].slice(0, 8);
  const out = new Uint8Array(16);
  all.forEach((w, i) => put16(out, 2 * i, w));
  return out;
}
