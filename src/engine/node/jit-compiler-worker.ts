/**
 * Entry of the JIT's compiler thread (see jit-compiler.ts): for each job on the port it is
 * given, translate the blocks and compile the module, and post the WebAssembly.Module back.
 */
import { workerData, type MessagePort } from 'node:worker_threads';
import { unpackBlocks, type CrossLink, type TranslateLayout } from '../jit/block.js';
import { translateModule } from '../jit/translate.js';
import type { CompiledModule } from '../jit/code-cache.js';
import { enableBranchHints } from './module.js';
import { READY_MESSAGE } from './jit-compiler.js';

enableBranchHints();

/** One job as posted to the thread (`blocks`: packBlocks, its buffer transferred). */
export interface JobMessage { id: number; blocks: Int32Array; layout: TranslateLayout; linked: number[]; cross: CrossLink[] }

const port = (workerData as { port?: MessagePort } | null)?.port;
port?.on('message', (job: JobMessage) => {
  const t0 = performance.now();
  const bytes = translateModule(unpackBlocks(job.blocks), job.layout, job.linked, job.cross);
  const module = new WebAssembly.Module(bytes);
  const done: CompiledModule = { id: job.id, module, wasmBytes: bytes.length, ms: performance.now() - t0 };
  port.postMessage(done);
});
// jobs posted before this waited in the port; from now on the hart sends them here
port?.postMessage(READY_MESSAGE);
