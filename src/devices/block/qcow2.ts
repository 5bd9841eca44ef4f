/**
 * The qcow2 disk format, versions 2 and 3 (QEMU docs/interop/qcow2.txt), as a
 * {@link BlockBackend}: reads (allocated, zero, compressed and unallocated clusters,
 * the latter from the backing image or as zeros) and writes (copy-on-write allocation at
 * the end of the file, L2 tables and refcount blocks allocated as needed).
 *
 * Metadata is written through at once, never cached dirty, in the order data cluster ->
 * refcount -> L2 entry -> L1 entry (see qcow2-refcount.ts), so a process killed at any
 * moment leaves an image that `qemu-img check` finds consistent, with at worst leaked
 * clusters; `flush()` is one fsync. (No fsync orders the writes between two flushes: after
 * an OS crash or power loss, metadata written since the last flush may have reached the
 * disk out of order and the image may need `qemu-img check -r all`.) L2 tables and
 * refcount blocks are cached for reads.
 *
 * Every table entry is checked before use: offsets cluster-aligned, past the header,
 * outside the L1 and refcount tables, not aliasing refcount blocks or (data clusters)
 * L2 tables, inside the file; reserved bits clear. A bad entry is a {@link BlockError}
 * and the read or write fails; nothing is written because of it.
 *
 * Not supported: encryption, external data files, extended L2 entries, non-zlib
 * compression (all refused at open); writing images with internal snapshots, a dirty or
 * corrupt bit (opened read-only only); writing shared clusters (refcount > 1, which
 * only snapshots create); discard. Written clusters are never compressed, and clusters
 * freed by overwriting compressed or preallocated zero clusters are not reused (the file
 * only grows; `qemu-img convert` compacts it).
 */
import { BlockError, checkNewSize } from './errors.js';
import { checkRange, type RandomAccessFile } from './file.js';
import type { DiskImage, ImageDescription } from './image.js';
import { LruCache } from './lru.js';
import { MAX_L1_BYTES, hex, type Qcow2Header } from './qcow2-header.js';
import { Qcow2Refcounts } from './qcow2-refcount.js';

/**
 * Inflates one compressed cluster: raw deflate data (RFC 1951, no zlib header; trailing
 * bytes after the end of the stream are ignored) to exactly `outputSize` bytes.
 * @throws on corrupt input or when the output is not `outputSize` bytes.
 */
export type Decompressor = (input: Uint8Array, outputSize: number) => Uint8Array;

/** Options of {@link Qcow2Backend.open}. */
export interface Qcow2Options {
  /** Refuse writes. Default: the file's `readonly`. */
  readonly?: boolean;
  /** The opened backing image (read-only), required when the header names one. */
  backing?: DiskImage | null;
  /** Needed to read compressed clusters. */
  decompress?: Decompressor;
  /** Bytes of L2 tables to cache (default 8 MiB) and of refcount blocks (a quarter of it). */
  cacheBytes?: number;
}

const enum Kind { Unallocated, Zero, Normal, Compressed }

/** What one L2 entry says about a guest cluster. */
interface Mapping {
  kind: Kind;
  /** Host byte offset: data cluster (Normal, Zero with preallocation) or compressed data. */
  host: number;
  /** QCOW_OFLAG_COPIED (bit 63): refcount is exactly 1. */
  copied: boolean;
  /** Compressed: bytes of compressed data from `host`. */
  bytes: number;
}

const UNALLOCATED: Mapping = { kind: Kind.Unallocated, host: 0, copied: false, bytes: 0 };
const COPIED = 0x80000000;

