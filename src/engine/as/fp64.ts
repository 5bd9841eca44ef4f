// RISC-V D extension arithmetic (binary64, D §12.4-12.5); the shared parts (flags,
// rounding, the speed strategy) are described in fp-common.ts.

import {
  BIT62, BIT63, DZ, F64_EXP, F64_HIDDEN, F64_INF, F64_MANT, F64_MAX, F64_NAN, F64_SIGN, NV, NX,
  RDN, RMM, RNE, RTZ, RUP, cvtI32, cvtI64, cvtU32, cvtU64, isInf64, isNaN64, isSNaN64, isZero64,
  mul128, nanResult64, normRoundPack64, oddPart, packU64ToF64, roundPack64, roundToOdd,
  shr128Jam, shrJam,
} from './fp-common';
import * as fc from './fp-common';

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
    fc.fpFlags |= NX;
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
      fc.fpFlags |= NX;
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
  let lo = fc.lo64;
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
      fc.fpFlags |= NX;
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
    fc.fpFlags |= DZ;
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
      if (clz<u64>(os) < 37 || os * os != oddPart(ma)) fc.fpFlags |= NX;
      return sb;
    }
    // compare s*s with a exactly: ms^2 against ma * 2^k
    const hi = mul128(ms, ms), lo = fc.lo64;
    const k = <u64>(ea + 1075 - 2 * <i32>((sb >> 52) & 0x7ff));
    const xh = ma >> (64 - k), xl = ma << k;
    if (hi != xh || lo != xl) {
      fc.fpFlags |= NX;
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
  fc.fpFlags |= NV;
  return F64_NAN;
}

/** Special operands of a fused multiply-add (binary64): NaN or infinity somewhere. */
function fmaSpecial64(a: u64, b: u64, c: u64): u64 {
  const infZero = (isInf64(a) && isZero64(b)) || (isZero64(a) && isInf64(b));
  if (isNaN64(a) || isNaN64(b) || isNaN64(c)) {
    if (isSNaN64(a) || isSNaN64(b) || isSNaN64(c) || infZero) fc.fpFlags |= NV;
    return F64_NAN;
  }
  if (infZero) {
    fc.fpFlags |= NV;
    return F64_NAN;
  }
  if (isInf64(a) || isInf64(b)) {
    const sp = (a ^ b) & F64_SIGN;
    if (isInf64(c) && (c & F64_SIGN) != sp) {
      fc.fpFlags |= NV;
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
  let pl = fc.lo64;
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
      cl = fc.lo64;
      exp = ep;
    } else {
      ph = shr128Jam(ph, pl, -d);
      pl = fc.lo64;
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
      cl = fc.lo64;
      rl = pl - cl;
      rh = ph - ch - <u64>(pl < cl);
      exp = ep;
    } else {
      ph = shr128Jam(ph, pl, -d);
      pl = fc.lo64;
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
  if (err2 != 0 || f != 0) fc.fpFlags |= NX;
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
  if (isSNaN64(a) || isSNaN64(b)) fc.fpFlags |= NV;
  if (isNaN64(a)) return isNaN64(b) ? F64_NAN : b;
  return a;
}

/** FEQ.D (D §12.6): quiet equality, 1 or 0; NV only for signalling NaN operands. */
export function f64_eq(a: u64, b: u64): u32 {
  if (reinterpret<f64>(a) == reinterpret<f64>(b)) return 1;
  if (isSNaN64(a) || isSNaN64(b)) fc.fpFlags |= NV;
  return 0;
}

/** FLT.D (D §12.6): signalling less-than, 1 or 0; NV for any NaN operand. */
export function f64_lt(a: u64, b: u64): u32 {
  if (reinterpret<f64>(a) < reinterpret<f64>(b)) return 1;
  if (isNaN64(a) || isNaN64(b)) fc.fpFlags |= NV;
  return 0;
}

/** FLE.D (D §12.6): signalling less-or-equal, 1 or 0; NV for any NaN operand. */
export function f64_le(a: u64, b: u64): u32 {
  if (reinterpret<f64>(a) <= reinterpret<f64>(b)) return 1;
  if (isNaN64(a) || isNaN64(b)) fc.fpFlags |= NV;
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
    if (clz<u64>(m) + ctz<u64>(m) < 11) fc.fpFlags |= NX; // more than 53 significant bits
    return reinterpret<u64>(<f64>v);
  }
  return packU64ToF64(v < 0 ? F64_SIGN : 0, m, rm);
}

/** FCVT.D.LU (D §12.5): uint64 to binary64 per rm. */
export function u64_to_f64(v: u64, rm: u32): u64 {
  if (v < F64_HIDDEN << 1) return reinterpret<u64>(<f64>v);
  if (rm == RNE) {
    if (clz<u64>(v) + ctz<u64>(v) < 11) fc.fpFlags |= NX;
    return reinterpret<u64>(<f64>v);
  }
  return packU64ToF64(0, v, rm);
}
