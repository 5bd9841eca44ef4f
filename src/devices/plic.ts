/**
 * RISC-V Platform-Level Interrupt Controller (riscv-plic-spec 1.0.0), with the
 * register layout of SiFive's PLIC and QEMU `virt` (`compatible =
 * "sifive,plic-1.0.0", "riscv,plic0"`):
 *
 * | offset                         | register (spec section)                  |
 * |--------------------------------|------------------------------------------|
 * | 0x000000 + 4*src               | interrupt source priority (§4)           |
 * | 0x001000 + 4*word              | interrupt pending bits (§5), read-only   |
 * | 0x002000 + 0x80*ctx + 4*word   | interrupt enable bits per context (§6)   |
 * | 0x200000 + 0x1000*ctx          | priority threshold (§7)                  |
 * | 0x200004 + 0x1000*ctx          | claim (read) / complete (write) (§8, §9) |
 *
 * All registers are 32 bits wide; accesses of another width or unaligned ones
 * read as 0 and are ignored on write.
 *
 * Contexts follow QEMU virt: context 2*hart is the hart's M-mode context,
 * 2*hart+1 its S-mode context.
 *
 * The state lives in one SharedArrayBuffer guarded by a spin lock, so that every
 * thread of a VM can run the PLIC: the device thread raises and lowers source lines,
 * and each hart's thread claims and completes without a round trip to the device
 * thread (Linux reads the claim register twice per interrupt). Several `Plic`
 * objects built over the same buffer (see {@link Plic.attach}) are one PLIC.
 */
import type { IrqLine, MmioDevice, MmioWidth, Persistable } from './bus.js';

const PRIORITY_BASE = 0x0;
const PENDING_BASE = 0x1000;
const ENABLE_BASE = 0x2000;
const ENABLE_STRIDE = 0x80;
const CONTEXT_BASE = 0x200000;
const CONTEXT_STRIDE = 0x1000;

/** Priorities and thresholds are 3-bit WARL fields (7 levels, as QEMU virt's PLIC). */
export const PLIC_MAX_PRIORITY = 7;

/** Saved state of a {@link Plic} (plain JSON). */
export interface PlicState {
  numSources: number;
  numContexts: number;
  priority: number[];
  /** Input line levels, one per source. */
  level: boolean[];
  /** Sources claimed and not yet completed (gateway closed). */
  claimed: boolean[];
  /** Enable words, `numContexts * words` entries (context-major). */
  enable: number[];
  threshold: number[];
}

/**
 * RISC-V PLIC with level-triggered gateways (riscv-plic-spec 1.0.0 §2, §3).
 *
 * Gateway semantics: source `s` is pending while its input line is high and it is
 * not claimed (claimed = handed to a context by a claim and not yet completed).
 * A claim therefore clears the pending bit; after the completion, a line that is
 * still high makes the source pending again. Lowering the line before it is
 * claimed withdraws the request.
 *
 * A context's interrupt output is high when some pending source enabled for it has
 * a priority greater than the context's threshold (priority 0 never interrupts).
 * `onContextIrq` is called whenever that output changes level.
 */
export class Plic implements MmioDevice, Persistable<PlicState> {
  readonly size = 0x600000;
  /** The shared state (pass it to {@link Plic.attach} in another thread). */
  readonly buffer: SharedArrayBuffer;
  /** Number of 32-bit words of pending/enable bits. */
  private readonly words: number;
  /** [0]: the lock (0 free, 1 held). */
  private readonly lockWord: Int32Array;
  private readonly priority: Uint32Array;
  private readonly level: Uint8Array;
  private readonly claimed: Uint8Array;
  /** pending bit = level && !claimed, kept as words for fast scans. */
  private readonly pending: Uint32Array;
  private readonly enable: Uint32Array;
  private readonly threshold: Uint32Array;
  private readonly ctxLevel: Uint8Array;

