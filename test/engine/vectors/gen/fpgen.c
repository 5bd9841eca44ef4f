/*
 * Reference-vector generator for tsvisor's FPU (src/engine/as/fpu.ts).
 *
 * Build with Debian's riscv64 cross compiler and run under qemu-user:
 *   riscv64-linux-gnu-gcc -O1 -static -o build/fpgen test/engine/vectors/gen/fpgen.c
 *   qemu-riscv64 build/fpgen > build/fpu-vectors.bin && gzip -9n ...
 * (test/engine/vectors/gen/regen.sh does exactly this.)
 *
 * Every result is produced by executing the RV64 F/D instruction itself (inline
 * assembly, rounding mode set in frm, fflags cleared before and read after) on
 * qemu-riscv64, whose FPU is QEMU's softfloat: the vectors hold what that RISC-V
 * implementation computes, flags included.
 *
 * Output format (little endian):
 *   "FPV1"
 *   sections: u8 op, u8 nmodes (1, or 5 for RNE,RTZ,RDN,RUP,RMM), u32 count,
 *             then count records: inputs (arity x inW bytes),
 *             then nmodes x (result outW bytes, fflags u8)
 *   end: u8 0xff
 * Op numbering, arity and widths: see the OPS table below (mirrored in fpu.test.ts).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t u64;
typedef uint32_t u32;

/* ---------- the instructions ---------- */

static inline void setrm(u64 rm) { asm volatile("fsrm %0" ::"r"(rm)); asm volatile("fsflags zero"); }
static inline u32 getfl(void) { u64 f; asm volatile("frflags %0" : "=r"(f)); return (u32)f; }

#define OP2S(name, insn) static u64 name(u64 a, u64 b, u64 c) { u64 r; (void)c; \
  asm volatile("fmv.w.x ft0,%1\n fmv.w.x ft1,%2\n " insn " ft2,ft0,ft1\n fmv.x.w %0,ft2" \
               : "=r"(r) : "r"(a), "r"(b) : "ft0", "ft1", "ft2"); return r & 0xffffffffu; }
#define OP2D(name, insn) static u64 name(u64 a, u64 b, u64 c) { u64 r; (void)c; \
  asm volatile("fmv.d.x ft0,%1\n fmv.d.x ft1,%2\n " insn " ft2,ft0,ft1\n fmv.x.d %0,ft2" \
               : "=r"(r) : "r"(a), "r"(b) : "ft0", "ft1", "ft2"); return r; }
#define CMPS(name, insn) static u64 name(u64 a, u64 b, u64 c) { u64 r; (void)c; \
  asm volatile("fmv.w.x ft0,%1\n fmv.w.x ft1,%2\n " insn " %0,ft0,ft1" \
               : "=r"(r) : "r"(a), "r"(b) : "ft0", "ft1"); return r; }
#define CMPD(name, insn) static u64 name(u64 a, u64 b, u64 c) { u64 r; (void)c; \
  asm volatile("fmv.d.x ft0,%1\n fmv.d.x ft1,%2\n " insn " %0,ft0,ft1" \
               : "=r"(r) : "r"(a), "r"(b) : "ft0", "ft1"); return r; }
/* float -> x register */
#define F2XS(name, insn) static u64 name(u64 a, u64 b, u64 c) { u64 r; (void)b; (void)c; \
  asm volatile("fmv.w.x ft0,%1\n " insn " %0,ft0" : "=r"(r) : "r"(a) : "ft0"); return r; }
#define F2XD(name, insn) static u64 name(u64 a, u64 b, u64 c) { u64 r; (void)b; (void)c; \
  asm volatile("fmv.d.x ft0,%1\n " insn " %0,ft0" : "=r"(r) : "r"(a) : "ft0"); return r; }
/* x register -> float */
#define X2FS(name, insn) static u64 name(u64 a, u64 b, u64 c) { u64 r; (void)b; (void)c; \
  asm volatile(insn " ft0,%1\n fmv.x.w %0,ft0" : "=r"(r) : "r"(a) : "ft0"); return r & 0xffffffffu; }
