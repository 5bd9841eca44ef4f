// Differential test of the JIT (src/engine/jit/) against the interpreter: random RV64IMC
// programs (fixed seeds) run on two harts in two memories, one per engine, in lockstep
// from one `ecall` checkpoint to the next; at every checkpoint the x registers, pc,
// instret and the data the program wrote must be identical. The programs mix ALU and
// M-extension instructions (32-bit and compressed), F and D instructions (random fields,
// illegal ones, dynamic rounding with every frm, FS switched off and on), A instructions
// (AMOs, LR/SC pairs, misaligned and faulting addresses), loads and stores of every width
// (aligned, misaligned, crossing pages, and faulting ones, which a trap handler skips),
// forward branches and jumps, JALR, FENCE, reads of `instret`, and a loop that runs the body
// several times so that its blocks are translated and then run translated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hart, HartExit, createGuestMemory, type EngineKind, type HartHost } from '../../src/engine/hart.js';
import { RAM_OFFSET, RVC_TABLE } from '../../src/engine/layout.js';
import { loadEngineModule } from '../../src/engine/node/module.js';
import { STRADDLE, decodeBlock, translatable } from '../../src/engine/jit/block.js';
import { translateModule } from '../../src/engine/jit/translate.js';
import type { CodeCacheOptions, CodeCacheStats, CompiledModule, CompileJob, ModuleCompiler } from '../../src/engine/jit/code-cache.js';

const RAM_BYTES = 4 << 20;
const RAM_BASE = 0x8000_0000;
/** Guest physical address of the data the programs load and store (x9 points into it). */
const DATA = RAM_BASE + 0x10_0000;
const DATA_BYTES = 3 * 4096;
const X9 = DATA + 4096 + 2048;
/** Registers the random instructions never write: x5-x7 (trap handler), x8 (loop counter), x9 (data base). */
const RESERVED = new Set([5, 6, 7, 8, 9]);
/** Times the loop runs the random body. */
const LOOPS = 4;

/** xorshift32: the tests' deterministic random numbers. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

const r = (op: number, rd: number, f3: number, rs1: number, rs2: number, f7: number) =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const i = (op: number, rd: number, f3: number, rs1: number, imm: number) =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const s = (f3: number, rs1: number, rs2: number, imm: number) =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | 0x23) >>> 0;
const b = (f3: number, rs1: number, rs2: number, imm: number) =>
  ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
    (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
const jal = (rd: number, imm: number) =>
  ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) | (rd << 7) | 0x6f) >>> 0;
const ECALL = 0x73;

/** An instruction of a program; `skip` asks for a forward branch/jump over that many following instructions. */
interface Item { word: number; len: 2 | 4; skip?: number; kind?: 'branch' | 'jal'; noLand?: boolean }

/** Random instructions (see the file comment); `rvc` is the engine's expansion table. */
function generate(seed: number, rvc: Uint32Array, count: number, fpHeavy = false): Item[] {
  const rand = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[rand() % a.length];
  const reg = () => { for (;;) { const x = rand() % 32; if (!RESERVED.has(x)) return x; } };
  const src = () => rand() % 32;
  const imm12 = () => {
    const k = rand() % 4;
    return k === 0 ? pick([0, 1, -1, 2047, -2048, 63, 31, 32]) : ((rand() % 4096) - 2048);
  };
  const items: Item[] = [];
  while (items.length < count) {
    if (fpHeavy && rand() % 100 < 60) {
      items.push(...fpItems(rand, reg, true));
      continue;
    }
    const k = (rand() % 1000) / 10;
    if (k < 25) { // OP / OP-32
      const f3 = rand() % 8, f7 = pick([0, 0x20, 1]);
      const w = r(pick([0x33, 0x3b]), reg(), f3, src(), src(), f7);
      if (translatable(w)) items.push({ word: w, len: 4 });
    } else if (k < 40) { // OP-IMM / OP-IMM-32
      const f3 = rand() % 8;
      let imm = imm12();
      if (f3 === 1 || f3 === 5) imm = (rand() % 64) | (f3 === 5 && rand() % 2 ? 0x400 : 0);
      const w = i(pick([0x13, 0x1b]), reg(), f3, src(), imm);
      if (translatable(w)) items.push({ word: w, len: 4 });
    } else if (k < 45) { // LUI / AUIPC
      items.push({ word: (((rand() & 0xfffff) << 12) | (reg() << 7) | pick([0x37, 0x17])) >>> 0, len: 4 });
    } else if (k < 60) { // loads: mostly near x9, sometimes through a random base (faults)
      const f3 = pick([0, 1, 2, 3, 4, 5, 6]);
      const base = rand() % 8 ? 9 : src();
      items.push({ word: i(0x03, reg(), f3, base, base === 9 ? (rand() % 4096) - 2048 : imm12()), len: 4 });
    } else if (k < 72) { // stores: near x9, sometimes absolute (x0 base: faults, and the code stays intact)
      const f3 = rand() % 4;
      const base = rand() % 8 ? 9 : 0;
      items.push({ word: s(f3, base, src(), base === 9 ? (rand() % 4096) - 2048 : imm12()), len: 4 });
    } else if (k < 85) { // compressed: ALU on any register, loads and stores based on x9
      const parcel = rand() & 0xffff;
      if ((parcel & 3) === 3) continue;
      const e = rvc[parcel];
      if (e === 0 || !translatable(e)) continue;
      const op = e & 0x7f, rd = (e >>> 7) & 31, rs1 = (e >>> 15) & 31;
      if (op === 0x6f || op === 0x67 || op === 0x63) continue;
      if (op === 0x07 || op === 0x27) continue; // FP loads/stores trap when FS is off: 32-bit forms only
      if ((op === 0x03 || op === 0x23) && rs1 !== 9) continue;
      if (op !== 0x23 && RESERVED.has(rd)) continue;
      items.push({ word: parcel, len: 2 });
    } else if (k < 92) { // forward branch over 1-3 instructions
      items.push({ word: b(pick([0, 1, 4, 5, 6, 7]), src(), src(), 0), len: 4, skip: 1 + rand() % 3, kind: 'branch' });
    } else if (k < 95) {
      items.push({ word: jal(reg(), 0), len: 4, skip: 1 + rand() % 2, kind: 'jal' });
    } else if (k < 97) { // auipc x11, 0; jalr rd, 12(x11): skips one 4-byte instruction
      items.push({ word: (11 << 7) | 0x17, len: 4 }); // auipc x11, 0
      items.push({ word: i(0x67, reg(), 0, 11, 12), len: 4, noLand: true });
      items.push({ word: i(0x13, 12, 0, 12, 1), len: 4, noLand: true }); // skipped
    } else if (k < 97.5) {
      items.push(...fpItems(rand, reg));
    } else if (k < 97.8) {
      items.push(...amoItems(rand, reg));
    } else if (k < 98) {
      const c = rand() % 3;
      items.push(c === 0 ? { word: i(0x73, reg(), 2, 0, 0xc02), len: 4 } // csrr rd, instret
        : c === 1 ? { word: (((rand() & 0xff) << 20) | 0x0f) >>> 0, len: 4 } // fence (pred, succ random; PAUSE sometimes)
        // CSRRW/S/C[I] of sscratch or stval (rd x0 sometimes, rs1/uimm 0 sometimes: no read, no write)
        : { word: i(0x73, rand() % 4 ? reg() : 0, pick([1, 2, 3, 5, 6, 7]), rand() % 4 ? src() : 0, pick([0x140, 0x143])), len: 4 });
    } else {
      items.push({ word: ECALL, len: 4 }); // checkpoint
    }
    if (rand() % 8 === 0) items.push({ word: ECALL, len: 4 }); // checkpoint
  }
  return items;
}

