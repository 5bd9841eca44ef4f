/**
 * The VM process's side of the serial console: guest output goes to a bounded log
 * file and to every attached viewer; viewers' input goes to the guest.
 *
 * Output is batched per event-loop turn (the UART hands over one byte per MMIO
 * write). The log rotates when it would pass `maxLogBytes`: `console.log` becomes
 * `console.log.1` (replacing the previous one) and a new `console.log` starts. The
 * last `scrollbackBytes` of this process's output are kept in memory and sent to each
 * new viewer before the live output.
 */
import { closeSync, fstatSync, openSync, renameSync, writeSync } from 'node:fs';
import type { Duplex } from 'node:stream';

/** Options of {@link ConsoleHub}. */
export interface ConsoleHubOptions {
  /** Append all output here (none when absent). */
  logPath?: string;
  /** Rotate the log before it grows past this many bytes (default 1 MiB). */
  maxLogBytes?: number;
  /** Bytes of scrollback a new viewer gets first (default 64 KiB). */
  scrollbackBytes?: number;
  /** A viewer's unsent output above which it is dropped as too slow (default 4 MiB). */
  maxViewerBacklog?: number;
  /** Output batched in one event-loop turn above which more is dropped (default 1 MiB). */
  maxPendingBytes?: number;
  /** Input typed by a viewer, for the guest. */
  onInput?: (bytes: Uint8Array) => void;
  /** A log write failed (reported once per kind of failure; output keeps flowing to viewers). */
  onLogError?: (e: Error) => void;
}

/** Fan-out of console output to a rotating log and live viewers. */
export class ConsoleHub {
  private readonly logPath?: string;
  private readonly maxLogBytes: number;
  private readonly scrollbackBytes: number;
  private readonly maxViewerBacklog: number;
  private readonly onInput?: (bytes: Uint8Array) => void;
  private readonly onLogError?: (e: Error) => void;
  private fd: number | null = null;
  private logSize = 0;
  private logFailed = false;
  private readonly maxPendingBytes: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  private ring: Buffer = Buffer.alloc(0);
  private readonly viewerSet = new Set<Duplex>();
  /** Total output bytes seen. */
  bytesOut = 0;
  /** Output bytes dropped because more than `maxPendingBytes` came in one event-loop turn. */
  droppedBytes = 0;

  constructor(opts: ConsoleHubOptions = {}) {
    this.logPath = opts.logPath;
    this.maxLogBytes = opts.maxLogBytes ?? 1 << 20;
    this.scrollbackBytes = opts.scrollbackBytes ?? 64 << 10;
    this.maxViewerBacklog = opts.maxViewerBacklog ?? 4 << 20;
    this.maxPendingBytes = opts.maxPendingBytes ?? 1 << 20;
    this.onInput = opts.onInput;
    this.onLogError = opts.onLogError;
    if (this.logPath) this.openLog();
  }

  /** Number of attached viewers. */
  get viewers(): number { return this.viewerSet.size; }

  /**
   * Guest output (copied; sent on the next event-loop turn, or by {@link flush}). What
   * does not fit in `maxPendingBytes` of one turn's batch is dropped and counted.
   */
  output(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.bytesOut += bytes.length;
    const room = this.maxPendingBytes - this.pendingBytes;
    if (bytes.length > room) {
      this.droppedBytes += bytes.length - Math.max(0, room);
      if (room <= 0) return;
      bytes = bytes.subarray(0, room);
    }
    this.pending.push(Buffer.from(bytes));
    this.pendingBytes += bytes.length;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /**
   * Attach a viewer: it gets the scrollback, then live output; what it sends is
   * guest input. It is detached when it ends, errors or falls too far behind; the
   * VM is not affected.
   */
  attach(stream: Duplex): void {
    this.flush();
    if (this.ring.length) stream.write(this.ring);
    this.viewerSet.add(stream);
    const detach = () => { this.viewerSet.delete(stream); };
    stream.on('data', (d: Buffer) => this.onInput?.(new Uint8Array(d.buffer, d.byteOffset, d.length)));
    stream.on('end', () => { detach(); stream.end(); });
    stream.on('close', detach);
    stream.on('error', detach);
  }

  /** Write out the batched output now (log, scrollback, viewers). */
  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const chunk = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.writeLog(chunk);
    const keep = this.scrollbackBytes;
    if (chunk.length >= keep) this.ring = Buffer.from(chunk.subarray(chunk.length - keep));
    else if (this.ring.length + chunk.length <= keep) this.ring = Buffer.concat([this.ring, chunk]);
    else this.ring = Buffer.concat([this.ring.subarray(this.ring.length + chunk.length - keep), chunk]);
    for (const v of this.viewerSet) {
      if (v.destroyed) { this.viewerSet.delete(v); continue; }
      if (v.writableLength > this.maxViewerBacklog) { this.viewerSet.delete(v); v.destroy(); continue; }
      v.write(chunk);
    }
  }

  /** The scrollback (last `scrollbackBytes` of output), for tests and status. */
  scrollback(): Buffer { this.flush(); return Buffer.from(this.ring); }

  /** Flush, close the log and end every viewer; resolves when the viewers have their last bytes. */
  close(): Promise<void> {
    this.flush();
    const ended = [...this.viewerSet].map((v) => new Promise<void>((resolve) => {
      v.once('close', () => resolve());
      v.end(() => resolve());
    }));
    this.viewerSet.clear();
    if (this.fd !== null) { try { closeSync(this.fd); } catch { /* closing anyway */ } this.fd = null; }
    return Promise.all(ended).then(() => undefined);
  }

  private openLog(): void {
    try {
      this.fd = openSync(this.logPath!, 'a', 0o600);
      this.logSize = fstatSync(this.fd).size;
    } catch (e) {
      this.fd = null;
      this.reportLogError(e as Error);
    }
  }

  private writeLog(chunk: Buffer): void {
    if (!this.logPath) return;
    // the log is bounded: of a chunk larger than the whole log, only its end is kept
    if (chunk.length > this.maxLogBytes) chunk = chunk.subarray(chunk.length - this.maxLogBytes);
    if (this.fd === null) { this.openLog(); if (this.fd === null) return; }
    try {
      if (this.logSize > 0 && this.logSize + chunk.length > this.maxLogBytes) {
        closeSync(this.fd);
        this.fd = null;
        renameSync(this.logPath, this.logPath + '.1');
        this.openLog();
        if (this.fd === null) return;
      }
      let off = 0;
      while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off);
      this.logSize += chunk.length;
      this.logFailed = false;
    } catch (e) {
      this.reportLogError(e as Error);
    }
  }

  private reportLogError(e: Error): void {
    if (this.logFailed) return;
    this.logFailed = true;
    this.onLogError?.(e);
  }
}
