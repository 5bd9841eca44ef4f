/**
 * One hart's translated code: serves the translation requests its engine queued (hot
 * block starts, see src/engine/as/jit.ts), translates them in batches (one wasm module
 * per batch), installs them in the hart's function table and publishes them in its block
 * map. Runs on the hart's thread between two `run()` calls. Imports nothing from Node.
 *
 * A module holds the hot blocks asked for and the blocks of their pages they lead to. For a
 * page that stays in use (see REGROUP_AGE_MS) it also holds the blocks of that page translated
 * so far (the older ones are translated again and replace their former translation at the
 * same table index), so that a jump from one block to another of the same page is a direct
 * tail call inside the module rather than a return to the engine's dispatcher. Blocks
 * translated in earlier modules that its code jumps to, and that are not translated again,
 * are imported into it (linked), so those jumps are tail calls too.
 *
 * A block that keeps jumping through the trampoline to a target translated after it (or in
 * another page the execute TLB did not map when it was translated) is seen in the hart's
 * relink ring (chain.ts); its page's blocks are then translated again (relinked), so that
 * the jump becomes a tail call. (Blocks of other modules that tail-call the page's former
 * translations directly keep doing so: a relink serves the paths that enter the page
 * through the jump cache.)
 *
 * Publishing waits until every other hart of the VM has caught up with the code epoch
 * that marked the pages as code (or is outside `run()`): until then one of them may still
 * hold a write-TLB entry filled before the marking, whose stores would not retire the code.
 */
import {
  HART_STATE_BASE, HART_STATE_SIZE, HS_IN_RUN, HS_JIT_REQ, HS_JIT_REQ_COUNT, HS_JIT_REQ_PC, HS_TLB,
  HS_JIT_SEEN, HS_RELINK, HS_X, RELINK_SLOTS, JIT_BASE, JIT_HART_BYTES, JC_BYTES, BM_ENTRIES, BM_WAYS, RAM_OFFSET, RVC_TABLE, TLB_SETS, TLB_TABLE_BYTES,
} from '../layout.js';
import { CodePages } from '../code-pages.js';
import { crossTargets, decodeBlock, successors, type Block, type CrossLink, type TranslateLayout } from './block.js';
import { ENV_TABLE_FUNCTIONS, translateModule, type EnvTableFunction } from './translate.js';
import { chainModule } from './chain.js';

/** The engine exports translated code links against (see src/engine/as/index.ts). */
export interface JitEngineExports {
  loadSlow: unknown;
  storeSlow: unknown;
  jitFp: unknown;
  jitAmo: unknown;
  jitCsr: unknown;
  jitStep: unknown;
  pc: unknown;
  excPending: unknown;
  tlbCur: unknown;
  stoppedBefore: unknown;
  jitEnable(on: number, threshold: number): void;
  getJitRetired(): bigint;
  getJitCalls(): bigint;
  jitForgetAll(): void;
}

/**
 * Jump-target executions of a block start before it is translated, by default. Code run
 * fewer times costs more to translate (on the compiler thread, and then V8's baseline and
 * optimizing compiles of the module) than the interpreter spends on it: measured on the
 * boot bench's workloads, 1000 against 200 made a boot 10% and the fork/exec loop 13%
 * faster, the other workloads the same; 50 and 100 were slower still than 200. With
 * URGENT_FACTOR (loops in a burst translated early), boots to `true` on two host cores,
 * alternating, medians of five or six a side, three times (wall s, then the process's CPU s):
 * 2000 took 3.10 / 5.14, 3.78 / 6.19 and 3.09 / 5.02, against 3.36 / 5.66, 4.57 / 7.34 and
 * 3.16 / 5.33 at 1000 (500: 4.24 / 7.44; 4000: 3.37 / 5.07); the fork/exec loop 3.9-4.0 s
 * against 4.4-5.0, the other workloads within noise, with a fifth less wasm. Once the
 * translator's own optimized code stopped being thrown away (translate.ts mapPacked), 4000
 * against 2000, each round a boot to `true` with A B B A: the process's CPU 9% less (faster
 * in eight rounds of eight), the hart thread's 1.6% less and the boot 2% sooner (six of
 * eight); on one host core (`taskset -c 0`) 8% sooner (five of five); the fork/exec loop
 * 5-10% faster, the first read of the disk within noise (0.97-1.03); the median of 1000
 * HTTP GETs (`npm run bench -- net`) 15.7 and 9.7 ms against 16.1 and 12.4 (QEMU: 10.9-11.2
 * and 9.7). 6000 saved CPU again but slowed the hart thread (faster in two rounds of eight).
 */
export const DEFAULT_HOT_THRESHOLD = 4000;

