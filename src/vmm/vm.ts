/**
 * One running VM: builds the board from a configuration and runs its harts,
 * one worker thread each, in parallel over the shared guest memory.
 *
 * The main thread owns the devices: it answers the harts' MMIO requests
 * (posted in the shared control block, see smp.ts) and does the host I/O.
 * Idle harts sleep in Atomics.wait, so an idle VM costs (almost) nothing.
 */
import { Worker } from 'node:worker_threads';
import { readHartSnapshot, type EngineKind } from '../engine/hart-state.js';
import { Board, type BoardConfig } from '../machine/board.js';
import type { PowerEvent } from '../devices/syscon.js';
import {
  SmpControl, W_DOORBELL, W_STOP, W_PAUSE, W_CONSOLE_INFLIGHT, H_MMIO, H_OP, H_ADDR, H_SIZE, H_VALUE, H_FAULT, H_HSM, H_PARKED, H_FLUSH,
  HSM_STARTED, HSM_STOPPED,
} from './smp.js';
import type { HartWorkerData, HartWorkerMessage } from './hart-worker.js';
import { startHart } from './hart-threads.js';
import { tuneMalloc } from './host-malloc.js';

/** Options of a VM: the board's configuration plus the compiled engine. */
export interface VmOptions extends Omit<BoardConfig, 'onPower' | 'monotonicNs'> {
  /** The compiled engine module (build/engine.wasm). */
  engine: WebAssembly.Module;
  /** How the harts run guest code (default 'jit'). */
  engineKind?: EngineKind;
  /**
   * At the end, print to stderr the instructions retired and the rate, and per hart the
   * JIT's figures (also with the environment variable TSVISOR_STATS=1).
   */
  stats?: boolean;
}

/** Longest sleep of the MMIO loop between doorbells (a safety net; harts ring when they post), in ms. */
const DOORBELL_WAIT_MS = 1000;
/** Longest setTimeout delay Node accepts (2^31 - 1 ms); later alarms are re-armed when it fires. */
const MAX_TIMER_MS = 0x7fffffff;

export class Vm {
  readonly board: Board;
  private readonly opts: VmOptions;
  private readonly ctl: SmpControl;
  private readonly t0Ms: number;
  private workers: Worker[] = [];
  private stopped = false;
  private fatal: string | null = null;
  /** Host time (performance.now()) when every hart had parked for a pause; null when not paused. */
  private pausedAt: number | null = null;
  /** The pause in progress or done (resume() waits for it). */
  private pausing: Promise<void> | null = null;
  /** Instructions retired per hart, filled in when the harts exit. */
  readonly instret: bigint[] = [];

  private constructor(board: Board, opts: VmOptions, t0Ms: number) {
    this.board = board;
    this.opts = { ...opts, kernel: new Uint8Array(0), initrd: undefined }; // the board has loaded them: keep no copy
    this.t0Ms = t0Ms;
    this.ctl = new SmpControl(opts.harts);
  }

  /** Build the VM (loads kernel, initrd, device tree). Throws BootError on bad input. */
  static async create(opts: VmOptions): Promise<Vm> {
    let vm: Vm | null = null;
    const t0Ms = performance.timeOrigin + performance.now();
    // guest time stands still while the VM is paused (see smp.ts)
    const monotonicNs = () => (performance.timeOrigin + performance.now() - t0Ms - (vm ? vm.ctl.clock[0] : 0)) * 1e6;
    const board = Board.create({ ...opts, monotonicNs, onPower: () => vm?.stopHarts() });
    vm = new Vm(board, opts, t0Ms);
    return vm;
  }

  /** Console input arrived: let the UART pull it now. */
  kick(): void { this.pollDevices(); }

  private pollTimer: ReturnType<typeof setTimeout> | null = null;
  private pollDue = Infinity;

  /**
   * Poll the devices with lazy timers and arm one host timer for the next device
   * deadline (the RTC alarm). Called after every batch of MMIO (the guest may have set
   * an alarm) and on console input: an idle VM wakes for nothing else.
   */
  private pollDevices(): void {
    this.board.pollDevices();
    this.armPollTimer();
  }

