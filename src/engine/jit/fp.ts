/**
 * Translation of the F and D extensions' arithmetic (unprivileged spec 20191213 chapters 11
 * and 12) for translate.ts: the common cases in native WebAssembly, the rest through the
 * engine's `jitFp`, with results, fflags and sstatus.FS bit-identical to the interpreter's
 * (src/engine/as/cpu.ts, fp64.ts, fp-common.ts), which stays the reference.
 *
 * fcsr and sstatus.FS live in the hart state block's word at HS_FCSR (fflags bits 0-4,
 * frm bits 5-7, FS bits 8-9), so translated code checks them and accrues flags without a
 * call. Each F/D instruction first reads that word: with FS off (or, for the dynamic
 * rounding mode, a reserved frm) the block leaves before it and the interpreter raises
 * illegal instruction. The native paths are taken only where wasm's IEEE 754 operations
 * (round to nearest, ties to even) give the exact result and the flags are known:
 *  - FSGNJ[N|X].D/.S, FMV.X.D/.W, FMV.D/.W.X, FCVT.D.W[U]: always;
 *  - FADD/FSUB/FMUL/FDIV.D (RNE, or the dynamic mode with frm = RNE): the result finite,
 *    normal and not near overflow; inexact from the exact error (Fast2Sum) or from the
 *    operands' significant bits, as fp64.ts decides it; FSQRT.D (RNE) of a positive
 *    finite value;
 *  - FEQ/FLT/FLE.D, FMIN/FMAX.D, FCVT.D.S: no NaN operand;
 *  - FCVT.D.L[U]: the integer has at most 53 significant bits;
 *  - FCVT.W[U]/L[U].D (RNE, RTZ, RDN, RUP): the rounded value in range;
 *  - FCVT.S.D (RNE): the result normal and finite, or a zero.
 * Everything else (NaNs, infinities, subnormal and overflowing results, the other rounding
 * modes, the fused multiply-adds, FCLASS, single-precision arithmetic) calls
 * `jitFp(insn)`, which runs the instruction on the registers in the hart state block.
 */
import { HS_FCSR } from '../layout.js';
import { type Code, Op, ValType } from './wasm.js';
import { callEnv, type EnvCall } from './helpers.js';

const I32 = ValType.I32, I64 = ValType.I64, F64 = ValType.F64;
const SIGN = -0x8000000000000000n;
const F64_EXP = 0x7ff0000000000000n;
const F64_MANT = 0x000fffffffffffffn;
const F64_HIDDEN = 0x0010000000000000n;
/** fcsr word bits (HS_FCSR): FS (any nonzero value is on; 3 = Dirty), frm, fflags.NX. */
const FS_MASK = 0x300, FS_DIRTY = 0x300, FRM_MASK = 0xe0, NX = 1;
const RNE = 0, RTZ = 1, RDN = 2, RUP = 3, DYN = 7;

/** What the emitter needs from the block being translated (translate.ts's BlockWriter). */
export interface FpBlock {
  readonly c: Code;
  /** Linear address of x[r] in the hart state block (f[r - 32] for r >= 32). */
  xAddr(r: number): number;
  /** Push x[r] (an i64; 0 for x0). */
  getX(r: number): void;
  /** x[rd] = what `value` pushes (nothing for x0). */
  setX(rd: number, value: () => void): void;
  /** Store x[r]'s local into the hart state (jitFp reads x registers there). */
  storeX(r: number): void;
  /** Reload x[r]'s local from the hart state (after jitFp wrote it). */
  reloadX(r: number): void;
  /** Leave the block before the current instruction, with the instructions before it retired. */
  exitBefore(): void;
  /** How the module calls the engine's `jitFp` (through its envTable, helpers.ts EnvCall). */
  readonly jitFp: EnvCall;
}

/** Emits the F/D instructions of one block (see the file comment); scratch locals are made on first use. */
export class FpEmitter {
  private readonly fcsr: number;
  private readonly locals = new Map<string, number>();

  constructor(private readonly b: FpBlock, xBase: number) {
    this.fcsr = xBase + HS_FCSR;
  }

  private local(name: string, t: ValType): number {
    let l = this.locals.get(name);
    if (l === undefined) { l = this.b.c.local(t); this.locals.set(name, l); }
    return l;
  }
  private get fpw(): number { return this.local('fpw', I32); }

