// RISC-V F and D extension arithmetic: IEEE 754-2008 binary32/binary64 as the RISC-V
// Unprivileged ISA prescribes it. Section numbers ("F §11.x", "D §12.x") refer to the
// ratified Unprivileged ISA 20191213, chapters 11 ("F") and 12 ("D").
//
// - Values travel as bit patterns: binary32 in a u32, binary64 in a u64.
// - Rounding mode `rm` is the fcsr.frm encoding: 0 RNE, 1 RTZ, 2 RDN, 3 RUP, 4 RMM.
//   The caller resolves DYN (7) and rejects 5 and 6.
// - Exception flags accumulate into `fpFlags` (NX=1, UF=2, OF=4, DZ=8, NV=16), the
//   fflags layout (F §11.2). Underflow is "tiny and inexact", tininess detected after
//   rounding (F §11.4). NaN results are always the canonical NaN (F §11.3); signalling
//   NaN inputs raise NV.
//
// Speed: the common case (RNE, normal range) uses wasm's own f32/f64 operations, which
// round to nearest even, and finds the inexact flag with cheap exact checks (Fast2Sum for
// addition, odd-part tests for f64 multiply/divide/sqrt, exact f64 products for binary32,
// error-free transformations for the f64 fused multiply-add). Everything else (directed
// rounding, results near underflow or overflow) takes an exact integer path: significands
// with guard and sticky bits rounded once by roundPack32/roundPack64. binary32 operations
// are computed exactly, or rounded to odd, in binary64 (53 >= 24 + 2 bits, so a single
// later rounding to binary32 is correct in every mode), then rounded by the binary64 ->
// binary32 conversion. Checked bit for bit, flags included, against vectors from real
// RISC-V instructions (test/engine/fpu.test.ts).

/** Accumulated exception flags (fflags layout, F §11.2); the caller ORs them into fflags and resets this to 0. */
export let fpFlags: u32 = 0;

const NX: u32 = 1;
const UF: u32 = 2;
const OF: u32 = 4;
const DZ: u32 = 8;
const NV: u32 = 16;

const RNE: u32 = 0;
const RTZ: u32 = 1;
const RDN: u32 = 2;
const RUP: u32 = 3;
const RMM: u32 = 4;

const F32_SIGN: u32 = 0x80000000;
const F32_INF: u32 = 0x7f800000;
const F32_NAN: u32 = 0x7fc00000;
const F32_MAX: u32 = 0x7f7fffff;

const F64_SIGN: u64 = 0x8000000000000000;
const F64_EXP: u64 = 0x7ff0000000000000;
const F64_INF: u64 = 0x7ff0000000000000;
const F64_NAN: u64 = 0x7ff8000000000000;
const F64_MAX: u64 = 0x7fefffffffffffff;
const F64_MANT: u64 = 0x000fffffffffffff;
const F64_HIDDEN: u64 = 0x0010000000000000;
const BIT63: u64 = 0x8000000000000000;
const BIT62: u64 = 0x4000000000000000;

// ---------------------------------------------------------------------------------------
// Integer helpers

/** Second result of mul128 and shr128Jam (low 64 bits). */
let lo64: u64 = 0;

