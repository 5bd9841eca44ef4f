/**
 * Metering: what each VM used, kept durably in `$TSVISOR_HOME/usage.json`.
 *
 * - CPU-seconds: the kernel's accounting of the VM process. With a cgroup, the process's
 *   own user+system time when it was moved into its cgroup (/proc/<pid>/stat) plus the
 *   cgroup's usage since then (cpuacct.usage / cpu.stat usage_usec), which also counts
 *   the last moments of a process that has exited; without one, /proc/<pid>/stat alone.
 * - Memory-seconds: GiB·s of RAM promised to the VM while its process is alive.
 * - Disk bytes read and written, network bytes and frames received and sent, from the VM
 *   process's `GET /status` (summed over its disks and cards).
 *
 * The counters the kernel and the VM process report restart at 0 with each VM process
 * ("run"), so the ledger keeps, per VM, the run's last sample and adds only increases.
 * The run record is persisted with the totals: a daemon that restarts and re-adopts a
 * running VM continues where it left off, without counting anything twice.
 */
import { readJsonFile, writeJsonAtomic } from '../vmm/atomic.js';

const GIB = 1024 ** 3;

/**
 * The cumulative I/O counters a VM process reports, summed over its disks and network
 * cards: bytes, and network frames ("packets"); `rx` is what the guest received.
 */
export interface IoCounters {
  diskReadBytes: number;
  diskWrittenBytes: number;
  netRxBytes: number;
  netTxBytes: number;
  netRxPackets: number;
  netTxPackets: number;
}

/** The fields of {@link IoCounters}. */
export const IO_COUNTERS: ReadonlyArray<keyof IoCounters> = ['diskReadBytes', 'diskWrittenBytes', 'netRxBytes', 'netTxBytes', 'netRxPackets', 'netTxPackets'];

/** The {@link IoCounters} fields of `u` alone. */
export function ioTotals(u: IoCounters): IoCounters {
  return {
    diskReadBytes: u.diskReadBytes, diskWrittenBytes: u.diskWrittenBytes,
    netRxBytes: u.netRxBytes, netTxBytes: u.netTxBytes, netRxPackets: u.netRxPackets, netTxPackets: u.netTxPackets,
  };
}

function zeroIo(): IoCounters {
  return { diskReadBytes: 0, diskWrittenBytes: 0, netRxBytes: 0, netTxBytes: 0, netRxPackets: 0, netTxPackets: 0 };
}

/** The sampling state of one VM process. */
export interface RunMeter {
  pid: number;
  /** /proc starttime of the process (identifies it across pid reuse). */
  starttime: number;
  memoryBytes: number;
  /** Process CPU seconds when it was moved into its cgroup (0 without cgroup). */
  cpuBaseSeconds: number;
  /** Cgroup usage (ns) when the process was moved into it; null: no cgroup accounting. */
  cgroupBaseNs: number | null;
  /** Last cumulative values seen for this run. */
  lastCpuSeconds: number;
  lastIo: IoCounters;
  /** When memory-seconds were last accumulated (ms since the epoch). */
  lastMemoryAt: number;
}

/** Totals of one VM (`GET /v1/usage`). */
export interface VmUsage extends IoCounters {
  cpuSeconds: number;
  memoryGiBSeconds: number;
  /** First and last accounting time (ms since the epoch). */
  since: number;
  updatedAt: number;
  /** The VM has been deleted; its totals are kept. */
  deleted?: boolean;
  /** The live process being sampled, if any. */
  run?: RunMeter;
}

interface LedgerFile { version: 1; vms: Record<string, VmUsage> }

/**
 * The CPU seconds of a run so far: `cpuBase + (cgroupNow − cgroupBase)` when the run is
 * accounted by a cgroup and `cgroupNowNs` is known, else `procNowSeconds`, else the last value.
 */
export function runCpuSeconds(run: RunMeter, cgroupNowNs: number | undefined, procNowSeconds: number | undefined): number {
  if (run.cgroupBaseNs !== null && cgroupNowNs !== undefined && cgroupNowNs >= run.cgroupBaseNs) {
    return run.cpuBaseSeconds + (cgroupNowNs - run.cgroupBaseNs) / 1e9;
  }
  if (run.cgroupBaseNs === null && procNowSeconds !== undefined) return procNowSeconds;
  return run.lastCpuSeconds;
}

/** The metering ledger. Not thread-safe; one per daemon. */
export class UsageLedger {
  private vms: Record<string, VmUsage> = {};
  private dirty = false;

  /** A ledger persisted at `path` (loaded now if it exists); `now` is the clock (ms). */
  constructor(readonly path: string, private readonly now: () => number = Date.now) {
    const f = readJsonFile<LedgerFile>(path);
    if (f && f.version === 1 && f.vms && typeof f.vms === 'object') {
      this.vms = f.vms;
      for (const u of Object.values(this.vms)) upgradeEntry(u);
    }
  }

  private entry(name: string): VmUsage {
    let u = this.vms[name];
    if (!u) {
      const t = this.now();
      u = this.vms[name] = { cpuSeconds: 0, memoryGiBSeconds: 0, ...zeroIo(), since: t, updatedAt: t };
      this.dirty = true;
    }
    return u;
  }

  /** The current run of VM `name`, if one is being metered. */
  run(name: string): RunMeter | undefined { return this.vms[name]?.run; }

