// The interpreter's side of the JIT (src/engine/jit/ translates; this file finds and
// runs the translations). Translated blocks live in the function table the engine
// imports (env.table); each takes (budget i32, entry pc i64), runs, sets pc and returns
// the budget left.
//
// Lookup, per hart, in its JIT area of linear memory (layout.ts):
//  - two jump caches (S, U), direct-mapped on the virtual pc: {pc u64, table index u32,
//    flush generation u24 and, in a counting entry, executions not yet in the block map u8};
//    flushed (in O(1): the generation moves) with the TLB
//    (sfence.vma; a satp write flushes the U one only, see mmu.satpChanged), on fence.i and
//    when the code epoch moves. An entry is either a translation or a counting entry (a
//    start with no translation yet, COUNTING: the chain trampoline returns to the
//    dispatcher there, which counts it);
//  - the block map, BM_WAYS-way set-associative on the host address of the block's first
//    instruction (its physical address): {host u32, executions u32, table index u32, code
//    generation u32} per way; a translated start found moves to its set's first way, and a
//    new start replaces the way without a translation counted least, or else the last way
//    (see bmVictim). A block start is counted each time control reaches it by a jump (in
//    its counting entry, which adds its counts to the block map up to COUNT_BATCH at a
//    time); at hotThreshold it is queued for translation (HS_JIT_REQ). The host writes the table
//    index and the page's code generation when the translation is ready; an entry whose
//    generation is no longer the page's (its code was written since) is counted again.
//
// Translated code also looks targets up in the current jump cache itself, through the chain
// trampoline (src/engine/jit/chain.ts), which relies on allowChain() below.
//
// Self-modifying code: a page with translated code has an odd generation (CODE_GEN) and is
// never in a write TLB, so every store to it reaches mmu.noteCodeWrite, which makes the
// generation even and bumps the code epoch; each hart flushes its jump caches when it sees
// the epoch move, before it runs another block.

import {
  CODE_EPOCH, CODE_GEN, JIT_BASE, JIT_HART_BYTES, JC_ENTRIES, JC_BYTES, JC_COUNTING, BM_ENTRIES, BM_WAYS,
  HS_JIT_SEEN, HS_IN_RUN, HS_JIT_REQ_COUNT, HS_JIT_REQ, HS_JIT_REQ_PC, JIT_REQ_MAX, HS_RS_DEPTH, HS_CHAIN_JC, HS_CHAIN_GEN, JC_FILTER_BYTES,
} from './layout';
import * as mmu from './mmu';

/** False until the host enables the JIT (jitEnable). */
let enabled: bool = false;
/** Jump-target executions of a block start before it is queued for translation. */
let hotThreshold: u32 = 4000; // the host sets it (jitEnable; DEFAULT_HOT_THRESHOLD in src/engine/jit/code-cache.ts)
let bmBase: u32 = 0;
/**
 * A jump-cache entry whose table index has this bit is a counting entry: a block start with
 * no translation (yet); the low bits hold its host address >> 1.
 */
const COUNTING: u32 = JC_COUNTING;
/** The jump caches' generations (S, U): an entry filled under another one is empty. They stay below 2^24 (GEN_MASK). */
let jcGenS: u32 = 1;
let jcGenU: u32 = 1;
/**
 * The last word of a jump-cache entry: the flush generation in its low 24 bits; in a
 * counting entry, the executions it has counted itself in the high 8 (COUNT_SHIFT), which
 * go to the block map COUNT_BATCH at a time, or when the entry is filled again (miss). The
 * chain trampoline compares the whole word with the generation: a counting entry is a miss
 * to it either way.
 */
const GEN_MASK: u32 = 0xffffff;
const COUNT_SHIFT: u32 = 24;
/**
 * Executions of a counting entry's start that go to the block map at once, at most. The
 * block map (1 MiB a hart) missed the host's caches at most of the interpreter's block
 * starts: `counted` took 7.5% of the hart thread's time in a boot and 11% in a fork/exec
 * loop (perf); the jump-cache entry is in cache, the dispatcher has just read it.
 */