/**
 * F and D instructions: loads/stores near x9, OP-FP and FMA with random fields (illegal
 * ones included), frm and FS changes; `heavy` (most of a program F/D) makes FS changes
 * rarer, and adds small integers converted to binary64.
 */
function fpItems(rand: () => number, reg: () => number, heavy = false): Item[] {
  // heavy: 8 f registers (operands meet, and are often equal), rounding modes mostly RNE
  const f = () => rand() % (heavy ? 8 : 32);
  const rm = () => (heavy ? [0, 0, 0, 7, 7, 7, 1, 2, 3, 4, 5] : [0, 1, 2, 3, 4, 7, 7, 7, 5, 6])[rand() % (heavy ? 11 : 10)];
  let k = rand() % 20;
  if (heavy && k >= 19 && rand() % 10) k = rand() % 19;
  if (heavy && rand() % 10 === 0) { // li t, small; fcvt.d.w or fcvt.d.l f, t
    const t = reg();
    return [{ word: i(0x13, t, 0, 0, (rand() % 64) - 32), len: 4 }, { word: r(0x53, f(), 7, t, rand() % 2 ? 0 : 2, 0x69), len: 4 }];
  }
  if (k < 4) { // FLW/FLD
    const f3 = rand() % 2 ? 2 : 3;
    return [{ word: i(0x07, f(), f3, 9, (rand() % 4096) - 2048), len: 4 }];
  }
  if (k < 7) { // FSW/FSD
    const f3 = rand() % 2 ? 2 : 3;
    return [{ word: s(f3, 9, f(), (rand() % 4096) - 2048) & ~0x7f | 0x27, len: 4 }];
  }
  if (k < 16) { // OP-FP: funct5 from the defined ones (and a few undefined), fmt S/D (sometimes H/Q: illegal)
    const f5 = [0x00, 0x01, 0x02, 0x03, 0x0b, 0x04, 0x05, 0x08, 0x14, 0x18, 0x1a, 0x1c, 0x1e, 0x06, 0x1f][rand() % 15];
    const fmt = rand() % 8 ? (heavy ? +(rand() % 4 !== 0) : rand() % 2) : 2 + rand() % 2;
    let rs2 = f();
    if (f5 === 0x0b || f5 === 0x1c || f5 === 0x1e) rs2 = rand() % 4 ? 0 : rs2;
    if (f5 === 0x08) rs2 = rand() % 4 ? 1 - fmt : rs2;
    if (f5 === 0x18 || f5 === 0x1a) rs2 = rand() % 8 ? rand() % 4 : rs2;
    let f3 = f5 <= 0x03 || f5 === 0x0b || f5 === 0x08 || f5 === 0x18 || f5 === 0x1a ? rm() : rand() % 4;
    if (f5 === 0x1c || f5 === 0x1e) f3 = rand() % 4 ? rand() % 2 : f3;
    const writesX = f5 === 0x14 || f5 === 0x18 || f5 === 0x1c;
    const readsX = f5 === 0x1a || f5 === 0x1e;
    return [{ word: r(0x53, writesX ? reg() : f(), f3, readsX ? rand() % 32 : f(), rs2, (f5 << 2) | fmt), len: 4 }];
  }
  if (k < 18) { // FMADD/FMSUB/FNMSUB/FNMADD
    const op = [0x43, 0x47, 0x4b, 0x4f][rand() % 4];
    const fmt = rand() % 8 ? rand() % 2 : 2;
    return [{ word: ((f() << 27) | (fmt << 25) | (f() << 20) | (f() << 15) | (rm() << 12) | (f() << 7) | op) >>> 0, len: 4 }];
  }
  if (k < 19) return [{ word: ((0x002 << 20) | ((rand() % 8) << 15) | (5 << 12) | 0x73) >>> 0, len: 4 }]; // csrwi frm, 0..7
  // FS off (then every F/D instruction traps) or back to Initial: lui x6, 6 or 2; csrc/csrs sstatus, x6
  return rand() % 4 ? [{ word: (2 << 12) | (6 << 7) | 0x37, len: 4 }, { word: 0x10032073, len: 4 }]
    : [{ word: (6 << 12) | (6 << 7) | 0x37, len: 4 }, { word: 0x10033073, len: 4 }];
}

