/**
 * The learning switch of one virtual network (`tsvisor network create`), run by the host
 * daemon. Each VM card on the network is a port: a Unix-socket stream from its VM process
 * with the same framing as passt's (4-byte big-endian length, then the frame). Port
 * security as OpenStack does it: a frame whose source MAC is not its port's card's MAC is
 * dropped (spoofing), so the forwarding table is exactly the ports' MACs. Broadcast and
 * multicast frames are flooded to the other ports under storm control (a token bucket per
 * port), and a port whose VM does not read fast enough loses frames instead of holding up
 * the others. Frames for the network's own address go to its services (net-services.ts).
 * Every drop is counted per port.
 */
import { createHash } from 'node:crypto';
import { promises as dnsPromises } from 'node:dns';
import type { Duplex } from 'node:stream';
import { StreamNetBackend } from '../devices/node/stream-net.js';
import { ETH_HLEN, MAX_FRAME_BYTES, formatMac, isMulticastMac } from '../devices/net/frame.js';
import { serve, serviceAddress } from './net-services.js';
import { formatIpv4, parseIpv4, parseSubnet, prefixMask, type NetworkDefinition, type Subnet } from './networks.js';

/** Bytes a port may have waiting for its VM before frames to it are dropped. */
const PORT_QUEUE_BYTES = 4 * 1024 * 1024;
/** Storm control: broadcast/multicast frames per second a port may send, and the burst. */
const FLOOD_RATE = 500;
const FLOOD_BURST = 1000;

/** Counters of one port (from the VM = rx, to the VM = tx). */
export interface SwitchPortStats {
  vm: string;
  mac: string;
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** Frames from the VM with another source MAC. */
  droppedSpoofed: number;
  /** Broadcast/multicast frames over the storm-control rate. */
  droppedFlood: number;
  /** Frames to the VM dropped because it did not read fast enough. */
  droppedCongested: number;
  /** Frames from the VM to a MAC not on the network, runts, oversize. */
  droppedOther: number;
}

interface Port {
  vm: string;
  mac: string;
  backend: StreamNetBackend;
  stats: SwitchPortStats;
  tokens: number;
  refilledAt: number;
}

/** One network's switch and services. */
export class VirtualSwitch {
  /** The network's own MAC (services): locally administered, from the network name. */
  readonly mac: Uint8Array;
  readonly subnet: Subnet;
  private readonly ports = new Set<Port>();
  private readonly byMac = new Map<string, Port>();
  private leases: Map<string, number>;

  /**
   * @param saveLeases called with all leases (MAC -> address) when one was added.
   */
  constructor(readonly def: NetworkDefinition, private readonly opts: { saveLeases: (leases: Record<string, string>) => void; log: (line: string) => void }) {
    this.subnet = parseSubnet(def.subnet);
    const h = createHash('sha256').update(`tsvisor-network/${def.name}`).digest();
    this.mac = Uint8Array.from([0x02, 0x54, 0x00, h[0], h[1], h[2]]);
    this.leases = new Map(Object.entries(def.leases).map(([m, ip]) => [m, parseIpv4(ip)]));
  }

  /**
   * Connects the card `mac` of VM `vm` through `stream` (after the VM process's hello was
   * checked). A second connection for the same MAC replaces the first (the VM process
   * reconnected).
   */
  attach(stream: Duplex, vm: string, mac: string): void {
    const old = this.byMac.get(mac);
    if (old) this.detach(old, 'replaced by a new connection');
    const port: Port = {
      vm, mac, tokens: FLOOD_BURST, refilledAt: performance.now(),
      stats: { vm, mac, rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, droppedSpoofed: 0, droppedFlood: 0, droppedCongested: 0, droppedOther: 0 },
      backend: new StreamNetBackend(stream, { onError: (m) => this.detach(port, m) }),
    };
    this.ports.add(port);
    this.byMac.set(mac, port);
    port.backend.attach({ receive: (f) => { this.forward(port, f); return true; }, writable: () => {} });
    this.opts.log(`network ${this.def.name}: ${vm} (${mac}) connected`);
  }

  private detach(port: Port, why: string): void {
    if (!this.ports.delete(port)) return;
    if (this.byMac.get(port.mac) === port) this.byMac.delete(port.mac);
    port.backend.close();
    this.opts.log(`network ${this.def.name}: ${port.vm} (${port.mac}) left: ${why}`);
  }

