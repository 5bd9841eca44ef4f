// Hart state shared by the interpreter, and the memory-management unit:
// Sv39/Sv48 page-table walk with hardware A/D updates, a software TLB and
// guest physical memory access (RAM in the shared wasm memory, MMIO through
// the host).  RISC-V privileged spec 20211203, section 4.3 (Sv32 walk
// algorithm, 4.3.2), 4.4 (Sv39), 4.5 (Sv48).

import { RAM_BASE, HS_X, HS_F, HS_IRQ, HS_TLB, HS_JC_PAGES, HS_JC_PAGES_U, HS_SUPER, SUPER_MAX, HS_S_USER, S_USER_MAX, TLB_SETS, TLB_TABLE_BYTES, CODE_GEN, CODE_EPOCH, JC_BYTES } from './layout';

// ---------------------------------------------------------------- host calls

/** Read `size` (1, 2, 4) bytes of MMIO at guest physical `pa` (< 4 GiB). Returns the value or -1 with `mmioFault` set by the host. */
@external("env", "mmioRead")
declare function hostMmioRead(pa: u32, size: i32): i32;
/** Write `size` bytes of MMIO at guest physical `pa`. Returns 0, or 1 when the address is not backed by a device (access fault). */
@external("env", "mmioWrite")
declare function hostMmioWrite(pa: u32, size: i32, value: i32): i32;
/** 1 when the last mmioRead hit no device. */
@external("env", "mmioReadFault")
declare function hostMmioReadFault(): i32;

// ---------------------------------------------------------------- state

/** Base of this hart's state block in linear memory. */
export let hartBase: u32 = 0;
/** Address of x0 (x registers are u64 at xBase + 8*i). */
export let xBase: u32 = 0;
export let fBase: u32 = 0;
export let irqWord: u32 = 0;
/** Linear-memory offset of guest physical RAM_BASE. */
export let ramOff: u32 = 0;
/** RAM size in bytes. */
export let ramSize: u64 = 0;
export let hartId: u64 = 0;

export let pc: u64 = 0;
/** Privilege level: 0 = U, 1 = S. */
export let priv: u32 = 1;

// satp fields
export let satpMode: u32 = 0;  // 0 bare, 8 Sv39, 9 Sv48
export let satpAsid: u64 = 0;
export let satpPpn: u64 = 0;
// sstatus bits that affect translation
export let sum: bool = false;
export let mxr: bool = false;

/** Pending synchronous exception: cause + 1 (0 = none). */
export let excCause: u64 = 0;
export let excPending: bool = false;
export let excTval: u64 = 0;

// TLB: table t = privIndex*3 + access; entries of {tag u64, addend u32, pad u32}
export const ACC_R: u32 = 0;
export const ACC_W: u32 = 1;
export const ACC_X: u32 = 2;
let tlbBase: u32 = 0;
/** Base of the current privilege's three tables. */
export let tlbCur: u32 = 0;
/** The JIT's jump caches (jit.ts): this hart's, and the current privilege's. */
export let jcBase: u32 = 0;
export let jcCur: u32 = 0;
let sTlbHasUser: bool = false;
/** Entries recorded at HS_S_USER (S-mode entries of user pages), or more than S_USER_MAX of them. */
let sUserCount: u32 = 0;
/**
 * Superpage leaves recorded at HS_SUPER for the lower (user) / upper half of the address
 * space since the last flush; SUPER_MAX + 1: more than fit (every one-page fence of that
 * half then flushes everything).
 */
let superLow: u32 = 0;
let superHigh: u32 = 0;
/** The offset mask of the superpage leaf the last walk ended at (0: a 4 KiB page). */
let walkSuperMask: u64 = 0;
/**
 * The jump caches' page filters (HS_JC_PAGES, HS_JC_PAGES_U: two hashes of the virtual
 * page number, 4096 bits each), cleared with their cache (src/engine/as/jit.ts).
 */
