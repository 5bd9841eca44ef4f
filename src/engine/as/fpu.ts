// RISC-V F extension arithmetic (binary32, F §11.6-11.7) and the binary32 <-> binary64
// conversions (D §12.5); the binary64 operations are in fp64.ts, re-exported here, and the
// shared parts (flags, rounding, the speed strategy) are described in fp-common.ts.

import {
  DZ, F32_INF, F32_NAN, F32_SIGN, F64_EXP, F64_HIDDEN, F64_NAN, NV, NX, RDN, RNE, RTZ, RUP,
  cvtI32, cvtI64, cvtU32, cvtU64, isInf32, isNaN32, isSNaN32, isZero32, nanResult32,
  packU64ToF32, roundToF32, roundToOdd,
} from './fp-common';
import * as fc from './fp-common';

export { fpFlags } from './fp-common';
export * from './fp64';

// ---------------------------------------------------------------------------------------
// binary32 arithmetic (F §11.6)

/** FADD.S (F §11.6): a + b rounded per rm. */
export function f32_add(a: u32, b: u32, rm: u32): u32 {
  const x = <f64>reinterpret<f32>(a), y = <f64>reinterpret<f32>(b);
  let s = x + y; // binary32 operands: no binary64 overflow, and Fast2Sum below is exact
  if ((reinterpret<u64>(s) & F64_EXP) == F64_EXP) {
    if (s != s) return nanResult32(a, b);
    return <u32>(reinterpret<u64>(s) >> 32) & F32_SIGN | F32_INF; // an infinite operand: exact
  }
  // Fast2Sum: with |hi| >= |lo|, err = lo - (s - hi) is exactly x + y - s
  const big = abs<f64>(x) >= abs<f64>(y);
  const err = select<f64>(y, x, big) - (s - select<f64>(x, y, big));
  if (err != 0) {
    s = roundToOdd(s, err);
  } else if (s == 0) {
    // exact zero: +0 unless both operands are -0, or -0 for opposite signs in RDN (IEEE 754 §6.3)
    return rm == RDN ? (a | b) & F32_SIGN : (a & b) & F32_SIGN;
  }
  return roundToF32(s, rm);
}

/** FSUB.S (F §11.6): a - b rounded per rm. */
export function f32_sub(a: u32, b: u32, rm: u32): u32 {
  return f32_add(a, b ^ F32_SIGN, rm);
}

/** FMUL.S (F §11.6): a * b rounded per rm. */
export function f32_mul(a: u32, b: u32, rm: u32): u32 {
  const p = <f64>reinterpret<f32>(a) * <f64>reinterpret<f32>(b); // exact: 24x24 bits
  if (p != p) return nanResult32(a, b);
  return roundToF32(p, rm);
}

/** FDIV.S (F §11.6): a / b rounded per rm; DZ for finite nonzero / 0. */
export function f32_div(a: u32, b: u32, rm: u32): u32 {
  if (rm == RNE) {
    const x = <f64>reinterpret<f32>(a), y = <f64>reinterpret<f32>(b);
    // binary64 division then binary32 rounding is a correct RNE quotient (53 >= 2*24+2)
    const r = <f32>(x / y);
    const rb = reinterpret<u32>(r);
    if ((rb & 0x7fffffff) - 0x00800001 < 0x7effffff) {
      if (<f64>r * y != x) fc.fpFlags |= NX; // r*y is exact in binary64
      return rb;
    }
  }
  return f32DivSlow(a, b, rm);
}

function f32DivSlow(a: u32, b: u32, rm: u32): u32 {
  const sign = (a ^ b) & F32_SIGN;
  let ea = <i32>(a >> 23) & 0xff, eb = <i32>(b >> 23) & 0xff;
  let ma = a & 0x7fffff, mb = b & 0x7fffff;
  if (ea == 0xff || eb == 0xff) {
    if (isNaN32(a) || isNaN32(b)) return nanResult32(a, b);
    if (ea == 0xff) {
      if (eb == 0xff) return nanResult32(a, b); // inf / inf
      return sign | F32_INF;
    }
    return sign; // finite / inf
  }
  if (eb == 0 && mb == 0) {
    if (ea == 0 && ma == 0) return nanResult32(a, b); // 0 / 0
    fc.fpFlags |= DZ;
    return sign | F32_INF;
  }
  if (ea == 0 && ma == 0) return sign;
  if (ea == 0) {
    const sh = <i32>clz<u32>(ma) - 8;
    ma <<= sh;
    ea = 1 - sh;
  } else ma |= 0x800000;
  if (eb == 0) {
    const sh = <i32>clz<u32>(mb) - 8;
    mb <<= sh;
    eb = 1 - sh;
  } else mb |= 0x800000;
  // 40+ quotient bits and a sticky bit: exact in binary64, far more than binary32 needs
  const n = <u64>ma << 40;
  const q = n / <u64>mb;
  const r = n - q * <u64>mb;
  const qs = (q << 1) | <u64>(r != 0);
  const scale = reinterpret<f64>(<u64>(ea - eb - 41 + 1023) << 52);
  const q64 = <f64>qs * scale;
  return roundToF32(sign != 0 ? -q64 : q64, rm);
}

