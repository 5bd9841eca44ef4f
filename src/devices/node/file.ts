/**
 * {@link RandomAccessFile} over a host file (Node only): `fs.openSync` ('r' when
 * readonly, 'r+' otherwise, 'wx+' to create), positioned `readSync`/`writeSync` and
 * `readvSync`/`writevSync` (preadv/pwritev), `fsyncSync`, `ftruncateSync`.
 */
import * as fs from 'node:fs';
import { BlockError } from '../block/errors.js';
import { checkRange, totalLength, type RandomAccessFile } from '../block/file.js';

/** Options of {@link NodeFile}. */
export interface NodeFileOptions {
  /** Open for reading only. Default false. */
  readonly?: boolean;
  /** Create a new file (mode 0644 minus umask); an existing one is an error. Default false. */
  create?: boolean;
}

/** A host file. Call {@link close} when done. */
export class NodeFile implements RandomAccessFile {
  readonly readonly: boolean;
  private fd: number | null;

  /**
   * Open `path`.
   * @throws BlockError with a one-line message if the file does not exist, already exists
   *   (`create`), is not a regular file (host block devices are not supported: fstat
   *   reports no size), or cannot be opened with the requested access.
   */
  constructor(readonly name: string, options: NodeFileOptions = {}) {
    this.readonly = options.readonly ?? false;
    let fd: number;
    try {
      fd = fs.openSync(name, options.create ? 'wx+' : this.readonly ? 'r' : 'r+', 0o644);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new BlockError(options.create ? `cannot create ${name}: no such directory` : `disk image not found: ${name}`);
      if (code === 'EEXIST') throw new BlockError(`${name} already exists (refusing to overwrite it)`);
      if (code === 'EISDIR') throw new BlockError(`disk image ${name} is not a regular file`);
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
        throw new BlockError(`disk image ${name} cannot be opened ${options.create ? 'for creation' : this.readonly ? 'for reading' : 'for writing (use readonly)'}: ${code}`);
      }
      throw new BlockError(`cannot open disk image ${name}: ${(e as Error).message}`);
    }
    try {
      if (!fs.fstatSync(fd).isFile()) throw new BlockError(`disk image ${name} is not a regular file`);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    this.fd = fd;
  }

  /** fstat of the open file (dev/ino identify it; blocks tell the space used). */
  stat(): fs.Stats {
    return fs.fstatSync(this.check());
  }

  size(): number {
    return this.stat().size;
  }

  read(buf: Uint8Array, offset: number): number {
    const fd = this.check();
    checkRange(this.name, offset, buf.length);
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(fd, buf, done, buf.length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    buf.fill(0, done);
    return done;
  }

  write(buf: Uint8Array, offset: number): void {
    const fd = this.check();
    if (this.readonly) throw new BlockError(`disk image ${this.name} is readonly`);
    checkRange(this.name, offset, buf.length);
    let done = 0;
    while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, offset + done);
  }

  /** {@link RandomAccessFile.readv}: preadv, again from where a short one stopped (the host caps the buffers of one call at IOV_MAX). */
  readv(bufs: readonly Uint8Array[], offset: number): number {
    const fd = this.check();
    checkRange(this.name, offset, totalLength(bufs));
    const rest = new IoVector(bufs);
    let done = 0;
    while (!rest.empty()) {
      const n = fs.readvSync(fd, rest.buffers(), offset + done);
      if (n === 0) break;
      done += n;
      rest.advance(n);
    }
    rest.zero();
    return done;
  }

  /** {@link RandomAccessFile.writev}: pwritev, again from where a short one stopped. */
  writev(bufs: readonly Uint8Array[], offset: number): void {
    const fd = this.check();
    if (this.readonly) throw new BlockError(`disk image ${this.name} is readonly`);
    checkRange(this.name, offset, totalLength(bufs));
    const rest = new IoVector(bufs);
    let done = 0;
    while (!rest.empty()) {
      const n = fs.writevSync(fd, rest.buffers(), offset + done);
      done += n;
      rest.advance(n);
    }
  }

  truncate(length: number): void {
    const fd = this.check();
    if (this.readonly) throw new BlockError(`disk image ${this.name} is readonly`);
    fs.ftruncateSync(fd, length);
  }

  sync(): void {
    fs.fsyncSync(this.check());
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }

  private check(): number {
    if (this.fd === null) throw new BlockError(`disk image ${this.name} is closed`);
    return this.fd;
  }
}

/** The part of a list of buffers not yet transferred by a vectored read or write. */
class IoVector {
  /** Index of the first buffer not wholly transferred, and the bytes of it that were. */
  private k = 0;
  private into = 0;

  constructor(private readonly bufs: readonly Uint8Array[]) {
    this.skipEmpty();
  }

  empty(): boolean {
    return this.k >= this.bufs.length;
  }

  /** The buffers left (the first one cut where the last transfer stopped). */
  buffers(): Uint8Array[] {
    const rest = this.bufs.slice(this.k);
    if (this.into > 0) rest[0] = rest[0].subarray(this.into);
    return rest;
  }

  /** `n` more bytes were transferred. */
  advance(n: number): void {
    while (n > 0 && this.k < this.bufs.length) {
      const left = this.bufs[this.k].length - this.into;
      if (n < left) { this.into += n; return; }
      n -= left;
      this.k++;
      this.into = 0;
    }
    this.skipEmpty();
  }

  /** Fill what is left with zeros. */
  zero(): void {
    for (let k = this.k; k < this.bufs.length; k++) this.bufs[k].fill(0, k === this.k ? this.into : 0);
  }

  private skipEmpty(): void {
    while (this.k < this.bufs.length && this.into === 0 && this.bufs[this.k].length === 0) this.k++;
  }
}