/** A instructions on an address near x9 (aligned or not) or 0 (access fault): AMOs, LR then SC, undefined funct5s. */
function amoItems(rand: () => number, reg: () => number): Item[] {
  const t = reg();
  const off = rand() % 4 ? (rand() % 16) * 8 - 64 : (rand() % 128) - 64;
  const base = rand() % 8 ? t : 0;
  const f3 = rand() % 16 ? 2 + rand() % 2 : rand() % 8;
  const aqrl = rand() % 4;
  const amo = (f5: number, rs2: number) => r(0x2f, reg(), f3, base, rs2, (f5 << 2) | aqrl);
  const items: Item[] = [{ word: i(0x13, t, 0, 9, off), len: 4 }]; // addi t, x9, off
  if (rand() % 3 === 0) { // LR, something, SC
    items.push({ word: amo(2, rand() % 8 ? 0 : 1 + rand() % 31), len: 4 });
    if (rand() % 2) items.push({ word: i(0x13, reg(), 0, rand() % 32, 1), len: 4 });
    items.push({ word: amo(3, rand() % 32), len: 4 });
  } else {
    items.push({ word: amo([0, 1, 4, 8, 12, 16, 20, 24, 28, 2, 3, 5, 31][rand() % 13], rand() % 32), len: 4 });
  }
  return items;
}

/** Lay out: prologue, loop { body }, final ecall, trap handler. Returns the image and the final ecall's address. */
function assemble(body: Item[]): { image: Uint8Array; exitPc: number } {
  const handler: number[] = [
    0x141022f3, // csrr x5, sepc
    i(0x13, 5, 0, 5, 4), // addi x5, x5, 4 (faulting accesses are 4-byte instructions)
    0x14129073, // csrw sepc, x5
    0x14302373, // csrr x6, stval
    r(0x33, 7, 4, 7, 6, 0), // xor x7, x7, x6
    0x14202373, // csrr x6, scause
    r(0x33, 7, 0, 7, 6, 0), // add x7, x7, x6
    0x10200073, // sret
  ];
  const words: Array<{ word: number; len: number }> = [];
  // prologue: x5 = handler (patched below), stvec = x5, sstatus.FS = Initial (lui x6, 2; csrs sstatus, x6);
  // the host sets x8 (loop count) and x9 (data base)
  const prologue = [0, 0, 0x10529073, (2 << 12) | (6 << 7) | 0x37, 0x10032073];
  for (const w of prologue) words.push({ word: w, len: 4 });
  const loopStart = words.reduce((a, w) => a + w.len, 0);
  const bodyAt = words.length;
  for (const it of body) words.push({ word: it.word, len: it.len });
  words.push({ word: i(0x13, 8, 0, 8, -1), len: 4 }); // addi x8, x8, -1
  const backAt = words.length;
  words.push({ word: 0, len: 4 }); // bnez x8, loop
  const exitAt = words.length;
  words.push({ word: ECALL, len: 4 });
  if (words.reduce((a, w) => a + w.len, 0) % 4) words.push({ word: 0x0001, len: 2 }); // c.nop: stvec is 4-byte aligned
  const handlerAt = words.length;
  for (const w of handler) words.push({ word: w, len: 4 });
  const addr: number[] = [];
  let at = 0;
  for (const w of words) { addr.push(at); at += w.len; }
  // patch branches and jumps to skip instructions
  body.forEach((it, k) => {
    if (!it.skip) return;
    const from = bodyAt + k;
    let to = Math.min(from + 1 + it.skip, bodyAt + body.length); // never past the loop decrement
    while (to < bodyAt + body.length && body[to - bodyAt].noLand) to++; // never between auipc and its jalr
    const off = addr[to] - addr[from];
    words[from].word = it.kind === 'jal' ? jal((it.word >>> 7) & 31, off) : b((it.word >>> 12) & 7, (it.word >>> 15) & 31, (it.word >>> 20) & 31, off);
  });
  words[backAt].word = b(1, 8, 0, loopStart - addr[backAt]);
  const hoff = addr[handlerAt];
  assert.ok(hoff < 2048, 'program too long for the prologue\'s addi');
  words[0].word = 0x00000297; // auipc x5, 0
  words[1].word = i(0x13, 5, 0, 5, hoff);
  const image = new Uint8Array(at);
  const dv = new DataView(image.buffer);
  words.forEach((w, k) => { if (w.len === 4) dv.setUint32(addr[k], w.word, true); else dv.setUint16(addr[k], w.word, true); });
  return { image, exitPc: RAM_BASE + addr[exitAt] };
}

async function makeHart(engine: EngineKind, image: Uint8Array, data: Uint8Array, jit: CodeCacheOptions = {}): Promise<{ hart: Hart; mem: Uint8Array }> {
  const memory = createGuestMemory(RAM_BYTES);
  const mem = new Uint8Array(memory.buffer);
  mem.set(image, RAM_OFFSET);
  mem.set(data, RAM_OFFSET + (DATA - RAM_BASE));
  const host: HartHost = { mmioRead: () => undefined, mmioWrite: () => false, nowTicks: () => 0 };
  const hart = await Hart.create(loadEngineModule(), memory, 0, RAM_BYTES, host, { engine, jit: { hotThreshold: 1, batchBlocks: 1, ...jit } });
  hart.reset(BigInt(RAM_BASE), 0n);
  hart.setX(8, BigInt(LOOPS));
  hart.setX(9, BigInt(X9));
  return { hart, mem };
}

/** Run to the next ecall in chunks of `chunk` instructions (so that translations get installed in between). */
function toCheckpoint(hart: Hart, chunk: number, what: string): void {
  for (let n = 0; n < 10_000; n++) {
    const exit = hart.run(chunk);
    if (exit === HartExit.Sbi) return;
    assert.equal(exit, HartExit.Budget, `${what}: unexpected exit ${exit} at pc 0x${hart.pc.toString(16)}`);
  }
  const h = (v: bigint) => `0x${v.toString(16)}`;
  assert.fail(`${what}: no checkpoint reached: pc ${h(hart.pc)} scause ${h(hart.readCsr(0x142))} sepc ${h(hart.readCsr(0x141))} stval ${h(hart.readCsr(0x143))}`);
}

