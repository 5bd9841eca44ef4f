/**
 * Helpers of the disk-format tests: a seeded generator of guest writes, a byte-array
 * model, an independent qcow2 consistency checker (what `qemu-img check` verifies:
 * every referenced cluster's refcount equals its references, QCOW_OFLAG_COPIED agrees
 * with refcount 1; unreferenced clusters with a refcount are leaks), a journaling file
 * that can replay any prefix of its writes (crash points), and qemu-img/qemu-io runners.
 * Only exports: harmless when node --test runs it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { BlockError } from '../../src/devices/block/errors.js';
import { MemoryFile, type RandomAccessFile } from '../../src/devices/block/file.js';
import type { ImageLocator } from '../../src/devices/block/image.js';

import { xorshift32 as rng } from '../e2e/helpers.js';

export { rng };

/** One guest write: `data` at byte `offset`. */
export interface WriteOp { offset: number; data: Uint8Array }

/**
 * `count` writes into a disk of `size` bytes: unaligned offsets and lengths from 1 byte
 * to `maxLen` (default 3 clusters of 64 KiB), crossing cluster boundaries, seeded.
 */
export function randomWrites(seed: number, count: number, size: number, maxLen = 200_000): WriteOp[] {
  const r = rng(seed);
  const ops: WriteOp[] = [];
  for (let i = 0; i < count; i++) {
    const len = 1 + (r() % Math.min(maxLen, size));
    const offset = r() % (size - len + 1);
    const data = new Uint8Array(len);
    const fill = r() & 3;
    for (let j = 0; j < len; j++) data[j] = fill === 0 ? (i + 1) & 0xff : r() & 0xff; // some runs, mostly noise
    ops.push({ offset, data });
  }
  return ops;
}

/** sha256 of bytes. */
export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Result of {@link checkQcow2Bytes}. */
export interface CheckResult { corruptions: string[]; leaks: number; allocatedClusters: number }

/**
 * Check a qcow2 image (refcount widths 1..64 bits, no snapshots) the way `qemu-img
 * check` does, independently of the implementation under test.
 */
