/**
 * qcow2 reference counts (qcow2 spec, "Host cluster management"): the refcount table
 * (in memory, whole) and refcount blocks (cached), cluster allocation at the end of the
 * file, and growth of the refcount table.
 *
 * Every update is written through to the file at once, in an order that keeps the image
 * consistent if the process dies between any two writes: a refcount block is written
 * (with its own refcount when it covers itself) before the table entry that points to
 * it, a new refcount table and its blocks before the header points to them, and the old
 * table is freed only afterwards. Callers write a new cluster's data first, then its
 * refcount ({@link Qcow2Refcounts.setRange}), then the L2/L1 entry that references it,
 * so a kill at any moment leaves at worst leaked clusters (refcount 1, unreferenced),
 * which `qemu-img check` reports as leaks, not corruption.
 *
 * Refcount widths of 1 to 64 bits (refcount_order 0..6) are read and written; the
 * values written are 0 and 1 (and decrements), so a 64-bit refcount above 2^53 reads
 * approximately, which only matters to "is it 0 / 1" tests.
 */
import { BlockError } from './errors.js';
import type { RandomAccessFile } from './file.js';
import { LruCache } from './lru.js';
import { alignUp, hex, MAX_REFTABLE_BYTES } from './qcow2-header.js';

/** Where the refcount structures are, for {@link Qcow2Refcounts}. Offsets in bytes. */
export interface RefcountLayout {
  clusterBits: number;
  refcountOrder: number;
  tableOffset: number;
  tableClusters: number;
  /** Bytes of refcount blocks to cache. */
  cacheBytes: number;
  /**
   * Validate the offset of a refcount block read from the table (cluster-aligned, past
   * the header, not in the L1 or refcount table, inside the file).
   * @throws BlockError
   */
  checkBlock(offset: number, index: number): void;
}

/** The refcounts of one qcow2 image. */
export class Qcow2Refcounts {
  /** Offsets of every refcount block (for overlap checks). */
  readonly blockOffsets = new Set<number>();
  /** Byte offset where the next allocation goes: past the end of the file and of every cluster in use. */
  end: number;
  private table: number[];
  private tableOffset: number;
  private tableClusters: number;
  private readonly cs: number;
  private readonly bits: number;
  private readonly perBlock: number;
  private readonly max: number;
  private readonly cache: LruCache<number, Uint8Array>;

  /**
   * Read and validate the refcount table of `file` (a qcow2 image of `fileSize` bytes).
   * Never writes.
   * @throws BlockError for a bad table entry (reserved bits, bad block offset).
   */
  constructor(private readonly file: RandomAccessFile, fileSize: number, layout: RefcountLayout, private readonly bad: (m: string) => never) {
    this.cs = 2 ** layout.clusterBits;
    this.bits = 2 ** layout.refcountOrder;
    this.perBlock = (this.cs * 8) / this.bits;
    this.max = 2 ** this.bits - 1;
    this.tableOffset = layout.tableOffset;
    this.tableClusters = layout.tableClusters;
    this.cache = new LruCache(Math.max(8, Math.floor(layout.cacheBytes / this.cs)));
    const raw = new Uint8Array(layout.tableClusters * this.cs);
    file.read(raw, layout.tableOffset);
    const v = new DataView(raw.buffer);
    this.table = new Array<number>(raw.length / 8);
    for (let i = 0; i < this.table.length; i++) {
      const hi = v.getUint32(i * 8), lo = v.getUint32(i * 8 + 4);
      if (lo & 0x1ff) bad(`refcount table entry ${i} has reserved bits set`);
      if (hi >= 0x200000) bad(`refcount block offset in table entry ${i} too large`);
      const off = hi * 2 ** 32 + lo;
      if (off !== 0) {
        layout.checkBlock(off, i);
        if (this.blockOffsets.has(off)) bad(`refcount block ${hex(off)} listed twice in the refcount table`);
        this.blockOffsets.add(off);
      }
      this.table[i] = off;
    }
    this.end = alignUp(fileSize, this.cs);
  }

  /** The refcount table's place, for overlap checks: [offset, offset + bytes). */
  get tableRange(): { offset: number; bytes: number } {
    return { offset: this.tableOffset, bytes: this.tableClusters * this.cs };
  }