export let jcPages: u32 = 0;
export let jcPagesU: u32 = 0;
/**
 * The S-mode jump cache holds a pc of the lower half of the address space / the U-mode one
 * a pc of the upper half (neither happens under Linux: its kernel runs in the upper half,
 * its processes in the lower one). Cleared with the cache.
 */
export let sExecLow: bool = false;
export let uExecHigh: bool = false;

// Fetch cache: the virtual page of the last fetch and its host address.
export let fetchVpn: u64 = 0xffffffffffffffff;
export let fetchHost: u32 = 0;

export function initState(base: u32, id: u64, ramOffset: u32, ramBytes: u64): void {
  hartBase = base;
  xBase = base + HS_X;
  fBase = base + HS_F;
  irqWord = base + HS_IRQ;
  tlbBase = base + HS_TLB;
  jcPages = base + HS_JC_PAGES;
  jcPagesU = base + HS_JC_PAGES_U;
  ramOff = ramOffset;
  ramSize = ramBytes;
  hartId = id;
  setPriv(1);
  tlbFlush();
}

@inline export function getX(r: u32): u64 { return load<u64>(xBase + (r << 3)); }
@inline export function setX(r: u32, v: u64): void { store<u64>(xBase + (r << 3), v); }
@inline export function getF(r: u32): u64 { return load<u64>(fBase + (r << 3)); }
@inline export function setF(r: u32, v: u64): void { store<u64>(fBase + (r << 3), v); }

export function setPriv(p: u32): void {
  priv = p;
  tlbCur = tlbBase + (p == 0 ? 3 * TLB_TABLE_BYTES : 0);
  jcCur = jcBase + (p == 0 ? JC_BYTES : 0);
  fetchVpn = 0xffffffffffffffff;
}

/**
 * A write to satp: flush every TLB entry and the U-mode jump cache; the S-mode jump cache
 * holds kernel code reached through global mappings, the same in every address space,
 * and is flushed only if a non-global S-mode fetch translation was cached since.
 */
export function satpChanged(): void {
  flushKeepingGlobalCode();
}

/**
 * SFENCE.VMA with rs1 = x0 and rs2 != x0 (privileged spec 4.2.1): a fence for one address
 * space, which "does not order accesses to global mappings". Every TLB entry goes (this
 * TLB does not tag entries with the ASID), and the U-mode jump cache; the S-mode one stays
 * as on a satp write, for the same reason. Linux fences every address space it unmaps from
 * (fork, exit, exec, munmap) this way: flushing the kernel's jump cache each time sent most
 * of its code back through the block map.
 */
export function tlbFlushAsid(): void {
  flushKeepingGlobalCode();
}

function flushKeepingGlobalCode(): void {
  const keepS = !sExecNonGlobal && !jumpCacheStale;
  tlbFlush();
  if (keepS) { jumpCacheStale = false; userJumpCacheStale = true; }
}

/** Flush every TLB entry and the fetch cache (sfence.vma, satp writes); the JIT's jump caches follow. */
export function tlbFlush(): void {
  flushTables(0, 6);
  fetchVpn = 0xffffffffffffffff;
  sTlbHasUser = false;
  sUserCount = 0;
  superLow = 0;
  superHigh = 0;
  sExecNonGlobal = false;
  jumpCacheStale = true;
}

/**
 * SFENCE.VMA with rs1 = `va` (privileged spec 4.2.1): drop the translations of the page of
 * `va` only, unless it lies in a superpage the TLB holds slices of (HS_SUPER: one leaf of
 * a superpage covers other pages too: then all of them); a JIT jump cache follows only
 * if it may hold a pc of that page (its page filter): the S-mode one makes both stale
 * (jumpCacheStale), the U-mode one only itself (userJumpCacheStale). A user page's fence
 * (Linux sends one per page it write-protects in fork) so leaves the kernel's cache alone,
 * whatever kernel page shares its filter bit.
 */
