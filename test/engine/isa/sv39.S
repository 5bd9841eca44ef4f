# Virtual memory (privileged spec 4.3-4.5): Sv39 page tables built by the test with
# 4 KiB pages and 2 MiB / 1 GiB superpages, hardware A/D updates, the U bit with SUM,
# MXR, execute-only pages, reserved encodings, misaligned superpages, canonical
# addresses, fetch faults (also for an instruction straddling two pages), sfence.vma,
# U-mode access rules, and Sv48.
#include "test.h"
#define V 0x01
#define R 0x02
#define W 0x04
#define X 0x08
#define U 0x10
#define G 0x20
#define A 0x40
#define D 0x80
#define SUM 0x40000
#define MXR 0x80000
#define VPAGE(i) (0x40000000 + (i) * 4096)
#define UPAGE_VA VPAGE(7)

/* table[idx] = leaf/pointer to physical `pa` (register) with `flags` (immediate) */
#define MAP(table, idx, pareg, flags) la a0, table; li a1, idx; mv a2, pareg; li a3, flags; call set_pte
#define MAPL(table, idx, label, flags) la t2, label; MAP(table, idx, t2, flags)
#define MAPI(table, idx, pa, flags) li t2, pa; MAP(table, idx, t2, flags)
/* reg = virtual address of `label` inside the U code page */
#define UVA(reg, label) la reg, label; la t5, upage; sub reg, reg, t5; li t5, UPAGE_VA; add reg, reg, t5
/* run U code at `reg`; its ecall returns here */
#define ENTER_U_AT(reg) \
  la t0, 1f; la t1, u_return; sd t0, 0(t1); li t0, 0x100; csrc sstatus, t0; csrw sepc, reg; sret; \
  1: la t1, u_return; sd zero, 0(t1)
/* run the U-mode routine `routine` expecting a trap with `cause`, resuming at u_resume */
#define U_RUN_TRAP(n, cause, routine) \
  li gp, n; li s9, -1; UVA(t3, u_resume); csrw sscratch, t3; UVA(t3, routine); ENTER_U_AT(t3); \
  csrw sscratch, zero; li t6, cause; beq s9, t6, 8f; j fail; 8:
#define PAGE_PA(reg, i) la reg, pages; li t5, (i) * 4096; add reg, reg, t5

main:
  # ---- build the tables
  MAPI(root, 2, 0x80000000, V | R | W | X | A | D | G)   # identity 1 GiB: this program (S only)
  MAPL(root, 0, l1dev, V)
  MAPI(l1dev, 0, 0, V | R | W | A | D)                    # test device, 2 MiB
  MAPL(root, 1, l1a, V)
  MAPL(l1a, 0, l0a, V)
  MAPI(l1a, 1, 0x80400000, V | R | W)                     # 2 MiB superpage, A/D clear
  MAPI(l1a, 2, 0x80401000, V | R | W | A | D)             # misaligned 2 MiB superpage
  MAPI(root, 3, 0x80000000, V | R | W | A | D)            # 1 GiB alias of RAM at 0xc0000000
  MAPI(root, 4, 0x80200000, V | R | W | A | D)            # misaligned 1 GiB superpage
  MAPI(root, 256, 0x80000000, V | R | A)                  # high half: 0xffffffc000000000
  PAGE_PA(s2, 0)
  MAP(l0a, 0, s2, V | R | W)                              # A and D clear
  PAGE_PA(s2, 1)
  MAP(l0a, 1, s2, V | R | A)                              # read-only
  MAPL(l0a, 2, xpage, V | X | A)                          # execute-only
  PAGE_PA(s2, 3)
  MAP(l0a, 3, s2, V | R | W | U | A | D)                  # user data
  PAGE_PA(s2, 4)
  MAP(l0a, 4, s2, R | W | A | D)                          # not valid
  PAGE_PA(s2, 5)
  MAP(l0a, 5, s2, V | W | A | D)                          # W without R: reserved
  PAGE_PA(s2, 6)
  MAP(l0a, 6, s2, V)                                      # a pointer at the last level
  MAPL(l0a, 7, upage, V | R | X | U | A)                  # user code
  PAGE_PA(s2, 8)
  MAP(l0a, 8, s2, V | R | W | U | A | D)                  # user data
  PAGE_PA(s2, 9)
  MAP(l0a, 9, s2, V | R | W | A | D)                      # supervisor data
  MAPL(l0a, 10, straddle_a, V | X | A)                    # code page; page 11 stays invalid
  PAGE_PA(s2, 12)
  li t0, 1 << 61                                          # PBMT bits without Svpbmt: reserved
  or s2, s2, t0
  MAP(l0a, 12, s2, V | R | W | A | D)
  PAGE_PA(s2, 13)
  MAP(l0a, 13, s2, V | R | U | A)                         # user read-only
  PAGE_PA(s2, 14)
  MAP(l0a, 14, s2, V | R | A)
  # markers in the data pages, written through the identity map
  la s0, pages
  li t0, 0x1111111111111111
  sd t0, 0(s0)
  li t1, 4096
  add s1, s0, t1
  li t0, 0x2222
  sd t0, 0(s1)
  # ---- enable Sv39
  li gp, 1
  la t0, root
  srli t0, t0, 12
  li t1, 8 << 60
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  csrr a0, satp
  CHECKR(2, a0, t0)
  # ---- 4 KiB page, hardware A/D update
  li s1, VPAGE(0)
  ld a0, 0(s1)
  CHECK(3, a0, 0x1111111111111111)
  la a0, l0a
  ld a0, 0(a0)
  andi a0, a0, A | D
  CHECK(4, a0, A)                 # read: A set, D still clear
  li t0, 0x3333
  sd t0, 8(s1)
  ld a0, 8(s0)
  CHECK(5, a0, 0x3333)
  la a0, l0a
  ld a0, 0(a0)
  andi a0, a0, A | D
  CHECK(6, a0, A | D)
  # ---- read-only page: store page fault (15), stval = address, sepc = the store
  li s1, VPAGE(1) + 8
  TRAP_BEGIN(7)
