// The hart's CSRs as seen from S-mode, its traps and interrupts (privileged spec 20211203
// chapter 4, supervisor level; Zicsr, unprivileged chapter 9; Sstc stimecmp), and the
// run-control state that CSR writes and traps touch. The interpreter (cpu.ts) executes
// instructions; this file owns what they change outside the register files.

import {
  pc, priv, hartBase, irqWord, satpMode, satpAsid, satpPpn, sum, mxr,
  setPriv, tlbFlush, setSumMxr, raise, CAUSE_ILLEGAL,
} from './mmu';
import * as mmu from './mmu';
import { HS_FCSR, HS_MIRROR } from './layout';
import * as jit from './jit';

/** Current time in timebase ticks (10 MHz), from the host. */
@external("env", "nowTicks")
declare function hostNowTicks(): f64;

// ---------------------------------------------------------------- CSR state
// sstatus fields
let sSIE: bool = false;
let sSPIE: bool = false;
let sSPP: u32 = 0;
export let sieReg: u64 = 0;
let stvec: u64 = 0;
let sscratch: u64 = 0;
let sepc: u64 = 0;
let scause: u64 = 0;
let stval: u64 = 0;
let scounteren: u64 = 0;
let senvcfg: u64 = 0;
/** Supervisor timer compare (Sstc stimecmp, also set by SBI set_timer), in ticks. */
let stimecmp: u64 = 0xffffffffffffffff;

// sstatus.FS (0 off, 1 initial, 2 clean, 3 dirty), fcsr.frm and fcsr.fflags: in the hart
// state block's word at HS_FCSR (layout.ts), which translated code reads and updates too
@inline function fcsrWord(): u32 { return load<u32>(hartBase + HS_FCSR); }
@inline function setFcsrWord(v: u32): void { store<u32>(hartBase + HS_FCSR, v); }
/** sstatus.FS. */
@inline export function fs(): u32 { return (fcsrWord() >> 8) & 3; }
/** Set sstatus.FS to `v` (0-3). */
@inline export function setFs(v: u32): void { setFcsrWord((fcsrWord() & ~0x300) | (v << 8)); }
/** fcsr.frm. */
@inline export function frm(): u32 { return (fcsrWord() >> 5) & 7; }
/** fcsr.fflags. */
@inline export function fflags(): u32 { return fcsrWord() & 0x1f; }
/** Accrue exception flags `f` (nonzero) into fflags: FS becomes Dirty (priv 3.1.6.6). */
@inline export function accrueFlags(f: u32): void { setFcsrWord(fcsrWord() | f | 0x300); }
/** Set fcsr to `v` (frm bits 7-5, fflags 4-0): FS becomes Dirty. */
@inline function setFcsr(v: u32): void { setFcsrWord((v & 0xff) | 0x300); }

/** Retired instructions (also cycle), up to the start of the current run() chunk. */
export let instret: u64 = 0;
/** Instructions retired in the current run() chunk before the executing one; set around csrRead (cycle/instret). */
export let chunkRetired: u64 = 0;
/** Leave the inner loop of run() to look at interrupts and exits again (set by CSR writes that can enable an interrupt, SRET, WFI). */
export let stop: bool = false;

/** An LR reservation is held (its address and value are the interpreter's, cpu.ts): cleared by traps and SRET. */
export let resValid: bool = false;

const SSIP: u64 = 1 << 1;
const STIP: u64 = 1 << 5;
const SEIP: u64 = 1 << 9;

@inline function nowTicks(): u64 { return <u64>hostNowTicks(); }

/** Pending interrupts (sip view, privileged spec 4.1.3). */
/** STIP as of the last refreshTimer(): sampled once per run() chunk and on stimecmp writes, so hot paths make no host call. */
let timerPending: bool = false;
export function refreshTimer(): void {
  timerPending = stimecmp != 0xffffffffffffffff && nowTicks() >= stimecmp;
}

export function pendingBits(): u64 {
  // SSIP and SEIP live in the shared interrupt-request word: other harts (SBI IPI) and
  // the PLIC set them, the guest clears SSIP through sip
  let p = <u64><u32>atomic.load<i32>(irqWord);
  if (timerPending) p |= STIP;
  return p;
}

// ---------------------------------------------------------------- traps

