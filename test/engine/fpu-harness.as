// Test harness for src/engine/as/fpu.ts (AssemblyScript): runs a batch of vectors inside wasm.
// Not a .ts file so that tsc (tsconfig includes test/**/*.ts) leaves it alone: fpu.test.ts copies
// it to build/fpu-harness.ts and compiles that with asc into build/fpu-harness.wasm.
import * as fpu from "../src/engine/as/fpu"; // relative to build/

/** Make room for `bytes` bytes of vector data after the static data; returns its address. */
export function reserve(bytes: u32): usize {
  const base = (__heap_base + 15) & ~(<usize>15);
  const need = <i32>((base + <usize>bytes + 0xffff) >>> 16) - memory.size();
  if (need > 0) memory.grow(need);
  return base;
}

/** Current flags, then clear them (as the interpreter does after each instruction). */
function takeFlags(): u64 {
  const f = fpu.fpFlags;
  fpu.fpFlags = 0;
  return <u64>f;
}

function call(op: u32, a: u64, b: u64, c: u64, rm: u32): u64 {
  const a32 = <u32>a, b32 = <u32>b, c32 = <u32>c;
  switch (op) {
    case 0: return fpu.f32_add(a32, b32, rm);
    case 1: return fpu.f32_sub(a32, b32, rm);
    case 2: return fpu.f32_mul(a32, b32, rm);
    case 3: return fpu.f32_div(a32, b32, rm);
    case 4: return fpu.f32_sqrt(a32, rm);
    case 5: return fpu.f32_fma(a32, b32, c32, rm);
    case 6: return fpu.f32_min(a32, b32);
    case 7: return fpu.f32_max(a32, b32);
    case 8: return fpu.f32_eq(a32, b32);
    case 9: return fpu.f32_lt(a32, b32);
    case 10: return fpu.f32_le(a32, b32);
    case 11: return fpu.f32_classify(a32);
    case 12: return fpu.f32_to_i32(a32, rm);
    case 13: return fpu.f32_to_u32(a32, rm);
    case 14: return fpu.f32_to_i64(a32, rm);
    case 15: return fpu.f32_to_u64(a32, rm);
    case 16: return fpu.i32_to_f32(<i32>a32, rm);
    case 17: return fpu.u32_to_f32(a32, rm);
    case 18: return fpu.i64_to_f32(<i64>a, rm);
    case 19: return fpu.u64_to_f32(a, rm);
    case 20: return fpu.f32_to_f64(a32);
    case 21: return fpu.f64_to_f32(a, rm);
    case 32: return fpu.f64_add(a, b, rm);
    case 33: return fpu.f64_sub(a, b, rm);
    case 34: return fpu.f64_mul(a, b, rm);
    case 35: return fpu.f64_div(a, b, rm);
    case 36: return fpu.f64_sqrt(a, rm);
    case 37: return fpu.f64_fma(a, b, c, rm);
    case 38: return fpu.f64_min(a, b);
    case 39: return fpu.f64_max(a, b);
    case 40: return fpu.f64_eq(a, b);
    case 41: return fpu.f64_lt(a, b);
    case 42: return fpu.f64_le(a, b);
    case 43: return fpu.f64_classify(a);
    case 44: return fpu.f64_to_i32(a, rm);
    case 45: return fpu.f64_to_u32(a, rm);
    case 46: return fpu.f64_to_i64(a, rm);
    case 47: return fpu.f64_to_u64(a, rm);
    case 48: return fpu.i32_to_f64(<i32>a32, rm);
    case 49: return fpu.u32_to_f64(a32, rm);
    case 50: return fpu.i64_to_f64(<i64>a, rm);
    case 51: return fpu.u64_to_f64(a, rm);
  }
  unreachable();
  return 0;
}

/**
 * Run `n` cases of operation `op` in `modes` rounding modes (1: no rounding mode; 5: RNE..RMM).
 * Input: n records of three u64 operands at `inp`. Output: n * modes pairs (result, flags) of u64 at `out`.
 */
export function run(op: u32, modes: u32, n: u32, inp: usize, out: usize): void {
  fpu.fpFlags = 0;
  for (let i: u32 = 0; i < n; i++) {
    const p = inp + <usize>i * 24;
    const a = load<u64>(p), b = load<u64>(p, 8), c = load<u64>(p, 16);
    for (let m: u32 = 0; m < modes; m++) {
      const q = out + (<usize>(i * modes + m) << 4);
      store<u64>(q, call(op, a, b, c, m));
      store<u64>(q, takeFlags(), 8);
    }
  }
}

/** Repeat one operation `reps` times over the n cases (benchmark): returns a checksum. */
export function bench(op: u32, rm: u32, n: u32, inp: usize, reps: u32): u64 {
  let acc: u64 = 0;
  for (let r: u32 = 0; r < reps; r++) {
    for (let i: u32 = 0; i < n; i++) {
      const p = inp + <usize>i * 24;
      acc += call(op, load<u64>(p), load<u64>(p, 8), load<u64>(p, 16), rm);
    }
  }
  fpu.fpFlags = 0;
  return acc;
}