  /**
   * Load the fcsr word into local fpw and leave before the instruction when it is
   * illegal: FS off, or (rounding mode `rm` = DYN) frm is reserved (5-7).
   */
  private gate(rm: number): void {
    const c = this.b.c;
    c.i32Const(0).mem(Op.I32Load, this.fcsr, 2).tee(this.fpw).i32Const(FS_MASK).op(Op.I32And).op(Op.I32Eqz);
    if (rm === DYN) c.get(this.fpw).i32Const(FRM_MASK).op(Op.I32And).i32Const(5 << 5).op(Op.I32GeU).op(Op.I32Or);
    c.ifHinted(false);
    this.b.exitBefore();
    c.end();
  }
  /** Before an F/D load or store (FLW, FLD, FSW, FSD): with FS off, leave before it (the fcsr word in local fpw). */
  fsOn(): void { this.gate(RNE); }
  /** After an F/D load wrote its f register (after fsOn): FS becomes Dirty. */
  fsDirty(): void { this.dirty(null); }

  /** fcsr = fpw | FS Dirty | (NX when what `nx` pushes, an i32, is nonzero; none when null). */
  private dirty(nx: (() => void) | null): void {
    const c = this.b.c;
    c.i32Const(0).get(this.fpw).i32Const(FS_DIRTY).op(Op.I32Or);
    if (nx) { nx(); c.op(Op.I32Or); }
    c.mem(Op.I32Store, this.fcsr, 2);
  }
  /** Push the condition that rounding mode `rm` is RNE: static, or DYN with frm = RNE (after gate). */
  private rneCond(rm: number): boolean {
    if (rm === DYN) { this.b.c.get(this.fpw).i32Const(FRM_MASK).op(Op.I32And).op(Op.I32Eqz); return true; }
    return false;
  }
  private loadF64(r: number): void { this.b.c.i32Const(0).mem(Op.F64Load, this.b.xAddr(32 + r), 3); }
  private loadFBits(r: number): void { this.b.c.i32Const(0).mem(Op.I64Load, this.b.xAddr(32 + r), 3); }
  /** f[rd] = the i64 bits `value` pushes. */
  private storeFBits(rd: number, value: () => void): void {
    this.b.c.i32Const(0);
    value();
    this.b.c.mem(Op.I64Store, this.b.xAddr(32 + rd), 3);
  }
  /** Push f[r]'s binary32 value NaN-unboxed (unprivileged 12.2: not boxed reads as the canonical NaN), as an i64 below 2^32. */
  private unboxed32(r: number): void {
    const c = this.b.c;
    const t = this.local('box', I64);
    this.loadFBits(r);
    c.tee(t).i64Const(0xffffffffn).op(Op.I64And).i64Const(0x7fc00000).get(t).i64Const(32).op(Op.I64ShrU)
      .i64Const(0xffffffffn).op(Op.I64Eq).op(Op.Select);
  }

  /**
   * The generic path: jitFp(insn) on the registers in the hart state (x[rs1] stored there
   * first when the instruction reads it, x[rd] reloaded when it writes it); leaves before
   * the instruction when jitFp finds it illegal.
   */
  private viaEngine(insn: number, readsX: boolean, writesX: boolean): void {
    const c = this.b.c;
    const rd = (insn >>> 7) & 31, rs1 = (insn >>> 15) & 31;
    if (readsX && rs1 !== 0) this.b.storeX(rs1);
    callEnv(c.i32Const(insn | 0), this.b.jitFp);
    c.op(Op.I32Eqz).ifHinted(false);
    this.b.exitBefore();
    c.end();
    if (writesX && rd !== 0) this.b.reloadX(rd);
  }
  /** `if (fast condition on the stack) { fast() } else { viaEngine }`. */
  private fastElseEngine(insn: number, readsX: boolean, writesX: boolean, fast: () => void): void {
    const c = this.b.c;
    c.ifHinted(true);
    fast();
    c.op(Op.Else);
    this.viaEngine(insn, readsX, writesX);
    c.end();
  }