const COUNT_BATCH: u32 = 16;
/** COUNT_BATCH, or fewer under a low hot threshold (one below 64: every execution goes to the block map); see jitEnable. */
let countBatch: u32 = 1;
/** The code epoch this hart last caught up with. */
let seenEpoch: i32 = 0;
/** Set by a block that stopped before an instruction it does not translate (see cpu.ts runSlice). */
export let stoppedBefore: bool = false;
/** Instructions retired by translated code (the rest of instret is the interpreter's). */
export let jitRetired: u64 = 0;
export function getJitRetired(): u64 { return jitRetired; }
/** Times translated code was entered from the interpreter's loop (each ran one or more chained blocks). */
export let jitCalls: u64 = 0;
export function getJitCalls(): u64 { return jitCalls; }

/** Called from init(): this hart's JIT area. */
export function jitInit(hartId: u32): void {
  const jcBase = JIT_BASE + hartId * JIT_HART_BYTES;
  mmu.jcBase = jcBase;
  mmu.setPriv(mmu.priv);
  bmBase = jcBase + 2 * JC_BYTES;
  clearJumpCaches();
  for (let p = bmBase; p < bmBase + BM_ENTRIES * 16; p += 8) store<u64>(p, 0);
  store<u32>(mmu.hartBase + HS_JIT_REQ_COUNT, 0);
}

/** Turn translated code on or off for this hart; `threshold` as hotThreshold (at least 1). */
export function jitEnable(on: bool, threshold: u32): void {
  enabled = on;
  hotThreshold = threshold < 1 ? 1 : threshold;
  countBatch = min(COUNT_BATCH, max(1, hotThreshold >> 6));
  mmu.jumpCacheStale = true;
}

/** Forget every translation (the host dropped its code cache): jump caches and block map. */
export function jitForgetAll(): void {
  for (let p = bmBase; p < bmBase + BM_ENTRIES * 16; p += 8) store<u64>(p, 0);
  mmu.jumpCacheStale = true;
}

/** Catch up with the code epoch: flush both jump caches and the write TLBs, publish the epoch seen. */
export function jitResync(): void {
  const e = atomic.load<i32>(CODE_EPOCH);
  if ((++jcGenS & GEN_MASK) == 0 || (++jcGenU & GEN_MASK) == 0) clearJumpCaches();
  mmu.userJumpCacheStale = false;
  clearPageFilter();
  if (e != seenEpoch) mmu.tlbFlushWrites();
  seenEpoch = e;
  mmu.jumpCacheStale = false;
  atomic.store<i32>(mmu.hartBase + HS_JIT_SEEN, e);
}

/** At entry to run(): mark this hart running, then catch up with the epoch (the host's publish check relies on this order). */
export function jitEnterRun(): void {
  atomic.store<i32>(mmu.hartBase + HS_IN_RUN, 1);
  if (atomic.load<i32>(CODE_EPOCH) != seenEpoch) jitResync();
}
/** At exit from run(). */
export function jitLeaveRun(): void {
  atomic.store<i32>(mmu.hartBase + HS_IN_RUN, 0);
}

/** Empty both jump caches entry by entry, generation 1. */
function clearJumpCaches(): void {
  for (let p = mmu.jcBase; p < mmu.jcBase + 2 * JC_BYTES; p += 16) { store<u64>(p, 0xffffffffffffffff); store<u32>(p, 0, 12); }
  clearPageFilter();
  jcGenS = 1;
  jcGenU = 1;
}

/** Empty the jump caches' page filters (mmu.jcPages, mmu.jcPagesU: layout.ts HS_JC_PAGES). */
function clearPageFilter(): void {
  clearFilter(mmu.jcPages);
  clearFilter(mmu.jcPagesU);
  mmu.sExecLow = false;
  mmu.uExecHigh = false;
}

function clearFilter(f: u32): void {
  for (let p = f; p < f + JC_FILTER_BYTES; p += 8) store<u64>(p, 0);
}

/** The U-mode jump cache only is stale (a satp write, see mmu.satpChanged): flush it. */
export function jitFlushUserJumpCache(): void {
  if ((++jcGenU & GEN_MASK) == 0) clearJumpCaches();
  clearFilter(mmu.jcPagesU);
  mmu.uExecHigh = false;
  mmu.userJumpCacheStale = false;
}

/**
 * The jump caches are valid (caught up with the code epoch, not stale): let translated code
 * look up its successors in the current one itself (src/engine/jit/chain.ts). Nothing that
 * translated code runs changes which jump cache is current or its generation; a change of
 * the code epoch is checked by the lookup itself.
 */
