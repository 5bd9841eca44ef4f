/**
 * The control block shared between a VM's main thread and its hart worker
 * threads (one SharedArrayBuffer of Int32 words plus one of BigInt64 start
 * arguments):
 *
 *   word 0             doorbell: bumped by a hart that posted an MMIO request
 *   word 1             stop: non-zero asks every hart to leave its run loop
 *   word 2             pause: non-zero asks every hart to park between slices (see below)
 *   word 3             console bytes posted by harts (SBI DBCN) that the VM thread has
 *                      not taken yet; past CONSOLE_INFLIGHT_MAX a DBCN write returns 0
 *                      (the guest retries), so a guest cannot queue unbounded output
 *   per hart i, at HART_WORDS * (i + 1):
 *     +0 mmio state    0 idle, 1 request posted, 2 answered
 *     +1 op            0 read, 1 write
 *     +2 address       guest physical (< 4 GiB)
 *     +3 size          1, 2, 4
 *     +4 value         written value / read result
 *     +5 fault         1 when no device answered (access fault)
 *     +6 HSM state     SBI HSM hart state (SBI v2.0 chapter 9)
 *     +7 parked        1 while the hart sleeps in WFI or is stopped
 *     +8 flush         1 while a remote sfence.vma is pending for this hart
 *   at HART_WORDS * (harts + 1), the posted writes of all harts: one ring of POST_SLOTS
 *   (sequence, address, size, value) entries, in the order the harts posted them
 *     +0 head          entries taken by the VM thread (only it writes this word)
 *     +1 tail          entries claimed by harts (compare-and-swap; counters wrap as Int32)
 *     +2 + 4*(n mod POST_SLOTS)   entry n: sequence (n + 1 once its writer has filled
 *                      it), address, size, value
 *   A posted write needs no answer (src/machine/hart-mmio.ts): the hart rings the
 *   doorbell and goes on. The VM thread applies posted writes in the order they were
 *   posted, by whichever hart: two harts that write one register in turn under a guest
 *   lock (Linux's 8250 driver: one stops transmission in IER, the next starts it
 *   again) leave it as the second wrote it. (Per-hart rings taken hart by hart once
 *   applied the second write first, and the UART stopped transmitting with output
 *   queued.) It takes every posted write before it serves any request it saw posted,
 *   so a request is served after every posted write that happened before it.
 *   start arguments (BigInt64 pairs): entry, opaque for HSM hart_start.
 *   clock (one Float64): ms of host time the VM spent paused; subtracted from the
 *     guest's time base by every hart and by the board.
 *
 * Pausing: the VM thread sets the pause word; each hart checks it before every run
 * slice and, while it is set, parks (H_PARKED = 1) in Atomics.wait on it. A hart
 * already parked in WFI or stopped (HSM) stays where it is and checks the word when it
 * wakes. Once every hart is parked the VM thread notes the host time; on resume it
 * adds the time spent paused to the clock word before clearing the pause word. So the
 * guest's time base (the `time` CSR, stimecmp, CLINT mtime) stands still while the VM
 * is paused: no timer interrupts pile up and the guest sees no jump (its wall-clock
 * time then lags the host's by the pause, as with QEMU's stop/cont). The goldfish RTC
 * reads the host's wall clock and is not held back.
 */
export const HART_WORDS = 16;
export const W_DOORBELL = 0;
export const W_STOP = 1;
export const W_PAUSE = 2;
export const W_CONSOLE_INFLIGHT = 3;
/** Most SBI console bytes in flight from the harts to the VM thread. */
export const CONSOLE_INFLIGHT_MAX = 1 << 20;
export const H_MMIO = 0;
export const H_OP = 1;
export const H_ADDR = 2;
export const H_SIZE = 3;
export const H_VALUE = 4;
export const H_FAULT = 5;
export const H_HSM = 6;
export const H_PARKED = 7;
export const H_FLUSH = 8;
/** Entries of the posted-write ring (a power of two); when it is full a hart waits for an answer instead. */
export const POST_SLOTS = 256;
const POST_WORDS = 2 + 4 * POST_SLOTS;

