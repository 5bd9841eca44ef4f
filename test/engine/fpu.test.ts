// FPU (src/engine/as/fpu.ts, fp64.ts, fp-common.ts) against reference vectors produced by real RV64 F/D
// instructions (test/engine/vectors/gen/fpgen.c run under qemu-riscv64): every result
// and every fflags value must match bit for bit, in all five rounding modes.
//
// Runs under `npm test`, or alone with `node dist/test/engine/fpu.test.js`. It builds
// build/fpu-harness.wasm with asc when the wasm is missing or older than its sources.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) || !existsSync(join(dir, "src/engine/as"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("repository root not found");
    dir = up;
  }
  return dir;
}

const ROOT = findRoot();
const WASM = join(ROOT, "build/fpu-harness.wasm");
const HARNESS = join(ROOT, "test/engine/fpu-harness.as");
const SOURCES = [...["fpu.ts", "fp64.ts", "fp-common.ts"].map((f) => join(ROOT, "src/engine/as", f)), HARNESS];
// FPU_VECTORS=file.bin[.gz] runs another vector file (e.g. a large soak made with `fpgen SEED SCALE`)
const VECTORS = process.env.FPU_VECTORS ?? join(ROOT, "test/engine/vectors/fpu-vectors.bin.gz");

/**
 * Compile the harness (fpu.ts included) unless an up-to-date build exists. The harness
 * source is kept as .as so that tsc does not compile it; asc gets a .ts copy in build/.
 */
function buildHarness(): void {
  const built = existsSync(WASM) ? statSync(WASM).mtimeMs : 0;
  if (SOURCES.every((s) => statSync(s).mtimeMs <= built)) return;
  mkdirSync(join(ROOT, "build"), { recursive: true });
  copyFileSync(HARNESS, join(ROOT, "build/fpu-harness.ts"));
  const asc = join(ROOT, "node_modules/assemblyscript/bin/asc.js");
  execFileSync(process.execPath, [asc, "build/fpu-harness.ts", "--config", "test/engine/fpu-asconfig.json", "-o", "build/fpu-harness.wasm"], {
    cwd: ROOT,
    stdio: "inherit",
  });
}

interface Harness {
  memory: WebAssembly.Memory;
  reserve(bytes: number): number;
  run(op: number, modes: number, n: number, inp: number, out: number): void;
}

function loadHarness(): Harness {
  buildHarness();
  const mod = new WebAssembly.Module(readFileSync(WASM));
  const inst = new WebAssembly.Instance(mod, {
    env: {
      abort: () => {
        throw new Error("abort in fpu harness");
      },
    },
  });
  return inst.exports as unknown as Harness;
}

// Mirrors the OPS table of fpgen.c: id -> [name, arity, input width, output width].
const OPS: Record<number, [string, number, number, number]> = {
  0: ["f32_add", 2, 4, 4], 1: ["f32_sub", 2, 4, 4], 2: ["f32_mul", 2, 4, 4], 3: ["f32_div", 2, 4, 4],
  4: ["f32_sqrt", 1, 4, 4], 5: ["f32_fma", 3, 4, 4], 6: ["f32_min", 2, 4, 4], 7: ["f32_max", 2, 4, 4],
  8: ["f32_eq", 2, 4, 1], 9: ["f32_lt", 2, 4, 1], 10: ["f32_le", 2, 4, 1], 11: ["f32_classify", 1, 4, 2],
  12: ["f32_to_i32", 1, 4, 8], 13: ["f32_to_u32", 1, 4, 8], 14: ["f32_to_i64", 1, 4, 8], 15: ["f32_to_u64", 1, 4, 8],
  16: ["i32_to_f32", 1, 4, 4], 17: ["u32_to_f32", 1, 4, 4], 18: ["i64_to_f32", 1, 8, 4], 19: ["u64_to_f32", 1, 8, 4],
  20: ["f32_to_f64", 1, 4, 8], 21: ["f64_to_f32", 1, 8, 4],
  32: ["f64_add", 2, 8, 8], 33: ["f64_sub", 2, 8, 8], 34: ["f64_mul", 2, 8, 8], 35: ["f64_div", 2, 8, 8],
  36: ["f64_sqrt", 1, 8, 8], 37: ["f64_fma", 3, 8, 8], 38: ["f64_min", 2, 8, 8], 39: ["f64_max", 2, 8, 8],
  40: ["f64_eq", 2, 8, 1], 41: ["f64_lt", 2, 8, 1], 42: ["f64_le", 2, 8, 1], 43: ["f64_classify", 1, 8, 2],
  44: ["f64_to_i32", 1, 8, 8], 45: ["f64_to_u32", 1, 8, 8], 46: ["f64_to_i64", 1, 8, 8], 47: ["f64_to_u64", 1, 8, 8],
  48: ["i32_to_f64", 1, 4, 8], 49: ["u32_to_f64", 1, 4, 8], 50: ["i64_to_f64", 1, 8, 8], 51: ["u64_to_f64", 1, 8, 8],
};
const MODES = ["RNE", "RTZ", "RDN", "RUP", "RMM"];