/** Tuning of the code cache. */
export interface CodeCacheOptions {
  /**
   * Jump-target executions of a block start before it is translated (default
   * DEFAULT_HOT_THRESHOLD).
   */
  hotThreshold?: number;
  /** Translated blocks kept before the whole cache is dropped and refilled (default 65536). */
  maxBlocks?: number;
  /**
   * Times in a row a page's code is retired soon (RAPID_RETIRE_MS) after it was translated
   * before the page is left to the interpreter for NEVER_MS (default 8).
   */
  maxPageRetirements?: number;
  /** Hot blocks gathered before a module is built (default 32)... */
  batchBlocks?: number;
  /** ...or once the oldest of them has waited this long, in ms (default 20), or one of them is urgent (URGENT_FACTOR). */
  batchDelayMs?: number;
  /** Where modules are built and compiled; default: on the hart's thread, at once. */
  compiler?: ModuleCompiler;
}

/**
 * A module to build: the blocks, decoded from guest RAM, how the hart lays out its state,
 * and the host addresses of the earlier translations it imports (translateModule's `linked`).
 */
export interface CompileJob { id: number; blocks: Block[]; layout: TranslateLayout; linked: number[]; cross: CrossLink[] }

/** A built module: its job's id, the compiled module, its size in bytes and the ms it took. */
export interface CompiledModule { id: number; module: WebAssembly.Module; wasmBytes: number; ms: number }

/**
 * Builds translation modules off the hart's thread (see src/engine/node/jit-compiler.ts):
 * `submit` queues a job, `take` returns a finished one (in any order) or undefined, at once.
 * `ready` (absent: always true) tells whether a job submitted now would be started at once;
 * until it is, the code cache builds its modules on the hart's thread instead.
 */
export interface ModuleCompiler {
  submit(job: CompileJob): void;
  take(): CompiledModule | undefined;
  ready?(): boolean;
  close(): void;
}

/** Counters of one hart's code cache, for `--stats` and the bench. */
export interface CodeCacheStats {
  /** Blocks translated, and wasm modules built for them. */
  blocks: number;
  modules: number;
  /** Guest instructions in the translated blocks. */
  insns: number;
  /** Bytes of wasm generated. */
  wasmBytes: number;
  /** Earlier translations imported into newer modules (see CompileJob's `linked`). */
  links: number;
  /** Pages translated again because their blocks kept jumping through the trampoline to translated targets (relinked). */
  relinks: number;
  /** Time the hart's thread spent choosing, decoding, generating, compiling and instantiating, in ms. */
  compileMs: number;
  /** Time the compiler thread spent generating and compiling, in ms (0 without one). */
  offThreadMs: number;
  /** Times the whole cache was dropped because it was full. */
  flushes: number;
  /** Blocks live in the cache now. */
  live: number;
  /** Guest instructions retired by translated code so far. */
  retired: number;
  /** Times the interpreter's loop entered translated code (retired / entries: instructions run per entry). */
  entries: number;
}

/** Blocks a module gets at most (beyond the hot ones asked for, and those already translated in their pages). */
const MAX_MODULE_BLOCKS = 256;
/** Times a page's translated blocks are translated again into a newer module with its new hot blocks. */
const MAX_REGROUPS = 2;
/**
 * A page's translated blocks are translated again with its new hot ones only when its last
 * translation is at least this old (ms): a page that stays in use (a long-running loop's),
 * not one whose blocks become hot one batch after another while it runs once (a boot's).
 * Measured on a boot to 'true' (median of six): translating again at once and all the
 * successors of every block of a module, 2.63-2.73 s; this and the successors of the hot
 * blocks only, 2.24-2.35 s (a third of the wasm), the workloads of the boot bench the same.
 */
const REGROUP_AGE_MS = 300;

/** How often (ms) the relink ring (chain.ts) is sampled: the records written since the last sample, up to RELINK_SLOTS. */
const RELINK_SAMPLE_MS = 10;
/**
 * Samples within RELINK_WINDOW_MS (ms) that must show a page's blocks jumping through the
 * trampoline to a translated target before the page is relinked: a page that leaves
 * through it often, not one that did a few times.
 */
const RELINK_VOTES = 4;
const RELINK_WINDOW_MS = 1000;
/**
 * Jumps through "chainStatic" to translated targets per ms since the last sample below
 * which a sample votes for nothing: a boot makes about 200 a ms, and translating pages again
 * for them cost more than it saved; a long-running shell or awk loop, about 5000.
 */
const RELINK_MIN_RATE = 1000;
/** Times a page is relinked at most (until the cache is dropped). */
const MAX_RELINKS = 3;

