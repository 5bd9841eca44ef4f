/**
 * The control block shared between a VM's main thread and its hart worker
 * threads (one SharedArrayBuffer of Int32 words plus one of BigInt64 start
 * arguments):
 *
 *   word 0             doorbell: bumped by a hart that posted an MMIO request
 *   word 1             stop: non-zero asks every hart to leave its run loop
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
 *   start arguments (BigInt64 pairs): entry, opaque for HSM hart_start.
 */
export const HART_WORDS = 16;
export const W_DOORBELL = 0;
export const W_STOP = 1;
export const H_MMIO = 0;
export const H_OP = 1;
export const H_ADDR = 2;
export const H_SIZE = 3;
export const H_VALUE = 4;
export const H_FAULT = 5;
export const H_HSM = 6;
export const H_PARKED = 7;
export const H_FLUSH = 8;

/** SBI HSM hart states (SBI v2.0 9.1). */
export const HSM_STARTED = 0;
export const HSM_STOPPED = 1;
export const HSM_START_PENDING = 2;

/** Views over the shared control block of a VM with `harts` harts. */
export class SmpControl {
  readonly words: Int32Array;
  readonly startArgs: BigInt64Array;
  constructor(readonly harts: number, words?: SharedArrayBuffer, args?: SharedArrayBuffer) {
    this.words = new Int32Array(words ?? new SharedArrayBuffer(4 * HART_WORDS * (harts + 1)));
    this.startArgs = new BigInt64Array(args ?? new SharedArrayBuffer(16 * harts));
  }
  /** Index of word `w` of hart `id`. */
  at(id: number, w: number): number { return HART_WORDS * (id + 1) + w; }
  get(id: number, w: number): number { return Atomics.load(this.words, this.at(id, w)); }
  set(id: number, w: number, v: number): void { Atomics.store(this.words, this.at(id, w), v); }
  notify(id: number, w: number): void { Atomics.notify(this.words, this.at(id, w)); }
  /** The buffers to send to a worker. */
  buffers(): { words: SharedArrayBuffer; args: SharedArrayBuffer } {
    return { words: this.words.buffer as SharedArrayBuffer, args: this.startArgs.buffer as SharedArrayBuffer };
  }
}
