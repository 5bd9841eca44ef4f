// Batching of translation requests (src/engine/jit/code-cache.ts): hot block starts wait
// for a batch (batchBlocks of them, or batchDelayMs), unless one of them keeps running
// while it waits (URGENT_FACTOR times the hot threshold): then the batch is built at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hart, HartExit, createGuestMemory, type HartHost } from '../../src/engine/hart.js';
import { RAM_BASE, RAM_OFFSET } from '../../src/engine/layout.js';
import { loadEngineModule } from '../../src/engine/node/module.js';

const RAM_BYTES = 4 << 20;
const HOT = 100;

/** A hart whose code cache waits for 1000 hot blocks or 1000 s, running `addi x10, x10, 1; bltu x10, x9, -4; ecall` with x9 = `iterations`. */
async function loop(iterations: number): Promise<Hart> {
  const memory = createGuestMemory(RAM_BYTES);
  const ram = new DataView(memory.buffer, RAM_OFFSET, RAM_BYTES);
  ram.setUint32(0, 0x00150513, true); // addi x10, x10, 1
  ram.setUint32(4, 0xfe956ee3, true); // bltu x10, x9, -4
  ram.setUint32(8, 0x00000073, true); // ecall
  const host: HartHost = { mmioRead: () => undefined, mmioWrite: () => false, nowTicks: () => 0 };
  const hart = await Hart.create(loadEngineModule(), memory, 0, RAM_BYTES, host, { engine: 'jit', jit: { hotThreshold: HOT, batchBlocks: 1000, batchDelayMs: 1e9 } });
  hart.reset(BigInt(RAM_BASE), 0n);
  hart.setX(9, BigInt(iterations));
  let exit: HartExit;
  for (let n = 0; (exit = hart.run(50)) === HartExit.Budget; n++) assert.ok(n < 100_000, 'no ecall');
  assert.equal(exit, HartExit.Sbi);
  assert.equal(hart.getX(10), BigInt(iterations));
  return hart;
}

test('jit: a hot block that keeps running while its batch waits is translated at once', async () => {
  const stats = (await loop(20 * HOT)).jitStats!;
  assert.equal(stats.blocks, 1);
  assert.ok(stats.retired > 10 * HOT, `the loop ran translated (${stats.retired} instructions)`);
});

test('jit: a hot block that stops running waits for its batch', async () => {
  const stats = (await loop(HOT + HOT / 2)).jitStats!;
  assert.equal(stats.blocks, 0);
  assert.equal(stats.retired, 0);
});
