# RV64I base integer instruction set (unprivileged spec ch. 2 and 5), in spec order.
#include "test.h"
main:
  # ---- OP-IMM: addi slti sltiu andi ori xori (2.4.1)
  TEST_RI(1, addi, 0x0000000000000000, 0xffffffffffffffff, 1)
  TEST_RI(2, addi, 0x7fffffffffffffff, 0x8000000000000000, -1)
  TEST_RI(3, addi, 0xfffffffffffff800, 0, -2048)
  TEST_RI(4, addi, 2047, 0, 2047)
  TEST_RI(5, slti, 1, -5, -4)
  TEST_RI(6, slti, 0, -4, -4)
  TEST_RI(7, slti, 1, 0x8000000000000000, 0)
  TEST_RI(8, sltiu, 1, 5, -1)          # imm sign-extended then compared unsigned
  TEST_RI(9, sltiu, 0, 0xffffffffffffffff, -1)
  TEST_RI(10, sltiu, 1, 0, 1)          # seqz
  TEST_RI(11, andi, 0x00ff00ff00ff0ff0, 0x00ff00ff00ff0ff0, -1)
  TEST_RI(12, andi, 0x0f0, 0xff00ff00ff00fff0, 0x0ff)
  TEST_RI(13, ori, 0xfffffffffffff80f, 0x000000000000000f, -2048)
  TEST_RI(14, xori, 0xff00ff00ff00f0ff, 0x00ff00ff00ff0f00, -1) # not
  # ---- shifts by immediate, shamt up to 63
  TEST_RI(15, slli, 0x8000000000000000, 1, 63)
  TEST_RI(16, slli, 0x2468ace00, 0x12345670, 5)
  TEST_RI(17, srli, 1, 0x8000000000000000, 63)
  TEST_RI(18, srli, 0x0800000000000000, 0x8000000000000000, 4)
  TEST_RI(19, srai, 0xffffffffffffffff, 0x8000000000000000, 63)
  TEST_RI(20, srai, 0xf800000000000000, 0x8000000000000000, 4)
  TEST_RI(21, srai, 0x0123456789abcdef, 0x0123456789abcdef, 0)
  # ---- lui / auipc
  li gp, 22
  lui a0, 0x80000
  li t6, 0xffffffff80000000
  bne a0, t6, fail
  li gp, 23
  lui a0, 0x7ffff
  li t6, 0x7ffff000
  bne a0, t6, fail
  li gp, 24
1: auipc a0, 0
  la a1, 1b
  bne a0, a1, fail
  li gp, 25
