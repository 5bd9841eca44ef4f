/**
 * A 9P2000.L file server for one host directory (a shared folder), behind virtio-9p
 * (src/devices/virtio/9p.ts). The guest mounts it with Linux's own `9p` and
 * `9pnet_virtio`: `mount -t 9p -o trans=virtio,version=9p2000.L TAG DIR`. The messages
 * are those of Linux's net/9p/client.c; the wire format is src/devices/9p/wire.ts.
 *
 * **Nothing outside the directory is reachable.** A 9P client resolves paths itself, one
 * name per Twalk step, and follows symlinks itself (Treadlink), so the server never
 * follows one:
 *  - every fid holds an `O_PATH` descriptor of its file; a walk step opens the one name it
 *    is given under its parent's descriptor with `O_NOFOLLOW` (`/proc/self/fd/N/NAME`:
 *    the kernel jumps to descriptor N's directory itself, not to a path, so nothing the
 *    guest or anyone renames in between can redirect it). A symlink is opened as itself,
 *    and a step below it fails with ENOTDIR;
 *  - a name is one component: empty, `.`, `..` or a `/` inside is refused, except `..`
 *    in a walk, which is resolved from the share's root over the fid's own component list
 *    (never by the kernel's `..`), and stays at the root there;
 *  - creating opens with `O_NOFOLLOW | O_NONBLOCK` and keeps only regular files, so a
 *    planted symlink or FIFO is neither followed nor waited on; only regular files and
 *    directories are opened; no device node can be made (Tmknod: EPERM).
 * Modes are kept without the set-user-ID and set-group-ID bits, and ownership is never
 * changed: files are the host user's (QEMU `security_model=none`). A `readonly` share
 * answers every change with EROFS. Extended attributes are not supported (EOPNOTSUPP);
 * locks always succeed (this server is the only client of its files' locks).
 *
 * Requests are served synchronously, in order, so Tflush finds nothing in flight.
 */
import * as fs from 'node:fs';
import {
  Errno, P9Error, P9Reader, P9Writer, p9Lerror, p9StringBytes, type P9Server, type Qid,
  P9_HEADER_BYTES, P9_MAXWELEM, P9_MAX_MSIZE, P9_QTDIR, P9_QTFILE, P9_QTSYMLINK,
  P9_TATTACH, P9_TAUTH, P9_TCLUNK, P9_TFLUSH, P9_TFSYNC, P9_TGETATTR, P9_TGETLOCK, P9_TLCREATE, P9_TLINK,
  P9_TLOCK, P9_TLOPEN, P9_TMKDIR, P9_TMKNOD, P9_TREAD, P9_TREADDIR, P9_TREADLINK, P9_TREMOVE, P9_TRENAME,
  P9_TRENAMEAT, P9_TSETATTR, P9_TSTATFS, P9_TSYMLINK, P9_TUNLINKAT, P9_TVERSION, P9_TWALK, P9_TWRITE,
  P9_TXATTRCREATE, P9_TXATTRWALK,
} from '../9p/wire.js';

/** Linux's O_PATH (the same value on x86-64 and arm64; Node does not export it). */
const O_PATH = 0o10000000;
const C = fs.constants;
/** 9P2000.L open flags (include/net/9p/9p.h P9_DOTL_*), as Linux's generic O_* values. */
const DOTL_ACCMODE = 3;
const DOTL_EXCL = 0o200;
const DOTL_TRUNC = 0o1000;
const DOTL_APPEND = 0o2000;
const DOTL_DSYNC = 0o10000;
const DOTL_SYNC = 0o4000000;
/** Tunlinkat flag. */
const AT_REMOVEDIR = 0x200;
/** Tsetattr valid bits. */
const ATTR_MODE = 0x1;
const ATTR_SIZE = 0x8;
const ATTR_ATIME = 0x10;
const ATTR_MTIME = 0x20;
const ATTR_ATIME_SET = 0x80;
const ATTR_MTIME_SET = 0x100;
/** Tgetattr: the fields of P9_GETATTR_BASIC are valid. */
const GETATTR_BASIC = 0x7ffn;
/** Mode bits the guest may set: permissions and sticky, never set-user/group-ID. */
const MODE_MASK = 0o1777;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const NAME_MAX = 255;

