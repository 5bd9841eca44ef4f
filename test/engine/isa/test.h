/*
 * Common frame of the tsvisor ISA tests (test/engine/isa/*.S).
 *
 * Each test starts in S-mode at 0x80000000 with paging off, sstatus.FS = Initial,
 * sp at the top of a 4 KiB stack and stvec at `trap_handler` (direct mode).
 * It reports through the test device at 0x100000 (QEMU virt syscon/"sifive,test"):
 * 0x5555 = pass, 0x3333 | (gp << 16) = fail, where gp holds the number of the
 * sub-test being run (set by every TEST_* / CHECK macro). After reporting it waits
 * in WFI, so run() returns HartExit.Wfi.
 *
 * Register conventions:
 *   gp       current sub-test number
 *   t6       scratch of the CHECK macros
 *   s8-s11   owned by trap_handler: s9 = scause, s10 = sepc, s11 = stval of the
 *            last trap; s8 scratch. Tests must not keep values in s8-s11.
 *
 * Expected exceptions: TRAP_BEGIN(n) stores the resume address (label 9 of the
 * TRAP_END that follows) in sscratch; the handler records the trap and returns
 * there (in the privilege the trap came from, except that an ecall from U-mode
 * returns to S-mode). A trap while sscratch is 0 is unexpected: the handler turns
 * paging off and fails the current sub-test. Interrupts are recorded (s9) and
 * counted in s7 only when the test enables them and installs its own handler.
 */
#define TESTDEV 0x100000

#define CHECK(n, reg, val)  li gp, n; li t6, val; beq reg, t6, 8f; j fail; 8:
#define CHECKR(n, reg, reg2) li gp, n; beq reg, reg2, 8f; j fail; 8:

/* rd = inst(a1 = v1, a2 = v2); rd is a0 */
#define TEST_RR(n, inst, res, v1, v2) \
  li gp, n; li a1, v1; li a2, v2; inst a0, a1, a2; li t6, res; beq a0, t6, 8f; j fail; 8:
#define TEST_RI(n, inst, res, v1, imm) \
  li gp, n; li a1, v1; inst a0, a1, imm; li t6, res; beq a0, t6, 8f; j fail; 8:

/* Expect the code between TRAP_BEGIN and TRAP_END to trap with `cause` (s9/s10/s11 hold scause/sepc/stval after). */
#define TRAP_BEGIN(n) li gp, n; li s9, -1; la t6, 9f; csrw sscratch, t6
#define TRAP_END(cause) 9: csrw sscratch, zero; li t6, cause; beq s9, t6, 8f; j fail; 8:

#define PASS j pass

  .section .text.init
  .globl _start
_start:
  la t0, trap_handler
  csrw stvec, t0
  csrw sscratch, zero
  li t0, 0x2000            /* sstatus.FS = Initial */
  csrs sstatus, t0
  la sp, stack_top
  li gp, 0
  j main

  .align 2
  .globl trap_handler
trap_handler:
  csrr s9, scause
  csrr s10, sepc
  csrr s11, stval
  csrrw s8, sscratch, zero
  beqz s8, unexpected_trap
  csrw sepc, s8
  li s8, 8
  bne s9, s8, 1f
  li s8, 0x100             /* ecall from U: return to S-mode */
  csrs sstatus, s8
1:
  sret

unexpected_trap:
  csrw satp, zero
  sfence.vma
  /* fall through */
  .globl fail
fail:
  li t0, TESTDEV
  slli t1, gp, 16
  li t2, 0x3333
  or t1, t1, t2
  sw t1, 0(t0)
1:
  wfi
  j 1b

  .globl pass
pass:
  li t0, TESTDEV
  li t1, 0x5555
  sw t1, 0(t0)
1:
  wfi
  j 1b

  .pushsection .bss
  .align 12
stack:
  .zero 4096
stack_top:
  .popsection
