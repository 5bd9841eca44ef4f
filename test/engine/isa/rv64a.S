# A extension (unprivileged spec ch. 8): LR/SC and every AMO in .w and .d forms.
# .w results are the old memory word sign-extended to 64 bits.
#include "test.h"

/* AMO_W(n, op, mem_before, rs2, expected_rd, expected_mem_word) */
#define AMO_W(n, op, mem, src, exp_rd, exp_mem) \
  li gp, n; li t0, mem; sw t0, 0(s0); li t1, 0x5a5a5a5a; sw t1, 4(s0); li a1, src; \
  op a0, a1, (s0); li t6, exp_rd; beq a0, t6, 8f; j fail; 8: \
  lwu a0, 0(s0); li t6, exp_mem; beq a0, t6, 8f; j fail; 8: \
  lwu a0, 4(s0); beq a0, t1, 8f; j fail; 8:
#define AMO_D(n, op, mem, src, exp_mem) \
  li gp, n; li t0, mem; sd t0, 0(s0); li a1, src; \
  op a0, a1, (s0); beq a0, t0, 8f; j fail; 8: \
  ld a0, 0(s0); li t6, exp_mem; beq a0, t6, 8f; j fail; 8:

main:
  la s0, word
  # ---- LR.W / SC.W
  li gp, 1
  li t0, 0x80000001
  sw t0, 0(s0)
  lr.w a0, (s0)
  li t6, 0xffffffff80000001    # sign-extended
  bne a0, t6, fail
  li gp, 2
  li a1, 0x1234
  sc.w a2, a1, (s0)
  bnez a2, fail                # success writes 0
  lw a0, 0(s0)
  bne a0, a1, fail
  li gp, 3                     # a second SC without a new LR fails and writes nothing
  li a1, 0x5678
  sc.w a2, a1, (s0)
  beqz a2, fail
  lw a0, 0(s0)
  li t6, 0x1234
  bne a0, t6, fail
  li gp, 4                     # SC to an address outside the reservation set fails
  lr.w a0, (s0)
  addi s1, s0, 8
  sc.w a2, a1, (s1)
  beqz a2, fail
  lw a0, 8(s0)
  bnez a0, fail
  li gp, 5                     # ... and also invalidated the reservation
  sc.w a2, a1, (s0)
  beqz a2, fail
  li gp, 6                     # aq/rl variants; an LR/SC increment loop
  li t0, 10
  sw t0, 0(s0)