  /**
   * @param numSources number of interrupt source IDs including the reserved ID 0
   *   (e.g. 96 gives sources 1..95; the device tree's `riscv,ndev` is numSources-1).
   *   Must be 2..1024.
   * @param numContexts number of contexts (2 per hart on virt), 1..15872.
   * @param onContextIrq called with (context, level) when a context's external
   *   interrupt output changes, by whichever thread made it change (with the lock held:
   *   it must not call back into the PLIC).
   * @param buffer the state of an existing PLIC of the same shape (see {@link Plic.attach}),
   *   or none for a new, reset PLIC.
   * @throws RangeError on out-of-range sizes or a buffer of the wrong size.
   */
  constructor(
    readonly numSources: number,
    readonly numContexts: number,
    private readonly onContextIrq: (ctx: number, level: boolean) => void,
    buffer?: SharedArrayBuffer,
  ) {
    if (!Number.isInteger(numSources) || numSources < 2 || numSources > 1024) {
      throw new RangeError(`PLIC numSources must be 2..1024, got ${numSources}`);
    }
    if (!Number.isInteger(numContexts) || numContexts < 1 || numContexts > (this.size - CONTEXT_BASE) / CONTEXT_STRIDE) {
      throw new RangeError(`PLIC numContexts out of range: ${numContexts}`);
    }
    this.words = Math.ceil(numSources / 32);
    const bytes = Plic.bufferBytes(numSources, numContexts);
    if (buffer && buffer.byteLength !== bytes) {
      throw new RangeError(`PLIC state buffer of ${buffer.byteLength} bytes, expected ${bytes}`);
    }
    this.buffer = buffer ?? new SharedArrayBuffer(bytes);
    let at = 0;
    const u32 = (n: number) => { const a = new Uint32Array(this.buffer, at, n); at += 4 * n; return a; };
    const u8 = (n: number) => { const a = new Uint8Array(this.buffer, at, n); at += (n + 3) & ~3; return a; };
    this.lockWord = new Int32Array(this.buffer, 0, 1);
    at = 4;
    this.priority = u32(numSources);
    this.pending = u32(this.words);
    this.enable = u32(this.words * numContexts);
    this.threshold = u32(numContexts);
    this.level = u8(numSources);
    this.claimed = u8(numSources);
    this.ctxLevel = u8(numContexts);
  }

  /** Bytes of shared state of a PLIC with this shape. */
  static bufferBytes(numSources: number, numContexts: number): number {
    const words = Math.ceil(numSources / 32);
    const pad = (n: number) => (n + 3) & ~3;
    return 4 + 4 * (numSources + words + words * numContexts + numContexts) + pad(numSources) * 2 + pad(numContexts);
  }

  /**
   * Another view of the PLIC whose state is `buffer` (`plic.buffer`), for another thread:
   * both see and change the same registers. `onContextIrq` as for the constructor.
   * @throws RangeError if the buffer does not fit the shape.
   */
  static attach(numSources: number, numContexts: number, buffer: SharedArrayBuffer, onContextIrq: (ctx: number, level: boolean) => void): Plic {
    return new Plic(numSources, numContexts, onContextIrq, buffer);
  }

  /**
   * Run `f` with the lock held. Critical sections are a few hundred instructions, so
   * waiters spin (the VM's main thread may not block in Atomics.wait).
   */
  private locked<T>(f: () => T): T {
    const l = this.lockWord;
    while (Atomics.compareExchange(l, 0, 0, 1) !== 0) { /* spin */ }
    try {
      return f();
    } finally {
      Atomics.store(l, 0, 0);
    }
  }

  /** A one-line summary for diagnostics: raised, pending and claimed sources, and each context's output level. */
  describe(): string {
    return this.locked(() => this.describeLocked());
  }

  private describeLocked(): string {
    const list = (a: ArrayLike<number>) => Array.from({ length: this.numSources }, (_, i) => i).filter((i) => a[i]).join(',') || '-';
    const pend: number[] = [];
    for (let i = 1; i < this.numSources; i++) if ((this.pending[i >>> 5] >>> (i & 31)) & 1) pend.push(i);
    return `level ${list(this.level)} pending ${pend.join(',') || '-'} claimed ${list(this.claimed)} contexts ${Array.from(this.ctxLevel).join('')}`;
  }

  /**
   * The input line of interrupt source `src` (1..numSources-1), level-triggered.
   * @throws RangeError for source 0 or out-of-range IDs (a board wiring error).
   */
  line(src: number): IrqLine {
    if (!Number.isInteger(src) || src < 1 || src >= this.numSources) {
      throw new RangeError(`PLIC source ${src} out of range 1..${this.numSources - 1}`);
    }
    return { set: (lvl: boolean) => this.setLevel(src, lvl) };
  }

