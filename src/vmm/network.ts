/**
 * How a VM is attached to networks: its network cards (one per attachment), the MAC
 * address of each, and the host ports published into the guest. Shared by the VM process,
 * `tsvisor run` and the host daemon (which validates definitions with these functions).
 */
import { createHash } from 'node:crypto';
import { isIP, createServer } from 'node:net';

/**
 * A host port forwarded into the guest, as Docker's `-p [HOST_IP:]HOST_PORT:GUEST_PORT[/udp]`.
 * `hostIp` absent means every host address.
 */
export interface PublishedPort {
  hostIp?: string;
  hostPort: number;
  guestPort: number;
  protocol: 'tcp' | 'udp';
}

/**
 * One network card: `user` is user-mode NAT through a per-VM `passt` (no root needed;
 * the only kind that can publish ports); `network` a port on a virtual network.
 */
export type NicDefinition =
  | { kind: 'user'; /** `aa:bb:cc:dd:ee:ff`. */ mac: string }
  /** A port on the host daemon's virtual network `network` (`tsvisor network create`). */
  | { kind: 'network'; mac: string; network: string }
  /** The host's existing tap device `ifname` (`--network tap:IFNAME`). */
  | { kind: 'tap'; mac: string; ifname: string };

/** Tap interface names (Linux IFNAMSIZ: 15 characters). */
export const TAP_IFNAME_PATTERN = /^[A-Za-z0-9_.-]{1,15}$/;

/** How the user names a card's attachment: `user`, a virtual network's name, or `tap:IFNAME`. */
export function nicAttachment(n: NicDefinition): string {
  return n.kind === 'user' ? 'user' : n.kind === 'tap' ? `tap:${n.ifname}` : n.network;
}

/** Virtual network names (host/networks.ts checks them in full). */
export const NETWORK_NAME_PATTERN = /^[a-z][a-z0-9-]{0,30}$/;

/** A bad network setting (one line, for the user). */
export class NetworkConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkConfigError';
  }
}

function port(s: string, what: string, spec: string): number {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) {
    throw new NetworkConfigError(`--publish ${spec}: ${what} ${JSON.stringify(s)} is not a port number (1-65535)`);
  }
  return Number(s);
}

/**
 * Parses `[HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp]` (an IPv6 host address in brackets:
 * `[::1]:8080:80`).
 * @throws NetworkConfigError naming the part that is wrong.
 */
export function parsePublish(spec: string): PublishedPort {
  let rest = spec.trim();
  let protocol: 'tcp' | 'udp' = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1).toLowerCase();
    if (p !== 'tcp' && p !== 'udp') throw new NetworkConfigError(`--publish ${spec}: protocol ${JSON.stringify(p)} is not tcp or udp`);
    protocol = p;
    rest = rest.slice(0, slash);
  }
  let hostIp: string | undefined;
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(rest);
  if (v6) {
    hostIp = v6[1];
    rest = v6[2];
  }
  const parts = rest.split(':');
  if (!v6 && parts.length === 3) hostIp = parts.shift();
  if (parts.length !== 2) throw new NetworkConfigError(`--publish ${spec}: expected [HOST_IP:]HOST_PORT:GUEST_PORT[/udp], e.g. 8080:80`);
  if (hostIp !== undefined && isIP(hostIp) === 0) throw new NetworkConfigError(`--publish ${spec}: ${JSON.stringify(hostIp)} is not an IP address`);
  return { ...(hostIp !== undefined ? { hostIp } : {}), hostPort: port(parts[0], 'host port', spec), guestPort: port(parts[1], 'guest port', spec), protocol };
}

/** The `--publish` spelling of `p`. */
export function formatPublish(p: PublishedPort): string {
  const ip = p.hostIp === undefined ? '' : isIP(p.hostIp) === 6 ? `[${p.hostIp}]:` : `${p.hostIp}:`;
  return `${ip}${p.hostPort}:${p.guestPort}${p.protocol === 'udp' ? '/udp' : ''}`;
}

/**
 * Checks a list of published ports for duplicates (the same host address, port and protocol twice).
 * @throws NetworkConfigError.
 */
export function checkPublishList(ports: readonly PublishedPort[]): void {
  ports.forEach((a, i) => {
    for (const b of ports.slice(0, i)) {
      if (a.hostPort === b.hostPort && a.protocol === b.protocol && (!a.hostIp || !b.hostIp || a.hostIp === b.hostIp)) {
        throw new NetworkConfigError(`host port ${a.hostPort}/${a.protocol} is published twice`);
      }
    }
  });
}

/**
 * The MAC address of network card `index` of VM `name`: QEMU's/libvirt's prefix 52:54:00 and
 * three bytes of SHA-256 of the name and index, so it is stable across restarts and hosts.
 */
