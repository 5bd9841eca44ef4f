/**
 * A hart's worker thread: runs one engine instance over the VM's shared
 * memory. The PLIC and the virtio interrupt registers are served here
 * (machine/hart-mmio.ts); other MMIO goes to the VM's main thread through the
 * control block, as a posted write or as a synchronous request
 * (the hart waits for the answer); SBI is served here,
 * with the other harts reached through shared memory; WFI parks the thread
 * with Atomics.wait until an interrupt or the timer is due.
 */
import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { Hart, HartExit, HartSignals, SIP_SSIP, type EngineKind } from '../engine/hart.js';
import type { CodeCacheStats } from '../engine/jit/code-cache.js';
import { RAM_BASE, RAM_OFFSET, TIMEBASE_HZ } from '../engine/layout.js';
import { codeWriteNotifier } from '../engine/code-pages.js';
import { WorkerCompiler } from '../engine/node/jit-compiler.js';
import { GuestMemory } from '../devices/guest-memory.js';
import { HartMmio, WriteRoute, type HartMmioLayout } from '../machine/hart-mmio.js';
import { handleSbiCall, type SbiPlatform, SBI_SUCCESS, SBI_ERR_INVALID_PARAM, SBI_ERR_ALREADY_AVAILABLE } from '../machine/sbi.js';
import {
  SmpControl, W_DOORBELL, W_STOP, W_PAUSE, W_CONSOLE_INFLIGHT, CONSOLE_INFLIGHT_MAX, H_MMIO, H_OP, H_ADDR, H_SIZE, H_VALUE, H_FAULT, H_HSM, H_PARKED, H_FLUSH,
  HSM_STARTED, HSM_STOPPED, HSM_START_PENDING,
} from './smp.js';

/** What the main thread passes to a hart worker: its first message (see hart-threads.ts startHart). */
export interface HartWorkerData {
  id: number;
  harts: number;
  ramBytes: number;
  module: WebAssembly.Module;
  /** Interpreter alone, or with the JIT. */
  engineKind: EngineKind;
  memory: WebAssembly.Memory;
  ctlWords: SharedArrayBuffer;
  ctlArgs: SharedArrayBuffer;
  ctlClock: SharedArrayBuffer;
  /** performance.timeOrigin + performance.now() of the board's time zero, in ms. */
  t0Ms: number;
  /** The board's MMIO state that this thread serves itself. */
  mmioLayout: HartMmioLayout;
}

/** Messages from a hart worker to the main thread. */
export type HartWorkerMessage =
  | { type: 'console'; bytes: Uint8Array }
  | { type: 'reset'; kind: 'shutdown' | 'reboot' }
  | { type: 'exit'; id: number; instret: string; pc: string; jit: CodeCacheStats | null }
  | { type: 'error'; id: number; message: string };

/** Instructions per run() slice: bounds the latency of remote fences and stop requests. */
const SLICE = 50_000;
/** First and longest host-thread sleep after a pause-loop exit (HartExit.Pause), in ms. */
const PAUSE_SLEEP_MIN_MS = 0.05;
const PAUSE_SLEEP_MAX_MS = 1;

/** What a hart thread is told when it is created (hart-threads.ts), before its HartWorkerData. */
export interface HartThreadOptions {
  /**
   * Start the JIT's compiler thread at once: this thread was started ahead of a VM's first
   * hart, and a compiler thread takes 60-80 ms to start (measured: the first translation
   * came about 90 ms after the hart's first instruction when it was started with the hart).
   */
  startCompiler?: boolean;
}

/** Where the early compiler thread reports a failure (set once the hart's id is known). */
let earlyCompilerError = (e: Error) => writeSync(2, `tsvisor: JIT compiler thread failed (${e.message})\n`);
const earlyCompiler = (workerData as HartThreadOptions | null)?.startCompiler ? new WorkerCompiler((e) => earlyCompilerError(e)) : null;
earlyCompiler?.start();

