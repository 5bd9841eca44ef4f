/**
 * A {@link NetBackend} over a byte stream (a Unix socket to `passt`, or to the host's
 * virtual switch): each frame is a 4-byte big-endian length followed by that many bytes
 * of Ethernet frame, no virtio header. This is QEMU's `-netdev stream` framing, which
 * `passt` speaks on its socket.
 *
 * Flow control: `send` returns false once the socket's write buffer passes its high-water
 * mark (the device then waits for `writable`). Received frames the device cannot place
 * yet (the guest has not posted receive buffers) wait in a queue of at most
 * `rxQueueBytes`, a NIC's receive FIFO; only past that is the socket paused, so that the
 * peer's kernel buffers fill and the peer slows down. The queue matters: `passt` sends up
 * to the guest's TCP window at once and drops the frames its socket refuses (it does not
 * take back their sequence numbers), so a paused socket costs the guest its TCP
 * segments, then duplicate ACKs, retransmissions and 2 s stalls.
 *
 * The peer is not trusted: a frame length of 0, or longer than {@link MAX_FRAME_BYTES},
 * cannot be resynchronized and ends the link (`onError`); frames shorter than an
 * Ethernet header are dropped and counted.
 */
import type { Duplex } from 'node:stream';
import type { NetBackend, NetPort } from '../bus.js';
import { ETH_HLEN, MAX_FRAME_BYTES } from '../net/frame.js';

/** Counters of a {@link StreamNetBackend}. */
export interface StreamNetMetrics {
  /** Frames from the peer shorter than an Ethernet header, dropped. */
  rxRunt: number;
}

/** Options of {@link StreamNetBackend}. */
export interface StreamNetOptions {
  /** The link broke: the peer closed it, a socket error, or a frame length that cannot be right. */
  onError?: (message: string) => void;
  /**
   * Bytes of received frames kept while the device cannot take them, before the socket is
   * paused (default {@link DEFAULT_RX_QUEUE_BYTES}; at least one frame is always kept).
   */
  rxQueueBytes?: number;
  /**
   * The stream is a `net.Socket` made with `reader.onread` (Node's `onread` option): the
   * backend takes its reads from there, out of one buffer that every read reuses, instead
   * of from `'data'` events (a fresh 64 KiB buffer per read).
   */
  reader?: StreamReader;
}

/** Bytes of the buffer a {@link StreamReader} reads into: a few of passt's 64 KiB frames per read. */
export const READ_BUFFER_BYTES = 256 * 1024;

/**
 * Reads of a `net.Socket` into one buffer, for a {@link StreamNetBackend}: give `onread` to
 * the Socket's constructor and the reader to the backend (StreamNetOptions.reader). Node's
 * `'data'` events hand over each read in a fresh buffer; a VM receiving at a few hundred
 * MB/s then allocates thousands of 64 KiB buffers a second, and V8's collector, marking
 * on other threads, takes a share of the cores the vCPUs need. What is read before the
 * backend takes over is kept (copied) for it.
 */
export class StreamReader {
  private sink: ((chunk: Buffer) => void) | null = null;
  private early: Buffer[] = [];
  /** The Socket constructor's `onread` option (Node's net.Socket). */
  readonly onread = {
    buffer: Buffer.allocUnsafeSlow(READ_BUFFER_BYTES),
    callback: (n: number, buf: Buffer): boolean => {
      const chunk = buf.subarray(0, n);
      if (this.sink) this.sink(chunk);
      else this.early.push(Buffer.from(chunk));
      return true;
    },
  };

  /** From now on pass each read to `sink`; the chunk is valid only during the call. Reads kept so far first. */
  bind(sink: (chunk: Buffer) => void): void {
    this.sink = sink;
    const early = this.early;
    this.early = [];
    for (const c of early) sink(c);
  }
}

/**
 * The default receive queue (bytes): above the largest TCP window Linux guests advertise by
 * default (tcp_rmem's 6 MiB maximum), so that one connection's window fits.
 */
export const DEFAULT_RX_QUEUE_BYTES = 8 * 1024 * 1024;

/**
 * Outgoing frames are copied into a ring of this many bytes while it has room, and written
 * from there: sending then allocates nothing (64 KiB frames, passt's MTU, each in a fresh
 * buffer kept the VM process's garbage collector busy). Past it, a frame gets a buffer of its own.
 */
export const SEND_RING_BYTES = 2 * 1024 * 1024;

