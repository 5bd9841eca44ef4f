/**
 * Reading a VM process's configuration: `<vmDir>/config.json`, a VmDefinition
 * (src/host/types.ts) written by the host daemon. The VM process reads only the part
 * of it that describes the machine ({@link VmProcessConfig}; every VmDefinition is
 * one, and `vmm/` does not import from the layer above it). Only that part is checked
 * here (the daemon validated the rest); a bad file is a VM failure.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { MAX_HARTS, MAX_RAM_BYTES } from '../engine/layout.js';
import { ENGINE_KINDS, type EngineKind } from '../engine/hart-state.js';
import { NETWORK_NAME_PATTERN, TAP_IFNAME_PATTERN, NetworkConfigError, checkNetRate, checkPublishList, parsePublish, formatPublish, type NicDefinition, type PublishedPort } from './network.js';
import { parseMac } from '../devices/net/frame.js';
import { SSH_USER_RE, checkSshPublicKey } from './guest-setup.js';
import { checkShareList, type ShareDefinition } from './shares.js';
import { displayOf } from './display.js';

/** The machine part of a VmDefinition (same field names and meaning). Sizes in bytes. */
export interface VmProcessConfig {
  /** Also the guest's host name. */
  name: string;
  /** vCPUs online in the guest. */
  vcpus: number;
  /** Harts in the device tree, at least `vcpus` (`vm set --cpus` goes up to it while the VM runs); absent: `vcpus`. */
  maxVcpus?: number;
  /** The memory the guest has (the balloon holds the rest of `maxMemoryBytes`). */
  memoryBytes: number;
  /** The RAM the guest boots with (its device tree), at least `memoryBytes`; absent: `memoryBytes`. */
  maxMemoryBytes?: number;
  /**
   * `dynamic`: the VM process moves the balloon by itself within [minMemoryBytes, the
   * ceiling the daemon grants] (vmm/memory-policy.ts), starting at `memoryBytes`;
   * absent: the memory moves only when asked (`vm set --memory`).
   */
  memoryPolicy?: 'dynamic';
  /** A dynamic VM's guarantee, from 64 MiB to `memoryBytes` (absent: see defaultMinMemory). */
  minMemoryBytes?: number;
  /** A dynamic VM's free memory above its working set, percent of it, 5..200 (absent: 20). */
  memoryBufferPercent?: number;
  disks: Array<{ path: string; readonly: boolean }>;
  /** ISO 9660 image in the CD-ROM drive (read-only). */
  cdrom?: string;
  /** Host folders shared into the guest (virtio-9p, vmm/shares.ts). */
  shares?: ShareDefinition[];
  /** Own kernel/initrd; absent = the default image. */
  kernel?: string;
  initrd?: string;
  /** Extra kernel command-line arguments. */
  append?: string;
  /**
   * The system image the VM was made from (`vm create --image`): its first disk is the
   * VM's own qcow2 overlay over the image's base disk, and `kernel` is the image's
   * firmware (S-mode U-Boot), which boots the guest's own /boot.
   */
  image?: { name: string; key: string };
  /** Network cards, in order (the guest's eth0, eth1, ...). Absent or empty: no network. */
  nics?: NicDefinition[];
  /** Host ports forwarded into the guest through its user-mode card (needs one `user` card). */
  publish?: PublishedPort[];
  /** Bandwidth cap of each card, Mbit/s each way (`--net-rate`); absent: none. */
  netRateMbit?: number;
  /** Disk I/O limits of the whole VM (all its disks together): requests/s (`--disk-iops`) and bytes/s (`--disk-bps`); absent: none. */
  diskIops?: number;
  diskBps?: number;
  /**
   * SSH access: at each boot the agent gives the guest user `user` (sudo, no password)
   * these public keys (OpenSSH lines); `vm ssh` logs in as it.
   */
  ssh?: { user: string; keys: string[] };
  /** How the harts run guest code: 'jit' (absent: the default) or 'interp'. */
  engine?: EngineKind;
  /** Graphics memory of the display, bytes (vmm/display.ts; absent: 16 MiB; 0: no display). */
  vramBytes?: number;
  /** The display's preferred mode, `WxH` (absent: 1280x800). */
  resolution?: string;
}

