/**
 * The daemon's reports, computed from its records: the host (`GET /v1/host`), one VM
 * (`GET /v1/vms/{name}`), live rates (`GET /v1/top`) and metering totals (`GET /v1/usage`).
 * Sizes in bytes, times in ms since the epoch.
 */
import { guaranteedBytes } from './memory-balancer.js';
import { join } from 'node:path';
import type { MemoryBudget, HostCapacity } from './admission.js';
import type { CgroupDriver } from './cgroups.js';
import type { HostMeter } from './meter.js';
import type { VmStore } from './store.js';
import { processRssBytes } from './procfs.js';
import { ALIVE, type Entry } from './entry.js';
import { vncAddress } from './vm-process.js';
import type { HostInfo, TopRow, UsageReport, VmInfo } from './api-types.js';

/** What the reports are computed from (the Host's state at one moment). */
export interface ReportSources {
  entries: ReadonlyMap<string, Entry>;
  capacity: HostCapacity;
  overcommit: number;
  budget: MemoryBudget;
  cgroups: CgroupDriver;
  meter: HostMeter;
  store: VmStore;
  /** The tsvisor home folder. */
  home: string;
  /** When the daemon started. */
  startedAt: number;
}

/** `GET /v1/host`: capacity, allocation, policy, cgroup support and warnings. */
export function hostInfo(src: ReportSources): HostInfo {
  let running = 0;
  let vcpus = 0;
  for (const e of src.entries.values()) {
    if (ALIVE.includes(e.rt.state)) { running++; vcpus += e.def.vcpus; }
  }
  const warning = src.cgroups.warning ?? null;
  return {
    cores: src.capacity.cores,
    memoryBytes: src.capacity.memoryBytes,
    overcommit: src.overcommit,
    memory: src.budget,
    vcpusAllocated: vcpus,
    vms: { defined: src.entries.size, running },
    cgroup: { version: src.cgroups.version, root: src.cgroups.root, warning },
    warnings: warning ? [warning] : [],
    daemon: { pid: process.pid, startedAt: src.startedAt, home: src.home },
  };
}

/** One VM as the API shows it. */
export function vmInfo(src: ReportSources, name: string, e: Entry): VmInfo {
  const alive = ALIVE.includes(e.rt.state);
  return {
    name,
    state: e.rt.state,
    definition: e.def,
    pid: alive ? e.rt.pid ?? null : null,
    startedAt: alive ? e.rt.startedAt ?? null : null,
    uptimeSeconds: alive && e.rt.startedAt ? Math.max(0, (Date.now() - e.rt.startedAt) / 1000) : null,
    allocatedMemoryBytes: alive ? e.rt.memoryBytes ?? e.def.memoryBytes : 0,
    restarts: e.rt.restarts,
    lastExit: e.rt.lastExit ?? null,
    cgroup: alive && src.cgroups.version !== 'none' ? src.cgroups.path(name) ?? null : null,
    guest: alive && e.guest ? { state: e.guest.state, agent: e.guest.agent } : null,
    memory: alive ? e.guest?.memory ?? null : null,
    cdrom: alive ? e.guest?.cdrom ?? null : null,
    display: alive && e.guest?.display ? { mode: e.guest.display.mode, vnc: e.guest.display.vncPort ? vncAddress(e.guest.display.vncPort) : null, viewers: e.guest.display.viewers } : null,
    diskShare: alive && e.guest?.disk && (e.guest.disk.share.iops || e.guest.disk.share.bps) ? e.guest.disk.share : null,
    ssh: e.def.ssh ? {
      user: e.def.ssh.user,
      host: '127.0.0.1',
      port: alive ? e.guest?.ssh?.port ?? null : null,
      ready: alive && !!e.guest?.ssh?.ready,
      ...(alive && e.guest?.ssh?.error ? { error: e.guest.ssh.error } : {}),
      knownHostsFile: join(src.store.paths(name).dir, 'known_hosts'),
    } : null,
    usage: src.meter.totals(name),
    log: src.store.paths(name).log,
  };
}

/** `GET /v1/usage`: metering totals per VM (running VMs sampled now). */
export function usageReport(src: ReportSources): UsageReport {
  const running = new Map<string, number | undefined>();
  for (const [name, e] of src.entries) if (ALIVE.includes(e.rt.state)) running.set(name, e.rt.pid);
  return src.meter.usage(running);
}

/** `GET /v1/top`: live CPU %, memory, disk and network rates per VM, sorted by name. */
export function topRows(src: ReportSources): TopRow[] {
  return [...src.entries.keys()].sort().map((name) => {
    const e = src.entries.get(name)!;
    const alive = ALIVE.includes(e.rt.state);
    return {
      name, state: e.rt.state, pid: alive ? e.rt.pid ?? null : null, vcpus: e.def.vcpus,
      memoryBytes: alive ? e.rt.memoryBytes ?? e.def.memoryBytes : 0,
      guaranteedMemoryBytes: alive ? guaranteedBytes(e) : 0,
      maxMemoryBytes: e.guest?.memory?.maxBytes ?? e.def.maxMemoryBytes ?? e.def.memoryBytes,
      guestAvailableBytes: alive ? e.guest?.memory?.guest?.availableBytes ?? null : null,
      rssBytes: alive && e.rt.pid ? processRssBytes(e.rt.pid) ?? null : null,
      ...src.meter.topFigures(name, alive),
    };
  });
}
