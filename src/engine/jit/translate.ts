/**
 * Translation of guest blocks (RV64I base with FENCE, the M, A, F and D extensions, reads of
 * the counters and S-mode CSRs, writes of the floating-point and S-mode trap CSRs and
 * sstatus, with compressed instructions expanded through the engine's
 * RVC table) into WebAssembly functions.
 * Instruction semantics follow the unprivileged spec 20191213 chapters 2, 5 and 7 and
 * must stay identical to the interpreter's (src/engine/as/cpu.ts), which remains the
 * reference: anything this file does not translate ends the block before it, and the
 * interpreter runs it.
 *
 * A block (block.ts) becomes one function of the type (budget i32, entry pc i64) -> i32,
 * which:
 *  - returns at once with pc = entry when fewer than its length are left in the budget;
 *  - loads the x registers it reads before writing them from the hart state block (at
 *    the constant address `xBase`: a module serves one hart) into locals after that
 *    check, and on every exit stores back those written so far, sets the engine's pc
 *    global and returns the budget minus the instructions it retired;
 *  - loads and stores through the TLB (mem.ts: way 0 of the page's set checked inline,
 *    once for a group of accesses through one base register; the rest in a function of
 *    the module, helpers.ts probeHelper, which leaves through the engine's loadSlow /
 *    storeSlow on a miss); when those raise an exception
 *    (excPending) the block exits (all faults of a function through one shared exit) with
 *    pc at the faulting instruction and the earlier instructions retired, the faulting one
 *    counted as the interpreter counts it;
 *  - computes every pc as entry pc + offset, so one translation serves every virtual
 *    address the physical page is mapped at;
 *  - retires, on every path, the instructions it ran: a forward `br` gives the ones it
 *    skips back to the budget;
 *  - loops inside the function when it branches or jumps back to one of its instructions
 *    (the first, or another through a `br_table` on the one to go on at), and tail-calls
 *    (`return_call`) another block of the same page: one of the same module, or one of an
 *    earlier module the module imports ("link" "l<k>", see translateModule's `linked`);
 *  - tail-calls, for a jump to another page, the translation a CrossLink names, directly,
 *    while the execute TLB still maps the target to it;
 *  - leaves for any other target (a JALR, a jump to another page or to an untranslated
 *    block) by tail-calling the hart's chain trampoline ("env" "chain", chain.ts), which
 *    runs the target's translation if the jump cache has one, else returns to the engine;
 *    for a target it knows (not a JALR's), through "chainStatic" (in "env" "envTable",
 *    see ENV_TABLE_FUNCTIONS), which also records the block, so that the code cache
 *    translates its page again, linked to the target.
 */
import { CODE_GEN, HS_RS, HS_RS_DEPTH, RAM_OFFSET, RS_MAX } from '../layout.js';
import { STRADDLE, csrReadOnly, mayFault, runByEngine, staticTarget, storesBackAll, xUse, type Block, type BlockInsn, type CrossLink, type TranslateLayout } from './block.js';
import { FpEmitter, type FpBlock } from './fp.js';
import { HELPER_NAMES, ModuleHelpers, callEnv, type EnvCall } from './helpers.js';
import { MemEmitter, probeGroups } from './mem.js';
import { Code, ModuleBuilder, Op, ValType } from './wasm.js';

// imports of a translation module, in this order (function and global indices)
const F_CHAIN = 0;
const G_PC = 0;
const G_EXC = 1;
const G_TLB = 2;
const G_STOPPED = 3;
/** Functions imported from "env"; the linked blocks' imports follow, then the blocks, then the helpers they call. */
const ENV_FUNCS = 1;

const I64 = ValType.I64, I32 = ValType.I32;
const BLOCK_PARAMS = [I32, I64] as const;

/**
 * The engine's functions that translated code calls through a table (helpers.ts EnvCall),
 * with their signatures (params, results), in the order of their slots in it.
 */
const ENV_TABLE_SIGNATURES = {
  loadSlow: [[I64, I32], [I64]],
  storeSlow: [[I64, I32, I64], []],
  jitFp: [[I32], [I32]],
  jitAmo: [[I32], []],
  jitCsr: [[I32, I32], [I32]],
  chainStatic: [[I32, I64, I64, I32], [I32]],
  jitStep: [[I32], [I32]],
} as const satisfies Record<string, readonly [readonly ValType[], readonly ValType[]]>;
/** Names of the functions of ENV_TABLE_SIGNATURES, in slot order. */
export type EnvTableFunction = keyof typeof ENV_TABLE_SIGNATURES;
/**
 * The functions of ENV_TABLE_SIGNATURES in slot order: a module imports "env" "envTable", a
 * table of funcref that holds function k at index k. It is not the table of translated
 * blocks: V8 11 keeps, for each instance that imports a table, a copy of its entries,
 * which it fills at instantiation and updates at every table.set (modules that imported
 * the blocks' table made a boot's instantiations take 120 ms of the hart's thread instead
 * of 85, medians of ten); this one is filled once, before any module is instantiated.
 */
export const ENV_TABLE_FUNCTIONS = Object.keys(ENV_TABLE_SIGNATURES) as EnvTableFunction[];