export function tlbFlushPage(va: u64): void {
  if (inCachedSuperpage(va)) { tlbFlush(); return; }
  const vpn = va >> 12;
  const slot = tlbSet(vpn);
  for (let t: u32 = 0; t < 6; t++) {
    const e = tlbBase + t * TLB_TABLE_BYTES + slot;
    if (load<u64>(e) == vpn) store<u64>(e, TLB_FREE);
    if (load<u64>(e, 16) == vpn) store<u64>(e, TLB_FREE, 16);
  }
  fetchVpn = 0xffffffffffffffff;
  const bit = <u32>vpn & 4095;
  const high = <i64>va < 0;
  if ((high || sExecLow) && filterHas(jcPages, vpn)) jumpCacheStale = true;
  else if ((!high || uExecHigh) && filterHas(jcPagesU, vpn)) userJumpCacheStale = true;
}

/** Whether virtual page `vpn` may be in the page filter at `filter` (layout.ts HS_JC_PAGES). */
@inline function filterHas(filter: u32, vpn: u64): bool {
  const a = <u32>vpn & 4095;
  const b = <u32>(vpn >> 12) & 4095;
  return ((<u32>load<u8>(filter + (a >> 3)) >> (a & 7)) & (<u32>load<u8>(filter + 512 + (b >> 3)) >> (b & 7)) & 1) != 0;
}

/** Add virtual page `vpn` to the page filter at `filter`. */
export function filterAdd(filter: u32, vpn: u64): void {
  const a = <u32>vpn & 4095;
  const b = <u32>(vpn >> 12) & 4095;
  store<u8>(filter + (a >> 3), load<u8>(filter + (a >> 3)) | <u8>(<u32>1 << (a & 7)));
  store<u8>(filter + 512 + (b >> 3), load<u8>(filter + 512 + (b >> 3)) | <u8>(<u32>1 << (b & 7)));
}

/** Whether `va` lies in a superpage the TLB may hold slices of (or their record overflowed). */
function inCachedSuperpage(va: u64): bool {
  const high = <i64>va < 0;
  const n = high ? superHigh : superLow;
  if (n > SUPER_MAX) return true;
  const at = hartBase + HS_SUPER + (high ? SUPER_MAX << 4 : 0);
  for (let k: u32 = 0; k < n; k++) {
    const e = at + (k << 4);
    if ((va & ~load<u64>(e, 8)) == load<u64>(e)) return true;
  }
  return false;
}

/** Record the superpage leaf (base va & ~mask, offset `mask`) a TLB entry of `va` slices. */
function noteSuperpage(va: u64, mask: u64): void {
  const high = <i64>va < 0;
  const n = high ? superHigh : superLow;
  if (n > SUPER_MAX) return;
  const base = va & ~mask;
  const at = hartBase + HS_SUPER + (high ? SUPER_MAX << 4 : 0);
  for (let k: u32 = 0; k < n; k++) {
    const e = at + (k << 4);
    if (load<u64>(e) == base && load<u64>(e, 8) == mask) return;
  }
  if (n < SUPER_MAX) { store<u64>(at + (n << 4), base); store<u64>(at + (n << 4), mask, 8); }
  if (high) superHigh = n + 1; else superLow = n + 1;
}

/** Set when the virtual-to-physical view of code changed: the JIT's jump caches must be flushed before use. */
export let jumpCacheStale: bool = true;

/** Flush the write TLBs of both privileges (a page became code: its stores must take the slow path). */
export function tlbFlushWrites(): void {
  flushTables(1, 1);
  flushTables(4, 1);
}

/** Address of the code generation of the RAM page holding physical `pa`. */
@inline function codeGenOf(pa: u64): u32 {
  return CODE_GEN + (<u32>((pa - RAM_BASE) >> 12) << 2);
}

