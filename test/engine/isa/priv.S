# Supervisor-level privileged architecture (privileged spec ch. 4, 3.3.2): synchronous
# traps with scause/sepc/stval, sret between S and U, sstatus.SPP/SPIE/SIE, U-mode
# restrictions, counter enables, access faults, and the hypervisor's SBI exit.
#include "test.h"
#define SIE  0x2
#define SPIE 0x20
#define SPP  0x100
main:
  # ---- illegal instruction: cause 2, sepc = the instruction, stval = its bits
  ILLEGAL(1, .4byte 0x1234500b)          # custom-0
  la t0, 7b
  CHECKR(2, s10, t0)
  ILLEGAL(3, .4byte 0x0000007f)          # a >32-bit length prefix is not implemented
  ILLEGAL(4, mret)
  ILLEGAL(5, .4byte 0x30200073 | (1 << 15)) # mret with rs1 != 0
  ILLEGAL(6, .4byte 0x0000707b)          # custom-3
  ILLEGAL(7, .4byte 0x00001067)          # jalr with funct3 = 1
  ILLEGAL(8, .4byte 0x00002063)          # branch funct3 = 2
  ILLEGAL(9, .4byte 0x00007003)          # load funct3 = 7
  ILLEGAL(10, .4byte 0x00004023)         # store funct3 = 4
  ILLEGAL(11, .4byte 0x4000101b)         # slliw with funct7 bit 30
  ILLEGAL(12, .4byte 0x02000033 | (1 << 30)) # OP with an unknown funct7
  ILLEGAL(13, .4byte 0x0000202f | (31 << 27)) # AMO with an unknown funct5
  # ---- ebreak: cause 3, sepc = the ebreak, stval = 0 or the pc
  TRAP_BEGIN(14)
7: ebreak
  TRAP_END(3)
  la t0, 7b
  CHECKR(15, s10, t0)
  li gp, 16
  beqz s11, 1f
  bne s11, t0, fail
1:
  # ---- a trap from S with SIE=1: SPP=1, SPIE=1, SIE=0 in the handler; sret restores
  li gp, 17
  csrw sie, zero                # no interrupt source enabled
  li t0, SIE
  csrs sstatus, t0
  li t0, SPIE
  csrc sstatus, t0
  TRAP_BEGIN(17)
  ebreak
  TRAP_END(3)
  andi a0, s6, SIE | SPIE | SPP
  CHECK(18, a0, SPIE | SPP)
  csrr a0, sstatus              # after sret: SIE = SPIE (1), SPIE = 1, SPP = U
  andi a0, a0, SIE | SPIE | SPP
  CHECK(19, a0, SIE | SPIE)
  li gp, 20                     # ... and with SIE=0
  li t0, SIE
  csrc sstatus, t0
  TRAP_BEGIN(20)
  ebreak
  TRAP_END(3)
  andi a0, s6, SIE | SPIE | SPP
  CHECK(21, a0, SPP)
  csrr a0, sstatus
  andi a0, a0, SIE | SPIE | SPP
  CHECK(22, a0, SPIE)
  # ---- sret to S-mode (SPP=1) with SPIE=0: stays in S, SIE=0, SPIE=1, SPP=0
  li gp, 23
  li t0, SPP
  csrs sstatus, t0
  li t0, SPIE
  csrc sstatus, t0
  la t0, 1f
  csrw sepc, t0
  sret
  j fail
1: csrr a0, sstatus             # an S-mode CSR read: still in S-mode
  andi a0, a0, SIE | SPIE | SPP
  CHECK(24, a0, SPIE)
  # ---- sret to U-mode, ecall from U: cause 8, sepc = the ecall, SPP = 0
  li gp, 25
  li t0, SIE
  csrs sstatus, t0
  ENTER_U(1f)
1: li a0, 123
2: ecall
  la t0, 2b
  CHECKR(26, s7, t0)
  andi a0, s6, SIE | SPIE | SPP  # in the handler: SPP = U, SPIE = the SIE of U-mode time (1)
  CHECK(27, a0, SPIE)
  li gp, 28
  li t0, SIE
  csrc sstatus, t0
  # ---- in U-mode: S-level CSRs, sret, wfi, sfence.vma are illegal; ebreak is cause 3
  U_ILLEGAL(29, csrr a0, sstatus)
  U_ILLEGAL(30, csrw sscratch, zero)
  U_ILLEGAL(31, csrr a0, satp)
  U_ILLEGAL(32, sret)
  U_ILLEGAL(33, wfi)
  U_ILLEGAL(34, sfence.vma)
  U_ILLEGAL(35, csrr a0, stimecmp)
  U_TRAP(36, 3, ebreak)
  andi a0, s6, SPP
  CHECK(37, a0, 0)              # a trap from U: SPP = 0
  # ---- counters in U-mode are gated by scounteren (CY, TM, IR)
  csrw scounteren, zero
  U_ILLEGAL(38, rdcycle a0)
  U_ILLEGAL(39, rdtime a0)
  U_ILLEGAL(40, rdinstret a0)
  li t0, 1
  csrw scounteren, t0
  li gp, 41
  ENTER_U(1f)
1: rdcycle a0
  ecall
  U_ILLEGAL(42, rdtime a0)
  li t0, 6
  csrw scounteren, t0
  li gp, 43
  ENTER_U(1f)
1: rdtime a0
  rdinstret a1
  ecall
  U_ILLEGAL(44, rdcycle a0)
  csrw scounteren, zero
  # ---- FP in U-mode follows sstatus.FS
  li gp, 45
  ENTER_U(1f)
1: fmv.d.x fa0, zero
  frflags a0
  ecall
  li t0, 0x6000
  csrc sstatus, t0
  U_ILLEGAL(46, fmv.d.x fa0, zero)
  li t0, 0x2000
  csrs sstatus, t0
  # ---- access faults: no device / beyond RAM; stval = the address
  li s1, 0x40000000
  TRAP_BEGIN(47)
  ld a0, 0(s1)
  TRAP_END(5)
  CHECKR(48, s11, s1)
  TRAP_BEGIN(49)
  sw a0, 4(s1)
  TRAP_END(7)
  addi s1, s1, 4
  CHECKR(50, s11, s1)
  li s1, 0x80000000 + (8 << 20) - 4   # the last word of RAM is fine ...
  li gp, 51
  lw a0, 0(s1)
  TRAP_BEGIN(52)
  ld a0, 0(s1)                  # ... a doubleword there crosses the end of RAM
  TRAP_END(5)
  li s1, 0x80000000 + (8 << 20)
  TRAP_BEGIN(53)
  sb a0, 0(s1)
  TRAP_END(7)
  CHECKR(54, s11, s1)
  TRAP_BEGIN(55)                # fetch from a hole: instruction access fault, stval = target
  li s1, 0x40000000
  jalr s1
  TRAP_END(1)
  CHECKR(56, s11, s1)
  CHECKR(57, s10, s1)
  # ---- ecall from S-mode leaves run() for the hypervisor's SBI (test extension: a0 + 1)
  li gp, 58
  li a7, 0x54455354
  li a6, 0
  li a0, 41
  li s1, 0x5a5a
  ecall
  CHECK(59, a0, 42)
  CHECK(60, s1, 0x5a5a)
  # ---- sepc / scause / stval are writable; sret goes to sepc
  li gp, 61
  la t0, 1f
  li t1, SPP
  csrs sstatus, t1
  csrw sepc, t0
  sret
  j fail
1: PASS
