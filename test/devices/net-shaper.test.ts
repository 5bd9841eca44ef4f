import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';
import type { NetBackend, NetPort } from '../../src/devices/bus.js';
import { NetShaper } from '../../src/devices/node/net-shaper.js';
import { MAX_FRAME_BYTES } from '../../src/devices/net/frame.js';

/** A link that takes every frame and, asked to, delivers frames of `size` bytes as long as the shaper takes them. */
class FakeLink implements NetBackend {
  sent = 0;
  port: NetPort | null = null;
  resumes = 0;
  closed = false;
  congested = false;
  attach(port: NetPort): void { this.port = port; }
  send(frame: Uint8Array): boolean { this.sent += frame.length; return !this.congested; }
  resume(): void { this.resumes++; }
  close(): void { this.closed = true; }
  /** Offer frames until one is refused (the link then holds it until resume). */
  flood(size: number, max = 100_000): number {
    let n = 0;
    while (n < max && this.port!.receive(new Uint8Array(size))) n++;
    return n;
  }
}

/** A card that sends as long as the shaper lets it and receives everything (or nothing when full). */
class FakeCard implements NetPort {
  received = 0;
  full = false;
  writables = 0;
  constructor(private readonly shaper: NetShaper) {}
  receive(frame: Uint8Array): boolean {
    if (this.full) return false;
    this.received += frame.length;
    return true;
  }
  writable(): void { this.writables++; }
  /** Send `size`-byte frames until the shaper says congested. */
  sendAll(size: number, max = 100_000): number {
    let n = 0;
    while (n < max) {
      n++;
      if (!this.shaper.send(new Uint8Array(size))) break;
    }
    return n;
  }
}

let clock = 0;
const now = () => clock;
function advance(ms: number): void {
  clock += ms;
  mock.timers.tick(ms);
}
beforeEach(() => { clock = 0; mock.timers.enable({ apis: ['setTimeout'] }); });
afterEach(() => mock.timers.reset());

test('without a cap every frame passes and is counted both ways', () => {
  const link = new FakeLink();
  const shaper = new NetShaper(link, { now });
  const card = new FakeCard(shaper);
  shaper.attach(card);
  assert.equal(card.sendAll(1500, 1000), 1000);
  assert.equal(link.flood(1000, 500), 500);
  assert.deepEqual(shaper.counters, { txPackets: 1000, txBytes: 1_500_000, rxPackets: 500, rxBytes: 500_000 });
  // congestion of the link itself still reaches the card, and its end too
  link.congested = true;
  assert.equal(shaper.send(new Uint8Array(100)), false);
  shaper.writable();
  assert.equal(card.writables, 1);
  shaper.close();
  assert.ok(link.closed);
});

test('transmit: the cap holds the guest to the rate, with a burst of one bucket', () => {
  const link = new FakeLink();
  const shaper = new NetShaper(link, { now, rateMbit: 8 }); // 1,000,000 bytes/s
  const card = new FakeCard(shaper);
  shaper.attach(card);
  card.sendAll(1000);
  const burst = link.sent;
  assert.ok(burst >= MAX_FRAME_BYTES && burst <= MAX_FRAME_BYTES + 1000, `burst ${burst}`);
  // the card waits for writable; over 2 s it gets 2 MB more, no more
  for (let t = 0; t < 2000; t += 10) {
    advance(10);
    while (card.writables > 0) { card.writables--; card.sendAll(1000); }
  }
  const more = link.sent - burst;
  assert.ok(more >= 1_950_000 && more <= 2_010_000, `sent ${more} bytes in 2 s at 1 MB/s`);
  // removing the cap lets it go at once
  shaper.setRate(0);
  card.writables = 0;
  assert.equal(card.sendAll(1000, 5000), 5000);
});

test('receive: over the rate the link is paused (frames held, not dropped) and resumed as the bucket refills', () => {
  const link = new FakeLink();
  const shaper = new NetShaper(link, { now, rateMbit: 4 }); // 500,000 bytes/s
  const card = new FakeCard(shaper);
  shaper.attach(card);
  link.flood(1000);
  const first = card.received;
  assert.ok(first >= MAX_FRAME_BYTES && first <= MAX_FRAME_BYTES + 1000);
  let resumes = 0;
  for (let t = 0; t < 1000; t += 5) {
    advance(5);
    while (link.resumes > resumes) { resumes = link.resumes; link.flood(1000); }
  }
  const more = card.received - first;
  assert.ok(more >= 480_000 && more <= 505_000, `received ${more} bytes in 1 s at 500 kB/s`);
  assert.equal(shaper.counters.rxBytes, card.received);
  // a card with no buffers is not resumed by the bucket: only its own resume() does
  card.full = true;
  advance(1000);
  const r = link.resumes;
  link.flood(1000);
  advance(1000);
  assert.equal(link.resumes, r);
  card.full = false;
  shaper.resume();
  assert.equal(link.resumes, r + 1);
});

test('a bad rate is refused', () => {
  const shaper = new NetShaper(new FakeLink(), { now });
  assert.throws(() => shaper.setRate(-1), RangeError);
  assert.throws(() => shaper.setRate(Number.NaN), RangeError);
  assert.throws(() => new NetShaper(new FakeLink(), { rateMbit: Infinity }), RangeError);
});
