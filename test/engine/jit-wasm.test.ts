// The JIT's WebAssembly writer (src/engine/jit/wasm.ts): integer encodings against the
// binary format's examples and edge values, and modules that V8 validates and runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bytes, Code, ModuleBuilder, Op, ValType } from '../../src/engine/jit/wasm.js';

const hex = (b: Bytes) => Array.from(b.toBytes(), (x) => x.toString(16).padStart(2, '0')).join(' ');

test('jit wasm: LEB128 encodings (spec 5.2.2)', () => {
  assert.equal(hex(new Bytes().u32(0)), '00');
  assert.equal(hex(new Bytes().u32(127)), '7f');
  assert.equal(hex(new Bytes().u32(128)), '80 01');
  assert.equal(hex(new Bytes().u32(624485)), 'e5 8e 26');
  assert.equal(hex(new Bytes().u32(0xffffffff)), 'ff ff ff ff 0f');
  assert.equal(hex(new Bytes().s32(-1)), '7f');
  assert.equal(hex(new Bytes().s32(63)), '3f');
  assert.equal(hex(new Bytes().s32(64)), 'c0 00');
  assert.equal(hex(new Bytes().s32(-64)), '40');
  assert.equal(hex(new Bytes().s32(-65)), 'bf 7f');
  assert.equal(hex(new Bytes().s32(-123456)), 'c0 bb 78');
  assert.equal(hex(new Bytes().s32(-0x80000000)), '80 80 80 80 78');
  assert.equal(hex(new Bytes().s64(-0x8000000000000000n)), '80 80 80 80 80 80 80 80 80 7f');
  assert.equal(hex(new Bytes().s64(0x7fffffffffffffffn)), 'ff ff ff ff ff ff ff ff ff 00');
  assert.equal(hex(new Bytes().s64(0xffffffffffffffffn)), '7f'); // taken as -1
  // safe integers as numbers encode as the same bigints do
  for (const v of [0, 1, -1, 63, 64, -64, -65, 127, 128, -123456, 0x7fffffff, -0x80000000, 0xfffff000 | 0, -0x100000000, 2 ** 40 + 5, -(2 ** 52), Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]) {
    assert.equal(hex(new Bytes().s64(v)), hex(new Bytes().s64(BigInt(v))), `s64(${v})`);
  }
  assert.throws(() => new Bytes().s64(2 ** 60), /not a safe integer/);
});

test('jit wasm: a module with imports, locals, loops, tail calls and exports runs', () => {
  const m = new ModuleBuilder();
  const twice = m.importFunction('env', 'twice', [ValType.I64], [ValType.I64]);
  const g = m.importGlobal('env', 'g', ValType.I64, true);
  m.importMemory('env', 'memory', 1, 1, true);
  // sum(n): 1 + 2 + ... + n in a loop, through a local
  const sum = m.declareFunction([ValType.I32], [ValType.I64]);
  const c = new Code([ValType.I32]);
  const acc = c.local(ValType.I64);
  c.begin(Op.Block).begin(Op.Loop);
  c.get(0).op(Op.I32Eqz).brIf(1);
  c.get(acc).get(0).op(Op.I64ExtendI32U).op(Op.I64Add).set(acc);
  c.get(0).i32Const(1).op(Op.I32Sub).set(0).br(0);
  c.end().end();
  c.get(acc);
  m.setBody(sum, c);
  // store(x): memory[8] = twice(x); g = x; tail-calls sum(4)
  const st = m.declareFunction([ValType.I64], [ValType.I64]);
  const d = new Code([ValType.I64]);
  d.i32Const(8).get(0).call(twice).mem(Op.I64Store, 0, 3);
  d.get(0).globalSet(g);
  d.i32Const(4).returnCall(sum);
  m.setBody(st, d);
  m.exportFunction('sum', sum);
  m.exportFunction('store', st);
  const bytes = m.toBytes();
  assert.ok(WebAssembly.validate(bytes));
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const global = new (WebAssembly as unknown as { Global: new (d: object, v: bigint) => WebAssembly.Global }).Global({ value: 'i64', mutable: true }, 0n);
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { twice: (x: bigint) => x * 2n, g: global, memory } });
  const ex = inst.exports as { sum: (n: number) => bigint; store: (x: bigint) => bigint };
  assert.equal(ex.sum(100), 5050n);
  assert.equal(ex.store(21n), 10n);
  assert.equal(new BigInt64Array(memory.buffer)[1], 42n);
  assert.equal(global.value, 21n);
});