7: sd t0, 0(s1)
  TRAP_END(15)
  CHECKR(8, s11, s1)
  la t0, 7b
  CHECKR(9, s10, t0)
  li gp, 10
  ld a0, -8(s1)
  CHECK(11, a0, 0x2222)
  # ---- execute-only page: fetch yes, load only with MXR
  li gp, 12
  li s1, VPAGE(2)
  li a0, 0
  jalr s1
  CHECK(13, a0, 77)
  TRAP_BEGIN(14)
  lw a0, 0(s1)
  TRAP_END(13)
  CHECKR(15, s11, s1)
  li gp, 16
  li t0, MXR
  csrs sstatus, t0
  lw a0, 0(s1)
  la t1, xpage
  lw t1, 0(t1)
  CHECKR(17, a0, t1)
  li t0, MXR                      # clearing MXR takes effect at once
  csrc sstatus, t0
  TRAP_BEGIN(18)
  lw a0, 0(s1)
  TRAP_END(13)
  # ---- U pages from S-mode: only with SUM, and never executable
  li s1, VPAGE(3)
  TRAP_BEGIN(19)
  ld a0, 0(s1)
  TRAP_END(13)
  TRAP_BEGIN(20)
  sd a0, 0(s1)
  TRAP_END(15)
  li gp, 21
  li t0, SUM
  csrs sstatus, t0
  li t1, 0x4444
  sd t1, 0(s1)
  ld a0, 0(s1)
  CHECK(22, a0, 0x4444)
  li s1, UPAGE_VA
  TRAP_BEGIN(23)
  jalr s1                         # S-mode fetch from a U page: fault even with SUM
  TRAP_END(12)
  CHECKR(24, s11, s1)
  CHECKR(25, s10, s1)
  li t0, SUM                      # clearing SUM takes effect at once
  csrc sstatus, t0
  li s1, VPAGE(3)
  TRAP_BEGIN(26)
  ld a0, 0(s1)
  TRAP_END(13)
  # ---- invalid and reserved PTEs
  li s1, VPAGE(4)
  TRAP_BEGIN(27)
  ld a0, 0(s1)
  TRAP_END(13)
  TRAP_BEGIN(28)
  sd a0, 0(s1)
  TRAP_END(15)
  li s1, VPAGE(5)
  TRAP_BEGIN(29)
  ld a0, 0(s1)
  TRAP_END(13)
  TRAP_BEGIN(30)
  sd a0, 0(s1)
  TRAP_END(15)
  li s1, VPAGE(6)
  TRAP_BEGIN(31)
  ld a0, 0(s1)
  TRAP_END(13)
  li s1, VPAGE(12)
  TRAP_BEGIN(32)
  ld a0, 0(s1)
  TRAP_END(13)
  # ---- canonical addresses: bits 63:39 must equal bit 38
  li s1, 0x0000008000000000
  TRAP_BEGIN(33)
  ld a0, 0(s1)
  TRAP_END(13)
  CHECKR(34, s11, s1)
  li s1, 0xffffff8040000000
  TRAP_BEGIN(35)
  sd a0, 0(s1)
  TRAP_END(15)
  li gp, 36                       # the high half, via root[256]
  la t0, magic
  li t1, 0xffffffc000000000 - 0x80000000
  add t0, t0, t1
  ld a0, 0(t0)
  CHECK(37, a0, 0x0123456789abcdef)
  # ---- 2 MiB superpage: mapped, A/D set in the level-1 PTE; misaligned one faults
  li gp, 38
  li s1, 0x40200000 + 0x1238
  li t0, 0x5555aaaa
  sd t0, 0(s1)
  li t1, 0x80401238
  ld a0, 0(t1)
  CHECKR(39, a0, t0)
  la a0, l1a
  ld a0, 8(a0)
  andi a0, a0, A | D
  CHECK(40, a0, A | D)
  li s1, 0x40400000
  TRAP_BEGIN(41)
  ld a0, 0(s1)
  TRAP_END(13)
  # ---- 1 GiB superpage alias; misaligned one faults
  li gp, 42
  la t0, magic
  li t1, 0xc0000000 - 0x80000000
  add t0, t0, t1
  ld a0, 0(t0)
  CHECK(43, a0, 0x0123456789abcdef)
  li s1, 0x100000000
  TRAP_BEGIN(44)
  ld a0, 0(s1)
  TRAP_END(13)
  # ---- fetch page faults: sepc = stval = the target
  li s1, VPAGE(4)
  TRAP_BEGIN(45)
  jalr s1
  TRAP_END(12)
  CHECKR(46, s11, s1)
  CHECKR(47, s10, s1)
  # an instruction straddling into an invalid page: sepc = its start, stval = the faulting half
  li s1, VPAGE(10) + 0xff8
  TRAP_BEGIN(48)
  jalr s1
  TRAP_END(12)
  li t0, VPAGE(10) + 0xffe
  CHECKR(49, s10, t0)
  li t0, VPAGE(11)
  CHECKR(50, s11, t0)
  # map page 11 to a physical page that is NOT the next one: the halves come from two pages
  MAPL(l0a, 11, straddle_b, V | X | A)
  sfence.vma
  li gp, 51
  li a1, 0
  li s1, VPAGE(10) + 0xff8
  jalr s1
  CHECK(52, a1, 0x123)
  # a compressed instruction in the last parcel of a page does not touch the next page
  MAPL(l0a, 15, cend, V | X | A)  # page 16 is not mapped
  sfence.vma
  li gp, 99
  li s1, VPAGE(15) + 0xffe
  jalr s1                         # c.jr ra
  # ---- sfence.vma makes PTE changes visible
  li gp, 53
  PAGE_PA(t0, 14)
  li t1, 0xaaaa
  sd t1, 0(t0)
  PAGE_PA(t0, 15)
  li t1, 0xbbbb
  sd t1, 0(t0)
  li s1, VPAGE(14)
  ld a0, 0(s1)
  CHECK(54, a0, 0xaaaa)
  PAGE_PA(s2, 15)
  MAP(l0a, 14, s2, V | R | A)
  sfence.vma s1                   # by address
  ld a0, 0(s1)
  CHECK(55, a0, 0xbbbb)
  MAP(l0a, 14, s2, R | A)         # invalidate
  sfence.vma s1, zero
  TRAP_BEGIN(56)
  ld a0, 0(s1)
  TRAP_END(13)
  li gp, 57                       # grant write on page 1, then take it away again
  PAGE_PA(s2, 1)
  MAP(l0a, 1, s2, V | R | W | A | D)
  sfence.vma
  li s1, VPAGE(1)
  li t0, 0x6666
  sd t0, 16(s1)
  ld a0, 16(s1)
  CHECK(58, a0, 0x6666)
  MAP(l0a, 1, s2, V | R | A)
  sfence.vma zero, zero
  TRAP_BEGIN(59)
  sd t0, 16(s1)
  TRAP_END(15)
  # ---- sfence.vma of one address drops the entries of every page a superpage leaf covers
  li s1, 0xc0001000
  li s2, 0xc0005000
  ld a0, 0(s1)                    # both 4 KiB slices of the 1 GiB alias are cached
  ld a0, 0(s2)
  MAPI(root, 3, 0x80000000, R | W | A | D)   # not valid any more
  sfence.vma s1
  TRAP_BEGIN(200)
  ld a0, 0(s2)
  TRAP_END(13)
  MAPI(root, 3, 0x80000000, V | R | W | A | D)
  sfence.vma
  # ---- U-mode
  li gp, 60
  PAGE_PA(t0, 8)
  li t1, 0x7777
  sd t1, 0(t0)
  li a0, VPAGE(8)
  UVA(t3, u_ok)
  ENTER_U_AT(t3)
  CHECK(61, a1, 0x7777)           # U read its own page
  PAGE_PA(t0, 8)
  ld a0, 8(t0)
  CHECK(62, a0, 0x77)             # ... and wrote it
  li a0, VPAGE(9)
  U_RUN_TRAP(63, 13, u_load)      # S page from U: load page fault
  li a0, VPAGE(9)
  CHECKR(64, s11, a0)
  li a0, VPAGE(9)
  U_RUN_TRAP(65, 15, u_store)
  li a0, VPAGE(13)
  U_RUN_TRAP(66, 15, u_store)     # U read-only page
  li a0, VPAGE(13)
  li gp, 67
  UVA(t3, u_loadok)
  ENTER_U_AT(t3)
  li a0, VPAGE(3)                 # U page: fine from U whatever SUM says
  li gp, 68
  UVA(t3, u_loadok)
  ENTER_U_AT(t3)
  CHECK(69, a1, 0x4444)
  la a0, magic                    # U fetch from an S page: fetch page fault
  U_RUN_TRAP(70, 12, u_jump)
  la a0, magic
  CHECKR(71, s11, a0)
  li a0, VPAGE(2)                 # an S page (execute-only) from U: load page fault
  U_RUN_TRAP(72, 13, u_load)
  # ---- Sv48: a level-3 root whose entries 0 and 1 both point at the Sv39 root
  MAPL(sv48root, 0, root, V)
  MAPL(sv48root, 1, root, V)
  la t0, sv48root
  srli t0, t0, 12
  li t1, 9 << 60
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  li gp, 73
  csrr a0, satp
  CHECKR(74, a0, t0)
  li s1, VPAGE(0)
  ld a0, 0(s1)
  CHECK(75, a0, 0x1111111111111111)
  li s1, 0x8000000000 + VPAGE(0)  # canonical in Sv48
  ld a0, 0(s1)
  CHECK(76, a0, 0x1111111111111111)
  li s1, 0x0000800000000000       # not canonical in Sv48
  TRAP_BEGIN(77)
  ld a0, 0(s1)
  TRAP_END(13)
  # back to Sv39, where 0x8040000000 is not canonical
  la t0, root
  srli t0, t0, 12
  li t1, 8 << 60
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  li s1, 0x8000000000 + VPAGE(0)
  TRAP_BEGIN(78)
  ld a0, 0(s1)
  TRAP_END(13)
  # ---- a misaligned access whose second page faults: stval = the part that faulted (4.1.9)
  li t0, SUM
  csrs sstatus, t0
  PAGE_PA(t0, 3)
  li t1, 0xff8
  add t0, t0, t1
  li t1, 0x0102030405060708
  sd t1, 0(t0)
  li s1, VPAGE(3) + 0xffc         # page 3 (U, with SUM) then page 4 (invalid)
  TRAP_BEGIN(81)
  ld a0, 0(s1)
  TRAP_END(13)
  li t0, VPAGE(4)
  CHECKR(82, s11, t0)
  TRAP_BEGIN(83)
  sd zero, 0(s1)
  TRAP_END(15)
  li t0, VPAGE(4)
  CHECKR(84, s11, t0)
  li gp, 85                       # the faulting store wrote nothing
  PAGE_PA(t0, 3)
  li t1, 0xff8
  add t0, t0, t1
  ld a0, 0(t0)
  CHECK(86, a0, 0x0102030405060708)
  li t0, SUM
  csrc sstatus, t0
  TRAP_BEGIN(87)                  # now the first part faults: stval = the address itself
  lw a0, 0(s1)
  TRAP_END(13)
  CHECKR(88, s11, s1)
  # ---- AMOs need write permission (store/AMO page fault) and set D
  li s1, VPAGE(1)                 # read-only again
  TRAP_BEGIN(89)
  amoadd.d a0, t0, (s1)
  TRAP_END(15)
  TRAP_BEGIN(90)
  lr.d a0, (s1)                   # LR only reads
  sc.d a0, t0, (s1)
  TRAP_END(15)
  li gp, 91
  PAGE_PA(s2, 2)
  MAP(l0a, 13, s2, V | R | W)     # writable, A and D clear
  sfence.vma
  li s1, VPAGE(13)
  li t0, 5
  amoswap.w a0, t0, (s1)
  la a0, l0a
  ld a0, 13 * 8(a0)
  andi a0, a0, A | D
  CHECK(92, a0, A | D)
  # ---- FP loads and stores fault like integer ones and leave fd alone
  li s1, VPAGE(4)
  fmv.d.x fa0, zero
  TRAP_BEGIN(93)
  fld fa0, 0(s1)
  TRAP_END(13)
  fmv.x.d a0, fa0
  CHECK(94, a0, 0)
  TRAP_BEGIN(95)
  fsw fa0, 4(s1)
  TRAP_END(15)
  # ---- a PTE pointing outside RAM: access fault of the original access type (4.3.2 step 2)
  MAPI(l1a, 3, 0x40000000, V)
  sfence.vma
  li s1, 0x40600000
  TRAP_BEGIN(96)
  ld a0, 0(s1)
  TRAP_END(5)
  TRAP_BEGIN(97)
  sd a0, 0(s1)
  TRAP_END(7)
  TRAP_BEGIN(98)
  jalr s1
  TRAP_END(1)
  # ---- paging off again
  li gp, 79
  csrw satp, zero
  sfence.vma
  la t0, magic
  ld a0, 0(t0)
  CHECK(80, a0, 0x0123456789abcdef)
  PASS

