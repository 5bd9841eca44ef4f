# F and D (unprivileged spec ch. 11, 12): loads/stores, NaN-boxing, moves, sign
# injection, min/max, compares with their flags, classify.
#include "test.h"
#include "fp.h"
main:
  la s0, buf
  # ---- FLW/FSW/FLD/FSD (11.5, 12.3): flw NaN-boxes; fsw stores the low 32 bits
  li gp, 1
  li t0, 0x12345678
  sw t0, 4(s0)
  flw fa0, 4(s0)
  fmv.x.d a0, fa0
  li t6, 0xffffffff12345678
  bne a0, t6, fail
  li gp, 2
  li t0, 0xdeadbeef01234567
  fmv.d.x fa1, t0               # not a boxed single
  fsw fa1, 12(s0)               # the low 32 bits, unchanged
  lwu a0, 12(s0)
  li t6, 0x01234567
  bne a0, t6, fail
  li gp, 3
  li t0, 0x7ff123456789abcd     # an sNaN: loads and stores never touch NaNs
  sd t0, 16(s0)
  csrw fflags, zero
  fld fa2, 16(s0)
  fsd fa2, 24(s0)
  ld a0, 24(s0)
  bne a0, t0, fail
  CHECK_FLAGS(0)
  li gp, 4
  li t0, 0x7f800001
  sw t0, 32(s0)
  flw fa3, 32(s0)
  fsw fa3, -4(s0)
  lwu a0, -4(s0)
  li t6, 0x7f800001
  bne a0, t6, fail
  li gp, 5                      # negative and large offsets
  addi s1, s0, 2040
  fld fa0, -2024(s1)            # = 16(s0)
  fmv.x.d a0, fa0
  li t6, 0x7ff123456789abcd
  bne a0, t6, fail
  # ---- FMV.X.W sign-extends; FMV.W.X boxes; FMV.X.D / FMV.D.X are raw
  li gp, 6
  LOAD_S(fa0, 0x80000000)
  fmv.x.w a0, fa0
  li t6, 0xffffffff80000000
  bne a0, t6, fail
  li gp, 7
  LOAD_S(fa0, 0x7fffffff)
  fmv.x.w a0, fa0
  li t6, 0x7fffffff
  bne a0, t6, fail
  li gp, 8                      # fmv.x.w of an unboxed register: the low 32 bits as they are
  LOAD_D(fa0, 0x00000000ff800001)
  fmv.x.w a0, fa0
  li t6, 0xffffffffff800001
  bne a0, t6, fail
  li gp, 9
  li t0, 0x1234567887654321
  fmv.w.x fa0, t0               # upper bits of x ignored, result boxed
  fmv.x.d a0, fa0
  li t6, 0xffffffff87654321
  bne a0, t6, fail
  # ---- NaN-boxing: an improperly boxed single reads as the canonical NaN (12.2)
  FS(10, S_QNAN, 0, 0, S_1, 0, LOAD_D(fa1, 0x000000003f800000); fadd.s fa0, fa1, fa2)
  FS(11, S_QNAN, 0, 0, S_1, 0, LOAD_D(fa1, 0xfffffffe3f800000); fmul.s fa0, fa2, fa1)
  FS(12, S_QNAN, 0, 0, 0, 0, LOAD_D(fa1, 0x3ff0000000000000); fmv.s fa0, fa1)
  FS(13, 0xffc00000, 0, 0, S_N1, 0, LOAD_D(fa1, 0x3ff0000000000000); fsgnj.s fa0, fa1, fa2)
  FS(14, 0x3f800000, 0, S_1, 0, 0, LOAD_D(fa2, 0x00000000bf800000); fsgnj.s fa0, fa1, fa2) # rs2 = +qNaN
  FSX(15, 0x200, 0, 0, 0, LOAD_D(fa1, 0x7ff0000000000000); fclass.s a0, fa1)   # quiet NaN
  FSX(16, 0, 0, S_1, 0, LOAD_D(fa2, 0x3f800000); feq.s a0, fa1, fa2)
  FS(17, S_1, 0, S_1, 0, 0, LOAD_D(fa2, 0x3f800000); fmin.s fa0, fa1, fa2)     # NaN operand ignored
  FDX(18, 0xffffffffffffffff, 0, 0, 0, LOAD_D(fa1, 0xffffffffffffffff); fmv.x.d a0, fa1)
  li gp, 19                     # fcvt.d.s of an unboxed value: canonical NaN, no NV
  LOAD_D(fa1, 0x000000007f800001)
  csrw fflags, zero
  fcvt.d.s fa0, fa1
  fmv.x.d a0, fa0
  li t6, D_QNAN
  bne a0, t6, fail
  CHECK_FLAGS(0)
  # ---- sign injection: NaNs keep their payload, no flags
  FS(20, S_N1, 0, S_1, S_N2, 0, fsgnj.s fa0, fa1, fa2)
  FS(21, S_1, 0, S_1, S_N2, 0, fsgnjn.s fa0, fa1, fa2)
  FS(22, S_1, 0, S_N1, S_N2, 0, fsgnjx.s fa0, fa1, fa2)
  FS(23, S_N1, 0, S_N1, S_2, 0, fsgnjx.s fa0, fa1, fa2)
  FS(24, 0xff812345, 0, 0x7f812345, S_1, 0, fsgnjn.s fa0, fa1, fa2) # sNaN, no NV
  FS(25, 0x7fc00001, 0, 0xffc00001, 0, 0, fabs.s fa0, fa1)
  FS(26, 0x80000000, 0, 0, 0, 0, fneg.s fa0, fa1)
  FD(27, 0xbff0000000000000, 0, D_1, D_N1, 0, fsgnj.d fa0, fa1, fa2)
  FD(28, 0x3ff0000000000000, 0, D_1, D_N1, 0, fsgnjn.d fa0, fa1, fa2)
  FD(29, 0x3ff0000000000000, 0, D_N1, D_N1, 0, fsgnjx.d fa0, fa1, fa2)
  FD(30, 0xfff0000000000001, 0, D_SNAN, 0, 0, fneg.d fa0, fa1)
  FD(31, 0x7ff8000000000000, 0, 0xfff8000000000000, 0, 0, fabs.d fa0, fa1)
  # fsgnj.d reads all 64 bits: a boxed single is just a NaN to it
  FD(32, 0x7fffffff3f800000, 0, 0xffffffff3f800000, 0, 0, fabs.d fa0, fa1)
  # ---- FMIN/FMAX (2019 semantics): -0 < +0, one NaN -> the other, sNaN -> NV
  FS(33, S_N0, 0, S_N0, S_P0, 0, fmin.s fa0, fa1, fa2)
  FS(34, S_N0, 0, S_P0, S_N0, 0, fmin.s fa0, fa1, fa2)
  FS(35, S_P0, 0, S_N0, S_P0, 0, fmax.s fa0, fa1, fa2)
  FS(36, S_P0, 0, S_P0, S_N0, 0, fmax.s fa0, fa1, fa2)
  FS(37, S_1, 0, S_QNAN, S_1, 0, fmin.s fa0, fa1, fa2)
  FS(38, S_1, 0, S_1, S_QNAN, 0, fmax.s fa0, fa1, fa2)
  FS(39, S_1, NV, S_SNAN, S_1, 0, fmin.s fa0, fa1, fa2)
  FS(40, S_QNAN, 0, 0x7fc12345, 0xffc54321, 0, fmax.s fa0, fa1, fa2) # both NaN: canonical
  FS(41, S_QNAN, NV, S_SNAN, S_QNAN, 0, fmin.s fa0, fa1, fa2)
  FS(42, S_N2, 0, S_N2, S_1, 0, fmin.s fa0, fa1, fa2)
  FS(43, S_INF, 0, S_NINF, S_INF, 0, fmax.s fa0, fa1, fa2)
  FD(44, D_N0, 0, D_P0, D_N0, 0, fmin.d fa0, fa1, fa2)
  FD(45, D_P0, 0, D_N0, D_P0, 0, fmax.d fa0, fa1, fa2)
  FD(46, D_N1, 0, D_QNAN, D_N1, 0, fmax.d fa0, fa1, fa2)
  FD(47, D_2, NV, D_2, D_SNAN, 0, fmax.d fa0, fa1, fa2)
  FD(48, D_QNAN, 0, 0x7ff8000000000123, D_QNAN, 0, fmin.d fa0, fa1, fa2)
  FD(49, D_1, 0, D_1, D_3, 0, fmin.d fa0, fa1, fa2)
  # ---- FEQ/FLT/FLE (11.8): quiet NaN -> NV only for flt/fle; signaling -> NV always
  FSX(50, 1, 0, S_1, S_1, feq.s a0, fa1, fa2)
  FSX(51, 1, 0, S_N0, S_P0, feq.s a0, fa1, fa2)
  FSX(52, 0, 0, S_QNAN, S_1, feq.s a0, fa1, fa2)
  FSX(53, 0, 0, S_QNAN, S_QNAN, feq.s a0, fa1, fa2)
  FSX(54, 0, NV, S_SNAN, S_1, feq.s a0, fa1, fa2)
  FSX(55, 0, NV, S_QNAN, S_1, flt.s a0, fa1, fa2)
  FSX(56, 0, NV, S_1, S_QNAN, fle.s a0, fa1, fa2)
  FSX(57, 0, 0, S_N0, S_P0, flt.s a0, fa1, fa2)
  FSX(58, 1, 0, S_N0, S_P0, fle.s a0, fa1, fa2)
  FSX(59, 1, 0, S_NINF, S_N2, flt.s a0, fa1, fa2)
  FSX(60, 0, 0, S_2, S_1, fle.s a0, fa1, fa2)
  FDX(61, 1, 0, D_N1, D_1, flt.d a0, fa1, fa2)
  FDX(62, 0, 0, D_1, D_N1, flt.d a0, fa1, fa2)
  FDX(63, 1, 0, D_INF, D_INF, fle.d a0, fa1, fa2)
  FDX(64, 0, 0, D_QNAN, D_QNAN, feq.d a0, fa1, fa2)
  FDX(65, 0, NV, D_SNAN, D_1, feq.d a0, fa1, fa2)
  FDX(66, 0, NV, D_1, D_QNAN, flt.d a0, fa1, fa2)
  FDX(67, 0, NV, D_QNAN, D_1, fle.d a0, fa1, fa2)
  FDX(68, 1, 0, D_N0, D_P0, feq.d a0, fa1, fa2)
  # ---- FCLASS (11.9): one bit each
  FSX(69, 1 << 0, 0, S_NINF, 0, fclass.s a0, fa1)
  FSX(70, 1 << 1, 0, S_N1, 0, fclass.s a0, fa1)
  FSX(71, 1 << 2, 0, 0x807fffff, 0, fclass.s a0, fa1)
  FSX(72, 1 << 3, 0, S_N0, 0, fclass.s a0, fa1)
  FSX(73, 1 << 4, 0, S_P0, 0, fclass.s a0, fa1)
  FSX(74, 1 << 5, 0, S_SUB, 0, fclass.s a0, fa1)
  FSX(75, 1 << 6, 0, S_MAX, 0, fclass.s a0, fa1)
  FSX(76, 1 << 7, 0, S_INF, 0, fclass.s a0, fa1)
  FSX(77, 1 << 8, 0, S_SNAN, 0, fclass.s a0, fa1)
  FSX(78, 1 << 9, 0, 0xffc00000, 0, fclass.s a0, fa1)
  FDX(79, 1 << 0, 0, D_NINF, 0, fclass.d a0, fa1)
  FDX(80, 1 << 1, 0, D_N1, 0, fclass.d a0, fa1)
  FDX(81, 1 << 2, 0, 0x8000000000000001, 0, fclass.d a0, fa1)
  FDX(82, 1 << 3, 0, D_N0, 0, fclass.d a0, fa1)
  FDX(83, 1 << 4, 0, D_P0, 0, fclass.d a0, fa1)
  FDX(84, 1 << 5, 0, 0x000fffffffffffff, 0, fclass.d a0, fa1)
  FDX(85, 1 << 6, 0, D_MAX, 0, fclass.d a0, fa1)
  FDX(86, 1 << 7, 0, D_INF, 0, fclass.d a0, fa1)
  FDX(87, 1 << 8, 0, D_SNAN, 0, fclass.d a0, fa1)
  FDX(88, 1 << 9, 0, D_QNAN, 0, fclass.d a0, fa1)
  FDX(89, 1 << 9, 0, 0xffffffff3f800000, 0, fclass.d a0, fa1) # a boxed single is a qNaN as a double
  PASS

  .data
  .align 4
  .zero 16
buf:
  .zero 64