/**
 * A batch is built at once, not waiting for batchBlocks or batchDelayMs, when one of its
 * block starts has run this many times the hot threshold (its block-map count, so at 2 as
 * many times again after it asked as before): a loop that runs
 * in a burst (a boot's sorts, copies and table walks) is otherwise over, interpreted, before
 * its translation comes (requests took 18 ms to publication, median, 12 of them waiting
 * in the batch). Measured on a boot to `true`, with a temporary count: instructions
 * interpreted at block starts past the threshold, 37 M without, 20 M with it (162 modules
 * instead of 120, the same compiler-thread time); boot medians of five alternating,
 * 3.62 s against 3.91 s (a noisy host: 3.1-4.2 s either way).
 */
const URGENT_FACTOR = 2;

/** Block-map count of a start that is not to be translated: does not reach the threshold again until reset. */
const NEVER = 0x8000_0000;
/** A page whose code is retired within this many ms of its translation counts a rapid retirement (data and code mixed, or code written in a loop). */
const RAPID_RETIRE_MS = 1000;
/** How long (ms) a block start is left to the interpreter when its page keeps being retired, or it cannot be translated. */
const NEVER_MS = 5000;

/**
 * A translated block: its table index, its function (null while its module is being
 * built), its page's code generation, the guest bytes it was made from, and whether it was
 * published.
 */
interface Installed { idx: number; fn: unknown; gen: number; bytes: Uint8Array; published: boolean }

/** Requested starts remembered as counted again once (see translate()); beyond, they are forgotten. */
const MAX_DECLINED = 65536;

/** True when the bit of the 2-byte parcel at byte `offset` (0-4095) of a page is set in `bits` (256 bytes, an innerByPage entry). */
function hasParcel(bits: Uint8Array, offset: number): boolean {
  return (bits[offset >>> 4] & (1 << ((offset >>> 1) & 7))) !== 0;
}

/** Set the bit of the 2-byte parcel at byte `offset` (0-4095) of a page in `bits` (see hasParcel). */
function markParcel(bits: Uint8Array, offset: number): void {
  bits[offset >>> 4] |= 1 << ((offset >>> 1) & 7);
}

/** A module being built: the code epoch when its pages were marked, its blocks in order, and the functions it imports (linked). */
interface Job { epoch: number; flushes: number; entries: Array<[number, Installed]>; links: unknown[] }

export class CodeCache {
  private readonly u32: Uint32Array;
  private readonly bytes: Uint8Array;
  private readonly i32: Int32Array;
  private readonly i64: BigInt64Array;
  private readonly view: DataView;
  private readonly pages: CodePages;
  private readonly hartBase: number;
  private readonly bmBase: number;
  private readonly layout: TranslateLayout;
  /** The hart's chain trampoline (chain.ts), imported by every module. */
  private readonly chain: unknown;
  /** The functions modules call through a table (translate.ts ENV_TABLE_FUNCTIONS), in its order. */
  private readonly envTable: WebAssembly.Table;
  private readonly installed = new Map<number, Installed>();
  /** The block starts in `installed`, by RAM page. */
  private readonly byPage = new Map<number, Set<number>>();
  /**
   * Per RAM page: a bit per 2-byte parcel of the page, set where an instruction after the
   * first of a block translated there (since the last flush) starts; and the requested
   * starts among them that were counted again instead of translated (see translate()).
   */
  private readonly innerByPage = new Map<number, Uint8Array>();
  private readonly declined = new Set<number>();
  /** Per RAM page: times its blocks were translated again into a newer module (MAX_REGROUPS), and when (performance.now()) it was last translated. */
  private readonly regroups = new Map<number, { count: number; at: number }>();
  private awaiting: Array<{ epoch: number; entries: Array<[number, Installed]> }> = [];
  /** Per RAM page: the code generation it was last translated in, when (performance.now()), and its rapid retirements in a row. */
  private readonly pageHistory = new Map<number, { gen: number; at: number; rapid: number }>();
  /** Block starts marked NEVER in the block map, and when (performance.now()) the mark is lifted. */
  private readonly nevers = new Map<number, number>();
  private nextNeverSweep = 0;
  private nextIndex = 1;
  /** Table indices of translations whose code was retired, to reuse (so the table and the modules it holds stay bounded). */
  private freeIndices: number[] = [];
  /** Modules being built by the compiler thread, by job id. */
  private readonly jobs = new Map<number, Job>();
  private nextJob = 1;
  private readonly compiler: ModuleCompiler | undefined;
  /** Blocks translated again (joining a newer module of their page) since the last flush. */
  private retranslated = 0;
  /** Hot block starts waiting for the next batch, and since when (performance.now()). */
  private pending: number[] = [];
  /** The virtual page (pc & ~0xfff, bigint) each pending request's page was run at, by physical page. */
  private pendingVa = new Map<number, bigint>();
  private pendingSince = 0;
  /** The relink ring's count at the last sample, and when (performance.now()) the next sample is due. */
  private relinkSeen = 0;
  private lastRelinkSample = 0;
  private nextRelinkSample = 0;
  /** Per RAM page: the samples that showed it (RELINK_VOTES) since `since` (performance.now()). */
  private readonly relinkVotes = new Map<number, { votes: number; since: number }>();
  /** Per RAM page: times it was relinked (MAX_RELINKS). */
  private readonly relinks = new Map<number, number>();
  /** Pages to relink with the next module: the virtual page (bigint) one of their blocks last ran at, by RAM page. */
  private relinkPages = new Map<number, bigint>();
  private readonly batchBlocks: number;
  private readonly hotThreshold: number;
  private readonly batchDelayMs: number;
  private readonly maxBlocks: number;
  private readonly maxPageRetirements: number;
  readonly stats: CodeCacheStats = { blocks: 0, modules: 0, insns: 0, wasmBytes: 0, links: 0, relinks: 0, compileMs: 0, offThreadMs: 0, flushes: 0, live: 0, retired: 0, entries: 0 };

