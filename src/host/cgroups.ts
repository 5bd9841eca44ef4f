/**
 * CPU weight and cap of VM processes, enforced by the Linux kernel through cgroups.
 *
 * Each VM gets the cgroup `tsvisor/<name>`; the daemon writes the VM process's pid to its
 * `cgroup.procs`, which moves every thread of the process (and threads created later
 * stay there). Two kernel interfaces are supported:
 *
 * - cgroup v2 (a `cgroup2` file system with the `cpu` controller available at the root):
 *   `cpu.weight` = weight (1..10000, default 100), `cpu.max` = "QUOTA PERIOD" or
 *   "max PERIOD"; usage from `cpu.stat` `usage_usec`. The `cpu` controller is enabled in
 *   the `cgroup.subtree_control` of the root and of `tsvisor/`.
 *   (Documentation/admin-guide/cgroup-v2.rst, "CPU Interface Files")
 * - cgroup v1 (the `cpu` hierarchy, e.g. /sys/fs/cgroup/cpu): `cpu.shares` =
 *   weight × 1024 / 100, `cpu.cfs_period_us` = 100000 and `cpu.cfs_quota_us` = cap% of
 *   the period (-1: none); usage from the `cpuacct` hierarchy's `cpuacct.usage` (ns),
 *   which may be mounted together with `cpu` or apart.
 *   (Documentation/scheduler/sched-design-CFS.rst, sched-bwc.rst; cgroup-v1/cpuacct.rst)
 *
 * When neither is writable, {@link detectCgroups} returns a driver of version `none`
 * with a one-line warning; weights and caps are then recorded but not enforced.
 * Everything takes the cgroup root as a parameter, so tests run against a fake folder.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Which kernel interface enforces weights and caps. */
export type CgroupVersion = 'v2' | 'v1' | 'none';

/** The CFS period used for caps, in microseconds (the kernel's default). */
export const CFS_PERIOD_US = 100_000;

/** Folder below each hierarchy that holds the VMs' cgroups. */
export const CGROUP_PARENT = 'tsvisor';

/** v1 `cpu.shares` for a tsvisor weight (100 = 1024, the kernel's default; at least 2). */
export function weightToShares(weight: number): number {
  return Math.max(2, Math.round((weight * 1024) / 100));
}

/** The quota in µs per {@link CFS_PERIOD_US} for a cap in percent of one core; -1 for none (cap 0). */
export function capToQuotaUs(capPercent: number): number {
  if (!capPercent || capPercent <= 0) return -1;
  return Math.max(1000, Math.round((capPercent / 100) * CFS_PERIOD_US));
}

/** v2 `cpu.max` content for a cap in percent of one core. */
export function capToCpuMax(capPercent: number): string {
  const q = capToQuotaUs(capPercent);
  return `${q < 0 ? 'max' : q} ${CFS_PERIOD_US}`;
}

/** Per-VM cgroup operations. All methods throw on I/O errors; names are VM names. */
export interface CgroupDriver {
  readonly version: CgroupVersion;
  /** The cgroup file system root this driver works under. */
  readonly root: string;
  /** One line explaining why nothing is enforced (version `none`), else undefined. */
  readonly warning?: string;
  /** Create `tsvisor/<name>` (idempotent); returns its path (the cpu hierarchy's on v1). */
  create(name: string): string | undefined;
  /** Write the weight (1..10000) and cap (% of one core, 0 = none). */
  apply(name: string, cpuWeight: number, cpuCap: number): void;
  /** Move process `pid` (all its threads) into the VM's cgroup. */
  attach(name: string, pid: number): void;
  /** CPU time used by the cgroup's processes so far, in ns (undefined if unknown). */
  usageNs(name: string): number | undefined;
  /** Remove the VM's cgroup (only possible once empty); errors ignored. */
  remove(name: string): void;
  /** The cgroup path of VM `name` (for display), or undefined. */
  path(name: string): string | undefined;
}

class NoCgroups implements CgroupDriver {
  readonly version = 'none' as const;
  constructor(readonly root: string, readonly warning: string) {}
  create(): undefined { return undefined; }
  apply(): void { /* not enforced */ }
  attach(): void { /* not enforced */ }
  usageNs(): undefined { return undefined; }
  remove(): void { /* nothing */ }
  path(): undefined { return undefined; }
}

