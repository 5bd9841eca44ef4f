/**
 * virtio-scsi with its CD-ROM unit, driven as Linux's virtio_scsi, sr and cdrom drivers
 * drive them: the probe sequence (reset UNIT ATTENTION, INQUIRY, the LUN scan, MODE SENSE
 * page 2A, READ TOC, READ CAPACITY, GESN), reads of 2048-byte blocks into guest buffers,
 * media insert and eject with their UNIT ATTENTIONs and events, the tray lock, and hostile
 * requests (bad LUNs, short buffers, bidirectional chains, reads past the medium).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioMmio } from '../../src/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1 } from '../../src/devices/virtio/device.js';
import {
  VirtioScsi, VIRTIO_ID_SCSI, VIRTIO_SCSI_S_BAD_TARGET, VIRTIO_SCSI_S_FAILURE, VIRTIO_SCSI_S_OK, VIRTIO_SCSI_S_OVERRUN,
} from '../../src/devices/virtio/scsi.js';
import { CdromUnit, CD_BLOCK_BYTES, SCSI_STATUS_CHECK_CONDITION, SCSI_STATUS_GOOD } from '../../src/devices/scsi/cdrom.js';
import { FakeIrq, MemBlock, MultiQueueDriver, RAM_BASE } from './helpers.js';
import { makeRam } from './helpers.js';

const BLOCKS = 300;

function iso(blocks = BLOCKS): MemBlock {
  const m = new MemBlock(blocks * CD_BLOCK_BYTES, true);
  for (let b = 0; b < blocks; b++) m.data.fill(b & 0xff, b * CD_BLOCK_BYTES, (b + 1) * CD_BLOCK_BYTES);
  return m;
}

function setup(medium: MemBlock | null = iso()) {
  const mem = makeRam(4 << 20);
  const ejected: unknown[] = [];
  const unit = new CdromUnit({}, (m) => ejected.push(m));
  if (medium) unit.insert(medium);
  const scsi = new VirtioScsi(unit);
  const reasons: string[] = [];
  const dev = new VirtioMmio(scsi, mem, new FakeIrq(), { onNeedsReset: (r) => reasons.push(r) });
  const drv = new MultiQueueDriver(dev, mem, 16);
  drv.negotiate(VIRTIO_F_VERSION_1);
  drv.setupQueues(3);
  return { mem, unit, scsi, dev, drv, reasons, ejected };
}

type Drv = ReturnType<typeof setup>['drv'];

/** One command as Linux's virtscsi_queuecommand lays it out; returns the response and data-in. */
function command(drv: Drv, cdb: number[], dataIn = 0, opts: { lun?: number[]; dataOut?: number; respBytes?: number } = {}) {
  const req = drv.alloc(51);
  drv.mem.slice(req, 8).set(opts.lun ?? [1, 0, 0x40, 0, 0, 0, 0, 0]);
  drv.mem.slice(req + 19, cdb.length).set(cdb);
  const respBytes = opts.respBytes ?? 108;
  const resp = drv.alloc(respBytes);
  const bufs = [{ addr: req, len: 51 }];
  if (opts.dataOut) bufs.push({ addr: drv.alloc(opts.dataOut), len: opts.dataOut });
  bufs.push({ addr: resp, len: respBytes, write: true } as never);
  const data = dataIn ? drv.alloc(dataIn) : 0;
  if (dataIn) bufs.push({ addr: data, len: dataIn, write: true } as never);
  drv.rings[2].add(bufs);
  drv.kick(2);
  const used = drv.rings[2].takeUsed();
  const r = (o: number) => drv.mem.readU32(resp + o);
  return {
    used: used[0]?.len,
    senseLen: r(0), resid: r(4), status: drv.mem.readU8(resp + 10), response: drv.mem.readU8(resp + 11),
    sense: [drv.mem.readU8(resp + 12 + 2) & 0xf, drv.mem.readU8(resp + 12 + 12), drv.mem.readU8(resp + 12 + 13)],
    data: dataIn ? Uint8Array.from(drv.mem.slice(data, dataIn)) : new Uint8Array(0),
  };
}

const TUR = [0x00, 0, 0, 0, 0, 0];

test('virtio-scsi: device ID 8, three queues, no device features, the configuration Linux reads', () => {
  const { dev, scsi } = setup();
  assert.equal(dev.read(8, 4), VIRTIO_ID_SCSI);
  assert.equal(scsi.features, 0n);
  const cfg = (o: number, w: 2 | 4 = 4) => dev.read(0x100 + o, w);
  assert.deepEqual([cfg(0), cfg(4), cfg(8), cfg(12), cfg(16), cfg(20), cfg(24), cfg(28, 2), cfg(30, 2), cfg(32)], [1, 254, 0xffff, 128, 16, 96, 32, 0, 0, 0]);
  dev.write(0x100 + 20, 4, 64);
  dev.write(0x100 + 24, 4, 16);
  assert.deepEqual([cfg(20), cfg(24)], [64, 16]);
  dev.write(0x100 + 20, 4, 5); // nonsense: ignored
  assert.equal(cfg(20), 64);
  for (let q = 0; q < 3; q++) { dev.write(0x30, 4, q); assert.ok(dev.read(0x34, 4) > 0, `queue ${q} exists`); }
});