/** A qcow2 image as a block device. Create with {@link Qcow2Backend.open}. */
export class Qcow2Backend implements DiskImage {
  readonly format = 'qcow2' as const;
  private virtualBytes: number;
  readonly readonly: boolean;
  readonly backing: DiskImage | null;
  private readonly cs: number;
  private readonly l2Entries: number;
  private l1: Uint32Array; // hi, lo per entry
  private l1Bytes: number;
  private readonly l2Offsets = new Set<number>();
  private readonly l2Cache: LruCache<number, Uint8Array>;
  private readonly refcounts: Qcow2Refcounts;
  private readonly decompress: Decompressor | undefined;
  private readonly fileSizeAtOpen: number;
  private lastCompressed: { host: number; data: Uint8Array } | null = null;
  private autoclearDone = false;
  private failed: string | null = null;
  private closed = false;

  private constructor(private readonly file: RandomAccessFile, readonly header: Qcow2Header, opts: Qcow2Options) {
    const h = header;
    this.readonly = opts.readonly ?? file.readonly;
    this.backing = opts.backing ?? null;
    this.decompress = opts.decompress;
    this.cs = h.clusterSize;
    this.l2Entries = this.cs / 8;
    this.virtualBytes = h.size - (h.size % 512);
    this.fileSizeAtOpen = file.size();
    const cacheBytes = opts.cacheBytes ?? 8 << 20;
    this.l2Cache = new LruCache(Math.max(16, Math.floor(cacheBytes / this.cs)));
    this.l1Bytes = h.l1Size * 8;
    this.refcounts = new Qcow2Refcounts(file, this.fileSizeAtOpen, {
      clusterBits: h.clusterBits, refcountOrder: h.refcountOrder, tableOffset: h.refcountTableOffset,
      tableClusters: h.refcountTableClusters, cacheBytes: cacheBytes / 4,
      checkBlock: (off, i) => this.checkCluster(off, `refcount block (table entry ${i})`, false),
    }, this.bad);
    const raw = new Uint8Array(this.l1Bytes);
    file.read(raw, h.l1TableOffset);
    const v = new DataView(raw.buffer);
    this.l1 = new Uint32Array(h.l1Size * 2);
    for (let i = 0; i < h.l1Size; i++) {
      const hi = v.getUint32(i * 8), lo = v.getUint32(i * 8 + 4);
      if ((lo & 0x1ff) || (hi & 0x7f000000)) this.bad(`L1 entry ${i} has reserved bits set`);
      this.l1[2 * i] = hi;
      this.l1[2 * i + 1] = lo;
      const off = this.l1Offset(i);
      if (off !== 0) {
        this.checkCluster(off, 'L2 table', false);
        if (this.refcounts.blockOffsets.has(off)) this.bad(`L2 table ${hex(off)} overlaps a refcount block`);
        this.l2Offsets.add(off);
      }
    }
  }

  /**
   * Open a qcow2 image whose header {@link readQcow2Header} has read and validated:
   * reads and checks the L1 table and the refcount table. Never writes.
   * @throws BlockError for a bad table entry; when opened read-write, for a dirty bit
   *   (repair with `qemu-img check -r all`), a corrupt bit or internal snapshots; when the
   *   header names a backing file and none is given.
   */
  static open(file: RandomAccessFile, header: Qcow2Header, opts: Qcow2Options = {}): Qcow2Backend {
    const bad = (m: string): never => { throw new BlockError(`qcow2 image ${file.name}: ${m}`); };
    const readonly = opts.readonly ?? file.readonly;
    if (!readonly) {
      if (header.dirty) bad(`dirty bit set (refcounts may be stale): repair it with "qemu-img check -r all ${file.name}" or open it read-only`);
      if (header.corrupt) bad('marked corrupt: refusing to open it read-write (inspect it with "qemu-img check")');
      if (header.nbSnapshots > 0) bad(`has ${header.nbSnapshots} internal snapshot(s): tsvisor writes only images without snapshots (open it read-only)`);
    }
    if (header.backingFile !== null && !opts.backing) bad(`backing file ${header.backingFile} is not open`);
    return new Qcow2Backend(file, header, opts);
  }

  get name(): string {
    return this.file.name;
  }