/** A configuration that cannot be booted. */
export class VmConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VmConfigError';
  }
}

/** Guest names: also host names and folder names. */
export const VM_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

const MIB = 1024 * 1024;
/** Smallest guest memory, at boot and while the VM runs (bytes): less does not boot Linux. */
export const MIN_MEMORY_BYTES = 64 * MIB;
/** Disks and network cards together a VM boots with (the board's CD-ROM drive, agent channel and balloon take slots of their own). */
export const MAX_DEVICES = 7;

/**
 * Checks the dynamic-memory fields of a definition whose startup memory is `memoryBytes`.
 * Returns the fields to keep (none for a static VM).
 * @throws VmConfigError (one line): an unknown policy, a minimum that is not whole MiB or
 *   outside 64 MiB..memoryBytes, a buffer outside 5..200 %, or either without `dynamic`.
 */
export function checkMemoryPolicy(policy: unknown, min: unknown, buffer: unknown, memoryBytes: number): Pick<VmProcessConfig, 'memoryPolicy' | 'minMemoryBytes' | 'memoryBufferPercent'> {
  const given = (x: unknown) => x !== undefined && x !== null;
  if (given(policy) && policy !== 'dynamic' && policy !== 'static') throw new VmConfigError(`memory policy ${JSON.stringify(policy)}: expected static or dynamic`);
  if (policy !== 'dynamic') {
    if (given(min) || given(buffer)) throw new VmConfigError('a minimum memory and a memory buffer need the dynamic memory policy (--memory-policy dynamic)');
    return {};
  }
  if (given(min) && (typeof min !== 'number' || !Number.isInteger(min) || min % MIB !== 0 || min < MIN_MEMORY_BYTES || min > memoryBytes)) {
    throw new VmConfigError(`minimum memory ${typeof min === 'number' ? `${Math.floor(min / MIB)} MiB` : JSON.stringify(min)}: expected whole MiB from 64 MiB to the memory (${memoryBytes / MIB} MiB)`);
  }
  if (given(buffer) && (typeof buffer !== 'number' || !Number.isInteger(buffer) || buffer < 5 || buffer > 200)) {
    throw new VmConfigError(`memory buffer ${JSON.stringify(buffer)}: expected a whole percentage from 5 to 200`);
  }
  return {
    memoryPolicy: 'dynamic',
    ...(given(min) ? { minMemoryBytes: min as number } : {}),
    ...(given(buffer) ? { memoryBufferPercent: buffer as number } : {}),
  };
}

/**
 * Checks `nics` and `publish` of a definition.
 * @throws VmConfigError (one line) for a bad MAC, an unknown kind, a bad or doubled port, or ports without a `user` card.
 */