/** How module `m` calls each function of ENV_TABLE_SIGNATURES (adding their types to it). */
function envCalls(m: ModuleBuilder): Record<EnvTableFunction, EnvCall> {
  const calls = {} as Record<EnvTableFunction, EnvCall>;
  ENV_TABLE_FUNCTIONS.forEach((name, k) => {
    const [params, results] = ENV_TABLE_SIGNATURES[name];
    calls[name] = { slot: k, type: m.type(params, results) };
  });
  return calls;
}

/**
 * Build one module holding `blocks` (decoded from guest RAM, at distinct host addresses).
 * Its imports, under `env`, are `memory` (the VM's shared memory); the engine's globals
 * `pc`, `excPending`, `tlbCur` and `stoppedBefore`; the hart's trampoline `chain`
 * (chain.ts); and `envTable`, the table of ENV_TABLE_FUNCTIONS (the engine's `loadSlow`,
 * `storeSlow`, `jitFp`, `jitAmo`, `jitCsr` and `jitStep`, and the trampoline `chainStatic`);
 * and `linked`: host addresses of blocks translated in earlier modules, imported as
 * "link" "l0", "l1", ... (in that order, functions of the block type), which the blocks
 * tail-call where they jump there. The caller guarantees those were translated from the
 * same code generation of their page as `blocks`, except the targets of `cross` (which
 * must be in `linked` or `blocks` too): those the blocks call only after checking, at run
 * time, that the jump's target is there, in that generation. It exports block i as `b<i>`.
 */
export function translateModule(blocks: readonly Block[], layout: TranslateLayout, linked: readonly number[] = [], cross: readonly CrossLink[] = []): Uint8Array {
  const m = new ModuleBuilder();
  m.importFunction('env', 'chain', BLOCK_PARAMS, [I32]);
  m.importTable('env', 'envTable', ENV_TABLE_FUNCTIONS.length);
  const env = envCalls(m);
  m.importGlobal('env', 'pc', I64, true);
  m.importGlobal('env', 'excPending', I32, true);
  m.importGlobal('env', 'tlbCur', I32, true);
  m.importGlobal('env', 'stoppedBefore', I32, true);
  m.importMemory('env', 'memory', 1, 65536, true);
  const index = new Map<number, number>();
  linked.forEach((h, k) => index.set(h, m.importFunction('link', `l${k}`, BLOCK_PARAMS, [I32])));
  // the blocks first, then the helpers they call (helpers.ts ModuleHelpers)
  const first = ENV_FUNCS + linked.length;
  blocks.forEach((b, i) => {
    index.set(b.host, m.declareFunction(BLOCK_PARAMS, [I32]));
    m.exportFunction(`b${i}`, first + i);
  });
  const helpers = new ModuleHelpers(first + blocks.length, { tlbTableBytes: layout.tlbTableBytes, tlbCur: G_TLB, loadSlow: env.loadSlow, storeSlow: env.storeSlow });
  const crossOf = new Map(cross.map((x) => [`${x.from}:${x.off}`, x]));
  for (const b of blocks) m.setBody(index.get(b.host)!, new BlockWriter(b, index, layout, helpers, env, crossOf).write());
  helpers.define(m);
  return m.toBytes();
}

/**
 * `f` of each element of `a`, in a packed array built by push. Array.prototype.map's result
 * is holey when V8's builtin makes it and packed when TurboFan's inlined copy does, and
 * BlockWriter's optimized code was dropped and compiled again (60-140 ms of TurboFan each
 * time) when the other one came.
 */
function mapPacked<T, U>(a: readonly T[], f: (x: T, k: number) => U): U[] {
  const out: U[] = [];
  for (let k = 0; k < a.length; k++) out.push(f(a[k], k));
  return out;
}

/** x1 (ra) or x5 (t0): the link registers of the calling convention (unprivileged spec 2.5, return-address stack hints). */
function isLink(r: number): boolean { return r === 1 || r === 5; }

/** Emits the function of one block. */
class BlockWriter {
  private readonly c = new Code(BLOCK_PARAMS);
  private readonly va: number;
  private readonly ent: number;
  private readonly v: number;
  /** The engine's tlbCur (the current privilege's TLB), read once at entry. */
  private readonly tlb: number;
  /** The shared exit of faulting loads, stores and AMOs: the faulting instruction's offset and the instructions retired (locals). */
  private readonly faultOff: number;
  private readonly faultRetired: number;
  /** The return stack's depth where a call or return reads it (local). */
  private readonly rsDepth: number;
  /** The registers that exit stores back: those dirty at any of them (all loaded at entry). */
  private readonly faultDirty: number[] = [];
  private readonly n: number;
  /** Open blocks inside the loop (br depth of the loop). */
  private depth = 0;
  /**
   * True when a branch or jump goes back to an instruction of the block (`back`, ascending
   * instruction indices): the function's body is a loop, which goes on at instruction
   * resumeAt[local `resume`] (resumeAt: the first instruction, then the targets in `back`
   * after it; one entry when there are none, and no dispatch).
   */
  private readonly loops: boolean;
  private readonly back: number[] = [];
  private readonly resumeAt: number[];
  private readonly resume: number;
  /**
   * Forward targets inside the block: instruction index (n: the block end) -> the depth
   * inside its wasm block, which write() opens at the start and ends just before that
   * instruction, so that a branch there is a `br` with the registers still in locals.
   */
  private readonly inner = new Map<number, number>();
  /** The loads' and stores' emitter (mem.ts). */
  private readonly mem: MemEmitter;
  /** The local caching each x register the block uses (x0 excluded). */
  private readonly regs = new Map<number, number>();
  /**
   * The x registers loaded at entry: those the block reads before writing them, and those
   * an exit may store back on a path that did not write them (a skipped write, the shared
   * fault exit, a self-loop).
   */
  private readonly liveIn: number[] = [];
  /**
   * Per instruction k (and n, after the last), the x registers a path to it may have
   * written since the entry or the last full store-back (before an engine call): an exit
   * there stores these back; the hart state holds the others' values already.
   */
  private readonly dirtyBefore: number[][] = [];
  /** The instruction being translated. */
  private k = 0;
  /** The F/D emitter (made at the first F/D instruction), and the instruction it is emitting. */
  private fp: FpEmitter | undefined;
  private cur: BlockInsn | undefined;

