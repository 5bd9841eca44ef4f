/**
 * Creating qcow2 version 3 images (QEMU docs/interop/qcow2.txt), as `qemu-img create
 * -f qcow2` does: 16-bit refcounts (refcount_order 4), zlib compression type, no
 * features, optionally a backing file with its format in a header extension.
 *
 * Layout: cluster 0 the header (+ extensions, backing file name), then the refcount
 * table, the refcount block(s) covering the initial clusters, then the L1 table (zeros,
 * written sparsely when the file can truncate). The refcount table is sized for the
 * image's worst case (every cluster allocated) up to 1 MiB, so it rarely needs to grow.
 */
import { BlockError } from './errors.js';
import type { RandomAccessFile } from './file.js';
import type { DiskFormat } from './image.js';
import { alignUp, EXT_BACKING_FORMAT, MAX_BACKING_NAME, MAX_CLUSTER_BITS, MAX_L1_BYTES, MIN_CLUSTER_BITS, QCOW2_MAGIC } from './qcow2-header.js';

/** Options of {@link createQcow2}. */
export interface Qcow2CreateOptions {
  /** Virtual disk size in bytes: positive, a multiple of 512. */
  size: number;
  /** log2 of the cluster size, 9..21 (default 16: 64 KiB). */
  clusterBits?: number;
  /** Backing file: the name stored in the header (relative names are relative to the image's directory) and its format. */
  backing?: { name: string; format: DiskFormat };
  /** Refcount table length in clusters (default: sized for the worst case, at most 1 MiB). */
  refcountTableClusters?: number;
}

/** Header length written (version 3 fields through compression_type, padded to 8). */
const HEADER_LENGTH = 112;
const REFCOUNT_ORDER = 4;

/**
 * Write a new, empty qcow2 v3 image into the empty `file` and sync it. The header is
 * written last, so a failed create never leaves a valid-looking image.
 * @throws BlockError for a non-empty file, a bad size or cluster size, a size beyond
 *   QEMU's L1 table limit for the cluster size, or a backing name that is empty, longer
 *   than 1023 bytes, contains NUL, or does not fit in the header cluster.
 */
export function createQcow2(file: RandomAccessFile, opts: Qcow2CreateOptions): void {
  const bad = (m: string): never => { throw new BlockError(`cannot create qcow2 image ${file.name}: ${m}`); };
  const cb = opts.clusterBits ?? 16;
  if (!Number.isInteger(cb) || cb < MIN_CLUSTER_BITS || cb > MAX_CLUSTER_BITS) bad(`cluster size 2^${cb} out of range (512 bytes to 2 MiB)`);
  const cs = 2 ** cb;
  const size = opts.size;
  if (!Number.isSafeInteger(size) || size <= 0 || size % 512 !== 0) bad(`size ${size} must be a positive multiple of 512 bytes`);
  const l2Entries = cs / 8;
  const l1Size = Math.ceil(size / (cs * l2Entries));
  if (l1Size * 8 > MAX_L1_BYTES) bad(`size ${size} too large for ${cs}-byte clusters (at most ${(MAX_L1_BYTES / 8) * l2Entries * cs} bytes)`);
  if (file.size() !== 0) bad('the file is not empty');

  // Header cluster: fields, extensions, backing file name.
  const hc = new Uint8Array(cs);
  const v = new DataView(hc.buffer);
  let pos = HEADER_LENGTH;
  let backingName: Uint8Array | null = null;
  if (opts.backing) {
    backingName = new TextEncoder().encode(opts.backing.name);
    if (backingName.length === 0) bad('empty backing file name');
    if (backingName.length > MAX_BACKING_NAME) bad(`backing file name longer than ${MAX_BACKING_NAME} bytes`);
    if (backingName.includes(0)) bad('backing file name contains a NUL byte');
    const fmt = opts.backing.format;
    v.setUint32(pos, EXT_BACKING_FORMAT);
    v.setUint32(pos + 4, fmt.length);
    for (let i = 0; i < fmt.length; i++) hc[pos + 8 + i] = fmt.charCodeAt(i);
    pos += 8 + alignUp(fmt.length, 8);
  }
  pos += 8; // end of the header extensions (type 0, length 0)
  if (backingName) {
    if (pos + backingName.length > cs) bad(`backing file name too long for ${cs}-byte clusters`);
    hc.set(backingName, pos);
  }

  // Refcount structures: table at cluster 1, then the blocks for the initial clusters, then L1.
  const perBlock = (cs * 8) / 2 ** REFCOUNT_ORDER;
  const l1Clusters = Math.ceil((l1Size * 8) / cs);
  let rt = opts.refcountTableClusters ?? 1;
  if (opts.refcountTableClusters === undefined) {
    // worst case: header, L1, every L2 table and data cluster, the refcount structures themselves
    const data = 1 + l1Clusters + l1Size + Math.ceil(size / cs);
    for (;;) {
      const blocks = Math.ceil((data + rt + Math.ceil((data + rt) / perBlock)) / perBlock);
      const need = Math.min(Math.max(1, Math.floor((1 << 20) / cs)), Math.ceil((blocks * 8) / cs));
      if (need <= rt) break;
      rt = need;
    }
  }
  let blocks = 1;
  for (;;) {
    const used = 1 + rt + blocks + l1Clusters;
    const need = Math.ceil(used / perBlock);
    if (need <= blocks) break;
    blocks = need;
  }
  if ((rt * cs) / 8 < blocks) rt = Math.ceil((blocks * 8) / cs);
  const rtOffset = cs;
  const blocksOffset = rtOffset + rt * cs;
  const l1Offset = blocksOffset + blocks * cs;
  const used = 1 + rt + blocks + l1Clusters;

  const table = new Uint8Array(rt * cs);
  const tv = new DataView(table.buffer);
  const rb = new Uint8Array(blocks * cs);
  const rv = new DataView(rb.buffer);
  for (let j = 0; j < blocks; j++) setU64(tv, j * 8, blocksOffset + j * cs);
  for (let c = 0; c < used; c++) rv.setUint16(c * 2, 1); // block j holds clusters j*perBlock.. contiguously
  file.write(table, rtOffset);
  file.write(rb, blocksOffset);
  const end = l1Offset + l1Clusters * cs;
  if (file.truncate) file.truncate(end);
  else file.write(new Uint8Array(l1Clusters * cs), l1Offset);

  v.setUint32(0, QCOW2_MAGIC);
  v.setUint32(4, 3);
  if (backingName) {
    setU64(v, 8, pos);
    v.setUint32(16, backingName.length);
  }
  v.setUint32(20, cb);
  setU64(v, 24, size);
  v.setUint32(32, 0); // no encryption
  v.setUint32(36, l1Size);
  setU64(v, 40, l1Offset);
  setU64(v, 48, rtOffset);
  v.setUint32(56, rt);
  // nb_snapshots, snapshots_offset, incompatible/compatible/autoclear features: 0
  v.setUint32(96, REFCOUNT_ORDER);
  v.setUint32(100, HEADER_LENGTH);
  // byte 104: compression_type 0 (zlib), then padding
  file.write(hc.subarray(0, backingName ? pos + backingName.length : pos), 0);
  file.sync();
}

function setU64(v: DataView, off: number, n: number): void {
  v.setUint32(off, Math.floor(n / 2 ** 32));
  v.setUint32(off + 4, n >>> 0);
}