/** Default for {@link HostShareOptions.maxFids}. */
export const P9_DEFAULT_MAX_FIDS = 8192;

/** Options of a share. */
export interface HostShareOptions {
  /** Refuse every change (EROFS). */
  readonly?: boolean;
  /** Most fids at once (each holds a host descriptor or two); more answer ENFILE. Default {@link P9_DEFAULT_MAX_FIDS}. */
  maxFids?: number;
}

/** Counters of a share (mutated in place). */
export interface HostShareMetrics {
  requests: number;
  readBytes: number;
  writtenBytes: number;
  /** Requests answered with Rlerror. */
  errors: number;
}

interface Fid {
  /** `O_PATH` descriptor of the file itself (a symlink stays a symlink). */
  pfd: number;
  /** Names from the share's root ([] for the root). */
  path: string[];
  /** S_IFMT bits of the file when the fid was made. */
  type: number;
  /** Tlopen/Tlcreate done. */
  opened: boolean;
  /** Descriptor of an opened regular file, else -1. */
  ofd: number;
  /** An opened directory's names, taken at its first Treaddir or one at offset 0. */
  entries: string[] | null;
}

const proc = (fd: number): string => `/proc/self/fd/${fd}`;
const under = (fd: number, name: string): string => `/proc/self/fd/${fd}/${name}`;

/** The Linux errno of a Node fs error (its `errno` is the negated value), else EIO. */
function errnoOf(e: unknown): number {
  if (e instanceof P9Error) return e.errno;
  const n = (e as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' && n < 0 && n > -4096 ? -n : Errno.EIO;
}

/** A name for a new or looked-up entry: one path component. @throws P9Error(EINVAL|ENAMETOOLONG). */
function checkName(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new P9Error(Errno.EINVAL, `bad name ${JSON.stringify(name)}`);
  }
  if (Buffer.byteLength(name) > NAME_MAX) throw new P9Error(Errno.ENAMETOOLONG, 'name too long');
  return name;
}

function qidOf(st: fs.BigIntStats): Qid {
  const t = Number(st.mode) & S_IFMT;
  return { type: t === S_IFDIR ? P9_QTDIR : t === S_IFLNK ? P9_QTSYMLINK : P9_QTFILE, version: 0, path: st.ino };
}

/** Host open flags for 9P2000.L open flags (only those with a meaning here). @throws P9Error(EINVAL) for access mode 3. */
function hostFlags(flags: number): number {
  const acc = flags & DOTL_ACCMODE;
  if (acc === 3) throw new P9Error(Errno.EINVAL, 'bad access mode');
  let f = acc === 0 ? C.O_RDONLY : acc === 1 ? C.O_WRONLY : C.O_RDWR;
  if (flags & DOTL_TRUNC) f |= C.O_TRUNC;
  if (flags & DOTL_APPEND) f |= C.O_APPEND;
  if (flags & DOTL_DSYNC) f |= C.O_DSYNC;
  if (flags & DOTL_SYNC) f |= C.O_SYNC;
  return f;
}

const closeQuietly = (fd: number): void => {
  try { fs.closeSync(fd); } catch { /* already gone */ }
};

/** The server for one shared directory; see the file comment. */
export class HostShare implements P9Server {
  readonly metrics: HostShareMetrics = { requests: 0, readBytes: 0, writtenBytes: 0, errors: 0 };
  private readonly rootFd: number;
  private readonly fids = new Map<number, Fid>();
  private readonly readonly: boolean;
  private readonly maxFids: number;
  private msize = 8192;
  private closed = false;

  /**
   * @param dir the host directory (absolute); opened now and held, so renaming it later changes nothing.
   * @throws Error with a one-line reason when `dir` is not a directory that can be opened.
   */
  constructor(dir: string, opts: HostShareOptions = {}) {
    let fd: number;
    try {
      fd = fs.openSync(dir, O_PATH | C.O_DIRECTORY);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new Error(`${dir}: ${code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : (e as Error).message}`);
    }
    this.rootFd = fd;
    this.readonly = !!opts.readonly;
    this.maxFids = opts.maxFids ?? P9_DEFAULT_MAX_FIDS;
  }

  /** The msize agreed at the last Tversion (bytes). */
  get negotiatedMsize(): number {
    return this.msize;
  }

