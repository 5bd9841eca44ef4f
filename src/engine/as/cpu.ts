// The RV64GC hart's interpreter (its CSRs, traps and interrupts are in csr.ts).
// The guest runs in S- and U-mode only; M-mode is the hypervisor itself (SBI
// calls leave run() with EXIT_SBI), as in KVM.
//
// Instruction semantics follow the unprivileged spec 20191213:
// RV32I/RV64I base (ch. 2, 5), Zifencei (3), Zicsr (9), M (7), A (8), F (11),
// D (12), C (16, expanded in rvc.ts).  CSRs, traps and sret follow the
// privileged spec 20211203 chapter 4 (supervisor level).

import {
  pc, priv, hartBase, xBase, excPending, excCause, excTval,
  getX, setX, getF, setF, tlbFlush, raise,
  load8, load16, load32, load64, store8, store16, store32, store64, amoHost, fetch16,
  ACC_R, ACC_W,
  CAUSE_BREAKPOINT, CAUSE_ECALL_U,
} from './mmu';
import * as mmu from './mmu';
import { HS_FENCE, RVC_TABLE } from './layout';
import * as fpu from './fpu';
import { expandRvc } from './rvc';
import { jitInit, jitTry, jitEnterRun, jitLeaveRun } from './jit';
import * as jit from './jit';
import * as csr from './csr';

// ---------------------------------------------------------------- exits from run()
export const EXIT_BUDGET: i32 = 0;   // instruction budget used up
export const EXIT_WFI: i32 = 1;      // WFI with nothing pending: park until an interrupt
export const EXIT_SBI: i32 = 2;      // ecall from S-mode: the host serves SBI, then sets pc += 4
export const EXIT_HALT: i32 = 3;     // the host asked the hart to stop (see requestExit)
export const EXIT_PAUSE: i32 = 4;    // a spin loop of PAUSE hints: let another host thread run (pause-loop exiting)

// Pause-loop exiting, as VT-x's PLE_Gap/PLE_Window: a PAUSE (Zihintpause, Linux's
// cpu_relax()) within PAUSE_GAP instructions of the previous one continues a spin loop;
// PAUSE_WINDOW of them in a row leave run() with EXIT_PAUSE, so that a vCPU waiting for a
// lock held by a vCPU the host has descheduled gives up its host core instead of
// spinning through its time slice.
const PAUSE_GAP: u64 = 200;
const PAUSE_WINDOW: u32 = 64;
/** Instruction count at the last PAUSE, and the length of the current run of them. */
let lastPause: u64 = 0;
let pauseRun: u32 = 0;

let exitRequested: bool = false;
let exitReason: i32 = 0;

// LR/SC reservation (resValid is in csr.ts: a trap clears it)
let resHost: u32 = 0;
let resValue: u64 = 0;

// ---------------------------------------------------------------- helpers

@inline function sx32(v: u64): u64 { return <u64><i64><i32>v; }

function mulhu(a: u64, b: u64): u64 {
  const a0 = a & 0xffffffff, a1 = a >> 32, b0 = b & 0xffffffff, b1 = b >> 32;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
  return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}
function mulh(a: u64, b: u64): u64 {
  let h = mulhu(a, b);
  if (<i64>a < 0) h -= b;
  if (<i64>b < 0) h -= a;
  return h;
}
function mulhsu(a: u64, b: u64): u64 {
  let h = mulhu(a, b);
  if (<i64>a < 0) h -= b;
  return h;
}

// NaN-boxing (unprivileged spec 12.2)
@inline function getF32(r: u32): u32 {
  const v = getF(r);
  return (v >> 32) == 0xffffffff ? <u32>v : 0x7fc00000;
}
@inline function setF32(r: u32, v: u32): void { setF(r, 0xffffffff00000000 | <u64>v); csr.setFs(3); }
@inline function setF64(r: u32, v: u64): void { setF(r, v); csr.setFs(3); }

/** Resolve the rounding mode of an FP instruction; returns 8 for an illegal one. */
@inline function roundingMode(insn: u32): u32 {
  let rm = (insn >> 12) & 7;
  if (rm == 7) rm = csr.frm();
  return rm > 4 ? 8 : rm;
}

@inline function takeFlags(): void {
  // accrued flags change fcsr: FS becomes Dirty even when no f register was written (priv 3.1.6.6)
  if (fpu.fpFlags != 0) { csr.accrueFlags(fpu.fpFlags); fpu.fpFlags = 0; }
}

// ---------------------------------------------------------------- host interface