  private armPollTimer(): void {
    const ms = this.board.nextPollMs();
    if (ms === null || this.stopped) return;
    const due = performance.now() + ms;
    if (this.pollTimer && due >= this.pollDue) return; // an earlier wake-up is armed already
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollDue = due;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      this.pollDue = Infinity;
      this.pollDevices();
    }, Math.min(Math.ceil(ms), MAX_TIMER_MS));
  }

  /** Stop the VM from the host side (the run ends as if powered off). */
  stop(): void {
    this.stopped = true;
    this.stopHarts();
  }

  /** True between pause() and resume(). */
  get paused(): boolean { return this.pausing !== null; }

  /**
   * Park every hart between two run slices and stop the guest's time base (smp.ts).
   * Resolves once all harts are parked (or after 5 s, if one does not answer). Device
   * models keep running: console input is queued in the UART until resume().
   */
  pause(): Promise<void> {
    if (this.pausing) return this.pausing;
    Atomics.store(this.ctl.words, W_PAUSE, 1);
    this.pausing = (async () => {
      const deadline = performance.now() + 5000;
      while (!this.ctl.allParked() && performance.now() < deadline && !Atomics.load(this.ctl.words, W_STOP)) {
        await new Promise((r) => setTimeout(r, 1));
      }
      // no hart reads the time base after this: guest time resumes from here
      this.pausedAt = performance.now();
    })();
    return this.pausing;
  }

  /** Undo pause(): add the paused time to the guest clock offset and wake the harts. */
  async resume(): Promise<void> {
    if (!this.pausing) return;
    await this.pausing;
    if (this.pausedAt !== null) this.ctl.clock[0] += performance.now() - this.pausedAt;
    this.pausedAt = null;
    this.pausing = null;
    Atomics.store(this.ctl.words, W_PAUSE, 0); // publishes the clock write (seq-cst)
    Atomics.notify(this.ctl.words, W_PAUSE);
  }

  /**
   * The state of every hart, one line each, for reporting a guest that stopped making
   * progress: pc, privilege, sstatus, sie, sip, scause, sepc, stvec, satp (as of the hart's
   * last exit from a run slice), the interrupt-request word now, HSM state, whether its thread is parked,
   * a posted MMIO request or remote fence, and how many run slices it has finished.
   */
  hartReport(): string[] {
    const hex = (v: bigint) => v.toString(16);
    const hsm = ['started', 'stopped', 'start-pending'];
    const lines: string[] = [];
    for (let i = 0; i < this.opts.harts; i++) {
      const s = readHartSnapshot(this.board.wasmMemory, i);
      lines.push(
        `hart ${i}: pc ${hex(s.pc)} priv ${s.priv === 1 ? 'S' : 'U'} sstatus ${hex(s.sstatus)} sie ${hex(s.sie)} sip ${hex(s.sip)}` +
        ` irq ${s.irqNow.toString(16)} stimecmp ${hex(s.stimecmp)} scause ${hex(s.scause)} sepc ${hex(s.sepc)} stvec ${hex(s.stvec)} satp ${hex(s.satp)}` +
        ` hsm ${hsm[this.ctl.get(i, H_HSM)] ?? this.ctl.get(i, H_HSM)} parked ${this.ctl.get(i, H_PARKED)}` +
        ` mmio ${this.ctl.get(i, H_MMIO)} flush ${this.ctl.get(i, H_FLUSH)} instret ${s.instret} slices ${s.exits} wake ${s.wakeSeq}`,
      );
    }
    lines.push(`time ${Math.floor(this.board.nowTicks())} ticks; plic ${this.board.plic.describe()}`);
    return lines;
  }

  private stopHarts(): void {
    Atomics.store(this.ctl.words, W_STOP, 1);
    Atomics.notify(this.ctl.words, W_PAUSE);
    for (let i = 0; i < this.opts.harts; i++) {
      this.board.signals[i].wake();
      this.ctl.notify(i, H_HSM);
    }
    Atomics.notify(this.ctl.words, W_DOORBELL);
  }

  /**
   * Serve every write the harts posted and answer every MMIO request they posted;
   * true when there was at least one. Posted writes first (smp.ts): a request is
   * served after every posted write that happened before it.
   */
  private serveMmio(): boolean {
    const c = this.ctl;
    const w = c.words;
    const n = this.opts.harts;
    const requests: number[] = [];
    for (let i = 0; i < n; i++) if (Atomics.load(w, c.at(i, H_MMIO)) === 1) requests.push(i);
    let served = requests.length > 0;
    if (c.takePosted((pa, size, value) => { this.access(1, pa, size, value); }) > 0) served = true;
    for (const i of requests) {
      const r = this.access(w[c.at(i, H_OP)], w[c.at(i, H_ADDR)] >>> 0, w[c.at(i, H_SIZE)], w[c.at(i, H_VALUE)] >>> 0);
      const fault = r === undefined ? 1 : 0;
      if (r !== undefined) w[c.at(i, H_VALUE)] = r | 0;
      w[c.at(i, H_FAULT)] = fault;
      Atomics.store(w, c.at(i, H_MMIO), 2);
      c.notify(i, H_MMIO);
    }
    return served;
  }

  /**
   * One MMIO access (op 0 read, 1 write) on the board: the value read (0 for a write),
   * or undefined when no device answers (an access fault). A device model that throws
   * fails this VM, never the host process.
   */
  private access(op: number, pa: number, size: number, value: number): number | undefined {
    try {
      if (op === 0) return this.board.mmioRead(pa, size);
      return this.board.mmioWrite(pa, size, value) ? 0 : undefined;
    } catch (e) {
      this.fatal = `device error at 0x${pa.toString(16)}: ${(e as Error).message}`;
      this.stopHarts();
      return 0;
    }
  }

  /** Run until the guest powers off or resets (or stop() is called). Returns the power event (null if stopped). */
  async run(): Promise<PowerEvent | null> {
    const n = this.opts.harts;
    const { words, args, clock } = this.ctl.buffers();
    this.ctl.startArgs[0] = BigInt(this.board.boot.entry);
    this.ctl.startArgs[1] = BigInt(this.board.boot.fdt);
    for (let i = 0; i < n; i++) {
      this.ctl.set(i, H_HSM, i === 0 ? HSM_STARTED : HSM_STOPPED);
      this.ctl.set(i, H_PARKED, i === 0 ? 0 : 1);
    }
    const started = performance.now();
    const exits: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const data: HartWorkerData = {
        id: i, harts: n, ramBytes: this.board.backedBytes, module: this.opts.engine, engineKind: this.opts.engineKind ?? 'jit',
        memory: this.board.wasmMemory, ctlWords: words, ctlArgs: args, ctlClock: clock, t0Ms: this.t0Ms,
        mmioLayout: this.board.hartMmioLayout(),
      };
      const worker = startHart(data);
      this.workers.push(worker);
      exits.push(new Promise<void>((resolve) => {
        worker.on('message', (m: HartWorkerMessage) => {
          if (m.type === 'console') {
            Atomics.sub(this.ctl.words, W_CONSOLE_INFLIGHT, m.bytes.length);
            this.board.consoleWrite(m.bytes);
          }
          else if (m.type === 'reset') this.board.systemReset(m.kind);
          else if (m.type === 'exit') {
            this.instret[m.id] = BigInt(m.instret);
            if (this.opts.stats || process.env.TSVISOR_STATS) {
              const j = m.jit;
              process.stderr.write(`tsvisor: hart ${m.id} stopped at pc ${m.pc}${j ? `; JIT: ${j.blocks} blocks (${j.insns} instructions) in ${j.modules} modules (${j.links} links to earlier ones, ${j.relinks} pages relinked), ${(j.wasmBytes / 1024).toFixed(0)} KiB of wasm, ${j.compileMs.toFixed(0)} ms compiling (+${j.offThreadMs.toFixed(0)} ms on the compiler thread), ${j.flushes} flushes, ${j.retired} of ${m.instret} instructions (${(100 * j.retired / Math.max(1, Number(m.instret))).toFixed(0)}%) run translated, ${(j.retired / Math.max(1, j.entries)).toFixed(1)} per entry from the interpreter` : ''}\n`);
            }
            resolve();
          }
          else if (m.type === 'error') { this.fatal = `hart ${m.id}: ${m.message}`; this.stopHarts(); resolve(); }
        });
        worker.on('error', (e) => { this.fatal = `hart ${i}: ${e.message}`; this.stopHarts(); resolve(); });
        worker.on('exit', () => resolve());
      }));
    }
    // the harts run: the allocator is tuned now, off their way (loading the FFI takes ~20 ms)
    tuneMalloc();
    const allExited = Promise.all(exits);
    let done = false;
    void allExited.then(() => { done = true; Atomics.add(this.ctl.words, W_DOORBELL, 1); Atomics.notify(this.ctl.words, W_DOORBELL); });
    this.pollDevices();
    try {
      // serve MMIO whenever a hart rings the doorbell
      while (!done) {
        const seen = Atomics.load(this.ctl.words, W_DOORBELL);
        if (this.serveMmio()) this.armPollTimer();
        const r = Atomics.waitAsync(this.ctl.words, W_DOORBELL, seen, DOORBELL_WAIT_MS);
        if (r.async) await r.value;
        if (Atomics.load(this.ctl.words, W_STOP) && !done) {
          this.serveMmio();
        }
      }
      // writes the harts posted just before they stopped (the guest's last console
      // bytes before an SBI system reset) still reach their devices
      this.serveMmio();
    } finally {
      if (this.pollTimer) clearTimeout(this.pollTimer);
      this.pollTimer = null;
      await Promise.all(this.workers.map((w) => w.terminate()));
    }
    this.board.flushDisks();
    const total = this.instret.reduce((a, b) => a + (b ?? 0n), 0n);
    if (this.opts.stats || process.env.TSVISOR_STATS) {
      const secs = (performance.now() - started) / 1000;
      process.stderr.write(`tsvisor: ${total} instructions in ${secs.toFixed(2)} s (${(Number(total) / secs / 1e6).toFixed(1)} MIPS), peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB\n`);
    }
    if (this.fatal) throw new Error(`VM failed: ${this.fatal}`);
    return this.stopped ? null : this.board.powerEvent;
  }
}
