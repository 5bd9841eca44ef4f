/**
 * The VM registry on disk: one folder per VM under `$TSVISOR_HOME/vms/`, holding its
 * definition (`config.json`) and the daemon's runtime record (`state.json`), both
 * written atomically. Validation happens before anything is written, so a refused
 * request leaves the disk as it was.
 */
import { checkShareDirs, checkShareList } from '../vmm/shares.js';
import { displayOf } from '../vmm/display.js';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isAbsolute } from 'node:path';
import { MAX_HARTS, MAX_RAM_BYTES } from '../engine/layout.js';
import { readJsonFile, writeJsonAtomic } from '../vmm/atomic.js';
import { HostError } from './errors.js';
import { vmPaths, type VmPaths } from './paths.js';
import type { RestartPolicy, VmDefinition, VmState } from './types.js';
import { MAX_DEVICES, MIN_MEMORY_BYTES, VmConfigError, checkDiskLimit, checkMemoryPolicy, checkNetworkConfig, checkSshConfig } from '../vmm/vm-config.js';
import { NetworkConfigError, checkNetRate, networkDefinition, type NicDefinition, type PublishedPort } from '../vmm/network.js';

/** Allowed VM names: also the guest's host name. */
export const VM_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Default CPU weight (as cgroup v2's default). */
export const DEFAULT_CPU_WEIGHT = 100;
/** Restart policies. */
export const RESTART_POLICIES: readonly RestartPolicy[] = ['no', 'on-failure', 'always'];

/** How a VM process ended. */
export interface VmExit {
  at: number;
  /** Exit status, or null (killed by a signal, or not known: the daemon was not its parent). */
  code: number | null;
  signal: string | null;
  /** `poweroff`: the guest powered off; `requested`: stop/kill by the user; `crash`: anything else. */
  reason: 'poweroff' | 'requested' | 'crash';
}

/** The daemon's runtime record of a VM (`state.json`). */
export interface VmRuntime {
  state: VmState;
  pid?: number;
  /** /proc starttime of the process, to tell it from a later process with the same pid. */
  starttime?: number;
  startedAt?: number;
  /** RAM promised to the running process (the definition may have changed since); a dynamic VM's current memory. */
  memoryBytes?: number;
  /** A dynamic VM's ceiling: the most it may take now without asking (see host/memory-balancer.ts). */
  ceilingBytes?: number;
  lastExit?: VmExit;
  /** Automatic restarts done by the restart policy so far. */
  restarts: number;
  /** Consecutive runs that ended within 30 s of their start (the restart backoff's step). */
  shortRuns?: number;
}

/** Check a VM name; throws HostError('invalid_argument'). */
export function checkVmName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !VM_NAME_RE.test(name)) {
    throw new HostError('invalid_argument', `invalid VM name ${JSON.stringify(name)}: use 1-63 of a-z, 0-9 and -, starting with a letter or digit`);
  }
}