#define X2FD(name, insn) static u64 name(u64 a, u64 b, u64 c) { u64 r; (void)b; (void)c; \
  asm volatile(insn " ft0,%1\n fmv.x.d %0,ft0" : "=r"(r) : "r"(a) : "ft0"); return r; }

OP2S(s_add, "fadd.s") OP2S(s_sub, "fsub.s") OP2S(s_mul, "fmul.s") OP2S(s_div, "fdiv.s")
OP2S(s_min, "fmin.s") OP2S(s_max, "fmax.s")
CMPS(s_eq, "feq.s") CMPS(s_lt, "flt.s") CMPS(s_le, "fle.s")
F2XS(s_class, "fclass.s")
F2XS(s_to_w, "fcvt.w.s") F2XS(s_to_wu, "fcvt.wu.s") F2XS(s_to_l, "fcvt.l.s") F2XS(s_to_lu, "fcvt.lu.s")
X2FS(w_to_s, "fcvt.s.w") X2FS(wu_to_s, "fcvt.s.wu") X2FS(l_to_s, "fcvt.s.l") X2FS(lu_to_s, "fcvt.s.lu")
OP2D(d_add, "fadd.d") OP2D(d_sub, "fsub.d") OP2D(d_mul, "fmul.d") OP2D(d_div, "fdiv.d")
OP2D(d_min, "fmin.d") OP2D(d_max, "fmax.d")
CMPD(d_eq, "feq.d") CMPD(d_lt, "flt.d") CMPD(d_le, "fle.d")
F2XD(d_class, "fclass.d")
F2XD(d_to_w, "fcvt.w.d") F2XD(d_to_wu, "fcvt.wu.d") F2XD(d_to_l, "fcvt.l.d") F2XD(d_to_lu, "fcvt.lu.d")
X2FD(w_to_d, "fcvt.d.w") X2FD(wu_to_d, "fcvt.d.wu") X2FD(l_to_d, "fcvt.d.l") X2FD(lu_to_d, "fcvt.d.lu")

static u64 s_sqrt(u64 a, u64 b, u64 c) { u64 r; (void)b; (void)c;
  asm volatile("fmv.w.x ft0,%1\n fsqrt.s ft1,ft0\n fmv.x.w %0,ft1" : "=r"(r) : "r"(a) : "ft0", "ft1");
  return r & 0xffffffffu; }
static u64 d_sqrt(u64 a, u64 b, u64 c) { u64 r; (void)b; (void)c;
  asm volatile("fmv.d.x ft0,%1\n fsqrt.d ft1,ft0\n fmv.x.d %0,ft1" : "=r"(r) : "r"(a) : "ft0", "ft1");
  return r; }
static u64 s_fma(u64 a, u64 b, u64 c) { u64 r;
  asm volatile("fmv.w.x ft0,%1\n fmv.w.x ft1,%2\n fmv.w.x ft2,%3\n fmadd.s ft3,ft0,ft1,ft2\n fmv.x.w %0,ft3"
               : "=r"(r) : "r"(a), "r"(b), "r"(c) : "ft0", "ft1", "ft2", "ft3");
  return r & 0xffffffffu; }
static u64 d_fma(u64 a, u64 b, u64 c) { u64 r;
  asm volatile("fmv.d.x ft0,%1\n fmv.d.x ft1,%2\n fmv.d.x ft2,%3\n fmadd.d ft3,ft0,ft1,ft2\n fmv.x.d %0,ft3"
               : "=r"(r) : "r"(a), "r"(b), "r"(c) : "ft0", "ft1", "ft2", "ft3");
  return r; }
static u64 s_to_d(u64 a, u64 b, u64 c) { u64 r; (void)b; (void)c;
  asm volatile("fmv.w.x ft0,%1\n fcvt.d.s ft1,ft0\n fmv.x.d %0,ft1" : "=r"(r) : "r"(a) : "ft0", "ft1");
  return r; }