/**
 * A store reached RAM at physical `pa` outside the write TLB: if its page has translated
 * code, retire that code (the generation becomes even) and bump the code epoch, so that
 * every hart drops it before running it again.
 */
export function noteCodeWrite(pa: u64): void {
  const a = codeGenOf(pa);
  const g = atomic.load<u32>(a);
  if ((g & 1) != 0 && atomic.cmpxchg<u32>(a, g, g + 1) == g) atomic.add<i32>(CODE_EPOCH, 1);
}

/**
 * Called when sstatus.SUM or MXR change. Clearing SUM drops the S-mode entries of user
 * pages (those recorded, or both S-mode data tables when there were too many); a change of
 * MXR drops the read tables. Neither changes what can be fetched: the exec tables and the
 * JIT's jump caches stay.
 */
export function setSumMxr(newSum: bool, newMxr: bool): void {
  if (sum && !newSum && sTlbHasUser) {
    if (sUserCount > S_USER_MAX) flushTables(0, 2);
    else {
      for (let k: u32 = 0; k < sUserCount; k++) {
        const set = load<u32>(hartBase + HS_S_USER + (k << 2));
        store<u64>(set, TLB_FREE);
        store<u64>(set, TLB_FREE, 16);
      }
    }
    sUserCount = 0;
    sTlbHasUser = false;
  }
  if (mxr != newMxr) { flushTables(0, 1); flushTables(3, 1); }
  sum = newSum;
  mxr = newMxr;
}

/** The vpn of a free TLB way: no page number (va >> 12 < 2^52) is. */
const TLB_FREE: u64 = 0xffffffffffffffff;

/** Drop every entry of `count` TLB tables from table `first` (S: 0 read, 1 write, 2 exec; U: 3, 4, 5). */
function flushTables(first: u32, count: u32): void {
  const start = tlbBase + first * TLB_TABLE_BYTES;
  for (let p = start; p < start + count * TLB_TABLE_BYTES; p += 16) store<u64>(p, TLB_FREE);
}

@inline export function raise(cause: u64, tval: u64): void {
  excPending = true;
  excCause = cause;
  excTval = tval;
}

// exception causes (privileged spec table 4.2)
export const CAUSE_MISALIGNED_FETCH: u64 = 0;
export const CAUSE_FETCH_ACCESS: u64 = 1;
export const CAUSE_ILLEGAL: u64 = 2;
export const CAUSE_BREAKPOINT: u64 = 3;
export const CAUSE_MISALIGNED_LOAD: u64 = 4;
export const CAUSE_LOAD_ACCESS: u64 = 5;
export const CAUSE_MISALIGNED_STORE: u64 = 6;
export const CAUSE_STORE_ACCESS: u64 = 7;
export const CAUSE_ECALL_U: u64 = 8;
export const CAUSE_ECALL_S: u64 = 9;
export const CAUSE_FETCH_PAGE: u64 = 12;
export const CAUSE_LOAD_PAGE: u64 = 13;
export const CAUSE_STORE_PAGE: u64 = 15;

function pageFault(access: u32, va: u64): void {
  raise(access == ACC_X ? CAUSE_FETCH_PAGE : access == ACC_W ? CAUSE_STORE_PAGE : CAUSE_LOAD_PAGE, va);
}
function accessFault(access: u32, va: u64): void {
  raise(access == ACC_X ? CAUSE_FETCH_ACCESS : access == ACC_W ? CAUSE_STORE_ACCESS : CAUSE_LOAD_ACCESS, va);
}

@inline export function isRam(pa: u64, len: u64): bool {
  return pa >= RAM_BASE && pa - RAM_BASE + len <= ramSize;
}
@inline export function ramHost(pa: u64): u32 {
  return ramOff + <u32>(pa - RAM_BASE);
}