  /** Fids in use. */
  get fidCount(): number {
    return this.fids.size;
  }

  handle(msg: Uint8Array, maxReply: number): Uint8Array {
    this.metrics.requests++;
    if (msg.length < P9_HEADER_BYTES) return p9Lerror(0xffff, Errno.EPROTO);
    const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
    const size = view.getUint32(0, true);
    const type = msg[4];
    const tag = view.getUint16(5, true);
    try {
      if (this.closed) throw new P9Error(Errno.EIO, 'share closed');
      if (size < P9_HEADER_BYTES || size > msg.length) throw new P9Error(Errno.EPROTO, 'bad size');
      const reply = this.dispatch(type, tag, new P9Reader(msg.subarray(P9_HEADER_BYTES, size)), Math.min(maxReply, this.msize));
      if (reply.length > maxReply) throw new P9Error(Errno.ERANGE, 'reply does not fit the buffers');
      return reply;
    } catch (e) {
      this.metrics.errors++;
      return p9Lerror(tag, errnoOf(e));
    }
  }

  reset(): void {
    for (const f of this.fids.values()) this.release(f);
    this.fids.clear();
    this.msize = 8192;
  }

  close(): void {
    if (this.closed) return;
    this.reset();
    this.closed = true;
    closeQuietly(this.rootFd);
  }

  private release(f: Fid): void {
    closeQuietly(f.pfd);
    if (f.ofd >= 0) closeQuietly(f.ofd);
    f.ofd = -1;
  }

  private fid(n: number): Fid {
    const f = this.fids.get(n);
    if (!f) throw new P9Error(Errno.EBADF, `no fid ${n}`);
    return f;
  }

  /** Install `f` as fid `n` (a new number). @throws P9Error(EINVAL) if `n` is taken, ENFILE past the limit. */
  private install(n: number, f: Fid): void {
    if (this.fids.has(n)) { this.release(f); throw new P9Error(Errno.EINVAL, `fid ${n} in use`); }
    if (this.fids.size >= this.maxFids) { this.release(f); throw new P9Error(Errno.ENFILE, 'too many fids'); }
    this.fids.set(n, f);
  }

  private refuseIfReadonly(): void {
    if (this.readonly) throw new P9Error(Errno.EROFS, 'read-only share');
  }

  /** An `O_PATH` descriptor of the file at `path` under the root, one `O_NOFOLLOW` step per name. */
  private openPath(path: readonly string[]): number {
    let fd = fs.openSync(proc(this.rootFd), O_PATH | C.O_DIRECTORY);
    for (const name of path) {
      try {
        const next = fs.openSync(under(fd, name), O_PATH | C.O_NOFOLLOW);
        fs.closeSync(fd);
        fd = next;
      } catch (e) {
        closeQuietly(fd);
        throw e;
      }
    }
    return fd;
  }

  /** A new fid record for descriptor `pfd` (taken over: closed if this throws). */
  private record(pfd: number, path: string[]): { f: Fid; st: fs.BigIntStats } {
    try {
      const st = fs.fstatSync(pfd, { bigint: true });
      return { f: { pfd, path, type: Number(st.mode) & S_IFMT, opened: false, ofd: -1, entries: null }, st };
    } catch (e) {
      closeQuietly(pfd);
      throw e;
    }
  }

  private lstatUnder(dir: Fid, name: string): fs.BigIntStats {
    return fs.lstatSync(under(dir.pfd, name), { bigint: true });
  }

  /** Rename's effect on fids: every path under `from` now starts with `to`. */
  private renamed(from: string[], to: string[]): void {
    for (const f of this.fids.values()) {
      if (f.path.length >= from.length && from.every((n, i) => f.path[i] === n)) f.path = [...to, ...f.path.slice(from.length)];
    }
  }