  /**
   * @param index function index of each block start (host address) the block may tail-call
   * @param helpers the module's helpers, which give the function index of each one called
   */
  constructor(private readonly b: Block, private readonly index: Map<number, number>, private readonly layout: TranslateLayout, private readonly helpers: ModuleHelpers,
    private readonly env: Record<EnvTableFunction, EnvCall>,
    private readonly cross: ReadonlyMap<string, CrossLink> = new Map()) {
    this.va = this.c.local(I64);
    this.ent = this.c.local(I32);
    this.v = this.c.local(I64);
    const page = this.c.local(I64);
    this.tlb = this.c.local(I32);
    this.faultOff = this.c.local(I32);
    this.faultRetired = this.c.local(I32);
    this.rsDepth = this.c.local(I32);
    this.resume = this.c.local(I32);
    this.n = b.insns.length;
    // register sets as bit masks (bit r: x register r) for membership; the arrays keep the
    // order in which registers were met, which the emitted loads and stores follow
    const uses = mapPacked(b.insns, ({ insn }) => xUse(insn));
    const written: number[] = [];
    let writtenMask = 0, regMask = 0;
    b.insns.forEach(({ insn }, k) => {
      const { reads, writes } = uses[k];
      for (const r of reads) if (r !== 0 && !(regMask & (1 << r))) { regMask |= 1 << r; this.regs.set(r, this.c.local(I64)); }
      if (writes !== 0 && !(regMask & (1 << writes))) { regMask |= 1 << writes; this.regs.set(writes, this.c.local(I64)); }
      // x registers the engine writes for an A or CSR instruction are reloaded, not spilled
      if (writes !== 0 && !runByEngine(insn) && !(writtenMask & (1 << writes))) { writtenMask |= 1 << writes; written.push(writes); }
    });
    // per instruction, the index of its static target in the block (n: the block end), or -1
    // (none, or outside); typed arrays here and below, and mapPacked's: a new elements kind
    // or holeyness of an array made V8 drop this constructor's optimized code and compile it again
    const at = new Map<number, number>();
    b.insns.forEach((ins, k) => at.set(ins.off, k));
    at.set(b.end, this.n);
    const target = Int32Array.from(b.insns, (ins) => {
      const t = this.staticTarget(ins);
      return t === null ? -1 : at.get(t) ?? -1;
    });
    // a branch or jump back to an instruction of the block (at or before itself) loops inside the function
    target.forEach((j, k) => { if (j >= 0 && j <= k && !this.back.includes(j)) this.back.push(j); });
    this.back.sort((x, y) => x - y);
    this.loops = this.back.length > 0;
    this.resumeAt = [0, ...this.back.filter((j) => j > 0)];
    // backward targets after the start are reached through the loop's dispatch (write()), each at its wasm block's end
    for (const j of this.resumeAt) if (j > 0) this.inner.set(j, 0);
    // forward targets inside the block
    target.forEach((j, k) => { if (j > k) this.inner.set(j, 0); });
    this.mem = new MemEmitter({
      c: this.c,
      getX: (r) => this.getX(r),
      faultExit: (ins, k, nested) => this.faultExit(ins, k, nested),
      tlbTableBytes: layout.tlbTableBytes,
      probe: (store, size) => helpers.probe(store, size),
    }, { va: this.va, ent: this.ent, page, v: this.v, tlb: this.tlb }, probeGroups(b.insns, mapPacked(uses, (u) => u.writes), this.inner));
    // per instruction k (and n), over every path from the entry, through loops too: the
    // registers that may be written and not stored back since (dirty: an exit there stores
    // them back), and those written on every path (must); a register an exit stores back
    // without it being written on every path there holds its entry value on the others: it
    // is loaded at entry. A jump in the middle of the block (one it goes on after, for a
    // later target) does not fall through; the last instruction does, for its own exits.
    const bit = (r: number) => (r === 0 ? 0 : 1 << r);
    const succ = mapPacked(b.insns, (ins, k) => {
      const out: number[] = [];
      const op = ins.insn & 0x7f;
      if (k === this.n - 1 || (op !== 0x6f && op !== 0x67)) out.push(k + 1);
      const j = target[k];
      if (j >= 0 && !out.includes(j)) out.push(j);
      return out;
    });
    const dirtyIn = new Int32Array(this.n + 1);
    const mustIn = new Int32Array(this.n + 1).fill(-1);
    mustIn[0] = 0;
    const keep = Int32Array.from(b.insns, ({ insn }) => (storesBackAll(insn) ? 0 : -1));
    const dirties = Int32Array.from(b.insns, ({ insn }, k) => (runByEngine(insn) ? 0 : bit(uses[k].writes)));
    const writes = Int32Array.from(uses, (u) => bit(u.writes));
    for (let changed = true; changed;) {
      changed = false;
      for (let k = 0; k < this.n; k++) {
        const dOut = (dirtyIn[k] & keep[k]) | dirties[k];
        const mOut = mustIn[k] | writes[k];
        for (const j of succ[k]) {
          if ((dirtyIn[j] | dOut) !== dirtyIn[j]) { dirtyIn[j] |= dOut; changed = true; }
          if ((mustIn[j] & mOut) !== mustIn[j]) { mustIn[j] &= mOut; changed = true; }
        }
      }
    }
    // the registers in mask order of `written` (one array per mask)
    const lists = new Map<number, number[]>();
    const listOf = (mask: number) => {
      let l = lists.get(mask);
      if (!l) lists.set(mask, l = written.filter((r) => mask & (1 << r)));
      return l;
    };
    let live = 0, faults = 0;
    for (let k = 0; k <= this.n; k++) {
      if (k < this.n) for (const r of uses[k].reads) live |= bit(r) & ~mustIn[k];
      live |= dirtyIn[k] & ~mustIn[k];
      this.dirtyBefore.push(listOf(dirtyIn[k]));
      // the shared fault exit stores back what is dirty at any fault; a register that is not
      // written yet at one of them holds its entry value there
      if (k < this.n && mayFault(b.insns[k].insn)) faults |= dirtyIn[k];
    }
    this.faultDirty.push(...listOf(faults));
    live |= faults;
    for (const r of this.regs.keys()) if (live & (1 << r)) this.liveIn.push(r);
  }

