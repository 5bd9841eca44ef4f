/**
 * {@link BlockBackend} over a raw disk image file (Node only): a {@link RawBackend}
 * over a {@link NodeFile}. `flush()` is `fsyncSync`. For qcow2 images and format
 * detection use `openDisk` (disk.ts).
 *
 * Size: the capacity is the file size rounded *down* to a multiple of 512
 * bytes (virtio-blk counts 512-byte sectors); a trailing partial sector is
 * neither readable nor writable by the guest, and {@link RawBackend.ignoredBytes}
 * tells how many bytes were dropped so the caller can warn.
 */
import type { BlockBackend } from '../bus.js';
import { RawBackend } from '../block/raw.js';
import { NodeFile } from './file.js';

/** Options for {@link FileBlockBackend}. */
export interface FileBlockOptions {
  /** Open readonly ('r'); writes then throw. Default false ('r+'). */
  readonly?: boolean;
}

/** A raw image file as a block device. Call {@link close} when done. */
export class FileBlockBackend extends RawBackend implements BlockBackend {
  /**
   * Open `path`.
   * @throws BlockError with a clear message if the file does not exist, is not a
   *   regular file, or cannot be opened with the requested access.
   */
  constructor(readonly path: string, options: FileBlockOptions = {}) {
    super(new NodeFile(path, { readonly: options.readonly ?? false }));
  }
}
