/**
 * {@link BlockBackend} over a raw disk image file (Node only).
 *
 * The file is opened with `fs.openSync` ('r' when readonly, 'r+' otherwise)
 * and accessed with positioned `readSync`/`writeSync`; `flush()` is `fsyncSync`.
 *
 * Size: the capacity is the file size rounded *down* to a multiple of 512
 * bytes (virtio-blk counts 512-byte sectors); a trailing partial sector is
 * neither readable nor writable by the guest, and {@link FileBlockBackend.ignoredBytes}
 * tells how many bytes were dropped so the caller can warn.
 */
import * as fs from 'node:fs';
import type { BlockBackend } from '../bus.js';

/** Options for {@link FileBlockBackend}. */
export interface FileBlockOptions {
  /** Open readonly ('r'); writes then throw. Default false ('r+'). */
  readonly?: boolean;
}

/** A raw image file as a block device. Call {@link close} when done. */
export class FileBlockBackend implements BlockBackend {
  readonly size: number;
  readonly readonly: boolean;
  /** Bytes at the end of the file beyond the last whole 512-byte sector (0..511), not exposed. */
  readonly ignoredBytes: number;
  private fd: number | null;

  /**
   * Open `path`.
   * @throws Error with a clear message if the file does not exist, is not a
   *   regular file (host block devices are not supported: fstat reports no size),
   *   or cannot be opened with the requested access.
   */
  constructor(readonly path: string, options: FileBlockOptions = {}) {
    this.readonly = options.readonly ?? false;
    let fd: number;
    try {
      fd = fs.openSync(path, this.readonly ? 'r' : 'r+');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new Error(`disk image not found: ${path}`);
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
        throw new Error(`disk image ${path} cannot be opened ${this.readonly ? 'for reading' : 'for writing (use readonly)'}: ${code}`);
      }
      throw new Error(`cannot open disk image ${path}: ${(e as Error).message}`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new Error(`disk image ${path} is not a regular file`);
      const bytes = st.size;
      this.size = bytes - (bytes % 512);
      this.ignoredBytes = bytes % 512;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    this.fd = fd;
  }

  /**
   * Fill `buf` from byte `offset`.
   * @throws RangeError if the range is outside the disk; Error if the file is closed or shorter than expected.
   */
  read(buf: Uint8Array, offset: number): void {
    const fd = this.check(buf, offset);
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(fd, buf, done, buf.length - done, offset + done);
      if (n === 0) throw new Error(`disk image ${this.path}: unexpected end of file at ${offset + done}`);
      done += n;
    }
  }

  /**
   * Write `buf` at byte `offset`.
   * @throws Error when readonly or closed; RangeError if the range is outside the disk.
   */
  write(buf: Uint8Array, offset: number): void {
    if (this.readonly) throw new Error(`disk image ${this.path} is readonly`);
    const fd = this.check(buf, offset);
    let done = 0;
    while (done < buf.length) {
      done += fs.writeSync(fd, buf, done, buf.length - done, offset + done);
    }
  }

  /** fsync the file. @throws Error when closed or on I/O error. */
  flush(): void {
    if (this.fd === null) throw new Error(`disk image ${this.path} is closed`);
    fs.fsyncSync(this.fd);
  }

  /** Close the file; later accesses throw. Idempotent. */
  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }

  private check(buf: Uint8Array, offset: number): number {
    if (this.fd === null) throw new Error(`disk image ${this.path} is closed`);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + buf.length > this.size) {
      throw new RangeError(`disk image ${this.path}: access ${offset}+${buf.length} outside ${this.size} bytes`);
    }
    return this.fd;
  }
}
