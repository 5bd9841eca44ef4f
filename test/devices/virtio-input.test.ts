/**
 * virtio-input (src/devices/virtio/input.ts), probed and fed as Linux's virtio_input does:
 * the configuration (name, ids, event bits, axis ranges), events into the driver's buffers
 * with a SYN_REPORT per batch, events kept until buffers come (bounded), LEDs from the
 * status queue, and the tablet's scaling of viewer coordinates.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioMmio } from '../../src/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1 } from '../../src/devices/virtio/device.js';
import {
  ABS_X, ABS_Y, BTN_LEFT, EV_ABS, EV_KEY, EV_LED, EV_REL, EV_SYN, KEYBOARD, LED_CAPSL, MAX_PENDING_EVENTS, TABLET, TABLET_ABS_MAX,
  VIRTIO_ID_INPUT, VIRTIO_INPUT_CFG, VirtioInput, tabletCoordinate,
} from '../../src/devices/virtio/input.js';
import { FakeIrq, MultiQueueDriver, makeRam } from './helpers.js';

function setup(desc = KEYBOARD) {
  const mem = makeRam(4 << 20);
  const dev = new VirtioInput(desc);
  const mmio = new VirtioMmio(dev, mem, new FakeIrq(), {});
  const drv = new MultiQueueDriver(mmio, mem, 16);
  drv.negotiate(VIRTIO_F_VERSION_1);
  drv.setupQueues(2);
  return { mem, dev, mmio, drv };
}

/** What the configuration says for (select, subsel): its bytes. */
function cfg(mmio: VirtioMmio, select: number, subsel: number): number[] {
  mmio.write(0x100, 1, select);
  mmio.write(0x101, 1, subsel);
  const size = mmio.read(0x102, 1);
  return Array.from({ length: size }, (_, i) => mmio.read(0x108 + i, 1));
}

const bit = (bm: number[], c: number) => ((bm[c >> 3] ?? 0) >> (c & 7)) & 1;

test('virtio-input: device ID 18; the configuration Linux probes: name, ids, event bits, axes', () => {
  const k = setup(KEYBOARD);
  assert.equal(k.mmio.read(8, 4), VIRTIO_ID_INPUT);
  assert.equal(Buffer.from(cfg(k.mmio, VIRTIO_INPUT_CFG.ID_NAME, 0)).toString(), 'tsvisor keyboard');
  assert.deepEqual(cfg(k.mmio, VIRTIO_INPUT_CFG.ID_DEVIDS, 0), [6, 0, 0x27, 0x06, 1, 0, 1, 0]);
  const keys = cfg(k.mmio, VIRTIO_INPUT_CFG.EV_BITS, EV_KEY);
  assert.ok(bit(keys, 30) && bit(keys, 1) && bit(keys, 248) && !bit(keys, 0), 'KEY_A, KEY_ESC, KEY_MICMUTE; not KEY_RESERVED');
  assert.equal(bit(cfg(k.mmio, VIRTIO_INPUT_CFG.EV_BITS, EV_LED), LED_CAPSL), 1);
  assert.deepEqual(cfg(k.mmio, VIRTIO_INPUT_CFG.EV_BITS, EV_ABS), [], 'a keyboard has no axes');
  assert.deepEqual(cfg(k.mmio, 0x77, 0), [], 'unknown select: size 0');
  const t = setup(TABLET);
  const abs = cfg(t.mmio, VIRTIO_INPUT_CFG.EV_BITS, EV_ABS);
  assert.ok(bit(abs, ABS_X) && bit(abs, ABS_Y));
  assert.equal(bit(cfg(t.mmio, VIRTIO_INPUT_CFG.EV_BITS, EV_KEY), BTN_LEFT), 1);
  assert.ok(cfg(t.mmio, VIRTIO_INPUT_CFG.EV_BITS, EV_REL).length > 0, 'a wheel');
  const ax = Buffer.from(cfg(t.mmio, VIRTIO_INPUT_CFG.ABS_INFO, ABS_Y));
  assert.deepEqual([ax.length, ax.readUInt32LE(0), ax.readUInt32LE(4)], [20, 0, TABLET_ABS_MAX]);
  assert.deepEqual(cfg(t.mmio, VIRTIO_INPUT_CFG.ABS_INFO, 5), [], 'no such axis');
});

test('virtio-input: events fill the driver\'s buffers, a SYN_REPORT after each batch; they wait (bounded) for buffers', () => {
  const { mem, dev, drv } = setup(TABLET);
  dev.send([[EV_ABS, ABS_X, 100], [EV_ABS, ABS_Y, 200]]); // before any buffer: kept
  const bufs = Array.from({ length: 8 }, () => drv.alloc(8));
  for (const b of bufs) drv.rings[0].add([{ addr: b, len: 8, write: true } as never]);
  drv.kick(0);
  let used = drv.rings[0].takeUsed();
  assert.deepEqual(used.map((u) => u.len), [8, 8, 8]);
  const ev = (i: number) => { const v = Buffer.from(mem.slice(bufs[i], 8)); return [v.readUInt16LE(0), v.readUInt16LE(2), v.readInt32LE(4)]; };
  assert.deepEqual([ev(0), ev(1), ev(2)], [[EV_ABS, ABS_X, 100], [EV_ABS, ABS_Y, 200], [EV_SYN, 0, 0]]);
  dev.key(BTN_LEFT, true);
  used = drv.rings[0].takeUsed();
  assert.deepEqual(used.map((u) => u.len), [8, 8], 'delivered at once into the buffers left');
  assert.deepEqual(ev(3), [EV_KEY, BTN_LEFT, 1]);
  // no buffers for a long time: the oldest events go
  for (let i = 0; i < MAX_PENDING_EVENTS; i++) dev.key(BTN_LEFT, i % 2 === 0);
  assert.ok(dev.metrics.dropped > 0);
  assert.equal(tabletCoordinate(0, 1280), 0);
  assert.equal(tabletCoordinate(1279, 1280), TABLET_ABS_MAX);
  assert.equal(tabletCoordinate(640, 1281), Math.round(TABLET_ABS_MAX / 2));
  assert.equal(tabletCoordinate(-5, 100), 0);
});

test('virtio-input: the status queue sets the keyboard LEDs; a too-short event buffer is returned unused', () => {
  const { mem, dev, drv } = setup(KEYBOARD);
  const led = drv.alloc(8);
  const b = Buffer.alloc(8);
  b.writeUInt16LE(EV_LED, 0); b.writeUInt16LE(LED_CAPSL, 2); b.writeInt32LE(1, 4);
  mem.slice(led, 8).set(b);
  drv.rings[1].add([{ addr: led, len: 8 }]);
  drv.kick(1);
  assert.deepEqual(drv.rings[1].takeUsed().map((u) => u.len), [0]);
  assert.equal(dev.leds.get(LED_CAPSL), true);
  const small = drv.alloc(4);
  drv.rings[0].add([{ addr: small, len: 4, write: true } as never]);
  dev.key(30, true);
  assert.deepEqual(drv.rings[0].takeUsed().map((u) => u.len), [0]);
});