  private dispatch(type: number, tag: number, r: P9Reader, maxReply: number): Uint8Array {
    const w = new P9Writer();
    const done = (): Uint8Array => w.finish(type + 1, tag);
    switch (type) {
      case P9_TVERSION: {
        const msize = r.u32();
        const version = r.str();
        this.reset();
        this.msize = Math.max(4096, Math.min(msize, P9_MAX_MSIZE));
        w.u32(this.msize).str(version.startsWith('9P2000.L') ? '9P2000.L' : 'unknown');
        return done();
      }
      case P9_TAUTH:
        throw new P9Error(Errno.EOPNOTSUPP, 'no authentication');
      case P9_TATTACH: {
        const n = r.u32();
        r.u32(); r.str(); r.str(); // afid, uname, aname: one tree, no authentication
        const { f, st } = this.record(fs.openSync(proc(this.rootFd), O_PATH | C.O_DIRECTORY), []);
        this.install(n, f);
        w.qid(qidOf(st));
        return done();
      }
      case P9_TFLUSH:
        r.u16();
        return done(); // requests complete before the next is read: nothing to flush
      case P9_TWALK:
        return this.walk(r, w, done);
      case P9_TGETATTR: {
        const f = this.fid(r.u32());
        r.u64();
        const st = fs.fstatSync(f.pfd, { bigint: true });
        const sec = (ns: bigint) => ns / 1_000_000_000n;
        const nsec = (ns: bigint) => ns % 1_000_000_000n;
        w.u64(GETATTR_BASIC).qid(qidOf(st)).u32(Number(st.mode)).u32(Number(st.uid)).u32(Number(st.gid))
          .u64(st.nlink).u64(st.rdev).u64(st.size).u64(st.blksize).u64(st.blocks)
          .u64(sec(st.atimeNs)).u64(nsec(st.atimeNs)).u64(sec(st.mtimeNs)).u64(nsec(st.mtimeNs))
          .u64(sec(st.ctimeNs)).u64(nsec(st.ctimeNs)).u64(0).u64(0).u64(0).u64(0);
        return done();
      }
      case P9_TSETATTR:
        this.setattr(r);
        return done();
      case P9_TLOPEN: {
        const f = this.fid(r.u32());
        const flags = r.u32();
        if (f.opened) throw new P9Error(Errno.EINVAL, 'fid already open');
        const write = (flags & DOTL_ACCMODE) !== 0 || (flags & DOTL_TRUNC) !== 0;
        if (write) this.refuseIfReadonly();
        if (f.type === S_IFDIR) {
          if (write) throw new P9Error(Errno.EISDIR, 'directory');
          f.entries = null;
        } else if (f.type === S_IFREG) {
          f.ofd = fs.openSync(proc(f.pfd), hostFlags(flags));
        } else {
          throw new P9Error(f.type === S_IFLNK ? Errno.ELOOP : Errno.EOPNOTSUPP, 'only regular files and directories open');
        }
        f.opened = true;
        w.qid(qidOf(fs.fstatSync(f.pfd, { bigint: true }))).u32(0);
        return done();
      }
      case P9_TLCREATE:
        this.lcreate(r, w);
        return done();
      case P9_TREAD:
        return this.read(r, tag, maxReply);
      case P9_TWRITE: {
        const f = this.fid(r.u32());
        const offset = r.u64Number();
        const count = r.u32();
        const data = r.bytes(count);
        this.refuseIfReadonly();
        if (f.ofd < 0) throw new P9Error(Errno.EBADF, 'fid not open');
        const n = fs.writeSync(f.ofd, data, 0, count, offset);
        this.metrics.writtenBytes += n;
        w.u32(n);
        return done();
      }
      case P9_TCLUNK: {
        const n = r.u32();
        this.release(this.fid(n));
        this.fids.delete(n);
        return done();
      }
      case P9_TREMOVE: {
        const n = r.u32();
        const f = this.fid(n);
        try {
          this.refuseIfReadonly();
          if (f.path.length === 0) throw new P9Error(Errno.EBUSY, 'the share root');
          this.inParent(f.path, (dir, name) => (f.type === S_IFDIR ? fs.rmdirSync(under(dir, name)) : fs.unlinkSync(under(dir, name))));
        } finally {
          this.release(f); // Tremove clunks the fid even when the removal fails
          this.fids.delete(n);
        }
        return done();
      }
      case P9_TREADDIR:
        return this.readdir(r, tag, maxReply);
      case P9_TMKDIR: {
        const dir = this.fid(r.u32());
        const name = r.str();
        const mode = r.u32();
        r.u32();
        this.refuseIfReadonly();
        fs.mkdirSync(under(dir.pfd, checkName(name)), { mode: mode & MODE_MASK });
        w.qid(qidOf(this.lstatUnder(dir, name)));
        return done();
      }
      case P9_TSYMLINK: {
        const dir = this.fid(r.u32());
        const name = r.str();
        const target = r.str();
        r.u32();
        this.refuseIfReadonly();
        if (target === '' || target.includes('\0')) throw new P9Error(Errno.EINVAL, 'bad symlink target');
        fs.symlinkSync(target, under(dir.pfd, checkName(name)));
        w.qid(qidOf(this.lstatUnder(dir, name)));
        return done();
      }
      case P9_TMKNOD:
        this.refuseIfReadonly();
        throw new P9Error(Errno.EPERM, 'no device nodes, FIFOs or sockets in a share');
      case P9_TLINK: {
        const dir = this.fid(r.u32());
        const f = this.fid(r.u32());
        const name = checkName(r.str());
        this.refuseIfReadonly();
        if (f.type === S_IFDIR || f.path.length === 0) throw new P9Error(Errno.EPERM, 'hard link to a directory');
        this.inParent(f.path, (from, old) => fs.linkSync(under(from, old), under(dir.pfd, name)));
        return done();
      }
      case P9_TRENAME: {
        const f = this.fid(r.u32());
        const dir = this.fid(r.u32());
        const name = checkName(r.str());
        this.refuseIfReadonly();
        if (f.path.length === 0) throw new P9Error(Errno.EBUSY, 'the share root');
        const from = f.path;
        this.inParent(from, (src, old) => fs.renameSync(under(src, old), under(dir.pfd, name)));
        this.renamed(from, [...dir.path, name]);
        return done();
      }
      case P9_TRENAMEAT: {
        const src = this.fid(r.u32());
        const oldName = checkName(r.str());
        const dst = this.fid(r.u32());
        const newName = checkName(r.str());
        this.refuseIfReadonly();
        fs.renameSync(under(src.pfd, oldName), under(dst.pfd, newName));
        this.renamed([...src.path, oldName], [...dst.path, newName]);
        return done();
      }
      case P9_TUNLINKAT: {
        const dir = this.fid(r.u32());
        const name = checkName(r.str());
        const flags = r.u32();
        this.refuseIfReadonly();
        if (flags & AT_REMOVEDIR) fs.rmdirSync(under(dir.pfd, name));
        else fs.unlinkSync(under(dir.pfd, name));
        return done();
      }
      case P9_TREADLINK: {
        const f = this.fid(r.u32());
        if (f.type !== S_IFLNK || f.path.length === 0) throw new P9Error(Errno.EINVAL, 'not a symlink');
        w.str(this.inParent(f.path, (dir, name) => fs.readlinkSync(under(dir, name))));
        return done();
      }
      case P9_TSTATFS: {
        const f = this.fid(r.u32());
        const s = fs.statfsSync(proc(f.pfd), { bigint: true });
        w.u32(Number(s.type)).u32(Number(s.bsize)).u64(s.blocks).u64(s.bfree).u64(s.bavail).u64(s.files).u64(s.ffree).u64(0).u32(NAME_MAX);
        return done();
      }
      case P9_TFSYNC: {
        const f = this.fid(r.u32());
        const datasync = r.u32();
        if (f.ofd >= 0) {
          if (datasync) fs.fdatasyncSync(f.ofd); else fs.fsyncSync(f.ofd);
        } else if (f.type === S_IFDIR) {
          const fd = fs.openSync(proc(f.pfd), C.O_RDONLY | C.O_DIRECTORY);
          try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
        }
        return done();
      }
      case P9_TLOCK: {
        this.fid(r.u32());
        w.u8(0); // P9_LOCK_SUCCESS
        return done();
      }
      case P9_TGETLOCK: {
        this.fid(r.u32());
        r.u8();
        const start = r.u64();
        const length = r.u64();
        const procId = r.u32();
        const client = r.str();
        w.u8(2).u64(start).u64(length).u32(procId).str(client); // F_UNLCK: nobody holds it
        return done();
      }
      case P9_TXATTRWALK:
      case P9_TXATTRCREATE:
        throw new P9Error(Errno.EOPNOTSUPP, 'no extended attributes');
      default:
        throw new P9Error(Errno.EOPNOTSUPP, `message type ${type}`);
    }
  }

