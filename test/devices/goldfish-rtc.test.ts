import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GoldfishRtc,
  RTC_ALARM_HIGH,
  RTC_ALARM_LOW,
  RTC_ALARM_STATUS,
  RTC_CLEAR_ALARM,
  RTC_CLEAR_INTERRUPT,
  RTC_IRQ_ENABLED,
  RTC_TIME_HIGH,
  RTC_TIME_LOW,
} from '../../src/devices/goldfish-rtc.js';
import { FakeIrq } from './helpers.js';

const SEC = 1_000_000_000n;

function setup(start = 1_700_000_000n * SEC) {
  let now = start;
  const clock = { nowNs: () => now };
  const irq = new FakeIrq();
  const rtc = new GoldfishRtc(clock, irq);
  return {
    rtc, irq,
    advance: (ns: bigint) => { now += ns; },
    r: (o: number) => rtc.read(o, 4),
    w: (o: number, v: number) => rtc.write(o, 4, v),
  };
}

function readTime(r: (o: number) => number): bigint {
  const lo = BigInt(r(RTC_TIME_LOW)); // latches TIME_HIGH
  return (BigInt(r(RTC_TIME_HIGH)) << 32n) | lo;
}

function write64(w: (o: number, v: number) => void, hiReg: number, loReg: number, v: bigint): void {
  w(hiReg, Number(v >> 32n));
  w(loReg, Number(v & 0xffffffffn));
}

test('TIME_LOW read latches TIME_HIGH; time is wall clock in ns', () => {
  const { r, advance } = setup();
  assert.equal(readTime(r), 1_700_000_000n * SEC);
  const lo = r(RTC_TIME_LOW);
  advance(1n << 32n); // the high word moves on, but the latch does not
  assert.equal(BigInt(r(RTC_TIME_HIGH)), (1_700_000_000n * SEC) >> 32n);
  assert.equal(lo, Number((1_700_000_000n * SEC) & 0xffffffffn));
});

test('setting the time (HIGH then LOW, as rtc-goldfish does) keeps running from the new value', () => {
  const { r, w, advance } = setup();
  const t = 946_684_800n * SEC; // 2000-01-01
  write64(w, RTC_TIME_HIGH, RTC_TIME_LOW, t);
  assert.equal(readTime(r), t);
  advance(5n * SEC);
  assert.equal(readTime(r), t + 5n * SEC);
});

test('alarm fires on poll() once due, raises the IRQ only when enabled, and is acknowledged', () => {
  const { rtc, r, w, irq, advance } = setup();
  const now = readTime(r);
  write64(w, RTC_ALARM_HIGH, RTC_ALARM_LOW, now + 2n * SEC);
  w(RTC_IRQ_ENABLED, 1);
  assert.equal(r(RTC_ALARM_STATUS), 1);
  assert.equal(BigInt(r(RTC_ALARM_LOW)) | (BigInt(r(RTC_ALARM_HIGH)) << 32n), now + 2n * SEC);
  assert.equal(rtc.nextAlarmWallNs(), now + 2n * SEC);
  advance(SEC);
  rtc.poll();
  assert.equal(irq.level, false);
  advance(SEC);
  rtc.poll();
  assert.equal(irq.level, true);
  assert.equal(r(RTC_ALARM_STATUS), 0, 'alarm no longer armed');
  assert.equal(rtc.nextAlarmWallNs(), null);
  w(RTC_CLEAR_INTERRUPT, 1);
  assert.equal(irq.level, false);
});

test('an alarm in the past fires at once; disabled IRQ hides it; CLEAR_ALARM disarms', () => {
  const { rtc, r, w, irq, advance } = setup();
  const now = readTime(r);
  write64(w, RTC_ALARM_HIGH, RTC_ALARM_LOW, now - SEC);
  assert.equal(irq.level, false, 'IRQ not enabled');
  w(RTC_IRQ_ENABLED, 1);
  assert.equal(irq.level, true);
  w(RTC_CLEAR_INTERRUPT, 1);
  write64(w, RTC_ALARM_HIGH, RTC_ALARM_LOW, now + SEC);
  w(RTC_CLEAR_ALARM, 1);
  advance(2n * SEC);
  rtc.poll();
  assert.equal(irq.level, false);
  assert.equal(r(RTC_IRQ_ENABLED), 1);
});

test('save/restore keeps the guest offset from the wall clock and the alarm', () => {
  const a = setup();
  write64(a.w, RTC_TIME_HIGH, RTC_TIME_LOW, 1000n * SEC);
  write64(a.w, RTC_ALARM_HIGH, RTC_ALARM_LOW, 1010n * SEC);
  a.w(RTC_IRQ_ENABLED, 1);
  const state = JSON.parse(JSON.stringify(a.rtc.save()));
  const b = setup();
  b.rtc.restore(state);
  assert.equal(readTime(b.r), 1000n * SEC);
  b.advance(10n * SEC);
  b.rtc.poll();
  assert.equal(b.irq.level, true);
});
