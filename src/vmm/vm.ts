/**
 * One running VM: builds the board from a configuration and runs its harts.
 *
 * This first version runs the (single) hart on the VM process's main thread
 * in slices, returning to the event loop between slices so that console
 * input and signals are served; WFI sleeps until the next timer deadline or
 * until input arrives, so an idle VM costs (almost) nothing.
 */
import { Board, type BoardConfig, HartExit } from '../machine/board.js';
import type { PowerEvent } from '../devices/syscon.js';
import { TIMEBASE_HZ } from '../engine/layout.js';

/** Instructions per slice of `Hart.run()`. */
const SLICE = 200_000;
/** Longest time the VM runs without yielding to the event loop, in ms. */
const YIELD_MS = 20;

export interface VmOptions extends Omit<BoardConfig, 'onPower'> {}

export class Vm {
  readonly board: Board;
  private wakeup: (() => void) | null = null;
  private stopped = false;
  private constructor(board: Board) { this.board = board; }

  /** Build the VM (loads kernel, initrd, device tree). Throws BootError on bad input. */
  static async create(opts: VmOptions): Promise<Vm> {
    let vm: Vm | null = null;
    const board = await Board.create({ ...opts, onPower: () => vm?.kick() });
    vm = new Vm(board);
    return vm;
  }

  /** Wake the run loop early (console input arrived, power event). */
  kick(): void {
    const w = this.wakeup;
    this.wakeup = null;
    w?.();
  }

  /** Stop the VM from the host side (the run loop ends as if powered off). */
  stop(): void {
    this.stopped = true;
    for (const h of this.board.harts) h.requestExit();
    this.kick();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wakeup = null; resolve(); }, ms);
      this.wakeup = () => { clearTimeout(t); resolve(); };
    });
  }

  /** Run until the guest powers off or resets (or stop() is called). Returns the power event (null if stopped). */
  async run(): Promise<PowerEvent | null> {
    const board = this.board;
    const hart = board.harts[0];
    let lastYield = performance.now();
    const started = lastYield;
    const profile = typeof process !== 'undefined' ? process.env?.TSVISOR_PROFILE : undefined;
    const samples = new Map<bigint, number>();
    while (!board.powerEvent && !this.stopped) {
      const r = hart.run(profile ? 997 : SLICE);
      if (profile) samples.set(hart.pc, (samples.get(hart.pc) ?? 0) + 1);
      if (r === HartExit.Sbi) {
        board.sbiCall(hart);
        continue;
      }
      board.pollDevices();
      if (r === HartExit.Wfi) {
        if (hart.interruptPending()) continue;
        const now = board.nowTicks();
        const cmp = hart.timecmp;
        let waitMs = 100;
        if (cmp !== 0xffff_ffff_ffff_ffffn) waitMs = Math.min(waitMs, (Number(cmp) - now) / (TIMEBASE_HZ / 1000));
        if (waitMs > 0.05) await this.sleep(Math.max(0, Math.floor(waitMs)));
        lastYield = performance.now();
        continue;
      }
      const t = performance.now();
      if (t - lastYield > YIELD_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
    board.flushDisks();
    if (profile) {
      const { writeFileSync } = await import('node:fs');
      writeFileSync(profile, [...samples].map(([pc, n]) => `${pc.toString(16)} ${n}`).join('\n') + '\n');
    }
    if (typeof process !== 'undefined' && process.env?.TSVISOR_STATS) {
      const secs = (performance.now() - started) / 1000;
      const n = Number(hart.instret);
      process.stderr.write(`tsvisor: ${n} instructions in ${secs.toFixed(2)} s (${(n / secs / 1e6).toFixed(1)} MIPS)\n`);
    }
    return board.powerEvent;
  }
}
