/**
 * Ethernet frames, as a NIC model and a virtual switch handle them: addresses, the
 * Internet checksum (RFC 1071) and the two offloads a virtio-net driver asks for
 * (virtio-v1.2-cs01 §5.1.6.2): completing a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM)
 * and cutting a large TCP segment into MSS-sized ones (TSO, VIRTIO_NET_HDR_GSO_TCPV4/6).
 *
 * Frames are `Uint8Array`s starting with the destination MAC, without FCS. Everything
 * here takes guest-supplied bytes: offsets and lengths are checked, and a frame that
 * cannot be handled throws {@link FrameError} (the caller drops and counts it).
 */

/** Ethernet header length (destination, source, EtherType), bytes. */
export const ETH_HLEN = 14;
/** EtherTypes (IEEE 802.3). */
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;
/** IP protocol numbers. */
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
/**
 * Largest frame accepted anywhere, bytes: the largest IP packet (65535) behind an
 * Ethernet header with one 802.1Q tag. A TSO frame of Linux (64 KiB of IP) fits.
 */
export const MAX_FRAME_BYTES = ETH_HLEN + 4 + 65535;

/** A frame the offloads cannot handle (malformed headers, offsets past the end). */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/** A MAC address as `aa:bb:cc:dd:ee:ff` (lower case). */
export function formatMac(mac: Uint8Array, offset = 0): string {
  const p: string[] = [];
  for (let i = 0; i < 6; i++) p.push(mac[offset + i].toString(16).padStart(2, '0'));
  return p.join(':');
}

/**
 * Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
 * @throws FrameError for anything else.
 */
export function parseMac(s: string): Uint8Array {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(s.trim());
  if (!m) throw new FrameError(`bad MAC address ${JSON.stringify(s)}: expected six hex bytes like 52:54:00:12:34:56`);
  return Uint8Array.from(m.slice(1, 7).map((h) => parseInt(h, 16)));
}

/** True for a group (multicast or broadcast) address: the I/G bit of the first byte. */
export function isMulticastMac(frame: Uint8Array, offset = 0): boolean {
  return (frame[offset] & 1) === 1;
}