test('jit wasm: a declared function without a body is refused', () => {
  const m = new ModuleBuilder();
  m.declareFunction([], []);
  assert.throws(() => m.toBytes(), /has no body/);
});

/** The unsigned LEB128 at byte `p` of `bytes` (spec 5.2.2): [value, the byte after it]. */
function uleb(bytes: Uint8Array, p: number): [number, number] {
  let v = 0, s = 0, b: number;
  do { b = bytes[p++]; v += (b & 0x7f) * 2 ** s; s += 7; } while (b & 0x80);
  return [v, p];
}

/** The sections of a module: [id, payload start, payload end] (spec 5.5.2). */
function sections(bytes: Uint8Array): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  let p = 8;
  while (p < bytes.length) {
    const id = bytes[p++];
    const [len, start] = uleb(bytes, p);
    out.push([id, start, start + len]);
    p = start + len;
  }
  return out;
}

test('jit wasm: branch hints go in metadata.code.branch_hint, before the code, at the offsets of the hinted if and br_if', () => {
  const m = new ModuleBuilder();
  m.importFunction('env', 'f', [], []); // function index 0: the hints name defined function 1
  const fn = m.declareFunction([ValType.I32], [ValType.I32]);
  const c = new Code([ValType.I32]);
  c.local(ValType.I64);
  c.local(ValType.I32);
  c.begin(Op.Block);
  c.get(0).i32Const(5).op(Op.I32Eq).ifHinted(false).i32Const(7).op(Op.Return).end();
  c.get(0).i32Const(1).op(Op.I32Add).set(0);
  c.get(0).brIfHinted(0, true);
  c.end();
  c.get(0).i32Const(100).op(Op.I32Add);
  m.setBody(fn, c);
  m.exportFunction('f', fn);
  const bytes = m.toBytes();
  assert.ok(WebAssembly.validate(bytes));
  const secs = sections(bytes);
  const hintSec = secs.findIndex(([id]) => id === 0);
  const codeSec = secs.findIndex(([id]) => id === 10);
  assert.ok(hintSec >= 0 && hintSec < codeSec, 'the hint section comes before the code section');
  // the custom section: name, then one function with two hints of size 1
  let p = secs[hintSec][1];
  const name = new TextDecoder().decode(bytes.subarray(p + 1, p + 1 + bytes[p]));
  assert.equal(name, 'metadata.code.branch_hint');
  p += 1 + bytes[p];
  assert.deepEqual(Array.from(bytes.subarray(p, p + 3)), [1, 1, 2]); // one function, index 1, two hints
  const h1 = [bytes[p + 3], bytes[p + 4], bytes[p + 5]];
  const h2 = [bytes[p + 6], bytes[p + 7], bytes[p + 8]];
  assert.deepEqual([h1[1], h1[2], h2[1], h2[2]], [1, 0, 1, 1]); // size 1, not likely; size 1, likely
  // offsets from the body's start (its local declarations) land on the if (0x04) and br_if (0x0d)
  const [, codeStart] = secs[codeSec];
  const bodyStart = codeStart + 2; // one body (count 1), its size in one byte
  assert.equal(bytes[codeStart], 1);
  assert.equal(bytes[bodyStart + h1[0]], Op.If);
  assert.equal(bytes[bodyStart + h2[0]], Op.BrIf);
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { f: () => {} } });
  const f = inst.exports.f as (x: number) => number;
  assert.equal(f(5), 7);
  assert.equal(f(0), 101);
  assert.equal(f(-1), 100);
});