static u64 d_to_s(u64 a, u64 b, u64 c) { u64 r; (void)b; (void)c;
  asm volatile("fmv.d.x ft0,%1\n fcvt.s.d ft1,ft0\n fmv.x.w %0,ft1" : "=r"(r) : "r"(a) : "ft0", "ft1");
  return r & 0xffffffffu; }

/* ---------- op table ---------- */

enum { F32, F64, I32, I64 };  /* input domains for the value generators */
typedef u64 (*opfn)(u64, u64, u64);
typedef struct { int id; const char *name; opfn fn; int arity, inW, outW, rm, dom, count; } op_t;

#define N2 7000  /* binary ops: 62*62 hand-picked pairs, then structured random ones */
#define N1 3000  /* unary ops */
static const op_t OPS[] = {
  {0, "f32_add", s_add, 2, 4, 4, 1, F32, N2}, {1, "f32_sub", s_sub, 2, 4, 4, 1, F32, N2},
  {2, "f32_mul", s_mul, 2, 4, 4, 1, F32, N2}, {3, "f32_div", s_div, 2, 4, 4, 1, F32, N2},
  {4, "f32_sqrt", s_sqrt, 1, 4, 4, 1, F32, N1}, {5, "f32_fma", s_fma, 3, 4, 4, 1, F32, N2},
  {6, "f32_min", s_min, 2, 4, 4, 0, F32, N2}, {7, "f32_max", s_max, 2, 4, 4, 0, F32, N2},
  {8, "f32_eq", s_eq, 2, 4, 1, 0, F32, N2}, {9, "f32_lt", s_lt, 2, 4, 1, 0, F32, N2},
  {10, "f32_le", s_le, 2, 4, 1, 0, F32, N2}, {11, "f32_classify", s_class, 1, 4, 2, 0, F32, N1},
  {12, "f32_to_i32", s_to_w, 1, 4, 8, 1, F32, N1}, {13, "f32_to_u32", s_to_wu, 1, 4, 8, 1, F32, N1},
  {14, "f32_to_i64", s_to_l, 1, 4, 8, 1, F32, N1}, {15, "f32_to_u64", s_to_lu, 1, 4, 8, 1, F32, N1},
  {16, "i32_to_f32", w_to_s, 1, 4, 4, 1, I32, N1}, {17, "u32_to_f32", wu_to_s, 1, 4, 4, 1, I32, N1},
  {18, "i64_to_f32", l_to_s, 1, 8, 4, 1, I64, N1}, {19, "u64_to_f32", lu_to_s, 1, 8, 4, 1, I64, N1},
  {20, "f32_to_f64", s_to_d, 1, 4, 8, 0, F32, N1}, {21, "f64_to_f32", d_to_s, 1, 8, 4, 1, F64, N1},
  {32, "f64_add", d_add, 2, 8, 8, 1, F64, N2}, {33, "f64_sub", d_sub, 2, 8, 8, 1, F64, N2},
  {34, "f64_mul", d_mul, 2, 8, 8, 1, F64, N2}, {35, "f64_div", d_div, 2, 8, 8, 1, F64, N2},
  {36, "f64_sqrt", d_sqrt, 1, 8, 8, 1, F64, N1}, {37, "f64_fma", d_fma, 3, 8, 8, 1, F64, N2},
  {38, "f64_min", d_min, 2, 8, 8, 0, F64, N2}, {39, "f64_max", d_max, 2, 8, 8, 0, F64, N2},
  {40, "f64_eq", d_eq, 2, 8, 1, 0, F64, N2}, {41, "f64_lt", d_lt, 2, 8, 1, 0, F64, N2},
  {42, "f64_le", d_le, 2, 8, 1, 0, F64, N2}, {43, "f64_classify", d_class, 1, 8, 2, 0, F64, N1},
  {44, "f64_to_i32", d_to_w, 1, 8, 8, 1, F64, N1}, {45, "f64_to_u32", d_to_wu, 1, 8, 8, 1, F64, N1},
  {46, "f64_to_i64", d_to_l, 1, 8, 8, 1, F64, N1}, {47, "f64_to_u64", d_to_lu, 1, 8, 8, 1, F64, N1},
  {48, "i32_to_f64", w_to_d, 1, 4, 8, 1, I32, N1}, {49, "u32_to_f64", wu_to_d, 1, 4, 8, 1, I32, N1},
  {50, "i64_to_f64", l_to_d, 1, 8, 8, 1, I64, N1}, {51, "u64_to_f64", lu_to_d, 1, 8, 8, 1, I64, N1},
};

