/**
 * Layout of the shared WebAssembly.Memory of one VM (mirrors src/engine/as/layout.ts).
 *
 *   [0, 1 MiB)            engine static data
 *   [1 MiB, 3 MiB)        hart state blocks, HART_STATE_SIZE bytes each, up to MAX_HARTS
 *   [3 MiB, 3.25 MiB)     RVC expansion table (65536 x u32)
 *   [4 MiB, 4 MiB + RAM)  guest RAM: guest physical RAM_BASE + x is linear offset RAM_OFFSET + x
 */
export const RAM_BASE = 0x8000_0000;
export const HART_STATE_BASE = 0x10_0000;
export const HART_STATE_SIZE = 32768;
export const MAX_HARTS = 64;
export const RAM_OFFSET = 0x40_0000;
/** Linear-memory offset of the RVC expansion table shared by the harts (65536 x u32). */
export const RVC_TABLE = 0x30_0000;
/** Byte offsets inside a hart state block. */
export const HS_X = 0;
export const HS_F = 256;
export const HS_IRQ = 512;
export const HS_WAKE = 516;
/** Diagnostic mirror of the hart's CSRs, written by the engine at every exit from run() (see HartSnapshot). */
export const HS_MIRROR = 528;
/** Largest guest RAM the 32-bit wasm address space allows, in bytes. */
export const MAX_RAM_BYTES = 4 * 1024 * 1024 * 1024 - RAM_OFFSET - 64 * 1024;
/** Timebase frequency of the `time` CSR and SBI timer, in Hz. */
export const TIMEBASE_HZ = 10_000_000;