  /** Translate OP-FP (0x53) or a fused multiply-add (0x43, 0x47, 0x4b, 0x4f) `insn`; `readsX`/`writesX` as translate.ts's xUse. */
  emit(insn: number, readsX: boolean, writesX: boolean): void {
    if ((insn & 0x7f) !== 0x53 || !this.native(insn)) this.viaEngine(insn, readsX, writesX);
  }

  /** Emit `insn` (OP-FP) with a native path; false (nothing emitted) when it has none. */
  private native(insn: number): boolean {
    const rd = (insn >>> 7) & 31, rs1 = (insn >>> 15) & 31, rs2 = (insn >>> 20) & 31, rm = (insn >>> 12) & 7;
    const f7 = insn >>> 25, f5 = f7 >>> 2, dbl = (f7 & 3) === 1;
    if ((f7 & 3) > 1) return false;
    const c = this.b.c;
    const staticRm = rm <= 4; // a legal static rounding mode
    switch (f5) {
      case 0x00: case 0x01: case 0x02: case 0x03: // FADD FSUB FMUL FDIV
        if (!dbl || !(rm === RNE || rm === DYN)) return false;
        this.gate(rm);
        this.arith(insn, f5, rd, rs1, rs2, rm);
        return true;
      case 0x0b: // FSQRT.D
        if (!dbl || rs2 !== 0 || !(rm === RNE || rm === DYN)) return false;
        this.gate(rm);
        this.sqrt(insn, rd, rs1, rm);
        return true;
      case 0x04: { // FSGNJ FSGNJN FSGNJX
        if (rm > 2) return false;
        this.gate(RNE);
        if (dbl) {
          const a = this.local('a', I64);
          this.storeFBits(rd, () => {
            this.loadFBits(rs1);
            c.tee(a).i64Const(~SIGN).op(Op.I64And);
            if (rm === 2) c.get(a);
            this.loadFBits(rs2);
            if (rm === 1) c.i64Const(-1).op(Op.I64Xor);
            else if (rm === 2) c.op(Op.I64Xor);
            c.i64Const(SIGN).op(Op.I64And).op(Op.I64Or);
          });
        } else {
          const a = this.local('a', I64);
          this.storeFBits(rd, () => {
            this.unboxed32(rs1);
            c.tee(a).i64Const(0x7fffffff).op(Op.I64And);
            if (rm === 2) c.get(a);
            this.unboxed32(rs2);
            if (rm === 1) c.i64Const(-1).op(Op.I64Xor);
            else if (rm === 2) c.op(Op.I64Xor);
            c.i64Const(0x80000000).op(Op.I64And).op(Op.I64Or).i64Const(-0x100000000).op(Op.I64Or);
          });
        }
        this.dirty(null);
        return true;
      }
      case 0x05: // FMIN FMAX: wasm's min/max order -0 below +0 as RISC-V does; NaNs through the engine
        if (!dbl || rm > 1) return false;
        this.gate(RNE);
        this.bothNotNaN(rs1, rs2);
        this.fastElseEngine(insn, false, false, () => {
          this.storeFBits(rd, () => {
            c.get(this.local('x', F64)).get(this.local('y', F64)).op(rm === 0 ? Op.F64Min : Op.F64Max).op(Op.I64ReinterpretF64);
          });
          this.dirty(null);
        });
        return true;
      case 0x08: // FCVT.S.D, FCVT.D.S
        if (dbl) { // FCVT.D.S: exact unless NaN
          if (rs2 !== 0 || !(staticRm || rm === DYN)) return false;
          this.gate(rm);
          const a = this.local('a', I64);
          this.unboxed32(rs1);
          c.tee(a).i64Const(0x7fffffff).op(Op.I64And).i64Const(0x7f800000).op(Op.I64LeU);
          this.fastElseEngine(insn, false, false, () => {
            this.storeFBits(rd, () => {
              c.get(a).op(Op.I32WrapI64).op(Op.F32ReinterpretI32).op(Op.F64PromoteF32).op(Op.I64ReinterpretF64);
            });
            this.dirty(null);
          });
          return true;
        }
        if (rs2 !== 1 || !(rm === RNE || rm === DYN)) return false;
        this.gate(rm);
        this.demote(insn, rd, rs1, rm);
        return true;
      case 0x14: // FLE FLT FEQ
        if (!dbl || rm > 2) return false;
        this.gate(RNE);
        this.bothNotNaN(rs1, rs2);
        this.fastElseEngine(insn, false, true, () => {
          this.b.setX(rd, () => {
            c.get(this.local('x', F64)).get(this.local('y', F64)).op([Op.F64Le, Op.F64Lt, Op.F64Eq][rm]).op(Op.I64ExtendI32U);
          });
        });
        return true;
      case 0x18: // FCVT.W/WU/L/LU.D
        if (!dbl || rs2 > 3 || !(rm <= RUP || rm === DYN)) return false;
        this.gate(rm);
        this.toInt(insn, rd, rs1, rs2, rm);
        return true;
      case 0x1a: // FCVT.D.W/WU/L/LU
        if (!dbl || rs2 > 3 || !(staticRm || rm === DYN)) return false;
        this.gate(rm);
        this.fromInt(insn, rd, rs1, rs2);
        return true;
      case 0x1c: // FMV.X.D, FMV.X.W (FCLASS through the engine)
        if (rs2 !== 0 || rm !== 0) return false;
        this.gate(RNE);
        this.b.setX(rd, () => {
          this.loadFBits(rs1);
          if (!dbl) c.op(Op.I32WrapI64).op(Op.I64ExtendI32S);
        });
        return true;
      case 0x1e: // FMV.D.X, FMV.W.X
        if (rs2 !== 0 || rm !== 0) return false;
        this.gate(RNE);
        this.storeFBits(rd, () => {
          this.b.getX(rs1);
          if (!dbl) c.i64Const(-0x100000000).op(Op.I64Or);
        });
        this.dirty(null);
        return true;
      default:
        return false;
    }
  }