  /** Run `fn` with a descriptor of the parent directory of `path` (non-empty) and its last name. */
  private inParent<T>(path: readonly string[], fn: (dirFd: number, name: string) => T): T {
    const dir = this.openPath(path.slice(0, -1));
    try {
      return fn(dir, path[path.length - 1]);
    } finally {
      closeQuietly(dir);
    }
  }

  /** Twalk: `fid[4] newfid[4] nwname[2] nwname*wname[s]` → `nwqid[2] nwqid*qid[13]`. */
  private walk(r: P9Reader, w: P9Writer, done: () => Uint8Array): Uint8Array {
    const fromN = r.u32();
    const from = this.fid(fromN);
    const newN = r.u32();
    const count = r.u16();
    if (count > P9_MAXWELEM) throw new P9Error(Errno.EINVAL, 'too many names');
    const names: string[] = [];
    for (let i = 0; i < count; i++) names.push(r.str());
    if (newN !== fromN && this.fids.has(newN)) throw new P9Error(Errno.EINVAL, `fid ${newN} in use`);
    let pfd = fs.openSync(proc(from.pfd), O_PATH);
    let path = [...from.path];
    const qids: Qid[] = [];
    try {
      for (const name of names) {
        let next: number;
        let nextPath: string[];
        try {
          if (name === '..') {
            nextPath = path.slice(0, -1);
            next = this.openPath(nextPath); // from the root, never the kernel's ..: the root's parent is the root
          } else {
            next = fs.openSync(under(pfd, checkName(name)), O_PATH | C.O_NOFOLLOW);
            nextPath = [...path, name];
          }
        } catch (e) {
          if (qids.length === 0) throw e;
          break; // a partial walk answers the qids it found and makes no fid
        }
        closeQuietly(pfd);
        pfd = next;
        path = nextPath;
        qids.push(qidOf(fs.fstatSync(pfd, { bigint: true })));
      }
    } catch (e) {
      closeQuietly(pfd);
      throw e;
    }
    if (qids.length < names.length) {
      closeQuietly(pfd);
    } else {
      const { f } = this.record(pfd, path);
      if (newN === fromN) {
        if (from.opened) { this.release(f); throw new P9Error(Errno.EBUSY, 'walk of an open fid'); }
        this.release(from);
        this.fids.set(newN, f);
      } else {
        this.install(newN, f);
      }
    }
    w.u16(qids.length);
    for (const q of qids) w.qid(q);
    return done();
  }

