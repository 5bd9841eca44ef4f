// FPU (src/engine/as/fpu.ts) against reference vectors produced by real RV64 F/D
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
const SOURCES = [join(ROOT, "src/engine/as/fpu.ts"), HARNESS];
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
  t.diagnostic(`fpu vectors: ${total - failed} passed, ${failed} failed`);
  if (!process.env.FPU_VECTORS) assert.equal(sections.length, Object.keys(OPS).length, "every operation has vectors");
});
