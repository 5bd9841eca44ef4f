/**
 * The small random-access file interface the disk formats (raw, qcow2) are written
 * against, so they run wherever the engine runs: Node (`devices/node/file.ts`), a
 * browser, or memory ({@link MemoryFile}, used by the tests).
 *
 * Offsets and lengths are in bytes, whole non-negative numbers below 2^53.
 */
import { BlockError } from './errors.js';

/** A file that can be read and written at any byte offset, synchronously. */
export interface RandomAccessFile {
  /** A name for messages (the path of a host file). */
  readonly name: string;
  /** True when opened without write access: `write` and `truncate` throw. */
  readonly readonly: boolean;
  /** Current length in bytes. */
  size(): number;
  /**
   * Fill `buf` from byte `offset`. Bytes at or past the end of the file read as zeros
   * (a short read is not an error here: the caller decides, see the return value).
   * @returns how many bytes came from the file (`buf.length` unless the range crosses the end).
   * @throws on an I/O error or when closed.
   */
  read(buf: Uint8Array, offset: number): number;
  /**
   * Write all of `buf` at byte `offset`; writing past the end extends the file (a gap
   * reads as zeros).
   * @throws when readonly, closed or on an I/O error (e.g. ENOSPC).
   */
  write(buf: Uint8Array, offset: number): void;
  /**
   * A vectored `read`: fill `bufs` one after the other from byte `offset`, in one system
   * call where the host has one. Optional (without it, callers read each buffer).
   * @returns how many bytes came from the file (the total length unless the range crosses the end).
   * @throws on an I/O error or when closed.
   */
  readv?(bufs: readonly Uint8Array[], offset: number): number;
  /**
   * A vectored `write`: write `bufs` one after the other at byte `offset`. Optional.
   * @throws when readonly, closed or on an I/O error.
   */
  writev?(bufs: readonly Uint8Array[], offset: number): void;
  /** Set the length to `length` bytes (cut, or extend with zeros, sparsely where the host can). Optional. */
  truncate?(length: number): void;
  /** Make everything written so far durable (fsync). */
  sync(): void;
  /** Release the file; later calls throw. Idempotent. */
  close(): void;
}

/**
 * A {@link RandomAccessFile} in memory. `bytes()` shows its content. Counts writes and
 * syncs so tests can check that opening an image never writes it.
 */
export class MemoryFile implements RandomAccessFile {
  private buf: Uint8Array;
  private len: number;
  private closed = false;
  /** Number of `write`/`truncate` calls. */
  writes = 0;
  /** Number of `sync` calls. */
  syncs = 0;

  /** A file holding a copy of `initial` (empty by default). */
  constructor(initial: Uint8Array = new Uint8Array(0), readonly name = 'memory', readonly readonly = false) {
    this.buf = new Uint8Array(Math.max(initial.length, 4096));
    this.buf.set(initial);
    this.len = initial.length;
  }

  /** A copy of the current content. */
  bytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  size(): number {
    this.check();
    return this.len;
  }

  read(buf: Uint8Array, offset: number): number {
    this.check();
    checkRange(this.name, offset, buf.length);
    const n = Math.max(0, Math.min(buf.length, this.len - offset));
    if (n > 0) buf.set(this.buf.subarray(offset, offset + n));
    buf.fill(0, n);
    return n;
  }

  write(buf: Uint8Array, offset: number): void {
    this.check();
    if (this.readonly) throw new BlockError(`${this.name} is read-only`);
    checkRange(this.name, offset, buf.length);
    this.writes++;
    this.reserve(offset + buf.length);
    this.buf.set(buf, offset);
    if (offset + buf.length > this.len) this.len = offset + buf.length;
  }

  truncate(length: number): void {
    this.check();
    if (this.readonly) throw new BlockError(`${this.name} is read-only`);
    checkRange(this.name, length, 0);
    this.writes++;
    this.reserve(length);
    if (length < this.len) this.buf.fill(0, length, this.len);
    this.len = length;
  }

  sync(): void {
    this.check();
    this.syncs++;
  }

  close(): void {
    this.closed = true;
  }

  private reserve(n: number): void {
    if (n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(n, this.buf.length * 2));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  private check(): void {
    if (this.closed) throw new BlockError(`${this.name} is closed`);
  }
}

/** Total length of `bufs`, in bytes. */
export function totalLength(bufs: readonly Uint8Array[]): number {
  let n = 0;
  for (const b of bufs) n += b.length;
  return n;
}

/** @throws RangeError unless `offset` and `offset + length` are whole numbers in 0..2^53. */
export function checkRange(name: string, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(offset + length)) {
    throw new RangeError(`${name}: bad file range ${offset}+${length}`);
  }
}