/** Initialise this instance as hart `id` whose state block is at `base`; RAM is `ramBytes` at linear offset `ramOffset`. */
export function init(base: u32, id: u32, ramOffset: u32, ramBytes: u64): void {
  mmu.initState(base, <u64>id, ramOffset, ramBytes);
  jitInit(id);
  // Every hart fills the whole shared table before it runs. The stores are idempotent
  // (every hart writes the same values, as aligned u32s), so a hart that is already
  // running reads the same entry before and after another hart's store. A hart must not
  // skip the fill because some entry is already set: another hart may still be filling
  // the rest, and an entry read as 0 decodes as an illegal instruction (this was the
  // intermittent boot hang: hart 0 trapped to stvec = 0 and looped on fetch faults).
  for (let c: u32 = 0; c < 65536; c++) store<u32>(RVC_TABLE + (c << 2), (c & 3) == 3 ? 0 : expandRvc(c));
}
export function getPc(): u64 { return pc; }
export function setPc(v: u64): void { mmu.pc = v; }
export function getPriv(): u32 { return priv; }
export function getInstret(): u64 { return csr.instret; }
export function requestExit(): void { exitRequested = true; }
// ---------------------------------------------------------------- the interpreter

/**
 * Run up to `budget` instructions. Returns an EXIT_* reason.
 * Traps are taken internally; interrupts are checked at entry and after
 * instructions that can enable one.
 */
export function run(budget: i32): i32 {
  jitEnterRun();
  const r = runSlice(budget);
  jitLeaveRun();
  csr.publishMirror();
  return r;
}

/** The last block stopped before an instruction it does not translate. */
let afterBlock: bool = false;

function runSlice(budget: i32): i32 {
  exitReason = EXIT_BUDGET;
  let n = budget;
  while (n > 0) {
    const start = n;
    chunkStart = start;
    if (exitRequested) { exitRequested = false; return EXIT_HALT; }
    csr.refreshTimer();
    csr.checkInterrupts();
    csr.stop = false;
    while (n > 0 && !csr.stop) {
      // translated code first (src/engine/jit/): it retires whole blocks, or nothing
      const m = jitTry(n, csr.jumped);
      if (m != n) {
        jit.jitRetired += <u64>(n - m);
        jit.jitCalls++;
        n = m;
        csr.jumped = true;
        afterBlock = jit.stoppedBefore;
        jit.stoppedBefore = false;
        if (excPending) { mmu.excPending = false; csr.takeTrap(excCause, excTval, false); }
        continue;
      }
      // after the instruction a block stopped before, a block starts
      const resume = afterBlock;
      afterBlock = false;
      n--;
      step(start - n);
      if (resume) csr.jumped = true;
      if (excPending) {
        mmu.excPending = false;
        if (excCause == 0xff) { // ecall from S: served by the hypervisor
          csr.instret += <u64>(start - n);
          return EXIT_SBI;
        }
        csr.takeTrap(excCause, excTval, false);
      }
    }
    csr.instret += <u64>(start - n);
    if (exitReason != EXIT_BUDGET) return exitReason;
  }
  return EXIT_BUDGET;
}