@inline function allowChain(): void {
  store<u32>(mmu.hartBase + HS_RS_DEPTH, 0); // no wasm call of translated code is on the stack
  store<u32>(mmu.hartBase + HS_CHAIN_JC, mmu.jcCur);
  store<u32>(mmu.hartBase + HS_CHAIN_GEN, mmu.priv == 0 ? jcGenU : jcGenS);
}

/** The jump-cache entry of pc in the current cache (src/engine/jit/chain.ts computes the same hash in wasm). */
@inline function jumpCacheEntry(pc: u64): u32 {
  return mmu.jcCur + (((<u32>(pc >> 1) ^ <u32>(pc >> 13)) & (JC_ENTRIES - 1)) << 4);
}

/**
 * Run translated code at pc if there is some, with `n` instructions of budget; returns the
 * budget left (n when nothing ran). `jumped`: control reached pc by a jump, branch or trap
 * (a block start). Only then is the jump cache looked at: an instruction the interpreter
 * reaches by falling through stays with it until the next jump (a lookup before every
 * interpreted instruction cost a boot 4%, and the interpreter 13% of its speed).
 */
@inline export function jitTry(n: i32, jumped: bool): i32 {
  if (!jumped) return n;
  const pc = mmu.pc;
  let e = jumpCacheEntry(pc);
  const w = load<u32>(e, 12);
  let again = true;
  if (load<u64>(e) == pc && (w & GEN_MASK) == (mmu.priv == 0 ? jcGenU : jcGenS)) {
    const idx = load<u32>(e, 8);
    if ((idx & COUNTING) == 0) {
      if (!mmu.jumpCacheStale && atomic.load<i32>(CODE_EPOCH) == seenEpoch) { allowChain(); return call_indirect<i32>(idx, n, pc); }
      jitResync();
    } else if (enabled) {
      if ((w >> COUNT_SHIFT) + 1 < countBatch) { store<u32>(e, w + (1 << COUNT_SHIFT), 12); return n; }
      store<u32>(e, w & GEN_MASK, 12);
      if (counted(idx << 1, pc, countBatch) == 0) return n;
      again = false;
    }
    // else a counting entry whose start has a translation in the block map now
  }
  if (enabled && miss(pc, e, again)) { allowChain(); return call_indirect<i32>(load<u32>(e, 8), n, pc); }
  return n;
}

/**
 * Jump-cache miss at a block start, or a counting entry: fill the entry from the block map
 * (true), or count the start there and leave a counting entry (false), which counts the
 * next executions itself (jitTry). An entry that a flush left with the same start goes on
 * counting without a look at the block map, unless `again` is false (jitTry found the
 * start translated there).
 *
 * The executions an entry counted and had not yet added to the block map are added when the
 * entry is filled again, whether it was flushed or another start takes it: an earlier
 * scheme, which added them only at 16, lost them then, and code run once per request (a
 * server's network path) stayed interpreted: 2000 HTTP GETs against busybox httpd took a
 * median of 6.9 ms against 5.4-5.9 ms with every execution counted in the block map (QEMU's:
 * 5.9 ms).
 */
function miss(pc: u64, e: u32, again: bool): bool {
  if (mmu.jumpCacheStale || atomic.load<i32>(CODE_EPOCH) != seenEpoch) jitResync();
  const h = mmu.execHost(pc);
  if (h == 0) return false;
  const gen = mmu.priv == 0 ? jcGenU : jcGenS;
  const w = load<u32>(e, 12);
  let add: u32 = 1;
  if (again && load<u64>(e) == pc && load<u32>(e, 8) == (COUNTING | (h >> 1))) {
    // the same start, which this entry counted before the cache was flushed (a context
    // switch flushes the U one): it goes on counting there
    const l = (w >> COUNT_SHIFT) + 1;
    if (l < countBatch) { store<u32>(e, gen | (l << COUNT_SHIFT), 12); return false; }
    add = l;
  } else if ((w >> COUNT_SHIFT) != 0) addPending(load<u32>(e, 8) << 1, w >> COUNT_SHIFT);
  store<u64>(e, pc);
  store<u32>(e, COUNTING | (h >> 1), 8);
  store<u32>(e, gen, 12);
  const b = counted(h, pc, add);
  if (b == 0) return false;
  // way b of the block map has a translation of h
  const s = bmSet(h);
  const idx = load<u32>(b, 8);
  if (load<u32>(b, 12) == atomic.load<u32>(CODE_GEN + ((h - mmu.ramOff) >> 12 << 2))) {
    // most recently used first: the last way is the one a new start may take from a translation
    if (b != s) {
      const g = load<u32>(b, 12);
      for (let w = b; w > s; w -= 16) { store<u64>(w, load<u64>(w - 16)); store<u64>(w, load<u64>(w - 8), 8); }
      store<u32>(s, h);
      store<u32>(s, 0, 4);
      store<u32>(s, idx, 8);
      store<u32>(s, g, 12);
    }
    store<u32>(e, idx, 8);
    const user = mmu.priv == 0;
    mmu.filterAdd(user ? mmu.jcPagesU : mmu.jcPages, pc >> 12);
    if (user && <i64>pc < 0) mmu.uExecHigh = true;
    else if (!user && <i64>pc >= 0) mmu.sExecLow = true;
    return true;
  }
  // its page was written since: counted again, from this execution
  firstCount(h, b, pc, 1);
  return false;
}