  /** Locals x = f[rs1], y = f[rs2] (binary64); push x and y are not NaN (i32). */
  private bothNotNaN(rs1: number, rs2: number): void {
    const c = this.b.c;
    const x = this.local('x', F64), y = this.local('y', F64);
    this.loadF64(rs1);
    c.tee(x).get(x).op(Op.F64Eq);
    this.loadF64(rs2);
    c.tee(y).get(y).op(Op.F64Eq).op(Op.I32And);
  }

  /**
   * Push the significand of the binary64 bits in local `bits` with its trailing zeros
   * shifted out (fp-common.ts oddPart), the hidden bit included when the exponent field is
   * nonzero: for a nonzero finite value.
   */
  private oddSignificand(bits: number, hidden: boolean): void {
    const c = this.b.c;
    const m = this.local('m', I64);
    c.get(bits).i64Const(F64_MANT).op(Op.I64And);
    if (hidden) c.i64Const(F64_HIDDEN).op(Op.I64Or);
    else c.i64Const(0).i64Const(F64_HIDDEN).get(bits).i64Const(F64_EXP).op(Op.I64And).op(Op.I64Eqz).op(Op.Select).op(Op.I64Or);
    c.tee(m).get(m).op(Op.I64Ctz).op(Op.I64ShrU);
  }