  /** Refcount of host cluster `cluster` (index = byte offset / cluster size); 0 when no block covers it. */
  get(cluster: number): number {
    const ti = Math.floor(cluster / this.perBlock);
    if (ti >= this.table.length || this.table[ti] === 0) return 0;
    return this.entry(this.block(this.table[ti]), cluster % this.perBlock);
  }

  /**
   * Reserve `n` contiguous free clusters (refcount 0) at the end of the image and return
   * the byte offset of the first. Their refcounts stay 0 until {@link setRange}: write
   * the data first. Clusters past the end with a stale non-zero refcount are skipped.
   */
  allocate(n: number): number {
    const at = this.findFree(this.end, n);
    this.end = at + n * this.cs;
    return at;
  }

  /**
   * Set the refcounts of clusters `first .. first + count - 1` to `value`, writing
   * through (allocating refcount blocks, and growing the refcount table, as needed).
   * @throws BlockError "refcount overflow" when `value` exceeds the refcount width.
   */
  setRange(first: number, count: number, value: number): void {
    if (value > this.max) this.bad(`refcount overflow (${value} does not fit ${this.bits} bits) at cluster ${hex(first * this.cs)}`);
    while (count > 0) {
      const ti = Math.floor(first / this.perBlock);
      const i0 = first % this.perBlock;
      const k = Math.min(count, this.perBlock - i0);
      const missing = ti >= this.table.length || this.table[ti] === 0;
      if (!(missing && value === 0)) {
        if (missing) this.ensureBlock(ti);
        const off = this.table[ti];
        const blk = this.block(off);
        const b0 = Math.floor((i0 * this.bits) / 8), b1 = Math.ceil(((i0 + k) * this.bits) / 8);
        const saved = blk.slice(b0, b1);
        for (let i = i0; i < i0 + k; i++) this.setEntry(blk, i, value);
        try {
          this.file.write(blk.subarray(b0, b1), off + b0);
        } catch (e) {
          blk.set(saved, b0);
          throw e;
        }
      }
      first += k;
      count -= k;
    }
  }

  // ---- internals ----

  private findFree(from: number, n: number): number {
    let start = from;
    for (let c = start / this.cs; c < start / this.cs + n; c++) {
      if (this.get(c) !== 0) start = (c + 1) * this.cs;
    }
    return start;
  }

  /** Make sure table entry `ti` points to a refcount block (allocating it, growing the table). */
  private ensureBlock(ti: number): void {
    if (ti >= this.table.length) this.grow(ti);
    if (this.table[ti] !== 0) return;
    const b = this.allocate(1);
    const bc = b / this.cs;
    const blk = new Uint8Array(this.cs);
    const self = Math.floor(bc / this.perBlock) === ti;
    if (self) this.setEntry(blk, bc % this.perBlock, 1);
    this.file.write(blk, b);
    if (!self) this.setRange(bc, 1, 1); // its refcount lives in a later block
    this.writeTableEntry(ti, b);
    this.blockOffsets.add(b);
    this.cache.set(b, blk);
  }