export function checkNetworkConfig(nicsIn: unknown, publishIn: unknown): { nics: NicDefinition[]; publish: PublishedPort[] } {
  if (nicsIn !== undefined && nicsIn !== null && !Array.isArray(nicsIn)) throw new VmConfigError('nics must be an array');
  if (publishIn !== undefined && publishIn !== null && !Array.isArray(publishIn)) throw new VmConfigError('publish must be an array');
  const nics = ((nicsIn ?? []) as unknown[]).map((x, i): NicDefinition => {
    const n = x as { kind?: unknown; mac?: unknown; network?: unknown; ifname?: unknown } | null;
    if (!n || (n.kind !== 'user' && n.kind !== 'network' && n.kind !== 'tap')) throw new VmConfigError(`nics[${i}].kind must be "user", "network" or "tap"`);
    if (typeof n.mac !== 'string') throw new VmConfigError(`nics[${i}].mac must be a MAC address`);
    let mac: Uint8Array;
    try { mac = parseMac(n.mac); } catch (e) { throw new VmConfigError(`nics[${i}]: ${(e as Error).message}`); }
    if (mac[0] & 1) throw new VmConfigError(`nics[${i}].mac ${n.mac} is a multicast address`);
    if (n.kind === 'user') return { kind: 'user', mac: n.mac.toLowerCase() };
    if (n.kind === 'tap') {
      if (typeof n.ifname !== 'string' || !TAP_IFNAME_PATTERN.test(n.ifname)) throw new VmConfigError(`nics[${i}].ifname must be an interface name`);
      return { kind: 'tap', ifname: n.ifname, mac: n.mac.toLowerCase() };
    }
    if (typeof n.network !== 'string' || !NETWORK_NAME_PATTERN.test(n.network)) throw new VmConfigError(`nics[${i}].network must be a network name`);
    return { kind: 'network', network: n.network, mac: n.mac.toLowerCase() };
  });
  const publish = ((publishIn ?? []) as unknown[]).map((x, i): PublishedPort => {
    const p = x as Partial<PublishedPort> | null;
    try {
      if (!p || typeof p !== 'object') throw new NetworkConfigError('not an object');
      // round-trip through the parser: one set of rules for the CLI, the API and config files
      return parsePublish(formatPublish(p as PublishedPort));
    } catch (e) {
      throw new VmConfigError(`publish[${i}]: ${(e as Error).message}`);
    }
  });
  try { checkPublishList(publish); } catch (e) { throw new VmConfigError((e as Error).message); }
  if (publish.length > 0 && !nics.some((n) => n.kind === 'user')) throw new VmConfigError('published ports need a user-mode network card (--network user)');
  return { nics, publish };
}

/**
 * Check a parsed VmDefinition for what booting needs: name, vcpus (1..MAX_HARTS),
 * memoryBytes (whole MiB, 64 MiB..MAX_RAM_BYTES), disk/cdrom/kernel/initrd paths,
 * append. Relative paths are resolved against `baseDir`. Throws VmConfigError.
 */
