/*
 * Helpers of the F/D tests. Inputs go in fa1, fa2, fa3 (S values NaN-boxed by fmv.w.x),
 * the instruction under test writes fa0 (or a0), and the raw 64-bit register value and
 * fflags (a1) are compared: a single-precision result must come back NaN-boxed.
 */
#define NX 0x01
#define UF 0x02
#define OF 0x04
#define DZ 0x08
#define NV 0x10

#define LOAD_S(fr, bits) li t0, bits; fmv.w.x fr, t0
#define LOAD_D(fr, bits) li t0, bits; fmv.d.x fr, t0
#define CHECK_FLAGS(flags) csrr a1, fflags; li t6, flags; beq a1, t6, 8f; j fail; 8:

/* single-precision operands, single-precision result */
#define FS(n, res, flags, a, b, c, insn...) \
  li gp, n; LOAD_S(fa1, a); LOAD_S(fa2, b); LOAD_S(fa3, c); csrw fflags, zero; insn; \
  fmv.x.d a0, fa0; li t6, 0xffffffff00000000 | (res); beq a0, t6, 8f; j fail; 8: CHECK_FLAGS(flags)
/* double-precision operands, double-precision result */
#define FD(n, res, flags, a, b, c, insn...) \
  li gp, n; LOAD_D(fa1, a); LOAD_D(fa2, b); LOAD_D(fa3, c); csrw fflags, zero; insn; \
  fmv.x.d a0, fa0; li t6, res; beq a0, t6, 8f; j fail; 8: CHECK_FLAGS(flags)
/* single operands, integer result in a0 */
#define FSX(n, res, flags, a, b, insn...) \
  li gp, n; LOAD_S(fa1, a); LOAD_S(fa2, b); csrw fflags, zero; insn; \
  li t6, res; beq a0, t6, 8f; j fail; 8: CHECK_FLAGS(flags)
/* double operands, integer result in a0 */
#define FDX(n, res, flags, a, b, insn...) \
  li gp, n; LOAD_D(fa1, a); LOAD_D(fa2, b); csrw fflags, zero; insn; \
  li t6, res; beq a0, t6, 8f; j fail; 8: CHECK_FLAGS(flags)
/* integer operand in a1 (written a2 for the instruction), FP result: raw register compared */
#define FXS(n, res, flags, xv, insn...) \
  li gp, n; li a2, xv; csrw fflags, zero; insn; \
  fmv.x.d a0, fa0; li t6, 0xffffffff00000000 | (res); beq a0, t6, 8f; j fail; 8: CHECK_FLAGS(flags)
#define FXD(n, res, flags, xv, insn...) \
  li gp, n; li a2, xv; csrw fflags, zero; insn; \
  fmv.x.d a0, fa0; li t6, res; beq a0, t6, 8f; j fail; 8: CHECK_FLAGS(flags)

/* single constants */
#define S_P0   0x00000000
#define S_N0   0x80000000
#define S_1    0x3f800000
#define S_N1   0xbf800000
#define S_2    0x40000000
#define S_N2   0xc0000000
#define S_3    0x40400000
#define S_HALF 0x3f000000
#define S_INF  0x7f800000
#define S_NINF 0xff800000
#define S_QNAN 0x7fc00000
#define S_SNAN 0x7f800001
#define S_MAX  0x7f7fffff
#define S_MINN 0x00800000
#define S_SUB  0x00000001
/* double constants */
#define D_P0   0x0000000000000000
#define D_N0   0x8000000000000000
#define D_1    0x3ff0000000000000
#define D_N1   0xbff0000000000000
#define D_2    0x4000000000000000
#define D_3    0x4008000000000000
#define D_INF  0x7ff0000000000000
#define D_NINF 0xfff0000000000000
#define D_QNAN 0x7ff8000000000000
#define D_SNAN 0x7ff0000000000001
#define D_MAX  0x7fefffffffffffff
