/**
 * The VNC server (src/vmm/vnc/) against a scripted RFB client, over loopback TCP, with a
 * screen in memory: handshake (3.8, 3.3), Raw and zlib updates pixel for pixel, updates only
 * for damage, DesktopSize, a 16-bit pixel format, keys (keysyms and QEMU extended key
 * events), pointer scaling and buttons, keys released when a viewer leaves, and viewers that
 * break the protocol.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { VncServer, MAX_VIEWERS, type VncTarget } from '../../src/vmm/vnc/server.js';
import { keysymToLinux, qnumToLinux } from '../../src/vmm/vnc/keys.js';
import { convertRect, SERVER_PIXEL_FORMAT } from '../../src/vmm/vnc/rfb.js';
import { ABS_X, ABS_Y, BTN_LEFT, EV_ABS, EV_KEY, EV_REL, REL_WHEEL, TABLET_ABS_MAX } from '../../src/devices/virtio/input.js';
import { RfbClient } from './rfb-client.js';

/** A screen in memory: B8G8R8X8 (channels 2, 1, 0), a pattern different in x and y. */
class FakeDisplay implements VncTarget {
  width = 320;
  height = 200;
  pixels = new Uint8Array(0);
  blanked = false;
  readonly keys: Array<[number, boolean]> = [];
  readonly pointers: Array<Array<[number, number, number]>> = [];

  constructor() {
    this.fill(0);
  }

  fill(seed: number): void {
    this.pixels = new Uint8Array(this.width * this.height * 4);
    for (let y = 0; y < this.height; y++) {
      for (let x = 0; x < this.width; x++) {
        const o = (y * this.width + x) * 4;
        this.pixels[o] = (x + seed) & 0xff; this.pixels[o + 1] = y & 0xff; this.pixels[o + 2] = (x ^ y) & 0xff;
      }
    }
  }

  /** Expected RGBA at (x, y). */
  rgba(x: number, y: number): number[] {
    const o = (y * this.width + x) * 4;
    return [this.pixels[o + 2], this.pixels[o + 1], this.pixels[o], 255];
  }

  screen(): ReturnType<VncTarget['screen']> {
    if (this.blanked) return null;
    return { pixels: this.pixels, stride: this.width * 4, channels: [2, 1, 0, -1], x: 0, y: 0, width: this.width, height: this.height };
  }

  blankSize(): { width: number; height: number } {
    return { width: 640, height: 480 };
  }

  key(code: number, down: boolean): void {
    this.keys.push([code, down]);
  }

  pointer(events: Array<[number, number, number]>): void {
    this.pointers.push(events);
  }
}

function sameAsScreen(c: RfbClient, d: FakeDisplay): number {
  let wrong = 0;
  for (let y = 0; y < d.height; y++) {
    for (let x = 0; x < d.width; x++) {
      const o = (y * c.width + x) * 4;
      const want = d.rgba(x, y);
      if (c.fb[o] !== want[0] || c.fb[o + 1] !== want[1] || c.fb[o + 2] !== want[2]) wrong++;
    }
  }
  return wrong;
}

const until = async (cond: () => boolean, what: string): Promise<void> => {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((r) => setTimeout(r, 10));
  }
};

let display: FakeDisplay;
let server: VncServer;
let port = 0;

before(async () => {
  display = new FakeDisplay();
  server = new VncServer(display, 'test-vm');
  port = await server.listen('127.0.0.1', 0);
});

after(async () => {
  await server.close();
});

