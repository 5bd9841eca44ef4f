/**
 * The hart worker threads of this process (hart-worker.ts), one per hart of a running VM.
 * A thread can be started ahead of the VM that will use it (prestartHarts): `tsvisor run`
 * starts its first one before it loads the rest of the CLI (bin/tsvisor.js). Imports
 * nothing but Node's worker_threads, so that starting one costs no module loading here.
 */
import { Worker } from 'node:worker_threads';
import type { HartThreadOptions, HartWorkerData } from './hart-worker.js';

/** Hart worker threads started ahead of the next Vm.run() (prestartHarts), waiting for their HartWorkerData. */
const spareHarts: Worker[] = [];

/**
 * Start hart worker threads now, up to `n` waiting, for the next Vm.run() in this process:
 * a Node worker takes 50-100 ms to start (its own builtins, then the engine's modules),
 * which then overlaps with loading the CLI, reading the kernel and building the board.
 * Spare threads do not keep the process alive; one that fails before it is used is dropped.
 */
export function prestartHarts(n: number): void {
  while (spareHarts.length < n) {
    // the first one waiting will run the next VM's first hart: its JIT compiler thread starts now too
    const w = newHartWorker({ startCompiler: spareHarts.length === 0 });
    w.unref();
    const drop = () => { const i = spareHarts.indexOf(w); if (i >= 0) spareHarts.splice(i, 1); };
    w.once('error', drop);
    w.once('exit', drop);
    spareHarts.push(w);
  }
}

/** A hart worker thread, waiting for its HartWorkerData (hart-worker.ts). */
function newHartWorker(options: HartThreadOptions = {}): Worker {
  return new Worker(new URL('./hart-worker.js', import.meta.url), { workerData: options });
}

/** A hart worker thread (a spare one if there is one) running the hart `data` describes. */
export function startHart(data: HartWorkerData): Worker {
  const w = spareHarts.shift() ?? newHartWorker();
  w.ref();
  w.postMessage(data);
  return w;
}