  write(): Code {
    const c = this.c;
    // not enough budget for the whole block: leave with pc at its start
    c.get(0).i32Const(this.n).op(Op.I32LtS).ifHinted(false);
    c.get(1).globalSet(G_PC).get(0).op(Op.Return);
    c.end();
    for (const r of this.liveIn) c.i32Const(0).mem(Op.I64Load, this.xAddr(r), 3).set(this.regs.get(r)!);
    if (this.b.insns.some(({ insn }) => [0x03, 0x23, 0x07, 0x27].includes(insn & 0x7f))) c.globalGet(G_TLB).set(this.tlb);
    const faults = this.b.insns.some(({ insn }) => mayFault(insn));
    if (faults) c.begin(Op.Block);
    if (this.loops) c.begin(Op.Loop);
    // the wasm blocks of the forward targets, the farthest outermost
    for (const j of [...this.inner.keys()].sort((a, z) => z - a)) {
      c.begin(Op.Block);
      this.inner.set(j, ++this.depth);
    }
    if (this.resumeAt.length > 1) {
      // the loop's dispatch: on at the first instruction (resume 0), or at the end of the wasm block of resumeAt[resume]
      c.begin(Op.Block);
      this.depth++;
      const labels = this.resumeAt.map((j) => (j === 0 ? 0 : this.depth - this.inner.get(j)!));
      c.get(this.resume).brTable(labels, 0);
      c.end();
      this.depth--;
    }
    const reach = (j: number) => { if (this.inner.has(j)) { c.end(); this.depth--; } };
    this.b.insns.forEach((ins, k) => { reach(k); this.k = k; this.insn(ins, k); });
    this.k = this.n;
    reach(this.n);
    // after the last instruction, unless it is a jump: its next one (a branch not taken, or a forward target)
    if (!this.b.jumps || (this.b.insns[this.n - 1].insn & 0x7f) === 0x63 || this.inner.has(this.n)) {
      if (this.b.stopsBefore) c.i32Const(1).globalSet(G_STOPPED);
      this.goto(this.b.end, this.n, !this.b.stopsBefore);
    }
    if (this.loops) c.end();
    c.op(Op.Unreachable);
    if (faults) {
      // the shared fault exit (faultExit)
      c.end();
      this.storeBack(this.faultDirty);
      c.get(1).get(this.faultOff).op(Op.I64ExtendI32U).op(Op.I64Add).globalSet(G_PC);
      c.get(0).get(this.faultRetired).op(Op.I32Sub);
    }
    return c;
  }

  /** Offset from the block start of a JAL or taken branch's target; null for JALR. */
  private staticTarget(ins: BlockInsn): number | null { return staticTarget(ins); }

