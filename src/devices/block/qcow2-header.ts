/**
 * qcow2 header: constants, parsing and validation (QEMU docs/interop/qcow2.txt,
 * "Header", "Header extensions", "Feature name table").
 *
 * A header is untrusted input: every field is checked before use, and every problem is
 * a {@link BlockError} whose message names the image and the field, e.g.
 * `qcow2 image a.qcow2: L1 table past the end of the file`. Parsing never writes.
 */
import { BlockError } from './errors.js';
import type { RandomAccessFile } from './file.js';

/** "QFI\xfb", big-endian. */
export const QCOW2_MAGIC = 0x514649fb;
/** Smallest and largest cluster_bits (512 bytes .. 2 MiB, as QEMU). */
export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
/** Largest active L1 table, bytes (QEMU's QCOW_MAX_L1_SIZE). */
export const MAX_L1_BYTES = 32 << 20;
/** Largest refcount table, bytes (QEMU's QCOW_MAX_REFTABLE_SIZE). */
export const MAX_REFTABLE_BYTES = 8 << 20;
/** Most internal snapshots (QEMU's QCOW_MAX_SNAPSHOTS). */
export const MAX_SNAPSHOTS = 65536;
/** Longest backing file name, bytes. */
export const MAX_BACKING_NAME = 1023;
/** Version 2 header length; version 3 headers are at least {@link V3_MIN_HEADER_LENGTH}. */
export const V2_HEADER_LENGTH = 72;
export const V3_MIN_HEADER_LENGTH = 104;

/** Incompatible feature bits (header bytes 72-79). */
export const INCOMPAT_DIRTY = 1n << 0n;
export const INCOMPAT_CORRUPT = 1n << 1n;
export const INCOMPAT_DATA_FILE = 1n << 2n;
export const INCOMPAT_COMPRESSION = 1n << 3n;
export const INCOMPAT_EXTL2 = 1n << 4n;
const INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

/** Header extension types. */
export const EXT_END = 0;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;

/** The parsed, validated header of a qcow2 image. Offsets and sizes in bytes. */
export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  clusterSize: number;
  /** Virtual disk size as stored (bytes). */
  size: number;
  /** Active L1 table: entries and file offset (cluster-aligned, inside the file). */
  l1Size: number;
  l1TableOffset: number;
  /** Refcount table: file offset (cluster-aligned, inside the file) and length in clusters. */
  refcountTableOffset: number;
  refcountTableClusters: number;
  /** log2 of the refcount width in bits (0..6; version 2: 4). */
  refcountOrder: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  /** 72 for version 2. */
  headerLength: number;
  /** The backing file name as stored, or null. */
  backingFile: string | null;
  /** From the backing format header extension, or null (then detected). */
  backingFormat: string | null;
  /** Dirty bit: refcounts may be wrong (lazy refcounts); refused read-write. */
  dirty: boolean;
  /** Corrupt bit: refused read-write. */
  corrupt: boolean;
}

/** `0x...` for messages. */
export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Round `n` up to a multiple of `m` (a power of two up to 2^21). */
export function alignUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/**
 * Read and validate the header of the qcow2 image in `file`: magic, version (2 or 3),
 * header_length, cluster_bits (9..21), virtual size, encryption (refused), incompatible
 * features (external data file, non-zlib compression, extended L2 and unknown bits are
 * refused; dirty and corrupt are reported for the caller to refuse read-write), L1
 * table and refcount table placement (cluster-aligned, past the header, inside the file,
 * not overlapping each other, within QEMU's size limits), the snapshot table offset,
 * refcount_order (<= 6), the backing file name (1..1023 bytes inside the header cluster,
 * valid UTF-8) and the header extensions (bounded by the header cluster and the backing
 * file name; the backing format is at most 15 printable characters).
 * @throws BlockError naming the first problem.
 */
