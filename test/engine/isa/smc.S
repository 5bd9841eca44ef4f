# Self-modifying and cross-page code (Zifencei, unprivileged spec ch. 3): code run often
# enough to be translated by the JIT, then rewritten by a store (and by an AMO) and
# fenced, must run as rewritten; a block may not run past the end of its page.
#include "test.h"
main:
  # ---- 1: f returns 1; call it 200 times so it is hot
  li s0, 200
1:
  call f
  addi s0, s0, -1
  bnez s0, 1b
  CHECK(1, a0, 1)
  # ---- 2: rewrite f's first instruction to "li a0, 2" with a store; fence.i; call
  la t0, f
  la t1, li_a0_2
  lw t1, 0(t1)
  sw t1, 0(t0)
  fence.i
  call f
  CHECK(2, a0, 2)
  # ---- 3: hot again, then rewrite with an AMO (amoswap) to "li a0, 3"
  li s0, 200
1:
  call f
  addi s0, s0, -1
  bnez s0, 1b
  CHECK(3, a0, 2)
  la t0, f
  la t1, li_a0_3
  lw t1, 0(t1)
  amoswap.w zero, t1, (t0)
  fence.i
  call f
  CHECK(4, a0, 3)
  # ---- 5: a loop whose body is rewritten while it is hot (the loop counts in a1)
  li a1, 0
  li s0, 300
1:
  call g
  addi s0, s0, -1
  bnez s0, 1b
  CHECK(5, a1, 300)
  la t0, g
  la t1, addi_a1_a1_10
  lw t1, 0(t1)
  sw t1, 0(t0)
  fence.i
  li a1, 0
  li s0, 5
1:
  call g
  addi s0, s0, -1
  bnez s0, 1b
  CHECK(6, a1, 50)
  # ---- 7: code that runs across a page boundary
  li s0, 100
  li a0, 0
1:
  call h
  addi s0, s0, -1
  bnez s0, 1b
  CHECK(7, a0, 300)
  PASS

  .balign 4
  .option push
  .option norvc
li_a0_2: li a0, 2
li_a0_3: li a0, 3
addi_a1_a1_10: addi a1, a1, 10
  .option pop

  .balign 4
f:
  .option push
  .option norvc
  li a0, 1
  .option pop
  ret

  .balign 4
g:
  .option push
  .option norvc
  addi a1, a1, 1
  .option pop
  ret

  # h: three increments, the second and third on the next page
  .balign 4096
  .skip 4096 - 8
h:
  .option push
  .option norvc
  addi a0, a0, 1
  addi a0, a0, 1
  addi a0, a0, 1
  .option pop
  ret
