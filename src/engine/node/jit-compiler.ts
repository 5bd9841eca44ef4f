/**
 * The JIT's compiler thread on Node (src/engine/jit/code-cache.ts's ModuleCompiler): a
 * worker that turns decoded blocks into wasm bytes (translateModule) and compiles them into
 * a WebAssembly.Module, off the hart's thread. The hart polls for finished modules with
 * receiveMessageOnPort between two run() slices, so its loop never waits for a compile.
 */
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { CompileJob, CompiledModule, ModuleCompiler } from '../jit/code-cache.js';
import type { JobMessage } from './jit-compiler-worker.js';

/**
 * A compiler thread serving one hart. `close()` ends it. If the thread fails, `onError` is
 * called once and the jobs it had are never finished: their blocks stay with the interpreter.
 */
export class WorkerCompiler implements ModuleCompiler {
  private readonly worker: Worker;
  private readonly port: MessagePort;

  constructor(onError: (e: Error) => void) {
    const { port1, port2 } = new MessageChannel();
    this.worker = new Worker(new URL('./jit-compiler-worker.js', import.meta.url), { workerData: { port: port2 }, transferList: [port2] });
    this.worker.once('error', onError);
    this.worker.unref();
    this.port = port1;
  }

  submit(job: CompileJob): void {
    const m: JobMessage = { id: job.id, blocks: job.blocks, layout: { rvcTable: job.layout.rvcTable, tlbTableBytes: job.layout.tlbTableBytes, xBase: job.layout.xBase }, linked: job.linked };
    this.port.postMessage(m);
  }

  take(): CompiledModule | undefined {
    const m = receiveMessageOnPort(this.port);
    return m ? (m.message as CompiledModule) : undefined;
  }

  close(): void {
    this.port.close();
    void this.worker.terminate();
  }
}