test('RFB 3.8 handshake, a full Raw update pixel for pixel, then updates only for what the guest flushed', async () => {
  const c = await RfbClient.connect(port);
  try {
    assert.deepEqual([c.width, c.height, c.name], [320, 200, 'test-vm']);
    c.setEncodings([0]);
    c.requestUpdate(false);
    const rects = await c.update();
    assert.deepEqual(rects, [{ x: 0, y: 0, width: 320, height: 200, encoding: 0 }]);
    assert.equal(sameAsScreen(c, display), 0);
    // an incremental request with nothing changed gets nothing
    c.requestUpdate(true);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(c.unread, 0, 'no update for an idle screen');
    // the guest redraws and flushes a rectangle: only it is sent
    display.fill(7);
    server.damage({ x: 10, y: 20, width: 30, height: 40 });
    assert.deepEqual(await c.update(), [{ x: 10, y: 20, width: 30, height: 40, encoding: 0 }]);
    assert.deepEqual(Array.from(c.fb.subarray((20 * 320 + 10) * 4, (20 * 320 + 10) * 4 + 4)), display.rgba(10, 20));
    // a flush partly outside the screen is clipped
    c.requestUpdate(true);
    server.damage({ x: 300, y: 190, width: 100, height: 100 });
    assert.deepEqual(await c.update(), [{ x: 300, y: 190, width: 20, height: 10, encoding: 0 }]);
  } finally {
    c.close();
  }
});

test('zlib: one stream per connection over several updates; a 16-bit pixel format; RFB 3.3', async () => {
  const c = await RfbClient.connect(port);
  try {
    c.setEncodings([6, 0]);
    for (let seed = 0; seed < 3; seed++) {
      display.fill(seed * 50);
      c.requestUpdate(false);
      const rects = await c.update();
      assert.deepEqual(rects.map((r) => r.encoding), [6]);
      assert.equal(sameAsScreen(c, display), 0, `update ${seed}`);
    }
  } finally {
    c.close();
  }
  const c16 = await RfbClient.connect(port);
  try {
    c16.setRgb565();
    c16.setEncodings([0]);
    c16.requestUpdate(false);
    await c16.update();
    const o = (33 * 320 + 77) * 4;
    const [r, g, b] = display.rgba(77, 33);
    assert.deepEqual(Array.from(c16.fb.subarray(o, o + 3)), [Math.round((r * 31) / 255), Math.round((g * 63) / 255), Math.round((b * 31) / 255)]);
  } finally {
    c16.close();
  }
  const old = await RfbClient.connect(port, '003.003');
  assert.deepEqual([old.width, old.height], [320, 200]);
  old.close();
});

test('a mode change is a DesktopSize rectangle and then the whole new screen', async () => {
  const c = await RfbClient.connect(port);
  try {
    c.setEncodings([0, -223]);
    c.requestUpdate(false);
    await c.update();
    c.requestUpdate(true);
    display.width = 200; display.height = 100; display.fill(3);
    server.resized();
    const rects = await c.update();
    assert.deepEqual(rects[0], { x: 0, y: 0, width: 200, height: 100, encoding: -223 });
    assert.deepEqual(rects.slice(1), [{ x: 0, y: 0, width: 200, height: 100, encoding: 0 }]);
    assert.equal(sameAsScreen(c, display), 0);
    // blanked: a viewer that connects now sees the preferred mode, black
    display.blanked = true;
    const b = await RfbClient.connect(port);
    assert.deepEqual([b.width, b.height], [640, 480]);
    b.requestUpdate(false);
    await b.update();
    assert.ok(b.fb.every((v, i) => v === (i % 4 === 3 ? 255 : 0)), 'black');
    b.close();
  } finally {
    display.blanked = false;
    display.width = 320; display.height = 200; display.fill(0);
    server.resized();
    c.close();
  }
});

