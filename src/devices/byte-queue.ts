/**
 * A FIFO of bytes held as the chunks they were pushed in: pushing keeps the chunk as it
 * is, taking copies out only what is asked. Used where host input waits for a guest to
 * pull it (console backends, virtio-console ports).
 */
export class ByteQueue {
  private chunks: Uint8Array[] = [];
  /** Bytes already taken from chunks[0]. */
  private head = 0;
  private count = 0;

  /** Bytes waiting. */
  get length(): number {
    return this.count;
  }

  /** Append `bytes` (kept, not copied: the caller hands it over). */
  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.chunks.push(bytes);
    this.count += bytes.length;
  }

  /** Remove and return the first `max` waiting bytes (fewer when fewer wait; `max` is floored, negative is 0). */
  take(max: number): Uint8Array {
    const n = Math.min(Math.max(0, Math.floor(max)), this.count);
    const out = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      const c = this.chunks[0];
      const part = Math.min(c.length - this.head, n - done);
      out.set(c.subarray(this.head, this.head + part), done);
      done += part;
      this.head += part;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.count -= n;
    return out;
  }

  /** A copy of every waiting byte, in order (the queue is unchanged). */
  peekAll(): Uint8Array {
    const out = new Uint8Array(this.count);
    let at = 0;
    this.chunks.forEach((c, i) => {
      const part = i === 0 ? c.subarray(this.head) : c;
      out.set(part, at);
      at += part.length;
    });
    return out;
  }

  /** Drop everything waiting. */
  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.count = 0;
  }
}
