/**
 * Disk slots that change while the guest runs: the board keeps empty virtio-mmio slots
 * (listed in its device tree, answering DeviceID 0 as QEMU virt's empty slots do), plugs a
 * disk into one, and empties a disk's slot again, boot disks included. And RAM past what
 * the wasm memory backs, reserved in the device tree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board, VIRTIO_BASE, VIRTIO_SLOTS, VIRTIO_STRIDE, virtioIrq, type BoardConfig } from '../../src/machine/board.js';
import { BootError } from '../../src/machine/boot.js';
import { MAX_BACKED_RAM_BYTES, MAX_RAM_BYTES, RAM_BASE, RAM_OFFSET } from '../../src/engine/layout.js';
import { VIRTIO_MMIO_MAGIC } from '../../src/devices/virtio/mmio.js';
import { MemBlock, MemChar } from '../devices/helpers.js';
import { fakeImage } from './helpers.js';


function config(disks: MemBlock[], hotplugSlots?: number): BoardConfig {
  return {
    ramBytes: 128 << 20, harts: 1, kernel: fakeImage(), bootargs: 'console=ttyS0',
    disks: disks.map((backend) => ({ backend })), hotplugSlots,
    console: new MemChar(), clock: { nowNs: () => 0n }, monotonicNs: () => 0, onPower: () => {},
  };
}

const reg = (board: Board, slot: number, offset: number) => board.mmioRead(VIRTIO_BASE + slot * VIRTIO_STRIDE + offset, 4);
const has = (hay: Uint8Array, s: string) => Buffer.from(hay).includes(Buffer.from(s));

test('hot-plug slots: empty slots answer as QEMU virt\'s, are in the device tree and in the harts\' layout', () => {
  const board = Board.create(config([new MemBlock(64 * 512)], 3));
  assert.deepEqual([reg(board, 1, 0), reg(board, 1, 4), reg(board, 1, 8), reg(board, 1, 0x70)], [VIRTIO_MMIO_MAGIC, 2, 0, 0], 'magic, version 2, device ID 0, status 0');
  assert.equal(reg(board, 4, 8), undefined, 'no slot past the reserved ones');
  assert.ok(board.mmioWrite(VIRTIO_BASE + VIRTIO_STRIDE + 0x70, 4, 0xf), 'writes to an empty slot are taken');
  assert.equal(reg(board, 1, 0x70), 0, 'and ignored');
  const fdt = board.deviceTree(null);
  for (let s = 0; s < 4; s++) assert.ok(has(fdt, `virtio_mmio@${(VIRTIO_BASE + s * VIRTIO_STRIDE).toString(16)}`), `slot ${s} in the device tree`);
  assert.ok(!has(fdt, `virtio_mmio@${(VIRTIO_BASE + 4 * VIRTIO_STRIDE).toString(16)}`));
  assert.deepEqual(board.hartMmioLayout().virtio.map((v) => [v.isr, v.irq]), [0, 1, 2, 3].map((s) => [s, virtioIrq(s)]));
  assert.equal(board.freeHotplugSlots, 3);
  assert.throws(() => Board.create(config([new MemBlock(512)], VIRTIO_SLOTS)), BootError, 'more slots than the board has');
  assert.throws(() => Board.create(config([], -1)), BootError);
});

test('plugDisk fills the first empty slot; unplugDisk empties it (or a boot disk\'s) and flushes', () => {
  const boot = new MemBlock(64 * 512);
  const board = Board.create(config([boot], 2));
  const extra = new MemBlock(128 * 512);
  const { slot, blk } = board.plugDisk({ backend: extra, serial: 'hot' });
  assert.equal(slot, 1);
  assert.equal(reg(board, 1, 8), 2, 'a block device now');
  assert.equal(board.mmioRead(VIRTIO_BASE + VIRTIO_STRIDE + 0x100, 4), 128, 'its capacity in sectors');
  assert.ok(blk);
  assert.equal(board.freeHotplugSlots, 1);
  assert.equal(board.plugDisk({ backend: new MemBlock(512) }).slot, 2);
  assert.throws(() => board.plugDisk({ backend: new MemBlock(512) }), /no free virtio slot/);
  const flushes = extra.flushes;
  assert.equal(board.unplugDisk(1), 0, 'never driven: status 0');
  assert.equal(extra.flushes, flushes + 1);
  assert.equal(reg(board, 1, 8), 0, 'empty again');
  assert.throws(() => board.unplugDisk(1), /holds no disk/);
  assert.equal(board.plugDisk({ backend: new MemBlock(512) }).slot, 1, 'and can be filled again');
  // a disk the board booted with
  board.unplugDisk(0);
  assert.equal(reg(board, 0, 8), 0);
  assert.throws(() => board.unplugDisk(3), /holds no disk/);
});

test('a 4 GiB board: memory backs 4015 MiB, the rest is reserved no-map in the device tree', () => {
  const board = Board.create({ ...config([]), ramBytes: MAX_RAM_BYTES });
  assert.equal(board.backedBytes, MAX_BACKED_RAM_BYTES);
  assert.equal(board.wasmMemory.buffer.byteLength, RAM_OFFSET + MAX_BACKED_RAM_BYTES);
  const fdt = board.deviceTree(null);
  assert.ok(has(fdt, 'reserved-memory') && has(fdt, `unbacked@${(RAM_BASE + MAX_BACKED_RAM_BYTES).toString(16)}`) && has(fdt, 'no-map'));
  assert.equal(board.mmioRead(RAM_BASE + MAX_BACKED_RAM_BYTES, 4), undefined, 'nothing answers there');
  // below the limit: no reservation
  assert.ok(!has(Board.create(config([])).deviceTree(null), 'reserved-memory'));
});
