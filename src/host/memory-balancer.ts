/**
 * The daemon's dynamic-memory loop: every few seconds it divides the memory budget among
 * the running VMs on the dynamic policy (src/host/memory-plan.ts) and grants each its
 * ceiling (`POST /memory-policy`); each VM process then moves its own balloon within it
 * (src/vmm/memory-policy.ts).
 *
 * The budget is never exceeded: a VM holds (is reserved) the larger of its memory and its
 * ceiling. A lowered ceiling takes effect at once in the books, a raised one only as far
 * as the memory freed so far allows, so the sum of the reservations stays within the
 * limit while the VMs above their new ceilings give memory back.
 */
import { ALIVE, type Entry } from './entry.js';
import { hostShortfall, planCeilings, readHostMemory, type HostMemory, type PlanVm } from './memory-plan.js';
import { DEFAULT_BUFFER_PERCENT, defaultMinMemory, neededBytes, underPressure, workingSetBytes } from '../vmm/memory-policy.js';

const MIB = 1024 * 1024;
/** `--memory-priority` when not given. */
export const DEFAULT_MEMORY_PRIORITY = 50;

/** Whether `e` is a live VM on the dynamic policy. */
export function isDynamic(e: Entry): boolean {
  return e.def.memoryPolicy === 'dynamic' && ALIVE.includes(e.rt.state);
}

/** What a live VM is guaranteed (bytes): a dynamic VM its minimum, any other what it holds. */
export function guaranteedBytes(e: Entry): number {
  if (e.def.memoryPolicy === 'dynamic') return e.def.minMemoryBytes ?? defaultMinMemory(e.def.memoryBytes);
  return reservedBytes(e);
}

/** What the budget counts for a live VM (bytes): its memory, or its ceiling when larger. */
export function reservedBytes(e: Entry): number {
  const held = e.rt.memoryBytes ?? e.def.memoryBytes;
  return Math.max(held, e.rt.ceilingBytes ?? 0);
}

/** What the balancer needs from the daemon. */
export interface BalancerHost {
  readonly entries: ReadonlyMap<string, Entry>;
  /** The most guest memory that may be promised (bytes: capacity × overcommit). */
  limitBytes(): number;
  /** `POST path` on VM `name`'s control channel; rejects on failure. */
  post(name: string, path: string, body: unknown): Promise<unknown>;
  /** The runtime record of `name` changed (to be saved). */
  changed(name: string, e: Entry): void;
  log(message: string): void;
  /** The host's memory now (default: /proc). */
  hostMemory?: () => HostMemory | null;
}

/** Divides memory among dynamic VMs; see the file comment. */
export class MemoryBalancer {
  private chain: Promise<unknown> = Promise.resolve();
  /** allocStalls of each VM's last statistics, to see new stalls (a rebooted guest counts from 0: no false alarm). */
  private stalls = new Map<string, number>();
  /** Bytes kept out of every division: room made for starts and growths not yet booked (see {@link hold}). */
  private heldBytes = 0;

  constructor(private readonly host: BalancerHost) {}

  /** The sum of the reservations of the live VMs (bytes). */
  allocatedBytes(): number {
    let sum = 0;
    for (const e of this.host.entries.values()) if (ALIVE.includes(e.rt.state)) sum += reservedBytes(e);
    return sum;
  }

  /** What the running dynamic VMs hold beyond their guarantees: the most a cut could free (bytes). */
  reclaimableBytes(): number {
    let sum = 0;
    for (const e of this.host.entries.values()) {
      if (isDynamic(e) && (e.rt.state === 'running' || e.rt.state === 'paused')) sum += Math.max(0, reservedBytes(e) - guaranteedBytes(e));
    }
    return sum;
  }

  /** What VM `e` needs now (bytes): working set + buffer, and more under pressure; its memory when unknown. */
  private want(name: string, e: Entry): number {
    const m = e.guest?.memory;
    const g = m?.guest;
    const held = e.rt.memoryBytes ?? e.def.memoryBytes;
    if (!m || !g || g.availableBytes === undefined) return held;
    const s = { totalBytes: m.maxBytes - m.balloonBytes, availableBytes: g.availableBytes, allocStalls: g.allocStalls ?? 0 };
    const pct = e.def.memoryBufferPercent ?? DEFAULT_BUFFER_PERCENT;
    const pressure = underPressure(s, this.stalls.get(name) ?? -1, pct);
    this.stalls.set(name, s.allocStalls);
    return neededBytes(workingSetBytes(s), pct, held, pressure);
  }