/* ---------- inputs ---------- */

static u64 rs = 0x9e3779b97f4a7c15ull;
static u64 rnd(void) { rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27; return rs * 0x2545f4914f6cdd1dull; }
static u64 below(u64 n) { return rnd() % n; }

/* format parameters: exponent bits, mantissa bits */
typedef struct { int eb, mb; } fmt_t;
static const fmt_t FS = {8, 23}, FD = {11, 52};
static u64 emax(fmt_t f) { return (1ull << f.eb) - 1; }
static u64 bias(fmt_t f) { return (1ull << (f.eb - 1)) - 1; }
static u64 mmask(fmt_t f) { return (1ull << f.mb) - 1; }
static u64 mk(fmt_t f, u64 s, u64 e, u64 m) { return (s << (f.eb + f.mb)) | (e << f.mb) | (m & mmask(f)); }
static u64 sexp(fmt_t f, u64 x) { return (x >> f.mb) & emax(f); }

/* hand-picked values: zeros, subnormals, normals at the edges, infinities, NaNs */
static int tricky(fmt_t f, u64 *out) {
  int n = 0;
  u64 E = emax(f), B = bias(f), M = mmask(f);
  u64 base[] = {
    mk(f, 0, 0, 0), mk(f, 0, 0, 1), mk(f, 0, 0, 2), mk(f, 0, 0, M), mk(f, 0, 0, M >> 1), mk(f, 0, 0, 1ull << (f.mb - 1)),
    mk(f, 0, 1, 0), mk(f, 0, 1, 1), mk(f, 0, 2, 0), mk(f, 0, E - 1, M), mk(f, 0, E - 1, M - 1), mk(f, 0, E - 1, 0), mk(f, 0, E - 2, M),
    mk(f, 0, B, 0), mk(f, 0, B, 1), mk(f, 0, B - 1, M), mk(f, 0, B, 1ull << (f.mb - 1)), mk(f, 0, B + 1, 0),
    mk(f, 0, B + 1, 1ull << (f.mb - 1)), mk(f, 0, B - 1, 0), mk(f, 0, B, M), mk(f, 0, B + 2, 1ull << (f.mb - 2)),
    mk(f, 0, B + f.mb, 0), mk(f, 0, B + f.mb, 1), mk(f, 0, B + f.mb + 1, 0), mk(f, 0, B - f.mb, 0),
    mk(f, 0, E, 0), mk(f, 0, E, 1ull << (f.mb - 1)), mk(f, 0, E, (1ull << (f.mb - 1)) | 5), mk(f, 0, E, 1), mk(f, 0, E, M >> 1),
  };
  int nb = sizeof base / sizeof base[0];
  for (int i = 0; i < nb; i++) { out[n++] = base[i]; out[n++] = base[i] | (1ull << (f.eb + f.mb)); }
  return n;
}