  /**
   * An input line driven by a status word that several threads change (virtio-mmio's
   * InterruptStatus, see `VirtioMmioOptions.interruptStatus`): `set()` ignores its
   * argument and drives the line high while `Atomics.load(words, index) !== 0`, read with
   * the lock held, so two threads changing the word and the line cannot leave the line
   * at a stale level.
   * @throws RangeError for source 0 or out-of-range IDs.
   */
  wordLine(src: number, words: Int32Array, index: number): IrqLine {
    this.line(src);
    return { set: () => this.locked(() => this.setLevelLocked(src, Atomics.load(words, index) !== 0)) };
  }

  /** Drive source `src`'s input line (same as `line(src).set(level)`); out-of-range sources are ignored. */
  setLevel(src: number, lvl: boolean): void {
    this.locked(() => this.setLevelLocked(src, lvl));
  }

  private setLevelLocked(src: number, lvl: boolean): void {
    if (src < 1 || src >= this.numSources) return;
    const v = lvl ? 1 : 0;
    if (this.level[src] === v) return;
    this.level[src] = v;
    this.updatePending(src);
    this.updateAll();
  }

  /** Current level of context `ctx`'s interrupt output. */
  contextLevel(ctx: number): boolean {
    return Atomics.load(this.ctxLevel, ctx) === 1;
  }

  /** True if source `src` is pending (§5). */
  isPending(src: number): boolean {
    return src > 0 && src < this.numSources && ((Atomics.load(this.pending, src >>> 5) >>> (src & 31)) & 1) === 1;
  }

  /**
   * Claim (§8) for context `ctx`: returns the ID of the highest-priority pending
   * source enabled for `ctx` whose priority exceeds the threshold (ties: lowest
   * ID), or 0; the source's gateway stays closed until completed.
   */
  claim(ctx: number): number {
    return this.locked(() => this.claimLocked(ctx));
  }

  private claimLocked(ctx: number): number {
    const src = this.best(ctx);
    if (src !== 0) {
      this.claimed[src] = 1;
      this.updatePending(src);
      this.updateAll();
    }
    return src;
  }

  /**
   * Complete (§9) source `src` for context `ctx`: reopens the gateway. Ignored if
   * `src` is not a valid source enabled for `ctx`.
   */
  complete(ctx: number, src: number): void {
    this.locked(() => this.completeLocked(ctx, src));
  }

  private completeLocked(ctx: number, src: number): void {
    if (src < 1 || src >= this.numSources || !this.isEnabled(ctx, src)) return;
    if (!this.claimed[src]) return;
    this.claimed[src] = 0;
    this.updatePending(src);
    this.updateAll();
  }

  /** MMIO read; see the layout table above. */
  read(offset: number, width: MmioWidth): number {
    return this.locked(() => this.readLocked(offset, width));
  }

  private readLocked(offset: number, width: MmioWidth): number {
    if (width !== 4 || (offset & 3) !== 0) return 0;
    if (offset < PENDING_BASE) {
      const src = offset >>> 2;
      return src < this.numSources ? this.priority[src] : 0;
    }
    if (offset < ENABLE_BASE) {
      const w = (offset - PENDING_BASE) >>> 2;
      return w < this.words ? this.pending[w] : 0;
    }
    if (offset < CONTEXT_BASE) {
      const rel = offset - ENABLE_BASE;
      const ctx = Math.floor(rel / ENABLE_STRIDE);
      const w = (rel % ENABLE_STRIDE) >>> 2;
      if (ctx >= this.numContexts || w >= this.words) return 0;
      return this.enable[ctx * this.words + w];
    }
    const rel = offset - CONTEXT_BASE;
    const ctx = Math.floor(rel / CONTEXT_STRIDE);
    if (ctx >= this.numContexts) return 0;
    switch (rel % CONTEXT_STRIDE) {
      case 0: return this.threshold[ctx];
      case 4: return this.claimLocked(ctx);
      default: return 0;
    }
  }

  /** MMIO write; see the layout table above. Pending bits are read-only. */
  write(offset: number, width: MmioWidth, value: number): void {
    this.locked(() => this.writeLocked(offset, width, value));
  }

