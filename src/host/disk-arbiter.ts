/**
 * Fair disk I/O between VMs (`--disk-weight`), as cgroup io.weight is for processes: while
 * VMs contend for the host disk, each gets requests and bytes per second in proportion to
 * its weight; while they do not, nobody is held back. The kernel's own proportional I/O
 * (BFQ, io.cost) needs cgroup v2 and a scheduler most hosts do not run, so the daemon
 * shares the disk itself, through each VM process's token buckets
 * (src/devices/io-limiter.ts), with io.latency's signal:
 *
 *   - every few seconds it reads what each running VM's disks did since the last time:
 *     requests and bytes per second, its busy fraction (the time a request was being
 *     served or waited for tokens, over the time that passed) and the time a request took
 *     to be served on average (its latency);
 *   - a VM busy at least {@link BACKLOG_FRACTION} of the time wants more than it gets: it
 *     is backlogged. The disk is contended when two or more VMs are backlogged and one of
 *     them is slowed: its latency is above {@link SLOWED_FACTOR} times its baseline (the
 *     lowest it had lately, forgotten slowly), so it waits for the others' requests;
 *   - contended, the requests and the bytes the backlogged VMs got together are divided
 *     among them by weight, and a VM that used more than its part is held to it, with
 *     {@link SHARE_HEADROOM} (`POST /disk-share`); a round of a few long requests (fewer
 *     than {@link MIN_SHARE} a VM: flushes) leaves the shares as they are;
 *   - no longer contended, a share is relaxed by {@link SHARE_RELAX} each round and taken
 *     off once the VM no longer reaches it, so the VMs find the disk's room again.
 *
 * Work-conserving: a VM is only held while another is slowed by it. A VM slow on its own
 * holds nobody back: when it stays as slow although the others were held for a round, its
 * latency becomes its baseline.
 */
import { ALIVE, type Entry } from './entry.js';
import type { IoLimits } from '../devices/io-limiter.js';

/** `--disk-weight` when not given (cgroup io.weight's default). */
export const DEFAULT_DISK_WEIGHT = 100;
/** Busy fraction from which a VM counts as backlogged. */
export const BACKLOG_FRACTION = 0.5;
/** A VM is slowed when its latency is this many times its baseline. */
export const SLOWED_FACTOR = 2;
/** A share is this much above the part a VM got, so that the total can grow. */
export const SHARE_HEADROOM = 1.15;
/** An uncontended round multiplies a share by this. */
export const SHARE_RELAX = 1.5;
/** Shares never go below these (requests/s, bytes/s): a held VM still makes progress. */
export const MIN_SHARE: IoLimits = { iops: 10, bps: 256 * 1024 };
/** Per round, a baseline latency may rise by this factor toward the latency seen (slow forgetting). */
export const BASELINE_DRIFT = 1.05;
/**
 * A slowed VM whose latency fell by less than this factor's complement while the others
 * were held is slow on its own (see {@link DiskArbiter.rebalance}).
 */
export const NO_RELIEF = 0.8;
/** A share changes only when it moves by more than this fraction (fewer control requests). */
const SHARE_HYSTERESIS = 0.1;

/** One running VM's disk use over the last interval, and its share now. */
export interface DiskUse {
  name: string;
  weight: number;
  /** Requests per second and bytes per second. */
  iops: number;
  bps: number;
  /** Busy time over the interval (0..1, a little more with several disks). */
  busy: number;
  /** Mean time to serve a request in the interval, and the VM's baseline (ms; 0: no request yet). */
  latencyMs: number;
  baselineMs: number;
  /** The share it is held to now (null: none). */
  share: IoLimits | null;
}

/** Whether `v` is slowed (see the file comment). */
export function isSlowed(v: DiskUse): boolean {
  return v.busy >= BACKLOG_FRACTION && v.baselineMs > 0 && v.latencyMs > SLOWED_FACTOR * v.baselineMs;
}

/**
 * The share of each VM for the next interval (see the file comment): null for none.
 * @returns a map from every VM in `vms` to its share or null.
 */
export function planDiskShares(vms: ReadonlyArray<DiskUse>): Map<string, IoLimits | null> {
  const out = new Map<string, IoLimits | null>();
  const backlogged = vms.filter((v) => v.busy >= BACKLOG_FRACTION);
  const contended = backlogged.length >= 2 && backlogged.some(isSlowed);
  if (!contended) {
    // relax: a share grows, and goes once the VM no longer reaches it
    for (const v of vms) {
      const s = v.share;
      const relax = (limit: number, used: number) => (limit === 0 || limit * SHARE_RELAX > 2 * used ? 0 : Math.round(limit * SHARE_RELAX));
      const next = s ? { iops: relax(s.iops, v.iops), bps: relax(s.bps, v.bps) } : null;
      out.set(v.name, next && (next.iops || next.bps) ? next : null);
    }
    return out;
  }
  const weights = backlogged.reduce((sum, v) => sum + v.weight, 0);
  const total = { iops: backlogged.reduce((sum, v) => sum + v.iops, 0), bps: backlogged.reduce((sum, v) => sum + v.bps, 0) };
  if (total.iops < MIN_SHARE.iops * backlogged.length) {
    // a round spent in a few long requests (a flush of much written data) says nothing of the parts: keep the shares
    for (const v of vms) out.set(v.name, v.share);
    return out;
  }
  for (const v of vms) {
    if (v.busy < BACKLOG_FRACTION) { out.set(v.name, null); continue; }
    const hold = (k: 'iops' | 'bps') => {
      const part = (total[k] * v.weight) / weights;
      return v[k] > part * 1.0001 ? Math.max(MIN_SHARE[k], Math.round(part * SHARE_HEADROOM)) : 0;
    };
    const share = { iops: hold('iops'), bps: hold('bps') };
    out.set(v.name, share.iops || share.bps ? share : null);
  }
  return out;
}