function state(hart: Hart, mem: Uint8Array): string {
  const xs: string[] = [];
  for (let k = 0; k < 32; k++) xs.push(hart.getX(k).toString(16));
  for (let k = 0; k < 32; k++) xs.push(hart.getF(k).toString(16));
  xs.push(`fcsr ${hart.readCsr(0x003).toString(16)} sstatus ${hart.readCsr(0x100).toString(16)} sscratch ${hart.readCsr(0x140).toString(16)} stval ${hart.readCsr(0x143).toString(16)}`);
  const d = mem.subarray(RAM_OFFSET + (DATA - RAM_BASE), RAM_OFFSET + (DATA - RAM_BASE) + DATA_BYTES);
  let h = 0;
  for (let k = 0; k < d.length; k++) h = (Math.imul(h, 31) + d[k]) | 0;
  return `pc=${hart.pc.toString(16)} instret=${hart.instret} data=${h} x=${xs.join(',')}`;
}

/** The engine's RVC expansion table (for the generator). */
async function engineRvc(): Promise<Uint32Array> {
  const probe = await makeHart('interp', new Uint8Array(4), new Uint8Array(0));
  return new Uint32Array(probe.mem.buffer.slice(RVC_TABLE, RVC_TABLE + 65536 * 4));
}

/**
 * Run random program `seed` under both engines from checkpoint to checkpoint (in chunks of
 * `chunks[0]` instructions for the interpreter, `chunks[1]` for the JIT, whose code cache
 * has options `jit`); the states must be equal at each. Returns the JIT's figures.
 */
async function diffRandomProgram(seed: number, rvc: Uint32Array, chunks: [number, number], jit: CodeCacheOptions = {}, fpHeavy = false): Promise<CodeCacheStats> {
  const rand = rng(seed * 7919);
  const { image, exitPc } = assemble(generate(seed, rvc, 150, fpHeavy));
  const data = new Uint8Array(DATA_BYTES);
  for (let k = 0; k < data.length; k++) data[k] = rand() & 0xff;
  if (fpHeavy) {
    const dv = new DataView(data.buffer);
    for (let k = 0; k + 8 <= data.length; k += 8) {
      if (rand() % 8 === 0) continue; // random bits
      const v = FP_VALUES[rand() % FP_VALUES.length];
      if (typeof v === 'bigint') dv.setBigUint64(k, v, true);
      else if (rand() % 4 === 0) { dv.setFloat32(k, v, true); dv.setUint32(k + 4, 0xffffffff, true); } // NaN-boxed binary32
      else dv.setFloat64(k, v, true);
    }
  }
  const a = await makeHart('interp', image, data);
  const j = await makeHart('jit', image, data, jit);
  for (let step = 0; ; step++) {
    toCheckpoint(a.hart, chunks[0], `interp, seed ${seed}`);
    toCheckpoint(j.hart, chunks[1], `jit, seed ${seed}`);
    assert.equal(state(j.hart, j.mem), state(a.hart, a.mem), `seed ${seed}, checkpoint ${step}`);
    if (a.hart.pc === BigInt(exitPc)) break;
    a.hart.skipEcall();
    j.hart.skipEcall();
  }
  return j.hart.jitStats!;
}

test('jit: random RV64IMC programs give the interpreter\'s state at every checkpoint', async () => {
  const rvc = await engineRvc();
  let translated = 0;
  let links = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const stats = await diffRandomProgram(seed, rvc, [50 + (seed % 7) * 13, 50 + (seed % 5) * 17]);
    translated += stats.blocks;
    links += stats.links;
  }
  assert.ok(translated > 1000, `only ${translated} blocks were translated`);
  assert.ok(links > 20, `only ${links} jumps to earlier modules were linked`);
});

/** Operands for the F/D programs: zeros, ties, integers at the conversion limits, subnormals, overflow, NaNs (bigint: raw bits). */
const FP_VALUES: Array<number | bigint> = [
  0, -0, 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 1 / 3, 3, 7, 1e10, 1e300, -1e300, 1e-300, 5e-324, 2.2250738585072014e-308,
  2 ** 53, 2 ** 53 + 2, 2 ** 63, -(2 ** 63), 2 ** 64, 4294967295.5, 4294967296, -2147483648.5, 2147483647.4, -0.7,
  Infinity, -Infinity, NaN, 0x7ff4000000000000n, 0xfff8000000000001n, 1e38, 3.4028235677973366e38, 1e-40, 1.17549435e-38,
  Math.PI, Math.E, 123456789.125, 0.1, 0.2, 1.7976931348623157e308, 2 ** 1023, -(2 ** -1022) * 1.5,
];

test('jit: random F/D programs give the interpreter\'s results, flags and FS at every checkpoint', async () => {
  const rvc = await engineRvc();
  let retired = 0;
  for (let seed = 201; seed <= 260; seed++) {
    const stats = await diffRandomProgram(seed, rvc, [50 + (seed % 7) * 13, 50 + (seed % 5) * 17], {}, true);
    retired += stats.retired;
  }
  assert.ok(retired > 5000, `only ${retired} instructions ran translated`);
});

/**
 * Run the program of `body` (assemble) on `data` under both engines, from checkpoint to
 * checkpoint (7 instructions a run for the interpreter, 100 for the JIT); the states must
 * be equal at each. Returns the JIT's side.
 */
async function diffProgram(body: Item[], data: Uint8Array): Promise<{ hart: Hart; mem: Uint8Array }> {
  const { image, exitPc } = assemble(body);
  const a = await makeHart('interp', image, data);
  const j = await makeHart('jit', image, data);
  for (let step = 0; ; step++) {
    toCheckpoint(a.hart, 7, 'interp');
    toCheckpoint(j.hart, 100, 'jit');
    assert.equal(state(j.hart, j.mem), state(a.hart, a.mem), `checkpoint ${step}`);
    if (a.hart.pc === BigInt(exitPc)) break;
    a.hart.skipEcall();
    j.hart.skipEcall();
  }
  return j;
}

