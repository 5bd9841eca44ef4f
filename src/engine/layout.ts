/**
 * Layout of the shared WebAssembly.Memory of one VM (mirrors src/engine/as/layout.ts).
 *
 *   [0, 1 MiB)            engine static data
 *   [1 MiB, 3 MiB)        hart state blocks, HART_STATE_SIZE bytes each, up to MAX_HARTS
 *   [3 MiB, 3.25 MiB)     RVC expansion table (65536 x u32)
 *   3 MiB + 960 KiB       the JIT's code epoch (i32)
 *   [4 MiB, 8 MiB)        the JIT's code generations, one u32 per 4 KiB page of RAM
 *   [8 MiB, 80 MiB)       per-hart JIT areas (jump caches, block map), JIT_HART_BYTES each
 *   [80 MiB, 80 MiB + RAM) guest RAM: guest physical RAM_BASE + x is linear offset RAM_OFFSET + x
 */
export const RAM_BASE = 0x8000_0000;
export const HART_STATE_BASE = 0x10_0000;
export const HART_STATE_SIZE = 32768;
export const MAX_HARTS = 64;
export const RAM_OFFSET = 0x500_0000;
/** Linear-memory offset of the RVC expansion table shared by the harts (65536 x u32). */
export const RVC_TABLE = 0x30_0000;
/** Byte offsets inside a hart state block. */
export const HS_X = 0;
export const HS_F = 256;
export const HS_IRQ = 512;
export const HS_WAKE = 516;
/** The floating-point control word: fflags bits 0-4, frm bits 5-7, sstatus.FS bits 8-9 (see as/layout.ts). */
export const HS_FCSR = 524;
/** Diagnostic mirror of the hart's CSRs, written by the engine at every exit from run() (see HartSnapshot). */
export const HS_MIRROR = 528;
/**
 * Largest guest RAM the 32-bit wasm address space can back, in bytes (4015 MiB: 4 GiB less
 * the engine's 80 MiB, in whole MiB).
 */
export const MAX_BACKED_RAM_BYTES = 4015 * 1024 * 1024;
/**
 * Largest guest RAM a VM may have, in bytes (4 GiB). Above {@link MAX_BACKED_RAM_BYTES} the
 * board lists the rest in its device tree as reserved, `no-map` (src/machine/board.ts):
 * the guest's MemTotal is that much less, as firmware reservations make it on real boards.
 */
export const MAX_RAM_BYTES = 4 * 1024 * 1024 * 1024;

/** The part of `ramBytes` of guest RAM that memory backs (the rest is reserved; see {@link MAX_RAM_BYTES}). */
export function backedRamBytes(ramBytes: number): number {
  return Math.min(ramBytes, MAX_BACKED_RAM_BYTES);
}
/** Timebase frequency of the `time` CSR and SBI timer, in Hz. */
export const TIMEBASE_HZ = 10_000_000;
/** The JIT's shared words and tables (see src/engine/as/jit.ts). */
export const CODE_EPOCH = 0x3f_0000;
export const CODE_GEN = 0x40_0000;
export const JIT_BASE = 0x80_0000;
export const JIT_HART_BYTES = 0x12_0000;
export const JC_ENTRIES = 4096;
export const JC_BYTES = JC_ENTRIES * 16;
/** See src/engine/as/layout.ts. */
export const JC_COUNTING = 0x8000_0000;
/**
 * Sets of one TLB table in a hart state block, and its bytes: two ways of 16 bytes a set
 * (six tables from HS_TLB; see src/engine/as/layout.ts).
 */
export const TLB_SETS = 128;
export const TLB_TABLE_BYTES = TLB_SETS * 32;
export const BM_ENTRIES = 65536;
/** See src/engine/as/layout.ts. */
export const BM_WAYS = 4;
export const HS_JIT_SEEN = 26624;
export const HS_IN_RUN = 26628;
export const HS_JIT_REQ_COUNT = 26632;
export const HS_JIT_REQ = 26640;
/** See src/engine/as/layout.ts. */
export const HS_JIT_REQ_PC = 25600;
/** See src/engine/as/layout.ts (the TLB tables of a hart state block start there). */
export const HS_TLB = 1024;
/** See src/engine/as/layout.ts. */
export const HS_CHAIN_JC = 27392;
export const HS_CHAIN_GEN = 27396;
/** See src/engine/as/layout.ts. */
export const HS_RS_DEPTH = 27400;
export const HS_RS = 27408;
export const RS_MAX = 32;
/** See src/engine/as/layout.ts. */
export const HS_RELINK = 31744;
export const RELINK_SLOTS = 32;