interface Section {
  op: number;
  modes: number;
  n: number;
  inputs: BigUint64Array; // n * 3 operands, zero-extended
  expected: BigUint64Array; // n * modes results
  flags: Uint8Array; // n * modes
}

function readUint(buf: Buffer, off: number, w: number): bigint {
  if (w === 8) return buf.readBigUInt64LE(off);
  if (w === 4) return BigInt(buf.readUInt32LE(off));
  if (w === 2) return BigInt(buf.readUInt16LE(off));
  return BigInt(buf[off]);
}

function parseVectors(): Section[] {
  const raw = readFileSync(VECTORS);
  const buf = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
  assert.equal(buf.toString("latin1", 0, 4), "FPV1");
  const sections: Section[] = [];
  let off = 4;
  while (buf[off] !== 0xff) {
    const op = buf[off], modes = buf[off + 1], n = buf.readUInt32LE(off + 2);
    off += 6;
    const spec = OPS[op];
    if (!spec) throw new Error(`unknown op ${op} in vectors`);
    const [, arity, inW, outW] = spec;
    const inputs = new BigUint64Array(n * 3), expected = new BigUint64Array(n * modes), flags = new Uint8Array(n * modes);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < arity; j++, off += inW) inputs[i * 3 + j] = readUint(buf, off, inW);
      for (let m = 0; m < modes; m++) {
        expected[i * modes + m] = readUint(buf, off, outW);
        flags[i * modes + m] = buf[off + outW];
        off += outW + 1;
      }
    }
    sections.push({ op, modes, n, inputs, expected, flags });
  }
  return sections;
}

const hex = (v: bigint, w: number) => "0x" + v.toString(16).padStart(w * 2, "0");

test("fpu: every reference vector, results and fflags bit-exact", async (t) => {
  const h = loadHarness();
  const sections = parseVectors();
  let total = 0, failed = 0;
  for (const s of sections) {
    const [name, arity, inW, outW] = OPS[s.op];
    await t.test(name, () => {
      const inp = h.reserve(s.n * 24 + s.n * s.modes * 16);
      const out = inp + s.n * 24;
      new BigUint64Array(h.memory.buffer, inp, s.n * 3).set(s.inputs);
      h.run(s.op, s.modes, s.n, inp, out);
      const res = new BigUint64Array(h.memory.buffer, out, s.n * s.modes * 2);
      const mask = outW === 8 ? 0xffffffffffffffffn : (1n << BigInt(outW * 8)) - 1n;
      const bad: string[] = [];
      for (let i = 0; i < s.n * s.modes; i++) {
        const got = res[2 * i] & mask, gotFl = Number(res[2 * i + 1]);
        if (got === s.expected[i] && gotFl === s.flags[i]) continue;
        if (bad.length < 12) {
          const c = Math.floor(i / s.modes);
          const ins = Array.from({ length: arity }, (_, j) => hex(s.inputs[c * 3 + j], inW)).join(", ");
          const mode = s.modes === 5 ? ` ${MODES[i % 5]}` : "";
          bad.push(`${name}(${ins})${mode}: want ${hex(s.expected[i], outW)} fl=${s.flags[i]}, got ${hex(got, outW)} fl=${gotFl}`);
        } else bad.length++;
      }
      total += s.n * s.modes;
      failed += bad.length;
      t.diagnostic(`${name}: ${s.n * s.modes - bad.length}/${s.n * s.modes} (${s.n} inputs x ${s.modes} rounding mode${s.modes > 1 ? "s" : ""})`);
      assert.equal(bad.length, 0, `${bad.length} mismatches:\n` + bad.filter(Boolean).join("\n"));
    });
  }
  t.diagnostic(`all fpu vectors: ${total - failed} of ${total} cases agree`);
  if (!process.env.FPU_VECTORS) assert.equal(sections.length, Object.keys(OPS).length, "every operation has vectors");
});

