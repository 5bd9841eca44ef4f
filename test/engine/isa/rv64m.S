# M extension (unprivileged spec ch. 7): multiply, divide, remainder, W forms,
# division by zero and signed overflow (table 7.1).
#include "test.h"
#define MIN64 0x8000000000000000
#define ALL1  0xffffffffffffffff
main:
  # ---- mul / mulh / mulhsu / mulhu
  TEST_RR(1, mul, 0x000000000011b800, 0x00007e00, 0x24)
  TEST_RR(2, mul, 0xfffffffffffffff7, 3, -3)
  TEST_RR(3, mul, MIN64, MIN64, ALL1)                 # low bits of 2^63 * -1
  TEST_RR(4, mul, 0xfdb97530eca86420, 0xfedcba9876543210, 2)
  TEST_RR(5, mulh, 0xffffffffffffffff, -1, 1)          # -1 * 1 = -1: high = -1
  TEST_RR(6, mulh, 0x4000000000000000, MIN64, MIN64)   # 2^126
  TEST_RR(7, mulh, 0x0000000000000000, -1, -1)
  TEST_RR(8, mulh, 0xc000000000000000, MIN64, 0x7fffffffffffffff) # -2^63 * (2^63-1)
  TEST_RR(9, mulhu, 0xfffffffffffffffe, ALL1, ALL1)
  TEST_RR(10, mulhu, 0x0000000000000000, ALL1, 1)
  TEST_RR(11, mulhu, 0x4000000000000000, MIN64, MIN64)
  TEST_RR(12, mulhu, 0x0000000000000001, 0x100000000, 0x100000000)
  TEST_RR(13, mulhsu, 0xffffffffffffffff, -1, 1)        # signed -1 * unsigned 1
  TEST_RR(14, mulhsu, 0xffffffffffffffff, -1, ALL1)     # -1 * (2^64-1) = -(2^64-1): high = -1
  TEST_RR(15, mulhsu, 0xc000000000000000, MIN64, MIN64) # -2^63 * 2^63 = -2^126
  TEST_RR(16, mulhsu, 0x7ffffffffffffffe, 0x7fffffffffffffff, ALL1)
  # ---- div / divu / rem / remu
  TEST_RR(17, div, 3, 20, 6)
  TEST_RR(18, div, -3, -20, 6)        # rounds toward zero
  TEST_RR(19, div, -3, 20, -6)
  TEST_RR(20, div, 3, -20, -6)
  TEST_RR(21, div, ALL1, 20, 0)       # by zero: -1
  TEST_RR(22, div, MIN64, MIN64, -1)  # overflow: dividend
  TEST_RR(23, divu, 0x2aaaaaaaaaaaaaaa, -1, 6)
  TEST_RR(24, divu, ALL1, 20, 0)      # by zero: 2^64-1
  TEST_RR(25, divu, 0, MIN64, ALL1)
  TEST_RR(26, rem, 2, 20, 6)
  TEST_RR(27, rem, -2, -20, 6)        # sign of the dividend
  TEST_RR(28, rem, 2, 20, -6)
  TEST_RR(29, rem, -2, -20, -6)
  TEST_RR(30, rem, 20, 20, 0)         # by zero: dividend
  TEST_RR(31, rem, 0, MIN64, -1)      # overflow: 0
  TEST_RR(32, remu, 3, -1, 6)         # (2^64-1) mod 6 = 3
  TEST_RR(33, remu, -20, -20, 0)
  TEST_RR(34, remu, MIN64, MIN64, ALL1)
  # ---- W forms: 32-bit operands, sign-extended results
  TEST_RR(35, mulw, 0xffffffff80000000, 0x40000000, 2)
  TEST_RR(36, mulw, 0x0000000000000001, 0xdeadbeefffffffff, 0x12345678ffffffff) # -1 * -1
  TEST_RR(37, mulw, 0x0000000000000000, 0x100000000, 5)
  TEST_RR(38, divw, 0xfffffffffffffffd, 20, -6)
  TEST_RR(39, divw, ALL1, 20, 0x100000000)              # divisor's low word is 0
  TEST_RR(40, divw, 0xffffffff80000000, 0x80000000, -1) # overflow: dividend, sign-extended
  TEST_RR(41, divw, 3, 0xffffffff00000014, 6)           # upper bits ignored
  TEST_RR(42, divuw, 0x0000000000000005, 20, 4)
  TEST_RR(43, divuw, 0xffffffffffffffff, 20, 0)         # by zero: 2^32-1 sign-extended
  TEST_RR(44, divuw, 0x000000002aaaaaaa, -1, 6)
  TEST_RR(45, divuw, 0xffffffff80000000, 0x80000000, 1) # result sign-extended
  TEST_RR(46, remw, 0xfffffffffffffffe, -20, 6)
  TEST_RR(47, remw, 0xffffffff80000000, 0x80000000, 0)  # by zero: dividend, sign-extended
  TEST_RR(48, remw, 0, 0x80000000, -1)                  # overflow: 0
  TEST_RR(49, remw, 0x0000000000000014, 0x1234567800000014, 0)
  TEST_RR(50, remuw, 3, -1, 6)
  TEST_RR(51, remuw, 0xffffffff80000001, 0x80000001, 0) # by zero: dividend, sign-extended
  TEST_RR(52, remuw, 0xffffffff80000000, 0x80000000, 0x90000000)
  # ---- rd aliases a source
  li gp, 53
  li a0, 7
  mul a0, a0, a0
  li t6, 49
  bne a0, t6, fail
  li gp, 54
  li a0, 100
  li a1, 7
  rem a1, a0, a1
  li t6, 2
  bne a1, t6, fail
  PASS