/* random value with structure: interesting exponents and mantissas with few bits, all ones, ... */
static u64 rmant(fmt_t f) {
  u64 M = mmask(f);
  switch (below(8)) {
  case 0: return 0;
  case 1: return M;
  case 2: return rnd() & ~(M >> below(f.mb + 1));          /* only top bits */
  case 3: return (rnd() & M) | (M >> below(f.mb + 1));        /* low bits all ones */
  case 4: return 1ull << below(f.mb);
  case 5: return M ^ (1ull << below(f.mb));
  default: return rnd() & M;
  }
}
static u64 rexp(fmt_t f) {
  u64 E = emax(f), B = bias(f);
  switch (below(10)) {
  case 0: return below(3);                  /* subnormal, min normal */
  case 1: return E - 1 - below(3);          /* largest */
  case 2: return below(f.mb + 4);           /* near the bottom */
  case 3: return E - 1 - below(f.mb + 4);   /* near the top */
  case 4: return B - 4 + below(9);          /* near 1 */
  default: return 1 + below(E - 1);
  }
}
static u64 rval(fmt_t f) {
  if (below(40) == 0) { u64 t[128]; int n = tricky(f, t); return t[below(n)]; }
  if (below(30) == 0) return rnd() & ((1ull << (f.eb + f.mb + 1)) - 1);
  return mk(f, rnd() & 1, rexp(f), rmant(f));
}
/* value with exponent a's exponent + delta (clamped to finite range) */
static u64 rnear(fmt_t f, u64 a, int spread) {
  long e = (long)sexp(f, a) + (long)below(2 * spread + 1) - spread;
  if (e < 0) e = 0;
  if (e > (long)emax(f) - 1) e = emax(f) - 1;
  return mk(f, rnd() & 1, (u64)e, rmant(f));
}

static u64 s2u(float x) { u32 u; memcpy(&u, &x, 4); return u; }
static u64 d2u(double x) { u64 u; memcpy(&u, &x, 8); return u; }
static float u2s(u64 u) { float x; u32 v = (u32)u; memcpy(&x, &v, 4); return x; }
static double u2d(u64 u) { double x; memcpy(&x, &u, 8); return x; }

/* values around the integer-conversion boundaries */
static u64 rconv(fmt_t f) {
  static const double bounds[] = {0, 1, 2, 3, 2147483648.0, 4294967296.0, 9223372036854775808.0, 18446744073709551616.0, 16777216.0, 9007199254740992.0};
  static const double fracs[] = {0, 0.5, -0.5, 0.25, 0.75, 1.5, -1.5, 1, -1, 2.5, 0.125};
  int isd = f.mb == 52;
  switch (below(4)) {
  case 0: {
    double b = bounds[below(10)], x;
    if (below(3) == 0) {  /* one ulp around the boundary */
      u64 u = isd ? d2u(b) : s2u((float)b);
      u += below(5) - 2;
      x = isd ? u2d(u) : (double)u2s(u);
    } else x = b + fracs[below(11)];
    if (rnd() & 1) x = -x;
    return isd ? d2u(x) : s2u((float)x);
  }
  case 1: return mk(f, rnd() & 1, bias(f) - 2 + below(68), rmant(f));
  default: return rval(f);
  }
}

static u64 rint64(int w) {
  static const u64 t[] = {0, 1, 2, 3, 0x7fffffff, 0x80000000, 0xffffffff, 0x80000001, 0xffffff, 0x1000000, 0x1000001, 0x1000003,
                          0x7fffffffffffffffull, 0x8000000000000000ull, 0xffffffffffffffffull, 0x20000000000001ull, 0x20000000000003ull,
                          0x1fffffffffffffull, 0x7ffffffffffffc00ull, 0x7ffffffffffffe00ull, 0xfffffffffffff800ull, 0xfffffffffffffc00ull};
  u64 v;
  if (below(8) == 0) v = t[below(sizeof t / sizeof t[0])];
  else {
    int len = 1 + below(w);
    v = rnd() & (len == 64 ? ~0ull : ((1ull << len) - 1));
    v |= 1ull << (len - 1);
    if (below(3) == 0 && len > 25) {  /* make a tie or near-tie at the f32 or f64 rounding point */
      int keep = below(2) ? 24 : 53;
      if (len > keep + 1) {
        int cut = len - keep;  /* bits below the kept ones */
        u64 low = (1ull << (cut - 1)) + (below(3)) - 1;
        v = (v & ~((1ull << cut) - 1)) | (low & ((1ull << cut) - 1));
      }
    }
    if (below(3) == 0) v = -v;
  }
  if (w == 32) v &= 0xffffffffull;
  return v;
}