// A few cases spelled out, as the spec states them (the vectors hold these too).
test("fpu: spec examples", () => {
  const h = loadHarness();
  const NV = 16, NX = 1, UF = 2, OF = 4, DZ = 8;
  const cases: [string, number, number, bigint[], bigint, number][] = [
    // [what, op, rm, operands, result, fflags]
    ["fmin.s(-0, +0) = -0", 6, 0, [0x80000000n, 0n], 0x80000000n, 0],
    ["fmax.d(-0, +0) = +0", 39, 0, [0x8000000000000000n, 0n], 0n, 0],
    ["fmin.s(sNaN, 1) = 1, NV", 6, 0, [0x7f800001n, 0x3f800000n], 0x3f800000n, NV],
    ["fmax.d(qNaN, qNaN) = canonical NaN", 39, 0, [0x7ff8000000000001n, 0xfff8000000000000n], 0x7ff8000000000000n, 0],
    ["fadd.s(inf, -inf) = canonical NaN, NV", 0, 0, [0x7f800000n, 0xff800000n], 0x7fc00000n, NV],
    ["fadd.d(1, -1) in RDN = -0", 32, 2, [0x3ff0000000000000n, 0xbff0000000000000n], 0x8000000000000000n, 0],
    ["fdiv.s(1, 0) = inf, DZ", 3, 0, [0x3f800000n, 0n], 0x7f800000n, DZ],
    ["fmul.d(max, 2) in RTZ = max, OF NX", 34, 1, [0x7fefffffffffffffn, 0x4000000000000000n], 0x7fefffffffffffffn, OF | NX],
    ["fmul.s(min normal, 0.5) = subnormal, exact, no UF", 2, 0, [0x00800000n, 0x3f000000n], 0x00400000n, 0],
    // tininess is judged after rounding to 24 bits with an unbounded exponent
    ["fmul.s(min normal, 1 - 2^-24): a tie that rounds to min normal, but tiny: UF NX", 2, 0, [0x00800000n, 0x3f7fffffn], 0x00800000n, UF | NX],
    ["fcvt.s.d(2^-126 (1 - 2^-25)) = min normal, not tiny after rounding: NX only", 21, 0, [0x380ffffff0000000n], 0x00800000n, NX],
    ["fcvt.s.d(2^-126 (1 - 2^-25)) in RTZ = max subnormal, UF NX", 21, 1, [0x380ffffff0000000n], 0x007fffffn, UF | NX],
    ["fmadd.s(0, inf, qNaN) = canonical NaN, NV", 5, 0, [0n, 0x7f800000n, 0x7fc00000n], 0x7fc00000n, NV],
    ["fmadd.d(1+2^-52, 1-2^-52, -1) = -2^-104 (one rounding)", 37, 0,
      [0x3ff0000000000001n, 0x3feffffffffffffen, 0xbff0000000000000n], 0xb970000000000000n, 0],
    ["fcvt.w.s(NaN) = 2^31-1, NV", 12, 0, [0x7fc00000n], 0x7fffffffn, NV],
    ["fcvt.wu.d(-1.5) in RTZ = 0, NV", 45, 1, [0xbff8000000000000n], 0n, NV],
    ["fcvt.wu.d(-0.5) in RTZ = 0, NX", 45, 1, [0xbfe0000000000000n], 0n, NX],
    ["fcvt.wu.s(2^32) = 0xffffffff sign-extended, NV", 13, 0, [0x4f800000n], 0xffffffffffffffffn, NV],
    ["fcvt.l.d(2.5) in RMM = 3, NX", 46, 4, [0x4004000000000000n], 3n, NX],
    ["fclass.d(sNaN) = bit 8", 43, 0, [0x7ff0000000000001n], 1n << 8n, 0],
    ["fcvt.d.s(sNaN) = canonical NaN, NV", 20, 0, [0x7f800001n], 0x7ff8000000000000n, NV],
  ];
  const inp = h.reserve(cases.length * (24 + 16 * 5));
  const out = inp + 24;
  for (const [what, op, rm, ops, want, wantFl] of cases) {
    const v = new BigUint64Array(h.memory.buffer, inp, 3);
    v.fill(0n);
    ops.forEach((x, i) => (v[i] = x));
    h.run(op, rm + 1, 1, inp, out); // modes 0..rm: the last pair is mode rm
    const r = new BigUint64Array(h.memory.buffer, out + rm * 16, 2);
    const width = OPS[op][3];
    const got = width === 8 ? r[0] : r[0] & ((1n << BigInt(width * 8)) - 1n);
    assert.equal(hex(got, width), hex(want, width), what);
    assert.equal(Number(r[1]), wantFl, `${what}: fflags`);
  }
});
