// The TLB's associativity, seen from the guest: a page-table walk sets the accessed bit of
// the leaf it uses (privileged spec 4.3.2 step 7), and a TLB hit does not walk. So after
// the guest's page tables lose their A bits (without an SFENCE.VMA), pages the TLB still
// holds are used with A left clear, and any page it had to walk again gets A back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hart, HartExit, createGuestMemory, type EngineKind, type HartHost } from '../../src/engine/hart.js';
import { RAM_BASE, RAM_OFFSET } from '../../src/engine/layout.js';
import { loadEngineModule } from '../../src/engine/node/module.js';

const RAM_BYTES = 4 << 20;
const ROOT = RAM_BASE + 0x20_0000;
/** The page-table level-1 and level-0 tables of the data pages. */
const L1 = ROOT + 0x1000, L0 = ROOT + 0x2000;
/** Two data pages 1 MiB apart (virtual page numbers 256 apart: the same TLB set, whatever the number of sets up to 256). */
const VA_A = 0x4000_0000, VA_B = 0x4010_0000;
const PA_A = RAM_BASE + 0x30_0000, PA_B = RAM_BASE + 0x30_1000;
/** The virtual page after VA_A, mapped to a physical page that is not after PA_A's. */
const VA_C = VA_A + 0x1000, PA_C = RAM_BASE + 0x30_3000;
const PTE_V = 1n, PTE_R = 2n, PTE_W = 4n, PTE_X = 8n, PTE_A = 0x40n, PTE_D = 0x80n;

const leaf = (pa: number, flags: bigint) => (BigInt(pa >>> 12) << 10n) | flags;
const ECALL = 0x73;

/**
 * The loop of accessedBitsAfterTwoPasses: load from VA_A and VA_B in turn and store x8
 * after each, x8 times.
 */
const TWO_PAGES = [
  0x40000337, // lui x6, 0x40000
  0x401003b7, // lui x7, 0x40100
  0x00033503, // loop: ld x10, 0(x6)
  0x0003b583, // ld x11, 0(x7)
  0x00833423, // sd x8, 8(x6)
  0x0083b423, // sd x8, 8(x7)
];

/**
 * Sv39 page tables: RAM identity-mapped by one 1 GiB leaf (the code), and VA_A, VA_B,
 * VA_C mapped to PA_A, PA_B, PA_C; then the program: switch to them, and at every ecall
 * after that run `loop` (two instructions, then a loop body whose first instruction is
 * the third), with x8 counting down from the value the host set to 0.
 */
function setUp(memory: WebAssembly.Memory, loop: readonly number[]): DataView {
  const ram = new DataView(memory.buffer, RAM_OFFSET, RAM_BYTES);
  const pte = (table: number, index: number, v: bigint) => ram.setBigUint64(table - RAM_BASE + 8 * index, v, true);
  pte(ROOT, RAM_BASE / 2 ** 30, leaf(RAM_BASE, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D));
  pte(ROOT, VA_A / 2 ** 30, leaf(L1, PTE_V));
  pte(L1, 0, leaf(L0, PTE_V));
  pte(L0, (VA_A >>> 12) & 511, leaf(PA_A, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D));
  pte(L0, (VA_B >>> 12) & 511, leaf(PA_B, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D));
  pte(L0, (VA_C >>> 12) & 511, leaf(PA_C, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D));
  assert.equal(loop.length, 6);
  const code = [
    0x18029073, // csrw satp, x5
    0x12000073, // sfence.vma
    ...loop,
    0xfff40413, // addi x8, x8, -1
    0xfe0416e3, // bnez x8, loop
    ECALL,
    0xfe5ff06f, // j loop
  ];
  code.forEach((w, k) => ram.setUint32(4 * k, w, true));
  ram.setBigUint64(PA_A - RAM_BASE, 0xaaaan, true);
  ram.setBigUint64(PA_B - RAM_BASE, 0xbbbbn, true);
  return ram;
}

