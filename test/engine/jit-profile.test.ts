// The code cache's side of JIT profiles (src/engine/jit/code-cache.ts): block starts given
// as a seed are translated after PROFILE_WARMUP executions instead of the hot threshold, and
// the kernel's hot starts of a run are reported for the next one (hotStarts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hart, HartExit, createGuestMemory, type HartHost } from '../../src/engine/hart.js';
import { RAM_BASE, RAM_OFFSET } from '../../src/engine/layout.js';
import { loadEngineModule } from '../../src/engine/node/module.js';
import { PROFILE_WARMUP } from '../../src/engine/jit/code-cache.js';

const RAM_BYTES = 4 << 20;
const HOT = 1000;
/** RAM offset of the loop's start (the target of its backward branch). */
const LOOP = 0x100;

/**
 * A hart that runs `addi x10, x10, 1; bltu x10, x9, -4; ecall` at RAM offset LOOP (with
 * the MMU off: its pc is physical) for `iterations`, its code cache seeded with `seed`;
 * requests are built as soon as they come.
 */
async function loop(iterations: number, seed?: number[]): Promise<Hart> {
  const memory = createGuestMemory(RAM_BYTES);
  const ram = new DataView(memory.buffer, RAM_OFFSET, RAM_BYTES);
  ram.setUint32(LOOP, 0x00150513, true); // addi x10, x10, 1
  ram.setUint32(LOOP + 4, 0xfe956ee3, true); // bltu x10, x9, -4
  ram.setUint32(LOOP + 8, 0x00000073, true); // ecall
  const host: HartHost = { mmioRead: () => undefined, mmioWrite: () => false, nowTicks: () => 0 };
  const hart = await Hart.create(loadEngineModule(), memory, 0, RAM_BYTES, host, { engine: 'jit', jit: { hotThreshold: HOT, batchBlocks: 1, seed } });
  hart.reset(BigInt(RAM_BASE + LOOP), 0n);
  hart.setX(9, BigInt(iterations));
  let exit: HartExit;
  for (let n = 0; (exit = hart.run(50)) === HartExit.Budget; n++) assert.ok(n < 100_000, 'no ecall');
  assert.equal(exit, HartExit.Sbi);
  assert.equal(hart.getX(10), BigInt(iterations), 'the loop ran to its end');
  return hart;
}

test('jit profile: a seeded block start is translated after PROFILE_WARMUP executions', async () => {
  assert.ok(2 * PROFILE_WARMUP < HOT);
  const cold = await loop(2 * PROFILE_WARMUP);
  assert.equal(cold.jitStats!.blocks, 0, 'unseeded, the loop stays below the hot threshold');
  assert.equal(cold.jitStats!.seeded, 0);
  const warm = await loop(2 * PROFILE_WARMUP, [LOOP]);
  const stats = warm.jitStats!;
  assert.equal(stats.seeded, 1);
  assert.equal(stats.blocks, 1);
  assert.ok(stats.retired > PROFILE_WARMUP, `the loop ran translated (${stats.retired} instructions)`);
  const brief = await loop(PROFILE_WARMUP / 2, [LOOP]);
  assert.equal(brief.jitStats!.seeded, 1);
  assert.equal(brief.jitStats!.blocks, 0, 'a seeded start run fewer times stays with the interpreter');
});

test('jit profile: the starts that asked for translation are reported as RAM offsets', async () => {
  assert.deepEqual((await loop(3 * HOT)).jitHotStarts(), [LOOP]);
  assert.deepEqual((await loop(HOT / 2)).jitHotStarts(), []);
});

test('jit profile: odd, negative, fractional and out-of-RAM offsets are ignored', async () => {
  const hart = await loop(HOT / 2, [LOOP + 1, -2, 0.5, RAM_BYTES, 2 ** 40, NaN]);
  assert.equal(hart.jitStats!.seeded, 0);
  assert.equal(hart.jitStats!.blocks, 0);
});