  /**
   * A new VM process: start metering it. If a run of the same process (pid and
   * starttime) is already recorded (daemon restarted), it is kept.
   */
  beginRun(name: string, r: { pid: number; starttime: number; memoryBytes: number; cpuBaseSeconds: number; cgroupBaseNs: number | null }): RunMeter {
    const u = this.entry(name);
    delete u.deleted;
    if (u.run && u.run.pid === r.pid && u.run.starttime === r.starttime) return u.run;
    if (u.run) this.endRun(name);
    u.run = {
      ...r, lastCpuSeconds: r.cgroupBaseNs === null ? 0 : r.cpuBaseSeconds,
      lastIo: zeroIo(), lastMemoryAt: this.now(),
    };
    // CPU used before the move into the cgroup counts too
    u.cpuSeconds += u.run.lastCpuSeconds;
    u.updatedAt = this.now();
    this.dirty = true;
    return u.run;
  }

  /** The run's cumulative CPU seconds are now `cpuSeconds`: add the increase. */
  sampleCpu(name: string, cpuSeconds: number): void {
    const u = this.vms[name];
    if (!u?.run) return;
    const d = cpuSeconds - u.run.lastCpuSeconds;
    if (d > 0) {
      u.cpuSeconds += d;
      u.run.lastCpuSeconds = cpuSeconds;
      u.updatedAt = this.now();
      this.dirty = true;
    }
  }

  /** The run's cumulative I/O counters are now `io` (fields left out: unchanged): add the increases. */
  sampleIo(name: string, io: Partial<IoCounters>): void {
    const u = this.vms[name];
    if (!u?.run) return;
    let changed = false;
    for (const k of IO_COUNTERS) {
      const v = io[k];
      if (v === undefined) continue;
      const d = v - u.run.lastIo[k];
      if (d > 0) { u[k] += d; u.run.lastIo[k] = v; changed = true; }
    }
    if (changed) { u.updatedAt = this.now(); this.dirty = true; }
  }

  /** The running VM's memory changed to `bytes` (`vm set --memory`): memory-seconds count it from now on. */
  setRunMemory(name: string, bytes: number): void {
    const u = this.vms[name];
    if (!u?.run) return;
    this.tickMemory(name);
    u.run.memoryBytes = bytes;
    this.dirty = true;
  }

  /** Accumulate memory-seconds of the run up to now (or up to `until`, ms since the epoch). */
  tickMemory(name: string, until?: number): void {
    const u = this.vms[name];
    if (!u?.run) return;
    const t = until === undefined ? this.now() : Math.min(until, this.now());
    const dt = (t - u.run.lastMemoryAt) / 1000;
    if (dt > 0) {
      u.memoryGiBSeconds += (u.run.memoryBytes / GIB) * dt;
      u.run.lastMemoryAt = t;
      u.updatedAt = t;
      this.dirty = true;
    }
  }

  /**
   * The VM process is gone: account memory up to `endedAt` (ms since the epoch; default
   * now, e.g. the time the process recorded in vm.exit when no daemon saw it end) and stop
   * metering it.
   */
  endRun(name: string, endedAt?: number): void {
    const u = this.vms[name];
    if (!u?.run) return;
    this.tickMemory(name, endedAt);
    delete u.run;
    u.updatedAt = this.now();
    this.dirty = true;
  }

  /** The VM was deleted: keep its totals, flagged. */
  markDeleted(name: string): void {
    const u = this.vms[name];
    if (!u) return;
    this.endRun(name);
    u.deleted = true;
    this.dirty = true;
  }

  /** Totals of VM `name` (zeros if never metered). */
  get(name: string): VmUsage {
    const u = this.vms[name];
    if (u) return u;
    const t = this.now();
    return { cpuSeconds: 0, memoryGiBSeconds: 0, ...zeroIo(), since: t, updatedAt: t };
  }

  /** All VMs' totals, by name. */
  all(): Record<string, VmUsage> { return this.vms; }

  /** Write the ledger if it changed (atomically). */
  flush(force = false): void {
    if (!this.dirty && !force) return;
    writeJsonAtomic(this.path, { version: 1, vms: this.vms } satisfies LedgerFile);
    this.dirty = false;
  }
}

/** A VM's cumulative counters at one moment (for `top`'s rates). */
export interface UsageSample extends IoCounters {
  /** ms since the epoch */
  at: number;
  /** CPU seconds used so far */
  cpu: number;
}

/**
 * Rates between the first and last of `samples` (oldest first): CPU in percent of one
 * host core, each I/O counter per second. Zero with fewer than two samples.
 */
export function sampleRates(samples: readonly UsageSample[]): { cpu: number } & IoCounters {
  const r = { cpu: 0, ...zeroIo() };
  if (samples.length < 2) return r;
  const a = samples[0];
  const b = samples[samples.length - 1];
  const dt = (b.at - a.at) / 1000;
  if (dt <= 0) return r;
  r.cpu = Math.max(0, ((b.cpu - a.cpu) / dt) * 100);
  for (const k of IO_COUNTERS) r[k] = Math.max(0, (b[k] - a[k]) / dt);
  return r;
}

/** A ledger entry from an older file: counters it did not have read 0. */
function upgradeEntry(u: VmUsage): void {
  for (const k of IO_COUNTERS) if (typeof u[k] !== 'number') u[k] = 0;
  const run = u.run as (RunMeter & { lastDiskReadBytes?: number; lastDiskWrittenBytes?: number }) | undefined;
  if (run && !run.lastIo) {
    run.lastIo = { ...zeroIo(), diskReadBytes: run.lastDiskReadBytes ?? 0, diskWrittenBytes: run.lastDiskWrittenBytes ?? 0 };
    delete run.lastDiskReadBytes;
    delete run.lastDiskWrittenBytes;
  }
}