test('jit: a block that loops on itself and faults in a later iteration stores back what the earlier iterations wrote', async () => {
  // x13 = 0; x14 = 6; x12 = data; x16 = 1 MiB; then a one-block loop whose load faults from its
  // fourth iteration on (x12 has left the 4 MiB of RAM), after the iterations before wrote
  // x10, x12, x13 and x15 in the translated block's locals
  const body: Item[] = [
    i(0x13, 13, 0, 0, 0), i(0x13, 14, 0, 0, 6), i(0x13, 12, 0, 9, 0), (0x100 << 12) | (16 << 7) | 0x37,
    i(0x13, 10, 0, 10, 1), // loop: addi x10, x10, 1
    i(0x03, 11, 3, 12, 0), // ld x11, 0(x12)
    r(0x33, 15, 0, 15, 11, 0), // add x15, x15, x11
    r(0x33, 12, 0, 12, 16, 0), // add x12, x12, x16
    i(0x13, 13, 0, 13, 1), // addi x13, x13, 1
    b(1, 13, 14, -20), // bne x13, x14, loop
  ].map((word) => ({ word: word >>> 0, len: 4 as const }));
  const j = await diffProgram(body, new Uint8Array(DATA_BYTES).map((_, k) => (k * 37) & 0xff));
  assert.equal(j.hart.getX(13), 6n);
  assert.ok(j.hart.jitStats!.retired > 0, 'the loop ran translated');
});

test('jit: a loop back to the middle of a block, and a block that goes on after a jump to an earlier branch\'s target, keep the interpreter\'s state when a load faults in a later iteration', async () => {
  // the body is one block (the harness loops over it): an inner loop whose back edges go to
  // its fifth instruction, one of them a jump the block goes on after (to the target of the
  // branch before it); the load faults from the inner loop's fourth iteration on (x12 has
  // left RAM), after earlier iterations wrote x11, x12, x13, x15 and x19 down both paths
  const body: Item[] = [
    i(0x13, 12, 0, 9, 0), i(0x13, 13, 0, 0, 0), i(0x13, 14, 0, 0, 6), (0x100 << 12) | (16 << 7) | 0x37,
    i(0x03, 11, 3, 12, 0), // inner: ld x11, 0(x12)
    i(0x13, 19, 7, 11, 1), // andi x19, x11, 1
    r(0x33, 12, 0, 12, 16, 0), // add x12, x12, x16
    i(0x13, 13, 0, 13, 1), // addi x13, x13, 1
    b(1, 19, 0, 16), // bnez x19, odd
    r(0x33, 15, 0, 15, 11, 0), // add x15, x15, x11
    b(0, 13, 14, 16), // beq x13, x14, done
    jal(0, -28), // j inner
    r(0x33, 15, 0, 15, 11, 0x20), // odd: sub x15, x15, x11
    b(1, 13, 14, -36), // bne x13, x14, inner
  ].map((word) => ({ word: word >>> 0, len: 4 as const })); // done: the harness's loop
  const j = await diffProgram(body, new Uint8Array(DATA_BYTES).map((_, k) => (k * 37 + 1) & 0xff));
  assert.equal(j.hart.getX(13), 6n);
  assert.ok(j.hart.jitStats!.retired > 0, 'the loop ran translated');
  // the body (after the harness's 5-instruction prologue) is one block, through `j inner`
  const blk = decodeBlock(new DataView(j.mem.buffer), RAM_OFFSET + 20, { rvcTable: RVC_TABLE, tlbTableBytes: 0, xBase: 0 })!;
  assert.deepEqual(blk.insns.map((ins) => ins.off).slice(0, body.length), body.map((_, k) => 4 * k));
});

test('jit: 32-bit instructions that cross a page end (an add, a load that faults every other time, a branch taken and not) run in their blocks with the interpreter\'s results', async () => {
  // a loop over three pages whose last instructions straddle into the next; a trap handler
  // at 0x800 skips the faulting load (sepc + 4) and sums scause into x7
  const at = new Map<number, number | [number, 2]>();
  const put = (a: number, ...ws: number[]) => { for (const w of ws) { at.set(a, w >>> 0); a += 4; } };
  const C_NOP = 0x0001;
  const jmp = (from: number, to: number) => put(from, jal(0, to - from));
  put(0x000, 0x00000297, i(0x13, 5, 0, 5, 0x7ff), i(0x13, 5, 0, 5, 1), 0x10529073, i(0x13, 8, 0, 0, 60)); // stvec = 0x800; x8 = 60
  jmp(0x014, 0xfe8);
  put(0x800, 0x141022f3, i(0x13, 5, 0, 5, 4), 0x14129073, 0x14202373, r(0x33, 7, 0, 7, 6, 0), 0x10200073);
  put(0xfe8, i(0x13, 10, 0, 10, 3), i(0x13, 11, 0, 11, 5), r(0x33, 12, 0, 12, 10, 0), i(0x13, 19, 7, 8, 1), r(0x33, 19, 0, 0, 19, 0x20));
  at.set(0xffc, [C_NOP, 2]);
  put(0xffe, r(0x33, 16, 0, 16, 11, 0)); // add x16, x16, x11: across 0x1000
  put(0x1002, r(0x33, 18, 7, 9, 19, 0)); // x18 = x8 odd ? x9 : 0
  jmp(0x1006, 0x1ff8);
  put(0x1ff8, i(0x13, 13, 0, 13, 1));
  at.set(0x1ffc, [C_NOP, 2]);
  put(0x1ffe, i(0x03, 17, 3, 18, 0)); // ld x17, 0(x18): across 0x2000; an access fault at 0
  put(0x2002, r(0x33, 20, 0, 20, 17, 0));
  jmp(0x2006, 0x2ff8);
  put(0x2ff8, i(0x13, 8, 0, 8, -1));
  at.set(0x2ffc, [C_NOP, 2]);
  put(0x2ffe, b(0, 8, 0, 8)); // beqz x8, the ecall: across 0x3000
  jmp(0x3002, 0xfe8);
  put(0x3006, ECALL);
  const image = new Uint8Array(0x300a);
  const dv = new DataView(image.buffer);
  for (const [a, w] of at) {
    if (Array.isArray(w)) dv.setUint16(a, w[0], true);
    else { dv.setUint16(a, w & 0xffff, true); dv.setUint16(a + 2, w >>> 16, true); }
  }
  const data = new Uint8Array(DATA_BYTES).map((_, k) => (k * 53) & 0xff);
  const a = await makeHart('interp', image, data);
  const j = await makeHart('jit', image, data);
  toCheckpoint(a.hart, 7, 'interp');
  toCheckpoint(j.hart, 100, 'jit');
  assert.equal(state(j.hart, j.mem), state(a.hart, a.mem));
  assert.equal(j.hart.pc, BigInt(RAM_BASE + 0x3006));
  assert.equal(j.hart.getX(13), 60n);
  assert.equal(j.hart.getX(7), 30n * 5n, 'every other load faulted (load access fault, cause 5)');
  // the blocks that end at the page ends hold the straddling instruction, and ran translated
  const layout = { rvcTable: RVC_TABLE, tlbTableBytes: 0, xBase: 0 };
  for (const start of [0xfe8, 0x1ff8, 0x2ff8]) {
    const blk = decodeBlock(new DataView(j.mem.buffer), RAM_OFFSET + start, layout)!;
    assert.equal(blk.insns[blk.insns.length - 1].insn, STRADDLE, `block at 0x${start.toString(16)}`);
    assert.equal(blk.stopsBefore, false);
  }
  const stats = j.hart.jitStats!;
  assert.ok(stats.retired > 50 * 14, `the loop ran translated (${stats.retired} instructions)`);
  assert.ok(stats.entries < 150, `translated code was entered ${stats.entries} times from the interpreter's loop, not once per straddling instruction`);
});