  /** Guest-visible size: the virtual size rounded down to 512 bytes. */
  get size(): number {
    return this.virtualBytes;
  }

  /**
   * {@link DiskImage.resize} (as `qemu-img resize`): when the L1 table must cover more,
   * it grows in place if its clusters have room (the entries past it are zero), else a
   * copy is written to new clusters, synced, and the header switched to it in one
   * write before the old clusters are freed; then the header's size. A kill between the
   * steps leaves a valid image of the old size (at worst leaking the new table).
   */
  resize(bytes: number): void {
    if (this.closed) throw new BlockError(`disk image ${this.name} is closed`);
    const cs = this.cs;
    const span = cs * this.l2Entries; // guest bytes per L1 entry
    checkNewSize(this.name, this.virtualBytes, bytes, (MAX_L1_BYTES / 8) * span);
    if (bytes === this.virtualBytes) return;
    if (this.readonly) throw new BlockError(`disk image ${this.name} is read-only`);
    if (this.failed) this.bad(this.failed);
    const h = this.header;
    const need = Math.ceil(bytes / span);
    if (need > h.l1Size) {
      const oldClusters = Math.ceil(this.l1Bytes / cs);
      const room = oldClusters * cs;
      const tail = need * 8 <= room ? new Uint8Array(need * 8 - this.l1Bytes) : null;
      if (tail) this.file.read(tail, h.l1TableOffset + this.l1Bytes);
      const l1 = new Uint32Array(need * 2);
      l1.set(this.l1);
      if (tail && tail.every((b) => b === 0)) {
        this.writeHeaderL1(need, h.l1TableOffset);
      } else {
        const clusters = Math.ceil((need * 8) / cs);
        const at = this.refcounts.allocate(clusters);
        const t = new Uint8Array(clusters * cs);
        const v = new DataView(t.buffer);
        for (let i = 0; i < h.l1Size; i++) {
          v.setUint32(i * 8, this.l1[2 * i]);
          v.setUint32(i * 8 + 4, this.l1[2 * i + 1]);
        }
        this.file.write(t, at);
        this.refcounts.setRange(at / cs, clusters, 1);
        this.file.sync();
        const old = h.l1TableOffset;
        this.writeHeaderL1(need, at);
        if (old > 0) this.refcounts.setRange(old / cs, oldClusters, 0);
      }
      this.l1 = l1;
      this.l1Bytes = need * 8;
    }
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(bytes));
    this.file.write(b, 24); // header: size
    this.file.sync();
    h.size = bytes;
    this.virtualBytes = bytes;
  }

  /** Header fields l1_size (offset 36) and l1_table_offset (40) in one 12-byte write, synced. */
  private writeHeaderL1(l1Size: number, offset: number): void {
    const b = new Uint8Array(12);
    const v = new DataView(b.buffer);
    v.setUint32(0, l1Size);
    v.setBigUint64(4, BigInt(offset));
    this.file.write(b, 36);
    this.file.sync();
    this.header.l1Size = l1Size;
    this.header.l1TableOffset = offset;
  }

  /**
   * Fill `buf` from guest byte `offset`.
   * @throws RangeError outside the disk; BlockError for a bad table entry, a data
   *   cluster past the end of the file, a bad compressed cluster, or when closed.
   */
  read(buf: Uint8Array, offset: number): void {
    this.checkAccess(buf, offset);
    const cs = this.cs;
    // Runs of contiguous host data, of unallocated and of zero clusters are read at once.
    let runKind = -1, runStart = 0, runLen = 0, runHost = 0;
    const flush = () => {
      if (runLen === 0) return;
      const part = buf.subarray(runStart, runStart + runLen);
      if (runKind === Kind.Normal) {
        if (this.file.read(part, runHost) < runLen) this.bad(`data cluster at ${hex(runHost - (runHost % cs))} past the end of the file`);
      } else if (runKind === Kind.Unallocated) {
        this.readBacking(part, offset + runStart);
      } else {
        part.fill(0);
      }
      runLen = 0;
    };
    for (let pos = 0; pos < buf.length;) {
      const v = offset + pos;
      const within = v % cs;
      const len = Math.min(cs - within, buf.length - pos);
      const m = this.lookup(v);
      if (m.kind === Kind.Compressed) {
        flush();
        buf.set(this.compressedCluster(m).subarray(within, within + len), pos);
      } else {
        const host = m.host + within;
        const contiguous = runLen > 0 && runKind === m.kind && (m.kind !== Kind.Normal || runHost + runLen === host);
        if (!contiguous) {
          flush();
          runKind = m.kind;
          runStart = pos;
          runHost = host;
        }
        runLen += len;
      }
      pos += len;
    }
    flush();
  }

  /**
   * Write `buf` at guest byte `offset`: in place into clusters this image owns
   * (refcount 1), otherwise into newly allocated clusters filled from the old content
   * (backing image, zeros or decompressed data). After a failed write (an I/O error or
   * a bad table entry) the image refuses further writes until reopened.
   * @throws RangeError outside the disk; BlockError when readonly, closed, on a bad
   *   table entry, a shared cluster, or an I/O error.
   */
  write(buf: Uint8Array, offset: number): void {
    if (this.readonly) throw new BlockError(`disk image ${this.name} is readonly`);
    this.checkAccess(buf, offset);
    if (this.failed !== null) this.bad(`an earlier write failed (${this.failed}); reopen the image to write again`);
    try {
      if (!this.autoclearDone) {
        // Spec: unknown (to us: all) autoclear bits must be cleared before writing.
        if (this.header.autoclearFeatures !== 0n) this.file.write(new Uint8Array(8), 88);
        this.autoclearDone = true;
      }
      const span = this.l2Entries * this.cs;
      for (let pos = 0; pos < buf.length;) {
        const v = offset + pos;
        const len = Math.min(span - (v % span), buf.length - pos);
        this.writeSpan(buf.subarray(pos, pos + len), v);
        pos += len;
      }
    } catch (e) {
      this.failed = (e as Error).message;
      throw e;
    }
  }

  /** fsync the image file (nothing to do when readonly). @throws BlockError when closed or on I/O error. */
  flush(): void {
    if (this.closed) throw new BlockError(`disk image ${this.name} is closed`);
    if (!this.readonly) this.file.sync();
  }

  describe(): ImageDescription {
    const h = this.header;
    return {
      format: 'qcow2', virtualSize: this.size, clusterSize: this.cs,
      qcow2: { version: h.version, refcountBits: 2 ** h.refcountOrder, dirty: h.dirty, corrupt: h.corrupt, snapshots: h.nbSnapshots },
      ...(h.backingFile !== null ? { backingFile: h.backingFile } : {}),
      ...(h.backingFormat !== null ? { backingFormat: h.backingFormat } : {}),
    };
  }

  /** Close the file and the backing chain. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.file.close();
    } finally {
      this.backing?.close();
    }
  }

  // ---- mapping ----

  private l1Offset(i: number): number {
    return (this.l1[2 * i] & 0x00ffffff) * 2 ** 32 + ((this.l1[2 * i + 1] & 0xfffffe00) >>> 0);
  }

  /** The mapping of the guest cluster holding guest byte `v`. */
  private lookup(v: number): Mapping {
    const g = Math.floor(v / this.cs);
    const l2off = this.l1Offset(Math.floor(g / this.l2Entries));
    if (l2off === 0) return UNALLOCATED;
    return this.decode(this.l2Table(l2off), g % this.l2Entries, g);
  }

  /** Decode L2 entry `i` of `l2` (for guest cluster `g`), validating it. */
  private decode(l2: Uint8Array, i: number, g: number): Mapping {
    const hi = ((l2[8 * i] << 24) | (l2[8 * i + 1] << 16) | (l2[8 * i + 2] << 8) | l2[8 * i + 3]) >>> 0;
    const lo = ((l2[8 * i + 4] << 24) | (l2[8 * i + 5] << 16) | (l2[8 * i + 6] << 8) | l2[8 * i + 7]) >>> 0;
    if (hi === 0 && lo === 0) return UNALLOCATED;
    if (hi & 0x40000000) {
      // Compressed Clusters Descriptor: offset in bits 0..x-1, extra 512-byte sectors in x..61.
      const x = 70 - this.header.clusterBits;
      const e = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(lo);
      const host = Number(e & ((1n << BigInt(x)) - 1n));
      const sectors = Number(e >> BigInt(x)) + 1;
      if (host < this.cs) this.bad(`compressed cluster offset ${hex(host)} inside the header (guest offset ${hex(g * this.cs)})`);
      if (host >= this.fileLimit()) this.bad(`compressed cluster offset ${hex(host)} past the end of the file`);
      return { kind: Kind.Compressed, host, copied: false, bytes: sectors * 512 - (host % 512) };
    }
    if ((lo & 0x1fe) || (hi & 0x3f000000)) this.bad(`L2 entry for guest offset ${hex(g * this.cs)} has reserved bits set`);
    const host = (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
    const copied = (hi & COPIED) !== 0;
    if (host !== 0) this.checkCluster(host, 'data cluster', true);
    if (lo & 1) return { kind: Kind.Zero, host, copied, bytes: 0 };
    if (host === 0) return UNALLOCATED;
    return { kind: Kind.Normal, host, copied, bytes: 0 };
  }

  /** The L2 table at `off` (validated when its L1 entry was read or written). */
  private l2Table(off: number): Uint8Array {
    let t = this.l2Cache.get(off);
    if (!t) {
      t = new Uint8Array(this.cs);
      if (this.file.read(t, off) < this.cs) this.bad(`L2 table ${hex(off)} past the end of the file`);
      this.l2Cache.set(off, t);
    }
    return t;
  }

  /**
   * Check a cluster offset from a table: aligned, past the header, not in the L1 or
   * refcount table, not a refcount block, not an L2 table (`data`), inside the file.
   */
  private checkCluster(off: number, what: string, data: boolean): void {
    const cs = this.cs;
    if (off < cs) this.bad(`${what} offset ${hex(off)} inside the header`);
    if (off % cs !== 0) this.bad(`${what} offset ${hex(off)} not aligned to a cluster`);
    const l1 = this.header.l1TableOffset;
    if (this.l1Bytes > 0 && off + cs > l1 && off < l1 + this.l1Bytes) this.bad(`${what} offset ${hex(off)} inside the L1 table`);
    if (this.refcounts) {
      const rt = this.refcounts.tableRange;
      if (off + cs > rt.offset && off < rt.offset + rt.bytes) this.bad(`${what} offset ${hex(off)} inside the refcount table`);
      if (data && this.refcounts.blockOffsets.has(off)) this.bad(`${what} offset ${hex(off)} overlaps a refcount block`);
    } else {
      const h = this.header;
      if (off + cs > h.refcountTableOffset && off < h.refcountTableOffset + h.refcountTableClusters * cs) {
        this.bad(`${what} offset ${hex(off)} inside the refcount table`);
      }
    }
    if (data && this.l2Offsets.has(off)) this.bad(`${what} offset ${hex(off)} overlaps an L2 table`);
    if (off >= this.fileLimit()) this.bad(`${what} offset ${hex(off)} past the end of the file`);
  }

  /** Clusters may lie below this: the file's size at open or what we allocated since. */
  private fileLimit(): number {
    return this.refcounts ? Math.max(this.fileSizeAtOpen, this.refcounts.end) : this.fileSizeAtOpen;
  }

  /** Fill `buf` with the backing image's bytes at guest offset `v` (zeros past its end or without one). */
  private readBacking(buf: Uint8Array, v: number): void {
    const n = this.backing ? Math.max(0, Math.min(buf.length, this.backing.size - v)) : 0;
    if (n > 0) this.backing!.read(buf.subarray(0, n), v);
    buf.fill(0, n);
  }

  /** The decompressed content of a compressed cluster (the last one is cached). */
  private compressedCluster(m: Mapping): Uint8Array {
    if (this.lastCompressed?.host === m.host) return this.lastCompressed.data;
    if (!this.decompress) this.bad('compressed cluster found but no decompressor was given');
    const input = new Uint8Array(m.bytes);
    this.file.read(input, m.host); // the last sector may end past the end of the file: zeros
    let out: Uint8Array;
    try {
      out = this.decompress!(input, this.cs);
    } catch (e) {
      this.bad(`compressed cluster at ${hex(m.host)} does not inflate: ${(e as Error).message}`);
    }
    if (out!.length !== this.cs) this.bad(`compressed cluster at ${hex(m.host)} inflates to ${out!.length} bytes, not ${this.cs}`);
    this.lastCompressed = { host: m.host, data: out! };
    return out!;
  }

  // ---- writing ----

  /** Write `data` at guest offset `v`; the range lies within one L2 table's span. */
  private writeSpan(data: Uint8Array, v: number): void {
    const cs = this.cs;
    const l1i = Math.floor(v / (cs * this.l2Entries));
    let l2off = this.l1Offset(l1i);
    if (l2off !== 0) {
      this.requireOwned(l2off, 'L2 table'); // whatever QCOW_OFLAG_COPIED claims
      if (!(this.l1[2 * l1i] & COPIED)) this.writeL1(l1i, l2off);
    }
    const l2 = l2off !== 0 ? this.l2Table(l2off) : null;
    const g0 = Math.floor(v / cs), g1 = Math.floor((v + data.length - 1) / cs);
    const alloc: Array<{ g: number; m: Mapping }> = [];
    const fixCopied: number[] = [];
    const inPlace: Array<{ host: number; pos: number; len: number }> = [];
    for (let g = g0; g <= g1; g++) {
      const m = l2 ? this.decode(l2, g % this.l2Entries, g) : UNALLOCATED;
      if (m.kind !== Kind.Normal) { alloc.push({ g, m }); continue; }
      this.requireOwned(m.host, 'data cluster');
      if (!m.copied) fixCopied.push(g);
      const s = Math.max(v, g * cs), e = Math.min(v + data.length, (g + 1) * cs);
      const host = m.host + (s - g * cs);
      const last = inPlace[inPlace.length - 1];
      if (last && last.host + last.len === host && last.pos + last.len === s - v) last.len += e - s;
      else inPlace.push({ host, pos: s - v, len: e - s });
    }
    // Clusters replaced by new ones lose a reference afterwards; check that they have one first.
    const frees = new Map<number, number>();
    for (const { m } of alloc) {
      if (m.kind === Kind.Compressed) {
        for (let c = Math.floor(m.host / cs); c <= Math.floor((m.host + m.bytes - 1) / cs); c++) frees.set(c, (frees.get(c) ?? 0) + 1);
      } else if (m.kind === Kind.Zero && m.host !== 0) {
        frees.set(m.host / cs, (frees.get(m.host / cs) ?? 0) + 1);
      }
    }
    for (const [c, n] of frees) {
      const rc = this.refcounts.get(c);
      if (rc < n) this.bad(`refcount of cluster ${hex(c * cs)} is ${rc} but it is referenced`);
    }

    for (const r of inPlace) this.file.write(data.subarray(r.pos, r.pos + r.len), r.host);
    const entries = new Map<number, number>(); // guest cluster -> new host offset
    for (const g of fixCopied) entries.set(g, this.decode(l2!, g % this.l2Entries, g).host);
    if (alloc.length > 0) {
      // 1. data: every new cluster whole, old content under the new bytes
      const n = alloc.length;
      const at = this.refcounts.allocate(n);
      const nb = new Uint8Array(n * cs);
      alloc.forEach(({ g, m }, k) => {
        const slot = nb.subarray(k * cs, (k + 1) * cs);
        const gs = g * cs;
        const s = Math.max(v, gs), e = Math.min(v + data.length, gs + cs);
        if (s > gs || e < gs + cs) {
          if (m.kind === Kind.Unallocated) this.readBacking(slot, gs);
          else if (m.kind === Kind.Compressed) slot.set(this.compressedCluster(m));
        }
        slot.set(data.subarray(s - v, e - v), s - gs);
        entries.set(g, at + k * cs);
      });
      this.file.write(nb, at);
      // 2. their refcounts
      this.refcounts.setRange(at / cs, n, 1);
    }
    // 3. the L2 entries (4. a new L2 table's L1 entry)
    if (entries.size > 0) {
      if (l2) {
        let lo = this.l2Entries, hi = -1;
        for (const g of entries.keys()) { lo = Math.min(lo, g % this.l2Entries); hi = Math.max(hi, g % this.l2Entries); }
        const slice = l2.slice(lo * 8, (hi + 1) * 8);
        for (const [g, host] of entries) setEntry(slice, (g % this.l2Entries) - lo, host);
        this.file.write(slice, l2off + lo * 8);
        l2.set(slice, lo * 8);
      } else {
        const t = new Uint8Array(cs);
        for (const [g, host] of entries) setEntry(t, g % this.l2Entries, host);
        l2off = this.refcounts.allocate(1);
        this.file.write(t, l2off);
        this.refcounts.setRange(l2off / cs, 1, 1);
        this.l2Offsets.add(l2off);
        this.l2Cache.set(l2off, t);
        this.writeL1(l1i, l2off);
      }
    }
    // 5. drop the references of replaced clusters (a kill before this only leaks them)
    for (const [c, n] of frees) this.refcounts.setRange(c, 1, this.refcounts.get(c) - n);
    if (this.lastCompressed && frees.has(Math.floor(this.lastCompressed.host / cs))) this.lastCompressed = null;
  }

  /** Throw unless the cluster at `off` has refcount 1 (QCOW_OFLAG_COPIED may then be set). */
  private requireOwned(off: number, what: string): void {
    const rc = this.refcounts.get(off / this.cs);
    if (rc !== 1) this.bad(`${what} ${hex(off)} is shared (refcount ${rc}): writing shared clusters is not supported`);
  }

  /** Point L1 entry `i` at the L2 table at `off`, with QCOW_OFLAG_COPIED. */
  private writeL1(i: number, off: number): void {
    const b = new Uint8Array(8);
    setEntry(b, 0, off);
    this.file.write(b, this.header.l1TableOffset + i * 8);
    this.l1[2 * i] = (COPIED | Math.floor(off / 2 ** 32)) >>> 0;
    this.l1[2 * i + 1] = off >>> 0;
  }

  private checkAccess(buf: Uint8Array, offset: number): void {
    if (this.closed) throw new BlockError(`disk image ${this.name} is closed`);
    checkRange(this.name, offset, buf.length);
    if (offset + buf.length > this.size) {
      throw new RangeError(`disk image ${this.name}: access ${offset}+${buf.length} outside ${this.size} bytes`);
    }
  }

  private readonly bad = (m: string): never => {
    throw new BlockError(`qcow2 image ${this.file.name}: ${m}`);
  };
}

/** Store a standard cluster descriptor for `host` with QCOW_OFLAG_COPIED at entry `i` of `t`. */
function setEntry(t: Uint8Array, i: number, host: number): void {
  const v = new DataView(t.buffer, t.byteOffset + i * 8, 8);
  v.setUint32(0, (COPIED | Math.floor(host / 2 ** 32)) >>> 0);
  v.setUint32(4, host >>> 0);
}
