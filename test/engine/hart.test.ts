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

/** Write 32-bit instructions at the start of guest RAM. */
function program(memory: WebAssembly.Memory, insns: number[]): void {
  new Uint32Array(memory.buffer, RAM_OFFSET, insns.length).set(insns);
}
const PAUSE = 0x0100000f;
const NOP = 0x00000013;
/** `jal x0, -4 * back`: jump back `back` instructions. */
const jumpBack = (back: number) => {
  const imm = (-4 * back) & 0x1fffff;
  return (((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) | 0x6f;
};

test('a spin loop of PAUSE hints leaves run() with HartExit.Pause (pause-loop exiting)', async () => {
  const memory = createGuestMemory(RAM_BYTES);
  program(memory, [PAUSE, jumpBack(1)]);
  const hart = await Hart.create(loadEngineModule(), memory, 0, RAM_BYTES, host);
  hart.reset(BigInt(RAM_BASE), 0n);
  assert.equal(hart.run(1_000_000), HartExit.Pause);
  assert.ok(hart.instret < 1000n, `left after a short spin, not the whole budget (${hart.instret} instructions)`);
  assert.equal(hart.run(1_000_000), HartExit.Pause, 'and again when the spin goes on');
});

test('PAUSE hints far apart are not a spin loop', async () => {
  const memory = createGuestMemory(RAM_BYTES);
  program(memory, [...Array(300).fill(NOP), PAUSE, jumpBack(301)]);
  const hart = await Hart.create(loadEngineModule(), memory, 0, RAM_BYTES, host);
  hart.reset(BigInt(RAM_BASE), 0n);
  assert.equal(hart.run(1_000_000), HartExit.Budget);
});