  // ---- registers
  private getX(r: number): void {
    if (r === 0) this.c.i64Const(0);
    else this.c.get(this.regs.get(r)!);
  }
  /** x[rd] = the i64 in local v. */
  private setXFromV(rd: number): void {
    if (rd !== 0) this.c.get(this.v).set(this.regs.get(rd)!);
  }
  /** x[rd] = what `value` pushes (an i64). */
  private setX(rd: number, value: () => void): void {
    if (rd === 0) return; // no side effects in the value expressions passed here
    value();
    this.c.set(this.regs.get(rd)!);
  }
  /** Linear address of x[r] (f[r - 32] for r >= 32). */
  private xAddr(r: number): number { return this.layout.xBase + 8 * r; }
  /**
   * Store the dirty registers back to the hart state (before every exit, and before the
   * engine reads them). At the last instruction's exits, that one's own write is included:
   * it is done by then.
   */
  private spill(): void {
    const k = this.k === this.n - 1 && this.b.jumps ? this.n : this.k;
    this.storeBack(this.dirtyBefore[k]);
  }
  /** Load x[r]'s local from the hart state (after the engine wrote x[r] there). */
  private reloadX(r: number): void {
    this.c.i32Const(0).mem(Op.I64Load, this.xAddr(r), 3).set(this.regs.get(r)!);
  }
  /** Store x registers `regs` from their locals into the hart state. */
  private storeBack(regs: readonly number[]): void {
    for (const r of regs) this.c.i32Const(0).get(this.regs.get(r)!).mem(Op.I64Store, this.xAddr(r), 3);
  }
  /** Push entry pc + `off`. */
  private pcAt(off: number): void {
    this.c.get(1);
    if (off !== 0) this.c.i64Const(off).op(Op.I64Add);
  }

  // ---- exits
  /** Leave with pc = what `pc` pushes, `retired` instructions retired. */
  private exit(pc: () => void, retired: number): void {
    this.spill();
    pc();
    this.c.globalSet(G_PC).get(0).i32Const(retired).op(Op.I32Sub).op(Op.Return);
  }
  /**
   * Leave for pc (all `retired` instructions done) through the hart's chain trampoline
   * (src/engine/jit/chain.ts): "chainStatic" when the block knew the target when it was
   * translated (`known`), else "chain".
   */
  private chainExit(pc: () => void, retired: number, known = false): void {
    this.spill();
    this.c.get(0).i32Const(retired).op(Op.I32Sub);
    pc();
    if (known) {
      this.staticSource();
      callEnv(this.c, this.env.chainStatic, true);
    } else this.c.returnCall(F_CHAIN);
  }
  /**
   * Push the two arguments "chainStatic" takes after a jump's budget and target: this
   * block's entry pc and host address (chain.ts records them when the target has a
   * translation, and the code cache translates this block again, linked to it).
   */
  private staticSource(): void {
    this.c.get(1).i32Const(this.b.host | 0);
  }
  /**
   * Continue at block offset `off`, `retired` instructions retired (the first `retired` of
   * the block): loop, tail call or exit (through the trampoline if `chain`).
   */
  private goto(off: number, retired: number, chain = true): void {
    const c = this.c;
    const j = off === this.b.end ? this.n : this.b.insns.findIndex((ins) => ins.off === off);
    const inner = this.inner.get(j);
    if (inner !== undefined && j > this.k) {
      // forward inside the block: the instructions skipped are given back to the budget
      const skipped = j - retired;
      if (skipped !== 0) c.get(0).i32Const(skipped).op(Op.I32Add).set(0);
      c.br(this.depth - inner);
      return;
    }
    if (j >= 0 && j <= this.k && this.back.includes(j)) {
      // back to instruction j: the instructions since it are retired, and the loop goes on
      // there while the budget holds the whole block
      if (this.resumeAt.length > 1) c.i32Const(this.resumeAt.indexOf(j)).set(this.resume);
      c.get(0).i32Const(retired - j).op(Op.I32Sub).tee(0).i32Const(this.n).op(Op.I32GeS).brIfHinted(this.depth, true);
      this.spill();
      this.pcAt(off);
      c.globalSet(G_PC).get(0).i32Const(j).op(Op.I32Sub).op(Op.Return);
      return;
    }
    const f = this.pageFn(off);
    if (f !== undefined) {
      this.spill();
      c.get(0).i32Const(retired).op(Op.I32Sub);
      this.pcAt(off);
      c.returnCall(f);
      return;
    }
    const x = this.crossOf(off);
    if (x) this.crossCall(off, retired, x.link, x.f);
    if (chain) this.chainExit(() => this.pcAt(off), retired, true);
    else this.exit(() => this.pcAt(off), retired);
  }
  /** The function of the block at offset `off` when it is in this block's page and this module or a linked one. */
  private pageFn(off: number): number | undefined {
    const pageOff = (this.b.host & 0xfff) + off;
    return pageOff >= 0 && pageOff < 0x1000 ? this.index.get((this.b.host & ~0xfff) + pageOff) : undefined;
  }
  /** The CrossLink of this block's jump to offset `off` (in another page), with its function (of this module, or imported). */
  private crossOf(off: number): { link: CrossLink; f: number } | null {
    const link = this.cross.get(`${this.b.host}:${off}`);
    const f = link && this.index.get(link.host);
    return link && f !== undefined ? { link, f } : null;
  }
  /**
   * The guarded direct call of a CrossLink: tail-call function `f` at entry pc + `off` when
   * the current privilege's execute TLB maps that page to x.host's and its page still has
   * generation x.gen (a code write makes it even); else fall through (to the trampoline).
   */
  private crossCall(off: number, retired: number, x: CrossLink, f: number): void {
    const c = this.c;
    this.crossGuard(off, x);
    c.ifHinted(true);
    this.spill();
    c.get(0).i32Const(retired).op(Op.I32Sub).get(this.va).returnCall(f);
    c.end();
  }