test('jit: a module imports one engine function, chain; it calls the others through envTable', async () => {
  const { translateModule, ENV_TABLE_FUNCTIONS } = await import('../../src/engine/jit/translate.js');
  const layout = { rvcTable: 0x30_0000, tlbTableBytes: 128 * 32, xBase: 0x10_0000 };
  const block = (host: number, insns: number[]) => ({
    host, end: 4 * insns.length, jumps: false, stopsBefore: true, insns: insns.map((insn, k) => ({ off: 4 * k, insn, len: 4 })),
  });
  const LD = 0x00053503; // ld a0, 0(a0): loadSlow when the TLB misses
  const SD = 0x00b53023; // sd a1, 0(a0): storeSlow
  const CSRR = 0x100025f3; // csrr a1, sstatus: jitCsr
  const AMOADD = 0x00b5362f; // amoadd.d a2, a1, (a0): jitAmo
  const FMADD = 0x0220f043; // fmadd.d f0, f1, f2, f0: jitFp
  const bytes = translateModule([block(0x500_0000, [LD, SD, CSRR, AMOADD, FMADD])], layout, [0x500_0100]);
  // WebAssembly.Module.imports (JS API 4.2.3), which this project's WebAssembly types leave out
  type ImportDescriptor = { module: string; name: string; kind: string };
  const imports = (WebAssembly.Module as unknown as { imports(m: WebAssembly.Module): ImportDescriptor[] }).imports(new WebAssembly.Module(bytes));
  assert.deepEqual(imports.filter((i) => i.kind === 'function').map((i) => `${i.module}.${i.name}`), ['env.chain', 'link.l0']);
  assert.deepEqual(imports.filter((i) => i.kind === 'table').map((i) => `${i.module}.${i.name}`), ['env.envTable']);
  assert.deepEqual(ENV_TABLE_FUNCTIONS, ['loadSlow', 'storeSlow', 'jitFp', 'jitAmo', 'jitCsr', 'chainStatic', 'jitStep']);
});

test('jit: blocks packed for the compiler thread unpack to the same blocks', async () => {
  const { packBlocks, unpackBlocks } = await import('../../src/engine/jit/block.js');
  const blocks = [
    { host: 0x8000_0ffe, end: 10, jumps: true, stopsBefore: false, insns: [{ off: 0, insn: 0xfee798e3, len: 4 }, { off: 4, insn: 0x00008067, len: 2 }, { off: 6, insn: 0x80000013, len: 4 }] },
    { host: 0x500_0000, end: 4, jumps: false, stopsBefore: true, insns: [{ off: 0, insn: 0x00178793, len: 4 }] },
    { host: 0xfffff000, end: 2, jumps: false, stopsBefore: false, insns: [{ off: 0, insn: 0xffffffff, len: 2 }] },
  ];
  assert.deepEqual(unpackBlocks(packBlocks(blocks)), blocks);
  assert.deepEqual(unpackBlocks(packBlocks([])), []);
});

/** The number of functions a module's function section declares (binary format 5.5.6), or 0 without one. */
function definedFunctions(bytes: Uint8Array): number {
  const s = sections(bytes).find(([id]) => id === 3);
  return s ? uleb(bytes, s[1])[0] : 0;
}

test('jit: a module defines its blocks and only the helpers they call, each once', async () => {
  const { translateModule } = await import('../../src/engine/jit/translate.js');
  const layout = { rvcTable: 0x30_0000, tlbTableBytes: 128 * 32, xBase: 0x10_0000 };
  const block = (host: number, insns: number[]) => ({
    host, end: 4 * insns.length, jumps: false, stopsBefore: true, insns: insns.map((insn, k) => ({ off: 4 * k, insn, len: 4 })),
  });
  const ADDI = 0x00150513; // addi a0, a0, 1
  const MULH = 0x02b51533; // mulh a0, a0, a1 (its helper calls mulhu's)
  const DIVW = 0x02b5453b; // divw a0, a0, a1
  const LD = 0x00053503; // ld a0, 0(a0): a TLB probe out of line when way 0 misses
  const defined = (...blocks: Array<ReturnType<typeof block>>) => {
    const bytes = translateModule(blocks, layout);
    assert.ok(WebAssembly.validate(bytes));
    return definedFunctions(bytes);
  };
  assert.equal(defined(block(0x500_0000, [ADDI])), 1);
  assert.equal(defined(block(0x500_0000, [MULH])), 3);
  assert.equal(defined(block(0x500_0000, [LD, ADDI]), block(0x500_0100, [DIVW, LD, MULH, MULH])), 2 + 4);
});
