/**
 * One virtual hart: a wasm instance of the engine bound to a state block in the
 * VM's shared memory. The engine imports nothing from Node; the caller supplies
 * the compiled module and the host callbacks (MMIO and clock).
 */
import { HART_STATE_BASE, HART_STATE_SIZE, HS_IRQ, HS_X, HS_F, RAM_OFFSET } from './layout.js';
import { type EngineKind, HartExit, type HartHost, HartSignals, memoryBytesFor } from './hart-state.js';
import { CodeCache, type CodeCacheOptions, type CodeCacheStats, type JitEngineExports } from './jit/code-cache.js';

export * from './hart-state.js';

/** How a hart runs guest code. */
export interface HartOptions {
  /** Default 'interp'. */
  engine?: EngineKind;
  /** Harts of the VM (the JIT waits for each of them before it publishes code); default 1. */
  hartCount?: number;
  /** Tuning of the JIT's code cache. */
  jit?: CodeCacheOptions;
}

interface EngineExports extends JitEngineExports {
  init(base: number, id: number, ramOffset: number, ramBytes: bigint): void;
  run(budget: number): number;
  getPc(): bigint;
  setPc(v: bigint): void;
  getPriv(): number;
  getInstret(): bigint;
  setTimecmp(v: bigint): void;
  getTimecmp(): bigint;
  requestExit(): void;
  setSoftwareInterrupt(on: number): void;
  resetHart(entry: bigint): void;
  interruptPending(): number;
  readCsr(csr: number): bigint;
  debugTranslate(va: bigint): bigint;
  tlbFlush(): void;
}

export class Hart {
  readonly id: number;
  readonly memory: WebAssembly.Memory;
  private readonly ex: EngineExports;
  private readonly base: number;
  private readonly x: BigUint64Array;
  private readonly f: BigUint64Array;
  private readonly irq: Int32Array;
  private readonly signals: HartSignals;
  private codeCache: CodeCache | null = null;

  private constructor(id: number, memory: WebAssembly.Memory, ex: EngineExports) {
    this.id = id;
    this.memory = memory;
    this.ex = ex;
    this.base = HART_STATE_BASE + id * HART_STATE_SIZE;
    this.x = new BigUint64Array(memory.buffer, this.base + HS_X, 32);
    this.f = new BigUint64Array(memory.buffer, this.base + HS_F, 32);
    this.irq = new Int32Array(memory.buffer, this.base + HS_IRQ, 2);
    this.signals = new HartSignals(memory, id);
  }

  /**
   * Instantiate hart `id` over `memory` (made by createGuestMemory) with `ramBytes` of RAM.
   * `module` is the compiled engine (build/engine.wasm).
   */
  static async create(module: WebAssembly.Module, memory: WebAssembly.Memory, id: number, ramBytes: number, host: HartHost, options: HartOptions = {}): Promise<Hart> {
    let readFault = 0;
    // translated blocks are called through this table (the engine's call_indirect); entry 0 is "none"
    const table = new WebAssembly.Table({ element: 'anyfunc', initial: 1 });
    const imports = {
      env: {
        memory,
        table,
        abort: () => { throw new Error('engine abort'); },
        mmioRead: (pa: number, size: number): number => {
          const v = host.mmioRead(pa >>> 0, size);
          if (v === undefined) { readFault = 1; return 0; }
          readFault = 0;
          return v | 0;
        },
        mmioReadFault: (): number => readFault,
        mmioWrite: (pa: number, size: number, value: number): number => (host.mmioWrite(pa >>> 0, size, value >>> 0) ? 0 : 1),
        nowTicks: (): number => host.nowTicks(),
      },
    };
    const instance = await WebAssembly.instantiate(module, imports);
    const ex = instance.exports as unknown as EngineExports;
    const hart = new Hart(id, memory, ex);
    ex.init(hart.base, id, RAM_OFFSET, BigInt(ramBytes));
    if (options.engine === 'jit') hart.codeCache = new CodeCache(memory, table, ex, id, options.hartCount ?? 1, options.jit);
    return hart;
  }

  /** Run up to `budget` instructions; see HartExit. */
  run(budget: number): HartExit {
    const r = this.ex.run(budget) as HartExit;
    this.codeCache?.service();
    return r;
  }
  /** The JIT's counters, or null under the interpreter. */
  get jitStats(): CodeCacheStats | null {
    return this.codeCache ? { ...this.codeCache.stats, retired: Number(this.ex.getJitRetired()), entries: Number(this.ex.getJitCalls()) } : null;
  }
  get pc(): bigint { return BigInt.asUintN(64, this.ex.getPc()); }
  set pc(v: bigint) { this.ex.setPc(v); }
  /** Current privilege: 0 = U, 1 = S. */
  get priv(): number { return this.ex.getPriv(); }
  get instret(): bigint { return BigInt.asUintN(64, this.ex.getInstret()); }
  /** Read x register `i`. */
  getX(i: number): bigint { return this.x[i]; }
  /** Write x register `i` (x0 stays 0). */
  setX(i: number, v: bigint): void { if (i !== 0) this.x[i] = BigInt.asUintN(64, v); }
  getF(i: number): bigint { return this.f[i]; }
  /** Step past the `ecall` after an SBI call was served. */
  skipEcall(): void { this.ex.setPc(this.ex.getPc() + 4n); }
  /** Supervisor timer compare value in ticks (SBI set_timer / stimecmp). */
  set timecmp(v: bigint) { this.ex.setTimecmp(BigInt.asUintN(64, v)); }
  get timecmp(): bigint { return BigInt.asUintN(64, this.ex.getTimecmp()); }
  /** Make `run()` return HartExit.Halt at its next check. */
  requestExit(): void { this.ex.requestExit(); }
  /** Reset to S-mode at `entry` with a0 = hartid, a1 = `opaque` (boot, SBI HSM hart_start). */
  reset(entry: bigint, a1: bigint): void {
    this.ex.resetHart(entry);
    this.setX(10, BigInt(this.id));
    this.setX(11, a1);
  }
  /** Raise or lower an interrupt-pending bit (SIP_*); wakes the hart if it is parked. */
  setPending(bit: number, level: boolean): void { this.signals.setPending(bit, level); }
  /** Wake the hart if it is parked in WFI. */
  wake(): void { this.signals.wake(); }
  /** Value of the wake counter; pass it to `park()`. */
  wakeSeq(): number { return Atomics.load(this.irq, 1); }
  /** Block the calling thread until woken or `timeoutMs` passes (worker threads only). */
  park(seq: number, timeoutMs: number): void {
    Atomics.wait(this.irq, 1, seq, timeoutMs);
  }
  /** True when an enabled interrupt is pending (WFI would return). */
  interruptPending(): boolean { return this.ex.interruptPending() !== 0; }
  /** Flush this hart's TLB (remote sfence.vma served on its own thread). */
  flushTlb(): void { this.ex.tlbFlush(); }
  /** Read a CSR for diagnostics. */
  readCsr(csr: number): bigint { return BigInt.asUintN(64, this.ex.readCsr(csr)); }
  /** Translate a virtual address for diagnostics; 2^64-1 when unmapped. */
  translate(va: bigint): bigint { return BigInt.asUintN(64, this.ex.debugTranslate(va)); }
}