export function checkVmConfig(v: unknown, baseDir: string): VmProcessConfig {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new VmConfigError('config is not a JSON object');
  const d = v as Record<string, unknown>;
  const str = (k: string): string | undefined => {
    const x = d[k];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'string' || !x) throw new VmConfigError(`${k} must be a non-empty string`);
    return x;
  };
  const path = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const name = str('name');
  if (!name || !VM_NAME_RE.test(name)) throw new VmConfigError(`name ${JSON.stringify(d.name)} is not a valid VM name ([a-z0-9][a-z0-9-]{0,62})`);
  const vcpus = d.vcpus;
  if (typeof vcpus !== 'number' || !Number.isInteger(vcpus) || vcpus < 1 || vcpus > MAX_HARTS) {
    throw new VmConfigError(`vcpus must be a whole number from 1 to ${MAX_HARTS}`);
  }
  const maxVcpus = d.maxVcpus;
  if (maxVcpus !== undefined && maxVcpus !== null && (typeof maxVcpus !== 'number' || !Number.isInteger(maxVcpus) || maxVcpus < vcpus || maxVcpus > MAX_HARTS)) {
    throw new VmConfigError(`maxVcpus must be a whole number from vcpus to ${MAX_HARTS}`);
  }
  const mem = d.memoryBytes;
  if (typeof mem !== 'number' || !Number.isInteger(mem) || mem % MIB !== 0 || mem < MIN_MEMORY_BYTES || mem > MAX_RAM_BYTES) {
    throw new VmConfigError(`memoryBytes must be a whole number of MiB from 64 MiB to ${Math.floor(MAX_RAM_BYTES / MIB)} MiB`);
  }
  const max = d.maxMemoryBytes;
  if (max !== undefined && max !== null) {
    if (typeof max !== 'number' || !Number.isInteger(max) || max % MIB !== 0 || max < mem || max > MAX_RAM_BYTES) {
      throw new VmConfigError(`maxMemoryBytes must be a whole number of MiB from memoryBytes to ${Math.floor(MAX_RAM_BYTES / MIB)} MiB`);
    }
  }
  const dyn = checkMemoryPolicy(d.memoryPolicy, d.minMemoryBytes, d.memoryBufferPercent, mem);
  const disksIn = d.disks ?? [];
  if (!Array.isArray(disksIn)) throw new VmConfigError('disks must be an array');
  const disks = disksIn.map((x: unknown, i) => {
    const e = x as { path?: unknown; readonly?: unknown } | null;
    if (!e || typeof e.path !== 'string' || !e.path) throw new VmConfigError(`disks[${i}].path must be a non-empty string`);
    if (e.readonly !== undefined && typeof e.readonly !== 'boolean') throw new VmConfigError(`disks[${i}].readonly must be a boolean`);
    return { path: path(e.path), readonly: e.readonly === true };
  });
  const cdrom = str('cdrom');
  let shares: ShareDefinition[];
  try { shares = checkShareList(d.shares, baseDir); } catch (e) { throw new VmConfigError((e as Error).message); }
  const kernel = str('kernel');
  const initrd = str('initrd');
  if (initrd && !kernel) throw new VmConfigError('initrd needs kernel (the default image brings its own)');
  const append = d.append === undefined || d.append === null ? undefined : d.append;
  if (append !== undefined && typeof append !== 'string') throw new VmConfigError('append must be a string');
  const { nics, publish } = checkNetworkConfig(d.nics, d.publish);
  if (disks.length + nics.length > MAX_DEVICES) {
    throw new VmConfigError(`at most ${MAX_DEVICES} disks and network cards together: ${disks.length} disks and ${nics.length} network cards asked`);
  }
  let netRateMbit: number | undefined;
  if (d.netRateMbit !== undefined && d.netRateMbit !== null) {
    try { netRateMbit = checkNetRate(d.netRateMbit) || undefined; } catch (e) { throw new VmConfigError(`netRateMbit: ${(e as Error).message}`); }
  }
  const diskIops = checkDiskLimit(d.diskIops, 'diskIops');
  const diskBps = checkDiskLimit(d.diskBps, 'diskBps');
  const ssh = checkSshConfig(d.ssh);
  if (d.engine !== undefined && d.engine !== null && !ENGINE_KINDS.includes(d.engine as EngineKind)) {
    throw new VmConfigError(`engine must be one of ${ENGINE_KINDS.join(', ')}`);
  }
  const engine = (d.engine ?? undefined) as EngineKind | undefined;
  const vramBytes = d.vramBytes === undefined || d.vramBytes === null ? undefined : d.vramBytes;
  const resolution = d.resolution === undefined || d.resolution === null ? undefined : d.resolution;
  if (vramBytes !== undefined && typeof vramBytes !== 'number') throw new VmConfigError('vramBytes must be a number');
  if (resolution !== undefined && typeof resolution !== 'string') throw new VmConfigError('resolution must be WIDTHxHEIGHT');
  try { displayOf(vramBytes as number | undefined, resolution as string | undefined); } catch (e) { throw new VmConfigError((e as Error).message); }
  let image: { name: string; key: string } | undefined;
  if (d.image !== undefined && d.image !== null) {
    const im = d.image as { name?: unknown; key?: unknown };
    if (typeof im !== 'object' || typeof im.name !== 'string' || typeof im.key !== 'string' || !/^[a-z0-9-]+$/.test(im.name) || !/^[0-9a-f]+$/.test(im.key)) {
      throw new VmConfigError('image must be { name, key }');
    }
    if (!kernel || disks.length === 0) throw new VmConfigError('a VM made from an image needs its firmware (kernel) and its system disk');
    image = { name: im.name, key: im.key };
  }
  return {
    ...(image ? { image } : {}),
    name, vcpus, memoryBytes: mem, disks,
    ...(typeof maxVcpus === 'number' && maxVcpus > vcpus ? { maxVcpus } : {}),
    ...(typeof max === 'number' && max > mem ? { maxMemoryBytes: max } : {}),
    ...dyn,
    cdrom: cdrom ? path(cdrom) : undefined,
    ...(shares.length ? { shares } : {}),
    kernel: kernel ? path(kernel) : undefined,
    initrd: initrd ? path(initrd) : undefined,
    append: append || undefined,
    ...(nics.length ? { nics } : {}),
    ...(publish.length ? { publish } : {}),
    ...(netRateMbit ? { netRateMbit } : {}),
    ...(diskIops ? { diskIops } : {}),
    ...(diskBps ? { diskBps } : {}),
    ...(ssh ? { ssh } : {}),
    ...(engine ? { engine } : {}),
    ...(vramBytes !== undefined ? { vramBytes: vramBytes as number } : {}),
    ...(resolution !== undefined ? { resolution: resolution as string } : {}),
  };
}