// PTE bits (4.3.1)
const PTE_V: u64 = 1;
const PTE_R: u64 = 2;
const PTE_W: u64 = 4;
const PTE_X: u64 = 8;
const PTE_U: u64 = 16;
const PTE_G: u64 = 32;
const PTE_A: u64 = 64;
const PTE_D: u64 = 128;

/** Set by translate(): true when the translated page may be cached in the TLB for this access. */
let walkCacheable: bool = false;
let walkUser: bool = false;
/** The last walk ended at a superpage (megapage or larger) leaf. */
let walkSuper: bool = false;
/** The last walk's mapping is global (G set in its leaf or in a PTE above it). */
let walkGlobal: bool = false;
/**
 * An S-mode instruction fetch was translated through a non-global mapping (or with
 * translation off) since the TLB and the S-mode jump cache were last both flushed: a satp
 * write must then flush that jump cache too (see satpChanged).
 */
let sExecNonGlobal: bool = true;
/** Set by satpChanged, tlbFlushAsid and tlbFlushPage: the U-mode jump cache must be flushed before use (cpu.ts and csr.ts have jit.ts do it at once). */
export let userJumpCacheStale: bool = false;

/**
 * Translate virtual address `va` for `access` at the current privilege.
 * Returns the physical address, or raises a page fault (excPending) and returns 0.
 * Sets accessed/dirty bits atomically in the PTE (privileged spec 4.3.2 step 7, Svadu behaviour).
 */
export function translate(va: u64, access: u32): u64 {
  walkCacheable = true;
  walkUser = false;
  walkSuper = false;
  walkSuperMask = 0;
  walkGlobal = false;
  if (satpMode == 0) return va;
  let levels: i32 = satpMode == 8 ? 3 : 4;
  const vaBits: u64 = satpMode == 8 ? 39 : 48;
  // the upper bits must all equal bit vaBits-1 (4.4.1)
  const hi = <i64>va >> (vaBits - 1);
  if (hi != 0 && hi != -1) { pageFault(access, va); return 0; }
  let a: u64 = satpPpn << 12;
  for (let i = levels - 1; i >= 0; i--) {
    const vpnI = (va >> (12 + 9 * <u64>i)) & 0x1ff;
    const pteAddr = a + (vpnI << 3);
    if (!isRam(pteAddr, 8)) { accessFault(access, va); return 0; }
    const host = ramHost(pteAddr);
    let pte = atomic.load<u64>(host);
    if ((pte & PTE_V) == 0 || ((pte & PTE_R) == 0 && (pte & PTE_W) != 0)) { pageFault(access, va); return 0; }
    // reserved bits 63..54 (no Svpbmt / Svnapot advertised)
    if ((pte >> 54) != 0) { pageFault(access, va); return 0; }
    if ((pte & PTE_G) != 0) walkGlobal = true;
    if ((pte & (PTE_R | PTE_X)) == 0) {
      // pointer to next level; A, D, U must be clear for non-leaf (4.3.2 step 4)
      if ((pte & (PTE_A | PTE_D | PTE_U)) != 0) { pageFault(access, va); return 0; }
      a = ((pte >> 10) & 0xfffffffffff) << 12;
      continue;
    }
    // leaf: permission checks (4.3.2 step 5)
    const isUserPage = (pte & PTE_U) != 0;
    if (priv == 0) {
      if (!isUserPage) { pageFault(access, va); return 0; }
    } else {
      if (isUserPage && (access == ACC_X || !sum)) { pageFault(access, va); return 0; }
    }
    if (access == ACC_X) {
      if ((pte & PTE_X) == 0) { pageFault(access, va); return 0; }
    } else if (access == ACC_R) {
      if ((pte & PTE_R) == 0 && !(mxr && (pte & PTE_X) != 0)) { pageFault(access, va); return 0; }
    } else {
      if ((pte & PTE_W) == 0) { pageFault(access, va); return 0; }
    }
    const ppn = (pte >> 10) & 0xfffffffffff;
    // misaligned superpage (step 6)
    if (i > 0 && (ppn & ((<u64>1 << (9 * <u64>i)) - 1)) != 0) { pageFault(access, va); return 0; }
    // A/D update (step 7)
    const need: u64 = PTE_A | (access == ACC_W ? PTE_D : 0);
    while ((pte & need) != need) {
      const old = atomic.cmpxchg<u64>(host, pte, pte | need);
      if (old == pte) { pte |= need; break; }
      pte = old;
      if ((pte & PTE_V) == 0) { pageFault(access, va); return 0; }
    }
    // a read may be cached only if a later write to the page will also walk (D clear is fine: W TLB is separate)
    walkUser = isUserPage;
    walkSuper = i > 0;
    const offMask: u64 = (<u64>1 << (12 + 9 * <u64>i)) - 1;
    walkSuperMask = i > 0 ? offMask : 0;
    return ((ppn << 12) & ~offMask) | (va & offMask);
  }
  pageFault(access, va);
  return 0;
}

