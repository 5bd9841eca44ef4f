/**
 * Dynamic memory, the host's half: how the memory budget is divided among VMs on the
 * dynamic policy. Each such VM moves its own balloon within [its minimum, the ceiling it
 * is granted] (src/vmm/memory-policy.ts); this file decides the ceilings.
 *
 * Every VM first gets its minimum (what admission guaranteed). What is left of the pool
 * goes first to what the VMs need now (working set + buffer, more while under pressure),
 * higher priority first and evenly within one priority; then what is still left is
 * headroom up to each VM's maximum, in the same order, so that a VM can grow at once
 * without waiting for the daemon. When the host itself runs short (`MemAvailable` low or
 * memory stalls in `/proc/pressure/memory`), the pool shrinks below what the VMs hold,
 * so lower-priority VMs give back first. Pure: src/host/memory-balancer.ts applies it.
 */
import { readFileSync } from 'node:fs';

const MIB = 1024 * 1024;

/** One VM on the dynamic policy, as the plan sees it. Bytes, whole MiB. */
export interface PlanVm {
  name: string;
  /** Higher gets memory first and gives it back last (0..100). */
  priority: number;
  minBytes: number;
  /** The RAM it booted with. */
  maxBytes: number;
  /** What it needs now (working set + buffer, more under pressure); the plan clamps it to [min, max]. */
  wantBytes: number;
}

/**
 * Split `amount` MiB among `needs` (MiB each) evenly, no one above its need (water
 * filling). Returns what each gets, in the order given; the sum is min(amount, Σneeds).
 */
export function waterFill(needs: readonly number[], amount: number): number[] {
  const got = needs.map(() => 0);
  const order = needs.map((_, i) => i).sort((a, b) => needs[a] - needs[b]);
  let left = Math.max(0, Math.floor(amount));
  for (let k = 0; k < order.length; k++) {
    const share = Math.floor(left / (order.length - k));
    const i = order[k];
    got[i] = Math.min(needs[i], share);
    left -= got[i];
  }
  // the remainder of the even split, a MiB each to those that can still take one
  for (const i of order) {
    if (left <= 0) break;
    if (got[i] < needs[i]) { got[i]++; left--; }
  }
  return got;
}

/**
 * The ceiling of each VM (bytes, whole MiB) for a pool of `poolBytes` shared by `vms`.
 * Never below a VM's minimum (so the sum exceeds the pool when the minima do) and never
 * above its maximum.
 */
export function planCeilings(vms: readonly PlanVm[], poolBytes: number): Map<string, number> {
  const toMiB = (b: number) => Math.floor(b / MIB);
  const ceil = new Map<string, number>(vms.map((v) => [v.name, toMiB(v.minBytes)]));
  let left = toMiB(poolBytes) - vms.reduce((s, v) => s + toMiB(v.minBytes), 0);
  const levels = [...new Set(vms.map((v) => v.priority))].sort((a, b) => b - a);
  const stage = (target: (v: PlanVm) => number) => {
    for (const p of levels) {
      if (left <= 0) return;
      const group = vms.filter((v) => v.priority === p);
      const needs = group.map((v) => Math.max(0, Math.min(toMiB(v.maxBytes), target(v)) - ceil.get(v.name)!));
      const got = waterFill(needs, left);
      group.forEach((v, i) => { ceil.set(v.name, ceil.get(v.name)! + got[i]); left -= got[i]; });
    }
  };
  stage((v) => Math.ceil(v.wantBytes / MIB));
  stage((v) => toMiB(v.maxBytes));
  return new Map([...ceil].map(([k, m]) => [k, m * MIB]));
}

/** The host's own memory state. Bytes. */
export interface HostMemory {
  totalBytes: number;
  /** `MemAvailable` of /proc/meminfo. */
  availableBytes: number;
  /** `some avg10` of /proc/pressure/memory (percent of the last 10 s some task waited for memory), null where there is no PSI. */
  stallPercent: number | null;
}

/** The host's memory from `/proc` (null when /proc/meminfo cannot be read). */
export function readHostMemory(procRoot = '/proc'): HostMemory | null {
  let info: string;
  try { info = readFileSync(`${procRoot}/meminfo`, 'utf8'); } catch { return null; }
  const field = (k: string) => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(info);
    return m ? Number(m[1]) * 1024 : null;
  };
  const total = field('MemTotal');
  const avail = field('MemAvailable');
  if (total === null || avail === null) return null;
  let stall: number | null = null;
  try {
    const m = /^some avg10=([\d.]+)/m.exec(readFileSync(`${procRoot}/pressure/memory`, 'utf8'));
    if (m) stall = Number(m[1]);
  } catch { /* no PSI */ }
  return { totalBytes: total, availableBytes: avail, stallPercent: stall };
}

/** The host keeps at least this share of its memory available (and 256 MiB at least). */
export const HOST_RESERVE_FRACTION = 0.05;
/** Memory stalls above this (percent, PSI `some avg10`) count as the host running short. */
export const HOST_STALL_PERCENT = 10;

/**
 * How much the VMs should give back because the host runs short (bytes, 0 when it does
 * not): what `MemAvailable` lacks of the reserve (5 % of the host, 256 MiB at least), and
 * at least 128 MiB while tasks stall on memory.
 */
export function hostShortfall(m: HostMemory | null): number {
  if (!m) return 0;
  const reserve = Math.max(256 * MIB, m.totalBytes * HOST_RESERVE_FRACTION);
  let short = Math.max(0, reserve - m.availableBytes);
  if (m.stallPercent !== null && m.stallPercent >= HOST_STALL_PERCENT) short = Math.max(short, 128 * MIB);
  return Math.ceil(short / MIB) * MIB;
}