/** Largest disk limit accepted (operations or bytes per second). */
export const MAX_DISK_LIMIT = 2 ** 40;

/**
 * Checks a disk I/O limit (`diskIops` or `diskBps`): a whole number from 0 (none) to
 * MAX_DISK_LIMIT per second; absent or null: none (0).
 * @throws VmConfigError
 */
export function checkDiskLimit(v: unknown, what: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_DISK_LIMIT) throw new VmConfigError(`${what} must be a whole number per second from 0 (no limit) to ${MAX_DISK_LIMIT}`);
  return v;
}

/**
 * Checks the `ssh` field of a definition: `{ user, keys }` with a valid user name and
 * 1..32 OpenSSH public key lines. Absent or null: none.
 * @throws VmConfigError
 */
export function checkSshConfig(v: unknown): { user: string; keys: string[] } | undefined {
  if (v === undefined || v === null) return undefined;
  const s = v as { user?: unknown; keys?: unknown };
  if (typeof s !== 'object' || typeof s.user !== 'string' || !SSH_USER_RE.test(s.user)) throw new VmConfigError('ssh.user must be a user name ([a-z][a-z0-9_-]{0,31})');
  if (!Array.isArray(s.keys) || s.keys.length === 0 || s.keys.length > 32) throw new VmConfigError('ssh.keys must be 1 to 32 public keys');
  const keys = s.keys.map((k, i) => {
    if (typeof k !== 'string') throw new VmConfigError(`ssh.keys[${i}] must be a string`);
    try { return checkSshPublicKey(k); } catch (e) { throw new VmConfigError(`ssh.keys[${i}]: ${(e as Error).message}`); }
  });
  return { user: s.user, keys };
}

/** Read and check `<vmDir>/config.json`. Throws VmConfigError. */
export function readVmConfig(vmDir: string): VmProcessConfig {
  const file = resolve(vmDir, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new VmConfigError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let v: unknown;
  try { v = JSON.parse(text); } catch (e) { throw new VmConfigError(`${file}: not JSON: ${(e as Error).message}`); }
  return checkVmConfig(v, resolve(vmDir));
}

/** Files of a VM process's folder (their roles: see main.ts). */
export interface VmDirPaths {
  dir: string;
  config: string;
  sock: string;
  pid: string;
  consoleLog: string;
  log: string;
  exit: string;
}

/** The files of `vmDir`, absolute. */
export function vmDirPaths(vmDir: string): VmDirPaths {
  const dir = resolve(vmDir);
  return {
    dir,
    config: join(dir, 'config.json'),
    sock: join(dir, 'vm.sock'),
    pid: join(dir, 'vm.pid'),
    consoleLog: join(dir, 'console.log'),
    log: join(dir, 'vm.log'),
    exit: join(dir, 'vm.exit'),
  };
}
