/**
 * A {@link NetBackend} over a byte stream (a Unix socket to `passt`, or to the host's
 * virtual switch): each frame is a 4-byte big-endian length followed by that many bytes
 * of Ethernet frame, no virtio header. This is QEMU's `-netdev stream` framing, which
 * `passt` speaks on its socket.
 *
 * Flow control: `send` returns false once the socket's write buffer passes its high-water
 * mark (the device then waits for `writable`); while the device has no receive buffers,
 * the socket is paused, so the peer's kernel buffers fill and the peer slows down.
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
}

/** Frames over a length-prefixed stream. */
export class StreamNetBackend implements NetBackend {
  readonly metrics: StreamNetMetrics = { rxRunt: 0 };
  private port: NetPort | null = null;
  /** Bytes received and not yet parsed into frames. */
  private buf: Buffer = Buffer.alloc(0);
  /** A frame the port could not take yet. */
  private held: Uint8Array | null = null;
  private paused = false;
  private closed = false;

  constructor(private readonly stream: Duplex, private readonly options: StreamNetOptions = {}) {
    stream.on('error', (e) => this.fail(`network link: ${e.message}`));
    stream.on('close', () => this.fail('network link closed by the peer'));
    stream.on('drain', () => this.port?.writable());
    stream.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.deliver();
    });
  }

  /**
   * Deliver frames to `port` from now on (a new board after a guest reboot attaches its
   * new card; until then the stream is paused and frames wait in the socket).
   */
  attach(port: NetPort): void {
    this.port = port;
    this.paused = false;
    this.held = null; // a frame meant for the old card: lost, as on a link that went down
    this.deliver();
  }

  /** Stop delivering (the board is going away); frames wait in the socket. */
  detach(): void {
    this.port = null;
    this.stream.pause();
  }

  /** Send one frame; false once the socket buffer is over its high-water mark. */
  send(frame: Uint8Array): boolean {
    if (this.closed) return true; // a dead link swallows frames, as a cable with nothing on the other end
    const out = Buffer.allocUnsafe(4 + frame.length);
    out.writeUInt32BE(frame.length, 0);
    out.set(frame, 4);
    return this.stream.write(out);
  }

  /** Bytes written and not yet taken by the peer (the socket's write queue). */
  get queuedBytes(): number {
    return this.stream.writableLength;
  }

  /** The device has receive buffers again. */
  resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    this.deliver();
  }

  /** Close the stream. */
  close(): void {
    this.closed = true;
    this.port = null;
    this.stream.destroy();
  }

  /** Hand parsed frames to the port until it refuses one. */
  private deliver(): void {
    const port = this.port;
    if (this.closed) return;
    if (!port) {
      this.stream.pause();
      return;
    }
    if (this.held) {
      if (!port.receive(this.held)) return this.pause();
      this.held = null;
    }
    let at = 0;
    const b = this.buf;
    while (b.length - at >= 4) {
      const len = b.readUInt32BE(at);
      if (len === 0 || len > MAX_FRAME_BYTES) {
        this.fail(`network link: the peer sent a frame length of ${len} bytes`);
        return;
      }
      if (b.length - at - 4 < len) break;
      const frame = b.subarray(at + 4, at + 4 + len);
      at += 4 + len;
      if (len < ETH_HLEN) {
        this.metrics.rxRunt++;
        continue;
      }
      if (!port.receive(frame)) {
        this.held = frame;
        this.buf = b.subarray(at);
        return this.pause();
      }
    }
    this.buf = at === b.length ? Buffer.alloc(0) : b.subarray(at);
    if (this.stream.isPaused()) this.stream.resume();
  }

  private pause(): void {
    this.paused = true;
    this.stream.pause();
  }

  private fail(message: string): void {
    if (this.closed) return;
    this.closed = true;
    this.port = null;
    this.stream.destroy();
    this.options.onError?.(message);
  }
}