export function checkQcow2Bytes(img: Uint8Array): CheckResult {
  const v = new DataView(img.buffer, img.byteOffset, img.byteLength);
  const u64 = (o: number) => v.getUint32(o) * 2 ** 32 + v.getUint32(o + 4);
  const cb = v.getUint32(20), cs = 2 ** cb;
  const l1Size = v.getUint32(36), l1Off = u64(40), rtOff = u64(48), rtClusters = v.getUint32(56);
  const order = v.getUint32(4) === 3 ? v.getUint32(96) : 4;
  const bits = 2 ** order, perBlock = (cs * 8) / bits;
  const refs = new Map<number, number>();
  const corruptions: string[] = [];
  const ref = (off: number) => {
    if (off >= img.length) corruptions.push(`cluster ${off.toString(16)} past the end of the file`);
    refs.set(Math.floor(off / cs), (refs.get(Math.floor(off / cs)) ?? 0) + 1);
  };
  const refcount = (c: number): number => {
    const ti = Math.floor(c / perBlock);
    if (ti >= (rtClusters * cs) / 8) return 0;
    const blk = u64(rtOff + ti * 8);
    if (blk === 0) return 0;
    const i = c % perBlock;
    if (bits >= 8) {
      let x = 0;
      for (let k = 0; k < bits / 8; k++) x = x * 256 + img[blk + i * (bits / 8) + k];
      return x;
    }
    return (img[blk + ((i * bits) >> 3)] >> ((i * bits) & 7)) & (2 ** bits - 1);
  };
  ref(0);
  for (let c = 0; c < rtClusters; c++) ref(rtOff + c * cs);
  for (let ti = 0; ti < (rtClusters * cs) / 8; ti++) { const b = u64(rtOff + ti * 8); if (b) ref(b); }
  for (let c = 0; c < Math.ceil((l1Size * 8) / cs); c++) ref(l1Off + c * cs);
  const copiedChecks: Array<[number, boolean, string]> = [];
  for (let i = 0; i < l1Size; i++) {
    const l2 = (v.getUint32(l1Off + i * 8) & 0xffffff) * 2 ** 32 + ((v.getUint32(l1Off + i * 8 + 4) & 0xfffffe00) >>> 0);
    if (!l2) continue;
    ref(l2);
    copiedChecks.push([l2, v.getUint32(l1Off + i * 8) >= 0x80000000, `L1[${i}]`]);
    for (let j = 0; j < cs / 8; j++) {
      const hi = v.getUint32(l2 + j * 8), lo = v.getUint32(l2 + j * 8 + 4);
      if (hi & 0x40000000) {
        const x = 70 - cb;
        const e2 = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(lo);
        const off = Number(e2 & ((1n << BigInt(x)) - 1n));
        const bytes = (Number(e2 >> BigInt(x)) + 1) * 512 - (off % 512);
        for (let c = Math.floor(off / cs); c <= Math.floor((off + bytes - 1) / cs); c++) ref(c * cs);
        continue;
      }
      const host = (hi & 0xffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
      if (host) {
        ref(host);
        copiedChecks.push([host, (hi & 0x80000000) !== 0, `L2 ${l2.toString(16)}[${j}]`]);
      }
    }
  }
  for (const [off, copied, where] of copiedChecks) {
    const rc = refcount(off / cs);
    if (copied !== (rc === 1)) corruptions.push(`${where}: OFLAG_COPIED ${copied} but refcount ${rc}`);
  }
  let leaks = 0;
  let maxCluster = Math.ceil(img.length / cs) + perBlock;
  for (const c of refs.keys()) maxCluster = Math.max(maxCluster, c + 1);
  for (let c = 0; c < maxCluster; c++) {
    const rc = refcount(c), n = refs.get(c) ?? 0;
    if (n > 0 && rc !== n) corruptions.push(`cluster ${(c * cs).toString(16)}: refcount ${rc}, references ${n}`);
    else if (n === 0 && rc > 0) leaks++;
  }
  return { corruptions, leaks, allocatedClusters: refs.size };
}

/**
 * A {@link RandomAccessFile} over a {@link MemoryFile} that records every write, so the
 * file as it was after any number of writes (a crash point) can be rebuilt.
 */
export class JournalFile implements RandomAccessFile {
  readonly inner: MemoryFile;
  readonly initial: Uint8Array;
  /** Every write and truncate, in order, with `tag` as it was when it happened. */
  readonly log: Array<{ offset: number; data: Uint8Array | null; length?: number; tag: number }> = [];
  /** Set by the test (e.g. the guest write in progress). */
  tag = 0;
  constructor(initial: Uint8Array, readonly name = 'journal') {
    this.initial = initial.slice();
    this.inner = new MemoryFile(initial, name);
  }
  get readonly(): boolean { return false; }
  size(): number { return this.inner.size(); }
  read(buf: Uint8Array, offset: number): number { return this.inner.read(buf, offset); }
  write(buf: Uint8Array, offset: number): void {
    this.log.push({ offset, data: buf.slice(), tag: this.tag });
    this.inner.write(buf, offset);
  }
  truncate(length: number): void {
    this.log.push({ offset: 0, data: null, length, tag: this.tag });
    this.inner.truncate(length);
  }
  sync(): void { this.inner.sync(); }
  close(): void { this.inner.close(); }

  /**
   * The file's bytes after the first `n` logged writes, plus the first `partial` bytes
   * of write `n` (a write torn by the kill, page by page).
   */
  stateAt(n: number, partial = 0): Uint8Array {
    const f = new MemoryFile(this.initial);
    for (let i = 0; i < n; i++) {
      const w = this.log[i];
      if (w.data) f.write(w.data, w.offset);
      else f.truncate(w.length!);
    }
    if (partial > 0 && n < this.log.length && this.log[n].data) f.write(this.log[n].data!.subarray(0, partial), this.log[n].offset);
    return f.bytes();
  }
}

/**
 * In-memory files by name, for {@link openImage}: each open gets its own handle (closing
 * it leaves the file), read-only handles refuse writes; names resolve as given.
 */
export class MemFs implements ImageLocator {
  readonly files = new Map<string, MemoryFile>();
  /** Add (or replace) file `name` with a copy of `bytes`. */
  add(name: string, bytes: Uint8Array = new Uint8Array(0)): MemoryFile {
    const f = new MemoryFile(bytes, name);
    this.files.set(name, f);
    return f;
  }
  bytes(name: string): Uint8Array {
    return this.files.get(name)!.bytes();
  }
  open(name: string, _from: string | null, readonly: boolean): { file: RandomAccessFile; location: string; id: string } {
    const f = this.files.get(name);
    if (!f) throw new BlockError(`disk image not found: ${name}`);
    return { file: new Handle(f, readonly), location: name, id: name };
  }
}

class Handle implements RandomAccessFile {
  private closed = false;
  constructor(private readonly f: MemoryFile, readonly readonly: boolean) {}
  get name(): string { return this.f.name; }
  size(): number { this.check(); return this.f.size(); }
  read(buf: Uint8Array, offset: number): number { this.check(); return this.f.read(buf, offset); }
  write(buf: Uint8Array, offset: number): void {
    this.check();
    if (this.readonly) throw new BlockError(`${this.name} is read-only`);
    this.f.write(buf, offset);
  }
  truncate(length: number): void {
    this.check();
    if (this.readonly) throw new BlockError(`${this.name} is read-only`);
    this.f.truncate(length);
  }
  sync(): void { this.check(); this.f.sync(); }
  close(): void { this.closed = true; }
  private check(): void { if (this.closed) throw new BlockError(`${this.name} is closed`); }
}

/** Absolute path of host tool `name`, or null. */
export function findTool(name: string): string | null {
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/bin']) {
    if (!d) continue;
    try { accessSync(join(d, name), constants.X_OK); return join(d, name); } catch { /* next */ }
  }
  return null;
}

/** Outcome of a host command. */
export interface ToolRun { status: number | null; stdout: string; stderr: string }

/** Run a host command (LC_ALL=C), returning its status and output. */
export function runTool(cmd: string, args: readonly string[]): ToolRun {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Run a host command; throws with its output unless it exits 0. */
export function mustRun(cmd: string, args: readonly string[]): string {
  const r = runTool(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** `qemu-img check --output=json` of `path`: exit status and the parsed report. */
export function qemuCheck(path: string): { status: number | null; report: { 'check-errors'?: number; corruptions?: number; leaks?: number; 'corruptions-fixed'?: number }; text: string } {
  const r = runTool('qemu-img', ['check', '--output=json', path]);
  let report = {};
  try { report = JSON.parse(r.stdout); } catch { /* no JSON: reported through text */ }
  return { status: r.status, report, text: r.stdout + r.stderr };
}