function readNumber(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

function rmdirQuiet(path: string): void {
  try { rmdirSync(path); } catch { /* busy or gone */ }
}

class V1Cgroups implements CgroupDriver {
  readonly version = 'v1' as const;
  /** cpuDir: the `cpu` hierarchy; acctDir: the `cpuacct` one (may be the same folder). */
  constructor(readonly root: string, private readonly cpuDir: string, private readonly acctDir: string | undefined) {}
  private dirs(name: string): string[] {
    const d = [join(this.cpuDir, CGROUP_PARENT, name)];
    if (this.acctDir && this.acctDir !== this.cpuDir) d.push(join(this.acctDir, CGROUP_PARENT, name));
    return d;
  }
  path(name: string): string { return join(this.cpuDir, CGROUP_PARENT, name); }
  create(name: string): string {
    for (const d of this.dirs(name)) mkdirSync(d, { recursive: true });
    return this.path(name);
  }
  apply(name: string, cpuWeight: number, cpuCap: number): void {
    const d = this.path(name);
    writeFileSync(join(d, 'cpu.shares'), `${weightToShares(cpuWeight)}\n`);
    writeFileSync(join(d, 'cpu.cfs_period_us'), `${CFS_PERIOD_US}\n`);
    writeFileSync(join(d, 'cpu.cfs_quota_us'), `${capToQuotaUs(cpuCap)}\n`);
  }
  attach(name: string, pid: number): void {
    for (const d of this.dirs(name)) writeFileSync(join(d, 'cgroup.procs'), `${pid}\n`);
  }
  usageNs(name: string): number | undefined {
    const acct = this.acctDir ?? this.cpuDir;
    return readNumber(join(acct, CGROUP_PARENT, name, 'cpuacct.usage'));
  }
  remove(name: string): void {
    for (const d of this.dirs(name)) rmdirQuiet(d);
  }
}

class V2Cgroups implements CgroupDriver {
  readonly version = 'v2' as const;
  constructor(readonly root: string) {}
  path(name: string): string { return join(this.root, CGROUP_PARENT, name); }
  create(name: string): string {
    const d = this.path(name);
    mkdirSync(d, { recursive: true });
    return d;
  }
  apply(name: string, cpuWeight: number, cpuCap: number): void {
    const d = this.path(name);
    writeFileSync(join(d, 'cpu.weight'), `${Math.round(cpuWeight)}\n`);
    writeFileSync(join(d, 'cpu.max'), `${capToCpuMax(cpuCap)}\n`);
  }
  attach(name: string, pid: number): void {
    writeFileSync(join(this.path(name), 'cgroup.procs'), `${pid}\n`);
  }
  usageNs(name: string): number | undefined {
    try {
      const m = /^usage_usec\s+(\d+)/m.exec(readFileSync(join(this.path(name), 'cpu.stat'), 'utf8'));
      return m ? Number(m[1]) * 1000 : undefined;
    } catch {
      return undefined;
    }
  }
  remove(name: string): void { rmdirQuiet(this.path(name)); }
}

function hasCpuController(controllersFile: string): boolean {
  try {
    return readFileSync(controllersFile, 'utf8').split(/\s+/).includes('cpu');
  } catch {
    return false;
  }
}

function tryV2(root: string): CgroupDriver | string {
  if (!existsSync(join(root, 'cgroup.controllers'))) return 'no cgroup2 file system';
  if (!hasCpuController(join(root, 'cgroup.controllers'))) return `cgroup2 at ${root} has no cpu controller`;
  const parent = join(root, CGROUP_PARENT);
  try {
    mkdirSync(parent, { recursive: true });
    // enable cpu for the children of the root and of tsvisor/ (already enabled: a no-op)
    if (!/\bcpu\b/.test(safeRead(join(root, 'cgroup.subtree_control')))) writeFileSync(join(root, 'cgroup.subtree_control'), '+cpu\n');
    if (!/\bcpu\b/.test(safeRead(join(parent, 'cgroup.subtree_control')))) writeFileSync(join(parent, 'cgroup.subtree_control'), '+cpu\n');
    return new V2Cgroups(root);
  } catch (e) {
    return `cgroup2 at ${root} is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
}

function safeRead(path: string): string {
  try { return readFileSync(path, 'utf8'); } catch { return ''; }
}

function tryV1(root: string): CgroupDriver | string {
  const cpuDir = [join(root, 'cpu'), join(root, 'cpu,cpuacct')].find((d) => existsSync(join(d, 'cpu.shares')));
  if (!cpuDir) return `no cgroup v1 cpu controller under ${root}`;
  const acctDir = [cpuDir, join(root, 'cpuacct'), join(root, 'cpu,cpuacct')].find((d) => existsSync(join(d, 'cpuacct.usage')));
  try {
    mkdirSync(join(cpuDir, CGROUP_PARENT), { recursive: true });
    if (acctDir && acctDir !== cpuDir) mkdirSync(join(acctDir, CGROUP_PARENT), { recursive: true });
    return new V1Cgroups(root, cpuDir, acctDir);
  } catch (e) {
    return `cgroup v1 cpu controller at ${cpuDir} is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
}

/**
 * Find a writable cgroup interface under `root` (default /sys/fs/cgroup): v2 first,
 * then v1. Creates the `tsvisor` parent cgroup. Never throws: returns a driver of
 * version `none` carrying a one-line warning when neither can be used.
 */
export function detectCgroups(root = '/sys/fs/cgroup'): CgroupDriver {
  const v2 = tryV2(root);
  if (typeof v2 !== 'string') return v2;
  const v1 = tryV1(root);
  if (typeof v1 !== 'string') return v1;
  return new NoCgroups(root, `CPU weight and cap are NOT enforced: no writable cgroup cpu controller (${v2}; ${v1})`);
}

/** A driver that enforces nothing, with `warning` (used when cgroups are switched off). */
export function noCgroups(root: string, warning: string): CgroupDriver {
  return new NoCgroups(root, warning);
}
