/**
 * The raw disk format: the file's bytes are the disk's bytes.
 *
 * Size: the capacity is the file size rounded *down* to a multiple of 512 bytes
 * (virtio-blk counts 512-byte sectors); a trailing partial sector is neither readable
 * nor writable, and {@link RawBackend.ignoredBytes} tells how many bytes were dropped.
 *
 * A raw image whose format was *detected* (not named by the user or an overlay header)
 * refuses a write that would make its first bytes the qcow2 magic: otherwise a guest
 * could turn its disk into a qcow2 header naming any host file as backing file, which
 * the next detection would open (QEMU refuses the same for probed raw images).
 */
import { BlockError, checkNewSize } from './errors.js';
import { totalLength, type RandomAccessFile } from './file.js';
import type { DiskImage, ImageDescription } from './image.js';
import { QCOW2_MAGIC } from './qcow2-header.js';

/** Options of {@link RawBackend}. */
export interface RawOptions {
  /** Refuse writes (the file may still be writable). Default: the file's own `readonly`. */
  readonly?: boolean;
  /** The format was detected, not given: refuse writing the qcow2 magic at offset 0. */
  probed?: boolean;
}

/** A raw image as a block device. */
export class RawBackend implements DiskImage {
  readonly format = 'raw' as const;
  readonly backing = null;
  private bytes: number;
  readonly readonly: boolean;
  /** Bytes at the end of the file beyond the last whole 512-byte sector (0..511), not exposed. */
  readonly ignoredBytes: number;
  private readonly probed: boolean;
  private closed = false;

  /** @param file the image; closed by {@link close}. */
  constructor(private readonly file: RandomAccessFile, options: RawOptions = {}) {
    this.readonly = options.readonly ?? file.readonly;
    this.probed = options.probed ?? false;
    const bytes = file.size();
    this.bytes = bytes - (bytes % 512);
    this.ignoredBytes = bytes % 512;
  }

  /** Capacity in bytes: the file size rounded down to 512 (grown by {@link resize}). */
  get size(): number {
    return this.bytes;
  }

  /** {@link DiskImage.resize}: the file is extended (sparsely) to `bytes`. */
  resize(bytes: number): void {
    if (this.closed) throw new BlockError(`disk image ${this.name} is closed`);
    checkNewSize(this.name, this.bytes, bytes, Number.MAX_SAFE_INTEGER - 511);
    if (bytes === this.bytes) return;
    if (this.readonly) throw new BlockError(`disk image ${this.name} is read-only`);
    if (!this.file.truncate) throw new BlockError(`disk image ${this.name}: this file cannot change its length`);
    this.file.truncate(bytes);
    this.file.sync();
    this.bytes = bytes;
  }

  get name(): string {
    return this.file.name;
  }

  /**
   * Fill `buf` from byte `offset`.
   * @throws RangeError if the range is outside the disk; BlockError if closed or the file shrank.
   */
  read(buf: Uint8Array, offset: number): void {
    this.check(buf, offset);
    const n = this.file.read(buf, offset);
    if (n < buf.length) throw new BlockError(`disk image ${this.name}: unexpected end of file at ${offset + n}`);
  }

  /**
   * Write `buf` at byte `offset`.
   * @throws BlockError when readonly, closed, or (detected format) the write would
   *   create a qcow2 header; RangeError if the range is outside the disk.
   */
  write(buf: Uint8Array, offset: number): void {
    if (this.readonly) throw new BlockError(`disk image ${this.name} is readonly`);
    this.check(buf, offset);
    if (this.probed && offset < 4 && buf.length > 0) {
      const head = new Uint8Array(4);
      this.file.read(head, 0);
      head.set(buf.subarray(0, 4 - offset), offset);
      if ((((head[0] << 24) | (head[1] << 16) | (head[2] << 8) | head[3]) >>> 0) === QCOW2_MAGIC) {
        throw new BlockError(`disk image ${this.name}: refused a write that would make this raw image (format detected, not named) look like a qcow2 image`);
      }
    }
    this.file.write(buf, offset);
  }

  /**
   * {@link read} into `bufs` one after the other from byte `offset`, in one vectored read
   * where the file has one.
   * @throws as {@link read}.
   */
  readv(bufs: readonly Uint8Array[], offset: number): void {
    const length = totalLength(bufs);
    this.checkSpan(offset, length);
    let n: number;
    if (this.file.readv) n = this.file.readv(bufs, offset);
    else {
      n = 0;
      for (const b of bufs) n += this.file.read(b, offset + n);
    }
    if (n < length) throw new BlockError(`disk image ${this.name}: unexpected end of file at ${offset + n}`);
  }

  /**
   * {@link write} of `bufs` one after the other at byte `offset`, in one vectored write
   * where the file has one.
   * @throws as {@link write}.
   */
  writev(bufs: readonly Uint8Array[], offset: number): void {
    if (this.readonly) throw new BlockError(`disk image ${this.name} is readonly`);
    this.checkSpan(offset, totalLength(bufs));
    if (!this.file.writev || (this.probed && offset < 4)) {
      // buffer by buffer, so that write() checks what reaches the first bytes
      let at = offset;
      for (const b of bufs) { this.write(b, at); at += b.length; }
      return;
    }
    this.file.writev(bufs, offset);
  }

  /** fsync the file (nothing to do when readonly). @throws BlockError when closed or on I/O error. */
  flush(): void {
    if (this.closed) throw new BlockError(`disk image ${this.name} is closed`);
    if (!this.readonly) this.file.sync();
  }

  describe(): ImageDescription {
    return { format: 'raw', virtualSize: this.size };
  }

  /** Close the file; later accesses throw. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.file.close();
  }

  private check(buf: Uint8Array, offset: number): void {
    this.checkSpan(offset, buf.length);
  }

  private checkSpan(offset: number, length: number): void {
    if (this.closed) throw new BlockError(`disk image ${this.name} is closed`);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > this.size) {
      throw new RangeError(`disk image ${this.name}: access ${offset}+${length} outside ${this.size} bytes`);
    }
  }
}
