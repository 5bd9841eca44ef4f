import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Uart16550 } from '../../src/devices/uart16550.js';
import { FakeIrq, MemChar } from './helpers.js';

const RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

function setup() {
  const con = new MemChar();
  const irq = new FakeIrq();
  const uart = new Uart16550(con, irq);
  const r = (o: number) => uart.read(o, 1);
  const w = (o: number, v: number) => uart.write(o, 1, v);
  return { con, irq, uart, r, w };
}

test('polled console: LSR shows THRE|TEMT, THR writes reach the backend', () => {
  const { con, r, w, irq } = setup();
  assert.equal(r(LSR) & 0x60, 0x60);
  for (const ch of 'hi\n') {
    while (!(r(LSR) & 0x20)) { /* wait_for_xmitr */ }
    w(THR, ch.charCodeAt(0));
  }
  assert.equal(con.text, 'hi\n');
  assert.equal(irq.level, false, 'no interrupt while IER = 0');
  assert.equal(r(IIR) & 0x0f, 0x01);
});

test('DLAB switches offsets 0/1 to the divisor latch', () => {
  const { con, r, w } = setup();
  w(IER, 0x05);
  w(LCR, 0x83); // DLAB | 8N1
  w(DLL, 0x01);
  w(DLM, 0x02);
  assert.equal(r(DLL), 0x01);
  assert.equal(r(DLM), 0x02);
  assert.equal(con.out.length, 0, 'DLL write is not a transmit');
  w(LCR, 0x03);
  assert.equal(r(IER), 0x05, 'IER untouched by DLM write');
  assert.equal(r(LCR), 0x03);
  w(THR, 0x41);
  assert.equal(con.text, 'A');
  w(LCR, 0x83);
  assert.equal(r(DLL), 0x01, 'divisor kept');
  w(SCR, 0x5a);
  assert.equal(r(SCR), 0x5a);
});

test('THRE interrupt: raised when ETBEI is enabled with THR empty, cleared by IIR read, re-raised by re-enable or THR write', () => {
  const { r, w, irq } = setup();
  w(FCR, 0x07); // enable + clear FIFOs
  w(MCR, 0x0b);
  // serial8250_do_startup's UART_BUG_THRE test
  w(IER, 0x02);
  assert.equal(irq.level, true);
  const iir1 = r(IIR);
  assert.equal(iir1, 0xc2, 'THRE reported, FIFOs enabled');
  assert.equal(irq.level, false, 'reading IIR cleared THRE');
  assert.equal(r(IIR), 0xc1, 'no interrupt pending');
  w(IER, 0);
  w(IER, 0x02);
  assert.equal(r(IIR), 0xc2, 're-enabling ETBEI re-asserts THRE');
  assert.equal(r(IIR), 0xc1);
  // interrupt-driven transmit: each THR write empties instantly and re-raises THRE
  w(THR, 0x41);
  assert.equal(irq.level, true);
  assert.equal(r(IIR), 0xc2);
  // stop_tx: clearing ETBEI lowers the line even with THRE pending
  w(THR, 0x42);
  assert.equal(irq.level, true);
  w(IER, 0);
  assert.equal(irq.level, false);
  assert.equal(r(IIR), 0xc1);
});

test('receive FIFO is filled by poll() while it has room, drained by RBR reads, in order', () => {
  const { con, uart, r, w, irq } = setup();
  w(FCR, 0xc7); // enable, clear, trigger 14
  for (let i = 0; i < 20; i++) con.input.push(0x30 + i);
  uart.poll();
  assert.equal(con.pending(), 4, 'only 16 bytes fit the FIFO');
  assert.equal(r(LSR) & 0x01, 1, 'DR set');
  assert.equal(irq.level, false, 'ERBFI not enabled yet');
  w(IER, 0x01);
  assert.equal(irq.level, true);
  assert.equal(r(IIR), 0xc4, 'received data available (16 >= trigger 14)');
  const got: number[] = [];
  while (r(LSR) & 0x01) got.push(r(RBR));
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => 0x30 + i), 'RBR reads refill from the backend');
  assert.equal(irq.level, false);
  assert.equal(r(IIR), 0xc1);
  assert.equal(r(RBR), 0, 'empty RBR reads 0');
});

test('below the trigger level the UART reports a character timeout; RDA beats THRE', () => {
  const { con, uart, r, w, irq } = setup();
  w(FCR, 0x81); // trigger 8
  w(IER, 0x03);
  assert.equal(r(IIR), 0xc2);
  con.input.push(0x61, 0x62, 0x63);
  uart.poll();
  assert.equal(irq.level, true);
  assert.equal(r(IIR), 0xcc);
  for (let i = 0; i < 5; i++) con.input.push(0x64);
  uart.poll();
  assert.equal(r(IIR), 0xc4);
  while (r(LSR) & 1) r(RBR);
  assert.equal(r(IIR), 0xc1, 'THRE was cleared by the first IIR read');
});

test('FCR: clearing the receive FIFO; FIFO disabled means a one-byte holding register', () => {
  const { con, uart, r, w } = setup();
  w(FCR, 0x01);
  con.input.push(1, 2, 3);
  uart.poll();
  w(FCR, 0x03); // clear RX
  assert.equal(r(LSR) & 1, 0);
  w(FCR, 0x00); // FIFOs off: 16450 mode
  assert.equal(r(IIR) & 0xc0, 0);
  con.input.push(1, 2, 3);
  uart.poll();
  assert.equal(con.pending(), 2, 'one byte taken');
  assert.equal(r(RBR), 1);
  assert.equal(r(RBR), 2);
  assert.equal(r(RBR), 3);
});

test('loopback: MSR mirrors MCR (8250 autoconfig test) and THR loops to RBR', () => {
  const { con, r, w } = setup();
  w(MCR, 0x10 | 0x0a);
  assert.equal(r(MSR) & 0xf0, 0x90);
  w(FCR, 0x01);
  w(THR, 0x55);
  assert.equal(con.out.length, 0, 'nothing sent to the host in loopback');
  assert.equal(r(LSR) & 1, 1);
  assert.equal(r(RBR), 0x55);
  w(MCR, 0x0b);
  assert.equal(r(MSR) & 0xb0, 0xb0, 'out of loopback: DCD, DSR, CTS asserted');
  assert.equal(r(MSR) & 0x0f, 0, 'deltas clear on read');
});

test('save/restore keeps registers, FIFO contents and the IRQ level', () => {
  const a = setup();
  a.w(FCR, 0x01);
  a.w(LCR, 0x80);
  a.w(DLL, 3);
  a.w(LCR, 0x03);
  a.w(IER, 0x01);
  a.con.input.push(7, 8, 9);
  a.uart.poll();
  a.r(RBR);
  const state = JSON.parse(JSON.stringify(a.uart.save()));
  const b = setup();
  b.uart.restore(state);
  assert.equal(b.irq.level, true);
  assert.equal(b.r(LCR), 0x03);
  assert.equal(b.r(IER), 0x01);
  assert.equal(b.r(RBR), 8);
  assert.equal(b.r(RBR), 9);
  assert.equal(b.irq.level, false);
  b.w(LCR, 0x80);
  assert.equal(b.r(DLL), 3);
});

test('accesses outside the eight registers are harmless', () => {
  const { uart, irq } = setup();
  assert.equal(uart.read(0x80, 4), 0);
  uart.write(0xff, 1, 0xff);
  assert.equal(irq.sets, 0);
  assert.equal(uart.size, 0x100);
});
