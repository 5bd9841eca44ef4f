// RISC-V F and D extension arithmetic, the parts binary32 (fpu.ts) and binary64 (fp64.ts)
// share: flags, constants, 128-bit helpers, rounding and packing, classification, NaN
// results, float -> integer and integer -> float helpers. IEEE 754-2008 as the RISC-V
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

export const NX: u32 = 1;
export const UF: u32 = 2;
export const OF: u32 = 4;
export const DZ: u32 = 8;
export const NV: u32 = 16;

export const RNE: u32 = 0;
export const RTZ: u32 = 1;
export const RDN: u32 = 2;
export const RUP: u32 = 3;
export const RMM: u32 = 4;

export const F32_SIGN: u32 = 0x80000000;
export const F32_INF: u32 = 0x7f800000;
export const F32_NAN: u32 = 0x7fc00000;
export const F32_MAX: u32 = 0x7f7fffff;

export const F64_SIGN: u64 = 0x8000000000000000;
export const F64_EXP: u64 = 0x7ff0000000000000;
export const F64_INF: u64 = 0x7ff0000000000000;
export const F64_NAN: u64 = 0x7ff8000000000000;
export const F64_MAX: u64 = 0x7fefffffffffffff;
export const F64_MANT: u64 = 0x000fffffffffffff;
export const F64_HIDDEN: u64 = 0x0010000000000000;
export const BIT63: u64 = 0x8000000000000000;
export const BIT62: u64 = 0x4000000000000000;

// ---------------------------------------------------------------------------------------
// Integer helpers

/** Second result of mul128 and shr128Jam (low 64 bits). */
export let lo64: u64 = 0;

