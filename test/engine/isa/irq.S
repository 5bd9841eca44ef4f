# Supervisor interrupts (privileged spec 4.1.3, 4.1.5, 3.3.3; Sstc): sip/sie, sstatus.SIE
# and its U-mode exception, stvec direct and vectored modes, software interrupt via
# sip.SSIP, external interrupt raised by the host, the stimecmp timer and WFI, and the
# priority SEI > SSI > STI.
#include "test.h"
#define I_SSI 0x8000000000000001
#define I_STI 0x8000000000000005
#define I_SEI 0x8000000000000009
#define SSIP 0x2
#define STIP 0x20
#define SEIP 0x200
/* the harness's test SBI extension: op 1 sets sip.SEIP to a0 != 0 */
#define SET_SEIP(v) li a7, 0x54455354; li a6, 1; li a0, v; ecall
/* the interrupt log: s4 = count, s5 = next entry {scause, sstatus in the handler} */
#define LOG_RESET la s5, log; li s4, 0
#define LOG_CAUSE(n, i, cause) la t0, log; ld a0, (i) * 16(t0); CHECK(n, a0, cause)

main:
  LOG_RESET
  # ---- direct mode; SSIP pending and enabled in sie, but sstatus.SIE = 0
  la t0, direct_handler
  csrw stvec, t0
  li t0, SSIP
  csrw sie, t0
  csrsi sip, SSIP
  nop
  CHECK(1, s4, 0)
  csrr a0, sip
  andi a0, a0, SSIP
  CHECK(2, a0, SSIP)
  li gp, 3
  wfi                           # an enabled interrupt is pending: WFI does not wait
  CHECK(4, s4, 0)
  li gp, 5
  csrsi sstatus, 0x2            # SIE = 1: taken before the next instruction
1: nop
  CHECK(6, s4, 1)
  la t0, 1b
  CHECKR(7, s10, t0)
  LOG_CAUSE(8, 0, I_SSI)
  la t0, log
  ld a0, 8(t0)                  # sstatus in the handler: SPP = 1, SPIE = 1, SIE = 0
  andi a0, a0, 0x122
  CHECK(9, a0, 0x120)
  csrr a0, sstatus              # sret restored SIE
  andi a0, a0, 0x2
  CHECK(10, a0, 0x2)
  csrr a0, sip                  # the handler cleared SSIP
  andi a0, a0, SSIP
  CHECK(11, a0, 0)
  csrci sstatus, 0x2
  # ---- vectored mode: interrupts at BASE + 4 * cause, exceptions at BASE
  la t0, vec_table
  ori t0, t0, 1
  csrw stvec, t0
  csrr a0, stvec
  CHECKR(12, a0, t0)
  TRAP_BEGIN(13)
  ebreak
  TRAP_END(3)
  LOG_RESET
  csrsi sip, SSIP
  csrsi sstatus, 0x2
  nop
  CHECK(14, s4, 1)
  LOG_CAUSE(15, 0, I_SSI)
  csrci sstatus, 0x2
  # ---- external interrupt from the host; sip.SEIP is read-only
  li t0, SSIP | STIP | SEIP
  csrw sie, t0
  SET_SEIP(1)
  csrr a0, sip
  andi a0, a0, SEIP
  CHECK(16, a0, SEIP)
  li t0, SEIP
  csrc sip, t0
  csrr a0, sip
  andi a0, a0, SEIP
  CHECK(17, a0, SEIP)
  # ---- priority SEI > SSI > STI
  csrsi sip, SSIP
  csrw stimecmp, zero           # time >= 0: STIP
  csrr a0, sip
  andi a0, a0, SSIP | STIP | SEIP
  CHECK(18, a0, SSIP | STIP | SEIP)
  LOG_RESET
  csrsi sstatus, 0x2
  nop
  nop
  nop
  CHECK(19, s4, 3)
  LOG_CAUSE(20, 0, I_SEI)
  LOG_CAUSE(21, 1, I_SSI)
  LOG_CAUSE(22, 2, I_STI)
  csrci sstatus, 0x2
  SET_SEIP(0)
  csrr a0, sip
  andi a0, a0, SEIP
  CHECK(23, a0, 0)
  # ---- the stimecmp timer and WFI
  li t0, STIP
  csrw sie, t0
  LOG_RESET
  rdtime t1
  li t2, 5000
  add t1, t1, t2
  csrw stimecmp, t1
  csrr a0, sip
  andi a0, a0, STIP
  CHECK(24, a0, 0)              # not due yet
  csrsi sstatus, 0x2
  li gp, 25
