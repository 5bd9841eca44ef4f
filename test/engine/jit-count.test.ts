// Counting of block starts toward the hot threshold (src/engine/as/jit.ts): under a threshold
// of 1024 or more, a counting jump-cache entry counts executions itself and adds them to the
// block map 16 at a time; what it counted is added when another start takes the entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hart, HartExit, createGuestMemory, type HartHost } from '../../src/engine/hart.js';
import { JC_ENTRIES, RAM_BASE, RAM_OFFSET } from '../../src/engine/layout.js';
import { loadEngineModule } from '../../src/engine/node/module.js';
import type { CodeCacheStats } from '../../src/engine/jit/code-cache.js';

const RAM_BYTES = 4 << 20;
/** The hot threshold of these tests: counting entries add 16 executions at a time under it. */
const HOT = 1024;

// RV64I encodings (unprivileged spec 2.3)
const addi = (rd: number, rs1: number, imm: number) => (((imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13) >>> 0;
const branch = (f3: number, rs1: number, rs2: number, imm: number) =>
  ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
const jal = (rd: number, imm: number) =>
  ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) | (rd << 7) | 0x6f) >>> 0;
const BNE = 1, BLTU = 6, BGEU = 7;
const ECALL = 0x00000073;

/** The jump-cache entry of `pc` (src/engine/as/jit.ts jumpCacheEntry), as an index. */
const jumpCacheIndex = (pc: number) => ((Math.floor(pc / 2) ^ Math.floor(pc / 8192)) & (JC_ENTRIES - 1));

/**
 * Run `words` (at RAM_BASE + their offsets) from RAM_BASE with x9 = `x9` and x12 = x13 = `inner`,
 * translating at HOT executions (a batch as soon as one start is hot), until the ecall;
 * returns the JIT's statistics and x10.
 */
async function run(words: Map<number, number>, x9: number, inner = 0): Promise<{ stats: CodeCacheStats; x10: bigint }> {
  const memory = createGuestMemory(RAM_BYTES);
  const ram = new DataView(memory.buffer, RAM_OFFSET, RAM_BYTES);
  for (const [off, w] of words) ram.setUint32(off, w, true);
  const host: HartHost = { mmioRead: () => undefined, mmioWrite: () => false, nowTicks: () => 0 };
  const hart = await Hart.create(loadEngineModule(), memory, 0, RAM_BYTES, host, { engine: 'jit', jit: { hotThreshold: HOT, batchBlocks: 1 } });
  hart.reset(BigInt(RAM_BASE), 0n);
  hart.setX(9, BigInt(x9));
  hart.setX(12, BigInt(inner));
  hart.setX(13, BigInt(inner));
  let exit: HartExit;
  for (let n = 0; (exit = hart.run(50)) === HartExit.Budget; n++) assert.ok(n < 1_000_000, 'no ecall');
  assert.equal(exit, HartExit.Sbi);
  return { stats: hart.jitStats!, x10: hart.getX(10) };
}

/** `addi x10, x10, 1; bltu x10, x9, -4; ecall`: the start at RAM_BASE runs x9 times. */
const LOOP = new Map([[0, addi(10, 10, 1)], [4, branch(BLTU, 10, 9, -4)], [8, ECALL]]);

test('jit: a start counted in its jump-cache entry is translated once it ran the hot threshold\'s times, not before', async () => {
  const hot = await run(LOOP, HOT + 32);
  assert.equal(hot.x10, BigInt(HOT + 32));
  assert.equal(hot.stats.blocks, 1);
  const cold = await run(LOOP, HOT - 32);
  assert.equal(cold.x10, BigInt(HOT - 32));
  assert.equal(cold.stats.blocks, 0);
});

test('jit: the executions a jump-cache entry counted are not lost when another start takes the entry', async () => {
  // A (RAM_BASE): an inner loop of 10, then a jump to B, in another page and on A's jump-cache
  // entry; B jumps back to A until x14 reaches x9. A runs 10 times for each time B takes its
  // entry: 9 of them counted in the entry, which B takes before they reach 16
  const b = [...Array(RAM_BYTES / 4).keys()].map((k) => k * 4).find((o) => o >= 0x2000 && jumpCacheIndex(RAM_BASE + o) === jumpCacheIndex(RAM_BASE))!;
  assert.ok(b !== undefined);
  const words = new Map([
    [0, addi(10, 10, 1)], [4, addi(13, 13, -1)], [8, branch(BNE, 13, 0, -8)], [12, jal(0, b - 12)],
    [b, addi(13, 12, 0)], [b + 4, addi(14, 14, 1)], [b + 8, branch(BGEU, 14, 9, 8)], [b + 12, jal(0, -(b + 12))], [b + 16, ECALL],
  ]);
  const outer = Math.ceil((HOT + 64) / 10);
  const hot = await run(words, outer, 10);
  assert.equal(hot.x10, BigInt(10 * outer));
  assert.ok(hot.stats.blocks >= 1, 'A was not translated');
  assert.ok(hot.stats.retired > 0);
  const cold = await run(words, Math.floor((HOT - 64) / 10), 10);
  assert.equal(cold.stats.blocks, 0);
});
