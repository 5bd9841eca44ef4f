/**
 * The 9P2000.L wire format (Linux's net/9p and include/net/9p/9p.h; the protocol of
 * `diod`'s protocol.md): every message is `size[4] type[1] tag[2] body`, little-endian;
 * a string is `len[2]` and that many UTF-8 bytes; a qid is `type[1] version[4] path[8]`.
 * This file holds the message numbers, the errno values the server answers with (Linux's,
 * asm-generic/errno-base.h and errno.h) and a bounds-checked reader and writer.
 */

/** T-message numbers (each R-message is its T-message + 1). */
export const P9_TLERROR = 6;
export const P9_TSTATFS = 8;
export const P9_TLOPEN = 12;
export const P9_TLCREATE = 14;
export const P9_TSYMLINK = 16;
export const P9_TMKNOD = 18;
export const P9_TRENAME = 20;
export const P9_TREADLINK = 22;
export const P9_TGETATTR = 24;
export const P9_TSETATTR = 26;
export const P9_TXATTRWALK = 30;
export const P9_TXATTRCREATE = 32;
export const P9_TREADDIR = 40;
export const P9_TFSYNC = 50;
export const P9_TLOCK = 52;
export const P9_TGETLOCK = 54;
export const P9_TLINK = 70;
export const P9_TMKDIR = 72;
export const P9_TRENAMEAT = 74;
export const P9_TUNLINKAT = 76;
export const P9_TVERSION = 100;
export const P9_TAUTH = 102;
export const P9_TATTACH = 104;
export const P9_TFLUSH = 108;
export const P9_TWALK = 110;
export const P9_TREAD = 116;
export const P9_TWRITE = 118;
export const P9_TCLUNK = 120;
export const P9_TREMOVE = 122;
/** Rlerror: `ecode[4]`. */
export const P9_RLERROR = 7;

/** Qid types. */
export const P9_QTDIR = 0x80;
export const P9_QTSYMLINK = 0x02;
export const P9_QTFILE = 0;

/** "No fid" (afid of an unauthenticated Tattach). */
export const P9_NOFID = 0xffffffff;
/** Bytes of the message header (size, type, tag). */
export const P9_HEADER_BYTES = 7;
/** Largest msize a server agrees to (bytes): Linux's virtio transport takes up to ~500 KiB. */
export const P9_MAX_MSIZE = 512 * 1024;
/** Most names one Twalk may carry. */
export const P9_MAXWELEM = 16;

/** Linux errno values the server answers with (Rlerror). */
export const Errno = {
  EPERM: 1, ENOENT: 2, EIO: 5, ENXIO: 6, EBADF: 9, EBUSY: 16, EEXIST: 17, ENOTDIR: 20, EISDIR: 21,
  EINVAL: 22, ENFILE: 23, EROFS: 30, ERANGE: 34, ENAMETOOLONG: 36, ENOSYS: 38, ELOOP: 40,
  ENODATA: 61, EPROTO: 71, EOVERFLOW: 75, EILSEQ: 84, EOPNOTSUPP: 95,
} as const;

/** A request the server refuses: answered with Rlerror `errno`. */
export class P9Error extends Error {
  /** @param errno a Linux errno value (see {@link Errno}). */
  constructor(readonly errno: number, message = `errno ${errno}`) {
    super(message);
  }
}

/** A qid: the server's identity of a file. `path` is unique per file (the host inode number). */
export interface Qid {
  type: number;
  version: number;
  path: bigint;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/**
 * Reads the body of a T-message. Every read is bounds-checked.
 * @throws P9Error(EPROTO) past the end of the message; P9Error(EILSEQ) for a string that is not UTF-8.
 */
export class P9Reader {
  private off = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private need(n: number): number {
    const at = this.off;
    if (at + n > this.buf.length) throw new P9Error(Errno.EPROTO, 'message too short');
    this.off += n;
    return at;
  }