  /** FADD/FSUB/FMUL/FDIV.D under RNE (static, or DYN checked at run time), as fp64.ts's fast paths. */
  private arith(insn: number, k: number, rd: number, rs1: number, rs2: number, rm: number): void {
    const c = this.b.c;
    const x = this.local('x', F64), y = this.local('y', F64), r = this.local('r', F64), rb = this.local('rb', I64);
    this.loadF64(rs1);
    c.set(x);
    this.loadF64(rs2);
    if (k === 1) c.op(Op.F64Neg); // FSUB.D is FADD.D of -b (fp64.ts f64_sub)
    c.set(y);
    c.get(x).get(y).op([Op.F64Add, Op.F64Add, Op.F64Mul, Op.F64Div][k]).tee(r).op(Op.I64ReinterpretF64).set(rb);
    if (k <= 1) {
      // |r| < 2^1023: finite, and Fast2Sum's steps cannot overflow (a sum is never tiny and inexact)
      c.get(rb).i64Const(0x7fe0000000000000n).op(Op.I64And).i64Const(0x7fe0000000000000n).op(Op.I64Ne);
    } else {
      // exponent field 2..0x7fe: finite, nonzero and too large to be tiny
      c.get(rb).i64Const(52).op(Op.I64ShrU).i64Const(0x7ff).op(Op.I64And).i64Const(2).op(Op.I64Sub).i64Const(0x7fd).op(Op.I64LtU);
    }
    if (this.rneCond(rm)) c.op(Op.I32And);
    this.fastElseEngine(insn, false, false, () => {
      this.storeFBits(rd, () => c.get(rb));
      this.dirty(() => {
        if (k <= 1) {
          // Fast2Sum: err = small - (r - big) is exactly x + y - r
          const big = this.local('big', I32);
          c.get(x).op(Op.F64Abs).get(y).op(Op.F64Abs).op(Op.F64Ge).set(big);
          c.get(y).get(x).get(big).op(Op.Select);
          c.get(r).get(x).get(y).get(big).op(Op.Select).op(Op.F64Sub);
          c.op(Op.F64Sub).f64Const(0).op(Op.F64Ne);
        } else if (k === 2) {
          // exact iff the odd parts' bit lengths add up to at most 53 (or 54 with a product below 2^53)
          const a = this.local('ab', I64), b = this.local('bb', I64), oa = this.local('oa', I64), ob = this.local('ob', I64);
          const zeros = this.local('zeros', I32);
          c.get(x).op(Op.I64ReinterpretF64).set(a);
          c.get(y).op(Op.I64ReinterpretF64).set(b);
          this.oddSignificand(a, false);
          c.tee(oa).op(Op.I64Clz);
          this.oddSignificand(b, false);
          c.tee(ob).op(Op.I64Clz).op(Op.I64Add).op(Op.I32WrapI64).set(zeros);
          // bit lengths 128 - zeros: exact iff <= 53, or == 54 with oa * ob < 2^53
          c.get(zeros).i32Const(75).op(Op.I32GeU);
          c.get(zeros).i32Const(74).op(Op.I32Eq).get(oa).get(ob).op(Op.I64Mul).i64Const(F64_HIDDEN << 1n).op(Op.I64LtU).op(Op.I32And);
          c.op(Op.I32Or).op(Op.I32Eqz);
        } else {
          // exact iff odd(q) * odd(b) == odd(a), their bit lengths adding up to at most 54
          const a = this.local('ab', I64), b = this.local('bb', I64), oq = this.local('oa', I64), ob = this.local('ob', I64);
          c.get(x).op(Op.I64ReinterpretF64).set(a);
          c.get(y).op(Op.I64ReinterpretF64).set(b);
          this.oddSignificand(rb, true);
          c.tee(oq).op(Op.I64Clz);
          this.oddSignificand(b, false);
          c.tee(ob).op(Op.I64Clz).op(Op.I64Add).op(Op.I32WrapI64).i32Const(74).op(Op.I32GeU); // bit lengths 128 - zeros <= 54
          c.get(oq).get(ob).op(Op.I64Mul);
          this.oddSignificand(a, false);
          c.op(Op.I64Eq).op(Op.I32And).op(Op.I32Eqz);
        }
      });
    });
  }

  /** FSQRT.D under RNE of a positive, finite, nonzero value (fp64.ts f64_sqrt): the result is normal and never a tie. */
  private sqrt(insn: number, rd: number, rs1: number, rm: number): void {
    const c = this.b.c;
    const a = this.local('ab', I64), rb = this.local('rb', I64), os = this.local('oa', I64);
    this.loadFBits(rs1);
    c.tee(a).i64Const(1).op(Op.I64Sub).i64Const(0x7fefffffffffffffn).op(Op.I64LtU);
    if (this.rneCond(rm)) c.op(Op.I32And);
    this.fastElseEngine(insn, false, false, () => {
      c.get(a).op(Op.F64ReinterpretI64).op(Op.F64Sqrt).op(Op.I64ReinterpretF64).set(rb);
      this.storeFBits(rd, () => c.get(rb));
      // exact iff odd(s)^2 == odd(a), odd(s) below 2^27
      this.dirty(() => {
        this.oddSignificand(rb, true);
        c.tee(os).op(Op.I64Clz).i64Const(37).op(Op.I64LtU);
        c.get(os).get(os).op(Op.I64Mul);
        this.oddSignificand(a, false);
        c.op(Op.I64Ne).op(Op.I32Or);
      });
    });
  }