/** Whether `next` differs enough from `prev` to be sent. */
function shareChanged(prev: IoLimits | null, next: IoLimits | null): boolean {
  if (!prev || !next) return prev !== next;
  const moved = (a: number, b: number) => (a === 0) !== (b === 0) || Math.abs(a - b) > SHARE_HYSTERESIS * Math.max(a, b);
  return moved(prev.iops, next.iops) || moved(prev.bps, next.bps);
}

/** A running VM's disk meter as its process reports it (control-api.ts `diskRate`). */
export interface DiskMeter {
  ops: number;
  bytes: number;
  serviceMs: number;
  waitMs: number;
  share: IoLimits;
}

/** What the arbiter needs from the daemon. */
export interface ArbiterHost {
  readonly entries: ReadonlyMap<string, Entry>;
  /** `POST path` on VM `name`'s control channel; rejects on failure. */
  post(name: string, path: string, body: unknown): Promise<unknown>;
  log(message: string): void;
}

/** Shares the host disk among the running VMs; see the file comment. */
export class DiskArbiter {
  /** The last meter reading of each VM, with its process and time, and its baseline latency (ms). */
  private readonly last = new Map<string, { pid: number; at: number; meter: DiskMeter; baselineMs: number }>();
  /** The latency (ms) of each VM that was slowed in the last round. */
  private readonly slowedMs = new Map<string, number>();
  private busy = false;

  constructor(private readonly host: ArbiterHost) {}

  /**
   * One round: the use of each running VM since the last round (from the statuses its
   * process sent, in `Entry.guest.disk`), the shares, and a `POST /disk-share` to each VM
   * whose share changed. Rounds never overlap.
   */
  async rebalance(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const uses: DiskUse[] = [];
      const current = new Map<string, IoLimits | null>();
      for (const [name, e] of this.host.entries) {
        const m = e.guest?.disk;
        const pid = e.rt.pid;
        if (e.rt.state !== 'running' || !m || !pid) { this.last.delete(name); continue; }
        const at = e.guest!.at;
        const prev = this.last.get(name);
        const share = m.share.iops || m.share.bps ? m.share : null;
        current.set(name, share);
        const fresh = prev && prev.pid === pid && m.ops >= prev.meter.ops;
        if (fresh && at <= prev.at) continue; // no new status since the last round
        const ops = fresh ? m.ops - prev.meter.ops : 0;
        const latencyMs = ops > 0 ? (m.serviceMs - prev!.meter.serviceMs) / ops : 0;
        let baselineMs = fresh ? prev.baselineMs : 0;
        if (latencyMs > 0) baselineMs = baselineMs > 0 ? Math.min(latencyMs, baselineMs * BASELINE_DRIFT) : latencyMs;
        this.last.set(name, { pid, at, meter: m, baselineMs });
        if (!fresh) continue;
        const s = (at - prev.at) / 1000;
        uses.push({
          name, weight: e.def.diskWeight ?? DEFAULT_DISK_WEIGHT,
          iops: ops / s,
          bps: (m.bytes - prev.meter.bytes) / s,
          busy: (m.serviceMs - prev.meter.serviceMs + m.waitMs - prev.meter.waitMs) / (at - prev.at),
          latencyMs, baselineMs: prev.baselineMs, share,
        });
      }
      // A VM still slowed although others were held since the last round, and no faster
      // for it, is slow on its own: its latency now is its baseline, and it holds nobody back.
      for (const u of uses) {
        const rec = this.last.get(u.name)!;
        const prevSlowedMs = this.slowedMs.get(u.name) ?? 0;
        if (!isSlowed(u)) { this.slowedMs.delete(u.name); continue; }
        const othersHeld = [...current].some(([n, sh]) => n !== u.name && sh !== null);
        if (othersHeld && prevSlowedMs > 0 && u.latencyMs >= NO_RELIEF * prevSlowedMs) {
          u.baselineMs = u.latencyMs;
          rec.baselineMs = u.latencyMs;
          this.slowedMs.delete(u.name);
        } else {
          this.slowedMs.set(u.name, u.latencyMs);
        }
      }
      for (const name of this.last.keys()) if (!this.host.entries.has(name)) this.last.delete(name);
      for (const name of this.slowedMs.keys()) if (!this.last.has(name)) this.slowedMs.delete(name);
      const plan = planDiskShares(uses);
      // a VM with a share but no reading this round (just adopted, status late) keeps it one round
      for (const [name, share] of plan) {
        if (!shareChanged(current.get(name) ?? null, share)) continue;
        try {
          await this.host.post(name, '/disk-share', share ?? { iops: 0, bps: 0 });
        } catch (err) {
          this.host.log(`${name}: cannot set its disk share: ${(err as Error).message}`);
        }
      }
    } finally {
      this.busy = false;
    }
  }
}
