/**
 * Guest physical RAM as seen by device models (DMA).
 *
 * Guest RAM is one region of a shared `WebAssembly.Memory`: guest physical
 * address `ramBase + x` is byte `x` of `bytes`. Every access is bounds-checked:
 * a guest-supplied address or length outside RAM throws `GuestMemoryError`.
 */
export class GuestMemoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GuestMemoryError';
  }
}

/**
 * Returns the memory of `view` (a range of guest RAM) to the host; afterwards it must
 * read as zeros (e.g. `madvise(MADV_DONTNEED)` on Linux, see src/devices/node/discard.ts).
 */
export type RamDiscarder = (view: Uint8Array) => void;

export class GuestMemory {
  /** Guest physical address of the first RAM byte (0x8000_0000 on the virt board). */
  readonly ramBase: number;
  /** RAM size in bytes. */
  readonly ramSize: number;
  /** The RAM bytes (a view into the shared wasm memory). */
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly onWrite: ((off: number, len: number) => void) | undefined;
  private readonly discarder: RamDiscarder | undefined;

  /**
   * @param onWrite told, after the fact, of every range a device wrote (offset into
   *   `bytes`, length in bytes): the engine retires translated code there.
   * @param discarder gives RAM back to the host for {@link discard} (default: zero-fill).
   */
  constructor(bytes: Uint8Array, ramBase: number, onWrite?: (off: number, len: number) => void, discarder?: RamDiscarder) {
    this.bytes = bytes;
    this.onWrite = onWrite;
    this.discarder = discarder;
    this.ramBase = ramBase;
    this.ramSize = bytes.length;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Offset into `bytes` of guest physical `gpa` for an access of `len` bytes; throws GuestMemoryError when any byte lies outside RAM. */
  offset(gpa: number, len: number): number {
    const off = gpa - this.ramBase;
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || len < 0 || off < 0 || off + len > this.ramSize) {
      throw new GuestMemoryError(`guest address 0x${gpa.toString(16)}+${len} is outside RAM`);
    }
    return off;
  }

  /** A view (no copy) of `len` bytes at `gpa`. */
  slice(gpa: number, len: number): Uint8Array {
    const off = this.offset(gpa, len);
    return this.bytes.subarray(off, off + len);
  }

  /**
   * Give `len` bytes at `gpa` back to the host (a balloon page, a reported free range):
   * afterwards they read as zeros, and the host may reclaim their memory. Translated
   * code there is retired, as for a write. Throws GuestMemoryError outside RAM.
   */
  discard(gpa: number, len: number): void {
    const off = this.offset(gpa, len);
    if (len === 0) return;
    const view = this.bytes.subarray(off, off + len);
    if (this.discarder) this.discarder(view);
    else view.fill(0);
    this.onWrite?.(off, len);
  }

  /** Say that `len` bytes at `gpa` were just written through a view from `slice()` (DMA). */
  written(gpa: number, len: number): void {
    if (this.onWrite) this.onWrite(this.offset(gpa, len), len);
  }

  readU8(gpa: number): number { return this.bytes[this.offset(gpa, 1)]; }
  readU16(gpa: number): number { return this.view.getUint16(this.offset(gpa, 2), true); }
  readU32(gpa: number): number { return this.view.getUint32(this.offset(gpa, 4), true); }
  /** 64-bit read as a number; throws GuestMemoryError if the value exceeds 2^53. */
  readU64(gpa: number): number {
    const off = this.offset(gpa, 8);
    const lo = this.view.getUint32(off, true);
    const hi = this.view.getUint32(off + 4, true);
    if (hi >= 0x200000) throw new GuestMemoryError(`64-bit value at 0x${gpa.toString(16)} is too large`);
    return hi * 0x100000000 + lo;
  }
  writeU8(gpa: number, v: number): void {
    const off = this.offset(gpa, 1);
    this.bytes[off] = v;
    this.onWrite?.(off, 1);
  }
  writeU16(gpa: number, v: number): void {
    const off = this.offset(gpa, 2);
    this.view.setUint16(off, v, true);
    this.onWrite?.(off, 2);
  }
  writeU32(gpa: number, v: number): void {
    const off = this.offset(gpa, 4);
    this.view.setUint32(off, v >>> 0, true);
    this.onWrite?.(off, 4);
  }
  writeU64(gpa: number, v: number): void {
    const off = this.offset(gpa, 8);
    this.view.setUint32(off, v % 0x100000000, true);
    this.view.setUint32(off + 4, Math.floor(v / 0x100000000), true);
    this.onWrite?.(off, 8);
  }
}