  /** Push the condition of a CrossLink's direct call (i32), with local va = entry pc + `off`. */
  private crossGuard(off: number, x: CrossLink): void {
    const c = this.c;
    this.pcAt(off);
    c.set(this.va);
    // the execute table's way that holds the page (tlbCur + 2 tables + its set)
    c.globalGet(G_TLB);
    this.mem.tlbSlot();
    this.mem.tlbMatch(2);
    this.mem.hostAddr(2);
    c.i32Const(x.host | 0).op(Op.I32Eq).op(Op.I32And);
    c.i32Const(0).i32AtomicLoad(CODE_GEN + ((x.host - RAM_OFFSET) >>> 12) * 4).i32Const(x.gen | 0).op(Op.I32Eq).op(Op.I32And);
  }

  /**
   * A call (the block's last instruction, a JAL or JALR that links in x1 or x5) as a wasm
   * call, when the return stack (HS_RS) has room: push the return address (the block's
   * end), call the target's translation (`off`: a JAL's target offset; else the target pc
   * in local `target`, through the trampoline), and, when the callee's return comes back
   * here (pc is the return address, no exception, nothing stopped before), go on at the
   * return address; else return the budget left to whoever called this block. Nothing is
   * emitted after this when the stack is full: the block's ordinary exit follows.
   */
  private callWithReturn(off: number | null, target: number | null): void {
    const c = this.c;
    const base = this.layout.xBase; // the hart state block (HS_X = 0)
    const d = this.rsDepth;
    this.spill();
    c.i32Const(0).mem(Op.I32Load, base + HS_RS_DEPTH, 2).tee(d).i32Const(RS_MAX).op(Op.I32LtU).ifHinted(true);
    this.depth++;
    c.get(d).i32Const(3).op(Op.I32Shl);
    this.pcAt(this.b.end);
    c.mem(Op.I64Store, base + HS_RS, 3);
    c.i32Const(0).get(d).i32Const(1).op(Op.I32Add).mem(Op.I32Store, base + HS_RS_DEPTH, 2);
    if (off !== null) {
      // the target: a block of this page (this module or linked), a CrossLink's, or the trampoline
      const f = this.pageFn(off);
      const x = this.crossOf(off);
      if (f !== undefined) {
        c.get(0).i32Const(this.n).op(Op.I32Sub);
        this.pcAt(off);
        c.call(f);
      } else if (x) {
        this.crossGuard(off, x.link);
        c.ifHinted(true, I32);
        c.get(0).i32Const(this.n).op(Op.I32Sub).get(this.va).call(x.f);
        c.op(Op.Else);
        c.get(0).i32Const(this.n).op(Op.I32Sub).get(this.va);
        this.staticSource();
        callEnv(c, this.env.chainStatic);
        c.end();
      } else {
        c.get(0).i32Const(this.n).op(Op.I32Sub);
        this.pcAt(off);
        this.staticSource();
        callEnv(c, this.env.chainStatic);
      }
    } else {
      c.get(0).i32Const(this.n).op(Op.I32Sub).get(target!).call(F_CHAIN);
    }
    c.set(0);
    c.i32Const(0).get(d).mem(Op.I32Store, base + HS_RS_DEPTH, 2);
    c.globalGet(G_PC);
    this.pcAt(this.b.end);
    c.op(Op.I64Eq).globalGet(G_EXC).op(Op.I32Eqz).op(Op.I32And).globalGet(G_STOPPED).op(Op.I32Eqz).op(Op.I32And);
    c.ifHinted(true);
    // back from the callee: on at the return address, with the budget it left
    c.get(0);
    this.pcAt(this.b.end);
    const next = this.pageFn(this.b.end);
    if (next !== undefined) c.returnCall(next);
    else {
      this.staticSource();
      callEnv(c, this.env.chainStatic, true);
    }
    c.end();
    c.get(0).op(Op.Return);
    this.depth--;
    c.end();
  }

  /**
   * A return (JALR x0 through x1 or x5, target in local va): when it goes back to the
   * return address on top of the return stack, the wasm call callWithReturn made returns,
   * with pc set to it; else nothing is emitted after this (the trampoline exit follows).
   */
  private returnToCaller(retired: number): void {
    const c = this.c;
    const base = this.layout.xBase;
    const d = this.rsDepth;
    c.i32Const(0).mem(Op.I32Load, base + HS_RS_DEPTH, 2).tee(d).ifHinted(true);
    c.get(d).i32Const(1).op(Op.I32Sub).i32Const(3).op(Op.I32Shl).mem(Op.I64Load, base + HS_RS, 3).get(this.va).op(Op.I64Eq).ifHinted(true);
    this.spill();
    c.get(this.va).globalSet(G_PC).get(0).i32Const(retired).op(Op.I32Sub).op(Op.Return);
    c.end();
    c.end();
  }

  /** The F/D instructions' emitter (fp.ts), made at the first one. */
  private fpEmitter(ins: BlockInsn, k: number): FpEmitter {
    this.cur = ins;
    this.k = k;
    if (!this.fp) {
      const block: FpBlock = {
        c: this.c,
        xAddr: (r) => this.xAddr(r),
        getX: (r) => this.getX(r),
        setX: (rd, value) => this.setX(rd, value),
        storeX: (r) => this.storeBack([r]),
        reloadX: (r) => this.reloadX(r),
        exitBefore: () => this.exit(() => this.pcAt(this.cur!.off), this.k),
        jitFp: this.env.jitFp,
      };
      this.fp = new FpEmitter(block, this.layout.xBase);
    }
    return this.fp;
  }

