/**
 * What of a hart the VM's other threads use (the main thread's board and devices, the VM
 * process's control): the shared memory, the interrupt-request and wake words, the
 * diagnostic snapshot, and the engine's exit reasons. Imports no engine or JIT code, so
 * that a thread which runs no hart does not load it (hart.ts re-exports all of it).
 */
import { HART_STATE_BASE, HART_STATE_SIZE, HS_IRQ, HS_MIRROR, RAM_OFFSET } from './layout.js';

/** Which engine runs guest code: the interpreter alone, or the interpreter plus translated code (src/engine/jit/). */
export type EngineKind = 'interp' | 'jit';
/** The engines, for option parsing and messages. */
export const ENGINE_KINDS: readonly EngineKind[] = ['interp', 'jit'];

/** Why `Hart.run()` returned (values of the engine's EXIT_* constants). */
export const enum HartExit {
  /** The instruction budget was used up. */
  Budget = 0,
  /** WFI with no interrupt pending: park until one is due. */
  Wfi = 1,
  /** `ecall` from S-mode: serve the SBI call, then `skipEcall()`. */
  Sbi = 2,
  /** `requestExit()` was called. */
  Halt = 3,
  /**
   * The guest spins in a loop of PAUSE hints (a lock held elsewhere): yield the host
   * thread for a moment, then run on (pause-loop exiting, as KVM's kvm_vcpu_on_spin).
   */
  Pause = 4,
}

/** Interrupt-pending bits of `sip` (privileged spec 4.1.3). */
export const SIP_SSIP = 1 << 1;
export const SIP_STIP = 1 << 5;
export const SIP_SEIP = 1 << 9;

/** Host services the engine calls synchronously from inside `run()`. */
export interface HartHost {
  /** Read `size` (1, 2 or 4) bytes at guest physical `pa` from a device; `undefined` when no device is there (access fault). */
  mmioRead(pa: number, size: number): number | undefined;
  /** Write to a device; returns false when no device is there (access fault). */
  mmioWrite(pa: number, size: number, value: number): boolean;
  /** Current value of the `time` CSR in ticks (TIMEBASE_HZ). */
  nowTicks(): number;
}

/** Total linear-memory bytes needed for `ramBytes` of guest RAM. */
export function memoryBytesFor(ramBytes: number): number {
  return RAM_OFFSET + ramBytes;
}

/** Create the VM's shared memory for `ramBytes` of guest RAM (a multiple of 64 KiB). */
export function createGuestMemory(ramBytes: number): WebAssembly.Memory {
  const pages = Math.ceil(memoryBytesFor(ramBytes) / 65536);
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

/**
 * The interrupt-request and wake words of any hart of a VM, usable from any
 * thread that shares the VM's memory (devices, other harts' SBI calls).
 */
export class HartSignals {
  private readonly irq: Int32Array;
  constructor(memory: WebAssembly.Memory, readonly id: number) {
    this.irq = new Int32Array(memory.buffer, HART_STATE_BASE + id * HART_STATE_SIZE + HS_IRQ, 2);
  }
  /** Raise or lower a `sip` bit (SIP_*) and wake the hart if it is parked. */
  setPending(bit: number, level: boolean): void {
    if (level) Atomics.or(this.irq, 0, bit); else Atomics.and(this.irq, 0, ~bit);
    this.wake();
  }
  /** Wake the hart if it is parked in WFI. */
  wake(): void {
    Atomics.add(this.irq, 1, 1);
    Atomics.notify(this.irq, 1);
  }
}

/**
 * A hart's architectural state as of its last exit from `run()` (at most one run slice
 * old), readable from any thread: for reporting a guest that stopped making progress.
 * CSR values follow the privileged spec's S-mode layouts (4.1).
 */
export interface HartSnapshot {
  pc: bigint;
  /** 0 = U, 1 = S. */
  priv: number;
  sstatus: bigint;
  sie: bigint;
  /** Pending bits (sip view: SSIP, STIP, SEIP) including the shared interrupt-request word. */
  sip: bigint;
  /** Interrupt-request word as other threads set it now (SSIP, SEIP). */
  irqNow: number;
  /** Wake counter of the hart's parking word. */
  wakeSeq: number;
  stimecmp: bigint;
  instret: bigint;
  scause: bigint;
  sepc: bigint;
  stvec: bigint;
  satp: bigint;
  /** Number of returns from run() so far: unchanged between two snapshots means the thread did not come back. */
  exits: bigint;
}

/** Read hart `id`'s diagnostic mirror from the VM's shared memory (any thread). */
export function readHartSnapshot(memory: WebAssembly.Memory, id: number): HartSnapshot {
  const base = HART_STATE_BASE + id * HART_STATE_SIZE;
  const m = new BigUint64Array(memory.buffer, base + HS_MIRROR, 12);
  const irq = new Int32Array(memory.buffer, base + HS_IRQ, 2);
  return {
    pc: m[0], priv: Number(m[1]), sstatus: m[2], sie: m[3], sip: m[4], stimecmp: m[5], instret: m[6],
    scause: m[7], sepc: m[8], stvec: m[9], satp: m[10], exits: Atomics.load(m, 11),
    irqNow: Atomics.load(irq, 0), wakeSeq: Atomics.load(irq, 1),
  };
}
