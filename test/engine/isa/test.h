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
 *   s6-s11   owned by trap_handler: s6 = sstatus on entry to the handler (any trap),
 *            s7 = sepc of the last ecall from U-mode, s9 = scause, s10 = sepc,
 *            s11 = stval of the last other trap; s8 scratch. Tests must not keep
 *            values in s6-s11.
 *
 * Expected exceptions: TRAP_BEGIN(n) stores the resume address (label 9 of the
 * TRAP_END that follows) in sscratch; the handler records the trap and returns
 * there, in the privilege the trap came from. An ecall from U-mode is the way
 * back to S-mode: the handler returns to S-mode after the ecall, or at `u_return`
 * when that is nonzero (for U code that runs elsewhere; sscratch is not needed).
 * Any other trap while sscratch is 0 is unexpected: the handler turns paging off
 * and fails the current sub-test. Tests of interrupts install their own handler.
 *
 * The macros use the local labels 5-9 (TRAP_*: 8, 9); tests mostly use 1-4.
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

/* stval (s11) must hold the bits of the instruction at label 7 (16 of them if compressed) */
#define CHECK_TVAL_INSN \
  la t6, 7b; lhu s8, 0(t6); andi s8, s8, 3; addi s8, s8, -3; \
  beqz s8, 6f; lhu t6, 0(t6); j 5f; 6: lwu t6, 0(t6); 5: beq s11, t6, 8f; j fail; 8:
/* Expect `insn` (at label 7) to raise illegal instruction with stval = its bits. */
#define ILLEGAL(n, insn...) TRAP_BEGIN(n); 7: insn; TRAP_END(2); CHECK_TVAL_INSN

/* Drop to U-mode at `label` (sstatus.SPP = U, sret). */
#define ENTER_U(label) li t0, 0x100; csrc sstatus, t0; la t0, label; csrw sepc, t0; sret
/* Run `insn` (label 7) in U-mode and expect a trap with `cause`; back in S-mode after. */
#define U_TRAP(n, cause, insn...) \
  li gp, n; li s9, -1; la t6, 9f; csrw sscratch, t6; ENTER_U(7f); 7: insn; 9: ecall; \
  csrw sscratch, zero; li t6, cause; beq s9, t6, 8f; j fail; 8:
#define U_ILLEGAL(n, insn...) U_TRAP(n, 2, insn); CHECK_TVAL_INSN

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
  csrr s6, sstatus
  csrr s8, scause
  addi s8, s8, -8
  bnez s8, 1f
  csrr s7, sepc            /* ecall from U: back to S-mode at u_return, or after the ecall */
  la s8, u_return
  ld s8, 0(s8)
  bnez s8, 2f
  addi s8, s7, 4
2:
  csrw sepc, s8
  li s8, 0x100
  csrs sstatus, s8
  sret
1:
  csrr s9, scause
  csrr s10, sepc
  csrr s11, stval
  csrrw s8, sscratch, zero
  beqz s8, unexpected_trap
  csrw sepc, s8
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
  .align 3
  .globl u_return
u_return:                  /* where an ecall from U-mode returns to when nonzero */
  .zero 8
  .align 12
stack:
  .zero 4096
stack_top:
  .popsection
