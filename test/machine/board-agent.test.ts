/**
 * The board's guest-agent channel: a virtio-console in the virtio-mmio slot after the
 * disks, listed in the device tree, whose port 1 is named org.tsvisor.agent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT_PORT_NAME, Board, RTC_BASE, VIRTIO_BASE, VIRTIO_SLOTS, VIRTIO_STRIDE, type BoardConfig } from '../../src/machine/board.js';
import { BootError } from '../../src/machine/boot.js';
import { RTC_ALARM_HIGH, RTC_ALARM_LOW } from '../../src/devices/goldfish-rtc.js';
import { AGENT_PORT_NAME as IMAGE_AGENT_PORT_NAME } from '../../src/images/initramfs.js';
import { MemBlock, MemChar } from '../devices/helpers.js';
import { fakeImage } from './helpers.js';


function config(disks: number, agent?: BoardConfig['agent']): BoardConfig {
  return {
    ramBytes: 128 << 20, harts: 1, kernel: fakeImage(), bootargs: 'console=ttyS0',
    disks: Array.from({ length: disks }, () => ({ backend: new MemBlock(64 * 512) })),
    agent, console: new MemChar(), clock: { nowNs: () => 0n }, monotonicNs: () => 0, onPower: () => {},
  };
}

const has = (hay: Uint8Array, s: string) => Buffer.from(hay).includes(Buffer.from(s));

test('agent channel: virtio-console in the slot after the disks, in the device tree', () => {
  const data: Uint8Array[] = [];
  const board = Board.create(config(2, { onData: (b) => data.push(b) }));
  assert.equal(board.virtio.length, 3);
  const id = (slot: number) => board.mmioRead(VIRTIO_BASE + slot * VIRTIO_STRIDE + 8, 4);
  assert.deepEqual([id(0), id(1), id(2)], [2, 2, 3]);
  assert.equal(board.mmioRead(VIRTIO_BASE + 3 * VIRTIO_STRIDE + 8, 4), undefined, 'slot 3 unmapped');
  assert.ok(board.agent);
  assert.equal(board.agent.name, AGENT_PORT_NAME);
  assert.equal(board.agent.id, 1);
  // max_nr_ports = 2 in the device's config space
  assert.equal(board.mmioRead(VIRTIO_BASE + 2 * VIRTIO_STRIDE + 0x104, 4), 2);
  const fdt = board.deviceTree(null);
  assert.ok(has(fdt, `virtio_mmio@${(VIRTIO_BASE + 2 * VIRTIO_STRIDE).toString(16)}`));
  assert.ok(!has(fdt, `virtio_mmio@${(VIRTIO_BASE + 3 * VIRTIO_STRIDE).toString(16)}`));
  assert.doesNotThrow(() => board.agent!.write('H\n'), 'writes before the guest is up are kept');
  assert.equal(board.agent.buffered, 2);
});

test('no agent channel unless asked; the name matches the image; slots run out', () => {
  const board = Board.create(config(1));
  assert.equal(board.virtio.length, 1);
  assert.equal(board.agent, null);
  assert.equal(AGENT_PORT_NAME, IMAGE_AGENT_PORT_NAME);
  assert.doesNotThrow(() => Board.create(config(VIRTIO_SLOTS - 1, { onData: () => {} })));
  assert.throws(() => Board.create(config(VIRTIO_SLOTS, { onData: () => {} })), BootError);
});

test('nextPollMs: null while no RTC alarm is armed, then the time left until it', () => {
  let now = 1_000_000_000n; // ns
  const board = Board.create({ ...config(0), clock: { nowNs: () => now } });
  assert.equal(board.nextPollMs(), null, 'an idle board needs no wake-up');
  const at = now + 250_000_000n; // 250 ms from now
  board.mmioWrite(RTC_BASE + RTC_ALARM_HIGH, 4, Number(at >> 32n));
  board.mmioWrite(RTC_BASE + RTC_ALARM_LOW, 4, Number(at & 0xffffffffn)); // arms it
  assert.equal(board.nextPollMs(), 250);
  now += 300_000_000n;
  assert.equal(board.nextPollMs(), 0, 'overdue: poll at once');
  board.pollDevices();
  assert.equal(board.nextPollMs(), null, 'fired: nothing left');
});