  /** Per-port counters of the connected ports. */
  stats(): SwitchPortStats[] {
    return [...this.ports].map((p) => ({ ...p.stats }));
  }

  /** Disconnects every port. */
  close(): void {
    for (const p of [...this.ports]) this.detach(p, 'the network is closing');
  }

  /** The lease of `mac`, made if needed (the lowest free address after the service address); null when the subnet is full. */
  lease(mac: string): number | null {
    const have = this.leases.get(mac);
    if (have !== undefined) return have;
    const used = new Set(this.leases.values());
    const first = serviceAddress(this.subnet) + 1;
    const last = (this.subnet.base | ~prefixMask(this.subnet.prefix)) >>> 0; // broadcast
    for (let a = first; a < last; a++) {
      if (used.has(a >>> 0)) continue;
      this.leases.set(mac, a >>> 0);
      this.opts.saveLeases(Object.fromEntries([...this.leases].map(([m, ip]) => [m, formatIpv4(ip)])));
      this.opts.log(`network ${this.def.name}: leased ${formatIpv4(a >>> 0)} to ${mac}`);
      return a >>> 0;
    }
    return null;
  }

  /** The address of a connected VM called `name`. */
  addressOf(name: string): number | null {
    for (const p of this.ports) if (p.vm === name) return this.leases.get(p.mac) ?? null;
    return null;
  }

  private forward(from: Port, frame: Uint8Array): void {
    if (frame.length < ETH_HLEN || frame.length > MAX_FRAME_BYTES) { from.stats.droppedOther++; return; }
    if (formatMac(frame, 6) !== from.mac) { from.stats.droppedSpoofed++; return; }
    from.stats.rxFrames++;
    from.stats.rxBytes += frame.length;
    if (isMulticastMac(frame)) {
      if (!this.takeFloodToken(from)) { from.stats.droppedFlood++; return; }
      this.answer(from, frame);
      for (const p of this.ports) if (p !== from) this.deliver(p, frame);
      return;
    }
    const dst = formatMac(frame, 0);
    if (dst === formatMac(this.mac)) { this.answer(from, frame); return; }
    const to = this.byMac.get(dst);
    if (!to || to === from) { from.stats.droppedOther++; return; }
    this.deliver(to, frame);
  }

  private answer(to: Port, frame: Uint8Array): void {
    const replies = serve({
      name: this.def.name, subnet: this.subnet, mac: this.mac, lease: (m) => this.lease(m), addressOf: (n) => this.addressOf(n),
      resolveUpstream: (name, type) => resolveHost(name, type),
    }, frame);
    for (const r of replies) {
      if (r instanceof Promise) void r.then((f) => { if (f && this.ports.has(to)) this.deliver(to, f); });
      else this.deliver(to, r);
    }
  }

  private deliver(to: Port, frame: Uint8Array): void {
    if (to.backend.queuedBytes > PORT_QUEUE_BYTES) { to.stats.droppedCongested++; return; }
    to.stats.txFrames++;
    to.stats.txBytes += frame.length;
    to.backend.send(frame);
  }

  private takeFloodToken(p: Port): boolean {
    const now = performance.now();
    p.tokens = Math.min(FLOOD_BURST, p.tokens + ((now - p.refilledAt) / 1000) * FLOOD_RATE);
    p.refilledAt = now;
    if (p.tokens < 1) return false;
    p.tokens--;
    return true;
  }
}

/** At most this many host-resolver lookups run at once (a guest flooding queries waits, then gets SERVFAIL). */
const MAX_LOOKUPS = 32;
let lookups = 0;

/** A or AAAA records of `name` from the host's resolver; null for a name that does not exist. */
async function resolveHost(name: string, type: 'A' | 'AAAA'): Promise<string[] | null> {
  if (lookups >= MAX_LOOKUPS) throw new Error('too many lookups');
  lookups++;
  try {
    return type === 'A' ? await dnsPromises.resolve4(name) : await dnsPromises.resolve6(name);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA') return code === 'ENODATA' ? [] : null;
    throw e;
  } finally {
    lookups--;
  }
}