  /**
   * After a call that may raise an exception (an out-of-line TLB probe, jitAmo): leave if it
   * did. `nested`: wasm blocks opened since the instruction's code began (mem.ts's).
   */
  private faultExit(ins: BlockInsn, k: number, nested = 0): void {
    const c = this.c;
    c.globalGet(G_EXC).ifHinted(false);
    c.i32Const(ins.off).set(this.faultOff).i32Const(k + 1).set(this.faultRetired);
    // out of this if, the open blocks and the loop, to the end of the function's outer block
    c.br(this.depth + nested + 1 + (this.loops ? 1 : 0));
    c.end();
  }

  private load(ins: BlockInsn, k: number, rd: number, rs1: number, imm: number, f3: number): void {
    const fast = [Op.I64Load8S, Op.I64Load16S, Op.I64Load32S, Op.I64Load, Op.I64Load8U, Op.I64Load16U, Op.I64Load32U][f3];
    const ext = [Op.I64Extend8S, Op.I64Extend16S, Op.I64Extend32S][f3] ?? null;
    this.mem.loadToV(ins, k, rs1, imm, 1 << (f3 & 3), fast, ext);
    this.setXFromV(rd);
  }

  // ---- instructions
  private insn(ins: BlockInsn, k: number): void {
    const c = this.c;
    const i = ins.insn;
    const rd = (i >>> 7) & 31, rs1 = (i >>> 15) & 31, rs2 = (i >>> 20) & 31, f3 = (i >>> 12) & 7, f7 = i >>> 25;
    const immI = i >> 20;
    switch (i & 0x7f) {
      case 0x37: this.setX(rd, () => c.i64Const(i & 0xfffff000 | 0)); return; // LUI: sign-extended
      case 0x17: this.setX(rd, () => this.pcAt(ins.off + (i & 0xfffff000 | 0))); return; // AUIPC
      case 0x6f: // JAL
        this.setX(rd, () => this.pcAt(ins.off + ins.len));
        if (isLink(rd) && k === this.n - 1) this.callWithReturn(this.staticTarget(ins)!, null);
        this.goto(this.staticTarget(ins)!, k + 1);
        return;
      case 0x67: // JALR: the target is computed before rd is written (rs1 may be rd)
        this.getX(rs1);
        if (immI !== 0) c.i64Const(immI).op(Op.I64Add);
        c.i64Const(-2).op(Op.I64And).set(this.va);
        this.setX(rd, () => this.pcAt(ins.off + ins.len));
        if (isLink(rd)) this.callWithReturn(null, this.va);
        else if (isLink(rs1)) this.returnToCaller(k + 1);
        this.chainExit(() => c.get(this.va), k + 1);
        return;
      case 0x63: { // BRANCH: taken, a side exit; not taken, the block goes on (write() ends it after the last)
        this.getX(rs1);
        this.getX(rs2);
        c.op([Op.I64Eq, Op.I64Ne, 0, 0, Op.I64LtS, Op.I64GeS, Op.I64LtU, Op.I64GeU][f3] as Op);
        c.begin(Op.If);
        this.depth++;
        this.goto(this.staticTarget(ins)!, k + 1);
        this.depth--;
        c.end();
        return;
      }
      case 0x03: this.load(ins, k, rd, rs1, immI, f3); return;
      case 0x0f: c.atomicFence(); return; // FENCE: every ordering at once, as the interpreter's seq-cst RMW
      case 0x23: this.mem.store(ins, k, rs1, ((i >> 20) & ~31) | ((i >>> 7) & 31), 1 << f3, () => this.getX(rs2)); return;
      case 0x07: { // FLW, FLD: NaN-boxed into f[rd]; FS becomes Dirty
        const fp = this.fpEmitter(ins, k);
        fp.fsOn();
        this.mem.loadToV(ins, k, rs1, immI, f3 === 2 ? 4 : 8, f3 === 2 ? Op.I64Load32U : Op.I64Load, null);
        c.i32Const(0).get(this.v);
        if (f3 === 2) c.i64Const(-0x100000000).op(Op.I64Or);
        c.mem(Op.I64Store, this.xAddr(32 + rd), 3);
        fp.fsDirty();
        return;
      }
      case 0x27: // FSW, FSD
        this.fpEmitter(ins, k).fsOn();
        this.mem.store(ins, k, rs1, ((i >> 20) & ~31) | ((i >>> 7) & 31), f3 === 2 ? 4 : 8,
          () => c.i32Const(0).mem(Op.I64Load, this.xAddr(32 + rs2), 3));
        return;
      case 0x53: case 0x43: case 0x47: case 0x4b: case 0x4f: { // OP-FP and FMA: native where exact, else the engine (fp.ts)
        const { reads, writes } = xUse(i);
        this.fpEmitter(ins, k).emit(i, reads.length > 0, writes !== 0);
        return;
      }
      case 0x73: { // a CSR instruction through the engine, told the budget left before it (for cycle and instret)
        const writes = !csrReadOnly(i);
        if (writes) this.spill(); // the engine reads x[rs1] from the state block
        c.i32Const(i | 0).get(0).i32Const(k).op(Op.I32Sub);
        callEnv(c, this.env.jitCsr);
        c.tee(this.ent).op(Op.I32Eqz).ifHinted(false);
        this.exit(() => this.pcAt(ins.off), k); // illegal: the interpreter runs it and raises the exception
        c.end();
        if (rd !== 0) this.reloadX(rd);
        if (writes) {
          // it may have enabled an interrupt: leave after it, for the engine to take it
          c.get(this.ent).i32Const(2).op(Op.I32Eq).ifHinted(false);
          this.exit(() => this.pcAt(ins.off + ins.len), k + 1);
          c.end();
        }
        return;
      }
      case STRADDLE: { // an instruction across the page end (the block's last): the engine runs it
        this.spill(); // the engine reads and writes x registers in the state block
        this.pcAt(ins.off);
        c.globalSet(G_PC).get(0).i32Const(k).op(Op.I32Sub);
        callEnv(c, this.env.jitStep);
        c.i32Const(1).op(Op.I32Ne).ifHinted(false);
        // an exception (pending, pc at the instruction, which counts as the interpreter counts
        // it) or another next pc (set by the engine): leave, nothing dirty
        c.get(0).i32Const(k + 1).op(Op.I32Sub).op(Op.Return);
        c.end();
        // it may have written any x register; the block's exit after it stores back those a
        // forward branch to that exit left dirty (none else: everything was stored before it)
        for (const r of this.dirtyBefore[this.n]) this.reloadX(r);
        return;
      }
      case 0x2f: // AMO, LR, SC through the engine: atomic across harts as the interpreter's
        this.spill();
        callEnv(c.i32Const(i | 0), this.env.jitAmo);
        this.faultExit(ins, k);
        if (rd !== 0) this.reloadX(rd);
        return;
      case 0x13: { // OP-IMM
        if (rd === 0) return;
        const sh = immI & 63;
        this.setX(rd, () => {
          this.getX(rs1);
          switch (f3) {
            case 0: if (immI !== 0) c.i64Const(immI).op(Op.I64Add); break;
            case 1: c.i64Const(sh).op(Op.I64Shl); break;
            case 2: c.i64Const(immI).op(Op.I64LtS).op(Op.I64ExtendI32U); break;
            case 3: c.i64Const(immI).op(Op.I64LtU).op(Op.I64ExtendI32U); break;
            case 4: c.i64Const(immI).op(Op.I64Xor); break;
            case 5: c.i64Const(sh).op((i >>> 26) === 0 ? Op.I64ShrU : Op.I64ShrS); break;
            case 6: c.i64Const(immI).op(Op.I64Or); break;
            default: c.i64Const(immI).op(Op.I64And); break;
          }
        });
        return;
      }
      case 0x1b: { // OP-IMM-32
        if (rd === 0) return;
        this.setX(rd, () => {
          this.getX(rs1);
          c.op(Op.I32WrapI64);
          if (f3 === 0) c.i32Const(immI).op(Op.I32Add);
          else if (f3 === 1) c.i32Const(rs2).op(Op.I32Shl);
          else c.i32Const(rs2).op(f7 === 0 ? Op.I32ShrU : Op.I32ShrS);
          c.op(Op.I64ExtendI32S);
        });
        return;
      }
      case 0x33: { // OP
        if (rd === 0) return;
        this.setX(rd, () => {
          this.getX(rs1);
          this.getX(rs2);
          if (f7 === 1) {
            if (f3 === 0) c.op(Op.I64Mul);
            else c.call(this.helpers.m(HELPER_NAMES[f3 - 1]));
            return;
          }
          if (f7 === 0x20) { c.op(f3 === 0 ? Op.I64Sub : Op.I64ShrS); return; }
          switch (f3) {
            case 0: c.op(Op.I64Add); break;
            case 1: c.op(Op.I64Shl); break;
            case 2: c.op(Op.I64LtS).op(Op.I64ExtendI32U); break;
            case 3: c.op(Op.I64LtU).op(Op.I64ExtendI32U); break;
            case 4: c.op(Op.I64Xor); break;
            case 5: c.op(Op.I64ShrU); break;
            case 6: c.op(Op.I64Or); break;
            default: c.op(Op.I64And); break;
          }
        });
        return;
      }
      case 0x3b: { // OP-32
        if (rd === 0) return;
        this.setX(rd, () => {
          if (f7 === 1 && f3 >= 4) {
            this.getX(rs1);
            this.getX(rs2);
            c.call(this.helpers.m(HELPER_NAMES[7 + f3 - 4]));
            return;
          }
          this.getX(rs1);
          c.op(Op.I32WrapI64);
          this.getX(rs2);
          c.op(Op.I32WrapI64);
          if (f7 === 1) c.op(Op.I32Mul);
          else if (f7 === 0x20) c.op(f3 === 0 ? Op.I32Sub : Op.I32ShrS);
          else c.op(f3 === 0 ? Op.I32Add : f3 === 1 ? Op.I32Shl : Op.I32ShrU);
          c.op(Op.I64ExtendI32S);
        });
        return;
      }
      default: throw new Error(`untranslatable instruction 0x${(i >>> 0).toString(16)}`);
    }
  }
}
