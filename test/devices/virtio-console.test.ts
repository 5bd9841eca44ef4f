/**
 * virtio-console (virtio-v1.2-cs01 §5.3) with VIRTIO_CONSOLE_F_MULTIPORT, driven the
 * way Linux's drivers/char/virtio_console.c drives it: probe (features, all queues,
 * DRIVER_OK), fill the control receiveq with page-sized buffers, DEVICE_READY, then per
 * PORT_ADD: fill the port's receiveq and answer PORT_READY; open the port (PORT_OPEN).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  VirtioMmio, VIRTIO_F_VERSION_1, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_INT_VRING,
  VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_STATUS,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET, VIRTIO_STATUS_DRIVER_OK,
} from '../../src/devices/virtio/mmio.js';
import {
  VirtioConsole,
  VIRTIO_CONSOLE_BAD_ID,
  VIRTIO_CONSOLE_CONSOLE_PORT,
  VIRTIO_CONSOLE_DEVICE_READY,
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_PORT_ADD,
  VIRTIO_CONSOLE_PORT_NAME,
  VIRTIO_CONSOLE_PORT_OPEN,
  VIRTIO_CONSOLE_PORT_READY,
  VIRTIO_CONSOLE_RESIZE,
  type VirtioConsoleOptions,
} from '../../src/devices/virtio/console.js';
import type { GuestMemory } from '../../src/devices/guest-memory.js';
import { FakeIrq, MultiQueueDriver, RAM_BASE, makeRam, type Buf } from './helpers.js';

const RAM_SIZE = 4 << 20;
const PAGE = 4096;
const AGENT = 'org.tsvisor.agent';

interface Ctl { id: number; event: number; value: number; extra: Uint8Array }

/** A virtio-console driver following Linux's virtio_console.c. */
class ConsoleDriver extends MultiQueueDriver {
  /** buffer address -> length, for the receive queues' posted buffers (by head, per ring). */
  private posted = new Map<string, Buf>();

  constructor(dev: VirtioMmio, mem: GuestMemory, queueSize = 8) { super(dev, mem, queueSize); }

  /** virtcons_probe: negotiate (VERSION_1 + MULTIPORT unless told otherwise), read max_nr_ports, set up every queue, DRIVER_OK. */
  probe(accept: (offered: bigint) => bigint = (f) => f & (VIRTIO_F_VERSION_1 | VIRTIO_CONSOLE_F_MULTIPORT)): number {
    const f = accept(this.deviceFeatures());
    this.negotiate(f);
    const multiport = (f & VIRTIO_CONSOLE_F_MULTIPORT) !== 0n;
    const ports = multiport ? this.dev.read(VIRTIO_MMIO_CONFIG + 4, 4) : 1;
    this.setupQueues(multiport ? 2 * (ports + 1) : 2);
    return ports;
  }

  /** fill_queue(): post `count` empty buffers of `size` bytes on receive queue `q`, kick once. */
  fill(q: number, count: number, size = PAGE): void {
    for (let k = 0; k < count; k++) {
      const addr = this.alloc(size);
      const head = this.rings[q].add([{ addr, len: size, write: true }]);
      this.posted.set(`${q}:${head}`, { addr, len: size });
    }
    this.kick(q);
  }

  /** Used buffers of receive queue `q` as byte arrays, each re-posted (as add_inbuf after consuming). */
  receive(q: number, repost = true): Uint8Array[] {
    const out: Uint8Array[] = [];
    const used = this.rings[q].takeUsed();
    for (const u of used) {
      const b = this.posted.get(`${q}:${u.id}`);
      assert.ok(b, `used id ${u.id} on queue ${q} was posted`);
      assert.ok(u.len <= b.len, 'used length within the buffer');
      out.push(this.mem.slice(b.addr, u.len).slice());
      this.posted.delete(`${q}:${u.id}`);
      if (repost) {
        const head = this.rings[q].add([{ addr: b.addr, len: b.len, write: true }]);
        this.posted.set(`${q}:${head}`, b);
      }
    }
    if (repost && used.length) this.kick(q);
    return out;
  }

  /** Control messages received (control_work_handler), buffers re-posted. */
  control(): Ctl[] {
    return this.receive(2).map((m) => {
      const v = new DataView(m.buffer, m.byteOffset, m.byteLength);
      return { id: v.getUint32(0, true), event: v.getUint16(4, true), value: v.getUint16(6, true), extra: m.subarray(8) };
    });
  }