function checkFile(path: string, what: string): void {
  if (!isAbsolute(path)) throw new HostError('invalid_argument', `${what} ${path}: must be an absolute path`);
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new HostError('invalid_argument', `${what} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
  }
  if (!st.isFile() && !st.isBlockDevice()) throw new HostError('invalid_argument', `${what} ${path}: not a regular file`);
}

/**
 * Validate a complete definition (ranges, and that the files it names exist).
 * Throws HostError('invalid_argument') naming the first problem.
 */
export function validateDefinition(d: VmDefinition, opts: { checkFiles?: boolean; cores?: number } = {}): void {
  checkVmName(d.name);
  const cores = opts.cores ?? availableParallelism();
  const bad = (m: string) => { throw new HostError('invalid_argument', m); };
  if (!Number.isInteger(d.vcpus) || d.vcpus < 1 || d.vcpus > MAX_HARTS) bad(`vcpus ${d.vcpus}: expected a whole number from 1 to ${MAX_HARTS}`);
  if (!Number.isInteger(d.memoryBytes) || d.memoryBytes <= 0) bad(`memory ${d.memoryBytes}: must be a positive number of bytes`);
  if (d.memoryBytes % (1024 * 1024) !== 0) bad(`memory ${d.memoryBytes}: must be a whole number of MiB`);
  if (d.memoryBytes < MIN_MEMORY_BYTES) bad(`memory ${d.memoryBytes}: at least 64 MiB is needed to boot Linux`);
  if (d.memoryBytes > MAX_RAM_BYTES) bad(`memory ${d.memoryBytes}: at most ${MAX_RAM_BYTES - (MAX_RAM_BYTES % (1024 * 1024))} bytes per VM`);
  try {
    checkMemoryPolicy(d.memoryPolicy, d.minMemoryBytes, d.memoryBufferPercent, d.memoryBytes);
  } catch (e) {
    bad((e as Error).message);
  }
  if (d.memoryPriority !== undefined && (d.memoryPolicy !== 'dynamic' || !Number.isInteger(d.memoryPriority) || d.memoryPriority < 0 || d.memoryPriority > 100)) {
    bad(d.memoryPolicy !== 'dynamic' ? 'a memory priority needs the dynamic memory policy (--memory-policy dynamic)' : `memory priority ${d.memoryPriority}: expected 0..100`);
  }
  if (d.diskWeight !== undefined && (!Number.isInteger(d.diskWeight) || d.diskWeight < 1 || d.diskWeight > 10000)) bad(`disk weight ${d.diskWeight}: expected 1..10000`);
  try {
    checkDiskLimit(d.diskIops, 'disk iops');
    checkDiskLimit(d.diskBps, 'disk bps');
  } catch (e) {
    bad((e as Error).message);
  }
  if (d.maxVcpus !== undefined && (!Number.isInteger(d.maxVcpus) || d.maxVcpus < d.vcpus || d.maxVcpus > MAX_HARTS)) {
    bad(`max vcpus ${d.maxVcpus}: expected a whole number from the vcpus (${d.vcpus}) to ${MAX_HARTS}`);
  }
  if (d.maxMemoryBytes !== undefined) {
    const max = d.maxMemoryBytes;
    if (!Number.isInteger(max) || max % (1024 * 1024) !== 0) bad(`max memory ${max}: must be a whole number of MiB`);
    if (max < d.memoryBytes) bad(`memory ${d.memoryBytes / (1024 * 1024)} MiB is above the max memory ${max / (1024 * 1024)} MiB`);
    if (max > MAX_RAM_BYTES) bad(`max memory ${max}: at most ${MAX_RAM_BYTES - (MAX_RAM_BYTES % (1024 * 1024))} bytes per VM`);
  }
  if (!Number.isInteger(d.cpuWeight) || d.cpuWeight < 1 || d.cpuWeight > 10000) bad(`cpuWeight ${d.cpuWeight}: expected 1..10000`);
  if (!Number.isInteger(d.cpuCap) || d.cpuCap < 0 || d.cpuCap > 100 * cores) bad(`cpuCap ${d.cpuCap}: expected 0 (none) or 1..${100 * cores} (% of one core)`);
  if (!RESTART_POLICIES.includes(d.restart)) bad(`restart ${JSON.stringify(d.restart)}: expected one of ${RESTART_POLICIES.join(', ')}`);
  if (!Array.isArray(d.disks)) bad('disks must be an array');
  try {
    checkNetworkConfig(d.nics, d.publish);
  } catch (e) {
    bad((e as VmConfigError).message);
  }
  try {
    const ssh = checkSshConfig(d.ssh);
    if (ssh && !d.nics?.some((n) => n.kind === 'user')) bad('SSH access needs a user-mode network card (--network user)');
  } catch (e) {
    bad((e as Error).message);
  }
  if (d.netRateMbit !== undefined) {
    try { checkNetRate(d.netRateMbit); } catch (e) { bad((e as Error).message); }
  }
  try {
    displayOf(d.vramBytes, d.resolution);
  } catch (e) {
    bad((e as Error).message);
  }
  try {
    checkShareList(d.shares, '/');
    if (d.shares?.some((s) => !s.path.startsWith('/'))) bad('shared folders need absolute paths');
    if (opts.checkFiles !== false) checkShareDirs(d.shares ?? []);
  } catch (e) {
    bad((e as Error).message);
  }
  const devices = d.disks.length + (d.nics?.length ?? 0);
  if (devices > MAX_DEVICES) bad(`at most ${MAX_DEVICES} disks and network cards together, not ${devices}`);
  if (d.initrd && !d.kernel) bad('initrd needs kernel (the default image brings its own)');
  if (opts.checkFiles !== false) {
    d.disks.forEach((disk, i) => checkFile(disk.path, `disk ${i}`));
    if (d.cdrom) checkFile(d.cdrom, 'cdrom');
    if (d.kernel) checkFile(d.kernel, 'kernel');
    if (d.initrd) checkFile(d.initrd, 'initrd');
  }
}

/**
 * The `nics` and `publish` of a definition from the API's `networks` and `publish` (see
 * {@link networkDefinition}); empty lists are left out.
 * @throws HostError('invalid_argument') with the one-line reason.
 */
export function networkFields(vmName: string, networks: readonly string[] | undefined, publish: readonly string[] | undefined): { nics?: NicDefinition[]; publish?: PublishedPort[] } {
  try {
    const n = networkDefinition(vmName, networks, publish);
    return { ...(n.nics.length ? { nics: n.nics } : {}), ...(n.publish.length ? { publish: n.publish } : {}) };
  } catch (e) {
    if (e instanceof NetworkConfigError) throw new HostError('invalid_argument', e.message);
    throw e;
  }
}

/** The durable VM registry under `vmsDir`. */
export class VmStore {
  constructor(readonly vmsDir: string) {}

  /** Files of VM `name`. */
  paths(name: string): VmPaths { return vmPaths(this.vmsDir, name); }

  /** Names of all defined VMs (folders with a config.json), sorted. */
  names(): string[] {
    let entries: string[];
    try {
      entries = readdirSync(this.vmsDir);
    } catch {
      return [];
    }
    return entries.filter((n) => VM_NAME_RE.test(n) && existsSync(this.paths(n).config)).sort();
  }

  /** Whether VM `name` is defined. */
  has(name: string): boolean { return VM_NAME_RE.test(name) && existsSync(this.paths(name).config); }

  /** The definition of `name`, or undefined. */
  load(name: string): VmDefinition | undefined {
    return VM_NAME_RE.test(name) ? readJsonFile<VmDefinition>(this.paths(name).config) : undefined;
  }

  /** The runtime record of `name` (a fresh `stopped` one if none). */
  loadRuntime(name: string): VmRuntime {
    const r = readJsonFile<VmRuntime>(this.paths(name).state);
    return r && typeof r.state === 'string' ? { ...r, restarts: r.restarts ?? 0 } : { state: 'stopped', restarts: 0 };
  }

  /** Create VM `def` (already validated). Throws HostError('already_exists'). */
  create(def: VmDefinition): void {
    const p = this.paths(def.name);
    if (existsSync(p.config)) throw new HostError('already_exists', `VM ${def.name} already exists`);
    mkdirSync(p.dir, { recursive: true, mode: 0o700 });
    writeJsonAtomic(p.state, { state: 'stopped', restarts: 0 } satisfies VmRuntime);
    writeJsonAtomic(p.config, def); // last: its presence makes the VM exist
  }

  /** Replace the definition of an existing VM. */
  saveDefinition(def: VmDefinition): void { writeJsonAtomic(this.paths(def.name).config, def); }

  /** Persist the runtime record. */
  saveRuntime(name: string, rt: VmRuntime): void {
    if (!existsSync(this.paths(name).dir)) return;
    writeJsonAtomic(this.paths(name).state, rt);
  }

  /** Remove VM `name`'s folder (definition first, so a crash midway leaves no half VM). */
  remove(name: string): void {
    const p = this.paths(name);
    rmSync(p.config, { force: true });
    rmSync(p.dir, { recursive: true, force: true });
  }
}