/* set_pte(a0 = table, a1 = index, a2 = physical address (| high PTE bits), a3 = low flags) */
set_pte:
  srli t0, a2, 12
  slli t0, t0, 10
  srli t1, a2, 61                 # keep bits 63:61 of a2 as PTE bits 63:61
  slli t1, t1, 61
  slli t0, t0, 3                  # ... but drop them from the PPN
  srli t0, t0, 3
  or t0, t0, t1
  or t0, t0, a3
  slli t1, a1, 3
  add t1, t1, a0
  sd t0, 0(t1)
  ret

  .align 12
xpage:                            # executed through an execute-only mapping
  li a0, 77
  ret

  .align 12
upage:                            # U-mode routines, mapped at UPAGE_VA; each returns by ecall
u_ok:
  ld a1, 0(a0)
  li a2, 0x77
  sd a2, 8(a0)
  ecall
u_load:
  ld a1, 0(a0)
u_resume:
  ecall
u_store:
  sd a1, 0(a0)
  ecall
u_loadok:
  ld a1, 0(a0)
  ecall
u_jump:
  jr a0

  .align 12
straddle_a:
  .fill (4096 - 8) / 2, 2, 0x0001 # c.nop
  .2byte 0x0001, 0x0001, 0x0001
  .2byte 0x0593                   # low half of addi a1, zero, 0x123 at offset 0xffe
decoy:
  .fill 4096 / 2, 2, 0x0000       # physically next: must not be used
straddle_b:
  .2byte 0x1230                   # high half
  ret

  .align 12
cend:
  .fill (4096 - 2) / 2, 2, 0x0001
  .2byte 0x8082                   # c.jr ra at offset 0xffe

  .data
  .align 12
root:     .zero 4096
l1a:      .zero 4096
l0a:      .zero 4096
l1dev:    .zero 4096
sv48root: .zero 4096
pages:    .zero 16 * 4096
magic:    .dword 0x0123456789abcdef