export function defaultMac(name: string, index: number): string {
  const h = createHash('sha256').update(`${name}/${index}`).digest();
  return ['52', '54', '00', ...[h[0], h[1], h[2]].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/**
 * Checks that every published TCP host port can be bound now (a UDP port is checked the
 * same way with a datagram socket), so that a conflict is reported before the VM starts.
 * @throws NetworkConfigError naming the first port in use.
 */
export async function checkPortsFree(ports: readonly PublishedPort[]): Promise<void> {
  const { createSocket } = await import('node:dgram');
  for (const p of ports) {
    const where = `${p.hostIp ? `${p.hostIp}:` : ''}${p.hostPort}/${p.protocol}`;
    await new Promise<void>((resolve, reject) => {
      const fail = (e: NodeJS.ErrnoException) => reject(new NetworkConfigError(
        e.code === 'EADDRINUSE' ? `host port ${where} is already in use` :
          e.code === 'EACCES' ? `host port ${where}: permission denied (ports below 1024 need privileges)` :
            e.code === 'EADDRNOTAVAIL' ? `host address ${p.hostIp} is not an address of this host` : `host port ${where}: ${e.message}`));
      if (p.protocol === 'tcp') {
        const s = createServer();
        s.once('error', fail);
        s.listen({ port: p.hostPort, host: p.hostIp, exclusive: true }, () => s.close(() => resolve()));
      } else {
        const s = createSocket(p.hostIp && isIP(p.hostIp) === 6 ? 'udp6' : p.hostIp ? 'udp4' : 'udp6');
        s.once('error', fail);
        s.bind({ port: p.hostPort, address: p.hostIp, exclusive: true }, () => s.close(() => resolve()));
      }
    });
  }
}

/** A TCP port on 127.0.0.1 that is free now (the kernel's choice). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * The cards and published ports of VM `vmName` from the user's words: `networks` as
 * `--network` gives them (`user`, a virtual network's name, `tap:IFNAME`, or `none` alone;
 * default one `user` card) and
 * `publish` as `--publish` gives them. MACs come from {@link defaultMac}.
 * @throws NetworkConfigError (one line) for an unknown network, `none` with others, a bad
 *   or doubled port, or ports without a `user` card.
 */
export function networkDefinition(vmName: string, networks: readonly string[] | undefined, publishSpecs: readonly string[] | undefined): { nics: NicDefinition[]; publish: PublishedPort[] } {
  const names = networks && networks.length > 0 ? networks : ['user'];
  const publish = (publishSpecs ?? []).map(parsePublish);
  checkPublishList(publish);
  if (names.includes('none')) {
    if (names.length > 1) throw new NetworkConfigError('network "none" cannot be combined with other networks');
    if (publish.length) throw new NetworkConfigError('--publish needs a network card: not with network "none"');
    return { nics: [], publish };
  }
  const nics = names.map((n, i): NicDefinition => {
    if (n === 'user') return { kind: 'user', mac: defaultMac(vmName, i) };
    if (n.startsWith('tap:')) {
      const ifname = n.slice(4);
      if (!TAP_IFNAME_PATTERN.test(ifname)) throw new NetworkConfigError(`--network ${n}: not an interface name (1-15 of A-Z a-z 0-9 _ . -)`);
      return { kind: 'tap', ifname, mac: defaultMac(vmName, i) };
    }
    if (!NETWORK_NAME_PATTERN.test(n)) throw new NetworkConfigError(`unknown network ${JSON.stringify(n)}: give "user" (NAT through passt), "none", tap:IFNAME (an existing tap device), or the name of a network (tsvisor network list)`);
    return { kind: 'network', network: n, mac: defaultMac(vmName, i) };
  });
  const virtual = names.filter((n) => n !== 'user');
  if (new Set(virtual).size !== virtual.length) throw new NetworkConfigError('a VM can have one card on each virtual network and tap device');
  return { nics, publish };
}

/** Highest bandwidth cap accepted, Mbit/s (100 Gbit/s). */
export const MAX_NET_RATE_MBIT = 100_000;

/**
 * Checks a bandwidth cap (`--net-rate MBIT`): a number of Mbit/s (10^6 bit/s) each way,
 * more than 0 and at most {@link MAX_NET_RATE_MBIT}; 0 means no cap. Returns it.
 * @throws NetworkConfigError naming the value.
 */
export function checkNetRate(v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > MAX_NET_RATE_MBIT) {
    throw new NetworkConfigError(`network rate ${JSON.stringify(v)} must be a number of Mbit/s from 0 (no cap) to ${MAX_NET_RATE_MBIT}`);
  }
  return v;
}

/**
 * Parses `--net-rate`'s argument: a number of Mbit/s (`100`, `2.5`); `0` or `none` removes
 * the cap. @throws NetworkConfigError
 */
export function parseNetRate(s: string): number {
  const t = s.trim().toLowerCase();
  if (t === 'none' || t === 'off') return 0;
  if (!/^\d+(\.\d+)?$/.test(t)) throw new NetworkConfigError(`--net-rate ${s}: give a number of Mbit/s (for example 100), or none`);
  return checkNetRate(Number(t));
}