/** Fill the TLB entry of page `va` for `access` with physical page `pa` (RAM only). */
function tlbFill(va: u64, pa: u64, access: u32): void {
  if (!walkCacheable || !isRam(pa & ~<u64>0xfff, 4096)) return;
  // a page with translated code is never in a write TLB: its stores must reach noteCodeWrite
  if (access == ACC_W && (atomic.load<u32>(codeGenOf(pa)) & 1) != 0) return;
  const vpn = va >> 12;
  // least recently used: the new entry goes to way 0, and way 0's to way 1 (unless it was this page's)
  const s = tlbCur + access * TLB_TABLE_BYTES + tlbSet(vpn);
  if (load<u64>(s) != vpn) way0ToWay1(s);
  if (walkUser && priv == 1) {
    sTlbHasUser = true;
    if (sUserCount < S_USER_MAX) store<u32>(hartBase + HS_S_USER + (sUserCount << 2), s);
    if (sUserCount <= S_USER_MAX) sUserCount++;
  }
  if (walkSuper) noteSuperpage(va, walkSuperMask);
  if (access == ACC_X && priv == 1 && !walkGlobal) sExecNonGlobal = true;
  store<u64>(s, vpn);
  store<u32>(s, ramHost(pa & ~<u64>0xfff) - (<u32>va & ~<u32>0xfff), 8);
}

/**
 * Host address of `va` for an access of `size` bytes within one page, or 0 when the page
 * is not in the TLB. A hit in way 1 swaps the set's ways: the most recently used page is
 * in way 0, which translated code checks inline.
 */
@inline export function tlbLookup(va: u64, access: u32): u32 {
  const vpn = va >> 12;
  const s = tlbCur + access * TLB_TABLE_BYTES + tlbSet(vpn);
  if (load<u64>(s) == vpn) return <u32>va + load<u32>(s, 8);
  if (load<u64>(s, 16) == vpn) {
    const addend = load<u32>(s, 24);
    way0ToWay1(s);
    store<u64>(s, vpn);
    store<u32>(s, addend, 8);
    return <u32>va + addend;
  }
  return 0;
}

/** Copy way 0 of the TLB set at linear address `s` over its way 1 (page number and host addend). */
@inline function way0ToWay1(s: u32): void {
  store<u64>(s, load<u64>(s), 16);
  store<u32>(s, load<u32>(s, 8), 24);
}

/** Byte offset in a TLB table of the set of virtual page `vpn` (layout.ts HS_TLB: vpn mod TLB_SETS, 32 bytes each). */
@inline function tlbSet(vpn: u64): u32 {
  return (<u32>vpn & (TLB_SETS - 1)) << 5;
}

// ---------------------------------------------------------------- physical access