/** Execute one instruction at pc; `begun` counts the instructions begun in this run() chunk, this one included. */
@inline function step(begun: i32): void {
  const p = pc;
  let insn: u32;
  if ((p >> 12) == mmu.fetchVpn && (<u32>p & 0xfff) != 0xffe) {
    // both parcels in the fetch cache's page: one load (the second parcel is unused when the first is compressed)
    insn = load<u32>(mmu.fetchHost + (<u32>p & 0xfff));
  } else {
    insn = fetch16(p);
    if (excPending) return;
    if ((insn & 3) == 3) {
      const hi = fetch16(p + 2);
      if (excPending) return; // sepc = p, stval = p + 2: the part that faulted (privileged 4.1.9)
      insn |= hi << 16;
    }
  }
  let len: u64 = 4;
  if ((insn & 3) != 3) {
    len = 2;
    insn &= 0xffff;
    const e = load<u32>(RVC_TABLE + (insn << 2));
    if (e == 0) { csr.illegal(insn); return; }
    insn = e;
  }
  const rd = (insn >> 7) & 31;
  const rs1 = (insn >> 15) & 31;
  const rs2 = (insn >> 20) & 31;
  const f3 = (insn >> 12) & 7;
  let next = p + len;
  // The major opcodes in the order of their frequency in a Linux boot: TurboFan compiles
  // this switch into a chain of compares in this order, which a boot under the interpreter
  // alone runs 6-7% faster than in the spec's order (and faster than a dense switch on
  // insn[6:2], whose br_table's indirect jump predicts worse).
  switch (insn & 0x7f) {
    case 0x13: { // OP-IMM
      const a = getX(rs1);
      const imm = <u64><i64>(<i32>insn >> 20);
      let v: u64;
      // ADDI (li, mv, addi) is most of OP-IMM: a conditional branch, not the switch's indirect jump
      if (f3 == 0) v = a + imm;
      else switch (f3) {
        case 1: if ((insn >> 26) != 0) { csr.illegal(insn); return; } v = a << (imm & 63); break;
        case 2: v = <i64>a < <i64>imm ? 1 : 0; break;
        case 3: v = a < imm ? 1 : 0; break;
        case 4: v = a ^ imm; break;
        case 5: {
          const f6 = insn >> 26;
          if (f6 == 0) v = a >> (imm & 63);
          else if (f6 == 0x10) v = <u64>(<i64>a >> <i64>(imm & 63));
          else { csr.illegal(insn); return; }
          break;
        }
        case 6: v = a | imm; break;
        default: v = a & imm; break;
      }
      setX(rd, v);
      break;
    }
    case 0x03: { // LOAD
      const a = getX(rs1) + <u64><i64>(<i32>insn >> 20);
      let v: u64;
      if (f3 == 3) v = load64(a); // LD, the most frequent load
      else switch (f3) {
        case 0: v = <u64><i64><i8>load8(a); break;
        case 1: v = <u64><i64><i16>load16(a); break;
        case 2: v = sx32(load32(a)); break;
        case 4: v = load8(a); break;
        case 5: v = load16(a); break;
        case 6: v = load32(a); break;
        default: csr.illegal(insn); return;
      }
      if (excPending) return;
      setX(rd, v);
      break;
    }
    case 0x23: { // STORE
      const imm = ((<i32>insn >> 20) & ~31) | <i32>((insn >> 7) & 31);
      const a = getX(rs1) + <u64><i64>imm;
      const v = getX(rs2);
      if (f3 == 3) store64(a, v); // SD, the most frequent store
      else switch (f3) {
        case 0: store8(a, v); break;
        case 1: store16(a, v); break;
        case 2: store32(a, v); break;
        default: csr.illegal(insn); return;
      }
      if (excPending) return;
      break;
    }
    case 0x63: { // BRANCH
      const a = getX(rs1), b = getX(rs2);
      // conditional branches in the order of their frequency (a chain of compares: the
      // switch's indirect jump predicts worse)
      let taken: bool;
      if (f3 == 1) taken = a != b;
      else if (f3 == 0) taken = a == b;
      else if (f3 == 4) taken = <i64>a < <i64>b;
      else if (f3 == 5) taken = <i64>a >= <i64>b;
      else if (f3 == 6) taken = a < b;
      else if (f3 == 7) taken = a >= b;
      else { csr.illegal(insn); return; }
      if (taken) {
        const imm = (<i32>(insn & 0x80000000) >> 19) | <i32>((insn & 0x80) << 4) | <i32>((insn >> 20) & 0x7e0) | <i32>((insn >> 7) & 0x1e);
        next = p + <u64><i64>imm;
      }
      break;
    }
    case 0x33: { // OP
      const a = getX(rs1), b = getX(rs2);
      const f7 = insn >> 25;
      let v: u64;
      if ((insn & 0xfe007000) == 0) v = a + b; // ADD (f7 = 0, f3 = 0: add, c.add, c.mv)
      else if (f7 == 0) {
        switch (f3) {
          case 1: v = a << (b & 63); break;
          case 2: v = <i64>a < <i64>b ? 1 : 0; break;
          case 3: v = a < b ? 1 : 0; break;
          case 4: v = a ^ b; break;
          case 5: v = a >> (b & 63); break;
          case 6: v = a | b; break;
          default: v = a & b; break;
        }
      } else if (f7 == 0x20) {
        if (f3 == 0) v = a - b;
        else if (f3 == 5) v = <u64>(<i64>a >> <i64>(b & 63));
        else { csr.illegal(insn); return; }
      } else if (f7 == 1) { // M
        switch (f3) {
          case 0: v = a * b; break;
          case 1: v = mulh(a, b); break;
          case 2: v = mulhsu(a, b); break;
          case 3: v = mulhu(a, b); break;
          case 4: // DIV
            if (b == 0) v = 0xffffffffffffffff;
            else if (a == 0x8000000000000000 && b == 0xffffffffffffffff) v = a;
            else v = <u64>(<i64>a / <i64>b);
            break;
          case 5: v = b == 0 ? 0xffffffffffffffff : a / b; break; // DIVU
          case 6: // REM
            if (b == 0) v = a;
            else if (a == 0x8000000000000000 && b == 0xffffffffffffffff) v = 0;
            else v = <u64>(<i64>a % <i64>b);
            break;
          default: v = b == 0 ? a : a % b; break; // REMU
        }
      } else { csr.illegal(insn); return; }
      setX(rd, v);
      break;
    }
    case 0x6f: { // JAL
      const imm = (<i32>(insn & 0x80000000) >> 11) | <i32>(insn & 0xff000) | <i32>((insn >> 9) & 0x800) | <i32>((insn >> 20) & 0x7fe);
      setX(rd, next);
      next = p + <u64><i64>imm;
      break;
    }
    case 0x67: { // JALR
      if (f3 != 0) { csr.illegal(insn); return; }
      const t = (getX(rs1) + <u64><i64>(<i32>insn >> 20)) & ~<u64>1;
      setX(rd, next);
      next = t;
      break;
    }
    case 0x37: // LUI
      setX(rd, sx32(<u64>(insn & 0xfffff000)));
      break;
    case 0x17: // AUIPC
      setX(rd, p + sx32(<u64>(insn & 0xfffff000)));
      break;
    case 0x1b: { // OP-IMM-32
      const a = <u32>getX(rs1);
      let v: u32;
      switch (f3) {
        case 0: v = a + <u32>(<i32>insn >> 20); break;
        case 1: if ((insn >> 25) != 0) { csr.illegal(insn); return; } v = a << rs2; break;
        case 5: {
          const f7 = insn >> 25;
          if (f7 == 0) v = a >> rs2;
          else if (f7 == 0x20) v = <u32>(<i32>a >> rs2);
          else { csr.illegal(insn); return; }
          break;
        }
        default: csr.illegal(insn); return;
      }
      setX(rd, sx32(<u64>v));
      break;
    }
    case 0x3b: { // OP-32
      const a = <u32>getX(rs1), b = <u32>getX(rs2);
      const f7 = insn >> 25;
      let v: u32;
      if (f7 == 0) {
        if (f3 == 0) v = a + b;
        else if (f3 == 1) v = a << (b & 31);
        else if (f3 == 5) v = a >> (b & 31);
        else { csr.illegal(insn); return; }
      } else if (f7 == 0x20) {
        if (f3 == 0) v = a - b;
        else if (f3 == 5) v = <u32>(<i32>a >> (b & 31));
        else { csr.illegal(insn); return; }
      } else if (f7 == 1) {
        switch (f3) {
          case 0: v = a * b; break;
          case 4:
            if (b == 0) v = 0xffffffff;
            else if (a == 0x80000000 && b == 0xffffffff) v = a;
            else v = <u32>(<i32>a / <i32>b);
            break;
          case 5: v = b == 0 ? 0xffffffff : a / b; break;
          case 6:
            if (b == 0) v = a;
            else if (a == 0x80000000 && b == 0xffffffff) v = 0;
            else v = <u32>(<i32>a % <i32>b);
            break;
          case 7: v = b == 0 ? a : a % b; break;
          default: csr.illegal(insn); return;
        }
      } else { csr.illegal(insn); return; }
      setX(rd, sx32(<u64>v));
      break;
    }
    case 0x73: { // SYSTEM
      if (f3 == 0) {
        if (insn == 0x00000073) { // ECALL
          if (priv == 0) { raise(CAUSE_ECALL_U, 0); return; }
          raise(0xff, 0); // served by the hypervisor (SBI)
          return;
        }
        if (insn == 0x00100073) { raise(CAUSE_BREAKPOINT, p); return; }
        if (insn == 0x10200073) { // SRET
          if (priv == 0) { csr.illegal(insn); return; }
          next = csr.sret();
          break;
        }
        if (insn == 0x10500073) { // WFI
          if (priv == 0) { csr.illegal(insn); return; }
          csr.refreshTimer();
          if ((csr.pendingBits() & csr.sieReg) == 0) { exitReason = EXIT_WFI; csr.stop = true; }
          break;
        }
        if ((insn >> 25) == 0x09 && rd == 0) { // SFENCE.VMA
          if (priv == 0) { csr.illegal(insn); return; }
          if (rs1 != 0) mmu.tlbFlushPage(getX(rs1));
          else if (rs2 != 0) mmu.tlbFlushAsid();
          else tlbFlush();
          if (mmu.userJumpCacheStale) jit.jitFlushUserJumpCache();
          break;
        }
        csr.illegal(insn);
        return;
      }
      if (f3 == 4) { csr.illegal(insn); return; }
      execCsr(insn, <u64>(begun - 1));
      if (excPending) return;
      break;
    }
    case 0x2f: { // AMO
      execAmo(insn, rd, rs1, rs2, f3);
      if (excPending) return;
      break;
    }
    case 0x0f: // MISC-MEM: FENCE, FENCE.I (the interpreter fetches straight from RAM)
      if (f3 == 0) {
        atomic.add<i32>(hartBase + HS_FENCE, 0); // a seq-cst RMW is a full barrier
        if (insn == 0x0100000f) { // PAUSE (FENCE pred=W succ=0): a spin-loop hint
          const now = csr.instret + <u64>begun;
          pauseRun = now - lastPause <= PAUSE_GAP ? pauseRun + 1 : 1;
          lastPause = now;
          if (pauseRun >= PAUSE_WINDOW) { pauseRun = 0; exitReason = EXIT_PAUSE; csr.stop = true; }
        }
      } else if (f3 == 1) {
        // FENCE.I: nothing to do. The interpreter fetches from RAM, and every write to a page
        // with translated code (a hart's store, a device's DMA) has already retired that code
        // and moved the code epoch, which every hart checks before it runs a translation.
      } else { csr.illegal(insn); return; }
      break;
    case 0x07: { // LOAD-FP
      if (csr.fs() == 0) { csr.illegal(insn); return; }
      const a = getX(rs1) + <u64><i64>(<i32>insn >> 20);
      if (f3 == 2) {
        const v = load32(a);
        if (excPending) return;
        setF32(rd, <u32>v);
      } else if (f3 == 3) {
        const v = load64(a);
        if (excPending) return;
        setF64(rd, v);
      } else { csr.illegal(insn); return; }
      break;
    }
    case 0x27: { // STORE-FP
      if (csr.fs() == 0) { csr.illegal(insn); return; }
      const imm = ((<i32>insn >> 20) & ~31) | <i32>((insn >> 7) & 31);
      const a = getX(rs1) + <u64><i64>imm;
      if (f3 == 2) store32(a, getF(rs2));
      else if (f3 == 3) store64(a, getF(rs2));
      else { csr.illegal(insn); return; }
      if (excPending) return;
      break;
    }
    case 0x53: { // OP-FP
      if (csr.fs() == 0) { csr.illegal(insn); return; }
      if (!execOpFp(insn, rd, rs1, rs2, f3)) { csr.illegal(insn); return; }
      takeFlags();
      break;
    }
    case 0x43: case 0x47: case 0x4b: case 0x4f: // FMADD, FMSUB, FNMSUB, FNMADD
      if (csr.fs() == 0 || !execFma(insn, rd, rs1, rs2)) { csr.illegal(insn); return; }
      takeFlags();
      break;
    default:
      csr.illegal(insn);
      return;
  }
  store<u64>(xBase, 0); // x0 is hard-wired to zero
  // after a SYSTEM instruction (SFENCE.VMA, a satp write: what translated blocks stop
  // before) a block starts, as after a jump
  csr.jumped = next != p + len || (insn & 0x7f) == 0x73;
  mmu.pc = next;
}