2: auipc a0, 0xfffff         # pc - 0x1000
  la a1, 2b
  sub a1, a1, a0
  li t6, 0x1000
  bne a1, t6, fail
  # ---- OP: add sub slt sltu and or xor sll srl sra
  TEST_RR(26, add, 0, 0xffffffffffffffff, 1)
  TEST_RR(27, add, 0x8000000000000000, 0x7fffffffffffffff, 1)
  TEST_RR(28, sub, 0xffffffffffffffff, 0, 1)
  TEST_RR(29, sub, 0x7fffffffffffffff, 0x8000000000000000, 1)
  TEST_RR(30, slt, 1, 0x8000000000000000, 0x7fffffffffffffff)
  TEST_RR(31, slt, 0, 0x7fffffffffffffff, 0x8000000000000000)
  TEST_RR(32, sltu, 0, 0x8000000000000000, 0x7fffffffffffffff)
  TEST_RR(33, sltu, 1, 0, 0xffffffffffffffff)
  TEST_RR(34, and, 0x0f000f000f000f00, 0xff00ff00ff00ff00, 0x0f0f0f0f0f0f0f0f)
  TEST_RR(35, or, 0xff0fff0fff0fff0f, 0xff00ff00ff00ff00, 0x0f0f0f0f0f0f0f0f)
  TEST_RR(36, xor, 0xf00ff00ff00ff00f, 0xff00ff00ff00ff00, 0x0f0f0f0f0f0f0f0f)
  TEST_RR(37, sll, 0x8000000000000000, 1, 63)
  TEST_RR(38, sll, 2, 1, 65)                 # only rs2[5:0] is used
  TEST_RR(39, srl, 1, 0x8000000000000000, 63)
  TEST_RR(40, srl, 0x4000000000000000, 0x8000000000000000, 0xffffffffffffffc1)
  TEST_RR(41, sra, 0xffffffffffffffff, 0x8000000000000000, 63)
  TEST_RR(42, sra, 0xc000000000000000, 0x8000000000000000, 0x41)
  TEST_RR(43, sra, 0x3fffffffffffffff, 0x7fffffffffffffff, 1)
  # ---- RV64I W forms: results are sign-extended 32-bit values (5.2)
  TEST_RI(44, addiw, 0xffffffff80000000, 0x7fffffff, 1)
  TEST_RI(45, addiw, 0x000000007fffffff, 0xffffffff80000000, -1)
  TEST_RI(46, addiw, 0xffffffffffffffff, 0x12345678ffffffff, 0) # sext.w
  TEST_RI(47, addiw, 0x0000000000000001, 0xffffffff00000000, 1)
  TEST_RI(48, slliw, 0xffffffff80000000, 1, 31)
  TEST_RI(49, slliw, 0x0000000000000000, 0x0000000000000002, 31) # bits above 31 are dropped
  TEST_RI(50, srliw, 0x0000000000000001, 0xffffffff80000000, 31)
  TEST_RI(51, srliw, 0xffffffff80000000, 0x1234567880000000, 0)   # shift 0 still sign-extends
  TEST_RI(52, srliw, 0x0000000008000000, 0xffffffff80000000, 4)
  TEST_RI(53, sraiw, 0xffffffffffffffff, 0x0000000080000000, 31)
  TEST_RI(54, sraiw, 0xfffffffff8000000, 0x0000000080000000, 4)
  TEST_RI(55, sraiw, 0x0000000000000007, 0xffffffff7fffffff, 28)
  TEST_RR(56, addw, 0xffffffff80000000, 0x7fffffff, 1)
  TEST_RR(57, addw, 0x0000000000000000, 0xffffffffffffffff, 0x0000000100000001)
  TEST_RR(58, subw, 0x000000007fffffff, 0xffffffff80000000, 1)
  TEST_RR(59, subw, 0xffffffffffffffff, 0, 1)
  TEST_RR(60, sllw, 0xffffffff80000000, 1, 31)
  TEST_RR(61, sllw, 0x0000000000000001, 1, 32)         # only rs2[4:0]
  TEST_RR(62, srlw, 0x0000000000000001, 0x80000000, 31)
  TEST_RR(63, srlw, 0xffffffff80000000, 0x80000000, 32) # shift 0: sign-extended
  TEST_RR(64, srlw, 0x0000000000ffffff, 0xffffffffffffffff, 40)
  TEST_RR(65, sraw, 0xffffffffffffffff, 0x80000000, 31)
  TEST_RR(66, sraw, 0xffffffffff000000, 0x0000000080000000, 7)
  TEST_RR(67, sraw, 0x0000000000000001, 0xfffffffe40000000, 62) # rs2 & 31 = 30
  # ---- loads sign/zero extend, stores write only their bytes (2.6)
  la s0, data
  li gp, 68
  lb a0, 0(s0)
  li t6, 0xffffffffffffff81
  bne a0, t6, fail
  li gp, 69
  lbu a0, 0(s0)
  li t6, 0x81
  bne a0, t6, fail
  li gp, 70
  lh a0, 2(s0)
  li t6, 0xffffffffffff8483
  bne a0, t6, fail
  li gp, 71
  lhu a0, 2(s0)
  li t6, 0x8483
  bne a0, t6, fail
  li gp, 72
  lw a0, 4(s0)
  li t6, 0xffffffff88878685
  bne a0, t6, fail
  li gp, 73
  lwu a0, 4(s0)
  li t6, 0x88878685
  bne a0, t6, fail
  li gp, 74
  ld a0, 0(s0)
  li t6, 0x8887868584838281
  bne a0, t6, fail
  li gp, 75
  lb a0, 8(s0)                # positive byte
  li t6, 0x7f
  bne a0, t6, fail
  li gp, 76                   # negative offset
  la s1, data + 16
  lb a0, -1(s1)
  li t6, 0x10
  bne a0, t6, fail
  li gp, 77
  li a1, 0x1122334455667788
  sd a1, 16(s0)
  li a2, 0xaa
  sb a2, 16(s0)
  li a2, 0xbbcc
  sh a2, 18(s0)
  ld a0, 16(s0)
  li t6, 0x11223344bbcc77aa
  bne a0, t6, fail
  li gp, 78
  li a2, 0xdeadbeefcafef00d
  sw a2, 20(s0)
  ld a0, 16(s0)
  li t6, 0xcafef00dbbcc77aa
  bne a0, t6, fail
  li gp, 79                   # misaligned load and store inside a page (EEI: done by the engine)
  li a1, 0x0123456789abcdef
  sd a1, 25(s0)
  ld a0, 25(s0)
  bne a0, a1, fail
  li gp, 80
  lw a0, 27(s0)
  li t6, 0x456789ab
  bne a0, t6, fail
  li gp, 81                   # misaligned across a page boundary
  la s1, cross
  sd a1, -3(s1)
  ld a0, -3(s1)
  bne a0, a1, fail
  li gp, 82
  lhu a0, -1(s1)
  li t6, 0x89ab
  bne a0, t6, fail
  # ---- branches, both ways (2.5)
  li a1, -1
  li a2, 1
  li gp, 83
  beq a1, a1, 1f
  j fail
