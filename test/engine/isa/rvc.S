# C extension (unprivileged spec ch. 16, RV64C): every compressed instruction,
# with the extreme immediates of each format, and the reserved encodings.
#include "test.h"
main:
  la s0, buf                    # x8: base for the CL/CS formats
  mv s2, sp                     # keep the stack pointer
  la sp, buf                    # sp-relative forms use buf too
  # ---- quadrant 0
  li gp, 1
  c.addi4spn a0, sp, 1020       # nzuimm max
  la t6, buf + 1020
  bne a0, t6, fail
  li gp, 2
  c.addi4spn a5, sp, 4
  la t6, buf + 4
  bne a5, t6, fail
  li gp, 3
  li t0, 0x80000000fffffffe
  sd t0, 120(s0)
  c.lw a0, 124(s0)              # uimm max 124, sign-extends
  li t6, 0xffffffff80000000
  bne a0, t6, fail
  c.lw a1, 120(s0)
  li t6, -2
  bne a1, t6, fail
  li gp, 4
  li t0, 0x0123456789abcdef
  sd t0, 248(s0)
  c.ld a2, 248(s0)              # uimm max 248
  bne a2, t0, fail
  li gp, 5
  li a3, 0x55aa55aa
  c.sw a3, 124(s0)
  ld a0, 120(s0)
  li t6, 0x55aa55aafffffffe
  bne a0, t6, fail
  li gp, 6
  li a3, 0xfedcba9876543210
  c.sd a3, 0(s0)
  ld a0, 0(s0)
  bne a0, a3, fail
  li gp, 7
  li t0, 0x400921fb54442d18     # pi
  sd t0, 240(s0)
  c.fld fa0, 240(s0)
  fmv.x.d a0, fa0
  bne a0, t0, fail
  li gp, 8
  c.fsd fa0, 8(s0)
  ld a0, 8(s0)
  bne a0, t0, fail
  # ---- quadrant 1
  li gp, 9
  li a0, 5
  c.nop
  c.addi a0, -32                # nzimm min
  li t6, -27
  bne a0, t6, fail
  c.addi a0, 31
  li t6, 4
  bne a0, t6, fail
  li gp, 10
  li a0, 0x7fffffff
  c.addiw a0, 1                 # sign-extends
  li t6, 0xffffffff80000000
  bne a0, t6, fail
  li a0, 0x1234567800000000
  c.addiw a0, 0                 # sext.w
  bnez a0, fail
  li a0, 0
  c.addiw a0, -32
  li t6, -32
  bne a0, t6, fail
  li gp, 11
  c.li a0, -32
  li t6, -32
  bne a0, t6, fail
  c.li a1, 31
  li t6, 31
  bne a1, t6, fail
  li gp, 12
  la sp, buf + 1024
  c.addi16sp sp, -512           # nzimm min
  la t6, buf + 512
  bne sp, t6, fail
  c.addi16sp sp, 496            # nzimm max
  la t6, buf + 1008
  bne sp, t6, fail
  c.addi16sp sp, 16
  la t6, buf + 1024
  bne sp, t6, fail
  la sp, buf
  li gp, 13
  c.lui a0, 0xfffe0             # nzimm = -32 << 12, sign-extended to 64 bits
  li t6, 0xfffffffffffe0000
  bne a0, t6, fail
  c.lui a1, 31
  li t6, 0x1f000
  bne a1, t6, fail
  c.lui a2, 1
  li t6, 0x1000
  bne a2, t6, fail
  li gp, 14
  li a0, 0x8000000000000000
  c.srli a0, 63                 # shamt[5] = 1
  li t6, 1
  bne a0, t6, fail
  li a0, 0xf0
  c.srli a0, 4
  li t6, 0xf
  bne a0, t6, fail
  li gp, 15
  li a0, 0x8000000000000000
  c.srai a0, 63
  li t6, -1
  bne a0, t6, fail
  li a0, 0x8000000000000000
  c.srai a0, 32
  li t6, 0xffffffff80000000
  bne a0, t6, fail
  li a0, 0x40
  c.srai a0, 3
  li t6, 8
  bne a0, t6, fail
  li gp, 16
  li a0, 0x1234
  c.andi a0, -32                # imm sign-extended: ~0x1f
  li t6, 0x1220
  bne a0, t6, fail
  li a0, 0xffffffffffffffff
  c.andi a0, 31
  li t6, 31
  bne a0, t6, fail
  li a0, 0xffffffffffffffff
  c.andi a0, 0
  bnez a0, fail
  li gp, 17
  li a0, 10
  li a1, 12
  c.sub a0, a1
  li t6, -2
  bne a0, t6, fail
  li a0, 0xff00
  li a1, 0x0ff0
  c.xor a0, a1
  li t6, 0xf0f0
  bne a0, t6, fail
  li a0, 0xff00
  c.or a0, a1
  li t6, 0xfff0
  bne a0, t6, fail
  li a0, 0xff00
  c.and a0, a1
  li t6, 0x0f00
  bne a0, t6, fail
  li gp, 18
  li a0, 0x80000000
  li a1, 1
  c.subw a0, a1
  li t6, 0x7fffffff
  bne a0, t6, fail
  li a0, 0x7fffffff
  c.addw a0, a1
  li t6, 0xffffffff80000000
  bne a0, t6, fail
  li a0, 0x1ffffffff
  c.addw a0, a1
  bnez a0, fail
  li gp, 19                     # c.j forward and backward
  c.j 2f
1: c.j 3f
  j fail
2: c.j 1b
  j fail