/** FSQRT.S (F §11.6): square root rounded per rm; NV for negative operands. */
export function f32_sqrt(a: u32, rm: u32): u32 {
  if (a - 1 >= 0x7f7fffff) {
    // zero, infinity, NaN or negative
    if (isZero32(a) || a == F32_INF) return a;
    if (isNaN32(a) && !isSNaN32(a)) return F32_NAN;
    fc.fpFlags |= NV;
    return F32_NAN;
  }
  const x = <f64>reinterpret<f32>(a);
  const r = <f32>sqrt<f64>(x); // correct RNE result (53 >= 2*24+2); never a tie
  let rb = reinterpret<u32>(r);
  const rr = <f64>r * <f64>r; // exact
  if (rr != x) {
    fc.fpFlags |= NX;
    if (rm == RTZ || rm == RDN) {
      if (rr > x) rb--;
    } else if (rm == RUP) {
      if (rr < x) rb++;
    }
  }
  return rb;
}

/** Special operands of a fused multiply-add (binary32): NaN or infinity somewhere. */
function fmaSpecial32(a: u32, b: u32, c: u32): u32 {
  const infZero = (isInf32(a) && isZero32(b)) || (isZero32(a) && isInf32(b));
  if (isNaN32(a) || isNaN32(b) || isNaN32(c)) {
    // RISC-V raises NV for inf*0 even when the addend is a quiet NaN (F §11.6)
    if (isSNaN32(a) || isSNaN32(b) || isSNaN32(c) || infZero) fc.fpFlags |= NV;
    return F32_NAN;
  }
  if (infZero) {
    fc.fpFlags |= NV;
    return F32_NAN;
  }
  if (isInf32(a) || isInf32(b)) {
    const sp = (a ^ b) & F32_SIGN;
    if (isInf32(c) && (c & F32_SIGN) != sp) {
      fc.fpFlags |= NV;
      return F32_NAN;
    }
    return sp | F32_INF;
  }
  return c;
}

/** FMADD.S (F §11.6): a * b + c with a single rounding per rm. */
export function f32_fma(a: u32, b: u32, c: u32, rm: u32): u32 {
  const p = <f64>reinterpret<f32>(a) * <f64>reinterpret<f32>(b); // exact
  const z = <f64>reinterpret<f32>(c);
  let s = p + z;
  if ((reinterpret<u64>(s) & F64_EXP) == F64_EXP) return fmaSpecial32(a, b, c);
  const bv = s - p;
  const err = (p - (s - bv)) + (z - bv);
  if (err != 0) {
    s = roundToOdd(s, err);
  } else if (s == 0) {
    const sp = <u32>(reinterpret<u64>(p) >> 32) & F32_SIGN;
    const sc = c & F32_SIGN;
    return rm == RDN ? sp | sc : sp & sc;
  }
  return roundToF32(s, rm);
}

/** FMIN.S (F §11.6): IEEE 754-2019 minimumNumber; -0 < +0; NV for sNaN; canonical NaN if both NaN. */
export function f32_min(a: u32, b: u32): u32 {
  const x = reinterpret<f32>(a), y = reinterpret<f32>(b);
  if (x < y) return a;
  if (y < x) return b;
  if (x == y) return a | b; // equal: the same bits, or +0 and -0
  return minMaxNaN32(a, b);
}

/** FMAX.S (F §11.6): IEEE 754-2019 maximumNumber; -0 < +0; NV for sNaN; canonical NaN if both NaN. */
export function f32_max(a: u32, b: u32): u32 {
  const x = reinterpret<f32>(a), y = reinterpret<f32>(b);
  if (x > y) return a;
  if (y > x) return b;
  if (x == y) return a & b;
  return minMaxNaN32(a, b);
}

function minMaxNaN32(a: u32, b: u32): u32 {
  if (isSNaN32(a) || isSNaN32(b)) fc.fpFlags |= NV;
  if (isNaN32(a)) return isNaN32(b) ? F32_NAN : b;
  return a;
}

/** FEQ.S (F §11.8): quiet equality, 1 or 0; NV only for signalling NaN operands. */
export function f32_eq(a: u32, b: u32): u32 {
  if (reinterpret<f32>(a) == reinterpret<f32>(b)) return 1;
  if (isSNaN32(a) || isSNaN32(b)) fc.fpFlags |= NV;
  return 0;
}