1: wfi
2: beqz s4, 1b                  # (WFI may also return for no reason)
  CHECK(26, s4, 1)
  la t0, 2b
  CHECKR(27, s10, t0)           # taken after the WFI completed
  li gp, 28
  rdtime t2
  bltu t2, t1, fail             # the timer fired no earlier than stimecmp
  LOG_CAUSE(29, 0, I_STI)
  csrci sstatus, 0x2
  csrw stimecmp, zero           # STIP follows time >= stimecmp
  csrr a0, sip
  andi a0, a0, STIP
  CHECK(30, a0, STIP)
  rdtime t1
  li t2, 100000
  add t1, t1, t2
  csrw stimecmp, t1
  csrr a0, sip
  andi a0, a0, STIP
  CHECK(31, a0, 0)
  # ---- WFI with SIE = 0 wakes on an enabled pending interrupt without taking it
  LOG_RESET
  rdtime t1
  addi t1, t1, 1000
  csrw stimecmp, t1
  li gp, 32
1: wfi
  csrr a0, sip
  andi a0, a0, STIP
  beqz a0, 1b
  CHECK(33, s4, 0)
  csrsi sstatus, 0x2
  nop
  CHECK(34, s4, 1)
  LOG_CAUSE(35, 0, I_STI)
  csrci sstatus, 0x2
  # ---- in U-mode, S-level interrupts are taken whatever sstatus.SIE says
  li t0, SSIP
  csrw sie, t0
  csrsi sip, SSIP
  LOG_RESET
  li gp, 36
  ENTER_U(1f)
1: nop
  ecall
  CHECK(37, s4, 1)
  la t0, 1b
  CHECKR(38, s10, t0)
  la t0, log
  ld a0, 8(t0)
  andi a0, a0, 0x100
  CHECK(39, a0, 0)              # SPP = U
  # ---- an interrupt not enabled in sie is not taken
  csrw sie, zero
  csrsi sip, SSIP
  csrsi sstatus, 0x2
  nop
  CHECK(40, s4, 1)
  csrci sstatus, 0x2
  csrci sip, SSIP
  PASS

direct_handler:
  csrr s8, scause
  bltz s8, 1f
  j trap_handler
1: andi s8, s8, 0xff
  j irq_common

  .align 6
  .option push
  .option norvc
vec_table:
  j trap_handler                # 0: exceptions
  j vec1                        # 1: SSI
  j vec_bad
  j vec_bad
  j vec_bad
  j vec5                        # 5: STI
  j vec_bad
  j vec_bad
  j vec_bad
  j vec9                        # 9: SEI
  j vec_bad
  j vec_bad
  .option pop
vec1:
  li s8, 1
  j irq_common
vec5:
  li s8, 5
  j irq_common
vec9:
  li s8, 9
  j irq_common
vec_bad:
  j fail

/* s8 = the vector taken; log {scause, sstatus}, count, and quiet the source */
irq_common:
  csrr s9, scause
  csrr s10, sepc
  sd s9, 0(s5)
  csrr s11, sstatus
  sd s11, 8(s5)
  addi s5, s5, 16
  addi s4, s4, 1
  bltz s9, 1f
  j fail                        # not an interrupt
1: andi s11, s9, 0xff
  beq s11, s8, 1f
  j fail                        # wrong vector
1: li s11, 1
  bne s8, s11, 1f
  csrci sip, SSIP
  sret
1: li s11, 5
  bne s8, s11, 1f
  li s11, -1
  csrw stimecmp, s11
  sret
1: li s11, SEIP                 # SEI: masked until the test clears the source
  csrc sie, s11
  sret

  .data
  .align 4
log:
  .zero 16 * 16