function physRead(pa: u64, size: u32, va: u64): u64 {
  if (isRam(pa, size)) {
    const h = ramHost(pa);
    if (size == 8) return load<u64>(h);
    if (size == 4) return <u64>load<u32>(h);
    if (size == 2) return <u64>load<u16>(h);
    return <u64>load<u8>(h);
  }
  if (pa >= 0x80000000) { accessFault(ACC_R, va); return 0; }
  if (size == 8) {
    const lo = <u64><u32>hostMmioRead(<u32>pa, 4);
    if (hostMmioReadFault()) { accessFault(ACC_R, va); return 0; }
    const hi = <u64><u32>hostMmioRead(<u32>pa + 4, 4);
    return lo | (hi << 32);
  }
  const v = <u64><u32>hostMmioRead(<u32>pa, <i32>size);
  if (hostMmioReadFault()) { accessFault(ACC_R, va); return 0; }
  return v;
}

function physWrite(pa: u64, size: u32, v: u64, va: u64): void {
  if (isRam(pa, size)) {
    noteCodeWrite(pa);
    const h = ramHost(pa);
    if (size == 8) store<u64>(h, v);
    else if (size == 4) store<u32>(h, <u32>v);
    else if (size == 2) store<u16>(h, <u16>v);
    else store<u8>(h, <u8>v);
    return;
  }
  if (pa >= 0x80000000) { accessFault(ACC_W, va); return; }
  if (size == 8) {
    if (hostMmioWrite(<u32>pa, 4, <i32><u32>v) != 0) { accessFault(ACC_W, va); return; }
    hostMmioWrite(<u32>pa + 4, 4, <i32><u32>(v >> 32));
    return;
  }
  if (hostMmioWrite(<u32>pa, <i32>size, <i32><u32>v) != 0) accessFault(ACC_W, va);
}

// ---------------------------------------------------------------- virtual access

/** Load `size` bytes at `va` (slow path: walk, fill TLB, MMIO, page-crossing). Zero-extended. */
export function loadSlow(va: u64, size: u32): u64 {
  if ((va & 0xfff) + <u64>size > 0x1000) {
    // crosses a page: assemble byte by byte (misaligned access support)
    let v: u64 = 0;
    for (let i: u32 = 0; i < size; i++) {
      const b = loadSlow(va + i, 1);
      if (excPending) return 0; // stval = va + i: the part that faulted (privileged 4.1.9)
      v |= b << (8 * <u64>i);
    }
    return v;
  }
  const pa = translate(va, ACC_R);
  if (excPending) return 0;
  tlbFill(va, pa, ACC_R);
  return physRead(pa, size, va);
}

export function storeSlow(va: u64, size: u32, v: u64): void {
  if ((va & 0xfff) + <u64>size > 0x1000) {
    // check both pages first so a faulting store writes nothing
    translate(va, ACC_W);
    if (excPending) return;
    translate(va + size - 1, ACC_W);
    if (excPending) { excTval = (va + size - 1) & ~<u64>0xfff; return; } // the part that faulted (4.1.9)
    for (let i: u32 = 0; i < size; i++) {
      storeSlow(va + i, 1, v >> (8 * <u64>i));
      if (excPending) return;
    }
    return;
  }
  const pa = translate(va, ACC_W);
  if (excPending) return;
  tlbFill(va, pa, ACC_W);
  physWrite(pa, size, v, va);
}