  /** __send_control_msg(): one 8-byte message on the control transmitq; the buffer must be back at once (Linux busy-waits). */
  sendControl(id: number, event: number, value: number): void {
    const a = this.alloc(8);
    const v = new DataView(this.mem.slice(a, 8).buffer, this.mem.offset(a, 8), 8);
    v.setUint32(0, id >>> 0, true);
    v.setUint16(4, event, true);
    v.setUint16(6, value, true);
    const head = this.rings[3].add([{ addr: a, len: 8 }]);
    this.kick(3);
    const used = this.rings[3].takeUsed();
    assert.deepEqual(used, [{ id: head, len: 0 }], 'control buffer returned synchronously');
  }

  /** port_fops_write(): bytes on port `p`'s transmitq, split into `pieces` descriptors. */
  send(p: number, data: Uint8Array, pieces = 1): number {
    const q = p === 0 ? 1 : 2 * p + 3;
    const bufs: Buf[] = [];
    const step = Math.ceil(data.length / pieces);
    for (let at = 0; at < data.length; at += step) {
      const part = data.subarray(at, at + step);
      const a = this.alloc(part.length);
      this.mem.slice(a, part.length).set(part);
      bufs.push({ addr: a, len: part.length });
    }
    const head = this.rings[q].add(bufs);
    this.kick(q);
    return head;
  }

  /** The whole Linux handshake for a device whose ports are all generic except 0; returns the control messages seen after PORT_READY. */
  handshake(ctrlBufs = 8, rxBufs = 4): Ctl[] {
    const ports = this.probe();
    this.fill(2, ctrlBufs);
    this.sendControl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
    const adds = this.control();
    assert.deepEqual(adds.map((m) => [m.id, m.event, m.value]), Array.from({ length: ports }, (_, i) => [i, VIRTIO_CONSOLE_PORT_ADD, 1]));
    for (const m of adds) {
      this.fill(m.id === 0 ? 0 : 2 * m.id + 2, rxBufs);
      this.sendControl(m.id, VIRTIO_CONSOLE_PORT_READY, 1);
    }
    return this.control();
  }
}

function setup(opts: VirtioConsoleOptions = {}) {
  const mem = makeRam(RAM_SIZE);
  const data: Uint8Array[] = [];
  const opens: boolean[] = [];
  const con = new VirtioConsole(opts.ports ? opts : {
    ...opts,
    ports: [{ console: true }, { name: AGENT, onData: (b) => data.push(b), onOpen: (o) => opens.push(o) }],
  });
  const irq = new FakeIrq();
  const reasons: string[] = [];
  const dev = new VirtioMmio(con, mem, irq, { onNeedsReset: (r) => reasons.push(r), eventIdx: false, indirect: false });
  const drv = new ConsoleDriver(dev, mem);
  return { mem, con, irq, dev, drv, data, opens, reasons, agent: con.ports[1] };
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const concat = (bs: Uint8Array[]) => {
  const out = new Uint8Array(bs.reduce((n, b) => n + b.length, 0));
  let p = 0;
  for (const b of bs) { out.set(b, p); p += b.length; }
  return out;
};

test('identification, features, config space and queue sizes (§5.3.1-§5.3.4)', () => {
  const { dev, drv } = setup();
  assert.equal(dev.read(VIRTIO_MMIO_DEVICE_ID, 4), 3);
  const f = drv.deviceFeatures();
  assert.notEqual(f & VIRTIO_CONSOLE_F_MULTIPORT, 0n);
  assert.equal(f & 1n, 0n, 'F_SIZE not offered');
  assert.equal(f & 4n, 0n, 'F_EMERG_WRITE not offered');
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 4, 4), 2, 'max_nr_ports');
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 4, 1), 2);
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 0, 4), 0, 'cols/rows');
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 12, 4), 0, 'past the structure');
  dev.write(VIRTIO_MMIO_CONFIG + 4, 4, 99);
  assert.equal(dev.read(VIRTIO_MMIO_CONFIG + 4, 4), 2, 'read-only');
  const max = (q: number) => { drv.w(VIRTIO_MMIO_QUEUE_SEL, q); return drv.r(VIRTIO_MMIO_QUEUE_NUM_MAX); };
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map(max), [128, 128, 32, 32, 128, 128, 0]);
});

test('constructor validation', () => {
  assert.throws(() => new VirtioConsole({ queueSize: 100 }), RangeError);
  assert.throws(() => new VirtioConsole({ controlQueueSize: 1 }), RangeError);
  assert.throws(() => new VirtioConsole({ ports: [{}, { name: 'x'.repeat(256) }] }), RangeError);
  assert.throws(() => new VirtioConsole({ ports: [{}, { name: '' }] }), RangeError);
  assert.throws(() => new VirtioConsole({ ports: Array.from({ length: 32 }, () => ({})) }), RangeError);
  assert.equal(new VirtioConsole().ports.length, 1);
  assert.equal(new VirtioConsole().ports[0].console, true);
});