test('the probe as Linux does it: reset UNIT ATTENTION, INQUIRY, LUN 1 is absent, page 2A, TOC, capacity', () => {
  const { drv } = setup();
  // INQUIRY is exempt from the pending UNIT ATTENTION
  const inq = command(drv, [0x12, 0, 0, 0, 36, 0], 36);
  assert.equal(inq.status, SCSI_STATUS_GOOD);
  assert.deepEqual([...inq.data.subarray(0, 4)], [0x05, 0x80, 0x05, 0x12]);
  assert.equal(Buffer.from(inq.data.subarray(8, 16)).toString(), 'TSVISOR ');
  assert.equal(inq.resid, 0);
  // VPD page 00 lists 00, 80, 83
  assert.deepEqual([...command(drv, [0x12, 1, 0, 0, 255, 0], 255).data.subarray(0, 7)], [0x05, 0x00, 0, 3, 0x00, 0x80, 0x83]);
  // the sequential LUN scan ends at LUN 1: peripheral qualifier 3
  assert.equal(command(drv, [0x12, 0, 0, 0, 36, 0], 36, { lun: [1, 0, 0x40, 1, 0, 0, 0, 0] }).data[0], 0x7f);
  // other targets do not exist
  assert.equal(command(drv, TUR, 0, { lun: [1, 1, 0x40, 0, 0, 0, 0, 0] }).response, VIRTIO_SCSI_S_BAD_TARGET);
  // the first TUR eats the power-on UNIT ATTENTION 29/00, then insert's 3A/00 and 28/00 follow
  const seen: number[][] = [];
  for (let i = 0; i < 4; i++) {
    const t = command(drv, TUR);
    seen.push(t.status === SCSI_STATUS_GOOD ? [0] : t.sense);
  }
  assert.deepEqual(seen, [[6, 0x29, 0], [6, 0x28, 0], [0], [0]], 'a pending reset outranks the medium attention; 28/00 follows the first');
  // MODE SENSE(6) page 2A, 128 bytes: tray, eject, lock; 50x
  const ms = command(drv, [0x1a, 0, 0x2a, 0, 128, 0], 128);
  assert.equal(ms.data[0], 25);
  assert.deepEqual([ms.data[4], ms.data[5], ms.data[4 + 6] & 0xe8, (ms.data[4 + 8] << 8) | ms.data[4 + 9]], [0x2a, 20, 0x28, 8800]);
  // READ TOC format 0 LBA: one data track, lead-out at the block count
  const toc = command(drv, [0x43, 0, 0, 0, 0, 0, 0, 0, 0x0c, 0], 12);
  assert.deepEqual([...toc.data.subarray(0, 8)], [0, 18, 1, 1, 0, 0x14, 1, 0]);
  const lead = command(drv, [0x43, 2, 0, 0, 0, 0, 0xaa, 0, 0x0c, 0], 12); // lead-out in MSF
  const x = BLOCKS + 150;
  assert.deepEqual([...lead.data.subarray(0, 4)], [0, 10, 1, 1]);
  assert.deepEqual([...lead.data.subarray(8, 12)], [0, Math.floor(x / 75 / 60), Math.floor(x / 75) % 60, x % 75]);
  // READ CAPACITY(10): last LBA, 2048-byte blocks
  const cap = command(drv, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
  assert.deepEqual([...cap.data], [0, 0, (BLOCKS - 1) >> 8, (BLOCKS - 1) & 0xff, 0, 0, 8, 0]);
  // GET CONFIGURATION: current profile CD-ROM
  assert.deepEqual([...command(drv, [0x46, 0, 0, 0, 0, 0, 0, 0, 32, 0], 32).data.subarray(6, 8)], [0, 8]);
  // GESN: NewMedia once, then no change
  const gesn = () => command(drv, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0], 8).data;
  assert.deepEqual([...gesn()], [0, 4, 4, 0x10, 2, 2, 0, 0]);
  assert.deepEqual([...gesn()], [0, 4, 4, 0x10, 0, 2, 0, 0]);
  // READ DISC INFORMATION
  assert.deepEqual([...command(drv, [0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0], 34).data.subarray(0, 8)], [0, 32, 0x0e, 1, 1, 1, 1, 0x20]);
});