test('keys (keysyms and QEMU extended key events) and the pointer reach the keyboard and tablet; a leaving viewer releases what it held', async () => {
  const c = await RfbClient.connect(port);
  c.setEncodings([0, -258]);
  c.requestUpdate(false);
  const rects = await c.update();
  assert.ok(rects.some((r) => r.encoding === -258), 'the server announces QEMU extended key events');
  display.keys.length = 0;
  display.pointers.length = 0;
  c.key(true, 0x61); c.key(false, 0x61); // 'a'
  c.key(true, 0xffe1); c.key(true, 0x41); c.key(false, 0x41); c.key(false, 0xffe1); // Shift + 'A'
  c.qemuKey(true, 0, 0x1c); c.qemuKey(false, 0, 0x1c); // Enter by scan code
  c.qemuKey(true, 0x71, 0x10); // a French 'q' viewer: scan code 0x10 (KEY_Q) wins over the keysym
  c.key(false, 0xff0d); // a release never pressed: dropped
  c.pointer(0, 0, 0);
  c.pointer(1, 319, 199);
  c.pointer(8, 160, 100);
  await until(() => display.pointers.length === 3 && display.keys.length === 9, `events arrive: ${JSON.stringify(display.keys)}`);
  assert.deepEqual(display.keys, [[30, true], [30, false], [42, true], [30, true], [30, false], [42, false], [28, true], [28, false], [16, true]]);
  assert.deepEqual(display.pointers[0], [[EV_ABS, ABS_X, 0], [EV_ABS, ABS_Y, 0]]);
  assert.deepEqual(display.pointers[1], [[EV_ABS, ABS_X, TABLET_ABS_MAX], [EV_ABS, ABS_Y, TABLET_ABS_MAX], [EV_KEY, BTN_LEFT, 1]]);
  assert.deepEqual(display.pointers[2], [[EV_ABS, ABS_X, Math.round((160 * TABLET_ABS_MAX) / 319)], [EV_ABS, ABS_Y, Math.round((100 * TABLET_ABS_MAX) / 199)], [EV_KEY, BTN_LEFT, 0], [EV_REL, REL_WHEEL, 1]]);
  c.pointer(1, 5, 5);
  await until(() => display.pointers.length === 4, 'button pressed');
  c.close();
  await until(() => display.keys.length === 10 && display.pointers.length === 5, 'released on disconnect');
  assert.deepEqual(display.keys[9], [16, false]);
  assert.deepEqual(display.pointers[4], [[EV_KEY, BTN_LEFT, 0]]);
});

test('a viewer breaking the protocol is dropped and the others go on; past MAX_VIEWERS a viewer is told why', async () => {
  const good = await RfbClient.connect(port);
  try {
    for (const bad of [Uint8Array.of(99), Uint8Array.of(0, 0, 0, 0, 16, 24, 0, 0, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0), Uint8Array.of(6, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff), Uint8Array.of(255, 1)]) {
      const c = await RfbClient.connect(port);
      c.write(bad);
      await until(() => c.closed, `closed after ${Array.from(bad)}`);
    }
    const notRfb = await RfbClient.connect(port).catch((e: Error) => e);
    assert.ok(!(notRfb instanceof Error));
    (notRfb as RfbClient).close();
    good.setEncodings([0]);
    good.requestUpdate(false);
    await good.update();
    assert.equal(sameAsScreen(good, display), 0);
    const many: RfbClient[] = [];
    while (many.length < MAX_VIEWERS - 1) many.push(await RfbClient.connect(port));
    await assert.rejects(RfbClient.connect(port), /refused: too many viewers/);
    for (const c of many) c.close();
  } finally {
    good.close();
  }
});

test('keysym and scan-code tables; pixel conversion of other guest formats', () => {
  assert.equal(keysymToLinux('z'.charCodeAt(0)), 44);
  assert.equal(keysymToLinux('?'.charCodeAt(0)), 53);
  assert.equal(keysymToLinux(0xffbe), 59); // F1
  assert.equal(keysymToLinux(0x20ac), 0); // euro sign: no US key
  assert.equal(qnumToLinux(0x01), 1);
  assert.equal(qnumToLinux(0xc8), 103); // 0xE0 0x48: Up
  assert.equal(qnumToLinux(0x99), 0);
  // R8G8B8X8 guest pixels into the server format (B, G, R, X bytes)
  const src = { pixels: Uint8Array.of(10, 20, 30, 0, 40, 50, 60, 0), stride: 8, channels: [0, 1, 2, -1] as const, x: 0, y: 0 };
  assert.deepEqual(Array.from(convertRect(src, 0, 0, 2, 1, SERVER_PIXEL_FORMAT)), [30, 20, 10, 0, 60, 50, 40, 0]);
  assert.deepEqual(Array.from(convertRect(src, 1, 0, 1, 1, { ...SERVER_PIXEL_FORMAT, bigEndian: true })), [0, 40, 50, 60]);
});