/** Enter the S-mode trap handler (privileged spec 4.1.1, 4.1.9-4.1.11). */
export function takeTrap(cause: u64, tval: u64, isInterrupt: bool): void {
  // stval of an illegal compressed instruction is its 16 bits, not the expansion (4.1.9)
  if (cause == CAUSE_ILLEGAL && !isInterrupt && (pc >> 12) == mmu.fetchVpn) {
    const parcel = <u64>load<u16>(mmu.fetchHost + (<u32>pc & 0xfff));
    if ((parcel & 3) != 3) tval = parcel;
  }
  scause = isInterrupt ? (cause | 0x8000000000000000) : cause;
  sepc = pc;
  stval = tval;
  sSPIE = sSIE;
  sSIE = false;
  sSPP = priv;
  if (priv != 1) setPriv(1);
  resValid = false;
  jumped = true;
  const base = stvec & ~<u64>3;
  mmu.pc = ((stvec & 3) == 1 && isInterrupt) ? base + 4 * cause : base;
}

/** Take the highest-priority enabled pending interrupt, if any (4.1.3: SEI > SSI > STI). Returns true if taken. */
export function checkInterrupts(): bool {
  if (priv == 1 && !sSIE) return false;
  const p = pendingBits() & sieReg;
  if (p == 0) return false;
  let cause: u64 = 5;
  if (p & SEIP) cause = 9;
  else if (p & SSIP) cause = 1;
  takeTrap(cause, 0, true);
  return true;
}

@inline export function illegal(insn: u32): void { raise(CAUSE_ILLEGAL, <u64>insn); }

// ---------------------------------------------------------------- CSRs

function sstatusRead(): u64 {
  let v: u64 = 0;
  if (sSIE) v |= 1 << 1;
  if (sSPIE) v |= 1 << 5;
  v |= <u64>sSPP << 8;
  const sFS = fs();
  v |= <u64>sFS << 13;
  if (sum) v |= 1 << 18;
  if (mxr) v |= 1 << 19;
  v |= <u64>2 << 32; // UXL = 64
  if (sFS == 3) v |= 0x8000000000000000;
  return v;
}

function sstatusWrite(v: u64): void {
  sSIE = (v & 2) != 0;
  sSPIE = (v & 0x20) != 0;
  sSPP = <u32>(v >> 8) & 1;
  setFs(<u32>(v >> 13) & 3);
  setSumMxr((v & (1 << 18)) != 0, (v & (1 << 19)) != 0);
}

/** Read CSR `csr`; raises illegal instruction and returns 0 when not accessible. */
export function csrRead(csr: u32, insn: u32): u64 {
  switch (csr) {
    case 0x001: if (fs() == 0) break; return <u64>fflags();
    case 0x002: if (fs() == 0) break; return <u64>frm();
    case 0x003: if (fs() == 0) break; return <u64>(fcsrWord() & 0xff);
    case 0xc00: case 0xc01: case 0xc02: {
      if (priv == 0 && ((scounteren >> <u64>(csr - 0xc00)) & 1) == 0) break;
      return csr == 0xc01 ? nowTicks() : instret + chunkRetired;
    }
    default: break;
  }
  if (priv == 0) { illegal(insn); return 0; }
  switch (csr) {
    case 0x100: return sstatusRead();
    case 0x104: return sieReg;
    case 0x105: return stvec;
    case 0x106: return scounteren;
    case 0x10a: return senvcfg;
    case 0x140: return sscratch;
    case 0x141: return sepc;
    case 0x142: return scause;
    case 0x143: return stval;
    case 0x144: refreshTimer(); return pendingBits() & (SSIP | STIP | SEIP);
    case 0x14d: return stimecmp;
    case 0x180: return (<u64>satpMode << 60) | (satpAsid << 44) | satpPpn;
    default: break;
  }
  illegal(insn);
  return 0;
}