/** One's complement sum of `len` bytes from `start`, as 16-bit big-endian words, added to `sum` (not folded). */
export function sum16(b: Uint8Array, start: number, len: number, sum = 0): number {
  let i = start;
  const end = start + len;
  if (len >= 64) {
    // 32-bit words: 2^16 = 1 modulo 0xffff, so their sum folds to the same 16-bit sum
    // (RFC 1071 §2 (B)); four times fewer steps than byte pairs, which a 64 KiB frame
    // (passt's MTU) needs on every transmit. Folded every 2^20 words: exact in a double.
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    while (i + 3 < end) {
      const stop = Math.min(end - 3, i + 4 * 0x100000);
      let s = 0;
      for (; i < stop; i += 4) s += v.getUint32(i);
      sum += s;
      while (sum > 0x7fffffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
    }
  }
  for (; i + 1 < end; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (i < end) sum += b[i] << 8;
  // keep the running sum small enough for exact float arithmetic on huge inputs
  return sum > 0x7fffffff ? (sum & 0xffff) + Math.floor(sum / 0x10000) : sum;
}

/** Fold a running sum to 16 bits and complement it (RFC 1071). */
export function foldComplement(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/**
 * Complete a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM, §5.1.6.2): the guest left
 * the pseudo-header sum in the checksum field at `start + offset`; the one's complement
 * of the sum from `start` to the end of the frame goes there. In place.
 * @throws FrameError if the field is not inside the frame.
 */
export function completeChecksum(frame: Uint8Array, start: number, offset: number): void {
  if (start < ETH_HLEN || start + offset + 2 > frame.length) {
    throw new FrameError(`checksum at ${start}+${offset} outside a ${frame.length}-byte frame`);
  }
  let c = foldComplement(sum16(frame, start, frame.length - start));
  // a UDP checksum of 0 means "none" (RFC 768): send its equal, 0xffff
  if (c === 0 && offset === 6 && l4Protocol(frame) === IPPROTO_UDP) c = 0xffff;
  frame[start + offset] = c >> 8;
  frame[start + offset + 1] = c & 0xff;
}

/** Where the IP header starts and which version it is, or null for a non-IP frame. */
export function ipHeader(frame: Uint8Array): { l3: number; version: 4 | 6 } | null {
  if (frame.length < ETH_HLEN) return null;
  let l3 = 12;
  let type = (frame[l3] << 8) | frame[l3 + 1];
  if (type === ETHERTYPE_VLAN) {
    l3 += 4;
    if (frame.length < l3 + 2) return null;
    type = (frame[l3] << 8) | frame[l3 + 1];
  }
  l3 += 2;
  if (type === ETHERTYPE_IPV4) return { l3, version: 4 };
  if (type === ETHERTYPE_IPV6) return { l3, version: 6 };
  return null;
}

/** The transport protocol of an IPv4 frame or an IPv6 frame without extension headers, else -1. */
function l4Protocol(frame: Uint8Array): number {
  const ip = ipHeader(frame);
  if (!ip) return -1;
  if (ip.version === 4) return frame.length > ip.l3 + 9 ? frame[ip.l3 + 9] : -1;
  return frame.length > ip.l3 + 6 ? frame[ip.l3 + 6] : -1;
}

/** Checksum sum of the TCP/UDP pseudo-header (RFC 793 §3.1, RFC 8200 §8.1) for `l4len` bytes. */
function pseudoHeaderSum(frame: Uint8Array, l3: number, version: 4 | 6, proto: number, l4len: number): number {
  if (version === 4) return sum16(frame, l3 + 12, 8, proto + l4len);
  return sum16(frame, l3 + 8, 32, proto + (l4len >>> 16) + (l4len & 0xffff));
}

/**
 * TCP segmentation offload (§5.1.6.2, VIRTIO_NET_HDR_GSO_TCPV4/TCPV6): cut a frame whose
 * TCP payload is larger than `mss` into frames of at most `mss` payload bytes each, as a
 * NIC does: headers copied, IPv4 total length, identification and header checksum and
 * IPv6 payload length rewritten, sequence numbers advanced, FIN and PSH only on the
 * last segment, CWR only on the first, and every TCP checksum computed in full.
 * A frame whose payload fits in one segment comes back as one frame with its checksums
 * computed. IPv6 extension headers are not followed (Linux's TSO frames have none).
 * @param version the IP version the driver named in gso_type (4 for TCPV4, 6 for TCPV6).
 * @throws FrameError for a frame that is not TCP over that IP version, or bad lengths.
 */
export function segmentTcp(frame: Uint8Array, version: 4 | 6, mss: number): Uint8Array[] {
  const ip = ipHeader(frame);
  if (!ip || ip.version !== version) throw new FrameError(`TSO frame is not IPv${version}`);
  if (!Number.isInteger(mss) || mss < 1) throw new FrameError(`TSO segment size ${mss}`);
  const { l3 } = ip;
  let l4: number;
  if (version === 4) {
    if (frame.length < l3 + 20) throw new FrameError('TSO frame shorter than its IPv4 header');
    const ihl = (frame[l3] & 0x0f) * 4;
    if (ihl < 20 || frame[l3 + 9] !== IPPROTO_TCP) throw new FrameError('TSO frame is not TCP over IPv4');
    l4 = l3 + ihl;
  } else {
    if (frame.length < l3 + 40 || frame[l3 + 6] !== IPPROTO_TCP) throw new FrameError('TSO frame is not TCP over IPv6 (or has extension headers)');
    l4 = l3 + 40;
  }
  if (frame.length < l4 + 20) throw new FrameError('TSO frame shorter than its TCP header');
  const thl = (frame[l4 + 12] >> 4) * 4;
  const hdr = l4 + thl;
  if (thl < 20 || hdr > frame.length) throw new FrameError('TSO frame with a bad TCP header length');
  const payload = frame.length - hdr;
  const count = Math.max(1, Math.ceil(payload / mss));
  const seq0 = ((frame[l4 + 4] << 24) | (frame[l4 + 5] << 16) | (frame[l4 + 6] << 8) | frame[l4 + 7]) >>> 0;
  const id0 = version === 4 ? (frame[l3 + 4] << 8) | frame[l3 + 5] : 0;
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const from = hdr + i * mss;
    const n = Math.min(mss, frame.length - from);
    const seg = new Uint8Array(hdr + n);
    seg.set(frame.subarray(0, hdr));
    seg.set(frame.subarray(from, from + n), hdr);
    if (version === 4) {
      const total = seg.length - l3;
      const id = (id0 + i) & 0xffff;
      seg[l3 + 2] = total >> 8; seg[l3 + 3] = total & 0xff;
      seg[l3 + 4] = id >> 8; seg[l3 + 5] = id & 0xff;
      seg[l3 + 10] = 0; seg[l3 + 11] = 0;
      const c = foldComplement(sum16(seg, l3, l4 - l3));
      seg[l3 + 10] = c >> 8; seg[l3 + 11] = c & 0xff;
    } else {
      const plen = seg.length - l3 - 40;
      seg[l3 + 4] = plen >> 8; seg[l3 + 5] = plen & 0xff;
    }
    const seq = (seq0 + i * mss) >>> 0;
    seg[l4 + 4] = seq >>> 24; seg[l4 + 5] = (seq >>> 16) & 0xff; seg[l4 + 6] = (seq >>> 8) & 0xff; seg[l4 + 7] = seq & 0xff;
    if (i < count - 1) seg[l4 + 13] &= ~0x09; // FIN, PSH
    if (i > 0) seg[l4 + 13] &= ~0x80; // CWR
    seg[l4 + 16] = 0; seg[l4 + 17] = 0;
    const l4len = seg.length - l4;
    const c = foldComplement(sum16(seg, l4, l4len, pseudoHeaderSum(seg, l3, version, IPPROTO_TCP, l4len)));
    seg[l4 + 16] = c >> 8; seg[l4 + 17] = c & 0xff;
    out.push(seg);
  }
  return out;
}