1: li gp, 84
  beq a1, a2, fail
  li gp, 85
  bne a1, a2, 1f
  j fail
1: li gp, 86
  bne a1, a1, fail
  li gp, 87
  blt a1, a2, 1f             # -1 < 1 signed
  j fail
1: li gp, 88
  blt a2, a1, fail
  li gp, 89
  blt a2, a2, fail
  li gp, 90
  bge a2, a1, 1f
  j fail
1: li gp, 91
  bge a1, a1, 1f             # equal
  j fail
1: li gp, 92
  bge a1, a2, fail
  li gp, 93
  bltu a2, a1, 1f            # 1 < 2^64-1 unsigned
  j fail
1: li gp, 94
  bltu a1, a2, fail
  li gp, 95
  bgeu a1, a2, 1f
  j fail
1: li gp, 96
  bgeu a2, a1, fail
  li gp, 97
  bgeu a2, a2, 1f
  j fail
1: li gp, 98                 # backward taken branch: loop 5 times
  li a0, 0
  li a1, 5
2: addi a0, a0, 1
  bne a0, a1, 2b
  li t6, 5
  bne a0, t6, fail
  # ---- jal / jalr (2.5)
  li gp, 99
  jal ra, 1f
3: j fail
1: la t6, 3b
  bne ra, t6, fail
  li gp, 100
  la a1, 1f + 1              # odd target: bit 0 is cleared
  jalr ra, 0(a1)
  j fail
  .align 2
1: li gp, 101
  la a1, 1f - 3
  jalr zero, 3(a1)           # odd offset: (rs1 + 3) & ~1
  j fail
  .align 2
1: li gp, 102
  la a1, 1f
  jalr a1, 0(a1)             # rd == rs1: target uses the old value
4: j fail
1: la t6, 4b
  bne a1, t6, fail
  li gp, 103
  la a1, 1f + 16
  jalr ra, -16(a1)
5: j fail
1: la t6, 5b
  bne ra, t6, fail
  # ---- x0 is hard-wired to zero
  li gp, 104
  li a1, 5
  addi zero, a1, 1
  add zero, a1, a1
  lw zero, 0(s0)
  lui zero, 1
  jal zero, 1f
1: bnez zero, fail
  # ---- fence, fence.i, and self-modifying code made visible by fence.i (ch. 3)
  li gp, 105
  fence
  fence rw, rw
  fence.i
  la a1, smc
  li a2, 0x02a00513          # addi a0, zero, 42
  sw a2, 0(a1)
  fence.i
  li a0, 0
  jal ra, smc
  li t6, 42
  bne a0, t6, fail
  li a2, 0x00700513          # addi a0, zero, 7
  sw a2, 0(a1)
  fence.i
  jal ra, smc
  li t6, 7
  bne a0, t6, fail
  PASS

  .align 2
smc:
  .option push
  .option norvc
  nop
  ret
  .option pop

  .data
  .align 3
data:
  .byte 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88
  .byte 0x7f, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10
  .zero 48
  .align 12
  .zero 4096 - 16
  .zero 16
cross:                        # a page boundary
  .zero 64