/** SBI HSM hart states (SBI v2.0 9.1). */
export const HSM_STARTED = 0;
export const HSM_STOPPED = 1;
export const HSM_START_PENDING = 2;

/** Views over the shared control block of a VM with `harts` harts. */
export class SmpControl {
  readonly words: Int32Array;
  readonly startArgs: BigInt64Array;
  /** [0]: ms the VM has spent paused (written by the VM thread only while every hart is parked). */
  readonly clock: Float64Array;
  constructor(readonly harts: number, words?: SharedArrayBuffer, args?: SharedArrayBuffer, clock?: SharedArrayBuffer) {
    this.words = new Int32Array(words ?? new SharedArrayBuffer(4 * (HART_WORDS * (harts + 1) + POST_WORDS)));
    this.startArgs = new BigInt64Array(args ?? new SharedArrayBuffer(16 * harts));
    this.clock = new Float64Array(clock ?? new SharedArrayBuffer(8));
  }
  /** Index of word `w` of hart `id`. */
  at(id: number, w: number): number { return HART_WORDS * (id + 1) + w; }
  get(id: number, w: number): number { return Atomics.load(this.words, this.at(id, w)); }
  set(id: number, w: number, v: number): void { Atomics.store(this.words, this.at(id, w), v); }
  notify(id: number, w: number): void { Atomics.notify(this.words, this.at(id, w)); }
  /** Index of the first word (head) of the posted-write ring. */
  private get postAt(): number { return HART_WORDS * (this.harts + 1); }
  /**
   * A hart posts a write of `size` bytes of `value` at guest physical `pa` (< 4 GiB)
   * and rings the doorbell; any thread may call it. False when the ring is full
   * (nothing was posted).
   */
  postWrite(pa: number, size: number, value: number): boolean {
    const w = this.words;
    const base = this.postAt;
    let n: number;
    for (;;) {
      n = Atomics.load(w, base + 1);
      if (((n - Atomics.load(w, base)) | 0) >= POST_SLOTS) return false;
      if (Atomics.compareExchange(w, base + 1, n, (n + 1) | 0) === n) break;
    }
    const e = base + 2 + 4 * (n & (POST_SLOTS - 1));
    w[e + 1] = pa | 0;
    w[e + 2] = size;
    w[e + 3] = value | 0;
    Atomics.store(w, e, (n + 1) | 0); // filled: the VM thread may take it
    Atomics.add(w, W_DOORBELL, 1);
    Atomics.notify(w, W_DOORBELL);
    return true;
  }

  /**
   * VM thread: pass every write the harts posted to `f(pa, size, value)`, in the order
   * they were posted; returns how many. An entry claimed but not yet filled (its hart
   * is between the two steps of postWrite) is waited for, spinning: the writes after it
   * may depend on it. Returns early if the stop word is set.
   */
  takePosted(f: (pa: number, size: number, value: number) => void): number {
    const w = this.words;
    const base = this.postAt;
    const tail = Atomics.load(w, base + 1);
    let head = w[base];
    const n = (tail - head) | 0;
    for (; head !== tail; head = (head + 1) | 0) {
      const e = base + 2 + 4 * (head & (POST_SLOTS - 1));
      const filled = (head + 1) | 0;
      while (Atomics.load(w, e) !== filled) {
        if (Atomics.load(w, W_STOP) !== 0) return (n - ((tail - head) | 0)) | 0;
      }
      f(w[e + 1] >>> 0, w[e + 2], w[e + 3] >>> 0);
      Atomics.store(w, base, filled); // the slot is free again
    }
    return n;
  }

  /** The buffers to send to a worker. */
  buffers(): { words: SharedArrayBuffer; args: SharedArrayBuffer; clock: SharedArrayBuffer } {
    return {
      words: this.words.buffer as SharedArrayBuffer,
      args: this.startArgs.buffer as SharedArrayBuffer,
      clock: this.clock.buffer as SharedArrayBuffer,
    };
  }
  /** True when every hart is parked (WFI, HSM-stopped, paused or exited). */
  allParked(): boolean {
    for (let i = 0; i < this.harts; i++) if (this.get(i, H_PARKED) === 0) return false;
    return true;
  }
}