test('jit: loads and stores that share one TLB probe give the interpreter\'s results when their base changes, a branch joins them, their range straddles a page, their page is in way 1, or they fault', async () => {
  const body: Item[] = [
    // a loop of its own, 16 times (one block that loops on itself, translated):
    i(0x13, 20, 0, 0, 16),
    // x27 = x9 + x20; a load, a write of x27, then loads through the new x27
    r(0x33, 27, 0, 9, 20, 0), // loop: add x27, x9, x20
    i(0x03, 11, 3, 27, 0), i(0x13, 27, 0, 27, 8), i(0x03, 13, 3, 27, 0), i(0x03, 14, 3, 27, 16),
    r(0x33, 15, 0, 15, 11, 0), r(0x33, 15, 0, 15, 13, 0), r(0x33, 15, 0, 15, 14, 0),
    // x12 = x9 - 2048 + 4096 * (x20 & 1); the first load is skipped when x20 is even, and
    // the second is where that branch lands
    i(0x13, 16, 7, 20, 1), // andi x16, x20, 1
    i(0x13, 17, 1, 16, 12), // slli x17, x16, 12
    i(0x13, 12, 0, 9, -2048), r(0x33, 12, 0, 12, 17, 0),
    b(0, 16, 0, 8), // beq x16, x0, +8
    i(0x03, 18, 3, 12, 0), // ld x18, 0(x12)
    i(0x03, 19, 3, 12, 8), // ld x19, 8(x12)
    r(0x33, 21, 0, 21, 19, 0), r(0x33, 21, 0, 21, 18, 0),
    i(0x13, 20, 0, 20, -1), b(1, 20, 0, -72), // addi x20, x20, -1; bne x20, x0, loop
    // x28 = x9 + 2040: loads, then stores, through x28 whose ranges straddle into the third page
    i(0x13, 28, 0, 9, 2040), i(0x03, 29, 3, 28, 0), i(0x03, 30, 3, 28, 8), r(0x33, 29, 0, 29, 20, 0),
    s(3, 28, 30, 0), s(3, 28, 29, 8), s(2, 28, 29, 4),
    // x31 = x9 + 512 KiB, a page of the same TLB sets: a load there moves x9's page to way 1,
    // then a group of loads through x9 (its check fails, the first load's own probe brings
    // the page back to way 0), and a group of stores after another load through x31
    (0x80 << 12) | (31 << 7) | 0x37, r(0x33, 31, 0, 31, 9, 0), i(0x03, 10, 3, 31, 0),
    i(0x03, 11, 3, 9, 40), i(0x03, 10, 2, 9, 44), r(0x33, 10, 0, 10, 11, 0), i(0x03, 11, 3, 31, 8),
    s(3, 9, 10, 48), s(3, 9, 11, 56), s(1, 9, 10, 62),
    // x22 = the end of RAM: stores and loads at its last doubleword and past it (access faults)
    i(0x13, 22, 0, 0, 1), i(0x13, 22, 1, 22, 31), (0x400 << 12) | (23 << 7) | 0x37, r(0x33, 22, 0, 22, 23, 0),
    s(3, 22, 15, -8), s(3, 22, 21, 0), i(0x03, 24, 3, 22, -8), i(0x03, 25, 3, 22, 0), i(0x03, 26, 3, 22, -16),
  ].map((word) => ({ word: word >>> 0, len: 4 as const }));
  const j = await diffProgram(body, new Uint8Array(DATA_BYTES).map((_, k) => (k * 37 + (k >> 8)) & 0xff));
  assert.equal(j.hart.getX(24), j.hart.getX(15), 'the store before the faulting one was done');
  assert.ok(j.hart.jitStats!.retired > 100, `only ${j.hart.jitStats!.retired} instructions ran translated`);
});

/**
 * A compiler that hands a module back only several polls after it was asked for, as the
 * compiler thread does under load: the cache fills and is dropped while modules are built.
 */