  /** Tlcreate: `fid[4] name[s] flags[4] mode[4] gid[4]` → `qid iounit[4]`; the fid becomes the new file, open. */
  private lcreate(r: P9Reader, w: P9Writer): void {
    const dir = this.fid(r.u32());
    const name = checkName(r.str());
    const flags = r.u32();
    const mode = r.u32();
    r.u32();
    this.refuseIfReadonly();
    if (dir.opened || dir.type !== S_IFDIR) throw new P9Error(Errno.ENOTDIR, 'not a directory fid');
    const fl = hostFlags(flags) | C.O_CREAT | C.O_NOFOLLOW | C.O_NONBLOCK | (flags & DOTL_EXCL ? C.O_EXCL : 0);
    const ofd = fs.openSync(under(dir.pfd, name), fl, mode & MODE_MASK);
    let pfd = -1;
    try {
      const st = fs.fstatSync(ofd, { bigint: true });
      if ((Number(st.mode) & S_IFMT) !== S_IFREG) throw new P9Error(Errno.EEXIST, 'not a regular file');
      pfd = fs.openSync(proc(ofd), O_PATH);
      w.qid(qidOf(st)).u32(0);
    } catch (e) {
      closeQuietly(ofd);
      throw e;
    }
    closeQuietly(dir.pfd);
    dir.pfd = pfd;
    dir.path = [...dir.path, name];
    dir.type = S_IFREG;
    dir.opened = true;
    dir.ofd = ofd;
  }