  /** FCVT.S.D under RNE: the binary32 result normal and finite (exponent field 2..0xfe), or an exact zero. */
  private demote(insn: number, rd: number, rs1: number, rm: number): void {
    const c = this.b.c;
    const x = this.local('x', F64), s = this.local('s', I32);
    this.loadF64(rs1);
    c.tee(x).op(Op.F32DemoteF64).op(Op.I32ReinterpretF32).tee(s);
    c.i32Const(23).op(Op.I32ShrU).i32Const(0xff).op(Op.I32And).i32Const(2).op(Op.I32Sub).i32Const(0xfd).op(Op.I32LtU);
    c.get(x).f64Const(0).op(Op.F64Eq).op(Op.I32Or);
    if (this.rneCond(rm)) c.op(Op.I32And);
    this.fastElseEngine(insn, false, false, () => {
      this.storeFBits(rd, () => { c.get(s).op(Op.I64ExtendI32U).i64Const(-0x100000000).op(Op.I64Or); });
      this.dirty(() => { c.get(s).op(Op.F32ReinterpretI32).op(Op.F64PromoteF32).get(x).op(Op.F64Ne); });
    });
  }

  /** FCVT.W/WU/L/LU.D (`kind` = rs2 0-3) in mode RNE, RTZ, RDN or RUP (DYN: RNE at run time), the rounded value in range (fp-common.ts cvt*). */
  private toInt(insn: number, rd: number, rs1: number, kind: number, rm: number): void {
    const c = this.b.c;
    const x = this.local('x', F64), r = this.local('r', F64);
    this.loadF64(rs1);
    const round = { [RNE]: Op.F64Nearest, [RTZ]: Op.F64Trunc, [RDN]: Op.F64Floor, [RUP]: Op.F64Ceil }[rm === DYN ? RNE : rm]!;
    c.tee(x).op(round).tee(r);
    const [lo, hi, hiIncl] = [[-2147483648, 2147483647, true], [0, 4294967295, true],
      [-9223372036854775808, 9223372036854775808, false], [0, 18446744073709551616, false]][kind] as [number, number, boolean];
    c.f64Const(lo).op(Op.F64Ge).get(r).f64Const(hi).op(hiIncl ? Op.F64Le : Op.F64Lt).op(Op.I32And);
    if (this.rneCond(rm)) c.op(Op.I32And);
    this.fastElseEngine(insn, false, true, () => {
      this.b.setX(rd, () => {
        c.get(r);
        if (kind === 0) c.op(Op.I32TruncF64S).op(Op.I64ExtendI32S);
        else if (kind === 1) c.op(Op.I32TruncF64U).op(Op.I64ExtendI32S); // the 32-bit result sign-extended
        else c.op(kind === 2 ? Op.I64TruncF64S : Op.I64TruncF64U);
      });
      // inexact: only the flag changes (FS Dirty), no f register
      c.get(r).get(x).op(Op.F64Ne).ifHinted(false);
      this.dirty(() => c.i32Const(NX));
      c.end();
    });
  }

  /** FCVT.D.W/WU (exact) and FCVT.D.L/LU (exact when the integer has at most 53 significant bits). */
  private fromInt(insn: number, rd: number, rs1: number, kind: number): void {
    const c = this.b.c;
    const convert = () => this.storeFBits(rd, () => {
      this.b.getX(rs1);
      if (kind <= 1) c.op(Op.I32WrapI64).op(kind === 0 ? Op.F64ConvertI32S : Op.F64ConvertI32U);
      else c.op(kind === 2 ? Op.F64ConvertI64S : Op.F64ConvertI64U);
      c.op(Op.I64ReinterpretF64);
    });
    if (kind <= 1) {
      convert();
      this.dirty(null);
      return;
    }
    // |v| <= 2^53 (L: v + 2^53 <= 2^54 unsigned), or v <= 2^53 (LU); F64_HIDDEN is 2^52
    this.b.getX(rs1);
    if (kind === 2) c.i64Const(F64_HIDDEN << 1n).op(Op.I64Add).i64Const(F64_HIDDEN << 2n).op(Op.I64LeU);
    else c.i64Const(F64_HIDDEN << 1n).op(Op.I64LeU);
    this.fastElseEngine(insn, true, false, () => {
      convert();
      this.dirty(null);
    });
  }
}