/** A hart of `engine` (translating each block at once) that runs `loop` (setUp), and a function that runs it `times` times. */
async function loopHart(engine: EngineKind, loop: readonly number[]): Promise<{ hart: Hart; ram: DataView; pass: (times: bigint) => void }> {
  const memory = createGuestMemory(RAM_BYTES);
  const ram = setUp(memory, loop);
  const host: HartHost = { mmioRead: () => undefined, mmioWrite: () => false, nowTicks: () => 0 };
  const hart = await Hart.create(loadEngineModule(), memory, 0, RAM_BYTES, host, { engine, jit: { hotThreshold: 1, batchBlocks: 1 } });
  hart.reset(BigInt(RAM_BASE), 0n);
  hart.setX(5, (8n << 60n) | BigInt(ROOT >>> 12));
  const pass = (times: bigint) => {
    hart.setX(8, times);
    for (let n = 0; n < 1000; n++) {
      const exit = hart.run(50);
      if (exit === HartExit.Sbi) { hart.skipEcall(); return; }
      assert.equal(exit, HartExit.Budget, `${engine}: unexpected exit ${exit} at pc 0x${hart.pc.toString(16)}, scause 0x${hart.readCsr(0x142).toString(16)}`);
    }
    assert.fail(`${engine}: the loop did not end`);
  };
  return { hart, ram, pass };
}

async function accessedBitsAfterTwoPasses(engine: EngineKind): Promise<{ a: boolean; b: boolean }> {
  const { hart, ram, pass } = await loopHart(engine, TWO_PAGES);
  pass(300n);
  const at = (va: number) => L0 - RAM_BASE + 8 * ((va >>> 12) & 511);
  for (const va of [VA_A, VA_B]) ram.setBigUint64(at(va), ram.getBigUint64(at(va), true) & ~PTE_A, true);
  pass(300n);
  // the loads and stores reached the right pages, through whichever way holds them
  assert.deepEqual([hart.getX(8), hart.getX(10), hart.getX(11)], [0n, 0xaaaan, 0xbbbbn]);
  assert.deepEqual([ram.getBigUint64(PA_A - RAM_BASE + 8, true), ram.getBigUint64(PA_B - RAM_BASE + 8, true)], [1n, 1n]);
  return { a: (ram.getBigUint64(at(VA_A), true) & PTE_A) !== 0n, b: (ram.getBigUint64(at(VA_B), true) & PTE_A) !== 0n };
}

for (const engine of ['interp', 'jit'] as const) {
  test(`${engine}: two pages in one TLB set both stay in the TLB while the guest loads and stores through them in turn`, async () => {
    assert.deepEqual(await accessedBitsAfterTwoPasses(engine), { a: false, b: false }, 'neither page was walked again (its A bit would be set)');
  });
}

for (const engine of ['interp', 'jit'] as const) {
  test(`${engine}: loads and stores through one base register whose range straddles two virtual pages reach each page's own physical page`, async () => {
    // x6 = VA_C - 8: the first doubleword at the end of VA_A's page, the second at the start
    // of VA_C's (whose physical page is not the one after PA_A); the loop swaps them
    const { hart, ram, pass } = await loopHart(engine, [
      0x40001337, // lui x6, 0x40001
      0xff830313, // addi x6, x6, -8
      0x00033503, // loop: ld x10, 0(x6)
      0x00833583, // ld x11, 8(x6)
      0x00b33023, // sd x11, 0(x6)
      0x00a33423, // sd x10, 8(x6)
    ]);
    const endOfA = PA_A - RAM_BASE + 0xff8, startOfC = PA_C - RAM_BASE;
    ram.setBigUint64(endOfA, 0xaaaan, true);
    ram.setBigUint64(startOfC, 0xccccn, true);
    ram.setBigUint64(PA_A - RAM_BASE + 0x1000, 0xbad0n, true); // what a load past PA_A's page would read
    pass(301n);
    assert.deepEqual([hart.getX(10), hart.getX(11)], [0xaaaan, 0xccccn], 'the last iteration, after an even number of swaps, loaded each doubleword from its page');
    assert.deepEqual([ram.getBigUint64(endOfA, true), ram.getBigUint64(startOfC, true), ram.getBigUint64(PA_A - RAM_BASE + 0x1000, true)], [0xccccn, 0xaaaan, 0xbad0n],
      'an odd number of swaps, each through each page\'s own mapping');
    if (engine === 'jit') assert.ok(hart.jitStats!.retired > 1000, `only ${hart.jitStats!.retired} instructions ran translated`);
  });
}
