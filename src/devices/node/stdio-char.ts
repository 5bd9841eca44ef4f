/**
 * {@link CharBackend} for a console: guest output goes to a callback (e.g.
 * `process.stdout.write`), host input is pushed by the caller (e.g. from
 * `process.stdin` 'data' events) and buffered until the UART pulls it.
 */
import type { CharBackend } from '../bus.js';
import { ByteQueue } from '../byte-queue.js';

/** Options for {@link StdioCharBackend}. */
export interface StdioCharOptions {
  /** Input bytes kept at most; older input beyond this is dropped (default 1 MiB). */
  maxBuffered?: number;
  /** Called after {@link StdioCharBackend.push} adds input (e.g. to make the board poll the UART). */
  onInput?: () => void;
}

/** Buffered console backend. */
export class StdioCharBackend implements CharBackend {
  private readonly input = new ByteQueue();
  private readonly maxBuffered: number;
  private readonly onInput?: () => void;
  /** Input bytes dropped because the buffer was full. */
  dropped = 0;

  /** @param output receives guest output; the array may be reused after the call, copy it to keep it. */
  constructor(private readonly output: (bytes: Uint8Array) => void, options: StdioCharOptions = {}) {
    this.maxBuffered = options.maxBuffered ?? 1 << 20;
    this.onInput = options.onInput;
  }

  /** Queue host input for the guest. Strings are encoded as UTF-8. The bytes are copied. */
  push(bytes: Uint8Array | string): void {
    let b = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes.slice();
    const room = this.maxBuffered - this.input.length;
    if (b.length > room) {
      this.dropped += b.length - Math.max(room, 0);
      b = b.subarray(0, Math.max(room, 0));
    }
    if (b.length === 0) return;
    this.input.push(b);
    this.onInput?.();
  }

  /** Send guest output to the callback. */
  write(bytes: Uint8Array): void {
    this.output(bytes);
  }

  /** Take up to `max` input bytes (oldest first); empty when none. */
  read(max: number): Uint8Array {
    return this.input.take(max);
  }

  /** Number of input bytes waiting. */
  pending(): number {
    return this.input.length;
  }
}