test('Linux control handshake: DEVICE_READY -> PORT_ADD; PORT_READY -> CONSOLE_PORT, PORT_OPEN, PORT_NAME (§5.3.6.2)', () => {
  const { drv, con, agent, irq } = setup();
  const after = drv.handshake();
  assert.equal(irq.level, true, 'control receiveq used-buffer interrupt');
  assert.equal(drv.ackInterrupt() & VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_INT_VRING);
  assert.deepEqual(after.map((m) => [m.id, m.event, m.value]), [
    [0, VIRTIO_CONSOLE_CONSOLE_PORT, 1],
    [0, VIRTIO_CONSOLE_PORT_OPEN, 1],
    [1, VIRTIO_CONSOLE_PORT_OPEN, 1],
    [1, VIRTIO_CONSOLE_PORT_NAME, 1],
  ]);
  const name = after[3].extra;
  assert.equal(text(name), AGENT + '\0', 'name with a terminating NUL (as QEMU)');
  assert.equal(con.port(AGENT), agent);
  assert.equal(agent.guestOpen, false, 'ready but not opened by a guest program yet');
  // init_port_console() for port 0 reports it open
  drv.sendControl(0, VIRTIO_CONSOLE_PORT_OPEN, 1);
  assert.equal(con.ports[0].guestOpen, true);
  assert.equal(con.metrics.badControl, 0);
});

test('PORT_ADD messages wait for control receiveq buffers', () => {
  const ports = Array.from({ length: 5 }, (_, i) => ({ name: i ? `p${i}` : undefined }));
  const { drv } = setup({ ports });
  drv.probe();
  drv.fill(2, 2);
  drv.sendControl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
  const first = drv.receive(2, false);
  assert.equal(first.length, 2);
  drv.fill(2, 8);
  const rest = drv.control();
  assert.deepEqual(rest.map((m) => m.id), [2, 3, 4]);
});

test('host bytes wait until the guest opens the port, then fill receiveq buffers in order', () => {
  const { drv, agent, opens, irq } = setup();
  drv.handshake(8, 4);
  drv.ackInterrupt();
  assert.equal(agent.write('H\n'), true);
  agent.write(new Uint8Array([0, 1, 2, 255]));
  assert.equal(agent.buffered, 6);
  assert.deepEqual(drv.receive(4), [], 'nothing delivered to a closed port (Linux would discard it)');
  drv.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  assert.deepEqual(opens, [true]);
  assert.equal(agent.guestOpen, true);
  assert.equal(irq.level, true);
  const got = concat(drv.receive(4));
  assert.deepEqual([...got], [0x48, 0x0a, 0, 1, 2, 255]);
  assert.equal(agent.buffered, 0);
  assert.equal(agent.metrics.rxBytes, 6);
});

test('a large write is split over the posted buffers; the rest waits for more buffers', () => {
  const { drv, agent } = setup();
  drv.handshake(8, 2);
  drv.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  const big = new Uint8Array(3 * PAGE + 100);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
  agent.write(big);
  const first = drv.receive(4, false);
  assert.deepEqual(first.map((b) => b.length), [PAGE, PAGE]);
  assert.equal(agent.buffered, PAGE + 100);
  drv.fill(4, 1, 100);
  drv.fill(4, 4, PAGE);
  const second = drv.receive(4, false);
  assert.deepEqual(second.map((b) => b.length), [100, PAGE]);
  assert.deepEqual(concat([...first, ...second]), big);
});

test('guest output: every transmitq buffer reaches onData, used length 0', () => {
  const { drv, data, agent } = setup();
  drv.handshake();
  const msg = new TextEncoder().encode('O 1 aGVsbG8=\nX 1 0\n');
  const head = drv.send(1, msg, 3);
  assert.deepEqual(drv.rings[5].takeUsed(), [{ id: head, len: 0 }]);
  assert.equal(text(concat(data)), text(msg));
  assert.equal(data.length, 1, 'one callback per buffer');
  assert.equal(agent.metrics.txBytes, msg.length);
  // port 0 output goes to port 0's callback (none here): no crash
  drv.send(0, new Uint8Array([65]));
  assert.equal(drv.rings[1].takeUsed().length, 1);
});