class SlowCompiler implements ModuleCompiler {
  private polls = 0;
  private readonly queue: Array<{ at: number; job: CompileJob }> = [];
  submit(job: CompileJob): void { this.queue.push({ at: this.polls + 5, job }); }
  take(): CompiledModule | undefined {
    this.polls++;
    if (!this.queue.length || this.queue[0].at > this.polls) return undefined;
    const { job } = this.queue.shift()!;
    const bytes = translateModule(job.blocks, job.layout, job.linked);
    return { id: job.id, module: new WebAssembly.Module(bytes), wasmBytes: bytes.length, ms: 0 };
  }
  close(): void { this.queue.length = 0; }
}

/**
 * A SlowCompiler whose thread is still loading for its first `loading` calls of ready():
 * the code cache must build those modules on the hart's thread and submit none.
 */
class LoadingCompiler extends SlowCompiler {
  submittedWhileLoading = 0;
  taken = 0;
  constructor(private loading: number) { super(); }
  ready(): boolean { return this.loading-- <= 0; }
  submit(job: CompileJob): void {
    if (this.loading >= 0) this.submittedWhileLoading++;
    super.submit(job);
  }
  take(): CompiledModule | undefined {
    const m = super.take();
    if (m) this.taken++;
    return m;
  }
}

test('jit: modules are built on the hart\'s thread until the compiler thread is ready, then on it, with the interpreter\'s results', async () => {
  const rvc = await engineRvc();
  let onHart = 0, taken = 0, retired = 0;
  for (let seed = 121; seed <= 130; seed++) {
    const compiler = new LoadingCompiler(2);
    const stats = await diffRandomProgram(seed, rvc, [40, 3 + (seed % 4)], { compiler });
    assert.equal(compiler.submittedWhileLoading, 0, `seed ${seed}: a job went to a compiler that was not ready`);
    onHart += stats.modules - compiler.taken;
    taken += compiler.taken;
    retired += stats.retired;
  }
  assert.ok(onHart > 0, 'no module was built on the hart\'s thread while the compiler was loading');
  assert.ok(taken > 0, 'no module came from the compiler once it was ready');
  assert.ok(retired > 50, `only ${retired} instructions ran translated`);
});

test('jit: a cache that fills while modules are being built is dropped and refilled, with the interpreter\'s results', async () => {
  const rvc = await engineRvc();
  let flushes = 0;
  let retired = 0;
  for (let seed = 101; seed <= 120; seed++) {
    const stats = await diffRandomProgram(seed, rvc, [40, 3 + (seed % 4)], { maxBlocks: 30, compiler: new SlowCompiler() });
    flushes += stats.flushes;
    retired += stats.retired;
  }
  assert.ok(flushes > 20, `the cache was dropped only ${flushes} times`);
  assert.ok(retired > 50, `only ${retired} instructions ran translated`);
});

/**
 * Every F/D instruction the translator has a native path for (fp.ts), and its neighbours
 * that go through the engine, on every pair of FP_VALUES (binary64, and NaN-boxed binary32
 * for the .S forms) and with integers at the conversion limits: one loop per instruction
 * stores f[rd], x[rd], fcsr and sstatus (FS set to Clean before each) for every input, and
 * the two engines' outputs must be equal after each loop. Run with frm = RNE and RTZ.
 */
