/**
 * Admission control of guest memory: the memory budget (capacity × overcommit), what a
 * start or a growth may take from it, and making room by cutting the ceilings of the VMs
 * on the dynamic policy (src/host/memory-balancer.ts) when it is short.
 *
 * The books: a live VM is reserved the larger of its memory and its ceiling; a start is
 * admitted on its guarantee (a dynamic VM's minimum, another's memory) against the other
 * live VMs' guarantees, and on the memory it boots with against what is free now.
 */
import { admitMemory, memoryBudget, type HostCapacity, type MemoryBudget } from './admission.js';
import { ALIVE, type Entry } from './entry.js';
import { guaranteedBytes, type MemoryBalancer } from './memory-balancer.js';

const MIB = 1024 * 1024;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What admission needs from the daemon. */
export interface AdmissionHost {
  readonly entries: ReadonlyMap<string, Entry>;
  readonly capacity: HostCapacity;
  /** Memory overcommit ratio (> 0). */
  readonly overcommit: number;
  readonly balancer: MemoryBalancer;
  /** How long a start or a growth waits for dynamic VMs to give memory back (ms; default 30 s). */
  readonly roomWaitMs?: number;
}

/** The daemon's memory admission; see the file comment. */
export class MemoryAdmission {
  constructor(private readonly host: AdmissionHost) {}

  /** RAM promised to VM processes that are alive, in bytes (a dynamic VM: its memory or its ceiling, the larger). */
  allocatedBytes(): number {
    return this.host.balancer.allocatedBytes();
  }

  /** The memory budget now. */
  budget(): MemoryBudget {
    return memoryBudget(this.host.capacity.memoryBytes, this.host.overcommit, this.allocatedBytes());
  }

  /**
   * Make `bytes` of the budget free for `action` on VM `name`: when they are not free now,
   * the dynamic VMs' ceilings are cut and this waits (up to `roomWaitMs`) for them to give
   * memory back. The room is held (MemoryBalancer.hold) until the caller calls the
   * release returned, once it has booked the memory.
   * @throws HostError('insufficient_resources') with the figures when it stays short.
   */
  async makeRoom(name: string, bytes: number, action: string): Promise<() => void> {
    const deadline = Date.now() + (this.host.roomWaitMs ?? 30_000);
    const balancer = this.host.balancer;
    const release = balancer.hold(bytes);
    try {
      // wait only while the dynamic VMs could still give enough back
      while (this.budget().freeBytes < bytes && this.budget().freeBytes + balancer.reclaimableBytes() >= bytes) {
        await balancer.rebalance();
        if (this.budget().freeBytes >= bytes || Date.now() >= deadline) break;
        await sleep(500);
      }
      admitMemory(name, bytes, this.budget(), action);
      return release;
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * Admission of a start of VM `name` (`e`), before its process exists: its guarantee
   * against the other live VMs' guarantees, then room for the memory it boots with. The
   * caller then checks with {@link checkStart} and books the memory (marks the VM live),
   * and only then calls the release returned, whatever happened.
   * @throws HostError('insufficient_resources') with the figures.
   */
  async admitStart(name: string, e: Entry): Promise<() => void> {
    let sum = 0;
    for (const [n, o] of this.host.entries) if (n !== name && ALIVE.includes(o.rt.state)) sum += guaranteedBytes(o);
    const b = this.budget();
    admitMemory(name, guaranteedBytes(e), memoryBudget(b.capacityBytes, b.overcommit, sum), `start ${name} (guaranteed memory)`);
    return this.makeRoom(name, e.def.memoryBytes, `start ${name}`);
  }

  /**
   * The last check of a start, synchronous so that two starts cannot both pass on the same
   * free memory: the caller then marks the VM live (which reserves its memory).
   * @throws HostError('insufficient_resources') with the figures.
   */
  checkStart(name: string, e: Entry): void {
    admitMemory(name, e.def.memoryBytes, this.budget());
  }

  /**
   * Move a running VM's memory to `bytes` through `apply` (its balloon): growth beyond
   * what it holds is admitted (and made room for) first and reserved while `apply` runs;
   * afterwards the VM is reserved `bytes`, or what it held before if `apply` failed.
   * @returns what `apply` returned.
   * @throws HostError('insufficient_resources'); whatever `apply` throws.
   */
  async setRunningMemory<T>(name: string, e: Entry, bytes: number, apply: () => Promise<T>): Promise<T> {
    const reserved = e.rt.memoryBytes ?? e.def.memoryBytes;
    const release = bytes > reserved ? await this.makeRoom(name, bytes - reserved, `grow ${name} to ${bytes / MIB} MiB`) : () => {};
    // reserve before the await, so that two changes cannot both pass on the same free memory
    e.rt.memoryBytes = Math.max(reserved, bytes);
    release();
    try {
      const result = await apply();
      e.rt.memoryBytes = bytes;
      return result;
    } catch (err) {
      e.rt.memoryBytes = reserved;
      throw err;
    }
  }
}