/** FMADD, FMSUB, FNMSUB, FNMADD (unprivileged spec 11.6, 12.4). Returns false, with no effect, for an illegal encoding. */
function execFma(insn: u32, rd: u32, rs1: u32, rs2: u32): bool {
  const rm = roundingMode(insn);
  if (rm == 8) return false;
  const rs3 = insn >> 27;
  const fmt = (insn >> 25) & 3;
  const opc = insn & 0x7f;
  const negProd = opc == 0x4b || opc == 0x4f;
  const negAdd = opc == 0x47 || opc == 0x4f;
  if (fmt == 0) {
    let a = getF32(rs1), c = getF32(rs3);
    if (negProd) a ^= 0x80000000;
    if (negAdd) c ^= 0x80000000;
    setF32(rd, fpu.f32_fma(a, getF32(rs2), c, rm));
  } else if (fmt == 1) {
    let a = getF(rs1), c = getF(rs3);
    if (negProd) a ^= 0x8000000000000000;
    if (negAdd) c ^= 0x8000000000000000;
    setF64(rd, fpu.f64_fma(a, getF(rs2), c, rm));
  } else return false;
  return true;
}

/**
 * For translated code (src/engine/jit/): execute the OP-FP or fused multiply-add
 * instruction `insn` on the registers in the hart state block, flags and FS included,
 * exactly as the interpreter does. Returns false, with no effect, when it is illegal
 * (FS off, a bad rounding mode or encoding): the block then leaves before it.
 */