test('onData may write back at once (re-entrant write is delivered after the notification)', () => {
  const mem = makeRam(RAM_SIZE);
  let port: import('../../src/devices/virtio/console.js').VirtioConsolePort;
  const con = new VirtioConsole({ ports: [{}, { name: AGENT, onData: (b) => port.write(b) }] });
  port = con.ports[1];
  const dev = new VirtioMmio(con, mem, new FakeIrq());
  const drv = new ConsoleDriver(dev, mem);
  drv.handshake();
  drv.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  drv.send(1, new TextEncoder().encode('ping'));
  assert.equal(text(concat(drv.receive(4))), 'ping');
});

test('malformed control messages are ignored and counted; the buffers come back', () => {
  const { drv, con, dev } = setup();
  drv.handshake();
  // a 4-byte control message
  const a = drv.alloc(4);
  const head = drv.rings[3].add([{ addr: a, len: 4 }]);
  drv.kick(3);
  assert.deepEqual(drv.rings[3].takeUsed(), [{ id: head, len: 0 }]);
  // a message for a port that does not exist, an unknown event, a header outside RAM
  drv.sendControl(7, VIRTIO_CONSOLE_PORT_OPEN, 1);
  drv.sendControl(1, 99, 1);
  drv.sendControl(1, VIRTIO_CONSOLE_RESIZE, 1);
  const h2 = drv.rings[3].add([{ addr: RAM_BASE + RAM_SIZE - 4, len: 8 }]);
  drv.kick(3);
  assert.deepEqual(drv.rings[3].takeUsed(), [{ id: h2, len: 0 }]);
  assert.equal(con.metrics.badControl, 5);
  // PORT_READY(0) / DEVICE_READY(0): the driver failed; nothing sent
  drv.sendControl(1, VIRTIO_CONSOLE_PORT_READY, 0);
  drv.sendControl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 0);
  assert.equal(con.metrics.driverFailures, 2);
  assert.deepEqual(drv.control(), []);
  assert.equal(dev.read(VIRTIO_MMIO_STATUS, 4) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0, 'still working');
});

test('bad buffers: short control buffer loses the message, transmit outside RAM dropped, receive buffer outside RAM returned unused', () => {
  const { drv, agent, data, con } = setup();
  drv.probe();
  drv.fill(2, 2);
  drv.sendControl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
  assert.equal(drv.receive(2, false).length, 2, 'PORT_ADD 0, 1; no control buffers left');
  drv.sendControl(1, VIRTIO_CONSOLE_PORT_READY, 1); // PORT_OPEN(1) and PORT_NAME(1) wait
  const small = drv.alloc(10);
  drv.rings[2].add([{ addr: small, len: 10, write: true }]);
  drv.kick(2);
  const tiny = drv.alloc(8);
  drv.rings[2].add([{ addr: tiny, len: 8, write: true }]);
  drv.kick(2);
  const used = drv.rings[2].takeUsed();
  assert.deepEqual(used.map((u) => u.len), [8, 0], 'PORT_OPEN fits, PORT_NAME (26 bytes) is dropped');
  assert.equal(con.metrics.droppedControl, 1);

  drv.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  const h = drv.rings[5].add([{ addr: RAM_BASE + RAM_SIZE - 2, len: 16 }]);
  drv.kick(5);
  assert.deepEqual(drv.rings[5].takeUsed(), [{ id: h, len: 0 }]);
  assert.equal(agent.metrics.badBuffers, 1);
  assert.equal(data.length, 0);
  const huge = drv.rings[5].add([{ addr: RAM_BASE, len: 0xffffffff }, { addr: RAM_BASE, len: 0xffffffff }]);
  drv.kick(5);
  assert.deepEqual(drv.rings[5].takeUsed(), [{ id: huge, len: 0 }], 'a chain over the size cap is dropped unread');
  assert.equal(agent.metrics.badBuffers, 2);

  const hr = drv.rings[4].add([{ addr: RAM_BASE + RAM_SIZE - 2, len: 64, write: true }]);
  drv.kick(4);
  agent.write('abc');
  assert.deepEqual(drv.rings[4].takeUsed(), [{ id: hr, len: 0 }]);
  assert.equal(agent.buffered, 3, 'bytes kept for a good buffer');
});