export function readQcow2Header(file: RandomAccessFile): Qcow2Header {
  const name = file.name;
  const bad = (m: string): never => { throw new BlockError(`qcow2 image ${name}: ${m}`); };
  const fileSize = file.size();
  if (fileSize < V2_HEADER_LENGTH) bad(`file too short for a qcow2 header (${fileSize} bytes)`);
  const first = new Uint8Array(V2_HEADER_LENGTH);
  file.read(first, 0);
  let v = new DataView(first.buffer);
  const u64 = (off: number, what: string): number => {
    const hi = v.getUint32(off), lo = v.getUint32(off + 4);
    if (hi >= 0x200000) bad(`${what} ${hi.toString(16)}${lo.toString(16).padStart(8, '0')} too large`);
    return hi * 2 ** 32 + lo;
  };
  if (v.getUint32(0) !== QCOW2_MAGIC) bad('bad magic (not a qcow2 image)');
  const version = v.getUint32(4);
  if (version !== 2 && version !== 3) bad(`unsupported qcow2 version ${version} (tsvisor reads versions 2 and 3)`);
  const clusterBits = v.getUint32(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    bad(`cluster_bits ${clusterBits} out of range (${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS}: 512 bytes to 2 MiB clusters)`);
  }
  const cs = 2 ** clusterBits;
  // The whole header cluster (or what the file has of it): fields, extensions, backing name.
  const hc = new Uint8Array(cs);
  const have = file.read(hc, 0);
  v = new DataView(hc.buffer);
  const backingFileOffset = u64(8, 'backing_file_offset');
  const backingFileSize = v.getUint32(16);
  const size = u64(24, 'size');
  const cryptMethod = v.getUint32(32);
  const l1Size = v.getUint32(36);
  const l1TableOffset = u64(40, 'l1_table_offset');
  const refcountTableOffset = u64(48, 'refcount_table_offset');
  const refcountTableClusters = v.getUint32(56);
  const nbSnapshots = v.getUint32(60);
  const snapshotsOffset = u64(64, 'snapshots_offset');

  let incompatibleFeatures = 0n, compatibleFeatures = 0n, autoclearFeatures = 0n;
  let refcountOrder = 4, headerLength = V2_HEADER_LENGTH, compressionType = 0;
  if (version === 3) {
    if (have < V3_MIN_HEADER_LENGTH) bad(`file too short for a version 3 header (${have} bytes)`);
    incompatibleFeatures = v.getBigUint64(72);
    compatibleFeatures = v.getBigUint64(80);
    autoclearFeatures = v.getBigUint64(88);
    refcountOrder = v.getUint32(96);
    headerLength = v.getUint32(100);
    if (headerLength < V3_MIN_HEADER_LENGTH) bad(`header_length ${headerLength} too short (at least ${V3_MIN_HEADER_LENGTH})`);
    if (headerLength % 8 !== 0) bad(`header_length ${headerLength} not a multiple of 8`);
    if (headerLength > cs) bad(`header_length ${headerLength} exceeds the cluster size ${cs}`);
    if (headerLength > have) bad(`header_length ${headerLength} past the end of the file`);
    if (headerLength > 104) compressionType = hc[104];
  }

  // Features (spec: "An implementation must fail to open an image if an unknown bit is set").
  if (cryptMethod !== 0) bad(`encrypted images are not supported (crypt_method ${cryptMethod})`);
  const unknown = incompatibleFeatures & ~INCOMPAT_KNOWN;
  if (unknown) {
    const names = featureNames(hc, headerLength, backingFileOffset || cs);
    const bits: string[] = [];
    for (let b = 0; b < 64; b++) if (unknown & (1n << BigInt(b))) bits.push(`bit ${b}${names.get(b) ? ` (${names.get(b)})` : ''}`);
    bad(`unsupported incompatible feature ${bits.join(', ')}`);
  }
  if (incompatibleFeatures & INCOMPAT_DATA_FILE) bad('external data files are not supported');
  if (incompatibleFeatures & INCOMPAT_EXTL2) bad('extended L2 entries (subclusters) are not supported');
  if (incompatibleFeatures & INCOMPAT_COMPRESSION) bad(`compression type ${compressionType === 1 ? 'zstd' : compressionType} is not supported (only zlib)`);
  if (compressionType !== 0) bad(`compression_type ${compressionType} set without its incompatible feature bit`);
  if (refcountOrder > 6) bad(`refcount_order ${refcountOrder} unsupported (at most 6: 64-bit refcounts)`);

  // Virtual size and the active L1 table.
  const l2Entries = cs / 8;
  const maxSize = (MAX_L1_BYTES / 8) * l2Entries * cs;
  if (size > maxSize || size > Number.MAX_SAFE_INTEGER) bad(`virtual size ${size} too large for ${cs}-byte clusters`);
  const l1Needed = Math.ceil(size / (cs * l2Entries));
  if (l1Size < l1Needed) bad(`L1 table too small (${l1Size} entries for a ${size}-byte disk, at least ${l1Needed} needed)`);
  if (l1Size > MAX_L1_BYTES / 8) bad(`L1 table too large (${l1Size} entries)`);
  if (l1Size > 0) {
    if (l1TableOffset % cs !== 0) bad(`L1 table offset ${hex(l1TableOffset)} not aligned to a cluster`);
    if (l1TableOffset < cs) bad(`L1 table offset ${hex(l1TableOffset)} inside the header`);
    if (l1TableOffset + l1Size * 8 > fileSize) bad('L1 table past the end of the file');
  }

  // Refcount table.
  if (refcountTableClusters === 0) bad('no refcount table (refcount_table_clusters is 0)');
  if (refcountTableClusters * cs > MAX_REFTABLE_BYTES) bad(`refcount table too large (${refcountTableClusters} clusters)`);
  if (refcountTableOffset % cs !== 0) bad(`refcount table offset ${hex(refcountTableOffset)} not aligned to a cluster`);
  if (refcountTableOffset < cs) bad(`refcount table offset ${hex(refcountTableOffset)} inside the header`);
  if (refcountTableOffset + refcountTableClusters * cs > fileSize) bad('refcount table past the end of the file');
  if (l1Size > 0 && l1TableOffset < refcountTableOffset + refcountTableClusters * cs && refcountTableOffset < l1TableOffset + l1Size * 8) {
    bad('L1 table overlaps the refcount table');
  }

  // Snapshots: only the active L1 table is read; the table offset must still be sane.
  if (nbSnapshots > MAX_SNAPSHOTS) bad(`too many snapshots (${nbSnapshots})`);
  if (nbSnapshots > 0) {
    if (snapshotsOffset % cs !== 0) bad(`snapshot table offset ${hex(snapshotsOffset)} not aligned to a cluster`);
    if (snapshotsOffset < cs || snapshotsOffset >= fileSize) bad(`snapshot table offset ${hex(snapshotsOffset)} outside the image`);
  }

  // Backing file name: bytes [backingFileOffset, +backingFileSize) of the header cluster.
  let backingFile: string | null = null;
  if (backingFileOffset !== 0 && backingFileSize !== 0) {
    if (backingFileOffset < headerLength || backingFileOffset >= cs) bad(`backing file name offset ${hex(backingFileOffset)} outside the header cluster`);
    if (backingFileSize > MAX_BACKING_NAME) bad(`backing file name too long (${backingFileSize} bytes, at most ${MAX_BACKING_NAME})`);
    if (backingFileOffset + backingFileSize > cs) bad(`backing file name (${backingFileSize} bytes at ${hex(backingFileOffset)}) runs past the header cluster`);
    if (backingFileOffset + backingFileSize > have) bad('backing file name past the end of the file');
    const raw = hc.subarray(backingFileOffset, backingFileOffset + backingFileSize);
    if (raw.includes(0)) bad('backing file name contains a NUL byte');
    try {
      backingFile = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      bad('backing file name is not valid UTF-8');
    }
  } else if (backingFileOffset > cs) {
    bad(`backing file name offset ${hex(backingFileOffset)} outside the header cluster`);
  }

  // Header extensions, between the header and the backing file name (or the cluster end).
  let backingFormat: string | null = null;
  const extEnd = Math.min(backingFile !== null ? backingFileOffset : cs, have);
  for (let pos = headerLength; pos + 8 <= extEnd;) {
    const type = v.getUint32(pos);
    const len = v.getUint32(pos + 4);
    if (type === EXT_END) break;
    const data = pos + 8;
    if (len > extEnd - data) bad(`header extension ${hex(type)} (${len} bytes at ${hex(pos)}) runs past the header extension area`);
    if (type === EXT_BACKING_FORMAT) {
      const s = String.fromCharCode(...hc.subarray(data, data + len));
      if (len === 0 || len > 15 || !/^[\x21-\x7e]+$/.test(s)) bad(`bad backing format header extension (${len} bytes)`);
      backingFormat = s;
    }
    pos = data + alignUp(len, 8);
  }

  return {
    version: version as 2 | 3, clusterBits, clusterSize: cs, size, l1Size, l1TableOffset, refcountTableOffset, refcountTableClusters,
    refcountOrder, nbSnapshots, snapshotsOffset, incompatibleFeatures, compatibleFeatures, autoclearFeatures,
    headerLength, backingFile, backingFormat,
    dirty: (incompatibleFeatures & INCOMPAT_DIRTY) !== 0n,
    corrupt: (incompatibleFeatures & INCOMPAT_CORRUPT) !== 0n,
  };
}

/**
 * Names of incompatible features from the feature name table extension (spec "Feature
 * name table"), by bit number; best effort (a malformed table yields fewer names).
 */
function featureNames(hc: Uint8Array, start: number, end: number): Map<number, string> {
  const names = new Map<number, string>();
  const v = new DataView(hc.buffer, hc.byteOffset, hc.byteLength);
  end = Math.min(end, hc.length);
  for (let pos = start; pos + 8 <= end;) {
    const type = v.getUint32(pos), len = v.getUint32(pos + 4);
    if (type === EXT_END || len > end - pos - 8) break;
    if (type === EXT_FEATURE_TABLE) {
      for (let e = pos + 8; e + 48 <= pos + 8 + len; e += 48) {
        if (hc[e] !== 0 || hc[e + 1] > 63) continue;
        const raw = hc.subarray(e + 2, e + 48);
        const z = raw.indexOf(0);
        const s = String.fromCharCode(...raw.subarray(0, z < 0 ? raw.length : z)).replace(/[^\x20-\x7e]/g, '?');
        if (s) names.set(hc[e + 1], s);
      }
    }
    pos += 8 + alignUp(len, 8);
  }
  return names;
}
