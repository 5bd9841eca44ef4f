/**
 * SiFive CLINT-compatible core-local interruptor, as on QEMU `virt`
 * (`compatible = "sifive,clint0", "riscv,clint0"`, window 0x10000). It is the
 * ACLINT MSWI + MTIMER pair in their legacy CLINT layout (RISC-V ACLINT spec
 * 1.0, §2 "MTIMER device" and §3 "MSWI device"):
 *
 * | offset             | register                                       |
 * |--------------------|------------------------------------------------|
 * | 0x0000 + 4*hart    | msip: bit 0 = machine software interrupt (MSIP)|
 * | 0x4000 + 8*hart    | mtimecmp (64-bit, as two 32-bit halves)        |
 * | 0xbff8             | mtime (64-bit, as two 32-bit halves)           |
 *
 * Time is not ticked by this model: `mtime` is `time() + offset`, where `time()`
 * is the board's timebase (10 MHz on virt) and `offset` changes only when the
 * guest writes mtime. Timer comparisons are lazy: the board calls {@link
 * Aclint.update} when a deadline from {@link Aclint.nextDeadline} may have passed
 * (and before a parked hart sleeps), and the model calls `onTimer` on changes.
 *
 * Accesses must be 4 bytes wide and aligned; others read 0 and are ignored.
 */
import type { MmioDevice, MmioWidth, Persistable } from './bus.js';

const MSIP_BASE = 0x0000;
const MTIMECMP_BASE = 0x4000;
const MTIME = 0xbff8;
const MASK64 = (1n << 64n) - 1n;

/** Saved state of an {@link Aclint} (plain JSON; 64-bit values as decimal strings). */
export interface AclintState {
  numHarts: number;
  msip: boolean[];
  /** mtimecmp per hart, decimal string. */
  mtimecmp: string[];
  /** Guest-visible mtime at save time, decimal string (restored relative to the new time source). */
  mtime: string;
}

/**
 * CLINT (MSWI + MTIMER) for `numHarts` harts.
 *
 * mtimecmp resets to 2^64-1 (the ACLINT spec leaves the reset value
 * unspecified), so no timer interrupt is pending until software programs one.
 */
export class Aclint implements MmioDevice, Persistable<AclintState> {
  readonly size = 0x10000;
  private readonly msip: Uint8Array;
  private readonly mtimecmp: BigUint64Array;
  private readonly timerLevel: Uint8Array;
  /** mtime = (time() + offset) mod 2^64; offset is a signed value set by guest writes of mtime. */
  private offset = 0n;

  /**
   * @param numHarts number of harts (1..4095).
   * @param time the board's timebase counter in ticks (10 MHz on virt); must not go backwards.
   * @param onSoftware called with (hart, level) when a hart's MSIP bit changes.
   * @param onTimer called with (hart, level) when a hart's MTIP (mtime >= mtimecmp) changes.
   * @throws RangeError on a bad hart count.
   */
  constructor(
    readonly numHarts: number,
    private readonly time: () => bigint,
    private readonly onSoftware: (hart: number, level: boolean) => void,
    private readonly onTimer: (hart: number, level: boolean) => void,
  ) {
    if (!Number.isInteger(numHarts) || numHarts < 1 || numHarts > 4095) {
      throw new RangeError(`CLINT numHarts must be 1..4095, got ${numHarts}`);
    }
    this.msip = new Uint8Array(numHarts);
    this.mtimecmp = new BigUint64Array(numHarts).fill(MASK64);
    this.timerLevel = new Uint8Array(numHarts);
  }

  /** The guest-visible mtime now (ACLINT §2.1). */
  mtime(): bigint {
    return (this.time() + this.offset) & MASK64;
  }

  /** Set mtime (as a guest write of both halves would); re-evaluates all timers. */
  setMtime(value: bigint): void {
    this.offset = (value & MASK64) - this.time();
    this.update();
  }

  /** mtimecmp of `hart` (ACLINT §2.2). */
  getMtimecmp(hart: number): bigint {
    return this.mtimecmp[hart];
  }

  /** Set mtimecmp of `hart` (for an SBI `sbi_set_timer` done by the hypervisor); re-evaluates that hart's timer. */
  setMtimecmp(hart: number, value: bigint): void {
    if (hart < 0 || hart >= this.numHarts) return;
    this.mtimecmp[hart] = value & MASK64;
    this.updateHart(hart, this.mtime());
  }

  /** Raise or clear `hart`'s MSIP (ACLINT §3.1), e.g. for an SBI IPI. */
  setMsip(hart: number, level: boolean): void {
    if (hart < 0 || hart >= this.numHarts) return;
    const v = level ? 1 : 0;
    if (this.msip[hart] === v) return;
    this.msip[hart] = v;
    this.onSoftware(hart, level);
  }

