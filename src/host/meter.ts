/**
 * The daemon's metering of its VM processes: it feeds the durable ledger (metering.ts)
 * from the kernel's CPU accounting (cgroup or /proc), the clock (memory-seconds) and the
 * counters each VM process reports in `GET /status` (disk and network), and keeps a
 * short window of samples per VM for `top`'s rates. It knows nothing of VM lifecycles:
 * the supervisor (host.ts) tells it which process runs for which VM.
 */
import type { VmProcessStatus } from '../vmm/control-api.js';
import type { TopRow, UsageReport, VmInfo } from './api-types.js';
import type { CgroupDriver } from './cgroups.js';
import { ioTotals, runCpuSeconds, sampleRates, UsageLedger, type IoCounters, type UsageSample } from './metering.js';
import { processCpuSeconds } from './procfs.js';

/** How far back `top`'s rates look, ms. */
const SAMPLE_WINDOW_MS = 3000;

/** Metering of every VM of one daemon. */
export class HostMeter {
  /** The durable totals (`$TSVISOR_HOME/usage.json`). */
  readonly ledger: UsageLedger;
  private readonly samples = new Map<string, UsageSample[]>();

  /** @param path the ledger file; `cgroups` accounts CPU when the VMs run in cgroups. */
  constructor(path: string, private readonly cgroups: CgroupDriver) {
    this.ledger = new UsageLedger(path);
  }

  /** Account the CPU time of VM `name`'s process `pid` up to now (nothing if it is not the metered run). */
  sampleCpu(name: string, pid: number | undefined): void {
    const run = this.ledger.run(name);
    if (!run || !pid || run.pid !== pid) return;
    const cg = run.cgroupBaseNs !== null ? this.cgroups.usageNs(name) : undefined;
    const proc = run.cgroupBaseNs === null ? processCpuSeconds(pid) : undefined;
    this.ledger.sampleCpu(name, runCpuSeconds(run, cg, proc));
  }

  /** The disk and network counters of a VM process's status (summed over its disks and cards). */
  noteStatus(name: string, st: VmProcessStatus): void {
    const sum = (xs: unknown, f: (x: Record<string, unknown>) => unknown) => (Array.isArray(xs) ? xs.reduce((a: number, x) => a + (Number(f(x)) || 0), 0) : undefined);
    const io: Partial<IoCounters> = {
      diskReadBytes: sum(st.disks, (d) => d.readBytes),
      diskWrittenBytes: sum(st.disks, (d) => d.writtenBytes),
      netRxBytes: sum(st.nics, (n) => n.rxBytes),
      netTxBytes: sum(st.nics, (n) => n.txBytes),
      netRxPackets: sum(st.nics, (n) => n.rxPackets),
      netTxPackets: sum(st.nics, (n) => n.txPackets),
    };
    this.ledger.sampleIo(name, io);
  }

  /** One supervision tick of a running VM: CPU, memory-seconds, and a sample for the rates. */
  tick(name: string, pid: number, now = Date.now()): void {
    this.sampleCpu(name, pid);
    this.ledger.tickMemory(name);
    const u = this.ledger.get(name);
    let w = this.samples.get(name);
    if (!w) this.samples.set(name, w = []);
    w.push({ at: now, cpu: u.cpuSeconds, ...ioTotals(u) });
    while (w.length > 2 && now - w[0].at > SAMPLE_WINDOW_MS) w.shift();
  }

  /** A new process (or none): the rates start over. */
  resetRates(name: string): void {
    this.samples.delete(name);
  }

  /** The totals of VM `name` as `vm info` shows them. */
  totals(name: string): VmInfo['usage'] {
    const u = this.ledger.get(name);
    return { cpuSeconds: u.cpuSeconds, memoryGiBSeconds: u.memoryGiBSeconds, ...ioTotals(u) };
  }

  /**
   * The rate figures of one `top` row (CPU in % of one host core, I/O per second over the
   * last few seconds; zeros when `alive` is false) and the CPU seconds so far.
   */
  topFigures(name: string, alive: boolean): Pick<TopRow, 'cpuPercent' | 'diskReadBytesPerSec' | 'diskWrittenBytesPerSec' | 'netRxBytesPerSec' | 'netTxBytesPerSec' | 'netRxPacketsPerSec' | 'netTxPacketsPerSec' | 'cpuSeconds'> {
    const r = sampleRates(alive ? this.samples.get(name) ?? [] : []);
    return {
      cpuPercent: r.cpu,
      diskReadBytesPerSec: r.diskReadBytes, diskWrittenBytesPerSec: r.diskWrittenBytes,
      netRxBytesPerSec: r.netRxBytes, netTxBytesPerSec: r.netTxBytes,
      netRxPacketsPerSec: r.netRxPackets, netTxPacketsPerSec: r.netTxPackets,
      cpuSeconds: this.ledger.get(name).cpuSeconds,
    };
  }

  /** `GET /v1/usage`: every VM ever metered, the running ones (`running`: name → pid) sampled now. */
  usage(running: ReadonlyMap<string, number | undefined>): UsageReport {
    for (const [name, pid] of running) { this.sampleCpu(name, pid); this.ledger.tickMemory(name); }
    const all = this.ledger.all();
    return {
      at: Date.now(),
      vms: Object.keys(all).sort().map((name) => {
        const u = all[name];
        return { name, deleted: !!u.deleted, since: u.since, updatedAt: u.updatedAt, cpuSeconds: u.cpuSeconds, memoryGiBSeconds: u.memoryGiBSeconds, ...ioTotals(u) };
      }),
    };
  }
}