  /**
   * Keep `bytes` out of every division until the returned release is called: the room made
   * for a start or a growth, from the moment it is free until its VM books it, so that a
   * division in between (the periodic one) does not hand it back to the dynamic VMs.
   * Releasing twice releases once.
   */
  hold(bytes: number): () => void {
    this.heldBytes += bytes;
    let held = true;
    return () => {
      if (held) this.heldBytes -= bytes;
      held = false;
    };
  }

  /**
   * Divide the budget anew, keeping the held bytes ({@link hold}) free for the starts and
   * growths they were made for, and grant the ceilings. Runs one at a time; a VM that
   * cannot be told keeps its old ceiling.
   */
  rebalance(): Promise<void> {
    const run = this.chain.then(() => this.rebalanceNow());
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async rebalanceNow(): Promise<void> {
    const { entries } = this.host;
    const limit = this.host.limitBytes();
    const dyn: Array<[string, Entry]> = [];
    let fixed = 0;
    let held = 0;
    for (const [name, e] of entries) {
      if (!ALIVE.includes(e.rt.state)) continue;
      if (isDynamic(e) && (e.rt.state === 'running' || e.rt.state === 'paused')) {
        dyn.push([name, e]);
        held += e.rt.memoryBytes ?? e.def.memoryBytes;
      } else {
        fixed += reservedBytes(e);
      }
    }
    // VMs that left the dynamic policy while running: back to moving only when asked
    for (const [name, e] of entries) {
      if (e.rt.ceilingBytes !== undefined && !isDynamic(e) && (e.rt.state === 'running' || e.rt.state === 'paused')) {
        try {
          await this.host.post(name, '/memory-policy', {});
          delete e.rt.ceilingBytes;
          this.host.changed(name, e);
        } catch (err) { this.host.log(`${name}: cannot end its memory policy: ${(err as Error).message}`); }
      }
    }
    if (dyn.length === 0) return;
    const short = hostShortfall((this.host.hostMemory ?? readHostMemory)());
    let effLimit = limit;
    if (short > 0) effLimit = Math.min(limit, fixed + held - short);
    const pool = effLimit - fixed - this.heldBytes;
    const vms: PlanVm[] = dyn.map(([name, e]) => ({
      name,
      priority: e.def.memoryPriority ?? DEFAULT_MEMORY_PRIORITY,
      minBytes: guaranteedBytes(e),
      maxBytes: e.guest?.memory?.maxBytes ?? e.def.maxMemoryBytes ?? e.def.memoryBytes,
      wantBytes: this.want(name, e),
    }));
    const plan = planCeilings(vms, pool);
    // cuts first, then raises within what the books allow once the cuts are booked
    const order = [...dyn].sort(([a, ea], [b, eb]) => (plan.get(a)! - (ea.rt.ceilingBytes ?? 0)) - (plan.get(b)! - (eb.rt.ceilingBytes ?? 0)));
    for (const [name, e] of order) {
      const old = e.rt.ceilingBytes;
      let ceiling = plan.get(name)!;
      if (old === undefined || ceiling > old) {
        const free = limit - this.heldBytes - this.allocatedBytes();
        ceiling = Math.max(Math.min(ceiling, reservedBytes(e) + free), guaranteedBytes(e));
        ceiling = Math.floor(ceiling / MIB) * MIB;
      }
      const v = vms.find((x) => x.name === name)!;
      const policy = { minBytes: v.minBytes, ceilingBytes: ceiling, bufferPercent: e.def.memoryBufferPercent ?? DEFAULT_BUFFER_PERCENT };
      const sent = e.guest?.memory?.policy;
      if (old === ceiling && sent && sent.ceilingBytes === ceiling && sent.minBytes === policy.minBytes && sent.bufferPercent === policy.bufferPercent) continue;
      // a raise is booked before the VM hears of it, a cut once it has: the books never show less than the VM may take
      const raise = old === undefined || ceiling > old;
      if (raise) e.rt.ceilingBytes = ceiling;
      try {
        await this.host.post(name, '/memory-policy', policy);
        e.rt.ceilingBytes = ceiling;
        if (e.guest?.memory) e.guest.memory.policy = policy;
        this.host.changed(name, e);
      } catch (err) {
        if (raise) e.rt.ceilingBytes = old;
        this.host.log(`${name}: cannot grant its memory ceiling of ${ceiling / MIB} MiB: ${(err as Error).message}`);
      }
    }
  }
}