  u8(): number { return this.view.getUint8(this.need(1)); }
  u16(): number { return this.view.getUint16(this.need(2), true); }
  u32(): number { return this.view.getUint32(this.need(4), true); }
  u64(): bigint { return this.view.getBigUint64(this.need(8), true); }

  /** A u64 that must fit a JavaScript number (file offsets, sizes). @throws P9Error(EOVERFLOW) above 2^53 - 1. */
  u64Number(): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new P9Error(Errno.EOVERFLOW, 'offset too large');
    return Number(v);
  }

  str(): string {
    const n = this.u16();
    const at = this.need(n);
    try {
      return utf8.decode(this.buf.subarray(at, at + n));
    } catch {
      throw new P9Error(Errno.EILSEQ, 'string is not UTF-8');
    }
  }

  /** The next `n` bytes (a view, not a copy). */
  bytes(n: number): Uint8Array {
    const at = this.need(n);
    return this.buf.subarray(at, at + n);
  }
}

/** Builds one R-message; {@link finish} fills in the header. */
export class P9Writer {
  private buf: Uint8Array;
  private view: DataView;
  private off = P9_HEADER_BYTES;

  /** @param capacity initial size in bytes (grows as needed). */
  constructor(capacity = 256) {
    this.buf = new Uint8Array(Math.max(capacity, 64));
    this.view = new DataView(this.buf.buffer);
  }

  /** Bytes written so far, header included. */
  get length(): number { return this.off; }

  private room(n: number): number {
    if (this.off + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.off + n));
      next.set(this.buf.subarray(0, this.off));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.off;
    this.off += n;
    return at;
  }

  u8(v: number): this { this.view.setUint8(this.room(1), v); return this; }
  u16(v: number): this { this.view.setUint16(this.room(2), v, true); return this; }
  u32(v: number): this { this.view.setUint32(this.room(4), v >>> 0, true); return this; }
  u64(v: bigint | number): this { this.view.setBigUint64(this.room(8), BigInt.asUintN(64, BigInt(v)), true); return this; }

  str(s: string): this {
    const b = utf8Encoder.encode(s);
    if (b.length > 0xffff) throw new P9Error(Errno.ENAMETOOLONG, 'string too long');
    this.u16(b.length);
    const at = this.room(b.length); // may grow this.buf
    this.buf.set(b, at);
    return this;
  }

  qid(q: Qid): this {
    return this.u8(q.type).u32(q.version).u64(q.path);
  }

  bytes(b: Uint8Array): this {
    const at = this.room(b.length); // may grow this.buf
    this.buf.set(b, at);
    return this;
  }

  /** Overwrite the u32 at byte `at` (header included), e.g. a count known only at the end. */
  patchU32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0, true);
  }

  /** The finished message: `size[4] type[1] tag[2]` and the body written. */
  finish(type: number, tag: number): Uint8Array {
    this.view.setUint32(0, this.off, true);
    this.view.setUint8(4, type);
    this.view.setUint16(5, tag, true);
    return this.buf.subarray(0, this.off);
  }
}

/** The bytes a string takes on the wire (its length field included). */
export function p9StringBytes(s: string): number {
  return 2 + utf8Encoder.encode(s).length;
}

/** An Rlerror message for `tag`. */
export function p9Lerror(tag: number, errno: number): Uint8Array {
  return new P9Writer(16).u32(errno).finish(P9_RLERROR, tag);
}

/** What the virtio-9p transport asks of a 9P server (src/devices/node/host-share.ts). */
export interface P9Server {
  /**
   * Answer one T-message (`msg`: the whole message, header included) with its R-message of
   * at most `maxReply` bytes (an Rlerror when the request fails). Never throws.
   */
  handle(msg: Uint8Array, maxReply: number): Uint8Array;
  /** The device was reset: forget every fid (as a Tversion does). */
  reset(): void;
  /** Release every host resource (open files); the server answers nothing afterwards. */
  close(): void;
}
