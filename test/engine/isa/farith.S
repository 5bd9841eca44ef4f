# F and D arithmetic (unprivileged spec 11.6-11.7, 12.4-12.5): rounding modes (static
# and dynamic), exception flags and their accumulation, canonical NaNs, fused
# multiply-add with a single rounding, and every conversion with saturation and NV.
#include "test.h"
#include "fp.h"
#define THIRD_D 0x3fd5555555555555
main:
  # ---- FADD/FSUB/FMUL/FDIV/FSQRT
  FS(1, S_3, 0, S_1, S_2, 0, fadd.s fa0, fa1, fa2)
  FS(2, S_N1, 0, S_1, S_2, 0, fsub.s fa0, fa1, fa2)
  FS(3, 0x40c00000, 0, S_2, S_3, 0, fmul.s fa0, fa1, fa2)
  FS(4, 0x3eaaaaab, NX, S_1, S_3, 0, fdiv.s fa0, fa1, fa2)
  FS(5, S_2, 0, 0x40800000, 0, 0, fsqrt.s fa0, fa1)
  FD(6, D_3, 0, D_1, D_2, 0, fadd.d fa0, fa1, fa2)
  FD(7, D_N1, 0, D_1, D_2, 0, fsub.d fa0, fa1, fa2)
  FD(8, 0x4018000000000000, 0, D_2, D_3, 0, fmul.d fa0, fa1, fa2)
  FD(9, THIRD_D, NX, D_1, D_3, 0, fdiv.d fa0, fa1, fa2)
  FD(10, 0x3ff6a09e667f3bcd, NX, D_2, 0, 0, fsqrt.d fa0, fa1)
  # ---- the five static rounding modes (1/3 and -1/3)
  FS(11, 0x3eaaaaab, NX, S_1, S_3, 0, fdiv.s fa0, fa1, fa2, rne)
  FS(12, 0x3eaaaaaa, NX, S_1, S_3, 0, fdiv.s fa0, fa1, fa2, rtz)
  FS(13, 0x3eaaaaaa, NX, S_1, S_3, 0, fdiv.s fa0, fa1, fa2, rdn)
  FS(14, 0x3eaaaaab, NX, S_1, S_3, 0, fdiv.s fa0, fa1, fa2, rup)
  FS(15, 0x3eaaaaab, NX, S_1, S_3, 0, fdiv.s fa0, fa1, fa2, rmm)
  FS(16, 0xbeaaaaab, NX, S_N1, S_3, 0, fdiv.s fa0, fa1, fa2, rdn)
  FS(17, 0xbeaaaaaa, NX, S_N1, S_3, 0, fdiv.s fa0, fa1, fa2, rup)
  FD(18, 0x3fd5555555555555, NX, D_1, D_3, 0, fdiv.d fa0, fa1, fa2, rdn)
  FD(19, 0x3fd5555555555556, NX, D_1, D_3, 0, fdiv.d fa0, fa1, fa2, rup)
  # ---- dynamic rounding mode from frm
  csrwi frm, 1
  FS(20, 0x3eaaaaaa, NX, S_1, S_3, 0, fdiv.s fa0, fa1, fa2)     # RTZ
  csrwi frm, 3
  FD(21, 0x3fd5555555555556, NX, D_1, D_3, 0, fdiv.d fa0, fa1, fa2, dyn) # RUP
  FS(22, 0x3eaaaaab, NX, S_1, S_3, 0, fdiv.s fa0, fa1, fa2, rne) # static beats frm
  csrwi frm, 2
  FD(23, D_N0, 0, D_1, D_N1, 0, fadd.d fa0, fa1, fa2)           # x + -x = -0 in RDN
  csrwi frm, 0
  FD(24, D_P0, 0, D_1, D_N1, 0, fadd.d fa0, fa1, fa2)           # +0 otherwise
  FS(25, S_N0, 0, S_N0, S_N0, 0, fadd.s fa0, fa1, fa2)
  # ---- overflow, underflow, division by zero, invalid; canonical NaN results
  FS(26, S_INF, OF | NX, S_MAX, S_2, 0, fmul.s fa0, fa1, fa2)
  FS(27, S_MAX, OF | NX, S_MAX, S_2, 0, fmul.s fa0, fa1, fa2, rtz)
  FS(28, 0xff7fffff, OF | NX, S_MAX, S_N2, 0, fmul.s fa0, fa1, fa2, rup)
  FD(29, D_INF, OF | NX, D_MAX, D_MAX, 0, fadd.d fa0, fa1, fa2)
  FS(30, 0x00400000, 0, S_MINN, S_HALF, 0, fmul.s fa0, fa1, fa2)    # exact subnormal: no UF
  FS(31, 0x00400000, UF | NX, 0x00800001, S_HALF, 0, fmul.s fa0, fa1, fa2) # tiny and inexact
  FD(32, 0x0000000000000001, UF | NX, 0x0000000000000001, 0x3fe8000000000000, 0, fmul.d fa0, fa1, fa2, rup)
  FS(33, S_INF, DZ, S_1, S_P0, 0, fdiv.s fa0, fa1, fa2)
  FD(34, D_NINF, DZ, D_N1, D_P0, 0, fdiv.d fa0, fa1, fa2)
  FS(35, S_QNAN, NV, S_P0, S_P0, 0, fdiv.s fa0, fa1, fa2)
  FD(36, D_QNAN, NV, D_INF, D_NINF, 0, fadd.d fa0, fa1, fa2)
  FS(37, S_QNAN, NV, S_INF, S_P0, 0, fmul.s fa0, fa1, fa2)
  FS(38, S_QNAN, NV, S_N1, 0, 0, fsqrt.s fa0, fa1)
  FD(39, D_N0, 0, D_N0, 0, 0, fsqrt.d fa0, fa1)
  FS(40, S_QNAN, 0, 0x7fc12345, S_1, 0, fadd.s fa0, fa1, fa2)   # payload not propagated
  FS(41, S_QNAN, NV, S_SNAN, S_1, 0, fsub.s fa0, fa1, fa2)
  FD(42, D_QNAN, 0, 0xfff8000000000abc, D_1, 0, fmul.d fa0, fa1, fa2)
  FD(43, D_QNAN, NV, D_1, D_SNAN, 0, fdiv.d fa0, fa1, fa2)
  # ---- fflags accumulate (11.2): instructions only set bits
  li gp, 44
  csrw fflags, zero
  LOAD_S(fa1, S_1)
  LOAD_S(fa2, S_3)
  LOAD_S(fa3, S_P0)
  fdiv.s fa0, fa1, fa2          # NX
  fdiv.s fa0, fa1, fa3          # DZ
  fadd.s fa0, fa1, fa1          # exact: nothing
  CHECK_FLAGS(NX | DZ)
  li gp, 45
  fsqrt.s fa0, fa0              # sqrt(inf): exact
  fmin.s fa0, fa1, fa2
  CHECK_FLAGS(NX | DZ)
  # ---- fused multiply-add: one rounding (11.6)
  FS(46, 0x40e00000, 0, S_2, S_3, S_1, fmadd.s fa0, fa1, fa2, fa3)   # 2*3+1
  FS(47, 0x40a00000, 0, S_2, S_3, S_1, fmsub.s fa0, fa1, fa2, fa3)   # 2*3-1
  FS(48, 0xc0a00000, 0, S_2, S_3, S_1, fnmsub.s fa0, fa1, fa2, fa3)  # -(2*3)+1
  FS(49, 0xc0e00000, 0, S_2, S_3, S_1, fnmadd.s fa0, fa1, fa2, fa3)  # -(2*3)-1
  FS(50, 0x33800000, 0, 0x3f800800, 0x3f800800, 0xbf801000, fmadd.s fa0, fa1, fa2, fa3) # (1+2^-12)^2-(1+2^-11) = 2^-24
  FD(51, 0x3c30000000000000, 0, 0x3ff0000000400000, 0x3ff0000000400000, 0xbff0000000800000, fmadd.d fa0, fa1, fa2, fa3) # (1+2^-30)^2-(1+2^-29) = 2^-60
  FD(52, 0xbc30000000000000, 0, 0x3ff0000000400000, 0x3ff0000000400000, 0xbff0000000800000, fnmadd.d fa0, fa1, fa2, fa3)
  FD(53, 0x4020000000000000, 0, D_3, D_3, D_1, fmsub.d fa0, fa1, fa2, fa3)
  FD(54, 0xc020000000000000, 0, D_3, D_3, D_1, fnmsub.d fa0, fa1, fa2, fa3) # -(9)+1
  FS(55, S_N0, 0, S_1, S_P0, S_P0, fnmadd.s fa0, fa1, fa2, fa3)     # -(+0) - (+0) = -0
  FS(56, S_P0, 0, S_1, S_P0, S_P0, fnmsub.s fa0, fa1, fa2, fa3)     # -(+0) + (+0) = +0
  FS(57, S_P0, 0, S_1, S_P0, S_P0, fmsub.s fa0, fa1, fa2, fa3)      # +0 - +0 = +0
  FS(58, S_QNAN, NV, S_INF, S_P0, S_QNAN, fmadd.s fa0, fa1, fa2, fa3) # inf*0 is invalid even with a qNaN addend
  FD(59, D_QNAN, NV, D_INF, D_1, D_NINF, fmadd.d fa0, fa1, fa2, fa3) # (1+2^-30)^2-(1+2^-29) = 2^-60
  FS(60, 0xbeaaaaaa, NX, 0x3eaaaaab, S_1, 0x00000001, fnmsub.s fa0, fa1, fa2, fa3, rtz) # -(x) + tiny, RTZ
  FD(61, 0x3ff0000000000001, NX, D_1, D_1, 0x0000000000000001, fmadd.d fa0, fa1, fa2, fa3, rup)
  # ---- FCVT.W[U]/L[U] from single: rounding, saturation, NV, sign-extended W results
  FSX(62, 2, NX, 0x3fc00000, 0, fcvt.w.s a0, fa1, rne)   # 1.5
  FSX(63, 2, NX, 0x40200000, 0, fcvt.w.s a0, fa1, rne)   # 2.5
  FSX(64, 3, NX, 0x40200000, 0, fcvt.w.s a0, fa1, rmm)
  FSX(65, 3, NX, 0x40200000, 0, fcvt.w.s a0, fa1, rup)
  FSX(66, -3, NX, 0xc0200000, 0, fcvt.w.s a0, fa1, rdn)
  FSX(67, -2, NX, 0xc0200000, 0, fcvt.w.s a0, fa1, rtz)
  FSX(68, 0x7fffffff, NV, 0x4f32d05e, 0, fcvt.w.s a0, fa1, rtz)       # 3e9
  FSX(69, 0xffffffff80000000, NV, 0xcf32d05e, 0, fcvt.w.s a0, fa1, rtz)
  FSX(70, 0xffffffff80000000, 0, 0xcf000000, 0, fcvt.w.s a0, fa1, rtz) # -2^31 exactly
  FSX(71, 0x7fffffff, NV, 0x4f000000, 0, fcvt.w.s a0, fa1, rtz)       # 2^31
  FSX(72, 0x7fffffff, NV, S_QNAN, 0, fcvt.w.s a0, fa1, rtz)
  FSX(73, 0x7fffffff, NV, 0xffc00000, 0, fcvt.w.s a0, fa1, rtz)       # NaN of either sign: max
  FSX(74, 0x7fffffff, NV, S_INF, 0, fcvt.w.s a0, fa1, rtz)
  FSX(75, 0xffffffff80000000, NV, S_NINF, 0, fcvt.w.s a0, fa1, rtz)
  FSX(76, 0xffffffffb2d05e00, 0, 0x4f32d05e, 0, fcvt.wu.s a0, fa1, rtz) # 3e9: sign-extended
  FSX(77, 0, NV, S_N1, 0, fcvt.wu.s a0, fa1, rtz)
  FSX(78, 0, NX, 0xbf000000, 0, fcvt.wu.s a0, fa1, rtz)              # -0.5 rounds to 0
  FSX(79, 0, NV, 0xbf000000, 0, fcvt.wu.s a0, fa1, rdn)              # -0.5 rounds to -1
  FSX(80, 0xffffffffffffffff, NV, S_QNAN, 0, fcvt.wu.s a0, fa1, rtz)
  FSX(81, 0xffffffffffffffff, NV, 0x4f800000, 0, fcvt.wu.s a0, fa1, rtz) # 2^32
  FSX(82, 0, NV, S_NINF, 0, fcvt.wu.s a0, fa1, rtz)
  FSX(83, 0x7fffffffffffffff, NV, S_QNAN, 0, fcvt.l.s a0, fa1, rtz)
  FSX(84, 0x8000000000000000, NV, S_NINF, 0, fcvt.l.s a0, fa1, rtz)
  FSX(85, 0x7fffffffffffffff, NV, 0x5f000000, 0, fcvt.l.s a0, fa1, rtz) # 2^63
  FSX(86, 0x8000000000000000, 0, 0xdf000000, 0, fcvt.l.s a0, fa1, rtz)  # -2^63
  FSX(87, 0, NV, S_N1, 0, fcvt.lu.s a0, fa1, rtz)
  FSX(88, 0xffffffffffffffff, NV, S_QNAN, 0, fcvt.lu.s a0, fa1, rtz)
  FSX(89, 0xffffffffffffffff, NV, 0x5f800000, 0, fcvt.lu.s a0, fa1, rtz) # 2^64
  FSX(90, 0x8000000000000000, 0, 0x5f000000, 0, fcvt.lu.s a0, fa1, rtz)
  # ---- from double
  FDX(91, 0x7fffffff, NV, 0x4202a05f20000000, 0, fcvt.w.d a0, fa1, rtz)   # 1e10
  FDX(92, 0xffffffff80000000, NX, 0xc1e0000000100000, 0, fcvt.w.d a0, fa1, rtz) # -2^31-0.5
  FDX(93, 0xffffffff80000000, NV, 0xc1e0000000100000, 0, fcvt.w.d a0, fa1, rdn)
  FDX(94, 0xffffffffffffffff, 0, 0x41efffffffe00000, 0, fcvt.wu.d a0, fa1, rtz) # 2^32-1
  FDX(95, 0x7fffffffffffffff, NV, D_QNAN, 0, fcvt.l.d a0, fa1, rtz)
  FDX(96, 0xffffffffffffffff, NV, D_INF, 0, fcvt.lu.d a0, fa1, rtz)
  FDX(97, -1, 0, D_N1, 0, fcvt.l.d a0, fa1, rtz)
  FDX(98, 2, NX, 0x3ff8000000000000, 0, fcvt.lu.d a0, fa1, rne)   # 1.5
  FDX(99, 1, NX, 0x3ff8000000000000, 0, fcvt.l.d a0, fa1, rtz)
  csrwi frm, 4
  FDX(100, 2, NX, 0x3ff8000000000000, 0, fcvt.l.d a0, fa1)        # dynamic RMM
  csrwi frm, 0
  # ---- integer to FP: only the low 32 bits of W sources count
  FXS(101, 0x4b800000, NX, 16777217, fcvt.s.w fa0, a2)
  FXS(102, 0x4b800001, NX, 16777217, fcvt.s.w fa0, a2, rup)
  FXS(103, S_N1, 0, -1, fcvt.s.w fa0, a2)
  FXS(104, 0x40a00000, 0, 0x0000000100000005, fcvt.s.w fa0, a2)
  FXS(105, 0x4f800000, NX, 0xffffffffffffffff, fcvt.s.wu fa0, a2)  # 2^32-1 -> 2^32
  FXS(106, 0x4f7fffff, NX, 0xffffffffffffffff, fcvt.s.wu fa0, a2, rtz)
  FXS(107, 0x5f000000, NX, 0x7fffffffffffffff, fcvt.s.l fa0, a2)
  FXS(108, 0xdf000000, 0, 0x8000000000000000, fcvt.s.l fa0, a2)
  FXS(109, 0x5f800000, NX, 0xffffffffffffffff, fcvt.s.lu fa0, a2)
  FXS(110, S_P0, 0, 0, fcvt.s.lu fa0, a2)
  FXD(111, 0xc014000000000000, 0, -5, fcvt.d.w fa0, a2)
  FXD(112, 0x41efffffffe00000, 0, 0xffffffffffffffff, fcvt.d.wu fa0, a2)
  FXD(113, 0xc1e0000000000000, 0, 0x1234567880000000, fcvt.d.w fa0, a2)
  FXD(114, 0x4340000000000000, NX, 0x20000000000001, fcvt.d.l fa0, a2)
  FXD(115, 0x4340000000000001, NX, 0x20000000000001, fcvt.d.l fa0, a2, rup)
  FXD(116, 0x43f0000000000000, NX, 0xffffffffffffffff, fcvt.d.lu fa0, a2)
  FXD(117, 0xc3e0000000000000, 0, 0x8000000000000000, fcvt.d.l fa0, a2)
  # ---- FCVT.S.D / FCVT.D.S (12.5)
  FS(118, 0x3eaaaaab, NX, 0, 0, 0, LOAD_D(fa1, THIRD_D); fcvt.s.d fa0, fa1)
  FS(119, 0x3eaaaaaa, NX, 0, 0, 0, LOAD_D(fa1, THIRD_D); fcvt.s.d fa0, fa1, rtz)
  FS(120, S_INF, OF | NX, 0, 0, 0, LOAD_D(fa1, D_MAX); fcvt.s.d fa0, fa1)
  FS(121, S_MAX, OF | NX, 0, 0, 0, LOAD_D(fa1, D_MAX); fcvt.s.d fa0, fa1, rtz)
  FS(122, S_QNAN, 0, 0, 0, 0, LOAD_D(fa1, 0x7ff8000012345678); fcvt.s.d fa0, fa1)
  FS(123, S_QNAN, NV, 0, 0, 0, LOAD_D(fa1, D_SNAN); fcvt.s.d fa0, fa1)
  FS(124, S_P0, UF | NX, 0, 0, 0, LOAD_D(fa1, 0x01a56e1fc2f8f359); fcvt.s.d fa0, fa1)  # 1e-300
  FS(125, S_SUB, UF | NX, 0, 0, 0, LOAD_D(fa1, 0x01a56e1fc2f8f359); fcvt.s.d fa0, fa1, rup)
  FS(126, S_N0, 0, 0, 0, 0, LOAD_D(fa1, D_N0); fcvt.s.d fa0, fa1)
  FD(127, 0x3fd5555560000000, 0, 0, 0, 0, LOAD_S(fa1, 0x3eaaaaab); fcvt.d.s fa0, fa1)
  FD(128, D_QNAN, NV, 0, 0, 0, LOAD_S(fa1, S_SNAN); fcvt.d.s fa0, fa1)
  FD(129, D_QNAN, 0, 0, 0, 0, LOAD_S(fa1, 0xffc12345); fcvt.d.s fa0, fa1)
  FD(130, D_NINF, 0, 0, 0, 0, LOAD_S(fa1, S_NINF); fcvt.d.s fa0, fa1)
  FD(131, 0x36a0000000000000, 0, 0, 0, 0, LOAD_S(fa1, S_SUB); fcvt.d.s fa0, fa1)    # subnormal -> normal
  PASS
