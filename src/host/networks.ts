/**
 * Virtual networks between the VMs of one host (`tsvisor network create|list|delete`):
 * their definitions on disk, `$TSVISOR_HOME/networks/<name>.json` (written atomically),
 * holding the name, the IPv4 subnet and the DHCP leases (MAC -> address), so that a VM
 * keeps its address across restarts of the VM and of the daemon.
 *
 * In each subnet the first address is the network's own (DHCP and DNS server, see
 * switch.ts); VMs get the following ones.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile, writeJsonAtomic } from '../vmm/atomic.js';
import { HostError } from './errors.js';

/** Network names: also DNS domains of the network (`web.lan`). */
export const NETWORK_NAME_RE = /^[a-z][a-z0-9-]{0,30}$/;
/** Names `--network` gives other meanings. */
const RESERVED = new Set(['user', 'none', 'tap', 'host', 'default']);
/** Where automatic subnets are taken from: 10.97.0.0/24, 10.97.1.0/24, ... */
const AUTO_BASE = (10 << 24) | (97 << 16);

/** A network as stored and as the API shows it. */
export interface NetworkDefinition {
  name: string;
  /** IPv4 subnet in CIDR notation, e.g. `10.97.0.0/24`. */
  subnet: string;
  createdAt: number;
  /** DHCP leases: MAC (`aa:bb:..`) -> IPv4 address. */
  leases: Record<string, string>;
}

/** An IPv4 subnet: network address (u32) and prefix length. */
export interface Subnet { base: number; prefix: number }

/** `a.b.c.d` -> u32. @throws HostError for anything else. */
export function parseIpv4(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m || m.slice(1).some((x) => Number(x) > 255)) throw new HostError('invalid_argument', `${JSON.stringify(s)} is not an IPv4 address`);
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

/** u32 -> `a.b.c.d`. */
export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/**
 * Parses `a.b.c.d/n` with n in 16..29 (room for the network's own address and at least
 * four VMs; at most 65534 addresses) and host bits zero.
 * @throws HostError('invalid_argument').
 */
export function parseSubnet(s: string): Subnet {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(s.trim());
  if (!m) throw new HostError('invalid_argument', `subnet ${JSON.stringify(s)}: expected CIDR notation, e.g. 10.97.0.0/24`);
  const prefix = Number(m[2]);
  if (prefix < 16 || prefix > 29) throw new HostError('invalid_argument', `subnet ${s}: the prefix length must be 16 to 29`);
  const base = parseIpv4(m[1]);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if ((base & ~mask) >>> 0 !== 0) throw new HostError('invalid_argument', `subnet ${s}: host bits are set (did you mean ${formatIpv4((base & mask) >>> 0)}/${prefix}?)`);
  return { base, prefix };
}

/** Netmask of `prefix` as u32. */
export function prefixMask(prefix: number): number {
  return (0xffffffff << (32 - prefix)) >>> 0;
}

/** Whether two subnets share an address. */
function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & prefixMask(p)) >>> 0) === ((b.base & prefixMask(p)) >>> 0);
}

/** The network definitions under `dir` (`$TSVISOR_HOME/networks`). */
export class NetworkStore {
  constructor(readonly dir: string) {}

  private file(name: string): string { return join(this.dir, `${name}.json`); }

  /** All networks, sorted by name. */
  list(): NetworkDefinition[] {
    let names: string[];
    try { names = readdirSync(this.dir); } catch { return []; }
    return names.filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).filter((n) => NETWORK_NAME_RE.test(n)).sort()
      .map((n) => this.get(n)).filter((d): d is NetworkDefinition => d !== undefined);
  }

  /** One network, or undefined. */
  get(name: string): NetworkDefinition | undefined {
    if (!NETWORK_NAME_RE.test(name)) return undefined;
    const d = readJsonFile<NetworkDefinition>(this.file(name));
    if (!d || typeof d.subnet !== 'string') return undefined;
    return { name, subnet: d.subnet, createdAt: d.createdAt ?? 0, leases: d.leases && typeof d.leases === 'object' ? d.leases : {} };
  }

  /**
   * Defines network `name` with `subnet` (default: the first free 10.97.N.0/24).
   * @throws HostError: invalid_argument (bad or reserved name, bad subnet, overlapping another network's), already_exists.
   */
  create(name: string, subnet?: string): NetworkDefinition {
    if (!NETWORK_NAME_RE.test(name)) throw new HostError('invalid_argument', `invalid network name ${JSON.stringify(name)}: use 1-31 of a-z, 0-9 and -, starting with a letter`);
    if (RESERVED.has(name)) throw new HostError('invalid_argument', `network name "${name}" is reserved`);
    if (existsSync(this.file(name))) throw new HostError('already_exists', `network ${name} already exists`);
    const others = this.list();
    let net: Subnet;
    if (subnet !== undefined) {
      net = parseSubnet(subnet);
      const clash = others.find((o) => overlaps(net, parseSubnet(o.subnet)));
      if (clash) throw new HostError('invalid_argument', `subnet ${subnet} overlaps network ${clash.name} (${clash.subnet})`);
    } else {
      let n = 0;
      for (;;) {
        net = { base: (AUTO_BASE + (n << 8)) >>> 0, prefix: 24 };
        const candidate = net;
        if (!others.some((o) => overlaps(candidate, parseSubnet(o.subnet)))) break;
        if (++n > 255) throw new HostError('invalid_argument', 'no free subnet in 10.97.0.0/16: give one with --subnet');
      }
    }
    const def: NetworkDefinition = { name, subnet: `${formatIpv4(net.base)}/${net.prefix}`, createdAt: Date.now(), leases: {} };
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeJsonAtomic(this.file(name), def);
    return def;
  }

  /** Replaces the leases of `name`. */
  saveLeases(name: string, leases: Record<string, string>): void {
    const d = this.get(name);
    if (d) writeJsonAtomic(this.file(name), { ...d, leases });
  }

  /** Removes network `name`. @throws HostError('not_found'). */
  delete(name: string): void {
    if (!this.get(name)) throw new HostError('not_found', `no network ${name}`);
    rmSync(this.file(name), { force: true });
  }
}