  /**
   * @param memory the VM's shared memory
   * @param table the function table the hart's engine instance imports
   * @param engine that instance's exports
   * @param hartId this hart; @param hartCount harts of the VM (ids 0..hartCount-1)
   */
  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly table: WebAssembly.Table,
    private readonly engine: JitEngineExports,
    hartId: number,
    private readonly hartCount: number,
    options: CodeCacheOptions = {},
  ) {
    this.u32 = new Uint32Array(memory.buffer);
    this.bytes = new Uint8Array(memory.buffer);
    this.i32 = new Int32Array(memory.buffer);
    this.i64 = new BigInt64Array(memory.buffer);
    this.view = new DataView(memory.buffer);
    this.pages = new CodePages(memory);
    this.hartBase = HART_STATE_BASE + hartId * HART_STATE_SIZE;
    this.bmBase = JIT_BASE + hartId * JIT_HART_BYTES + 2 * JC_BYTES;
    this.layout = { rvcTable: RVC_TABLE, tlbTableBytes: TLB_TABLE_BYTES, xBase: this.hartBase + HS_X };
    this.maxBlocks = options.maxBlocks ?? 65536;
    this.maxPageRetirements = options.maxPageRetirements ?? 8;
    this.batchBlocks = options.batchBlocks ?? 32;
    this.batchDelayMs = options.batchDelayMs ?? 20;
    this.compiler = options.compiler;
    const trampoline = new WebAssembly.Instance(new WebAssembly.Module(chainModule(this.hartBase)), { env: { pc: engine.pc, memory, table } });
    this.chain = trampoline.exports.chain;
    const envFunctions: Record<EnvTableFunction, unknown> = {
      loadSlow: engine.loadSlow, storeSlow: engine.storeSlow, jitFp: engine.jitFp, jitAmo: engine.jitAmo, jitCsr: engine.jitCsr,
      chainStatic: trampoline.exports.chainStatic, jitStep: engine.jitStep,
    };
    this.envTable = new WebAssembly.Table({ initial: ENV_TABLE_FUNCTIONS.length, element: 'anyfunc' });
    ENV_TABLE_FUNCTIONS.forEach((name, k) => this.envTable.set(k, envFunctions[name]));
    this.hotThreshold = options.hotThreshold ?? DEFAULT_HOT_THRESHOLD;
    engine.jitEnable(1, this.hotThreshold);
  }

  /** Serve the queued requests and publish what the other harts allow. Call after each run(). */
  service(): void {
    const q = (this.hartBase + HS_JIT_REQ_COUNT) >> 2;
    const k = this.u32[q];
    if (k > 0) {
      for (let i = 0; i < k; i++) {
        const h = this.u32[((this.hartBase + HS_JIT_REQ) >> 2) + i];
        this.pendingVa.set(h >>> 12, BigInt.asUintN(64, this.i64[((this.hartBase + HS_JIT_REQ_PC) >> 3) + i]) & ~0xfffn);
        const done = this.installed.get(h);
        if (done && !done.published && done.gen === this.pages.generation(h)) continue; // being built or awaiting the other harts
        if (done && done.published && done.gen === this.pages.generation(h)) this.publish(h, done);
        else if (!this.pending.includes(h)) {
          if (!this.pending.length) this.pendingSince = performance.now();
          this.pending.push(h);
        }
      }
      this.u32[q] = 0;
    }
    const ring = (this.hartBase + HS_RELINK) >> 2;
    if (this.u32[ring] !== this.relinkSeen) {
      const now = performance.now();
      if (now >= this.nextRelinkSample) this.sampleRelinks(now);
    }
    const due = this.pending.length >= this.batchBlocks || (this.pending.length && (performance.now() - this.pendingSince >= this.batchDelayMs || this.urgent()));
    if (due || this.relinkPages.size) {
      const hosts = due ? this.pending : [];
      if (due) this.pending = [];
      const relink = this.relinkPages;
      this.relinkPages = new Map();
      this.translate(hosts, relink);
      this.pendingVa.clear();
    }
    for (let m = this.compiler?.take(); m; m = this.compiler?.take()) {
      const job = this.jobs.get(m.id);
      this.jobs.delete(m.id);
      this.stats.offThreadMs += m.ms;
      if (job) this.install(job, m.module, m.wasmBytes);
    }
    if (this.awaiting.length) this.publishAcknowledged();
    if (this.nevers.size && performance.now() >= this.nextNeverSweep) this.liftNevers();
  }

  /**
   * Read the relink ring's records written since the last sample (the last RELINK_SLOTS of
   * them): each page whose current translation shows there gets a vote, and a page with
   * RELINK_VOTES of them within RELINK_WINDOW_MS, translated at least REGROUP_AGE_MS ago and
   * relinked fewer than MAX_RELINKS times, is queued in relinkPages. `now`: performance.now().
   */
  private sampleRelinks(now: number): void {
    const base = this.hartBase + HS_RELINK;
    const count = this.u32[base >> 2];
    const rate = ((count - this.relinkSeen) >>> 0) / (now - this.lastRelinkSample);
    const fresh = Math.min((count - this.relinkSeen) >>> 0, RELINK_SLOTS);
    this.nextRelinkSample = now + RELINK_SAMPLE_MS;
    this.lastRelinkSample = now;
    this.relinkSeen = count;
    if (rate < RELINK_MIN_RATE) return;
    const voted = new Set<number>();
    for (let i = 1; i <= fresh; i++) {
      const rec = base + 16 + (((count - i) & (RELINK_SLOTS - 1)) << 4);
      const h = this.u32[(rec + 8) >> 2];
      const page = (h - RAM_OFFSET) >>> 12;
      if (voted.has(page)) continue;
      voted.add(page);
      const inst = this.installed.get(h);
      if (!inst?.published || inst.gen !== this.pages.generation(h) || (this.relinks.get(page) ?? 0) >= MAX_RELINKS) continue;
      let v = this.relinkVotes.get(page);
      if (!v || now - v.since > RELINK_WINDOW_MS) this.relinkVotes.set(page, v = { votes: 0, since: now });
      if (++v.votes < RELINK_VOTES) continue;
      this.relinkVotes.delete(page);
      if (now - (this.regroups.get(page)?.at ?? -Infinity) < REGROUP_AGE_MS) continue;
      this.relinks.set(page, (this.relinks.get(page) ?? 0) + 1);
      this.relinkPages.set(page, BigInt.asUintN(64, this.i64[rec >> 3]) & ~0xfffn);
      this.stats.relinks++;
    }
  }

  /**
   * True when a pending block start has run URGENT_FACTOR times the hot threshold (its
   * block-map count): a loop running in a burst (a boot's), which would finish interpreted
   * while the batch waits.
   */
  private urgent(): boolean {
    const limit = this.hotThreshold * URGENT_FACTOR;
    for (const h of this.pending) {
      const e = this.entryOf(h);
      if (e >= 0 && this.u32[e + 1] >= limit && this.u32[e + 1] < NEVER) return true;
    }
    return false;
  }

  /** Count again, from 0, the block starts whose NEVER mark has expired. */
  private liftNevers(): void {
    const now = performance.now();
    this.nextNeverSweep = now + NEVER_MS / 4;
    for (const [h, until] of this.nevers) {
      if (until > now) continue;
      this.nevers.delete(h);
      const e = this.entryOf(h);
      if (e >= 0 && this.u32[e + 1] >= NEVER) this.u32[e + 1] = 0;
    }
  }

  /**
   * Translate the blocks at host addresses `hosts` into one module, with the blocks already
   * translated in their pages when those are due for it (REGROUP_AGE_MS, MAX_REGROUPS), and
   * those of the pages of `relink` (RAM page to the virtual page it runs at) in any case.
   */
  private translate(hosts: number[], relink: ReadonlyMap<number, bigint> = new Map()): void {
    const t0 = performance.now();
    if (this.installed.size + hosts.length > this.maxBlocks || this.retranslated > 4 * this.maxBlocks) this.flush();
    const blocks: Block[] = [];
    const gens: number[] = [];
    const reuse: Array<number | undefined> = [];
    const chosen = new Set<number>();
    const pages = new Set<number>();
    // a requested start that is an instruction inside another block (of this batch or
    // translated before) runs in that block's function when control comes from its start:
    // it is counted again once instead, and translated if it still gets hot (entered another way)
    const within = new Set<number>();
    const decoded = new Map<number, Block | null>();
    for (const h of hosts) {
      const b = decodeBlock(this.view, h, this.layout);
      decoded.set(h, b);
      if (b) for (const ins of b.insns) if (ins.off !== 0) within.add(h + ins.off);
    }
    hosts = hosts.filter((h) => {
      const bits = this.innerByPage.get((h - RAM_OFFSET) >>> 12);
      const inner = within.has(h) || (bits !== undefined && hasParcel(bits, h & 0xfff));
      if (!inner || this.declined.has(h)) return true;
      if (this.declined.size >= MAX_DECLINED) this.declined.clear();
      this.declined.add(h);
      this.setCount(h, 0);
      return false;
    });
    for (const h of hosts) {
      const page = (h - RAM_OFFSET) >>> 12;
      const history = this.pageHistory.get(page);
      if (history && history.rapid >= this.maxPageRetirements && t0 - history.at < NEVER_MS) { this.never(h); continue; }
      const old = this.installed.get(h);
      if (old) {
        this.uninstall(h);
        // retired code: no lookup reaches its index any more (the epoch moved with its generation)
        if (old.gen !== this.pages.generation(h)) this.freeIndex(old.idx);
      }
      const gen = this.pages.mark(h);
      if (!history) this.pageHistory.set(page, { gen, at: t0, rapid: 0 });
      else if (history.gen !== gen) {
        // the page's code was retired since it was last translated (its generation moved)
        history.rapid = t0 - history.at < RAPID_RETIRE_MS ? history.rapid + 1 : 0;
        history.gen = gen;
        history.at = t0;
      }
      const b = decoded.get(h)!;
      if (!b) { this.never(h); continue; }
      blocks.push(b);
      gens.push(gen);
      reuse.push(undefined);
      chosen.add(h);
      pages.add(page);
    }
    for (const [p, va] of relink) {
      pages.add(p);
      this.pendingVa.set((RAM_OFFSET >>> 12) + p, va);
    }
    // the blocks already translated in these pages join the module, at their table index
    const regroup = [...pages].filter((p) => {
      let r = this.regroups.get(p);
      if (!r) this.regroups.set(p, r = { count: 0, at: -Infinity });
      const age = t0 - r.at;
      r.at = t0;
      if (!this.byPage.has(p)) return false;
      if (relink.has(p)) return true;
      if (r.count >= MAX_REGROUPS || age < REGROUP_AGE_MS) return false;
      r.count++;
      return true;
    });
    for (const h of regroup.flatMap((p) => [...this.byPage.get(p)!])) {
      const inst = this.installed.get(h)!;
      if (chosen.has(h) || inst.gen !== this.pages.generation(h) || !this.unchanged(h, inst)) continue;
      const b = decodeBlock(this.view, h, this.layout);
      if (!b) continue;
      blocks.push(b);
      gens.push(inst.gen);
      reuse.push(inst.idx);
      this.retranslated++;
    }
    if (!blocks.length) return;
    // with the blocks their page's code leads to from them (likely to be run next); not those
    // the added ones lead to: a module of every block reachable in its pages cost a boot 15%
    for (let i = 0, n = blocks.length; i < n && blocks.length < MAX_MODULE_BLOCKS; i++) {
      for (const h of successors(blocks[i])) {
        if (chosen.has(h) || this.installed.has(h)) continue;
        const b = decodeBlock(this.view, h, this.layout);
        if (!b) continue;
        chosen.add(h);
        blocks.push(b);
        gens.push(gens[i]);
        reuse.push(undefined);
      }
    }
    // earlier translations of the same code generation these blocks jump to: imported
    const inModule = new Set(blocks.map((b) => b.host));
    const linked: number[] = [];
    const links: unknown[] = [];
    for (let i = 0; i < blocks.length; i++) {
      for (const h of successors(blocks[i])) {
        if (inModule.has(h) || linked.includes(h)) continue;
        const inst = this.installed.get(h);
        if (inst?.published && inst.fn && inst.gen === gens[i]) { linked.push(h); links.push(inst.fn); }
      }
    }
    // jumps to other pages: the translation the hart's execute TLB maps the target to now,
    // in this module or imported too, and called only while the TLB still maps it there (CrossLink)
    const cross: CrossLink[] = [];
    const genOf = new Map(blocks.map((b, i) => [b.host, gens[i]]));
    for (const b of blocks) {
      const vaPage = this.pendingVa.get(b.host >>> 12);
      if (vaPage === undefined) continue;
      const va = vaPage | BigInt(b.host & 0xfff);
      for (const off of crossTargets(b)) {
        const h = this.execTlbHost(BigInt.asUintN(64, va + BigInt(off)));
        if (h === null) continue;
        const g = genOf.get(h);
        if (g !== undefined) {
          if (g === this.pages.generation(h)) cross.push({ from: b.host, off, host: h, gen: g });
          continue;
        }
        const inst = this.installed.get(h);
        if (!inst?.published || !inst.fn || inst.gen !== this.pages.generation(h)) continue;
        if (!linked.includes(h)) { linked.push(h); links.push(inst.fn); }
        cross.push({ from: b.host, off, host: h, gen: inst.gen });
      }
    }
    const entries: Array<[number, Installed]> = blocks.map((b, i) => {
      // the block's bytes in its page (a STRADDLE's second half is the engine's to fetch)
      const inst = { idx: reuse[i] ?? this.freeIndices.pop() ?? this.nextIndex++, fn: null, gen: gens[i], bytes: this.bytes.slice(b.host, Math.min(b.host + b.end, b.host - (b.host % 4096) + 4096)), published: false };
      this.setInstalled(b.host, inst);
      const page = (b.host - RAM_OFFSET) >>> 12;
      let bits = this.innerByPage.get(page);
      if (!bits) this.innerByPage.set(page, bits = new Uint8Array(256));
      for (const ins of b.insns) {
        const at = (b.host & 0xfff) + ins.off;
        if (ins.off !== 0 && at < 0x1000) markParcel(bits, at);
      }
      this.stats.insns += b.insns.length;
      return [b.host, inst];
    });
    const job: Job = { epoch: this.pages.epoch(), flushes: this.stats.flushes, entries, links };
    this.stats.links += links.length;
    this.stats.blocks += blocks.length;
    this.stats.live = this.installed.size;
    // until the compiler thread has loaded (it starts with the hart, and took until 150-400 ms
    // after the hart's first instruction in a boot), the hart builds the module itself: a
    // boot's first hot loops (the kernel's early page initialisation) ran interpreted for the
    // 50-150 ms their jobs waited for the thread. Boots to a command, 16 alternating a side:
    // the guest's clock at the command 1.515 s against 1.570 s (medians; sooner in 11 of 16
    // pairs), 4.5% fewer instructions interpreted (in all 16)
    if (this.compiler && (this.compiler.ready?.() ?? true)) {
      const id = this.nextJob++;
      this.jobs.set(id, job);
      this.compiler.submit({ id, blocks, layout: this.layout, linked, cross });
      this.stats.compileMs += performance.now() - t0;
      return;
    }
    const bytes = translateModule(blocks, this.layout, linked, cross);
    this.stats.compileMs += performance.now() - t0;
    this.install(job, new WebAssembly.Module(bytes), bytes.length);
  }

  /**
   * The host address the hart's execute TLB maps virtual address `va` to (the table of
   * the privilege Linux runs such addresses at: S for the upper half, U for the lower), or
   * null when the TLB does not hold its page or it is not in RAM.
   */
  private execTlbHost(va: bigint): number | null {
    const vpn = va >> 12n;
    const table = (va >> 63n === 1n ? 0 : 3) + 2; // S or U tables, then R, W, X
    const s = this.hartBase + HS_TLB + table * TLB_TABLE_BYTES + (Number(vpn & BigInt(TLB_SETS - 1)) << 5);
    const e = BigInt.asUintN(64, this.i64[s >> 3]) === vpn ? s : BigInt.asUintN(64, this.i64[(s + 16) >> 3]) === vpn ? s + 16 : -1;
    if (e < 0) return null;
    const h = (Number(va & 0xffffffffn) + this.u32[(e + 8) >> 2]) >>> 0;
    return h >= RAM_OFFSET && h < this.bytes.length ? h : null;
  }

  /** Instantiate a built module and queue its blocks for publication (unless the cache was flushed since). */
  private install(job: Job, module: WebAssembly.Module, wasmBytes: number): void {
    if (job.flushes !== this.stats.flushes) return;
    const t0 = performance.now();
    const e = this.engine;
    const instance = new WebAssembly.Instance(module, {
      env: {
        memory: this.memory, envTable: this.envTable, chain: this.chain,
        pc: e.pc, excPending: e.excPending, tlbCur: e.tlbCur, stoppedBefore: e.stoppedBefore,
      },
      link: Object.fromEntries(job.links.map((fn, k) => [`l${k}`, fn])),
    });
    const need = this.nextIndex - this.table.length;
    if (need > 0) this.table.grow(need);
    job.entries.forEach(([, inst], i) => { inst.fn = instance.exports[`b${i}`]; });
    this.awaiting.push({ epoch: job.epoch, entries: job.entries });
    this.stats.modules++;
    this.stats.wasmBytes += wasmBytes;
    this.stats.compileMs += performance.now() - t0;
    this.publishAcknowledged();
  }

  /** Publish the batches every other hart has caught up with. */
  private publishAcknowledged(): void {
    while (this.awaiting.length) {
      const a = this.awaiting[0];
      for (let j = 0; j < this.hartCount; j++) {
        const base = (HART_STATE_BASE + j * HART_STATE_SIZE) >> 2;
        if (base === this.hartBase >> 2) continue;
        if (Atomics.load(this.i32, base + (HS_IN_RUN >> 2)) !== 0 && Atomics.load(this.i32, base + (HS_JIT_SEEN >> 2)) - a.epoch < 0) return;
      }
      this.awaiting.shift();
      for (const [h, inst] of a.entries) {
        if (this.installed.get(h) !== inst) continue;
        // a hart that had not caught up may have written the page through a write-TLB entry
        // filled before the page became code, without retiring it: publish only unchanged code
        if (this.unchanged(h, inst)) this.publish(h, inst);
        else { this.uninstall(h); this.setCount(h, 0); }
      }
    }
  }

  private unchanged(h: number, inst: Installed): boolean {
    const now = this.bytes.subarray(h, h + inst.bytes.length);
    for (let i = 0; i < now.length; i++) if (now[i] !== inst.bytes[i]) return false;
    return true;
  }

  /** The u32 index of the block-map set of host address `h` (BM_WAYS ways of 4 u32 each; see src/engine/as/jit.ts). */
  private setOf(h: number): number {
    return (this.bmBase + ((((h >>> 1) ^ (h >>> 14)) & (BM_ENTRIES / BM_WAYS - 1)) * (BM_WAYS << 4))) >> 2;
  }

  /** The u32 index of `h`'s block-map entry, or -1 when no way of its set holds it. */
  private entryOf(h: number): number {
    const s = this.setOf(h);
    for (let w = s; w < s + 4 * BM_WAYS; w += 4) if (this.u32[w] === h) return w;
    return -1;
  }

  private setInstalled(h: number, inst: Installed): void {
    this.installed.set(h, inst);
    const page = (h - RAM_OFFSET) >>> 12;
    let set = this.byPage.get(page);
    if (!set) this.byPage.set(page, set = new Set());
    set.add(h);
  }

  private uninstall(h: number): void {
    if (!this.installed.delete(h)) return;
    const page = (h - RAM_OFFSET) >>> 12;
    const set = this.byPage.get(page)!;
    set.delete(h);
    if (!set.size) this.byPage.delete(page);
  }

  private publish(h: number, inst: Installed): void {
    inst.published = true;
    this.table.set(inst.idx, inst.fn);
    let e = this.entryOf(h);
    if (e < 0) {
      // its entry was replaced meanwhile: it takes the way the engine would give a new start (bmVictim)
      const s = this.setOf(h);
      e = s + 4 * (BM_WAYS - 1);
      let least = Infinity;
      for (let w = s; w < s + 4 * BM_WAYS; w += 4) if (this.u32[w + 2] === 0 && this.u32[w + 1] < least) { least = this.u32[w + 1]; e = w; }
    }
    this.u32[e] = h;
    this.u32[e + 1] = 0;
    this.u32[e + 2] = inst.idx;
    this.u32[e + 3] = inst.gen;
  }

  /** A block start not to be translated: not counted to the threshold again for NEVER_MS. */
  private never(h: number): void {
    this.setCount(h, NEVER);
    this.nevers.set(h, performance.now() + NEVER_MS);
  }

  /** Reuse table index `idx` for a later translation; its old function can be collected. */
  private freeIndex(idx: number): void {
    if (idx < this.table.length) this.table.set(idx, null);
    this.freeIndices.push(idx);
  }

  /** Set the execution count of block start `h` in the block map (if it is there), with no translation. */
  private setCount(h: number, count: number): void {
    const e = this.entryOf(h);
    if (e >= 0) { this.u32[e + 1] = count; this.u32[e + 2] = 0; }
  }

  /** Drop every translation of this hart (the cache is full). */
  private flush(): void {
    this.engine.jitForgetAll();
    // indices of modules still being built are past the table's end (it grows at install)
    for (let i = 1, end = Math.min(this.nextIndex, this.table.length); i < end; i++) this.table.set(i, null);
    this.installed.clear();
    this.byPage.clear();
    this.innerByPage.clear();
    this.declined.clear();
    this.regroups.clear();
    this.relinkVotes.clear();
    this.relinks.clear();
    this.relinkPages.clear();
    this.awaiting = [];
    this.jobs.clear();
    this.nextIndex = 1;
    this.freeIndices = [];
    this.retranslated = 0;
    this.stats.flushes++;
    this.stats.live = 0;
  }
}