export function jitFp(insn: u32): bool {
  if (csr.fs() == 0) return false;
  const rd = (insn >> 7) & 31, rs1 = (insn >> 15) & 31, rs2 = (insn >> 20) & 31;
  const ok = (insn & 0x7f) == 0x53 ? execOpFp(insn, rd, rs1, rs2, (insn >> 12) & 7) : execFma(insn, rd, rs1, rs2);
  if (!ok) return false;
  takeFlags();
  store<u64>(xBase, 0); // x0 is hard-wired to zero
  return true;
}

/**
 * For translated code: execute the AMO, LR or SC instruction `insn` (registers in the hart
 * state block), exactly as the interpreter does; an exception it raises is left pending
 * (excPending) for the block to leave with.
 */
export function jitAmo(insn: u32): void {
  execAmo(insn, (insn >> 7) & 31, (insn >> 15) & 31, (insn >> 20) & 31, (insn >> 12) & 7);
  store<u64>(xBase, 0); // x0 is hard-wired to zero
}

/** Instructions left in run()'s budget when the current chunk began (live instret for translated code's CSR reads). */
let chunkStart: i32 = 0;

/**
 * For translated code: execute `insn`, a Zicsr instruction of a CSR the translator lets
 * through (READABLE_CSRS and WRITABLE_CSRS in src/engine/jit/block.ts), exactly as the
 * interpreter does, x[rd] in the hart state block (x[rs1] is read from there too); `left`
 * is the budget left before it (so that cycle and instret count the instructions retired
 * before it). Returns 0, with no effect, when it is illegal (the block then leaves before
 * it); 1 when done; 2 when done and the hart must look at its interrupts before it goes
 * on (the write may have enabled one: csr.stop), so the block leaves after it.
 */
