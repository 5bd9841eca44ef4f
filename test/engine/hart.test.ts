// Hart start-up and diagnostics over one shared memory: a hart that starts while another
// is still filling the shared RVC expansion table must not run on the half-filled table
// (the cause of the intermittent SMP boot hang), and the diagnostic mirror reports where
// a hart is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hart, HartExit, createGuestMemory, readHartSnapshot, type HartHost } from '../../src/engine/hart.js';
import { RAM_BASE, RAM_OFFSET, RVC_TABLE } from '../../src/engine/layout.js';
import { loadEngineModule } from '../../src/engine/node/module.js';

const RAM_BYTES = 1 << 20;
const host: HartHost = { mmioRead: () => undefined, mmioWrite: () => false, nowTicks: () => 0 };

/** c.li a0, 5; c.addi a0, 1; ecall — as 16-bit parcels. */
const PROGRAM = [0x4515, 0x0505, 0x0073, 0x0000];

test('a hart starting while another fills the RVC table decodes every compressed instruction', async () => {
  const memory = createGuestMemory(RAM_BYTES);
  // the state another hart's init leaves after writing only the first entries
  const table = new Uint32Array(memory.buffer, RVC_TABLE, 65536);
  table[1] = 0x13;
  const ram = new Uint16Array(memory.buffer, RAM_OFFSET, PROGRAM.length);
  ram.set(PROGRAM);
  const hart = await Hart.create(loadEngineModule(), memory, 1, RAM_BYTES, host);
  hart.reset(BigInt(RAM_BASE), 0n);
  assert.equal(hart.run(100), HartExit.Sbi, 'reaches the ecall instead of trapping on an illegal instruction');
  assert.equal(hart.getX(10), 6n);
  assert.equal(hart.pc, BigInt(RAM_BASE + 4));
});

test('the diagnostic snapshot shows where a hart stopped and counts its run slices', async () => {
  const memory = createGuestMemory(RAM_BYTES);
  new Uint16Array(memory.buffer, RAM_OFFSET, PROGRAM.length).set(PROGRAM);
  const hart = await Hart.create(loadEngineModule(), memory, 0, RAM_BYTES, host);
  hart.reset(BigInt(RAM_BASE), 0n);
  assert.equal(readHartSnapshot(memory, 0).exits, 0n);
  hart.run(100);
  const s = readHartSnapshot(memory, 0);
  assert.equal(s.pc, BigInt(RAM_BASE + 4));
  assert.equal(s.priv, 1);
  assert.ok(s.instret >= 2n, 'the two instructions before the ecall retired');
  assert.equal(s.exits, 1n);
  assert.equal(s.stimecmp, 0xffff_ffff_ffff_ffffn);
});