3: li gp, 20                    # c.j with the largest forward and backward offsets
  c.j 1f                        # +2046
  .fill 1022, 2, 0
1: j 5f
  .option push
  .option norvc
6: j 7f
  .option pop
  .fill 1022, 2, 0
5: c.j 6b                       # -2048
  j fail
7:
  li gp, 21
  li a0, 0
  c.beqz a0, 1f
  j fail
1: li a0, 1
  c.beqz a0, fail_near
  li gp, 22
  c.bnez a0, 1f
  j fail
1: li a0, 0
  c.bnez a0, fail_near
  li gp, 23                     # backward c.bnez loop
  li a0, 3
  li a1, 0
1: addi a1, a1, 1
  addi a0, a0, -1
  c.bnez a0, 1b
  li t6, 3
  bne a1, t6, fail
  # ---- quadrant 2
  li gp, 24
  li a0, 1
  c.slli a0, 63
  li t6, 0x8000000000000000
  bne a0, t6, fail
  li a0, 3
  c.slli a0, 4
  li t6, 0x30
  bne a0, t6, fail
  li gp, 25
  li t0, 0x3ff0000000000000
  sd t0, 504(sp)
  c.fldsp fa1, 504(sp)          # uimm max 504
  fmv.x.d a0, fa1
  bne a0, t0, fail
  li gp, 26
  li t0, 0x00000000fffffff0
  sd t0, 248(sp)
  c.lwsp a0, 248(sp)            # uimm max 252, sign-extends
  li t6, -16
  bne a0, t6, fail
  c.lwsp a0, 252(sp)
  bnez a0, fail
  li gp, 27
  li t0, 0x1122334455667788
  sd t0, 504(sp)
  c.ldsp a0, 504(sp)
  bne a0, t0, fail
  li gp, 28
  la a0, 1f
  c.jr a0
  j fail
1: li gp, 29
  li a0, 7
  c.mv a1, a0
  li t6, 7
  bne a1, t6, fail
  TRAP_BEGIN(30)
ebreak_at:
  c.ebreak
  TRAP_END(3)
  la a0, ebreak_at              # sepc is the c.ebreak itself
  CHECKR(31, s10, a0)
  li gp, 32
  la a0, 1f
  c.jalr a0                     # link = pc + 2
3: j fail
1: la t6, 3b
  bne ra, t6, fail
  li gp, 33
  li a0, 5
  li a1, -7
  c.add a0, a1
  li t6, -2
  bne a0, t6, fail
  li gp, 34
  li t0, 0x4000000000000000
  fmv.d.x fa2, t0
  c.fsdsp fa2, 504(sp)
  ld a0, 504(sp)
  bne a0, t0, fail
  li gp, 35
  li a0, 0x89abcdef
  c.swsp a0, 252(sp)
  lwu a1, 252(sp)
  bne a0, a1, fail
  li gp, 36
  li a0, 0xcafebabedeadbeef
  c.sdsp a0, 496(sp)
  ld a1, 496(sp)
  bne a0, a1, fail
  # ---- reserved / illegal encodings: cause 2, stval = the 16 instruction bits
  li gp, 37
  TRAP_BEGIN(37)
  .2byte 0x0000                 # all-zero: defined illegal
  TRAP_END(2)
  CHECK(38, s11, 0)
  TRAP_BEGIN(39)
  .2byte 0x4002                 # c.lwsp x0: reserved
  TRAP_END(2)
  CHECK(40, s11, 0x4002)
  TRAP_BEGIN(41)
  .2byte 0x8002                 # c.jr x0: reserved
  TRAP_END(2)
  CHECK(42, s11, 0x8002)
  TRAP_BEGIN(43)
  .2byte 0x6101                 # c.addi16sp with imm 0: reserved
  TRAP_END(2)
  TRAP_BEGIN(44)
  .2byte 0x6501                 # c.lui a0, 0: reserved
  TRAP_END(2)
  TRAP_BEGIN(45)
  .2byte 0x2001                 # c.addiw x0: reserved
  TRAP_END(2)
  TRAP_BEGIN(46)
  .2byte 0x6002                 # c.ldsp x0: reserved
  TRAP_END(2)
  TRAP_BEGIN(47)
  .2byte 0x0010                 # c.addi4spn with imm 0 (rd' != 0): reserved
  TRAP_END(2)
  CHECK(48, s11, 0x0010)
  TRAP_BEGIN(49)
  .2byte 0x9c41                 # CA format, bit 12 set, funct2 = 2: reserved
  TRAP_END(2)
  li gp, 50                     # HINT encodings execute as no-ops (16.7)
  li a0, 9
  .2byte 0x4015                 # c.li x0, 5
  .2byte 0x0005                 # c.nop 1
  .2byte 0x802a                 # c.mv x0, a0
  .2byte 0x902a                 # c.add x0, a0
  .2byte 0x0006                 # c.slli x0, 1
  .2byte 0x6005                 # c.lui x0, 1
  bnez zero, fail
  li t6, 9
  bne a0, t6, fail
  # ---- a 32-bit instruction at a 2-byte boundary that straddles a page
  li gp, 51
  la a0, straddle_end
  jalr a0
  li t6, 0x123
  bne a1, t6, fail
  mv sp, s2
  PASS

fail_near:
  j fail

  .align 12
  .zero 4096 - 8
  .option push
  .option norvc
straddle_end:
  .2byte 0x0001, 0x0001, 0x0001 # c.nop x3
  addi a1, zero, 0x123          # starts at page offset 0xffe
  ret
  .option pop

  .data
  .align 12
buf:
  .zero 2048