export function jitCsr(insn: u32, left: i32): i32 {
  execCsr(insn, <u64>(chunkStart - left));
  if (excPending) { mmu.excPending = false; return 0; }
  store<u64>(xBase, 0); // x0 is hard-wired to zero
  return csr.stop ? 2 : 1;
}

/**
 * A Zicsr instruction (CSRRW, CSRRS, CSRRC and their immediate forms; unprivileged spec
 * chapter 9): read the CSR unless CSRRW[I] has rd = x0, write it unless CSRRS/CSRRC[I]
 * have rs1/uimm = 0, then x[rd] = the old value. `retired`: the instructions retired
 * in this run() chunk before it (live cycle/instret, Zicntr: instret is summed per chunk).
 * Raises illegal instruction (nothing written) when the CSR is not accessible or is
 * read-only and written.
 */
function execCsr(insn: u32, retired: u64): void {
  const rd = (insn >> 7) & 31;
  const rs1 = (insn >> 15) & 31;
  const f3 = (insn >> 12) & 7;
  const num = insn >> 20;
  const src: u64 = f3 >= 5 ? <u64>rs1 : getX(rs1);
  const op = f3 & 3;
  const writes = op == 1 || rs1 != 0;
  if (writes && (num >> 10) == 3) { csr.illegal(insn); return; }
  let old: u64 = 0;
  if (op != 1 || rd != 0) {
    csr.chunkRetired = retired;
    old = csr.csrRead(num, insn);
    csr.chunkRetired = 0;
    if (excPending) return;
  }
  if (writes) {
    const nv = op == 1 ? src : op == 2 ? old | src : old & ~src;
    csr.csrWrite(num, nv, insn);
    if (excPending) return;
  }
  setX(rd, old);
}

/**
 * For translated code: execute the instruction at pc, a 32-bit one that crosses the end
 * of its page (its second half is fetched through the TLB, as the interpreter fetches
 * it), exactly as the interpreter does, registers in the hart state block; `left` is the
 * budget left before it. Returns 0 when it raised an exception, left pending (excPending,
 * pc at the instruction) for the block to leave with and the engine to take; 1 when done
 * and pc is the next instruction's; 2 when done otherwise (a jump or branch taken, or the
 * hart must look at its interrupts: csr.stop), so the block leaves after it.
 */
export function jitStep(left: i32): i32 {
  const p = pc;
  step(chunkStart - left + 1);
  if (excPending) return 0;
  return pc == p + 4 && !csr.stop ? 1 : 2;
}