static u64 gen_value(const op_t *op, int which, u64 *in) {
  fmt_t f = op->inW == 4 ? FS : FD;
  if (op->dom == I32) return rint64(32);
  if (op->dom == I64) return rint64(64);
  int base = op->id & 31;
  if (base >= 12 && base <= 15) return rconv(f);
  if (base == 21) {  /* f64 -> f32: doubles around the float range */
    switch (below(4)) {
    case 0: return mk(FD, rnd() & 1, 1023 - 160 + below(300), rmant(FD));
    case 1: { double x = (double)u2s(rval(FS)); u64 u = d2u(x); return u + below(5) - 2; }
    case 2: return mk(FD, rnd() & 1, 1023 - 126 - 25 + below(30), (rnd() & 0xfffffe0000000ull) | (below(2) << 28) | below(2));
    default: return rval(FD);
    }
  }
  if (which == 0 || below(3) == 0) return rval(f);
  switch (base) {
  case 0: case 1: case 6: case 7: case 8: case 9: case 10:  /* close exponents, or exact negation-ish */
    if (below(4) == 0) return in[0] ^ (1ull << (f.eb + f.mb)) ^ (below(3) == 0 ? below(4) : 0);
    return rnear(f, in[0], below(2) ? 3 : f.mb + 4);
  case 2: case 3: {  /* exponents that put the product/quotient near the underflow/overflow edge */
    long ea = (long)sexp(f, in[0]), B = (long)bias(f), E = (long)emax(f);
    long target = below(2) ? 0 : E - 1;
    target += (long)below(2 * f.mb + 8) - f.mb - 4;
    long eb = base == 2 ? target - ea + B : ea - target + B;
    if (below(3) == 0 || eb < 0 || eb >= E) return rnear(f, mk(f, 0, B, 0), 6);
    return mk(f, rnd() & 1, (u64)eb, rmant(f));
  }
  case 5:
    if (which == 1) {
      if (below(2)) { long ea = (long)sexp(f, in[0]), B = (long)bias(f), E = (long)emax(f);
        long target = below(2) ? 0 : E - 1;
        long eb = target - ea + B + (long)below(9) - 4;
        if (eb < 0 || eb >= E) eb = B;
        return mk(f, rnd() & 1, (u64)eb, rmant(f)); }
      return rnear(f, mk(f, 0, bias(f), 0), 8);
    } else {  /* addend close to -(a*b) */
      u64 p;
      if (f.mb == 23) { float x = u2s(in[0]) * u2s(in[1]); p = s2u(x); }
      else { double x = u2d(in[0]) * u2d(in[1]); p = d2u(x); }
      if (sexp(f, p) == emax(f)) return rval(f);
      switch (below(4)) {
      case 0: return p ^ (1ull << (f.eb + f.mb));
      case 1: return (p ^ (1ull << (f.eb + f.mb))) + below(5) - 2;
      case 2: return rnear(f, p, 3);
      default: return rnear(f, p, f.mb * 2 + 4);
      }
    }
  }
  return rval(f);
}

/* fused multiply-add operands whose exact result is a tie (or one bit either side of one):
   a = (1 + 2^-i) 2^ea, b = (1 + 2^-j) 2^eb, c = -(1 + 2^-i + 2^-j - 2^-k) 2^(ea+eb), so
   a*b + c = (2^-k + 2^-(i+j)) 2^(ea+eb), which spans precision+1 bits when k = i+j-precision */
