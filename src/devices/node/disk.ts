/**
 * Disk images on the host (Node only): open raw and qcow2 files with their backing
 * chain, create them, describe them (`tsvisor disk create|info`, `--disk`).
 *
 * Backing file names stored in a qcow2 header are relative to the directory of the
 * overlay as it was opened (as QEMU resolves them); absolute names are used as is.
 */
import { statSync, unlinkSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { constants as zlibConstants, inflateRawSync } from 'node:zlib';
import { BlockError } from '../block/errors.js';
import { imageChain, openImage, type DiskFormat, type DiskImage, type ImageDescription, type ImageLocator } from '../block/image.js';
import type { Decompressor } from '../block/qcow2.js';
import { createQcow2 } from '../block/qcow2-create.js';
import { NodeFile } from './file.js';

export type { DiskFormat, DiskImage } from '../block/image.js';

/** zlib raw inflate of one compressed qcow2 cluster (QEMU's qcow2 "zlib" compression type). */
export const inflateCluster: Decompressor = (input, outputSize) =>
  inflateRawSync(input, { maxOutputLength: outputSize, finishFlush: zlibConstants.Z_SYNC_FLUSH });

/** Resolve a backing file name stored in (or given for) the image at `overlay`. */
export function resolveBacking(name: string, overlay: string): string {
  return isAbsolute(name) ? name : join(dirname(overlay), name);
}

const hostFiles: ImageLocator = {
  open(name, from, readonly) {
    const path = from === null ? name : resolveBacking(name, from);
    const file = new NodeFile(path, { readonly });
    const st = file.stat();
    return { file, location: path, id: `${st.dev}:${st.ino}` };
  },
};

/** Options of {@link openDisk}. */
export interface OpenDiskOptions {
  /** Open read-only (backing files always are). Default false. */
  readonly?: boolean;
  /** The format; detected from the file's first bytes when absent. */
  format?: DiskFormat;
  /** Most backing files below the image (default 16). */
  maxBackingDepth?: number;
}

/**
 * Open the disk image at `path` (raw or qcow2, with its backing chain) as a block device.
 * Close it (and the chain) with `close()`. Never writes while opening.
 * @throws BlockError with a one-line message: file not found, not a regular file,
 *   permission, bad or unsupported image, backing file problems, loops, chains too deep.
 */
export function openDisk(path: string, opts: OpenDiskOptions = {}): DiskImage {
  return openImage(path, hostFiles, { ...opts, decompress: inflateCluster });
}

/** Options of {@link createDisk}. Sizes in bytes. */
export interface CreateDiskOptions {
  format: DiskFormat;
  /** Virtual size (a positive multiple of 512); default: the backing image's size. */
  size?: number;
  /** Backing file name, stored as given, resolved relative to the new image's directory (qcow2 only). */
  backing?: string;
  /** Format of the backing file; detected when absent. */
  backingFormat?: DiskFormat;
  /** qcow2 cluster size in bytes, a power of two from 512 to 2 MiB (default 64 KiB). */
  clusterSize?: number;
}

/**
 * Create the disk image `path` (never overwriting an existing file): a sparse raw file,
 * or an empty qcow2 v3 image, optionally over a backing file (which is opened, with its
 * chain, to check it and learn its size and format).
 * @returns the virtual size and, with a backing file, its format.
 * @throws BlockError for an existing file, a bad size or cluster size, a backing file
 *   that cannot be opened, or a backing file with raw.
 */
export function createDisk(path: string, opts: CreateDiskOptions): { size: number; backingFormat?: DiskFormat } {
  let size = opts.size;
  let backing: { name: string; format: DiskFormat } | undefined;
  if (opts.backing !== undefined) {
    if (opts.format !== 'qcow2') throw new BlockError('a raw image cannot have a backing file (use --format qcow2)');
    const base = openDisk(resolveBacking(opts.backing, path), { readonly: true, format: opts.backingFormat });
    try {
      backing = { name: opts.backing, format: base.format };
      size ??= base.size;
    } finally {
      base.close();
    }
  }
  if (size === undefined) throw new BlockError('a size is needed (or a backing file to take it from)');
  if (!Number.isSafeInteger(size) || size <= 0 || size % 512 !== 0) throw new BlockError(`size ${size}: must be a positive multiple of 512 bytes`);
  let clusterBits: number | undefined;
  if (opts.clusterSize !== undefined) {
    clusterBits = Math.log2(opts.clusterSize);
    if (!Number.isInteger(clusterBits) || clusterBits < 9 || clusterBits > 21) {
      throw new BlockError(`cluster size ${opts.clusterSize}: must be a power of two from 512 bytes to 2 MiB`);
    }
  }
  const file = new NodeFile(path, { create: true });
  try {
    if (opts.format === 'raw') {
      file.truncate(size);
      file.sync();
    } else {
      createQcow2(file, { size, clusterBits, backing });
    }
    file.close();
  } catch (e) {
    file.close();
    try { unlinkSync(path); } catch { /* already gone */ }
    throw e;
  }
  return { size, ...(backing ? { backingFormat: backing.format } : {}) };
}

/** One image of a chain as `tsvisor disk info` shows it. Sizes in bytes. */
export interface DiskImageInfo extends ImageDescription {
  /** The path it was opened by (backing files: resolved against their overlay). */
  path: string;
  /** The file's length. */
  fileSize: number;
  /** Space the file takes on the host (st_blocks * 512). */
  actualSize: number;
  /** The backing file's resolved path. */
  fullBackingFile?: string;
}

/** `tsvisor disk info`: the image and its whole chain (`chain[0]` is the image itself). */
export interface DiskInfo extends DiskImageInfo {
  chain: DiskImageInfo[];
}

/**
 * Describe the disk image at `path` and its backing chain (opened read-only).
 * @throws BlockError as {@link openDisk}.
 */
export function diskInfo(path: string, opts: { format?: DiskFormat } = {}): DiskInfo {
  const disk = openDisk(path, { readonly: true, format: opts.format });
  try {
    const chain = imageChain(disk).map((d): DiskImageInfo => {
      const st = statSync(d.name);
      return {
        path: d.name, ...d.describe(), fileSize: st.size, actualSize: st.blocks * 512,
        ...(d.backing ? { fullBackingFile: d.backing.name } : {}),
      };
    });
    return { ...chain[0], chain };
  } finally {
    disk.close();
  }
}