/** Frames over a length-prefixed stream. */
export class StreamNetBackend implements NetBackend {
  readonly metrics: StreamNetMetrics = { rxRunt: 0 };
  private port: NetPort | null = null;
  /** A frame cut across reads, its 4-byte length first, gathered: `asmHave` bytes of it so far (0: none). */
  private readonly asm = Buffer.allocUnsafeSlow(4 + MAX_FRAME_BYTES);
  private asmHave = 0;
  /** Whole frames the port has not taken yet, oldest first, from `queueHead` on. */
  private queue: Uint8Array[] = [];
  private queueHead = 0;
  /** Bytes of the frames in `queue`. */
  private queuedRxBytes = 0;
  private readonly rxQueueBytes: number;
  /** The port refused a frame: wait for resume(). */
  private blocked = false;
  private closed = false;
  private readonly ring = Buffer.allocUnsafeSlow(SEND_RING_BYTES);
  /** Ring offsets: where the next frame may go, and where the oldest frame the socket still holds starts. */
  private ringHead = 0;
  private ringTail = 0;
  /** Start offsets of the ring's frames the socket still holds, oldest first (sockets finish writes in order). */
  private ringStarts: number[] = [];
  private ringFirst = 0;
  /** A ring frame was written out: its room is free again. */
  private readonly ringWritten = (): void => {
    this.ringFirst++;
    if (this.ringFirst === this.ringStarts.length) {
      this.ringStarts = [];
      this.ringFirst = 0;
      this.ringHead = this.ringTail = 0;
    } else {
      this.ringTail = this.ringStarts[this.ringFirst];
    }
  };

  /** @throws RangeError when `rxQueueBytes` is not a positive safe integer. */
  constructor(private readonly stream: Duplex, private readonly options: StreamNetOptions = {}) {
    const q = options.rxQueueBytes ?? DEFAULT_RX_QUEUE_BYTES;
    if (!Number.isSafeInteger(q) || q <= 0) throw new RangeError(`rxQueueBytes must be a positive whole number, got ${q}`);
    this.rxQueueBytes = q;
    stream.on('error', (e) => this.fail(`network link: ${e.message}`));
    stream.on('close', () => this.fail('network link closed by the peer'));
    stream.on('drain', () => this.port?.writable());
    if (options.reader) {
      // the read buffer is reused by the next read: frames that must wait are copied
      options.reader.bind((chunk) => {
        this.parse(chunk, true);
        this.deliver();
      });
    } else {
      stream.on('data', (chunk: Buffer) => {
        this.parse(chunk, false);
        this.deliver();
      });
    }
  }

  /** Bytes of received frames waiting for the device. */
  get rxQueuedBytes(): number {
    return this.queuedRxBytes;
  }

  /**
   * Deliver frames to `port` from now on (a new board after a guest reboot attaches its
   * new card; until then the stream is paused and frames wait in the socket).
   */
  attach(port: NetPort): void {
    this.port = port;
    this.blocked = false;
    // frames meant for the old card: lost, as on a link that went down
    this.queue = [];
    this.queueHead = 0;
    this.queuedRxBytes = 0;
    this.deliver();
  }

  /** Stop delivering (the board is going away); frames wait in the socket. */
  detach(): void {
    this.port = null;
    this.stream.pause();
  }

  /** Send one frame (copied); false once the socket buffer is over its high-water mark. */
  send(frame: Uint8Array): boolean {
    if (this.closed) return true; // a dead link swallows frames, as a cable with nothing on the other end
    const need = 4 + frame.length;
    const at = this.ringRoom(need);
    const out = at < 0 ? Buffer.allocUnsafe(need) : this.ring.subarray(at, at + need);
    out.writeUInt32BE(frame.length, 0);
    out.set(frame, 4);
    if (at < 0) return this.stream.write(out);
    this.ringHead = at + need;
    if (this.ringFirst > 1024 && this.ringFirst * 2 > this.ringStarts.length) {
      this.ringStarts = this.ringStarts.slice(this.ringFirst);
      this.ringFirst = 0;
    }
    this.ringStarts.push(at);
    return this.stream.write(out, this.ringWritten);
  }

  /** Where `need` bytes fit in the send ring without touching a frame the socket holds, or -1. */
  private ringRoom(need: number): number {
    if (this.ringFirst === this.ringStarts.length) return need <= SEND_RING_BYTES ? 0 : -1;
    const head = this.ringHead;
    const tail = this.ringTail;
    if (head > tail) {
      // held: [tail, head); free: [head, end) and [0, tail)
      if (head + need <= SEND_RING_BYTES) return head;
      return need < tail ? 0 : -1;
    }
    // wrapped (held: [tail, end) and [0, head)), or full (head === tail)
    return head + need < tail ? head : -1;
  }

