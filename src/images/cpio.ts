/**
 * A writer for the cpio "newc" format (SVR4 portable ASCII without CRC, magic `070701`),
 * the format the Linux kernel unpacks into its initial rootfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst).
 *
 * Each entry is a 110-byte ASCII header (magic + 13 eight-digit hex fields), the NUL-
 * terminated path name padded so that header + name is a multiple of 4 bytes, then the
 * file data padded to a multiple of 4. The archive ends with an entry named
 * `TRAILER!!!`. The kernel accepts several archives concatenated back to back (each
 * starting on a 4-byte boundary, which this writer guarantees), later entries
 * overwriting earlier ones: the run command appends a small per-run archive that way.
 */

/** File type bits of `st_mode` (see inode(7)). */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** One archive member. */
export interface CpioEntry {
  /** Path inside the archive, e.g. `bin/busybox` (a leading `/` is removed; `.`/`..` segments are refused). */
  path: string;
  /** Full `st_mode`: type bits ({@link S_IFREG}, {@link S_IFDIR}, {@link S_IFLNK}, ...) and permission bits. */
  mode: number;
  /** Contents of a regular file (default empty). Only for regular files. */
  data?: Uint8Array;
  /** Target of a symbolic link (required for {@link S_IFLNK}, stored as the link's data). */
  symlinkTarget?: string;
  /** Owner, default 0 (root). */
  uid?: number;
  /** Group, default 0 (root). */
  gid?: number;
  /** Modification time in seconds since the Unix epoch, default 0. */
  mtime?: number;
  /** Device number of a character or block device node (`rdevmajor`/`rdevminor`), default 0. */
  rdevMajor?: number;
  rdevMinor?: number;
}

/** Length of a newc header in bytes. */
export const NEWC_HEADER_SIZE = 110;
/** The name of the end-of-archive entry. */
export const CPIO_TRAILER = 'TRAILER!!!';

const textEncoder = new TextEncoder();

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function normalizePath(path: string): string {
  const p = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (p === '' || p === '.') return '.';
  if (p.includes('\0')) throw new Error(`cpio: NUL in path ${JSON.stringify(path)}`);
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') throw new Error(`cpio: bad path ${JSON.stringify(path)}`);
  }
  return p;
}

function checkU32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`cpio: ${what} out of range: ${v}`);
  return v;
}

/**
 * Serializes `entries`, in order, followed by the trailer, as one newc archive.
 * Inode numbers are assigned 1, 2, ... (no hard links: every file has nlink 1,
 * directories nlink 2). Parent directories are not created implicitly: list them
 * before their contents, as the kernel unpacker does not create missing parents.
 * The result's length is a multiple of 4.
 * @throws Error for an entry without type bits, a symlink without target, data on a
 * non-regular file, a malformed path, or a field that does not fit 32 bits.
 */
export function cpioNewc(entries: readonly CpioEntry[]): Uint8Array {
  interface Prepared {
    name: Uint8Array;
    body: Uint8Array;
    fields: number[];
  }
  const prepared: Prepared[] = [];
  let total = 0;
  let ino = 1;
  const add = (name: Uint8Array, body: Uint8Array, fields: number[]): void => {
    prepared.push({ name, body, fields });
    const headerAndName = NEWC_HEADER_SIZE + name.length + 1;
    total += headerAndName + pad4(headerAndName) + body.length + pad4(body.length);
  };
  for (const e of entries) {
    const type = e.mode & S_IFMT;
    if (type === 0) throw new Error(`cpio: mode of ${e.path} has no file type bits`);
    let body: Uint8Array = new Uint8Array(0);
    if (type === S_IFLNK) {
      if (e.symlinkTarget === undefined || e.symlinkTarget === '') throw new Error(`cpio: symlink ${e.path} has no target`);
      if (e.data !== undefined) throw new Error(`cpio: symlink ${e.path} cannot have data`);
      body = textEncoder.encode(e.symlinkTarget);
    } else if (type === S_IFREG) {
      body = e.data ?? body;
    } else if (e.data !== undefined && e.data.length > 0) {
      throw new Error(`cpio: ${e.path} is not a regular file and cannot have data`);
    }
    const name = textEncoder.encode(normalizePath(e.path));
    add(name, body, [
      ino++,
      checkU32(e.mode, 'mode'),
      checkU32(e.uid ?? 0, 'uid'),
      checkU32(e.gid ?? 0, 'gid'),
      type === S_IFDIR ? 2 : 1,
      checkU32(Math.floor(e.mtime ?? 0), 'mtime'),
      checkU32(body.length, 'filesize'),
      0, // devmajor (of the filesystem holding the file)
      0, // devminor
      checkU32(e.rdevMajor ?? 0, 'rdevmajor'),
      checkU32(e.rdevMinor ?? 0, 'rdevminor'),
    ]);
  }
  add(textEncoder.encode(CPIO_TRAILER), new Uint8Array(0), [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);

  const out = new Uint8Array(total);
  let off = 0;
  for (const p of prepared) {
    let header = '070701';
    for (const f of p.fields) header += f.toString(16).toUpperCase().padStart(8, '0');
    header += (p.name.length + 1).toString(16).toUpperCase().padStart(8, '0'); // namesize incl. NUL
    header += '00000000'; // check (unused by newc)
    out.set(textEncoder.encode(header), off);
    off += NEWC_HEADER_SIZE;
    out.set(p.name, off);
    off += p.name.length + 1; // NUL already zero
    off += pad4(NEWC_HEADER_SIZE + p.name.length + 1);
    out.set(p.body, off);
    off += p.body.length + pad4(p.body.length);
  }
  if (off !== total) throw new Error('cpio: internal size mismatch');
  return out;
}

/** A regular file entry (mode `perm`, default 0644). */
export function cpioFile(path: string, data: Uint8Array | string, perm = 0o644): CpioEntry {
  return { path, mode: S_IFREG | perm, data: typeof data === 'string' ? textEncoder.encode(data) : data };
}

/** A directory entry (mode `perm`, default 0755). */
export function cpioDir(path: string, perm = 0o755): CpioEntry {
  return { path, mode: S_IFDIR | perm };
}

/** A symbolic link entry `path -> target`. */
export function cpioSymlink(path: string, target: string): CpioEntry {
  return { path, mode: S_IFLNK | 0o777, symlinkTarget: target };
}