test('READ(10) and READ(12) copy 2048-byte blocks into the guest\'s buffers; past the end, too small, bidirectional: refused', () => {
  const { drv, unit } = setup();
  unit.reset();
  while (command(drv, TUR).status !== SCSI_STATUS_GOOD) { /* eat attentions */ }
  const r = command(drv, [0x28, 0, 0, 0, 0, 16, 0, 0, 3, 0], 3 * CD_BLOCK_BYTES);
  assert.equal(r.status, SCSI_STATUS_GOOD);
  assert.equal(r.used, 108 + 3 * CD_BLOCK_BYTES);
  assert.deepEqual([r.data[0], r.data[CD_BLOCK_BYTES], r.data[3 * CD_BLOCK_BYTES - 1]], [16, 17, 18]);
  const r12 = command(drv, [0xa8, 0, 0, 0, 1, 0x2b, 0, 0, 0, 1, 0, 0], CD_BLOCK_BYTES);
  assert.equal(r12.data[0], 0x2b);
  const past = command(drv, [0x28, 0, 0, 0, 1, 0x2b, 0, 0, 2, 0], 2 * CD_BLOCK_BYTES); // LBA 299 + 2 > 300
  assert.deepEqual([past.status, ...past.sense], [SCSI_STATUS_CHECK_CONDITION, 5, 0x21, 0]);
  assert.equal(past.senseLen, 18);
  assert.equal(command(drv, [0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0], CD_BLOCK_BYTES).response, VIRTIO_SCSI_S_OVERRUN);
  assert.equal(command(drv, [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], CD_BLOCK_BYTES, { dataOut: 512 }).response, VIRTIO_SCSI_S_FAILURE);
  // writes: DATA PROTECT; unknown opcodes: INVALID COMMAND OPERATION CODE
  assert.deepEqual(command(drv, [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], 0, { dataOut: 2048 }).sense, [7, 0x27, 0]);
  assert.deepEqual(command(drv, [0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0]).sense, [5, 0x20, 0]);
});

test('insert, a locked eject refused unless forced, the guest\'s own eject', () => {
  const { drv, unit, ejected } = setup(null);
  while (command(drv, TUR).sense[1] === 0x29) { /* the reset attention */ }
  assert.deepEqual(command(drv, TUR).sense, [2, 0x3a, 0], 'no medium');
  assert.equal(command(drv, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0], 8).data[5], 0, 'GESN: no medium');
  const a = iso(10);
  assert.equal(unit.insert(a), null);
  assert.deepEqual(command(drv, TUR).sense, [6, 0x3a, 0]);
  assert.deepEqual(command(drv, TUR).sense, [6, 0x28, 0]);
  assert.equal(command(drv, TUR).status, SCSI_STATUS_GOOD);
  // mounted: the guest locks the tray; a host eject asks the guest instead
  command(drv, [0x1e, 0, 0, 0, 1, 0]);
  assert.equal(unit.locked, true);
  assert.equal(unit.eject(false), 'locked');
  assert.equal(unit.medium, a);
  assert.equal(command(drv, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0], 8).data[4], 2, 'NewMedia first');
  assert.equal(command(drv, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0], 8).data[4], 1, 'then EjectRequest');
  // the guest's eject while locked: refused
  assert.deepEqual(command(drv, [0x1b, 0, 0, 0, 2, 0]).sense, [5, 0x53, 2]);
  // unlocked, the guest ejects: the drive is empty and the host is told
  command(drv, [0x1e, 0, 0, 0, 0, 0]);
  assert.equal(command(drv, [0x1b, 0, 0, 0, 2, 0]).status, SCSI_STATUS_GOOD);
  assert.deepEqual(ejected, [a]);
  assert.equal(unit.medium, null);
  assert.deepEqual(command(drv, TUR).sense, [2, 0x3a, 0]);
  // forced host eject of a locked drive
  const b = iso(4);
  unit.insert(b);
  command(drv, TUR); command(drv, TUR);
  command(drv, [0x1e, 0, 0, 0, 1, 0]);
  assert.equal(unit.eject(true), 'ejected');
  assert.equal(unit.locked, false);
  assert.deepEqual(command(drv, TUR).sense, [6, 0x3a, 0]);
  assert.deepEqual(command(drv, TUR).sense, [2, 0x3a, 0]);
  assert.equal(unit.eject(false), 'empty');
});

test('hostile requests: a response buffer too small resets the device; TMF and AN answers', () => {
  const { drv, reasons, unit } = setup();
  // control queue: a LUN reset arms UNIT ATTENTION 29/00
  const tmf = drv.alloc(24);
  drv.mem.writeU32(tmf, 0);
  drv.mem.writeU32(tmf + 4, 5);
  drv.mem.slice(tmf + 8, 8).set([1, 0, 0x40, 0, 0, 0, 0, 0]);
  const out = drv.alloc(1);
  drv.mem.writeU8(out, 0xff);
  while (command(drv, TUR).status !== SCSI_STATUS_GOOD) { /* settle */ }
  drv.rings[0].add([{ addr: tmf, len: 24 }, { addr: out, len: 1, write: true } as never]);
  drv.kick(0);
  assert.equal(drv.rings[0].takeUsed()[0].len, 1);
  assert.equal(drv.mem.readU8(out), VIRTIO_SCSI_S_OK);
  assert.deepEqual(command(drv, TUR).sense, [6, 0x29, 0]);
  assert.equal(unit.locked, false);
  // a response header that does not fit: DEVICE_NEEDS_RESET, no stray writes
  command(drv, TUR, 0, { respBytes: 20 });
  assert.equal(reasons.length, 1);
  assert.match(reasons[0], /no room for its response/);
});