  /**
   * Replace the refcount table by a bigger one covering index `need`: new table and the
   * refcount blocks that describe it are written past the end, then the header points to
   * the new table, then the old table's clusters are freed.
   */
  private grow(need: number): void {
    const cs = this.cs;
    const old = this.table, oldOffset = this.tableOffset, oldClusters = this.tableClusters;
    const maxClusters = MAX_REFTABLE_BYTES / cs;
    let n = Math.min(maxClusters, Math.ceil((Math.max(need + 1, old.length * 2) * 8) / cs));
    let m = 0;
    let at = 0;
    let fresh: number[] = [];
    for (let iter = 0; ; iter++) {
      if (iter > 64) this.bad('cannot lay out a bigger refcount table');
      at = this.findFree(this.end, n + m);
      const c0 = at / cs, c1 = c0 + n + m - 1;
      const t0 = Math.floor(c0 / this.perBlock), t1 = Math.floor(c1 / this.perBlock);
      fresh = [];
      for (let t = t0; t <= t1; t++) if (t >= old.length || old[t] === 0) fresh.push(t);
      const entries = Math.max(need + 1, t1 + 1, old.length);
      const n2 = Math.max(n, Math.ceil((entries * 8) / cs));
      if (n2 > maxClusters) this.bad(`refcount table would exceed ${MAX_REFTABLE_BYTES} bytes (image too large for its cluster size)`);
      if (n2 === n && fresh.length === m) break;
      n = n2;
      m = fresh.length;
    }
    this.end = at + (n + m) * cs;
    const c0 = at / cs, count = n + m;
    // 1. the new refcount blocks, each with the refcounts of the new clusters it covers
    const newBlocks = new Map<number, { off: number; blk: Uint8Array }>();
    fresh.forEach((t, j) => {
      const off = at + (n + j) * cs;
      const blk = new Uint8Array(cs);
      for (let c = Math.max(c0, t * this.perBlock); c < Math.min(c0 + count, (t + 1) * this.perBlock); c++) this.setEntry(blk, c % this.perBlock, 1);
      this.file.write(blk, off);
      newBlocks.set(t, { off, blk });
    });
    // 2. the new table
    const table = old.slice();
    table.length = (n * cs) / 8;
    table.fill(0, old.length);
    for (const [t, { off }] of newBlocks) table[t] = off;
    const raw = new Uint8Array(n * cs);
    const v = new DataView(raw.buffer);
    table.forEach((off, i) => { if (off) { v.setUint32(i * 8, Math.floor(off / 2 ** 32)); v.setUint32(i * 8 + 4, off >>> 0); } });
    this.file.write(raw, at);
    // 3. new clusters covered by existing blocks (the file now covers them all)
    for (let c = c0; c < c0 + count;) {
      const t = Math.floor(c / this.perBlock);
      const k = Math.min(c0 + count - c, (t + 1) * this.perBlock - c);
      if (!newBlocks.has(t)) this.setRange(c, k, 1);
      c += k;
    }
    // 4. the header: refcount_table_offset (48..55) and refcount_table_clusters (56..59)
    const h = new Uint8Array(12);
    const hv = new DataView(h.buffer);
    hv.setUint32(0, Math.floor(at / 2 ** 32));
    hv.setUint32(4, at >>> 0);
    hv.setUint32(8, n);
    this.file.write(h, 48);
    this.table = table;
    this.tableOffset = at;
    this.tableClusters = n;
    for (const { off, blk } of newBlocks.values()) { this.blockOffsets.add(off); this.cache.set(off, blk); }
    // 5. free the old table
    this.setRange(oldOffset / cs, oldClusters, 0);
  }

  private writeTableEntry(ti: number, off: number): void {
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, Math.floor(off / 2 ** 32));
    v.setUint32(4, off >>> 0);
    this.file.write(b, this.tableOffset + ti * 8);
    this.table[ti] = off;
  }

  private block(off: number): Uint8Array {
    let blk = this.cache.get(off);
    if (!blk) {
      blk = new Uint8Array(this.cs);
      if (this.file.read(blk, off) < this.cs) this.bad(`refcount block ${hex(off)} past the end of the file`);
      this.cache.set(off, blk);
    }
    return blk;
  }

  private entry(blk: Uint8Array, i: number): number {
    switch (this.bits) {
      case 8: return blk[i];
      case 16: return (blk[2 * i] << 8) | blk[2 * i + 1];
      case 32: return ((blk[4 * i] << 24) | (blk[4 * i + 1] << 16) | (blk[4 * i + 2] << 8) | blk[4 * i + 3]) >>> 0;
      case 64: {
        const v = new DataView(blk.buffer, blk.byteOffset + 8 * i, 8);
        return v.getUint32(0) * 2 ** 32 + v.getUint32(4);
      }
      default: { // 1, 2 or 4 bits, least significant bits first
        const bit = i * this.bits;
        return (blk[bit >> 3] >> (bit & 7)) & this.max;
      }
    }
  }

  private setEntry(blk: Uint8Array, i: number, value: number): void {
    switch (this.bits) {
      case 8: blk[i] = value; break;
      case 16: blk[2 * i] = value >> 8; blk[2 * i + 1] = value & 0xff; break;
      case 32: new DataView(blk.buffer, blk.byteOffset).setUint32(4 * i, value); break;
      case 64: {
        const v = new DataView(blk.buffer, blk.byteOffset + 8 * i, 8);
        v.setUint32(0, Math.floor(value / 2 ** 32));
        v.setUint32(4, value >>> 0);
        break;
      }
      default: {
        const bit = i * this.bits;
        blk[bit >> 3] = (blk[bit >> 3] & ~(this.max << (bit & 7))) | (value << (bit & 7));
      }
    }
  }
}