@inline export function load8(va: u64): u64 {
  const h = tlbLookup(va, ACC_R);
  if (h != 0) return <u64>load<u8>(h);
  return loadSlow(va, 1);
}
@inline export function load16(va: u64): u64 {
  const h = tlbLookup(va, ACC_R);
  if (h != 0 && (va & 0xfff) <= 0xffe) return <u64>load<u16>(h);
  return loadSlow(va, 2);
}
@inline export function load32(va: u64): u64 {
  const h = tlbLookup(va, ACC_R);
  if (h != 0 && (va & 0xfff) <= 0xffc) return <u64>load<u32>(h);
  return loadSlow(va, 4);
}
@inline export function load64(va: u64): u64 {
  const h = tlbLookup(va, ACC_R);
  if (h != 0 && (va & 0xfff) <= 0xff8) return load<u64>(h);
  return loadSlow(va, 8);
}
@inline export function store8(va: u64, v: u64): void {
  const h = tlbLookup(va, ACC_W);
  if (h != 0) { store<u8>(h, <u8>v); return; }
  storeSlow(va, 1, v);
}
@inline export function store16(va: u64, v: u64): void {
  const h = tlbLookup(va, ACC_W);
  if (h != 0 && (va & 0xfff) <= 0xffe) { store<u16>(h, <u16>v); return; }
  storeSlow(va, 2, v);
}
@inline export function store32(va: u64, v: u64): void {
  const h = tlbLookup(va, ACC_W);
  if (h != 0 && (va & 0xfff) <= 0xffc) { store<u32>(h, <u32>v); return; }
  storeSlow(va, 4, v);
}
@inline export function store64(va: u64, v: u64): void {
  const h = tlbLookup(va, ACC_W);
  if (h != 0 && (va & 0xfff) <= 0xff8) { store<u64>(h, v); return; }
  storeSlow(va, 8, v);
}

/**
 * Host address for an atomic access (LR/SC/AMO) of `size` bytes at `va`:
 * must be naturally aligned (else address-misaligned) and in RAM (else access fault).
 * Returns 0 with excPending set on failure.
 */
export function amoHost(va: u64, size: u32, access: u32): u32 {
  if ((va & (<u64>size - 1)) != 0) {
    raise(access == ACC_R ? CAUSE_MISALIGNED_LOAD : CAUSE_MISALIGNED_STORE, va);
    return 0;
  }
  const h = tlbLookup(va, access);
  if (h != 0) return h;
  const pa = translate(va, access);
  if (excPending) return 0;
  if (!isRam(pa, size)) { accessFault(access, va); return 0; }
  if (access == ACC_W) noteCodeWrite(pa);
  tlbFill(va, pa, access);
  return ramHost(pa);
}

/**
 * Fetch the instruction parcel at `va` (16 bits, zero-extended) through the fetch cache.
 * Raises fetch faults.
 */
@inline export function fetch16(va: u64): u32 {
  if ((va >> 12) == fetchVpn) return <u32>load<u16>(fetchHost + (<u32>va & 0xfff));
  return fetchSlow(va);
}

function fetchSlow(va: u64): u32 {
  let h = tlbLookup(va, ACC_X);
  if (h == 0) {
    const pa = translate(va, ACC_X);
    if (excPending) return 0;
    if (!isRam(pa, 2)) { raise(CAUSE_FETCH_ACCESS, va); return 0; }
    tlbFill(va, pa, ACC_X);
    h = ramHost(pa);
  }
  fetchVpn = va >> 12;
  fetchHost = h & ~<u32>0xfff;
  return <u32>load<u16>(h);
}

/**
 * Host address of the instruction at `va` for the JIT's dispatcher, or 0 when fetching
 * it would fault or it is not in RAM (the interpreter then raises the fault). Fills the
 * fetch cache.
 */
export function execHost(va: u64): u32 {
  if ((va >> 12) == fetchVpn) return fetchHost + (<u32>va & 0xfff);
  let h = tlbLookup(va, ACC_X);
  if (h == 0) {
    const pa = translate(va, ACC_X);
    if (excPending) { excPending = false; return 0; }
    if (!isRam(pa, 2)) return 0;
    tlbFill(va, pa, ACC_X);
    h = ramHost(pa);
  }
  fetchVpn = va >> 12;
  fetchHost = h & ~<u32>0xfff;
  return h;
}

/** Physical address helper for the host: translate without side effects on exceptions. */
export function debugTranslate(va: u64): u64 {
  const p = translate(va, ACC_R);
  if (excPending) { excPending = false; return 0xffffffffffffffff; }
  return p;
}
