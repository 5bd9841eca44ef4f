// Memory layout of the shared WebAssembly.Memory and of one hart's state block.
// The TypeScript side (src/engine/layout.ts) mirrors these constants.

/** Guest physical address where RAM starts (QEMU virt). */
export const RAM_BASE: u64 = 0x80000000;

/** Offset of a hart's x registers in its state block (32 x u64). */
export const HS_X: u32 = 0;
/** Offset of a hart's f registers (32 x u64, NaN-boxed). */
export const HS_F: u32 = 256;
/** Offset of the interrupt-request word: mip bits raised by other threads (i32, atomic). */
export const HS_IRQ: u32 = 512;
/** Offset of the wake word a parked hart waits on (i32, atomic). */
export const HS_WAKE: u32 = 516;
/** Offset of a word used only as the target of full-barrier RMWs (FENCE). */
export const HS_FENCE: u32 = 520;
/**
 * Offset of the hart's floating-point control word (u32): fcsr.fflags in bits 0-4 and
 * fcsr.frm in bits 5-7 (unprivileged 11.2, the fcsr layout), sstatus.FS in bits 8-9
 * (privileged 4.1.1.2). Kept here rather than in engine globals so that translated code
 * checks FS and frm and accrues flags inline.
 */
export const HS_FCSR: u32 = 524;
/** Offset of the diagnostic mirror of the hart's CSRs (u64 each, see publish() in cpu.ts), written at every exit from run(). */
export const HS_MIRROR: u32 = 528;
/**
 * Offset of the TLB: 6 tables (S/U x read/write/exec), each TLB_SETS sets of 2 ways (two-way
 * set-associative: set vpn mod TLB_SETS), a way of 16 bytes {vpn u64, host addend u32, u32
 * unused}. Way 0 holds the set's most recently used page (a hit in way 1 swaps them; a
 * fill moves way 0 to way 1), so the inline probes of translated code, which check way 0,
 * hit nearly as often as with a direct-mapped TLB. Two pages whose numbers agree modulo
 * TLB_SETS, such as a process's stack and heap pages at random distances, both stay: with
 * 256 entries direct-mapped they evicted each other on every access, in one boot out of a
 * few.
 */
export const HS_TLB: u32 = 1024;
export const TLB_SETS: u32 = 128;
export const TLB_TABLE_BYTES: u32 = TLB_SETS * 32;
/** Size of one hart's state block in bytes. */
export const HS_SIZE: u32 = 32768;

/** Linear-memory offset of the RVC expansion table: 65536 x u32, the 32-bit form of every 16-bit parcel (0 = illegal). */
export const RVC_TABLE: u32 = 0x300000;

// ---------------------------------------------------------------- JIT (src/engine/jit/)
/** Linear-memory offset of the code epoch (i32, atomic): bumped whenever a page gains or loses translated code. */
export const CODE_EPOCH: u32 = 0x3f0000;
/** Linear-memory offset of the code generations: one u32 per 4 KiB page of RAM; odd = the page has translated code. */
export const CODE_GEN: u32 = 0x400000;
/** Linear-memory offset of the per-hart JIT areas (JIT_HART_BYTES each): two jump caches, then the block map. */
export const JIT_BASE: u32 = 0x800000;
export const JIT_HART_BYTES: u32 = 0x120000;
/** Entries of one jump cache (one per privilege): {virtual pc u64, table index u32, flush generation u32}. */
export const JC_ENTRIES: u32 = 4096;
export const JC_BYTES: u32 = 4096 * 16;
/** A jump-cache entry whose table index has this bit is a counting entry (a block start with no translation yet). */
export const JC_COUNTING: u32 = 0x8000_0000;
/** Entries of the block map, after the two jump caches: {host address u32, count u32, table index u32, code generation u32}. */
export const BM_ENTRIES: u32 = 65536;
/** Ways of a block-map set (see jit.ts): consecutive entries, BM_WAYS * 16 bytes a set. */
export const BM_WAYS: u32 = 4;
/** Offsets in the hart state block: the code epoch this hart has caught up with (i32), 1 while inside run() (i32). */
export const HS_JIT_SEEN: u32 = 26624;
export const HS_IN_RUN: u32 = 26628;
/** Translation requests: count (u32) then up to JIT_REQ_MAX host addresses (u32). */
export const HS_JIT_REQ_COUNT: u32 = 26632;
export const HS_JIT_REQ: u32 = 26640;
/** The virtual pc (u64) of each request, in the same order (the code cache links cross-page jumps through it). */
export const HS_JIT_REQ_PC: u32 = 25600;
export const JIT_REQ_MAX: u32 = 64;
/**
 * Offsets in the hart state block of what translated code needs to chain to another
 * translation without the dispatcher (src/engine/jit/chain.ts): the jump cache of the
 * current privilege (u32 linear address) and its flush generation (u32), written each
 * time the dispatcher enters translated code.
 */
export const HS_CHAIN_JC: u32 = 27392;
export const HS_CHAIN_GEN: u32 = 27396;
/**
 * The return stack of translated code (src/engine/jit/translate.ts): its depth (u32), then
 * RS_MAX return addresses (u64) of the calls translated code made as wasm calls.
 */
export const HS_RS_DEPTH: u32 = 27400;
export const HS_RS: u32 = 27408;
export const RS_MAX: u32 = 32;
/**
 * Offsets in the hart state block of the jump caches' page filters, one per cache (S,
 * U), of JC_FILTER_BYTES each: two sets of 4096 bits, bit (vpn mod 4096) of the first
 * and bit ((vpn >> 12) mod 4096) of the second set when an entry of that cache was filled
 * for a pc in virtual page vpn since the cache was last flushed. An SFENCE.VMA of one page
 * flushes a cache only if both its bits are set (the second set tells a kernel stack's
 * vmalloc page from the kernel text pages that share its first bit).
 */
export const HS_JC_PAGES: u32 = 29696;
export const HS_JC_PAGES_U: u32 = 30720;
export const JC_FILTER_BYTES: u32 = 1024;
/**
 * Offset in the hart state block of the relink ring, which only translated code and the
 * code cache use (src/engine/jit/chain.ts, code-cache.ts): a count (u32) of the records
 * written, then, from HS_RELINK + 16, RELINK_SLOTS records of 16 bytes, record n in slot
 * n mod RELINK_SLOTS: the pc a block was entered at (u64) and its host address (u32), for
 * a jump the block made through the trampoline to a target that had a translation.
 */
export const HS_RELINK: u32 = 31744;
export const RELINK_SLOTS: u32 = 32;
/**
 * Offset in the hart state block of the superpage leaves the TLB holds 4 KiB slices of:
 * SUPER_MAX per half of the address space (the lower half's first), {base va u64, offset
 * mask u64} each. An SFENCE.VMA of a page outside all of them leaves the other pages'
 * entries alone.
 */
export const HS_SUPER: u32 = 29184;
export const SUPER_MAX: u32 = 8;
/**
 * Offset in the hart state block of the S-mode TLB sets filled with user pages (under SUM)
 * since the last flush: up to S_USER_MAX linear addresses (u32) of sets, whose ways are
 * dropped when SUM is cleared (a set's entries move between its ways).
 */
export const HS_S_USER: u32 = 28160;
export const S_USER_MAX: u32 = 32;