  private writeLocked(offset: number, width: MmioWidth, value: number): void {
    if (width !== 4 || (offset & 3) !== 0) return;
    value >>>= 0;
    if (offset < PENDING_BASE) {
      const src = offset >>> 2;
      if (src === 0 || src >= this.numSources) return;
      this.priority[src] = value & PLIC_MAX_PRIORITY;
      this.updateAll();
      return;
    }
    if (offset < ENABLE_BASE) return; // pending bits are read-only
    if (offset < CONTEXT_BASE) {
      const rel = offset - ENABLE_BASE;
      const ctx = Math.floor(rel / ENABLE_STRIDE);
      const w = (rel % ENABLE_STRIDE) >>> 2;
      if (ctx >= this.numContexts || w >= this.words) return;
      let v = value;
      if (w === 0) v &= ~1; // source 0 does not exist
      if (w === this.words - 1 && this.numSources % 32 !== 0) v &= (1 << (this.numSources % 32)) - 1;
      this.enable[ctx * this.words + w] = v >>> 0;
      this.updateContext(ctx);
      return;
    }
    const rel = offset - CONTEXT_BASE;
    const ctx = Math.floor(rel / CONTEXT_STRIDE);
    if (ctx >= this.numContexts) return;
    switch (rel % CONTEXT_STRIDE) {
      case 0:
        this.threshold[ctx] = value & PLIC_MAX_PRIORITY;
        this.updateContext(ctx);
        break;
      case 4:
        this.completeLocked(ctx, value);
        break;
    }
  }

  /** Serializable state (see {@link PlicState}). */
  save(): PlicState {
    return this.locked(() => ({
      numSources: this.numSources,
      numContexts: this.numContexts,
      priority: Array.from(this.priority),
      level: Array.from(this.level, (v) => v === 1),
      claimed: Array.from(this.claimed, (v) => v === 1),
      enable: Array.from(this.enable),
      threshold: Array.from(this.threshold),
    }));
  }

  /**
   * Restore a state from {@link save}. Calls `onContextIrq` for every context with
   * its restored output level, so the board's harts agree with the PLIC.
   * @throws Error if the state was saved from a PLIC of another shape.
   */
  restore(s: PlicState): void {
    if (s.numSources !== this.numSources || s.numContexts !== this.numContexts) {
      throw new Error(`PLIC state shape ${s.numSources}x${s.numContexts} does not match ${this.numSources}x${this.numContexts}`);
    }
    this.locked(() => this.restoreLocked(s));
  }

  private restoreLocked(s: PlicState): void {
    for (let i = 0; i < this.numSources; i++) {
      this.priority[i] = i === 0 ? 0 : s.priority[i] & PLIC_MAX_PRIORITY;
      this.level[i] = s.level[i] ? 1 : 0;
      this.claimed[i] = s.claimed[i] ? 1 : 0;
    }
    for (let i = 0; i < this.enable.length; i++) this.enable[i] = s.enable[i] >>> 0;
    for (let c = 0; c < this.numContexts; c++) this.threshold[c] = s.threshold[c] & PLIC_MAX_PRIORITY;
    this.pending.fill(0);
    for (let i = 1; i < this.numSources; i++) this.updatePending(i);
    for (let c = 0; c < this.numContexts; c++) {
      const lvl = this.best(c) !== 0;
      this.ctxLevel[c] = lvl ? 1 : 0;
      this.onContextIrq(c, lvl);
    }
  }

  // ---- internals ----

  private isEnabled(ctx: number, src: number): boolean {
    if (ctx < 0 || ctx >= this.numContexts) return false;
    return ((this.enable[ctx * this.words + (src >>> 5)] >>> (src & 31)) & 1) === 1;
  }

  private updatePending(src: number): void {
    const w = src >>> 5;
    const bit = 1 << (src & 31);
    if (this.level[src] && !this.claimed[src]) this.pending[w] |= bit;
    else this.pending[w] &= ~bit;
  }

  /** Highest-priority pending enabled source above threshold for `ctx` (ties: lowest ID), or 0. */
  private best(ctx: number): number {
    if (ctx < 0 || ctx >= this.numContexts) return 0;
    let bestSrc = 0;
    let bestPrio = this.threshold[ctx];
    const base = ctx * this.words;
    for (let w = 0; w < this.words; w++) {
      let bits = (this.pending[w] & this.enable[base + w]) >>> 0;
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits = (bits & (bits - 1)) >>> 0;
        const src = w * 32 + b;
        const p = this.priority[src];
        if (p > bestPrio) {
          bestPrio = p;
          bestSrc = src;
        }
      }
    }
    return bestSrc;
  }

  private updateContext(ctx: number): void {
    const lvl = this.best(ctx) !== 0 ? 1 : 0;
    if (lvl !== this.ctxLevel[ctx]) {
      this.ctxLevel[ctx] = lvl;
      this.onContextIrq(ctx, lvl === 1);
    }
  }

  private updateAll(): void {
    for (let c = 0; c < this.numContexts; c++) this.updateContext(c);
  }
}