/** The first way of host address `h`'s block-map set. */
@inline function bmSet(h: u32): u32 {
  return bmBase + ((((h >> 1) ^ (h >> 14)) & (BM_ENTRIES / BM_WAYS - 1)) * (BM_WAYS << 4));
}

/** The way of the block map that holds start `h`, or 0 when its set has none. */
@inline function bmWay(h: u32): u32 {
  const s = bmSet(h);
  for (let b = s; b < s + (BM_WAYS << 4); b += 16) if (load<u32>(b) == h) return b;
  return 0;
}

/**
 * Count `add` executions of block start `h` (the host address a counting entry holds,
 * virtual pc `pc`) in the block map, without translating pc again; returns 0 when done, or
 * (nothing counted) the way that holds a translation of `h`: miss() checks it, from pc.
 * The entry's `h` may be stale (the jump cache is flushed when the cache is found stale,
 * not here), which miscounts at worst: no translation is entered through it.
 */
function counted(h: u32, pc: u64, add: u32): u32 {
  let b = bmWay(h);
  if (b == 0) {
    b = bmVictim(bmSet(h));
    store<u32>(b, h);
    firstCount(h, b, pc, add);
    return 0;
  }
  if (load<u32>(b, 8) != 0) return b;
  const old = load<u32>(b, 4);
  const c = old + add;
  store<u32>(b, c, 4);
  if (old < hotThreshold && c >= hotThreshold) request(h, b, pc);
  return 0;
}

/**
 * Add the `add` executions a jump-cache entry counted for start `h` to its block-map count,
 * if the block map has it with no translation. One that reaches the threshold stops just
 * below it: the entry's pc may no longer map to `h`, and the start's next counted
 * execution asks for it with a pc that does.
 */
function addPending(h: u32, add: u32): void {
  const b = bmWay(h);
  if (b == 0 || load<u32>(b, 8) != 0) return;
  const old = load<u32>(b, 4);
  let c = old + add;
  if (old < hotThreshold && c >= hotThreshold) c = hotThreshold - 1;
  store<u32>(b, c, 4);
}

/** Way `b` of the block map counts start `h` from `add` executions (this one included), with no translation. */
@inline function firstCount(h: u32, b: u32, pc: u64, add: u32): void {
  store<u32>(b, add, 4);
  store<u32>(b, 0, 8);
  if (hotThreshold <= add) request(h, b, pc);
}

/**
 * The way of block-map set `s` a new start replaces: of those without a translation (a
 * translated start that lost its entry would be counted, and translated, again) the one
 * counted least; else the last (the least recently found, see miss).
 */
function bmVictim(s: u32): u32 {
  let v = s + ((BM_WAYS - 1) << 4);
  let least: u32 = 0xffffffff;
  for (let w = s; w < s + (BM_WAYS << 4); w += 16) {
    if (load<u32>(w, 8) == 0 && load<u32>(w, 4) < least) { least = load<u32>(w, 4); v = w; }
  }
  return v;
}

function request(h: u32, b: u32, pc: u64): void {
  const q = mmu.hartBase + HS_JIT_REQ_COUNT;
  const k = load<u32>(q);
  if (k >= JIT_REQ_MAX) { store<u32>(b, 0, 4); return; } // queue full: count it again later
  store<u32>(mmu.hartBase + HS_JIT_REQ + (k << 2), h);
  store<u64>(mmu.hartBase + HS_JIT_REQ_PC + (k << 3), pc);
  store<u32>(q, k + 1);
}