  /** Bytes written and not yet taken by the peer (the socket's write queue). */
  get queuedBytes(): number {
    return this.stream.writableLength;
  }

  /** The device has receive buffers again. */
  resume(): void {
    if (!this.blocked || this.closed) return;
    this.blocked = false;
    this.deliver();
  }

  /** Close the stream. */
  close(): void {
    this.closed = true;
    this.port = null;
    this.stream.destroy();
  }

  /**
   * Cut `chunk` (after what is left of the last read) into frames. A frame is handed to the
   * port at once while nothing waits before it, else queued; a frame cut across reads is
   * gathered in one buffer of this backend (copied only when it has to wait), so that a
   * 64 KiB frame (passt's MTU), which nearly always spans two reads, costs no allocation.
   * `reused`: the chunk's memory is read into again after this call (StreamReader), so a
   * frame queued from it is copied too.
   */
  private parse(chunk: Buffer, reused: boolean): void {
    let at = 0;
    if (this.asmHave > 0) {
      if (this.asmHave < 4) {
        const n = Math.min(4 - this.asmHave, chunk.length);
        chunk.copy(this.asm, this.asmHave, 0, n);
        this.asmHave += n;
        at = n;
        if (this.asmHave < 4) return;
        if (!this.lengthOk(this.asm.readUInt32BE(0))) return;
      }
      const len = this.asm.readUInt32BE(0);
      const n = Math.min(4 + len - this.asmHave, chunk.length - at);
      chunk.copy(this.asm, this.asmHave, at, at + n);
      this.asmHave += n;
      at += n;
      if (this.asmHave < 4 + len) return;
      this.asmHave = 0;
      this.frame(this.asm.subarray(4, 4 + len), true);
    }
    while (!this.closed && chunk.length - at >= 4) {
      const len = chunk.readUInt32BE(at);
      if (!this.lengthOk(len)) return;
      if (chunk.length - at - 4 < len) break;
      this.frame(chunk.subarray(at + 4, at + 4 + len), reused);
      at += 4 + len;
    }
    if (this.closed || at === chunk.length) return;
    // the rest is less than one frame (its length validated when it is 4 bytes or more)
    chunk.copy(this.asm, 0, at);
    this.asmHave = chunk.length - at;
  }

  /** A frame length the stream cannot be resynchronized after ends the link; false then. */
  private lengthOk(len: number): boolean {
    if (len !== 0 && len <= MAX_FRAME_BYTES) return true;
    this.fail(`network link: the peer sent a frame length of ${len} bytes`);
    return false;
  }

  /** One whole frame: to the port now, or queued (a copy when its memory is reused: the gathering buffer or a StreamReader's). */
  private frame(f: Buffer, reusedMemory: boolean): void {
    if (f.length < ETH_HLEN) {
      this.metrics.rxRunt++;
      return;
    }
    const port = this.port;
    if (port && !this.blocked && this.queueHead === this.queue.length) {
      if (port.receive(f)) return;
      this.blocked = true;
    }
    this.queue.push(reusedMemory ? Buffer.from(f) : f);
    this.queuedRxBytes += f.length;
  }

  /**
   * Hand queued frames to the port until it refuses one; pause the socket while the queue
   * is over `rxQueueBytes` (or no port is attached), read on once it is under half of it.
   */
  private deliver(): void {
    if (this.closed) return;
    const port = this.port;
    if (port && !this.blocked) {
      while (this.queueHead < this.queue.length) {
        const frame = this.queue[this.queueHead];
        if (!port.receive(frame)) {
          this.blocked = true;
          break;
        }
        this.queueHead++;
        this.queuedRxBytes -= frame.length;
      }
      if (this.queueHead === this.queue.length) {
        this.queue = [];
        this.queueHead = 0;
      } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.queueHead);
        this.queueHead = 0;
      }
    }
    if (this.closed) return; // the port may have closed the link
    if (!port || this.queuedRxBytes > this.rxQueueBytes) this.stream.pause();
    else if (this.stream.isPaused() && this.queuedRxBytes <= this.rxQueueBytes / 2) this.stream.resume();
  }

  private fail(message: string): void {
    if (this.closed) return;
    this.closed = true;
    this.port = null;
    this.queue = [];
    this.queueHead = 0;
    this.queuedRxBytes = 0;
    this.stream.destroy();
    this.options.onError?.(message);
  }
}