/** Write CSR `csr` (the caller has checked read-only-ness). */
export function csrWrite(csr: u32, v: u64, insn: u32): void {
  switch (csr) {
    case 0x001: if (fs() == 0) break; setFcsr((fcsrWord() & 0xe0) | (<u32>v & 0x1f)); return;
    case 0x002: if (fs() == 0) break; setFcsr(((<u32>v & 7) << 5) | fflags()); return;
    case 0x003: if (fs() == 0) break; setFcsr(<u32>v & 0xff); return;
    default: break;
  }
  if (priv == 0) { illegal(insn); return; }
  switch (csr) {
    case 0x100: { const was = sSIE; sstatusWrite(v); if (!was && sSIE) stop = true; return; }
    case 0x104: sieReg = v & (SSIP | STIP | SEIP); stop = true; return;
    case 0x105: stvec = (v & 3) >= 2 ? v & ~<u64>3 : v; return;
    case 0x106: scounteren = v & 7; return;
    case 0x10a: senvcfg = v & 1; return;
    case 0x140: sscratch = v; return;
    case 0x141: sepc = v & ~<u64>1; return;
    case 0x142: scause = v; return;
    case 0x143: stval = v; return;
    case 0x144: setSsip((v & SSIP) != 0); stop = true; return;
    case 0x14d: stimecmp = v; refreshTimer(); stop = true; return;
    case 0x180: {
      const mode = <u32>(v >> 60);
      if (mode != 0 && mode != 8 && mode != 9) return; // unsupported mode: no effect (4.1.11)
      mmu.satpMode = mode;
      mmu.satpAsid = (v >> 44) & 0xffff;
      mmu.satpPpn = v & 0xfffffffffff;
      mmu.satpChanged();
      if (mmu.userJumpCacheStale) jit.jitFlushUserJumpCache();
      return;
    }
    default: break;
  }
  illegal(insn);
}

// ---------------------------------------------------------------- host interface

export function setTimecmp(v: u64): void { stimecmp = v; refreshTimer(); }
export function getTimecmp(): u64 { return stimecmp; }
/** Set or clear SSIP (SBI IPI delivery on this hart's own thread). */
export function setSoftwareInterrupt(on: bool): void { setSsip(on); }
function setSsip(on: bool): void {
  if (on) atomic.or<i32>(irqWord, <i32>SSIP); else atomic.and<i32>(irqWord, ~<i32>SSIP);
}
/** Enter S-mode at `entry` with interrupts disabled and paging off (SBI HSM hart_start / boot). */
export function resetHart(entry: u64): void {
  setPriv(1);
  mmu.satpMode = 0; mmu.satpPpn = 0; mmu.satpAsid = 0;
  sSIE = false; sSPIE = false; sSPP = 0; setFs(0);
  setSumMxr(false, false);
  sieReg = 0; setSsip(false); stvec = 0; sepc = 0; scause = 0; stval = 0; sscratch = 0;
  stimecmp = 0xffffffffffffffff;
  timerPending = false;
  // U-mode may read cycle, time and instret (the vDSO's clock_gettime reads `time`):
  // the SBI firmware leaves scounteren = CY|TM|IR, as OpenSBI does (mstatus_init), and
  // Linux's legacy PMU (no SBI PMU extension) never writes it
  scounteren = 7;
  tlbFlush();
  mmu.pc = entry;
}
/** True when an interrupt is pending and enabled in sie (WFI wake-up condition, 3.3.3). */
export function interruptPending(): bool { refreshTimer(); return (pendingBits() & sieReg) != 0; }
/** For diagnostics. */
export function readCsr(csr: u32): u64 {
  const saved = priv; mmu.priv = 1;
  const v = csrRead(csr, 0);
  mmu.priv = saved;
  mmu.excPending = false;
  return v;
}

/** SRET (privileged spec 3.3.2, S-mode): restore SIE and the privilege, drop the reservation; returns the new pc (sepc). */
export function sret(): u64 {
  sSIE = sSPIE;
  sSPIE = true;
  const np = sSPP;
  sSPP = 0;
  if (np != priv) setPriv(np);
  resValid = false;
  stop = true;
  return sepc;
}

/**
 * Publish the hart's architectural state to the diagnostic mirror at HS_MIRROR of its state
 * block (u64 each: pc, priv, sstatus, sie, sip, stimecmp, instret, scause, sepc, stvec,
 * satp, exits from run()), so another thread can report a hart that stopped making
 * progress. Called at every exit from run().
 */
export function publishMirror(): void {
  const m = hartBase + HS_MIRROR;
  store<u64>(m, pc);
  store<u64>(m + 8, <u64>priv);
  store<u64>(m + 16, sstatusRead());
  store<u64>(m + 24, sieReg);
  store<u64>(m + 32, pendingBits());
  store<u64>(m + 40, stimecmp);
  store<u64>(m + 48, instret);
  store<u64>(m + 56, scause);
  store<u64>(m + 64, sepc);
  store<u64>(m + 72, stvec);
  store<u64>(m + 80, (<u64>satpMode << 60) | (satpAsid << 44) | satpPpn);
  atomic.add<u64>(m + 88, 1);
}

/** Control reached pc by a jump, a taken branch, an xRET or a trap: a block start for the JIT. */
export let jumped: bool = true;
