// Differential test of the JIT on a real workload: the default image's Linux kernel boots
// on two single-hart boards in this thread, one per engine, in lockstep. Time is virtual
// (10 ns per retired instruction, and a WFI jumps it to the next timer), so both boards see
// the same interrupts at the same instructions; after every slice of SLICE instructions the
// pc, privilege, instret and x registers must be equal, and at the end the console output
// and all of guest RAM. It covers at least MIN_INSNS instructions of the boot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ensureDefaultImage } from '../../src/images/index.js';
import { Board } from '../../src/machine/board.js';
import { handleSbiCall, SBI_ERR_NOT_SUPPORTED, type SbiPlatform } from '../../src/machine/sbi.js';
import { Hart, HartExit, SIP_SSIP, type EngineKind } from '../../src/engine/hart.js';
import { loadEngineModule } from '../../src/engine/node/module.js';

const RAM_BYTES = 256 * 1024 * 1024;
/** Instructions per run() call: the state is compared at each boundary. */
const SLICE = 10_000;
const MIN_INSNS = 100_000_000;
/** Virtual time per retired instruction, in ns. */
const NS_PER_INSN = 10;

interface Side {
  engine: EngineKind;
  hart: Hart;
  board: Board;
  platform: SbiPlatform;
  out: number[];
  /** Virtual time skipped by WFI, in ns. */
  idleNs: number;
  off: boolean;
}

async function makeSide(engine: EngineKind, kernel: Uint8Array, initrd: Uint8Array): Promise<Side> {
  const side = { engine, out: [] as number[], idleNs: 0, off: false } as Side;
  side.board = Board.create({
    ramBytes: RAM_BYTES, harts: 1, kernel, initrd, disks: [],
    bootargs: 'earlycon=sbi console=ttyS0 panic=-1 no4lvl cryptomgr.notests loglevel=7',
    console: { write: (b) => { for (const x of b) side.out.push(x); }, read: () => new Uint8Array(0), pending: () => 0 },
    clock: { nowNs: () => 1_767_225_600_000_000_000n },
    monotonicNs: () => (side.hart ? Number(side.hart.instret) * NS_PER_INSN : 0) + side.idleNs,
    onPower: () => { side.off = true; },
  });
  const b = side.board;
  side.hart = await Hart.create(loadEngineModule(), b.wasmMemory, 0, RAM_BYTES, {
    mmioRead: (pa, size) => b.mmioRead(pa, size),
    mmioWrite: (pa, size, value) => b.mmioWrite(pa, size, value),
    nowTicks: () => b.nowTicks(),
  }, { engine, jit: { hotThreshold: 20, batchBlocks: 16 } });
  side.platform = {
    memory: b.memory, hartCount: 1,
    setSoftwareInterrupt: (_id, level) => side.hart.setPending(SIP_SSIP, level),
    consoleWrite: (bytes) => { for (const x of bytes) side.out.push(x); return true; },
    consoleRead: () => -1,
    systemReset: () => { side.off = true; },
    hartStart: () => SBI_ERR_NOT_SUPPORTED,
    hartStop: () => SBI_ERR_NOT_SUPPORTED,
    hartStatus: (id) => (id === 0 ? 0 : -1),
    remoteFence: () => side.hart.flushTlb(),
  };
  side.hart.reset(BigInt(b.boot.entry), BigInt(b.boot.fdt));
  return side;
}

/** One slice; returns the exit reason. */
function slice(s: Side): HartExit {
  const r = s.hart.run(SLICE);
  if (r === HartExit.Sbi) handleSbiCall(s.hart, s.platform);
  else if (r === HartExit.Wfi && !s.hart.interruptPending()) {
    const cmp = s.hart.timecmp;
    if (cmp !== 0xffff_ffff_ffff_ffffn) {
      const ahead = (Number(cmp) - s.board.nowTicks()) * 100; // 10 MHz timebase: 100 ns a tick
      if (ahead > 0) s.idleNs += ahead;
    }
  }
  s.board.pollDevices();
  return r;
}

function state(s: Side): string {
  const h = s.hart;
  const x: string[] = [];
  for (let i = 1; i < 32; i++) x.push(h.getX(i).toString(16));
  return `pc ${h.pc.toString(16)} priv ${h.priv} instret ${h.instret} x ${x.join(' ')}`;
}

test(`jit: ${MIN_INSNS / 1e6}M instructions of a Linux boot match the interpreter at every ${SLICE}-instruction boundary`, async (t) => {
  const img = await ensureDefaultImage({ quiet: true });
  const kernel = readFileSync(img.kernel), initrd = readFileSync(img.initrd);
  const a = await makeSide('interp', kernel, initrd);
  const j = await makeSide('jit', kernel, initrd);
  // the same RAM to start with: the device tree's /chosen/rng-seed differs per board
  j.board.memory.bytes.set(a.board.memory.bytes);
  let slices = 0;
  while (a.hart.instret < BigInt(MIN_INSNS) && !a.off) {
    const ra = slice(a), rj = slice(j);
    slices++;
    assert.equal(rj, ra, `exit reason after slice ${slices} (${state(a)})`);
    assert.equal(state(j), state(a), `after slice ${slices}`);
  }
  assert.ok(a.hart.instret >= BigInt(MIN_INSNS), `the guest stopped after ${a.hart.instret} instructions`);
  const text = new TextDecoder().decode(Uint8Array.from(a.out));
  assert.match(text, /Linux version/, 'the kernel printed its banner');
  assert.equal(new TextDecoder().decode(Uint8Array.from(j.out)), text);
  const ram = (s: Side) => createHash('sha256').update(s.board.memory.bytes).digest('hex');
  assert.equal(ram(j), ram(a), 'guest RAM differs');
  const stats = j.hart.jitStats!;
  assert.ok(stats.retired > MIN_INSNS / 4, `only ${stats.retired} instructions ran translated`);
  t.diagnostic(`${slices} slices, ${a.hart.instret} instructions, ${stats.retired} of them translated in ${stats.blocks} blocks`);
});