/** The A extension (unprivileged spec ch. 8): LR/SC and AMOs, atomic across harts. */
function execAmo(insn: u32, rd: u32, rs1: u32, rs2: u32, f3: u32): void {
  const f5 = insn >> 27;
  // an undefined funct5 is illegal whatever the address (exception priority, privileged spec 3.7)
  if (((0x1111111f >> f5) & 1) == 0) { csr.illegal(insn); return; }
  const a = getX(rs1);
  if (f3 == 2) {
    if (f5 == 2) { // LR.W
      if (rs2 != 0) { csr.illegal(insn); return; }
      const h = amoHost(a, 4, ACC_R);
      if (excPending) return;
      const v = atomic.load<u32>(h);
      csr.resValid = true; resHost = h; resValue = <u64>v;
      setX(rd, sx32(<u64>v));
      return;
    }
    const h = amoHost(a, 4, ACC_W);
    if (excPending) return;
    const b = <u32>getX(rs2);
    let old: u32;
    switch (f5) {
      case 3: { // SC.W
        let ok = false;
        if (csr.resValid && resHost == h) ok = atomic.cmpxchg<u32>(h, <u32>resValue, b) == <u32>resValue;
        csr.resValid = false;
        setX(rd, ok ? 0 : 1);
        return;
      }
      case 1: old = atomic.xchg<u32>(h, b); break;
      case 0: old = atomic.add<u32>(h, b); break;
      case 4: old = atomic.xor<u32>(h, b); break;
      case 12: old = atomic.and<u32>(h, b); break;
      case 8: old = atomic.or<u32>(h, b); break;
      case 16: case 20: case 24: case 28: {
        old = atomic.load<u32>(h);
        while (true) {
          let nv: u32;
          if (f5 == 16) nv = <i32>old < <i32>b ? old : b;
          else if (f5 == 20) nv = <i32>old > <i32>b ? old : b;
          else if (f5 == 24) nv = old < b ? old : b;
          else nv = old > b ? old : b;
          const seen = atomic.cmpxchg<u32>(h, old, nv);
          if (seen == old) break;
          old = seen;
        }
        break;
      }
      default: csr.illegal(insn); return;
    }
    setX(rd, sx32(<u64>old));
    return;
  }
  if (f3 == 3) {
    if (f5 == 2) { // LR.D
      if (rs2 != 0) { csr.illegal(insn); return; }
      const h = amoHost(a, 8, ACC_R);
      if (excPending) return;
      const v = atomic.load<u64>(h);
      csr.resValid = true; resHost = h; resValue = v;
      setX(rd, v);
      return;
    }
    const h = amoHost(a, 8, ACC_W);
    if (excPending) return;
    const b = getX(rs2);
    let old: u64;
    switch (f5) {
      case 3: { // SC.D
        let ok = false;
        if (csr.resValid && resHost == h) ok = atomic.cmpxchg<u64>(h, resValue, b) == resValue;
        csr.resValid = false;
        setX(rd, ok ? 0 : 1);
        return;
      }
      case 1: old = atomic.xchg<u64>(h, b); break;
      case 0: old = atomic.add<u64>(h, b); break;
      case 4: old = atomic.xor<u64>(h, b); break;
      case 12: old = atomic.and<u64>(h, b); break;
      case 8: old = atomic.or<u64>(h, b); break;
      case 16: case 20: case 24: case 28: {
        old = atomic.load<u64>(h);
        while (true) {
          let nv: u64;
          if (f5 == 16) nv = <i64>old < <i64>b ? old : b;
          else if (f5 == 20) nv = <i64>old > <i64>b ? old : b;
          else if (f5 == 24) nv = old < b ? old : b;
          else nv = old > b ? old : b;
          const seen = atomic.cmpxchg<u64>(h, old, nv);
          if (seen == old) break;
          old = seen;
        }
        break;
      }
      default: csr.illegal(insn); return;
    }
    setX(rd, old);
    return;
  }
  csr.illegal(insn);
}

