/**
 * Goldfish real-time clock, as on QEMU `virt` (`compatible =
 * "google,goldfish-rtc"`, window 0x1000), following the Android emulator's
 * "GOLDFISH-VIRTUAL-HARDWARE" document (section "Goldfish real-time clock") and
 * the register use of Linux `drivers/rtc/rtc-goldfish.c`:
 *
 * | offset | register        | access                                            |
 * |--------|-----------------|---------------------------------------------------|
 * | 0x00   | TIME_LOW        | R: low 32 bits of now (ns), latches TIME_HIGH; W: sets the time to (TIME_HIGH latch << 32) | value |
 * | 0x04   | TIME_HIGH       | R: latched high 32 bits; W: sets the latch        |
 * | 0x08   | ALARM_LOW       | R: low 32 bits of the alarm; W: arms the alarm at (ALARM_HIGH << 32) | value |
 * | 0x0c   | ALARM_HIGH      | R/W: high 32 bits of the alarm                    |
 * | 0x10   | IRQ_ENABLED     | R/W: bit 0 enables the interrupt output           |
 * | 0x14   | CLEAR_ALARM     | W: disarms the alarm                              |
 * | 0x18   | ALARM_STATUS    | R: 1 while an alarm is armed                      |
 * | 0x1c   | CLEAR_INTERRUPT | W: acknowledges the interrupt                     |
 *
 * Times are nanoseconds since the Unix epoch. Linux sets the time by writing
 * TIME_HIGH then TIME_LOW, and the alarm by writing ALARM_HIGH then ALARM_LOW,
 * so the LOW write commits the whole 64-bit value. The guest's time is the
 * host's {@link WallClock} plus an offset changed by those writes.
 *
 * Accesses must be 4 bytes wide and aligned; others read 0 and are ignored.
 */
import type { IrqLine, MmioDevice, MmioWidth, Persistable, WallClock } from './bus.js';

export const RTC_TIME_LOW = 0x00;
export const RTC_TIME_HIGH = 0x04;
export const RTC_ALARM_LOW = 0x08;
export const RTC_ALARM_HIGH = 0x0c;
export const RTC_IRQ_ENABLED = 0x10;
export const RTC_CLEAR_ALARM = 0x14;
export const RTC_ALARM_STATUS = 0x18;
export const RTC_CLEAR_INTERRUPT = 0x1c;

const MASK64 = (1n << 64n) - 1n;

/** Saved state of a {@link GoldfishRtc} (plain JSON; 64-bit values as decimal strings). */
export interface GoldfishRtcState {
  /** Guest time minus wall-clock time, ns (signed decimal string). */
  offsetNs: string;
  timeHighLatch: number;
  /** Alarm time in guest ns (decimal string). */
  alarm: string;
  alarmArmed: boolean;
  irqEnabled: boolean;
  irqPending: boolean;
}

/**
 * Goldfish RTC. The alarm is checked lazily: the board calls {@link poll} at
 * (or after) {@link nextAlarmWallNs}; an alarm whose time has already passed
 * when it is armed fires immediately.
 */
export class GoldfishRtc implements MmioDevice, Persistable<GoldfishRtcState> {
  readonly size = 0x1000;
  private offsetNs = 0n;
  private timeHighLatch = 0;
  private alarm = 0n;
  private alarmArmed = false;
  private irqEnabled = false;
  private irqPending = false;
  private irqLevel = false;

  /**
   * @param clock host wall clock (ns since the Unix epoch).
   * @param irq level-triggered interrupt output (high while an alarm interrupt is pending and enabled).
   */
  constructor(private readonly clock: WallClock, private readonly irq: IrqLine) {}

  /** Guest time now in ns since the epoch (wall clock + guest-set offset, mod 2^64). */
  now(): bigint {
    return (this.clock.nowNs() + this.offsetNs) & MASK64;
  }

  /** Fire the alarm if its time has come; updates the interrupt line. */
  poll(): void {
    if (this.alarmArmed && this.now() >= this.alarm) {
      this.alarmArmed = false;
      this.irqPending = true;
    }
    this.updateIrq();
  }

  /** Wall-clock time (ns, the `WallClock` scale) at which {@link poll} should next be called, or null when no alarm is armed. */
  nextAlarmWallNs(): bigint | null {
    if (!this.alarmArmed) return null;
    return this.alarm - this.offsetNs;
  }

  /** MMIO read; see the register table above. */
  read(offset: number, width: MmioWidth): number {
    if (width !== 4 || (offset & 3) !== 0) return 0;
    switch (offset) {
      case RTC_TIME_LOW: {
        const t = this.now();
        this.timeHighLatch = Number(t >> 32n);
        return Number(t & 0xffffffffn);
      }
      case RTC_TIME_HIGH:
        return this.timeHighLatch;
      case RTC_ALARM_LOW:
        return Number(this.alarm & 0xffffffffn);
      case RTC_ALARM_HIGH:
        return Number((this.alarm >> 32n) & 0xffffffffn);
      case RTC_IRQ_ENABLED:
        return this.irqEnabled ? 1 : 0;
      case RTC_ALARM_STATUS:
        return this.alarmArmed ? 1 : 0;
      default:
        return 0;
    }
  }

  /** MMIO write; see the register table above. */
  write(offset: number, width: MmioWidth, value: number): void {
    if (width !== 4 || (offset & 3) !== 0) return;
    const v = value >>> 0;
    switch (offset) {
      case RTC_TIME_LOW: {
        const t = (BigInt(this.timeHighLatch) << 32n) | BigInt(v);
        this.offsetNs = t - this.clock.nowNs();
        break;
      }
      case RTC_TIME_HIGH:
        this.timeHighLatch = v;
        break;
      case RTC_ALARM_LOW:
        this.alarm = (this.alarm & 0xffffffff00000000n) | BigInt(v);
        this.alarmArmed = true;
        this.poll();
        break;
      case RTC_ALARM_HIGH:
        this.alarm = (this.alarm & 0xffffffffn) | (BigInt(v) << 32n);
        break;
      case RTC_IRQ_ENABLED:
        this.irqEnabled = (v & 1) === 1;
        this.updateIrq();
        break;
      case RTC_CLEAR_ALARM:
        this.alarmArmed = false;
        break;
      case RTC_CLEAR_INTERRUPT:
        this.irqPending = false;
        this.updateIrq();
        break;
    }
  }

  /** Serializable state (see {@link GoldfishRtcState}). The guest clock keeps its offset from the host wall clock. */
  save(): GoldfishRtcState {
    return {
      offsetNs: this.offsetNs.toString(),
      timeHighLatch: this.timeHighLatch,
      alarm: this.alarm.toString(),
      alarmArmed: this.alarmArmed,
      irqEnabled: this.irqEnabled,
      irqPending: this.irqPending,
    };
  }

  /** Restore a state from {@link save}; drives the IRQ line to the restored level. */
  restore(s: GoldfishRtcState): void {
    this.offsetNs = BigInt(s.offsetNs);
    this.timeHighLatch = s.timeHighLatch >>> 0;
    this.alarm = BigInt(s.alarm) & MASK64;
    this.alarmArmed = !!s.alarmArmed;
    this.irqEnabled = !!s.irqEnabled;
    this.irqPending = !!s.irqPending;
    this.irqLevel = this.irqEnabled && this.irqPending;
    this.irq.set(this.irqLevel);
  }

  private updateIrq(): void {
    const lvl = this.irqEnabled && this.irqPending;
    if (lvl !== this.irqLevel) {
      this.irqLevel = lvl;
      this.irq.set(lvl);
    }
  }
}