async function main(d: HartWorkerData): Promise<void> {
  const ctl = new SmpControl(d.harts, d.ctlWords, d.ctlArgs, d.ctlClock);
  const pausedMs = ctl.clock;
  const words = ctl.words;
  const id = d.id;
  const post = (m: HartWorkerMessage) => parentPort!.postMessage(m);
  // guest time stands still while the VM is paused (smp.ts)
  const nowTicks = () => (performance.timeOrigin + performance.now() - d.t0Ms - pausedMs[0]) * (TIMEBASE_HZ / 1000);
  const slot = (w: number) => ctl.at(id, w);

  const mmio = (op: number, pa: number, size: number, value: number): number | undefined => {
    words[slot(H_OP)] = op;
    words[slot(H_ADDR)] = pa | 0;
    words[slot(H_SIZE)] = size;
    words[slot(H_VALUE)] = value | 0;
    Atomics.store(words, slot(H_MMIO), 1);
    Atomics.add(words, W_DOORBELL, 1);
    Atomics.notify(words, W_DOORBELL);
    while (Atomics.load(words, slot(H_MMIO)) === 1) Atomics.wait(words, slot(H_MMIO), 1, 1000);
    Atomics.store(words, slot(H_MMIO), 0);
    if (words[slot(H_FAULT)]) return undefined;
    return words[slot(H_VALUE)] >>> 0;
  };

  const signals = Array.from({ length: d.harts }, (_, i) => new HartSignals(d.memory, i));
  const local = new HartMmio(d.mmioLayout, signals);
  // the JIT's modules are built on a thread of their own, off this hart's
  const compilerError = (e: Error) => writeSync(2, `tsvisor: hart ${id}: JIT compiler thread failed (${e.message}); going on without new translations\n`);
  earlyCompilerError = compilerError;
  if (d.engineKind !== 'jit') earlyCompiler?.close();
  const compiler = d.engineKind === 'jit' ? earlyCompiler ?? new WorkerCompiler(compilerError) : null;
  const hart = await Hart.create(d.module, d.memory, id, d.ramBytes, {
    mmioRead: (pa, size) => local.read(pa, size) ?? mmio(0, pa, size, 0),
    mmioWrite: (pa, size, value) => {
      const route = local.write(pa, size, value);
      if (route === WriteRoute.Done) return true;
      if (route === WriteRoute.Post && ctl.postWrite(pa, size, value)) return true;
      return mmio(1, pa, size, value) !== undefined;
    },
    nowTicks,
  }, { engine: d.engineKind, hartCount: d.harts, jit: compiler ? { compiler } : undefined });
  const memory = new GuestMemory(new Uint8Array(d.memory.buffer, RAM_OFFSET, d.ramBytes), RAM_BASE, codeWriteNotifier(d.memory));

  const serveFlush = () => {
    if (Atomics.load(words, slot(H_FLUSH)) !== 0) {
      hart.flushTlb();
      Atomics.store(words, slot(H_FLUSH), 0);
      Atomics.notify(words, slot(H_FLUSH));
    }
  };

  const platform: SbiPlatform = {
    memory,
    hartCount: d.harts,
    setSoftwareInterrupt: (target, level) => signals[target].setPending(SIP_SSIP, level),
    consoleWrite: (bytes) => {
      if (Atomics.load(words, W_CONSOLE_INFLIGHT) > CONSOLE_INFLIGHT_MAX) return false;
      Atomics.add(words, W_CONSOLE_INFLIGHT, bytes.length);
      post({ type: 'console', bytes: bytes.slice() });
      return true;
    },
    consoleRead: () => -1,
    systemReset: (kind) => {
      post({ type: 'reset', kind: kind === 'shutdown' ? 'shutdown' : 'reboot' });
      Atomics.store(words, W_STOP, 1);
    },
    hartStart: (target, start, opaque) => {
      if (target < 0 || target >= d.harts) return SBI_ERR_INVALID_PARAM;
      if (Atomics.compareExchange(words, ctl.at(target, H_HSM), HSM_STOPPED, HSM_START_PENDING) !== HSM_STOPPED) {
        return SBI_ERR_ALREADY_AVAILABLE;
      }
      ctl.startArgs[2 * target] = BigInt.asIntN(64, start);
      ctl.startArgs[2 * target + 1] = BigInt.asIntN(64, opaque);
      ctl.notify(target, H_HSM);
      return SBI_SUCCESS;
    },
    hartStop: () => { ctl.set(id, H_HSM, HSM_STOPPED); return SBI_SUCCESS; },
    hartStatus: (target) => (target < 0 || target >= d.harts ? -1 : ctl.get(target, H_HSM)),
    remoteFence: (ids, tlb) => {
      for (const t of ids) {
        if (t === id) { if (tlb) hart.flushTlb(); continue; }
        ctl.set(t, H_FLUSH, 1);
        signals[t].wake();
      }
      // wait until every running target has flushed; parked or stopped harts flush when they wake
      for (const t of ids) {
        if (t === id) continue;
        while (Atomics.load(words, ctl.at(t, H_FLUSH)) !== 0 && ctl.get(t, H_PARKED) === 0 && Atomics.load(words, W_STOP) === 0) {
          serveFlush(); // two harts fencing each other must not deadlock
          Atomics.wait(words, ctl.at(t, H_FLUSH), 1, 1);
        }
      }
    },
  };

  const waitForStart = (): boolean => {
    ctl.set(id, H_PARKED, 1);
    while (ctl.get(id, H_HSM) !== HSM_START_PENDING) {
      if (Atomics.load(words, W_STOP)) return false;
      Atomics.wait(words, slot(H_HSM), ctl.get(id, H_HSM), 200);
    }
    hart.reset(BigInt.asUintN(64, ctl.startArgs[2 * id]), BigInt.asUintN(64, ctl.startArgs[2 * id + 1]));
    ctl.set(id, H_HSM, HSM_STARTED);
    ctl.set(id, H_PARKED, 0);
    return true;
  };

  if (ctl.get(id, H_HSM) !== HSM_STARTED && !waitForStart()) return finish();
  compiler?.start();
  if (ctl.get(id, H_HSM) === HSM_STARTED && id === 0) {
    hart.reset(BigInt.asUintN(64, ctl.startArgs[0]), BigInt.asUintN(64, ctl.startArgs[1]));
  }

  /** Park while the VM is paused (smp.ts); returns at once when it is not. */
  const pausePoint = () => {
    if (Atomics.load(words, W_PAUSE) === 0) return;
    ctl.set(id, H_PARKED, 1);
    while (Atomics.load(words, W_PAUSE) !== 0 && Atomics.load(words, W_STOP) === 0) {
      Atomics.wait(words, W_PAUSE, 1, 1000);
    }
    ctl.set(id, H_PARKED, 0);
  };

  /** TSVISOR_SBI_TRACE=1: log every SBI call except timer programming to stderr. */
  const sbiTrace = !!process.env.TSVISOR_SBI_TRACE;
  let pauseSleepMs = PAUSE_SLEEP_MIN_MS;
  while (!Atomics.load(words, W_STOP)) {
    pausePoint();
    serveFlush();
    const r = hart.run(SLICE);
    if (r === HartExit.Sbi) {
      if (sbiTrace) {
        const eid = hart.getX(17), fid = hart.getX(16), a0 = hart.getX(10), a1 = hart.getX(11);
        handleSbiCall(hart, platform);
        if (eid !== 0x54494d45n && eid !== 0n) writeSync(2, `tsvisor: hart ${id} sbi eid 0x${eid.toString(16)} fid ${fid} a0 0x${a0.toString(16)} a1 0x${a1.toString(16)} -> err ${BigInt.asIntN(64, hart.getX(10))} value 0x${hart.getX(11).toString(16)}\n`);
      } else handleSbiCall(hart, platform);
      if (ctl.get(id, H_HSM) === HSM_STOPPED && !waitForStart()) break;
      continue;
    }
    if (r === HartExit.Pause) {
      // pause-loop exit: the guest spins on a lock (or a flag) that another vCPU must
      // release. Give the host core to the other threads for a moment; an interrupt for
      // this hart ends the sleep early. Spins that go on sleep longer, up to 1 ms.
      const seq = hart.wakeSeq();
      if (!hart.interruptPending() && Atomics.load(words, slot(H_FLUSH)) === 0) hart.park(seq, pauseSleepMs);
      pauseSleepMs = Math.min(pauseSleepMs * 2, PAUSE_SLEEP_MAX_MS);
      continue;
    }
    pauseSleepMs = PAUSE_SLEEP_MIN_MS;
    if (r === HartExit.Wfi) {
      const seq = hart.wakeSeq();
      if (hart.interruptPending()) continue;
      const cmp = hart.timecmp;
      let waitMs = 1000;
      if (cmp !== 0xffff_ffff_ffff_ffffn) waitMs = Math.min(waitMs, (Number(cmp) - nowTicks()) / (TIMEBASE_HZ / 1000));
      if (waitMs > 0.02) {
        ctl.set(id, H_PARKED, 1);
        if (Atomics.load(words, slot(H_FLUSH)) === 0) hart.park(seq, waitMs);
        ctl.set(id, H_PARKED, 0);
      }
    }
  }
  finish();

  function finish(): void {
    compiler?.close();
    ctl.set(id, H_PARKED, 1);
    post({ type: 'exit', id, instret: hart.instret.toString(), pc: hart.pc.toString(16), jit: hart.jitStats });
  }
}

parentPort!.once('message', (d: HartWorkerData) => {
  main(d).catch((e: unknown) => {
    parentPort!.postMessage({ type: 'error', id: d.id, message: e instanceof Error ? e.message : String(e) });
  });
});