static void fma_tie(fmt_t f, u64 *in) {
  int P = f.mb + 1;
  int i = 1 + below(f.mb), j = P + 1 - i + below(f.mb - (P + 1 - i) + 1);
  if (j > f.mb) j = f.mb;
  int k = i + j - P + (int)below(3) - 1;
  if (k < 1) k = 1;
  long B = (long)bias(f), E = (long)emax(f);
  long ea = (long)below(2 * B) - B + 1, eb;
  if (below(2)) eb = -ea + (long)below(11) - 5;                 /* product near 1 */
  else eb = (below(2) ? 1 - B + f.mb + 2 : B - 2) - ea;        /* product near the range ends */
  if (ea + B < 1 || ea + B >= E || eb + B < 1 || eb + B >= E) { ea = 0; eb = 0; }
  long ec = ea + eb;
  u64 M = (1ull << f.mb) + (1ull << (f.mb - i)) + (1ull << (f.mb - j)) - (1ull << (f.mb - k));
  while (M < (1ull << f.mb)) { M <<= 1; ec--; }
  while (M >= (2ull << f.mb)) { M = M >> 1; ec++; }  /* only when k = 0: never, kept for safety */
  if (ec + B < 1 || ec + B >= E) ec = 0, ea = 0, eb = 0;
  u64 sa = rnd() & 1, sb = rnd() & 1;
  in[0] = mk(f, sa, (u64)(ea + B), 1ull << (f.mb - i));
  in[1] = mk(f, sb, (u64)(eb + B), 1ull << (f.mb - j));
  in[2] = mk(f, sa ^ sb ^ 1, (u64)(ec + B), M);
  if (below(4) == 0) in[2] += below(3) - 1;  /* and a last-place nudge */
}

/* ---------- output ---------- */

static void put(u64 v, int w) { for (int i = 0; i < w; i++) putchar((int)((v >> (8 * i)) & 0xff)); }

/* fpgen [seed [scale [name]]]: the committed vectors use the defaults; a larger scale
   multiplies the number of random cases and a name keeps only the ops whose names contain
   it (for a long local soak, not for the repository). */
int main(int argc, char **argv) {
  int scale = 1;
  const char *only = argc > 3 ? argv[3] : 0;
  if (argc > 1) rs ^= strtoull(argv[1], 0, 0) * 0x9e3779b97f4a7c15ull;
  if (argc > 2) scale = atoi(argv[2]);
  fwrite("FPV1", 1, 4, stdout);
  u64 tr[128];
  for (unsigned k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
    const op_t *op = &OPS[k];
    if (only && !strstr(op->name, only)) continue;
    int nm = op->rm ? 5 : 1;
    int count = op->count * scale;
    putchar(op->id); putchar(nm); put((u64)count, 4);
    fmt_t f = op->inW == 4 ? FS : FD;
    int nt = tricky(f, tr);
    for (int i = 0; i < count; i++) {
      u64 in[3] = {0, 0, 0};
      int fl = op->dom == F32 || op->dom == F64;
      /* first: all combinations of hand-picked values (pairs for binary ops, a few triples for fma) */
      if (fl && op->arity == 1 && i < nt) in[0] = tr[i];
      else if (fl && op->arity == 2 && i < nt * nt) { in[0] = tr[i / nt]; in[1] = tr[i % nt]; }
      else if (fl && op->arity == 3 && i < 1500) { in[0] = tr[below(nt)]; in[1] = tr[below(nt)]; in[2] = tr[below(nt)];
        if (i < 500) in[2] = rval(f); }
      else if ((op->id & 31) == 5 && below(8) == 0) fma_tie(f, in);
      else for (int j = 0; j < op->arity; j++) in[j] = gen_value(op, j, in);
      for (int j = 0; j < op->arity; j++) put(in[j], op->inW);
      for (int m = 0; m < nm; m++) {
        setrm((u64)m);
        u64 r = op->fn(in[0], in[1], in[2]);
        u32 flags = getfl();
        put(r, op->outW); putchar((int)flags);
      }
    }
  }
  putchar(0xff);
  return 0;
}