/** 64x64 -> 128-bit product; returns the high half, leaves the low half in lo64. */
// @ts-ignore: decorator
@inline function mul128(a: u64, b: u64): u64 {
  const a0 = a & 0xffffffff, a1 = a >> 32, b0 = b & 0xffffffff, b1 = b >> 32;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
  lo64 = (mid << 32) | (p00 & 0xffffffff);
  return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

/** x >> n, with every bit shifted out ORed into bit 0 (the sticky bit). */
// @ts-ignore: decorator
@inline function shrJam(x: u64, n: i32): u64 {
  if (n <= 0) return x;
  if (n < 64) return (x >> <u64>n) | <u64>((x << <u64>(64 - n)) != 0);
  return <u64>(x != 0);
}

/** 128-bit (hi:lo) >> n with sticky bit; returns the high half, low half in lo64. */
function shr128Jam(hi: u64, lo: u64, n: i32): u64 {
  if (n <= 0) {
    lo64 = lo;
    return hi;
  }
  if (n < 64) {
    lo64 = (hi << <u64>(64 - n)) | (lo >> <u64>n) | <u64>((lo << <u64>(64 - n)) != 0);
    return hi >> <u64>n;
  }
  if (n == 64) {
    lo64 = hi | <u64>(lo != 0);
  } else if (n < 128) {
    const m = <u64>(n - 64);
    lo64 = (hi >> m) | <u64>(((hi << (64 - m)) | lo) != 0);
  } else {
    lo64 = <u64>((hi | lo) != 0);
  }
  return 0;
}

/** The odd part of x (x != 0): x with its trailing zero bits removed. */
// @ts-ignore: decorator
@inline function oddPart(x: u64): u64 {
  return x >> ctz<u64>(x);
}

// ---------------------------------------------------------------------------------------
// Rounding and packing

/**
 * Round and pack a binary64 result. value = sig * 2^(exp - 1085), sig < 2^63 with its
 * leading one at bit 62 whenever exp >= 1 (bits 9..0 are the round and sticky bits).
 */
function roundPack64(sign: u64, exp: i32, sig: u64, rm: u32): u64 {
  let inc: u64 = 0x200;
  if (rm != RNE && rm != RMM) {
    inc = rm == RTZ || (rm == RDN) == (sign == 0) ? 0 : 0x3ff;
  }
  if (<u32>(exp - 1) >= 0x7fd) {
    if (exp <= 0) {
      // tiny after rounding: the result rounded to 53 bits with unbounded exponent is below 2^-1022
      const tiny = exp < 0 || sig + inc < BIT63;
      sig = shrJam(sig, 1 - exp);
      exp = 1;
      if (tiny && (sig & 0x3ff) != 0) fpFlags |= UF;
    } else if (exp > 0x7fe || sig + inc >= BIT63) {
      fpFlags |= OF | NX;
      return sign | (inc == 0 ? F64_MAX : F64_INF);
    }
  }
  const rb = sig & 0x3ff;
  if (rb != 0) fpFlags |= NX;
  sig = (sig + inc) >> 10;
  if (rb == 0x200 && rm == RNE) sig &= ~(<u64>1);
  // the hidden bit of sig adds one to the exponent field; a rounding carry adds one more
  return sign | ((<u64>(exp - 1) << 52) + sig);
}

/** roundPack64 for any nonzero sig < 2^63 (normalizes it first). */
function normRoundPack64(sign: u64, exp: i32, sig: u64, rm: u32): u64 {
  const sh = <i32>clz<u64>(sig) - 1;
  return roundPack64(sign, exp - sh, sig << <u64>sh, rm);
}

/**
 * Round and pack a binary32 result. value = sig * 2^(exp - 189), sig < 2^63 with its
 * leading one at bit 62 whenever exp >= 1 (bits 38..0 are the round and sticky bits).
 */
function roundPack32(sign: u32, exp: i32, sig: u64, rm: u32): u32 {
  let inc: u64 = 0x4000000000;
  if (rm != RNE && rm != RMM) {
    inc = rm == RTZ || (rm == RDN) == (sign == 0) ? 0 : 0x7fffffffff;
  }
  if (<u32>(exp - 1) >= 0xfd) {
    if (exp <= 0) {
      const tiny = exp < 0 || sig + inc < BIT63;
      sig = shrJam(sig, 1 - exp);
      exp = 1;
      if (tiny && (sig & 0x7fffffffff) != 0) fpFlags |= UF;
    } else if (exp > 0xfe || sig + inc >= BIT63) {
      fpFlags |= OF | NX;
      return sign | (inc == 0 ? F32_MAX : F32_INF);
    }
  }
  const rb = sig & 0x7fffffffff;
  if (rb != 0) fpFlags |= NX;
  let s = <u32>((sig + inc) >> 39);
  if (rb == 0x4000000000 && rm == RNE) s &= ~1;
  return sign | ((<u32>(exp - 1) << 23) + s);
}

// ---------------------------------------------------------------------------------------
// Classification helpers

// @ts-ignore: decorator
@inline function isNaN32(a: u32): bool {
  return (a & 0x7fffffff) > F32_INF;
}
// @ts-ignore: decorator
@inline function isSNaN32(a: u32): bool {
  return (a & 0x7fc00000) == 0x7f800000 && (a & 0x003fffff) != 0;
}
// @ts-ignore: decorator
@inline function isInf32(a: u32): bool {
  return (a & 0x7fffffff) == F32_INF;
}
// @ts-ignore: decorator
@inline function isZero32(a: u32): bool {
  return (a & 0x7fffffff) == 0;
}
// @ts-ignore: decorator
@inline function isNaN64(a: u64): bool {
  return (a & ~F64_SIGN) > F64_INF;
}
// @ts-ignore: decorator
@inline function isSNaN64(a: u64): bool {
  return (a & 0x7ff8000000000000) == F64_INF && (a & 0x0007ffffffffffff) != 0;
}
// @ts-ignore: decorator
@inline function isInf64(a: u64): bool {
  return (a & ~F64_SIGN) == F64_INF;
}
// @ts-ignore: decorator
@inline function isZero64(a: u64): bool {
  return (a & ~F64_SIGN) == 0;
}

/** A two-operand operation produced NaN: NV for sNaN inputs or an invalid operation; canonical NaN. */
function nanResult32(a: u32, b: u32): u32 {
  if (isNaN32(a) || isNaN32(b)) {
    if (isSNaN32(a) || isSNaN32(b)) fpFlags |= NV;
  } else {
    fpFlags |= NV;
  }
  return F32_NAN;
}

/** As nanResult32, for binary64. */
function nanResult64(a: u64, b: u64): u64 {
  if (isNaN64(a) || isNaN64(b)) {
    if (isSNaN64(a) || isSNaN64(b)) fpFlags |= NV;
  } else {
    fpFlags |= NV;
  }
  return F64_NAN;
}

/**
 * Round-to-odd correction of s = RN(exact) at 53 bits, given err = exact - s != 0:
 * the neighbour with an odd last bit between exact and s. A binary32 rounding of the
 * result in any mode then equals the binary32 rounding of exact.
 */
// @ts-ignore: decorator
@inline function roundToOdd(s: f64, err: f64): f64 {
  let sb = reinterpret<u64>(s);
  if ((sb & 1) == 0) sb = (err > 0) == (s > 0) ? sb + 1 : sb - 1;
  return reinterpret<f64>(sb);
}

// ---------------------------------------------------------------------------------------
// binary64 -> binary32 rounding (also the last step of every binary32 operation)

/** Round a binary64 value (exact, or rounded to odd) to binary32 in mode rm. */
// @ts-ignore: decorator
@inline function roundToF32(x: f64, rm: u32): u32 {
  if (rm == RNE) {
    const r = <f32>x;
    const rb = reinterpret<u32>(r);
    // min normal < |r| <= max finite: no overflow, and x cannot be tiny
    if ((rb & 0x7fffffff) - 0x00800001 < 0x7effffff) {
      if (<f64>r != x) fpFlags |= NX;
      return rb;
    }
  }
  return f64ToF32Slow(reinterpret<u64>(x), rm);
}

function f64ToF32Slow(a: u64, rm: u32): u32 {
  const sign = <u32>(a >> 32) & F32_SIGN;
  const e = <i32>(a >> 52) & 0x7ff;
  const m = a & F64_MANT;
  if (e == 0x7ff) {
    if (m == 0) return sign | F32_INF;
    if (isSNaN64(a)) fpFlags |= NV;
    return F32_NAN;
  }
  if (e == 0) {
    if (m == 0) return sign;
    return roundPack32(sign, 1 - 896, m << 10, rm); // far below binary32's range: tiny
  }
  return roundPack32(sign, e - 896, (m | F64_HIDDEN) << 10, rm);
}

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
      if (<f64>r * y != x) fpFlags |= NX; // r*y is exact in binary64
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
    fpFlags |= DZ;
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
    fpFlags |= NV;
    return F32_NAN;
  }
  const x = <f64>reinterpret<f32>(a);
  const r = <f32>sqrt<f64>(x); // correct RNE result (53 >= 2*24+2); never a tie
  let rb = reinterpret<u32>(r);
  const rr = <f64>r * <f64>r; // exact
  if (rr != x) {
    fpFlags |= NX;
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
    if (isSNaN32(a) || isSNaN32(b) || isSNaN32(c) || infZero) fpFlags |= NV;
    return F32_NAN;
  }
  if (infZero) {
    fpFlags |= NV;
    return F32_NAN;
  }
  if (isInf32(a) || isInf32(b)) {
    const sp = (a ^ b) & F32_SIGN;
    if (isInf32(c) && (c & F32_SIGN) != sp) {
      fpFlags |= NV;
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
  if (isSNaN32(a) || isSNaN32(b)) fpFlags |= NV;
  if (isNaN32(a)) return isNaN32(b) ? F32_NAN : b;
  return a;
}

/** FEQ.S (F §11.8): quiet equality, 1 or 0; NV only for signalling NaN operands. */
export function f32_eq(a: u32, b: u32): u32 {
  if (reinterpret<f32>(a) == reinterpret<f32>(b)) return 1;
  if (isSNaN32(a) || isSNaN32(b)) fpFlags |= NV;
  return 0;
}

/** FLT.S (F §11.8): signalling less-than, 1 or 0; NV for any NaN operand. */
export function f32_lt(a: u32, b: u32): u32 {
  if (reinterpret<f32>(a) < reinterpret<f32>(b)) return 1;
  if (isNaN32(a) || isNaN32(b)) fpFlags |= NV;
  return 0;
}

/** FLE.S (F §11.8): signalling less-or-equal, 1 or 0; NV for any NaN operand. */
export function f32_le(a: u32, b: u32): u32 {
  if (reinterpret<f32>(a) <= reinterpret<f32>(b)) return 1;
  if (isNaN32(a) || isNaN32(b)) fpFlags |= NV;
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

// ---------------------------------------------------------------------------------------
// Float -> integer conversions (F §11.7, D §12.5: out of range and NaN saturate with NV)

/** x rounded to an integral value in mode rm (exact wasm operations). */
// @ts-ignore: decorator
@inline function roundIntegral(x: f64, rm: u32): f64 {
  if (rm == RNE) return nearest<f64>(x);
  if (rm == RTZ) return trunc<f64>(x);
  if (rm == RDN) return floor<f64>(x);
  if (rm == RUP) return ceil<f64>(x);
  const t = trunc<f64>(x); // RMM: x - t is exact
  return abs<f64>(x - t) >= 0.5 ? t + copysign<f64>(1.0, x) : t;
}

function cvtI32(x: f64, rm: u32): i64 {
  const r = roundIntegral(x, rm);
  if (r >= -2147483648.0 && r <= 2147483647.0) {
    if (r != x) fpFlags |= NX;
    return <i64><i32>r;
  }
  fpFlags |= NV;
  return x < 0 ? -2147483648 : 2147483647;
}

function cvtU32(x: f64, rm: u32): i64 {
  const r = roundIntegral(x, rm);
  if (r >= 0 && r <= 4294967295.0) {
    if (r != x) fpFlags |= NX;
    return <i64><i32><u32>r;
  }
  fpFlags |= NV;
  return x < 0 ? 0 : -1;
}

function cvtI64(x: f64, rm: u32): i64 {
  const r = roundIntegral(x, rm);
  if (r >= -9223372036854775808.0 && r < 9223372036854775808.0) {
    if (r != x) fpFlags |= NX;
    return <i64>r;
  }
  fpFlags |= NV;
  return x < 0 ? i64.MIN_VALUE : i64.MAX_VALUE;
}

function cvtU64(x: f64, rm: u32): i64 {
  const r = roundIntegral(x, rm);
  if (r >= 0 && r < 18446744073709551616.0) {
    if (r != x) fpFlags |= NX;
    return <i64><u64>r;
  }
  fpFlags |= NV;
  return x < 0 ? 0 : -1;
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

// ---------------------------------------------------------------------------------------
// Integer -> float conversions (F §11.7, D §12.5)

/** u64 magnitude m != 0 to binary32: m = sig * 2^(1 - clz) with sig's leading one at bit 62. */
function packU64ToF32(sign: u32, m: u64, rm: u32): u32 {
  const sh = <i32>clz<u64>(m);
  const s = m << <u64>sh;
  return roundPack32(sign, 190 - sh, (s >> 1) | (s & 1), rm);
}

function packU64ToF64(sign: u64, m: u64, rm: u32): u64 {
  const sh = <i32>clz<u64>(m);
  const s = m << <u64>sh;
  return roundPack64(sign, 1086 - sh, (s >> 1) | (s & 1), rm);
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
    if (clz<u64>(m) + ctz<u64>(m) < 40) fpFlags |= NX; // more than 24 significant bits
    return reinterpret<u32>(<f32>v);
  }
  return packU64ToF32(v < 0 ? F32_SIGN : 0, m, rm);
}

/** FCVT.S.LU (F §11.7): uint64 to binary32 per rm. */
export function u64_to_f32(v: u64, rm: u32): u32 {
  if (v < F64_HIDDEN << 1) return roundToF32(<f64>v, rm);
  if (rm == RNE) {
    if (clz<u64>(v) + ctz<u64>(v) < 40) fpFlags |= NX;
    return reinterpret<u32>(<f32>v);
  }
  return packU64ToF32(0, v, rm);
}

// ---------------------------------------------------------------------------------------
// binary32 <-> binary64 (D §12.5)

/** FCVT.D.S (D §12.5): exact widening; NaN becomes the canonical NaN (NV if signalling). */
export function f32_to_f64(a: u32): u64 {
  if (isNaN32(a)) {
    if (isSNaN32(a)) fpFlags |= NV;
    return F64_NAN;
  }
  return reinterpret<u64>(<f64>reinterpret<f32>(a));
}

/** FCVT.S.D (D §12.5): binary64 to binary32 rounded per rm. */
export function f64_to_f32(a: u64, rm: u32): u32 {
  return roundToF32(reinterpret<f64>(a), rm);
}

// ---------------------------------------------------------------------------------------
// binary64 arithmetic (D §12.4)

/** FADD.D (D §12.4): a + b rounded per rm. */
export function f64_add(a: u64, b: u64, rm: u32): u64 {
  const x = reinterpret<f64>(a), y = reinterpret<f64>(b);
  const s = x + y;
  let sb = reinterpret<u64>(s);
  // |s| < 2^1023: finite, and Fast2Sum's intermediate steps cannot overflow
  if ((sb & 0x7fe0000000000000) != 0x7fe0000000000000) {
    const big = abs<f64>(x) >= abs<f64>(y);
    const err = select<f64>(y, x, big) - (s - select<f64>(x, y, big)); // Fast2Sum: exactly x + y - s
    if (err == 0) {
      // a sum in the subnormal range is always exact, so no underflow here
      if (s == 0) return rm == RDN ? (a | b) & F64_SIGN : (a & b) & F64_SIGN;
      return sb;
    }
    fpFlags |= NX;
    if (rm == RNE) return sb;
    // exact = s + err, |err| <= ulp/2, err != 0: the result is s or a neighbour
    const neg = (sb >> 63) != 0;
    const up = (err > 0) != neg; // the exact magnitude is above |s|
    if (rm == RMM) {
      if (up && abs<f64>(reinterpret<f64>(sb + 1) - s) == 2 * abs<f64>(err)) sb++; // a tie: away
    } else if (rm == RTZ || (rm == RDN) != neg) {
      if (!up) sb--;
    } else {
      if (up) sb++;
    }
    return sb;
  }
  return f64AddSlow(a, b, rm);
}

function f64AddSlow(a: u64, b: u64, rm: u32): u64 {
  let ea = <i32>(a >> 52) & 0x7ff, eb = <i32>(b >> 52) & 0x7ff;
  if (ea == 0x7ff || eb == 0x7ff) {
    if (isNaN64(a) || isNaN64(b)) return nanResult64(a, b);
    if (ea == 0x7ff && eb == 0x7ff && ((a ^ b) & F64_SIGN) != 0) return nanResult64(a, b);
    return ea == 0x7ff ? a : b;
  }
  let ma = a & F64_MANT, mb = b & F64_MANT;
  if (ea == 0) ea = 1;
  else ma |= F64_HIDDEN;
  if (eb == 0) eb = 1;
  else mb |= F64_HIDDEN;
  ma <<= 10;
  mb <<= 10;
  const sa = a & F64_SIGN, sb = b & F64_SIGN;
  if (sa == sb) {
    if (ea < eb) {
      const t = ma;
      ma = mb;
      mb = t;
      const u = ea;
      ea = eb;
      eb = u;
    }
    let sum = ma + shrJam(mb, ea - eb);
    if (sum == 0) return sa;
    if (sum >= BIT63) {
      sum = (sum >> 1) | (sum & 1);
      ea++;
    }
    return normRoundPack64(sa, ea, sum, rm);
  }
  let sign = sa;
  if (ea < eb || (ea == eb && ma < mb)) {
    const t = ma;
    ma = mb;
    mb = t;
    const u = ea;
    ea = eb;
    eb = u;
    sign = sb;
  }
  const diff = ma - shrJam(mb, ea - eb);
  if (diff == 0) return rm == RDN ? F64_SIGN : 0;
  return normRoundPack64(sign, ea, diff, rm);
}

/** FSUB.D (D §12.4): a - b rounded per rm. */
export function f64_sub(a: u64, b: u64, rm: u32): u64 {
  return f64_add(a, b ^ F64_SIGN, rm);
}

/** True when the product of a and b (nonzero) has at most 53 significant bits. */
// @ts-ignore: decorator
@inline function mulIsExact(a: u64, b: u64): bool {
  const ma = oddPart((a & F64_MANT) | ((a & F64_EXP) != 0 ? F64_HIDDEN : 0));
  const mb = oddPart((b & F64_MANT) | ((b & F64_EXP) != 0 ? F64_HIDDEN : 0));
  const bits = 128 - <i32>clz<u64>(ma) - <i32>clz<u64>(mb); // bit lengths added
  if (bits <= 53) return true;
  if (bits > 54) return false;
  return ma * mb < F64_HIDDEN << 1;
}

/** FMUL.D (D §12.4): a * b rounded per rm. */
export function f64_mul(a: u64, b: u64, rm: u32): u64 {
  const p = reinterpret<f64>(a) * reinterpret<f64>(b);
  const pb = reinterpret<u64>(p);
  // exponent field 2..0x7fe: finite, and far enough from the subnormal range to not be tiny
  if (((pb >> 52) & 0x7ff) - 2 < 0x7fd) {
    if (mulIsExact(a, b)) return pb;
    if (rm == RNE) {
      fpFlags |= NX;
      return pb;
    }
  }
  return f64MulSlow(a, b, rm);
}

function f64MulSlow(a: u64, b: u64, rm: u32): u64 {
  const sign = (a ^ b) & F64_SIGN;
  let ea = <i32>(a >> 52) & 0x7ff, eb = <i32>(b >> 52) & 0x7ff;
  let ma = a & F64_MANT, mb = b & F64_MANT;
  if (ea == 0x7ff || eb == 0x7ff) {
    if (isNaN64(a) || isNaN64(b)) return nanResult64(a, b);
    if (isZero64(a) || isZero64(b)) return nanResult64(a, b); // inf * 0
    return sign | F64_INF;
  }
  if (isZero64(a) || isZero64(b)) return sign;
  if (ea == 0) {
    const sh = <i32>clz<u64>(ma) - 11;
    ma <<= <u64>sh;
    ea = 1 - sh;
  } else ma |= F64_HIDDEN;
  if (eb == 0) {
    const sh = <i32>clz<u64>(mb) - 11;
    mb <<= <u64>sh;
    eb = 1 - sh;
  } else mb |= F64_HIDDEN;
  let hi = mul128(ma << 10, mb << 11);
  let lo = lo64;
  // the product is in [2^125, 2^127): bring its leading one to bit 126 of hi:lo
  const n = <u64>(hi < BIT62);
  hi = (hi << n) | ((lo >> 63) & n);
  lo <<= n;
  return roundPack64(sign, ea + eb - 1022 - <i32>n, hi | <u64>(lo != 0), rm);
}

/** FDIV.D (D §12.4): a / b rounded per rm; DZ for finite nonzero / 0. */
export function f64_div(a: u64, b: u64, rm: u32): u64 {
  const q = reinterpret<f64>(a) / reinterpret<f64>(b);
  const qb = reinterpret<u64>(q);
  if (((qb >> 52) & 0x7ff) - 2 < 0x7fd) {
    // exact iff odd(q) * odd(b) == odd(a) (q normal, a and b nonzero finite)
    const oq = oddPart((qb & F64_MANT) | F64_HIDDEN);
    const ob = oddPart((b & F64_MANT) | ((b & F64_EXP) != 0 ? F64_HIDDEN : 0));
    const oa = oddPart((a & F64_MANT) | ((a & F64_EXP) != 0 ? F64_HIDDEN : 0));
    if (128 - <i32>clz<u64>(oq) - <i32>clz<u64>(ob) <= 54 && oq * ob == oa) return qb;
    if (rm == RNE) {
      fpFlags |= NX;
      return qb;
    }
  }
  return f64DivSlow(a, b, rm);
}

function f64DivSlow(a: u64, b: u64, rm: u32): u64 {
  const sign = (a ^ b) & F64_SIGN;
  let ea = <i32>(a >> 52) & 0x7ff, eb = <i32>(b >> 52) & 0x7ff;
  let ma = a & F64_MANT, mb = b & F64_MANT;
  if (ea == 0x7ff || eb == 0x7ff) {
    if (isNaN64(a) || isNaN64(b)) return nanResult64(a, b);
    if (ea == 0x7ff) {
      if (eb == 0x7ff) return nanResult64(a, b); // inf / inf
      return sign | F64_INF;
    }
    return sign; // finite / inf
  }
  if (isZero64(b)) {
    if (isZero64(a)) return nanResult64(a, b); // 0 / 0
    fpFlags |= DZ;
    return sign | F64_INF;
  }
  if (isZero64(a)) return sign;
  if (ea == 0) {
    const sh = <i32>clz<u64>(ma) - 11;
    ma <<= <u64>sh;
    ea = 1 - sh;
  } else ma |= F64_HIDDEN;
  if (eb == 0) {
    const sh = <i32>clz<u64>(mb) - 11;
    mb <<= <u64>sh;
    eb = 1 - sh;
  } else mb |= F64_HIDDEN;
  let exp = ea - eb + 1023;
  if (ma < mb) {
    ma <<= 1;
    exp--;
  }
  // long division, 11 quotient bits per native step: q = floor(ma / mb * 2^62)
  let r = ma - mb;
  let q: u64 = 1;
  for (let i = 0; i < 5; i++) {
    r <<= 11;
    q = (q << 11) | (r / mb);
    r %= mb;
  }
  r <<= 7;
  q = (q << 7) | (r / mb);
  r %= mb;
  return roundPack64(sign, exp, q | <u64>(r != 0), rm);
}

/** FSQRT.D (D §12.4): square root rounded per rm; NV for negative operands. */
export function f64_sqrt(a: u64, rm: u32): u64 {
  if (a - 1 < F64_MAX) {
    // positive, finite, nonzero: the result is normal and never a tie
    const s = sqrt<f64>(reinterpret<f64>(a));
    let sb = reinterpret<u64>(s);
    const ms = (sb & F64_MANT) | F64_HIDDEN;
    let ea = <i32>(a >> 52) & 0x7ff;
    let ma = a & F64_MANT;
    if (ea == 0) {
      const sh = <i32>clz<u64>(ma) - 11;
      ma <<= <u64>sh;
      ea = 1 - sh;
    } else ma |= F64_HIDDEN;
    if (rm == RNE) {
      // exact iff odd(s)^2 == odd(a)
      const os = oddPart(ms);
      if (clz<u64>(os) < 37 || os * os != oddPart(ma)) fpFlags |= NX;
      return sb;
    }
    // compare s*s with a exactly: ms^2 against ma * 2^k
    const hi = mul128(ms, ms), lo = lo64;
    const k = <u64>(ea + 1075 - 2 * <i32>((sb >> 52) & 0x7ff));
    const xh = ma >> (64 - k), xl = ma << k;
    if (hi != xh || lo != xl) {
      fpFlags |= NX;
      const above = hi > xh || (hi == xh && lo > xl);
      if (rm == RTZ || rm == RDN) {
        if (above) sb--;
      } else if (rm == RUP) {
        if (!above) sb++;
      }
    }
    return sb;
  }
  if (isZero64(a) || a == F64_INF) return a;
  if (isNaN64(a) && !isSNaN64(a)) return F64_NAN;
  fpFlags |= NV;
  return F64_NAN;
}

/** Special operands of a fused multiply-add (binary64): NaN or infinity somewhere. */
function fmaSpecial64(a: u64, b: u64, c: u64): u64 {
  const infZero = (isInf64(a) && isZero64(b)) || (isZero64(a) && isInf64(b));
  if (isNaN64(a) || isNaN64(b) || isNaN64(c)) {
    if (isSNaN64(a) || isSNaN64(b) || isSNaN64(c) || infZero) fpFlags |= NV;
    return F64_NAN;
  }
  if (infZero) {
    fpFlags |= NV;
    return F64_NAN;
  }
  if (isInf64(a) || isInf64(b)) {
    const sp = (a ^ b) & F64_SIGN;
    if (isInf64(c) && (c & F64_SIGN) != sp) {
      fpFlags |= NV;
      return F64_NAN;
    }
    return sp | F64_INF;
  }
  return c;
}

/** FMADD.D (D §12.4): a * b + c with a single rounding per rm. */
export function f64_fma(a: u64, b: u64, c: u64, rm: u32): u64 {
  let ea = <i32>(a >> 52) & 0x7ff, eb = <i32>(b >> 52) & 0x7ff, ec = <i32>(c >> 52) & 0x7ff;
  // RNE fast path: a and b normal, c finite, the product's error term normal or zero and the
  // product far from overflow (ea + eb in 1128..3068)
  if (rm == RNE && <u32>(ea + eb - 1128) <= 1940 && <u32>(ea - 1) < 0x7fe && <u32>(eb - 1) < 0x7fe && ec != 0x7ff) {
    const r = fmaNear(a, b, c, ea + eb);
    if (r != 0) return r;
  }
  if (ea == 0x7ff || eb == 0x7ff || ec == 0x7ff) return fmaSpecial64(a, b, c);
  const sp = (a ^ b) & F64_SIGN, sc = c & F64_SIGN;
  if (isZero64(a) || isZero64(b)) {
    // exact zero product: c itself, or a signed zero
    if (!isZero64(c)) return c;
    if (sp == sc) return sc;
    return rm == RDN ? F64_SIGN : 0;
  }
  if (isZero64(c)) return f64_mul(a, b, rm);
  let ma = a & F64_MANT, mb = b & F64_MANT, mc = c & F64_MANT;
  if (ea == 0) {
    const sh = <i32>clz<u64>(ma) - 11;
    ma <<= <u64>sh;
    ea = 1 - sh;
  } else ma |= F64_HIDDEN;
  if (eb == 0) {
    const sh = <i32>clz<u64>(mb) - 11;
    mb <<= <u64>sh;
    eb = 1 - sh;
  } else mb |= F64_HIDDEN;
  if (ec == 0) {
    const sh = <i32>clz<u64>(mc) - 11;
    mc <<= <u64>sh;
    ec = 1 - sh;
  } else mc |= F64_HIDDEN;
  // product as 128 bits with its leading one at bit 126: value = P * 2^(ep - 1149)
  let ph = mul128(ma << 10, mb << 11);
  let pl = lo64;
  const n = <u64>(ph < BIT62);
  ph = (ph << n) | ((pl >> 63) & n);
  pl <<= n;
  const ep = ea + eb - 1022 - <i32>n;
  // addend on the same scale: C = mc << 74, value = C * 2^(ec - 1149)
  let ch = mc << 10, cl: u64 = 0;
  const d = ep - ec;
  let sign = sp;
  let exp: i32;
  let rh: u64, rl: u64;
  if (sp == sc) {
    if (d >= 0) {
      ch = shr128Jam(ch, cl, d);
      cl = lo64;
      exp = ep;
    } else {
      ph = shr128Jam(ph, pl, -d);
      pl = lo64;
      exp = ec;
    }
    rl = pl + cl;
    rh = ph + ch + <u64>(rl < pl);
    if (rh >= BIT63) {
      rl = (rl >> 1) | (rh << 63) | (rl & 1);
      rh >>= 1;
      exp++;
    }
  } else {
    if (d > 0 || (d == 0 && (ph > ch || (ph == ch && pl >= cl)))) {
      ch = shr128Jam(ch, cl, d);
      cl = lo64;
      rl = pl - cl;
      rh = ph - ch - <u64>(pl < cl);
      exp = ep;
    } else {
      ph = shr128Jam(ph, pl, -d);
      pl = lo64;
      rl = cl - pl;
      rh = ch - ph - <u64>(cl < pl);
      exp = ec;
      sign = sc;
    }
    if (rh == 0) {
      // cancellation of 64 bits or more: only possible without any bits shifted out (exact)
      if (rl == 0) return rm == RDN ? F64_SIGN : 0;
      const s = <i32>clz<u64>(rl) + 63; // move the leading one to bit 126
      if (s >= 64) {
        rh = rl << <u64>(s - 64);
        rl = 0;
      } else {
        rh = rl >> 1;
        rl <<= 63;
      }
      exp -= s;
    } else {
      const s = <i32>clz<u64>(rh) - 1;
      if (s > 0) {
        rh = (rh << <u64>s) | (rl >> <u64>(64 - s));
        rl <<= <u64>s;
        exp -= s;
      }
    }
  }
  return roundPack64(sign, exp, rh | <u64>(rl != 0), rm);
}

/**
 * a * b + c in RNE with binary64 operations (Boldo & Melquiond, "Emulation of FMA and
 * correctly rounded sums: proved algorithms using rounding to odd", IEEE TC 2008):
 * p + e = a * b exactly, (th, tl) = TwoSum(p, c), u = RO(tl + e), result RN(th + u).
 * The error e comes from the low 64 bits of the integer product of the significands.
 * Returns 0 when the result is zero, tiny or near overflow (the caller then takes the
 * exact integer path).
 */
function fmaNear(a: u64, b: u64, c: u64, eab: i32): u64 {
  const x = reinterpret<f64>(a), y = reinterpret<f64>(b), z = reinterpret<f64>(c);
  const p = x * y;
  // low bits of the exact product below p's last place: k = 52, or 53/54 if p's exponent grew
  const low = ((a & F64_MANT) | F64_HIDDEN) * ((b & F64_MANT) | F64_HIDDEN); // mod 2^64
  const k = <u64>(52 + <i32>((reinterpret<u64>(p) >> 52) & 0x7ff) - (eab - 1023));
  const one = <u64>1 << k;
  const r = low & (one - 1), half = one >> 1;
  // p rounded the significand product up iff r > half, or r == half and the kept part is odd
  let ei = <i64>r;
  if (r > half || (r == half && ((low >> k) & 1) != 0)) ei -= <i64>one;
  // e = a*b - p, exact: |ei| <= 2^53 and its scale 2^(eab - 2150) >= 2^-1022
  let e = <f64>ei * reinterpret<f64>(<u64>(eab - 2150 + 1023) << 52);
  if (p < 0) e = -e;
  const th = p + z;
  if ((reinterpret<u64>(th) & 0x7fe0000000000000) == 0x7fe0000000000000) return 0; // |th| >= 2^1023
  const bv = th - p;
  const tl = (p - (th - bv)) + (z - bv);
  let u = tl + e;
  const bu = u - tl;
  const err2 = (tl - (u - bu)) + (e - bu);
  if (err2 != 0) u = roundToOdd(u, err2);
  const res = th + u;
  const rb = reinterpret<u64>(res);
  if (((rb >> 52) & 0x7ff) - 2 >= 0x7fc) return 0; // zero, tiny, or |res| >= 2^1023
  const bw = res - th;
  const f = (th - (res - bw)) + (u - bw);
  if (err2 != 0 || f != 0) fpFlags |= NX;
  return rb;
}

/** FMIN.D (D §12.4): IEEE 754-2019 minimumNumber; -0 < +0; NV for sNaN; canonical NaN if both NaN. */
export function f64_min(a: u64, b: u64): u64 {
  const x = reinterpret<f64>(a), y = reinterpret<f64>(b);
  if (x < y) return a;
  if (y < x) return b;
  if (x == y) return a | b;
  return minMaxNaN64(a, b);
}

/** FMAX.D (D §12.4): IEEE 754-2019 maximumNumber; -0 < +0; NV for sNaN; canonical NaN if both NaN. */
export function f64_max(a: u64, b: u64): u64 {
  const x = reinterpret<f64>(a), y = reinterpret<f64>(b);
  if (x > y) return a;
  if (y > x) return b;
  if (x == y) return a & b;
  return minMaxNaN64(a, b);
}

function minMaxNaN64(a: u64, b: u64): u64 {
  if (isSNaN64(a) || isSNaN64(b)) fpFlags |= NV;
  if (isNaN64(a)) return isNaN64(b) ? F64_NAN : b;
  return a;
}

/** FEQ.D (D §12.6): quiet equality, 1 or 0; NV only for signalling NaN operands. */
export function f64_eq(a: u64, b: u64): u32 {
  if (reinterpret<f64>(a) == reinterpret<f64>(b)) return 1;
  if (isSNaN64(a) || isSNaN64(b)) fpFlags |= NV;
  return 0;
}

/** FLT.D (D §12.6): signalling less-than, 1 or 0; NV for any NaN operand. */
export function f64_lt(a: u64, b: u64): u32 {
  if (reinterpret<f64>(a) < reinterpret<f64>(b)) return 1;
  if (isNaN64(a) || isNaN64(b)) fpFlags |= NV;
  return 0;
}

/** FLE.D (D §12.6): signalling less-or-equal, 1 or 0; NV for any NaN operand. */
export function f64_le(a: u64, b: u64): u32 {
  if (reinterpret<f64>(a) <= reinterpret<f64>(b)) return 1;
  if (isNaN64(a) || isNaN64(b)) fpFlags |= NV;
  return 0;
}

/** FCLASS.D (D §12.7): the 10-bit class mask, as FCLASS.S. */
export function f64_classify(a: u64): u32 {
  const neg = (a >> 63) != 0;
  const e = (a >> 52) & 0x7ff, m = a & F64_MANT;
  if (e == 0x7ff) {
    if (m == 0) return neg ? 1 : 1 << 7;
    return (m & 0x0008000000000000) != 0 ? 1 << 9 : 1 << 8;
  }
  if (e == 0) {
    if (m == 0) return neg ? 1 << 3 : 1 << 4;
    return neg ? 1 << 2 : 1 << 5;
  }
  return neg ? 1 << 1 : 1 << 6;
}

/** FCVT.W.D (D §12.5): to int32 per rm, sign-extended to 64 bits; saturates with NV. */
export function f64_to_i32(a: u64, rm: u32): i64 {
  return cvtI32(reinterpret<f64>(a), rm);
}

/** FCVT.WU.D (D §12.5): to uint32 per rm, the 32-bit result sign-extended; saturates with NV. */
export function f64_to_u32(a: u64, rm: u32): i64 {
  return cvtU32(reinterpret<f64>(a), rm);
}

/** FCVT.L.D (D §12.5): to int64 per rm; saturates with NV. */
export function f64_to_i64(a: u64, rm: u32): i64 {
  return cvtI64(reinterpret<f64>(a), rm);
}

/** FCVT.LU.D (D §12.5): to uint64 per rm; saturates with NV. */
export function f64_to_u64(a: u64, rm: u32): i64 {
  return cvtU64(reinterpret<f64>(a), rm);
}

/** FCVT.D.W (D §12.5): int32 to binary64, always exact. */
export function i32_to_f64(v: i32, rm: u32): u64 {
  return reinterpret<u64>(<f64>v);
}

/** FCVT.D.WU (D §12.5): uint32 to binary64, always exact. */
export function u32_to_f64(v: u32, rm: u32): u64 {
  return reinterpret<u64>(<f64>v);
}

/** FCVT.D.L (D §12.5): int64 to binary64 per rm. */
export function i64_to_f64(v: i64, rm: u32): u64 {
  const m = v < 0 ? <u64>-v : <u64>v;
  if (m < F64_HIDDEN << 1) return reinterpret<u64>(<f64>v);
  if (rm == RNE) {
    if (clz<u64>(m) + ctz<u64>(m) < 11) fpFlags |= NX; // more than 53 significant bits
    return reinterpret<u64>(<f64>v);
  }
  return packU64ToF64(v < 0 ? F64_SIGN : 0, m, rm);
}

/** FCVT.D.LU (D §12.5): uint64 to binary64 per rm. */
export function u64_to_f64(v: u64, rm: u32): u64 {
  if (v < F64_HIDDEN << 1) return reinterpret<u64>(<f64>v);
  if (rm == RNE) {
    if (clz<u64>(v) + ctz<u64>(v) < 11) fpFlags |= NX;
    return reinterpret<u64>(<f64>v);
  }
  return packU64ToF64(0, v, rm);
}
