// ISA tests: the assembly programs in test/engine/isa/*.S run on the engine
// (build/engine.wasm) in S-mode from guest RAM 0x80000000, each checking its own
// results and reporting through a test device at 0x100000 (QEMU virt syscon:
// 0x5555 = pass, 0x3333 | (sub-test << 16) = fail). See test/engine/isa/test.h.
//
// The programs are assembled with Debian's riscv64-linux-gnu-gcc (package
// gcc-riscv64-linux-gnu) into build/isa/<name>.bin, rebuilt when a source is newer.
// Run alone with `node --test dist/test/engine/isa.test.js`; ISA_ONLY=name runs one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hart, HartExit, createGuestMemory, SIP_SEIP, ENGINE_KINDS, type EngineKind, type HartHost } from '../../src/engine/hart.js';
import { RAM_OFFSET } from '../../src/engine/layout.js';
import { loadEngineModule } from '../../src/engine/node/module.js';

/** Repository root (the directory holding package.json and src/engine/as). */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'src/engine/as'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
  return dir;
}

const ROOT = findRoot();
const SRC_DIR = join(ROOT, 'test/engine/isa');
const OUT_DIR = join(ROOT, 'build/isa');
const CC = 'riscv64-linux-gnu-gcc';
const OBJCOPY = 'riscv64-linux-gnu-objcopy';
const CFLAGS = [
  '-nostdlib', '-nostartfiles', '-fno-pic', '-mcmodel=medany', '-march=rv64gc', '-mabi=lp64d', '-static',
  '-Wl,--build-id=none', '-Wl,--no-warn-rwx-segments',
];
/** Guest RAM given to each test program. */
const RAM_BYTES = 8 << 20;
/** Guest physical address of the test device (QEMU virt syscon). */
const TESTDEV = 0x10_0000;
/** Instructions per run() call, and the total budget of one program. */
const CHUNK = 100_000;
const MAX_INSNS = 5_000_000;
const JIT_CHUNK = 500;
/** a7 of the test-only SBI extension served by this harness ("TEST"). */
const SBI_EXT_TEST = 0x54455354n;

let toolchainChecked = false;

/** Fail with a clear message when the cross toolchain is not installed. */
function requireToolchain(): void {
  if (toolchainChecked) return;
  try {
    execFileSync(CC, ['--version'], { stdio: 'ignore' });
    execFileSync(OBJCOPY, ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`${CC} not found: the ISA tests need Debian's gcc-riscv64-linux-gnu and binutils-riscv64-linux-gnu ` +
      '(apt-get install gcc-riscv64-linux-gnu)');
  }
  toolchainChecked = true;
}

/**
 * Assemble test/engine/isa/<name>.S into build/isa/<name>.bin (flat image for 0x80000000)
 * unless the cached binary is newer than the source, test.h and link.ld. Returns its path.
 */
function buildProgram(name: string): string {
  const src = join(SRC_DIR, `${name}.S`);
  const elf = join(OUT_DIR, `${name}.elf`);
  const bin = join(OUT_DIR, `${name}.bin`);
  const built = existsSync(bin) ? statSync(bin).mtimeMs : 0;
  const inputs = [src, join(SRC_DIR, 'test.h'), join(SRC_DIR, 'link.ld')];
  if (inputs.every((f) => statSync(f).mtimeMs <= built)) return bin;
  requireToolchain();
  mkdirSync(OUT_DIR, { recursive: true });
  try {
    execFileSync(CC, [...CFLAGS, '-I', SRC_DIR, '-T', join(SRC_DIR, 'link.ld'), '-o', elf, src], { stdio: 'pipe' });
    execFileSync(OBJCOPY, ['-O', 'binary', elf, bin], { stdio: 'pipe' });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`assembling ${name}.S failed:\n${err.stderr?.toString() || err.message}`);
  }
  return bin;
}

/** Outcome of one program: the value written to the test device, or why there was none. */
interface Outcome {
  /** First 32-bit value written to TESTDEV, if any. */
  result?: number;
  /** Set when the program stopped without reporting. */
  error?: string;
  hart: Hart;
}