test('a broken ring puts the device in DEVICE_NEEDS_RESET; write() never throws', () => {
  const { drv, dev, agent, reasons, con } = setup();
  drv.handshake();
  drv.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  drv.rings[4].setAvailIdx(500); // 500 buffers "available" on an 8-entry ring
  assert.doesNotThrow(() => agent.write('x'));
  assert.notEqual(dev.read(VIRTIO_MMIO_STATUS, 4) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
  assert.equal(reasons.length, 1);
  assert.equal(con.metrics.needsReset, 1);
  assert.doesNotThrow(() => agent.write('y'));
  drv.kick(5);
  assert.equal(con.metrics.needsReset, 1, 'nothing more is processed until reset');
  drv.handshake();
  drv.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  assert.equal(text(concat(drv.receive(4))), 'xy', 'after a reset the waiting bytes flow again');
});

test('maxBuffered: a write that does not fit is dropped whole and reported', () => {
  const con = new VirtioConsole({ ports: [{}, { name: AGENT, maxBuffered: 10 }] });
  const p = con.ports[1];
  assert.equal(p.write('0123456'), true);
  assert.equal(p.write('abcd'), false, 'never cut in two: 3 bytes of room, 4 asked');
  assert.equal(p.buffered, 7);
  assert.equal(p.metrics.droppedBytes, 4);
  assert.equal(p.write('abc'), true);
  assert.equal(p.buffered, 10);
});

test('a driver repeating DEVICE_READY without control receive buffers cannot grow the host queue', () => {
  const { drv, con } = setup();
  drv.probe();
  for (let i = 0; i < 5000; i++) drv.sendControl(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
  assert.ok(con.metrics.droppedControl >= 5000 * 2 - 64, `dropped ${con.metrics.droppedControl}`);
  drv.fill(2, 8);
  let got = 0;
  for (let round = 0; round < 20; round++) {
    const n = drv.control().length;
    if (n === 0) break;
    got += n;
  }
  assert.ok(got > 0 && got <= 16 + 8 * 2, `${got} control messages were kept`);
});

test('device reset closes the ports (onOpen(false)); waiting bytes survive for the next driver', () => {
  const { drv, agent, opens, dev } = setup();
  drv.handshake();
  drv.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  dev.write(VIRTIO_MMIO_STATUS, 4, 0);
  assert.deepEqual(opens, [true, false]);
  assert.equal(agent.guestOpen, false);
  agent.write('after reset\n');
  drv.handshake();
  drv.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  assert.equal(text(concat(drv.receive(4))), 'after reset\n');
});

test('guest closes the port: bytes wait again until it reopens', () => {
  const { drv, agent, opens } = setup();
  drv.handshake();
  drv.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  drv.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 0);
  agent.write('later');
  assert.deepEqual(drv.receive(4), []);
  drv.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  assert.equal(text(concat(drv.receive(4))), 'later');
  assert.deepEqual(opens, [true, false, true]);
});

test('without MULTIPORT, port 0 is a plain console on queues 0/1', () => {
  const got: Uint8Array[] = [];
  const mem = makeRam(RAM_SIZE);
  const con = new VirtioConsole({ ports: [{ console: true, onData: (b) => got.push(b) }] });
  const dev = new VirtioMmio(con, mem, new FakeIrq());
  const drv = new ConsoleDriver(dev, mem);
  assert.equal(drv.probe((f) => f & VIRTIO_F_VERSION_1), 1);
  con.ports[0].write('hi');
  drv.fill(0, 2);
  assert.equal(text(concat(drv.receive(0))), 'hi');
  drv.send(0, new TextEncoder().encode('out'));
  assert.equal(text(concat(got)), 'out');
  // control queues do nothing without MULTIPORT
  drv.kick(3);
  assert.equal(con.metrics.badControl, 0);
});

test('save/restore keeps port state, waiting bytes and counters', () => {
  const a = setup();
  a.drv.handshake(8, 1);
  a.drv.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  a.agent.write('kept'); // fills the only receiveq buffer
  a.agent.write(new Uint8Array([1, 2, 3])); // waits
  assert.equal(a.agent.buffered, 3);
  const saved = JSON.parse(JSON.stringify(a.dev.save()));
  const b = setup();
  b.mem.bytes.set(a.mem.bytes);
  b.dev.restore(saved);
  assert.equal(b.agent.guestOpen, true);
  assert.equal(b.agent.buffered, 3);
  assert.equal(b.agent.metrics.rxBytes, 4);
  assert.equal(b.dev.read(VIRTIO_MMIO_STATUS, 4) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
  assert.equal(b.dev.read(VIRTIO_MMIO_STATUS, 4) & VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_DRIVER_OK);
  assert.doesNotThrow(() => b.con.restore({ ports: 'junk', control: [1, 2], metrics: null }));
  assert.equal(b.agent.buffered, 0);
  assert.equal(b.agent.guestOpen, false);
});