  /** Tread: `fid[4] offset[8] count[4]` → `count[4] data`, read straight into the reply. */
  private read(r: P9Reader, tag: number, maxReply: number): Uint8Array {
    const f = this.fid(r.u32());
    const offset = r.u64Number();
    const count = Math.max(0, Math.min(r.u32(), maxReply - P9_HEADER_BYTES - 4));
    if (f.ofd < 0) throw new P9Error(f.type === S_IFDIR ? Errno.EISDIR : Errno.EBADF, 'fid not open');
    const reply = new Uint8Array(P9_HEADER_BYTES + 4 + count);
    const n = fs.readSync(f.ofd, reply, P9_HEADER_BYTES + 4, count, offset);
    this.metrics.readBytes += n;
    const v = new DataView(reply.buffer);
    v.setUint32(0, P9_HEADER_BYTES + 4 + n, true);
    v.setUint8(4, P9_TREAD + 1);
    v.setUint16(5, tag, true);
    v.setUint32(7, n, true);
    return reply.subarray(0, P9_HEADER_BYTES + 4 + n);
  }

  /**
   * Treaddir: `fid[4] offset[8] count[4]` → `count[4]` and entries `qid offset[8] type[1]
   * name[s]`. Offsets are positions in the directory's list of names, taken again at
   * offset 0; `.` and `..` come first (the root's `..` is the root).
   */
  private readdir(r: P9Reader, tag: number, maxReply: number): Uint8Array {
    const f = this.fid(r.u32());
    const offset = r.u64();
    const count = Math.max(0, Math.min(r.u32(), maxReply - P9_HEADER_BYTES - 4));
    if (!f.opened || f.type !== S_IFDIR) throw new P9Error(Errno.EBADF, 'not an open directory');
    if (offset === 0n || !f.entries) f.entries = ['.', '..', ...fs.readdirSync(proc(f.pfd))];
    const w = new P9Writer(Math.min(count, 65536) + 16);
    w.u32(0);
    let bytes = 0;
    for (let i = offset; i < BigInt(f.entries.length); i++) {
      const name = f.entries[Number(i)];
      let st: fs.BigIntStats;
      try {
        st = name === '.' || (name === '..' && f.path.length === 0) ? fs.fstatSync(f.pfd, { bigint: true }) : this.lstatUnder(f, name);
      } catch {
        continue; // gone since the list was taken
      }
      const size = 13 + 8 + 1 + p9StringBytes(name);
      if (bytes + size > count) break;
      w.qid(qidOf(st)).u64(i + 1n).u8((Number(st.mode) & S_IFMT) >> 12).str(name); // DT_* is S_IFMT >> 12
      bytes += size;
    }
    w.patchU32(P9_HEADER_BYTES, bytes);
    return w.finish(P9_TREADDIR + 1, tag);
  }

  /** Tsetattr: `fid[4] valid[4] mode[4] uid[4] gid[4] size[8] atime[8+8] mtime[8+8]`; owners are never changed. */
  private setattr(r: P9Reader): void {
    const f = this.fid(r.u32());
    const valid = r.u32();
    const mode = r.u32();
    r.u32(); r.u32(); // uid, gid: files stay the host user's
    const size = r.u64Number();
    const atime = Number(r.u64()) + Number(r.u64()) / 1e9;
    const mtime = Number(r.u64()) + Number(r.u64()) / 1e9;
    if (valid & (ATTR_MODE | ATTR_SIZE | ATTR_ATIME | ATTR_MTIME)) this.refuseIfReadonly();
    if (f.type === S_IFLNK) return; // a symlink's own mode and times are not kept
    if (valid & ATTR_MODE) fs.chmodSync(proc(f.pfd), mode & MODE_MASK);
    if (valid & ATTR_SIZE) {
      if (f.type !== S_IFREG) throw new P9Error(f.type === S_IFDIR ? Errno.EISDIR : Errno.EINVAL, 'not a regular file');
      const fd = fs.openSync(proc(f.pfd), C.O_WRONLY);
      try { fs.ftruncateSync(fd, size); } finally { fs.closeSync(fd); }
    }
    if (valid & (ATTR_ATIME | ATTR_MTIME)) {
      const st = fs.fstatSync(f.pfd);
      const now = Date.now() / 1000;
      const a = valid & ATTR_ATIME ? (valid & ATTR_ATIME_SET ? atime : now) : st.atimeMs / 1000;
      const m = valid & ATTR_MTIME ? (valid & ATTR_MTIME_SET ? mtime : now) : st.mtimeMs / 1000;
      fs.utimesSync(proc(f.pfd), a, m);
    }
  }
}