1: lr.w.aq a0, (s0)
  addi a0, a0, 1
  sc.w.rl a2, a0, (s0)
  bnez a2, 1b
  lw a0, 0(s0)
  li t6, 11
  bne a0, t6, fail
  # ---- LR.D / SC.D
  li gp, 7
  li t0, 0x8000000000000001
  sd t0, 0(s0)
  lr.d a0, (s0)
  bne a0, t0, fail
  li gp, 8
  li a1, 0x123456789abcdef0
  sc.d a2, a1, (s0)
  bnez a2, fail
  ld a0, 0(s0)
  bne a0, a1, fail
  li gp, 9
  sc.d a2, t0, (s0)
  beqz a2, fail
  ld a0, 0(s0)
  bne a0, a1, fail
  li gp, 10                    # a trap between LR and SC clears the reservation
  lr.d a0, (s0)
  TRAP_BEGIN(10)
  ebreak
  TRAP_END(3)
  li gp, 11
  sc.d a2, t0, (s0)
  beqz a2, fail
  # ---- AMO*.W
  AMO_W(12, amoswap.w, 0x80000000, 0x11111111, 0xffffffff80000000, 0x11111111)
  AMO_W(13, amoadd.w, 0x7fffffff, 1, 0x7fffffff, 0x80000000)
  AMO_W(14, amoadd.w, 0xffffffff, 0x100000002, 0xffffffffffffffff, 1) # carry does not leave the word
  AMO_W(15, amoxor.w, 0xff00ff00, 0x0ff00ff0, 0xffffffffff00ff00, 0xf0f0f0f0)
  AMO_W(16, amoand.w, 0xff00ff00, 0x0ff00ff0, 0xffffffffff00ff00, 0x0f000f00)
  AMO_W(17, amoor.w, 0xff00ff00, 0x0ff00ff0, 0xffffffffff00ff00, 0xfff0fff0)
  AMO_W(18, amomin.w, 0x80000000, 1, 0xffffffff80000000, 0x80000000)
  AMO_W(19, amomin.w, 5, 0xfffffffffffffffe, 5, 0xfffffffe)
  AMO_W(20, amomin.w, 5, 0x100000003, 5, 3)               # compares the low words only
  AMO_W(21, amomax.w, 0x80000000, 1, 0xffffffff80000000, 1)
  AMO_W(22, amomax.w, 0xfffffffe, 0xffffffffffffffff, 0xfffffffffffffffe, 0xffffffff)
  AMO_W(23, amominu.w, 0x80000000, 1, 0xffffffff80000000, 1)
  AMO_W(24, amominu.w, 1, 0xffffffff80000000, 1, 1)
  AMO_W(25, amomaxu.w, 0x80000000, 1, 0xffffffff80000000, 0x80000000)
  AMO_W(26, amomaxu.w, 1, 0xffffffff, 1, 0xffffffff)
  AMO_W(27, amoadd.w.aqrl, 0xfffffff0, 0x20, 0xfffffffffffffff0, 0x10)
  # ---- AMO*.D
  AMO_D(28, amoswap.d, 0x8000000000000000, 0x1111111111111111, 0x1111111111111111)
  AMO_D(29, amoadd.d, 0x7fffffffffffffff, 1, 0x8000000000000000)
  AMO_D(30, amoxor.d, 0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0, 0xf0f0f0f0f0f0f0f0)
  AMO_D(31, amoand.d, 0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0, 0x0f000f000f000f00)
  AMO_D(32, amoor.d, 0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0, 0xfff0fff0fff0fff0)
  AMO_D(33, amomin.d, 0x8000000000000000, 1, 0x8000000000000000)
  AMO_D(34, amomin.d, 1, 0xffffffffffffffff, 0xffffffffffffffff)
  AMO_D(35, amomax.d, 0x8000000000000000, 1, 1)
  AMO_D(36, amomax.d, 0xfffffffffffffffe, 0xffffffffffffffff, 0xffffffffffffffff)
  AMO_D(37, amominu.d, 0x8000000000000000, 1, 1)
  AMO_D(38, amominu.d, 1, 0x8000000000000000, 1)
  AMO_D(39, amomaxu.d, 0x8000000000000000, 1, 0x8000000000000000)
  AMO_D(40, amomaxu.d, 0x7fffffffffffffff, 0x8000000000000000, 0x8000000000000000)
  # ---- rd = x0 still updates memory; rd == rs2 gets the old value
  li gp, 41
  li t0, 5
  sd t0, 0(s0)
  li a1, 3
  amoadd.d zero, a1, (s0)
  ld a0, 0(s0)
  li t6, 8
  bne a0, t6, fail
  li gp, 42
  amoswap.d a1, a1, (s0)
  li t6, 8
  bne a1, t6, fail
  ld a0, 0(s0)
  li t6, 3
  bne a0, t6, fail
  # ---- misaligned atomics raise address-misaligned with stval = address (8.2, 8.4)
  la s1, word + 2
  TRAP_BEGIN(44)
  amoadd.w a0, a1, (s1)
  TRAP_END(6)
  CHECKR(45, s11, s1)
  TRAP_BEGIN(46)
  amoswap.d a0, a1, (s1)
  TRAP_END(6)
  la s1, word + 4
  TRAP_BEGIN(47)
  amoor.d a0, a1, (s1)
  TRAP_END(6)
  TRAP_BEGIN(48)
  lr.d a0, (s1)
  TRAP_END(4)
  CHECKR(49, s11, s1)
  la s1, word + 1
  TRAP_BEGIN(50)
  lr.w a0, (s1)
  TRAP_END(4)
  TRAP_BEGIN(51)
  sc.w a0, a1, (s1)
  TRAP_END(6)
  li gp, 52                    # memory is untouched by the faulting AMOs
  la s1, word
  ld a0, 0(s1)
  li t6, 3
  bne a0, t6, fail
  # ---- AMO to a device that does not support atomics: store/AMO access fault
  li s1, TESTDEV + 8
  TRAP_BEGIN(53)
  amoadd.w a0, a1, (s1)
  TRAP_END(7)
  CHECKR(54, s11, s1)
  PASS

  .data
  .align 4
word:
  .zero 32