  /**
   * Value of `time()` (board timebase ticks) at which `hart`'s timer interrupt
   * becomes pending: mtimecmp translated by the mtime offset, clamped to
   * 0..2^64-1. It may lie in the past (the timer is then pending once
   * {@link update} runs). 2^64-1 means "never" (mtimecmp at its maximum).
   */
  nextDeadline(hart: number): bigint {
    const cmp = this.mtimecmp[hart];
    if (cmp === MASK64) return MASK64;
    const t = cmp - this.offset;
    return t < 0n ? 0n : t > MASK64 ? MASK64 : t;
  }

  /** Current MTIP level of `hart` as of the last update. */
  timerPending(hart: number): boolean {
    return this.timerLevel[hart] === 1;
  }

  /** Compare mtime with every hart's mtimecmp and call `onTimer` for each change. */
  update(): void {
    const now = this.mtime();
    for (let h = 0; h < this.numHarts; h++) this.updateHart(h, now);
  }

  /** MMIO read; see the layout table above. */
  read(offset: number, width: MmioWidth): number {
    if (width !== 4 || (offset & 3) !== 0) return 0;
    if (offset >= MSIP_BASE && offset < MSIP_BASE + 4 * this.numHarts) {
      return this.msip[(offset - MSIP_BASE) >>> 2];
    }
    if (offset >= MTIMECMP_BASE && offset < MTIMECMP_BASE + 8 * this.numHarts) {
      const rel = offset - MTIMECMP_BASE;
      return half(this.mtimecmp[rel >>> 3], rel & 4);
    }
    if (offset === MTIME || offset === MTIME + 4) {
      return half(this.mtime(), offset - MTIME);
    }
    return 0;
  }

  /** MMIO write; see the layout table above. A 64-bit register changes half by half, each write taking effect at once. */
  write(offset: number, width: MmioWidth, value: number): void {
    if (width !== 4 || (offset & 3) !== 0) return;
    if (offset >= MSIP_BASE && offset < MSIP_BASE + 4 * this.numHarts) {
      this.setMsip((offset - MSIP_BASE) >>> 2, (value & 1) === 1);
      return;
    }
    if (offset >= MTIMECMP_BASE && offset < MTIMECMP_BASE + 8 * this.numHarts) {
      const rel = offset - MTIMECMP_BASE;
      const hart = rel >>> 3;
      this.setMtimecmp(hart, withHalf(this.mtimecmp[hart], rel & 4, value));
      return;
    }
    if (offset === MTIME || offset === MTIME + 4) {
      this.setMtime(withHalf(this.mtime(), offset - MTIME, value));
    }
  }

  /** Serializable state (see {@link AclintState}). */
  save(): AclintState {
    return {
      numHarts: this.numHarts,
      msip: Array.from(this.msip, (v) => v === 1),
      mtimecmp: Array.from(this.mtimecmp, (v) => v.toString()),
      mtime: this.mtime().toString(),
    };
  }

  /**
   * Restore a state from {@link save}: the guest's mtime continues from the saved
   * value on this time source. Calls `onSoftware` and `onTimer` for every hart with
   * the restored levels.
   * @throws Error if the hart count differs.
   */
  restore(s: AclintState): void {
    if (s.numHarts !== this.numHarts) throw new Error(`CLINT state has ${s.numHarts} harts, this CLINT ${this.numHarts}`);
    this.offset = (BigInt(s.mtime) & MASK64) - this.time();
    const now = this.mtime();
    for (let h = 0; h < this.numHarts; h++) {
      this.msip[h] = s.msip[h] ? 1 : 0;
      this.mtimecmp[h] = BigInt(s.mtimecmp[h]) & MASK64;
      const lvl = now >= this.mtimecmp[h];
      this.timerLevel[h] = lvl ? 1 : 0;
      this.onSoftware(h, this.msip[h] === 1);
      this.onTimer(h, lvl);
    }
  }

  private updateHart(hart: number, now: bigint): void {
    const lvl = now >= this.mtimecmp[hart] ? 1 : 0;
    if (lvl !== this.timerLevel[hart]) {
      this.timerLevel[hart] = lvl;
      this.onTimer(hart, lvl === 1);
    }
  }
}

/** The 32-bit half of `v` at byte offset `which` (0 = low, 4 = high). */
function half(v: bigint, which: number): number {
  return Number(which === 0 ? v & 0xffffffffn : (v >> 32n) & 0xffffffffn);
}

/** `v` with the 32-bit half at byte offset `which` replaced by `value`. */
function withHalf(v: bigint, which: number, value: number): bigint {
  const x = BigInt(value >>> 0);
  return which === 0 ? (v & 0xffffffff00000000n) | x : (v & 0xffffffffn) | (x << 32n);
}