/** FLT.S (F §11.8): signalling less-than, 1 or 0; NV for any NaN operand. */
export function f32_lt(a: u32, b: u32): u32 {
  if (reinterpret<f32>(a) < reinterpret<f32>(b)) return 1;
  if (isNaN32(a) || isNaN32(b)) fc.fpFlags |= NV;
  return 0;
}

/** FLE.S (F §11.8): signalling less-or-equal, 1 or 0; NV for any NaN operand. */
export function f32_le(a: u32, b: u32): u32 {
  if (reinterpret<f32>(a) <= reinterpret<f32>(b)) return 1;
  if (isNaN32(a) || isNaN32(b)) fc.fpFlags |= NV;
  return 0;
}

/** FCLASS.S (F §11.9): the 10-bit class mask (bit 0 -inf ... bit 7 +inf, 8 sNaN, 9 qNaN). */
export function f32_classify(a: u32): u32 {
  const neg = (a >> 31) != 0;
  const e = (a >> 23) & 0xff, m = a & 0x7fffff;
  if (e == 0xff) {
    if (m == 0) return neg ? 1 : 1 << 7;
    return (m & 0x400000) != 0 ? 1 << 9 : 1 << 8;
  }
  if (e == 0) {
    if (m == 0) return neg ? 1 << 3 : 1 << 4;
    return neg ? 1 << 2 : 1 << 5;
  }
  return neg ? 1 << 1 : 1 << 6;
}

/** FCVT.W.S (F §11.7): to int32 per rm, sign-extended to 64 bits; saturates with NV. */
export function f32_to_i32(a: u32, rm: u32): i64 {
  return cvtI32(<f64>reinterpret<f32>(a), rm);
}

/** FCVT.WU.S (F §11.7): to uint32 per rm, the 32-bit result sign-extended; saturates with NV. */
export function f32_to_u32(a: u32, rm: u32): i64 {
  return cvtU32(<f64>reinterpret<f32>(a), rm);
}

/** FCVT.L.S (F §11.7): to int64 per rm; saturates with NV. */
export function f32_to_i64(a: u32, rm: u32): i64 {
  return cvtI64(<f64>reinterpret<f32>(a), rm);
}

/** FCVT.LU.S (F §11.7): to uint64 per rm; saturates with NV. */
export function f32_to_u64(a: u32, rm: u32): i64 {
  return cvtU64(<f64>reinterpret<f32>(a), rm);
}

/** FCVT.S.W (F §11.7): int32 to binary32 per rm. */
export function i32_to_f32(v: i32, rm: u32): u32 {
  return roundToF32(<f64>v, rm);
}

/** FCVT.S.WU (F §11.7): uint32 to binary32 per rm. */
export function u32_to_f32(v: u32, rm: u32): u32 {
  return roundToF32(<f64>v, rm);
}

/** FCVT.S.L (F §11.7): int64 to binary32 per rm. */
export function i64_to_f32(v: i64, rm: u32): u32 {
  const m = v < 0 ? <u64>-v : <u64>v;
  if (m < F64_HIDDEN << 1) return roundToF32(<f64>v, rm); // exact in binary64
  if (rm == RNE) {
    if (clz<u64>(m) + ctz<u64>(m) < 40) fc.fpFlags |= NX; // more than 24 significant bits
    return reinterpret<u32>(<f32>v);
  }
  return packU64ToF32(v < 0 ? F32_SIGN : 0, m, rm);
}

/** FCVT.S.LU (F §11.7): uint64 to binary32 per rm. */
export function u64_to_f32(v: u64, rm: u32): u32 {
  if (v < F64_HIDDEN << 1) return roundToF32(<f64>v, rm);
  if (rm == RNE) {
    if (clz<u64>(v) + ctz<u64>(v) < 40) fc.fpFlags |= NX;
    return reinterpret<u32>(<f32>v);
  }
  return packU64ToF32(0, v, rm);
}

// ---------------------------------------------------------------------------------------
// binary32 <-> binary64 (D §12.5)

/** FCVT.D.S (D §12.5): exact widening; NaN becomes the canonical NaN (NV if signalling). */
export function f32_to_f64(a: u32): u64 {
  if (isNaN32(a)) {
    if (isSNaN32(a)) fc.fpFlags |= NV;
    return F64_NAN;
  }
  return reinterpret<u64>(<f64>reinterpret<f32>(a));
}

/** FCVT.S.D (D §12.5): binary64 to binary32 rounded per rm. */
export function f64_to_f32(a: u64, rm: u32): u32 {
  return roundToF32(reinterpret<f64>(a), rm);
}