/** 64x64 -> 128-bit product; returns the high half, leaves the low half in lo64. */
// @ts-ignore: decorator
@inline export function mul128(a: u64, b: u64): u64 {
  const a0 = a & 0xffffffff, a1 = a >> 32, b0 = b & 0xffffffff, b1 = b >> 32;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
  lo64 = (mid << 32) | (p00 & 0xffffffff);
  return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

/** x >> n, with every bit shifted out ORed into bit 0 (the sticky bit). */
// @ts-ignore: decorator
@inline export function shrJam(x: u64, n: i32): u64 {
  if (n <= 0) return x;
  if (n < 64) return (x >> <u64>n) | <u64>((x << <u64>(64 - n)) != 0);
  return <u64>(x != 0);
}

/** 128-bit (hi:lo) >> n with sticky bit; returns the high half, low half in lo64. */
export function shr128Jam(hi: u64, lo: u64, n: i32): u64 {
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
@inline export function oddPart(x: u64): u64 {
  return x >> ctz<u64>(x);
}

// ---------------------------------------------------------------------------------------
// Rounding and packing

/**
 * Round and pack a binary64 result. value = sig * 2^(exp - 1085), sig < 2^63 with its
 * leading one at bit 62 whenever exp >= 1 (bits 9..0 are the round and sticky bits).
 */
export function roundPack64(sign: u64, exp: i32, sig: u64, rm: u32): u64 {
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
export function normRoundPack64(sign: u64, exp: i32, sig: u64, rm: u32): u64 {
  const sh = <i32>clz<u64>(sig) - 1;
  return roundPack64(sign, exp - sh, sig << <u64>sh, rm);
}

/**
 * Round and pack a binary32 result. value = sig * 2^(exp - 189), sig < 2^63 with its
 * leading one at bit 62 whenever exp >= 1 (bits 38..0 are the round and sticky bits).
 */
export function roundPack32(sign: u32, exp: i32, sig: u64, rm: u32): u32 {
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
@inline export function isNaN32(a: u32): bool {
  return (a & 0x7fffffff) > F32_INF;
}
// @ts-ignore: decorator
@inline export function isSNaN32(a: u32): bool {
  return (a & 0x7fc00000) == 0x7f800000 && (a & 0x003fffff) != 0;
}
// @ts-ignore: decorator
@inline export function isInf32(a: u32): bool {
  return (a & 0x7fffffff) == F32_INF;
}
// @ts-ignore: decorator
@inline export function isZero32(a: u32): bool {
  return (a & 0x7fffffff) == 0;
}
// @ts-ignore: decorator
@inline export function isNaN64(a: u64): bool {
  return (a & ~F64_SIGN) > F64_INF;
}
// @ts-ignore: decorator
@inline export function isSNaN64(a: u64): bool {
  return (a & 0x7ff8000000000000) == F64_INF && (a & 0x0007ffffffffffff) != 0;
}
// @ts-ignore: decorator
@inline export function isInf64(a: u64): bool {
  return (a & ~F64_SIGN) == F64_INF;
}
// @ts-ignore: decorator
@inline export function isZero64(a: u64): bool {
  return (a & ~F64_SIGN) == 0;
}

/** A two-operand operation produced NaN: NV for sNaN inputs or an invalid operation; canonical NaN. */
export function nanResult32(a: u32, b: u32): u32 {
  if (isNaN32(a) || isNaN32(b)) {
    if (isSNaN32(a) || isSNaN32(b)) fpFlags |= NV;
  } else {
    fpFlags |= NV;
  }
  return F32_NAN;
}

/** As nanResult32, for binary64. */
export function nanResult64(a: u64, b: u64): u64 {
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
@inline export function roundToOdd(s: f64, err: f64): f64 {
  let sb = reinterpret<u64>(s);
  if ((sb & 1) == 0) sb = (err > 0) == (s > 0) ? sb + 1 : sb - 1;
  return reinterpret<f64>(sb);
}

// ---------------------------------------------------------------------------------------
// binary64 -> binary32 rounding (also the last step of every binary32 operation)

/** Round a binary64 value (exact, or rounded to odd) to binary32 in mode rm. */
// @ts-ignore: decorator
@inline export function roundToF32(x: f64, rm: u32): u32 {
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

export function f64ToF32Slow(a: u64, rm: u32): u32 {
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
// Float -> integer conversions (F §11.7, D §12.5: out of range and NaN saturate with NV)

/** x rounded to an integral value in mode rm (exact wasm operations). */
// @ts-ignore: decorator
@inline export function roundIntegral(x: f64, rm: u32): f64 {
  if (rm == RNE) return nearest<f64>(x);
  if (rm == RTZ) return trunc<f64>(x);
  if (rm == RDN) return floor<f64>(x);
  if (rm == RUP) return ceil<f64>(x);
  const t = trunc<f64>(x); // RMM: x - t is exact
  return abs<f64>(x - t) >= 0.5 ? t + copysign<f64>(1.0, x) : t;
}

export function cvtI32(x: f64, rm: u32): i64 {
  const r = roundIntegral(x, rm);
  if (r >= -2147483648.0 && r <= 2147483647.0) {
    if (r != x) fpFlags |= NX;
    return <i64><i32>r;
  }
  fpFlags |= NV;
  return x < 0 ? -2147483648 : 2147483647;
}

export function cvtU32(x: f64, rm: u32): i64 {
  const r = roundIntegral(x, rm);
  if (r >= 0 && r <= 4294967295.0) {
    if (r != x) fpFlags |= NX;
    return <i64><i32><u32>r;
  }
  fpFlags |= NV;
  return x < 0 ? 0 : -1;
}

export function cvtI64(x: f64, rm: u32): i64 {
  const r = roundIntegral(x, rm);
  if (r >= -9223372036854775808.0 && r < 9223372036854775808.0) {
    if (r != x) fpFlags |= NX;
    return <i64>r;
  }
  fpFlags |= NV;
  return x < 0 ? i64.MIN_VALUE : i64.MAX_VALUE;
}

export function cvtU64(x: f64, rm: u32): i64 {
  const r = roundIntegral(x, rm);
  if (r >= 0 && r < 18446744073709551616.0) {
    if (r != x) fpFlags |= NX;
    return <i64><u64>r;
  }
  fpFlags |= NV;
  return x < 0 ? 0 : -1;
}

// ---------------------------------------------------------------------------------------
// Integer -> float conversions (F §11.7, D §12.5)

/** u64 magnitude m != 0 to binary32: m = sig * 2^(1 - clz) with sig's leading one at bit 62. */
export function packU64ToF32(sign: u32, m: u64, rm: u32): u32 {
  const sh = <i32>clz<u64>(m);
  const s = m << <u64>sh;
  return roundPack32(sign, 190 - sh, (s >> 1) | (s & 1), rm);
}

export function packU64ToF64(sign: u64, m: u64, rm: u32): u64 {
  const sh = <i32>clz<u64>(m);
  const s = m << <u64>sh;
  return roundPack64(sign, 1086 - sh, (s >> 1) | (s & 1), rm);
}
