// Relinking (src/engine/jit/code-cache.ts): a block translated before the block it jumps to
// leaves through the trampoline's "chainStatic", which records it; once the code cache has
// seen it there often enough, it translates the block's page again, and the jump becomes a
// direct tail call, which the trampoline no longer sees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hart, HartExit, createGuestMemory, type HartHost } from '../../src/engine/hart.js';
import { HART_STATE_BASE, HS_RELINK, RAM_BASE, RAM_OFFSET } from '../../src/engine/layout.js';
import { loadEngineModule } from '../../src/engine/node/module.js';

const RAM_BYTES = 4 << 20;
const ECALL = 0x73;
/** addi rd, rs1, imm */
const addi = (rd: number, rs1: number, imm: number) => ((imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13;
/** jal x0, off */
const j = (off: number) => (((off >>> 20) & 1) << 31) | (((off >>> 1) & 0x3ff) << 21) | (((off >>> 11) & 1) << 20) | (((off >>> 12) & 0xff) << 12) | 0x6f;
/** A branch (funct3 `f3`) from rs1 and rs2 to off. */
const branch = (f3: number, rs1: number, rs2: number, off: number) =>
  (((off >>> 12) & 1) << 31) | (((off >>> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (((off >>> 1) & 0xf) << 8) | (((off >>> 11) & 1) << 7) | 0x63;
const BLTU = 6, BGEU = 7;

/**
 * Under Sv39 (the root table at ROOT maps RAM by one 1 GiB leaf at its own address and
 * again at HIGH, in the upper half, where the code cache looks up a jump to another page in
 * the S-mode execute TLB, as a kernel's), a loop over two pages run at HIGH: A (page 0,
 * offset 0x100) counts x10 up, on its own while x10 is below x9, then leaves for `done`
 * when x10 reaches x8, else jumps to C (page 1), which adds 3 to x11 and jumps back to A:
 * with a JAL, or, if `back` is 'jalr', through x6 (through the jump cache, so to A's latest
 * translation).
 */
const A = 0x100, DONE = 0x180, C = 0x1000;
const ROOT = 0x20_0000;
const HIGH = 0xffff_ffc0_0000_0000n;
const code = (back: 'jal' | 'jalr'): Array<[number, number]> => [
  [0, 0x18029073], // csrw satp, x5
  [4, 0x12000073], // sfence.vma
  [8, 0x00030067], // jalr x0, 0(x6): x6 = HIGH + A
  [A, addi(10, 10, 1)], [A + 4, branch(BLTU, 10, 9, -4)], [A + 8, branch(BGEU, 10, 8, DONE - (A + 8))], [A + 12, j(C - (A + 12))],
  [DONE, ECALL],
  [C, addi(11, 11, 3)], [C + 4, back === 'jal' ? j(A - (C + 4)) : 0x00030067 /* jalr x0, 0(x6) */],
];

/**
 * A hart (translating each block at once) that runs the loop (`back`, x9 = `alone`), with:
 * the count of records in its relink ring; a function that runs `instructions` more; and
 * one that ends the loop 1000 iterations on and checks x10 and x11 there.
 */
async function loopHart(back: 'jal' | 'jalr', alone: bigint): Promise<{ hart: Hart; records: () => number; run: (instructions: number) => void; finish: () => void }> {
  const memory = createGuestMemory(RAM_BYTES);
  const ram = new DataView(memory.buffer, RAM_OFFSET, RAM_BYTES);
  for (const [at, w] of code(back)) ram.setUint32(at, w, true);
  const leaf = (BigInt(RAM_BASE >>> 12) << 10n) | 0xcfn; // V R W X A D
  ram.setBigUint64(ROOT + 8 * (RAM_BASE / 2 ** 30), leaf, true);
  ram.setBigUint64(ROOT + 8 * Number((HIGH >> 30n) & 511n), leaf, true);
  const host: HartHost = { mmioRead: () => undefined, mmioWrite: () => false, nowTicks: () => 0 };
  const hart = await Hart.create(loadEngineModule(), memory, 0, RAM_BYTES, host, { engine: 'jit', jit: { hotThreshold: 1, batchBlocks: 1 } });
  hart.reset(BigInt(RAM_BASE), 0n);
  hart.setX(5, (8n << 60n) | BigInt((RAM_BASE + ROOT) >>> 12));
  hart.setX(6, HIGH + BigInt(A));
  hart.setX(8, 1n << 62n);
  hart.setX(9, alone);
  const records = () => new Uint32Array(memory.buffer)[(HART_STATE_BASE + HS_RELINK) >> 2];
  const run = (instructions: number) => {
    for (let done = 0; done < instructions; done += 100_000) assert.equal(hart.run(100_000), HartExit.Budget, `pc 0x${hart.pc.toString(16)}`);
  };
  const finish = () => {
    hart.setX(8, hart.getX(10) + 1000n);
    for (let n = 0; n < 100 && hart.run(100_000) !== HartExit.Sbi; n++);
    assert.equal(hart.pc, HIGH + BigInt(DONE));
    assert.equal(hart.getX(10), hart.getX(8));
    assert.equal(hart.getX(11), 3n * (hart.getX(8) - (alone > 0n ? alone : 1n)));
  };
  return { hart, records, run, finish };
}

test('jit: jumps between two pages whose blocks are translated in one module are direct tail calls', async () => {
  const { hart, records, run, finish } = await loopHart('jal', 0n);
  run(1_000_000);
  assert.ok(hart.jitStats!.modules >= 1);
  const at = records();
  run(3_000_000);
  assert.ok(records() - at < 100, `${records() - at} jumps through the trampoline in 500,000 loop iterations`);
  finish();
});

test('jit: a block that keeps jumping through the trampoline to a block translated after it is relinked, and the jump then bypasses the trampoline', async () => {
  // C first runs long after A was translated: A's jump to C goes through the trampoline until A's page is relinked
  const { hart, records, run, finish } = await loopHart('jalr', 1_000_000n);
  // until the code cache relinks (it waits for the page's translation to be 300 ms old)
  const t0 = performance.now();
  while (hart.jitStats!.relinks === 0) {
    run(1_000_000);
    assert.ok(performance.now() - t0 < 30_000, `not relinked after 30 s: ${records()} jumps through the trampoline recorded`);
  }
  const before = records();
  assert.ok(before > 10_000, `only ${before} jumps through the trampoline were recorded before the relink`);
  run(1_000_000); // the relinked module is built and published
  const at = records();
  run(3_000_000);
  assert.ok(records() - at < 100, `${records() - at} more jumps through the trampoline in 500,000 loop iterations after the relink`);
  assert.ok(hart.jitStats!.relinks <= 3, `${hart.jitStats!.relinks} relinks`);
  finish();
});
