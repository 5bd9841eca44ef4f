/**
 * Disk images: the formats (raw, qcow2), format detection, and opening an image with its
 * chain of backing files over any {@link RandomAccessFile} source.
 *
 * An image is a {@link DiskImage}: a {@link BlockBackend} (what virtio-blk reads and
 * writes) that also names its format and backing image and closes its whole chain.
 * `devices/node/disk.ts` opens host files through {@link openImage}.
 */
import type { BlockBackend } from '../bus.js';
import { BlockError } from './errors.js';
import type { RandomAccessFile } from './file.js';
import { RawBackend } from './raw.js';
import { Qcow2Backend, type Decompressor } from './qcow2.js';
import { QCOW2_MAGIC, readQcow2Header } from './qcow2-header.js';

/** The disk formats tsvisor reads and writes. */
export type DiskFormat = 'raw' | 'qcow2';

/** Every format name {@link openImage} accepts. */
export const DISK_FORMATS: readonly DiskFormat[] = ['raw', 'qcow2'];

/** What one image of a chain is (for `tsvisor disk info`). Sizes in bytes. */
export interface ImageDescription {
  format: DiskFormat;
  /** The size the guest sees (bytes, a multiple of 512). */
  virtualSize: number;
  /** qcow2 only: bytes per cluster. */
  clusterSize?: number;
  /** qcow2 only: header details. */
  qcow2?: { version: number; refcountBits: number; dirty: boolean; corrupt: boolean; snapshots: number };
  /** qcow2 only: the backing file name exactly as stored in the header. */
  backingFile?: string;
  /** qcow2 only: the backing format as stored in the header extension (absent: detected). */
  backingFormat?: string;
}

/** An open disk image: a block device plus its format and backing chain. */
export interface DiskImage extends BlockBackend {
  readonly format: DiskFormat;
  /** The file's name (a host path for host files). */
  readonly name: string;
  /** The image this one reads unallocated data from (opened read-only), or null. */
  readonly backing: DiskImage | null;
  /** Format details of this image alone. */
  describe(): ImageDescription;
  /**
   * Grow the size the guest sees to `bytes` (a multiple of 512, at least the current
   * size; the same size is a no-op). The backing chain is not touched: past its end an
   * overlay reads zeros. Durable (synced) when it returns.
   * @throws BlockError when read-only, closed, smaller than now, not a multiple of 512,
   *   too large for the format, or on an I/O error (the image is then as before, or grown).
   */
  resize(bytes: number): void;
  /** Close this image's file and its whole backing chain. Idempotent. */
  close(): void;
}

/**
 * The format of `file` by its first bytes: `qcow2` when it starts with the qcow2 magic
 * "QFI\xfb" (qcow2 spec, "Header"), otherwise `raw`. Never writes.
 */
export function detectFormat(file: RandomAccessFile): DiskFormat {
  const b = new Uint8Array(4);
  const n = file.read(b, 0);
  const magic = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  return n === 4 && magic === QCOW2_MAGIC ? 'qcow2' : 'raw';
}

/** Where the files of an image chain come from (host files, memory, ...). */
export interface ImageLocator {
  /**
   * Open the file `name`. `from` is the `location` of the image whose header names it as
   * its backing file, or null for the top image (then `name` is as the user gave it).
   * @returns the file; `location`, the resolved name that later backing names are
   *   relative to; `id`, equal for two names of the same file (loop detection).
   * @throws BlockError (or any Error) when it cannot be opened.
   */
  open(name: string, from: string | null, readonly: boolean): { file: RandomAccessFile; location: string; id: string };
}

/** Options of {@link openImage}. */
export interface OpenImageOptions {
  /** Open the top image read-only (backing images are always read-only). Default false. */
  readonly?: boolean;
  /** Format of the top image; detected from its header when absent. */
  format?: DiskFormat;
  /** Inflates compressed qcow2 clusters; without it, reading one is an error. */
  decompress?: Decompressor;
  /** Most backing files below the top image (default 16). */
  maxBackingDepth?: number;
}

/** Default limit of {@link OpenImageOptions.maxBackingDepth}. */
export const MAX_BACKING_DEPTH = 16;

/**
 * Open image `name` and its backing chain (qcow2 spec: backing_file_offset; the backing
 * format from the 0xe2792aca header extension, else detected). Backing files are opened
 * read-only, named relative to their overlay as the locator resolves them.
 *
 * Opening never writes any file.
 * @throws BlockError for a bad or unsupported image anywhere in the chain, a backing
 *   file that cannot be opened, a loop (`backing file loop: a -> b -> a`) or a chain
 *   deeper than `maxBackingDepth`. Files opened so far are closed.
 */
export function openImage(name: string, locator: ImageLocator, opts: OpenImageOptions = {}): DiskImage {
  const maxDepth = opts.maxBackingDepth ?? MAX_BACKING_DEPTH;
  const seen: Array<{ id: string; name: string }> = [];

  const openLevel = (n: string, parent: { location: string; name: string } | null, readonly: boolean, format: DiskFormat | undefined): DiskImage => {
    let opened: { file: RandomAccessFile; location: string; id: string };
    try {
      opened = locator.open(n, parent ? parent.location : null, readonly);
    } catch (e) {
      if (!parent) throw e;
      throw new BlockError(`qcow2 image ${parent.name}: cannot open its backing file ${n}: ${(e as Error).message}`, { cause: e });
    }
    const { file, location, id } = opened;
    try {
      const loop = seen.findIndex((s) => s.id === id);
      if (loop >= 0) throw new BlockError(`backing file loop: ${[...seen.slice(loop).map((s) => s.name), n].join(' -> ')}`);
      if (seen.length > maxDepth) throw new BlockError(`backing chain of ${seen[0].name} is deeper than ${maxDepth} backing files`);
      seen.push({ id, name: n });
      const fmt = format ?? detectFormat(file);
      if (fmt === 'raw') return new RawBackend(file, { readonly, probed: format === undefined });
      const header = readQcow2Header(file);
      let backing: DiskImage | null = null;
      if (header.backingFile !== null) {
        const bf = header.backingFormat;
        if (bf !== null && !DISK_FORMATS.includes(bf as DiskFormat)) {
          throw new BlockError(`qcow2 image ${file.name}: backing format "${bf}" is not supported (${DISK_FORMATS.join(', ')})`);
        }
        backing = openLevel(header.backingFile, { location, name: file.name }, true, (bf ?? undefined) as DiskFormat | undefined);
      }
      try {
        return Qcow2Backend.open(file, header, { readonly, backing, decompress: opts.decompress });
      } catch (e) {
        backing?.close();
        throw e;
      }
    } catch (e) {
      file.close();
      throw e;
    }
  };
  return openLevel(name, null, opts.readonly ?? false, opts.format);
}

/** The images of a chain, top first. */
export function imageChain(top: DiskImage): DiskImage[] {
  const out: DiskImage[] = [];
  for (let d: DiskImage | null = top; d; d = d.backing) out.push(d);
  return out;
}
