# Zicsr (unprivileged spec ch. 9), the counters (ch. 10), the FP CSRs (11.2) and the
# WARL rules of the supervisor CSRs (privileged spec 4.1).
#include "test.h"

main:
  # ---- csrrw / csrrs / csrrc and the immediate forms
  li gp, 1
  li a1, 0x1234
  csrw sscratch, a1
  li a2, 0x8765
  csrrw a0, sscratch, a2
  bne a0, a1, fail
  csrr a0, sscratch
  bne a0, a2, fail
  li gp, 2
  li a1, 0xff000000000000f0
  csrw sscratch, a1
  li a2, 0x0f0f
  csrrs a0, sscratch, a2
  bne a0, a1, fail
  csrr a0, sscratch
  li t6, 0xff00000000000fff
  bne a0, t6, fail
  li gp, 3
  li a2, 0xff000000000000ff
  csrrc a0, sscratch, a2
  li t6, 0xff00000000000fff
  bne a0, t6, fail
  csrr a0, sscratch
  li t6, 0xf00
  bne a0, t6, fail
  li gp, 4
  csrrwi a0, sscratch, 31
  li t6, 0xf00
  bne a0, t6, fail
  csrr a0, sscratch
  li t6, 31
  bne a0, t6, fail
  li gp, 5
  csrrci a0, sscratch, 5
  csrr a0, sscratch
  li t6, 26
  bne a0, t6, fail
  csrrsi a0, sscratch, 1
  csrr a0, sscratch
  li t6, 27
  bne a0, t6, fail
  li gp, 6                      # csrrwi with 0 writes 0
  csrrwi a0, sscratch, 0
  csrr a0, sscratch
  bnez a0, fail
  li gp, 7                      # rd == rs1: old value to rd, new value from the old rs1
  li a0, 77
  csrw sscratch, a0
  li a0, 99
  csrrw a0, sscratch, a0
  li t6, 77
  bne a0, t6, fail
  csrr a0, sscratch
  li t6, 99
  bne a0, t6, fail
  # ---- counters (Zicntr): readable in S-mode, read-only
  li gp, 8
  rdinstret a0
  nop
  nop
  nop
  rdinstret a1
  sub a1, a1, a0
  li t6, 4
  bne a1, t6, fail
  li gp, 9
  rdcycle a0
  nop
  rdcycle a1
  bgeu a0, a1, fail
  li gp, 10
  rdtime a0
  nop
  rdtime a1
  bltu a1, a0, fail
  ILLEGAL(11, csrw cycle, zero)
  ILLEGAL(12, csrrwi a0, instret, 0)
  li a5, 0
  ILLEGAL(13, csrrs a0, time, a5)
  ILLEGAL(14, csrrc a0, cycle, a5)   # rs1 != x0 is a write even when the value is 0
  li gp, 15                     # csrrs/csrrsi/csrrci with x0 / 0 do not write: allowed
  csrrs a0, cycle, zero
  csrrsi a0, instret, 0
  csrrci a0, time, 0
  # ---- CSRs of other privilege levels or not implemented
  ILLEGAL(16, csrr a0, mstatus)
  ILLEGAL(17, csrw mtvec, a0)
  ILLEGAL(18, csrr a0, 0x600)   # hstatus
  ILLEGAL(19, csrr a0, 0x7c0)   # custom M-level
  ILLEGAL(20, csrr a0, 0x5ff)   # unimplemented S-level
  # ---- fflags / frm / fcsr (11.2)
  li gp, 21
  csrw fcsr, zero
  li a1, 0xffffffff
  csrrw a0, fcsr, a1
  bnez a0, fail
  csrr a0, fcsr
  li t6, 0xff                   # bits 31:8 are read-only zero
  bne a0, t6, fail
  li gp, 22
  csrr a0, fflags
  li t6, 0x1f
  bne a0, t6, fail
  csrr a0, frm
  li t6, 7
  bne a0, t6, fail
  li gp, 23
  csrwi frm, 3                  # RUP
  csrr a0, fcsr
  li t6, 0x7f
  bne a0, t6, fail
  li gp, 24
  csrci fflags, 0x15
  csrr a0, fcsr
  li t6, 0x6a
  bne a0, t6, fail
  li gp, 25
  li a1, 0xff
  csrw fflags, a1               # only bits 4:0
  csrr a0, fflags
  li t6, 0x1f
  bne a0, t6, fail
  li gp, 26
  fsflags a0, zero              # swap: returns old flags
  li t6, 0x1f
  bne a0, t6, fail
  frflags a0
  bnez a0, fail
  li gp, 27
  fsrmi a0, 1                   # returns old frm (3)
  li t6, 3
  bne a0, t6, fail
  frrm a0
  li t6, 1
  bne a0, t6, fail
  # ---- reserved rounding modes: static 5, 6 and dynamic with frm = 5, 6, 7 are illegal
  csrwi frm, 0
  ILLEGAL(28, .4byte 0x02b5d553) # fadd.d fa0, fa1, fa1 with rm = 5
  ILLEGAL(29, .4byte 0x02b5e553) # rm = 6
  csrwi frm, 5
  ILLEGAL(30, fadd.d fa0, fa1, fa1, dyn)
  csrwi frm, 7
  ILLEGAL(31, fmul.s fa0, fa1, fa1, dyn)
  li gp, 32                     # a static rounding mode works whatever frm holds
  fadd.d fa0, fa1, fa1, rne
  li gp, 33                     # fmv/fsgnj/fle do not round: legal with a bad frm
  fmv.d fa0, fa1
  fle.d a0, fa1, fa1
  csrwi frm, 0
  # ---- sstatus.FS: Off makes FP instructions and CSRs illegal; writes make it Dirty (SD)
  li gp, 34
  li t0, 0x6000
  csrc sstatus, t0              # FS = Off
  csrr a0, sstatus
  and a0, a0, t0
  bnez a0, fail
  ILLEGAL(35, csrr a0, fflags)
  ILLEGAL(36, csrw frm, zero)
  ILLEGAL(37, csrr a0, fcsr)
  ILLEGAL(38, fadd.d fa0, fa1, fa2)
  ILLEGAL(39, fld fa0, 0(sp))
  ILLEGAL(40, fsd fa0, 0(sp))
  ILLEGAL(41, fmv.x.d a0, fa0)
  ILLEGAL(42, fmv.w.x fa0, zero)
  ILLEGAL(43, c.fldsp fa0, 0(sp))
  li gp, 44
  li t0, 0x2000                 # FS = Initial
  csrs sstatus, t0
  csrr a0, sstatus
  bltz a0, fail                 # SD clear
  fmv.d.x fa0, zero             # writes an f register: Dirty
  csrr a0, sstatus
  srli a1, a0, 13
  andi a1, a1, 3
  li t6, 3
  bne a1, t6, fail
  bgez a0, fail                 # SD set
  li gp, 45
  li t0, 0x6000
  csrc sstatus, t0
  li t0, 0x4000                 # FS = Clean
  csrs sstatus, t0
  fsflags zero                  # an fcsr write: Dirty
  csrr a0, sstatus
  srli a1, a0, 13
  andi a1, a1, 3
  li t6, 3
  bne a1, t6, fail
  li gp, 54                     # an instruction that only sets fflags also makes FS Dirty
  li t0, 0x6000
  csrc sstatus, t0
  li t0, 0x4000                 # FS = Clean
  csrs sstatus, t0
  li t0, 0x7fc00000
  fmv.w.x fa1, t0               # (makes FS Dirty: set Clean again below)
  li t0, 0x6000
  csrc sstatus, t0
  li t0, 0x4000
  csrs sstatus, t0
  flt.s a0, fa1, fa1            # quiet NaN: NV, writes only x registers and fflags
  csrr a0, sstatus
  srli a1, a0, 13
  andi a1, a1, 3
  CHECK(55, a1, 3)
  li gp, 46                     # SD and UXL are read-only
  csrr a1, sstatus
  li t0, 0x6000
  csrc sstatus, t0
  li t0, 0x8000000300000000
  csrc sstatus, t0
  csrr a0, sstatus
  srli a0, a0, 32
  andi a0, a0, 3
  li t6, 2                      # UXL = 64
  bne a0, t6, fail
  csrr a0, sstatus
  bltz a0, fail                 # FS = Off: SD reads 0
  li t0, 0x2000
  csrs sstatus, t0
  # ---- WARL fields of the supervisor CSRs
  li gp, 47
  li a1, -1
  csrw sie, a1
  csrr a0, sie
  li t6, 0x222                  # SSIE, STIE, SEIE only
  bne a0, t6, fail
  csrw sie, zero
  li gp, 48
  li a1, 0x80001235
  csrw sepc, a1                 # IALIGN = 16: bit 0 reads 0
  csrr a0, sepc
  li t6, 0x80001234
  bne a0, t6, fail
  li gp, 49
  csrr s3, satp
  li a1, (10 << 60) | 0x80123   # Sv57: unsupported, the write has no effect
  csrw satp, a1
  csrr a0, satp
  bne a0, s3, fail
  li gp, 50
  li a1, -1
  csrw scounteren, a1
  csrr a0, scounteren
  andi a0, a0, 7
  li t6, 7
  bne a0, t6, fail
  li gp, 51
  csrr s3, stvec
  li a1, 0x80004002             # mode 2 is reserved: a legal value reads back
  csrw stvec, a1
  csrr a0, stvec
  andi a0, a0, 3
  li t6, 2
  beq a0, t6, fail
  li t6, 3
  beq a0, t6, fail
  csrw stvec, s3
  li gp, 52
  li a1, 0x123456789
  csrw stimecmp, a1
  csrr a0, stimecmp
  bne a0, a1, fail
  li a1, -1
  csrw stimecmp, a1
  li gp, 53                     # sip: only SSIP is writable from S-mode
  li a1, -1
  csrw sip, a1
  csrr a0, sip
  andi a0, a0, 0x222
  li t6, 2
  bne a0, t6, fail
  csrw sip, zero
  csrr a0, sip
  bnez a0, fail
  PASS