/** OP-FP (unprivileged spec 11.4-11.9, 12.3-12.6). Returns false for an illegal encoding. */
function execOpFp(insn: u32, rd: u32, rs1: u32, rs2: u32, f3: u32): bool {
  const f7 = insn >> 25;
  const fmt = f7 & 3;
  if (fmt > 1) return false;
  const dbl = fmt == 1;
  switch (f7 >> 2) {
    case 0x00: case 0x01: case 0x02: case 0x03: { // FADD FSUB FMUL FDIV
      const rm = roundingMode(insn);
      if (rm == 8) return false;
      const k = f7 >> 2;
      if (dbl) {
        const a = getF(rs1), b = getF(rs2);
        setF64(rd, k == 0 ? fpu.f64_add(a, b, rm) : k == 1 ? fpu.f64_sub(a, b, rm) : k == 2 ? fpu.f64_mul(a, b, rm) : fpu.f64_div(a, b, rm));
      } else {
        const a = getF32(rs1), b = getF32(rs2);
        setF32(rd, k == 0 ? fpu.f32_add(a, b, rm) : k == 1 ? fpu.f32_sub(a, b, rm) : k == 2 ? fpu.f32_mul(a, b, rm) : fpu.f32_div(a, b, rm));
      }
      return true;
    }
    case 0x0b: { // FSQRT
      if (rs2 != 0) return false;
      const rm = roundingMode(insn);
      if (rm == 8) return false;
      if (dbl) setF64(rd, fpu.f64_sqrt(getF(rs1), rm));
      else setF32(rd, fpu.f32_sqrt(getF32(rs1), rm));
      return true;
    }
    case 0x04: { // FSGNJ, FSGNJN, FSGNJX
      if (f3 > 2) return false;
      if (dbl) {
        const a = getF(rs1), b = getF(rs2);
        const s = f3 == 0 ? b : f3 == 1 ? ~b : a ^ b;
        setF64(rd, (a & 0x7fffffffffffffff) | (s & 0x8000000000000000));
      } else {
        const a = getF32(rs1), b = getF32(rs2);
        const s = f3 == 0 ? b : f3 == 1 ? ~b : a ^ b;
        setF32(rd, (a & 0x7fffffff) | (s & 0x80000000));
      }
      return true;
    }
    case 0x05: { // FMIN, FMAX
      if (f3 > 1) return false;
      if (dbl) setF64(rd, f3 == 0 ? fpu.f64_min(getF(rs1), getF(rs2)) : fpu.f64_max(getF(rs1), getF(rs2)));
      else setF32(rd, f3 == 0 ? fpu.f32_min(getF32(rs1), getF32(rs2)) : fpu.f32_max(getF32(rs1), getF32(rs2)));
      return true;
    }
    case 0x08: { // FCVT.S.D / FCVT.D.S
      const rm = roundingMode(insn);
      if (rm == 8) return false;
      if (dbl) { if (rs2 != 0) return false; setF64(rd, fpu.f32_to_f64(getF32(rs1))); }
      else { if (rs2 != 1) return false; setF32(rd, fpu.f64_to_f32(getF(rs1), rm)); }
      return true;
    }
    case 0x14: { // FLE FLT FEQ
      let v: u32;
      if (dbl) {
        const a = getF(rs1), b = getF(rs2);
        if (f3 == 0) v = fpu.f64_le(a, b); else if (f3 == 1) v = fpu.f64_lt(a, b); else if (f3 == 2) v = fpu.f64_eq(a, b); else return false;
      } else {
        const a = getF32(rs1), b = getF32(rs2);
        if (f3 == 0) v = fpu.f32_le(a, b); else if (f3 == 1) v = fpu.f32_lt(a, b); else if (f3 == 2) v = fpu.f32_eq(a, b); else return false;
      }
      setX(rd, <u64>v);
      return true;
    }
    case 0x18: { // FCVT.W/WU/L/LU from float
      const rm = roundingMode(insn);
      if (rm == 8) return false;
      let v: i64;
      if (dbl) {
        const a = getF(rs1);
        if (rs2 == 0) v = fpu.f64_to_i32(a, rm); else if (rs2 == 1) v = fpu.f64_to_u32(a, rm);
        else if (rs2 == 2) v = fpu.f64_to_i64(a, rm); else if (rs2 == 3) v = fpu.f64_to_u64(a, rm); else return false;
      } else {
        const a = getF32(rs1);
        if (rs2 == 0) v = fpu.f32_to_i32(a, rm); else if (rs2 == 1) v = fpu.f32_to_u32(a, rm);
        else if (rs2 == 2) v = fpu.f32_to_i64(a, rm); else if (rs2 == 3) v = fpu.f32_to_u64(a, rm); else return false;
      }
      setX(rd, <u64>v);
      return true;
    }
    case 0x1a: { // FCVT to float from W/WU/L/LU
      const rm = roundingMode(insn);
      if (rm == 8) return false;
      const x = getX(rs1);
      if (dbl) {
        let v: u64;
        if (rs2 == 0) v = fpu.i32_to_f64(<i32>x, rm); else if (rs2 == 1) v = fpu.u32_to_f64(<u32>x, rm);
        else if (rs2 == 2) v = fpu.i64_to_f64(<i64>x, rm); else if (rs2 == 3) v = fpu.u64_to_f64(x, rm); else return false;
        setF64(rd, v);
      } else {
        let v: u32;
        if (rs2 == 0) v = fpu.i32_to_f32(<i32>x, rm); else if (rs2 == 1) v = fpu.u32_to_f32(<u32>x, rm);
        else if (rs2 == 2) v = fpu.i64_to_f32(<i64>x, rm); else if (rs2 == 3) v = fpu.u64_to_f32(x, rm); else return false;
        setF32(rd, v);
      }
      return true;
    }
    case 0x1c: { // FMV.X.W/D, FCLASS
      if (rs2 != 0) return false;
      if (f3 == 0) setX(rd, dbl ? getF(rs1) : sx32(getF(rs1) & 0xffffffff));
      else if (f3 == 1) setX(rd, <u64>(dbl ? fpu.f64_classify(getF(rs1)) : fpu.f32_classify(getF32(rs1))));
      else return false;
      return true;
    }
    case 0x1e: { // FMV.W.X / FMV.D.X
      if (rs2 != 0 || f3 != 0) return false;
      if (dbl) setF64(rd, getX(rs1)); else setF32(rd, <u32>getX(rs1));
      return true;
    }
    default: return false;
  }
}