/**
 * Run the flat binary `image` at 0x80000000 until it writes the test device,
 * with a virtual clock: `time` advances by one tick per read, and a WFI with a
 * timer armed jumps the clock to `stimecmp` (as a parked hart would be woken).
 * Serves the test SBI extension: a6 = 0 returns a0 + 1, a6 = 1 sets sip.SEIP to a0 != 0.
 */
async function runProgram(image: Uint8Array, engine: EngineKind): Promise<Outcome> {
  const memory = createGuestMemory(RAM_BYTES);
  new Uint8Array(memory.buffer, RAM_OFFSET, image.length).set(image);
  let result: number | undefined;
  let now = 0;
  const host: HartHost = {
    mmioRead: (pa) => (pa >= TESTDEV && pa < TESTDEV + 0x1000 ? 0 : undefined),
    mmioWrite: (pa, size, value) => {
      if (pa < TESTDEV || pa >= TESTDEV + 0x1000) return false;
      if (pa === TESTDEV && size === 4 && result === undefined) result = value >>> 0;
      return true;
    },
    nowTicks: () => ++now,
  };
  // under the JIT every block start is translated the first time it is jumped to
  const hart = await Hart.create(loadEngineModule(), memory, 0, RAM_BYTES, host, { engine, jit: { hotThreshold: 1, batchBlocks: 1 } });
  hart.reset(0x8000_0000n, 0n);
  let executed = 0;
  while (result === undefined) {
    if (executed >= MAX_INSNS) return { hart, error: `no result after ${MAX_INSNS} instructions` };
    // under the JIT, short chunks: translations made after one chunk run in the next
    const chunk = engine === 'jit' ? JIT_CHUNK : CHUNK;
    const exit = hart.run(chunk);
    executed += chunk; // an upper bound: run() may return early
    if (result !== undefined) break;
    if (exit === HartExit.Sbi) {
      if (hart.getX(17) !== SBI_EXT_TEST) return { hart, error: `unexpected SBI call a7=0x${hart.getX(17).toString(16)}` };
      const a0 = hart.getX(10);
      const op = hart.getX(16);
      if (op === 0n) hart.setX(10, a0 + 1n);
      else if (op === 1n) hart.setPending(SIP_SEIP, a0 !== 0n);
      else return { hart, error: `unknown test SBI op ${op}` };
      hart.skipEcall();
    } else if (exit === HartExit.Wfi) {
      const cmp = hart.timecmp;
      if (cmp === 0xffff_ffff_ffff_ffffn) return { hart, error: 'WFI with no interrupt that could wake the hart' };
      if (BigInt(now) < cmp) now = Number(cmp);
    } else if (exit === HartExit.Halt) {
      return { hart, error: 'unexpected Halt' };
    }
  }
  return { hart, result };
}

/** Describe the hart state for a failure message. */
function describe(hart: Hart): string {
  const h = (v: bigint): string => `0x${v.toString(16)}`;
  return `pc=${h(hart.pc)} priv=${hart.priv} scause=${h(hart.readCsr(0x142))} sepc=${h(hart.readCsr(0x141))} ` +
    `stval=${h(hart.readCsr(0x143))} gp=${hart.getX(3)} a0=${h(hart.getX(10))} a1=${h(hart.getX(11))} t6=${h(hart.getX(31))}`;
}

const only = process.env.ISA_ONLY;
const programs = readdirSync(SRC_DIR).filter((f) => f.endsWith('.S')).map((f) => f.slice(0, -2))
  .filter((n) => !only || n === only).sort();

for (const engine of ENGINE_KINDS) for (const name of programs) {
  test(`isa (${engine}): ${name}`, async () => {
    const bin = buildProgram(name);
    const { result, error, hart } = await runProgram(readFileSync(bin), engine);
    const where = `(${describe(hart)}; disassemble build/isa/${name}.elf)`;
    if (error) assert.fail(`${name}: ${error} ${where}`);
    if (result !== 0x5555) {
      const sub = (result! & 0xffff) === 0x3333 ? `sub-test ${result! >>> 16} failed` : `test device got 0x${result!.toString(16)}`;
      assert.fail(`${name}: ${sub} ${where}`);
    }
  });
}