test('jit: the F/D instructions give the interpreter\'s results, fflags and FS on every pair of special operands', async () => {
  const INPUT = RAM_BASE + 0x10_0000, OUTPUT = RAM_BASE + 0x20_0000;
  const INTS = [0n, 1n, -1n, 7n, -123456n, 1n << 31n, (1n << 32n) - 1n, 1n << 53n, (1n << 53n) + 1n, -(1n << 53n), -(1n << 53n) - 1n,
    (1n << 63n) - 1n, -(1n << 63n), 0xfffffffffffffffen, 0x123456789abcdefn];
  const dv = (n: number) => { const b = new DataView(new ArrayBuffer(8)); b.setFloat64(0, n, true); return b.getBigUint64(0, true); };
  const f32 = (n: number) => { const b = new DataView(new ArrayBuffer(4)); b.setFloat32(0, n, true); return 0xffffffff00000000n | BigInt(b.getUint32(0, true)); };
  const asBits = (v: number | bigint) => (typeof v === 'bigint' ? v : dv(v));
  const doubles = FP_VALUES.map(asBits);
  // binary32 operands: the values rounded to binary32 and boxed, a binary32 sNaN, and two not boxed (read as NaN)
  const singles = [...FP_VALUES.filter((v): v is number => typeof v === 'number').map(f32), 0xffffffff7fa00000n, 0x3ff0000000000000n, 0x00000000_3f800000n];
  const ops: Array<{ name: string; word: number; single: boolean }> = [];
  const op = (name: string, word: number, single: boolean) => ops.push({ name, word: word >>> 0, single });
  for (const fmt of [1, 0]) {
    const t = fmt ? 'd' : 's', single = fmt === 0;
    ['fadd', 'fsub', 'fmul', 'fdiv'].forEach((n, f5) => { for (const rm of [0, 1, 7]) op(`${n}.${t} rm${rm}`, r(0x53, 3, rm, 1, 2, (f5 << 2) | fmt), single); });
    op(`fsqrt.${t}`, r(0x53, 3, 0, 1, 0, (0x0b << 2) | fmt), single);
    ['fsgnj', 'fsgnjn', 'fsgnjx'].forEach((n, f3) => op(`${n}.${t}`, r(0x53, 3, f3, 1, 2, (0x04 << 2) | fmt), single));
    ['fmin', 'fmax'].forEach((n, f3) => op(`${n}.${t}`, r(0x53, 3, f3, 1, 2, (0x05 << 2) | fmt), single));
    ['fle', 'flt', 'feq'].forEach((n, f3) => op(`${n}.${t}`, r(0x53, 10, f3, 1, 2, (0x14 << 2) | fmt), single));
    ['w', 'wu', 'l', 'lu'].forEach((n, rs2) => {
      for (const rm of [0, 1, 2, 3, 4, 7]) op(`fcvt.${n}.${t} rm${rm}`, r(0x53, 10, rm, 1, rs2, (0x18 << 2) | fmt), single);
      for (const rm of [0, 7]) op(`fcvt.${t}.${n} rm${rm}`, r(0x53, 3, rm, 11, rs2, (0x1a << 2) | fmt), single);
    });
    op(`fmv.x.${t}`, r(0x53, 10, 0, 1, 0, (0x1c << 2) | fmt), single);
    op(`fclass.${t}`, r(0x53, 10, 1, 1, 0, (0x1c << 2) | fmt), single);
    op(`fmv.${t}.x`, r(0x53, 3, 0, 11, 0, (0x1e << 2) | fmt), single);
    op(`fmadd.${t}`, (2 << 27) | (fmt << 25) | (2 << 20) | (1 << 15) | (3 << 7) | 0x43, single);
  }
  for (const rm of [0, 1, 7]) op(`fcvt.s.d rm${rm}`, r(0x53, 3, rm, 1, 1, 0x20), false);
  op('fcvt.d.s', r(0x53, 3, 0, 1, 0, 0x21), true);

  // the program: x15 input, x19 output, x16 count (set by the host); per instruction a loop, then ecall
  const w: number[] = [(2 << 12) | (6 << 7) | 0x37, 0x10032073, (2 << 12) | (14 << 7) | 0x37, i(0x73, 0, 5, 0, 0x002)]; // FS on; x14 = FS's low bit; frm (patched)
  for (const { word } of ops) {
    w.push(i(0x13, 9, 0, 15, 0), i(0x13, 12, 0, 19, 0), i(0x13, 8, 0, 16, 0)); // x9 = input, x12 = output, x8 = count
    const loop = w.length;
    w.push(i(0x73, 0, 5, 0, 0x001)); // csrwi fflags, 0
    w.push(i(0x07, 1, 3, 9, 0), i(0x07, 2, 3, 9, 8), i(0x03, 11, 3, 9, 16)); // fld f1; fld f2; ld x11
    w.push(i(0x73, 0, 3, 14, 0x100)); // csrc sstatus, x14: FS Dirty -> Clean
    w.push(word);
    w.push((s(3, 12, 3, 0) & ~0x7f) | 0x27, s(3, 12, 10, 8)); // fsd f3, 0(x12); sd x10, 8(x12)
    w.push(i(0x73, 13, 2, 0, 0x003), s(3, 12, 13, 16), i(0x73, 13, 2, 0, 0x100), s(3, 12, 13, 24)); // fcsr, sstatus
    w.push(i(0x13, 9, 0, 9, 24), i(0x13, 12, 0, 12, 32), i(0x13, 8, 0, 8, -1));
    w.push(b(1, 8, 0, (loop - w.length) * 4));
    w.push(ECALL);
  }
  const image = new Uint8Array(w.length * 4);
  w.forEach((x, k) => new DataView(image.buffer).setUint32(k * 4, x >>> 0, true));

  const inputs = (vals: bigint[]) => {
    const n = vals.length * vals.length;
    const d = new DataView(new ArrayBuffer(n * 24));
    for (let k = 0; k < n; k++) {
      d.setBigUint64(k * 24, vals[Math.floor(k / vals.length)], true);
      d.setBigUint64(k * 24 + 8, vals[k % vals.length], true);
      d.setBigUint64(k * 24 + 16, BigInt.asUintN(64, INTS[k % INTS.length]), true);
    }
    return { bytes: new Uint8Array(d.buffer), n };
  };
  const inD = inputs(doubles), inS = inputs(singles);
  const outBytes = Math.max(inD.n, inS.n) * 32;
  for (const frm of [0, 1]) {
    const word3 = i(0x73, 0, 5, frm, 0x002);
    new DataView(image.buffer).setUint32(12, word3, true);
    const harts = await Promise.all((['interp', 'jit'] as const).map(async (engine) => {
      const memory = createGuestMemory(RAM_BYTES);
      const mem = new Uint8Array(memory.buffer);
      mem.set(image, RAM_OFFSET);
      const host: HartHost = { mmioRead: () => undefined, mmioWrite: () => false, nowTicks: () => 0 };
      const hart = await Hart.create(loadEngineModule(), memory, 0, RAM_BYTES, host, { engine, jit: { hotThreshold: 1, batchBlocks: 1 } });
      hart.reset(BigInt(RAM_BASE), 0n);
      hart.setX(15, BigInt(INPUT));
      hart.setX(19, BigInt(OUTPUT));
      return { hart, mem };
    }));
    for (const { name, single } of ops) {
      const input = single ? inS : inD;
      const out: string[] = [];
      for (const { hart, mem } of harts) {
        mem.set(input.bytes, RAM_OFFSET + (INPUT - RAM_BASE));
        mem.fill(0, RAM_OFFSET + (OUTPUT - RAM_BASE), RAM_OFFSET + (OUTPUT - RAM_BASE) + outBytes);
        hart.setX(16, BigInt(input.n));
        toCheckpoint(hart, 997, `${name}, frm ${frm}`);
        hart.skipEcall();
        out.push(Buffer.from(mem.subarray(RAM_OFFSET + (OUTPUT - RAM_BASE), RAM_OFFSET + (OUTPUT - RAM_BASE) + input.n * 32)).toString('hex'));
      }
      if (out[0] !== out[1]) {
        const k = [...out[0]].findIndex((ch, q) => ch !== out[1][q]) >> 6;
        assert.fail(`${name}, frm ${frm}: input ${k} (${Buffer.from(input.bytes.subarray(k * 24, k * 24 + 24)).toString('hex')}): ` +
          `interp ${out[0].slice(k * 64, k * 64 + 64)}, jit ${out[1].slice(k * 64, k * 64 + 64)}`);
      }
    }
    assert.ok(harts[1].hart.jitStats!.retired > 1_000_000, 'the loops ran translated');
  }
});
