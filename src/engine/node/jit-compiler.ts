/**
 * The JIT's compiler thread on Node (src/engine/jit/code-cache.ts's ModuleCompiler): a
 * worker that turns decoded blocks into wasm bytes (translateModule) and compiles them into
 * a WebAssembly.Module, off the hart's thread. The hart polls for finished modules with
 * receiveMessageOnPort between two run() slices, so its loop never waits for a compile.
 */
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { CompileJob, CompiledModule, ModuleCompiler } from '../jit/code-cache.js';
import { packBlocks } from '../jit/block.js';
import type { JobMessage } from './jit-compiler-worker.js';

/** What the compiler thread posts first, once it has loaded and listens for jobs. */
export const READY_MESSAGE = 'ready';

/**
 * A compiler thread serving one hart, started when the hart begins to run (`start`) or with
 * the first job (a hart that never runs, e.g. a vCPU kept offline, costs no thread).
 * `close()` ends it. If the thread fails, `onError` is called once and the jobs it had are
 * never finished: their blocks stay with the interpreter.
 */
export class WorkerCompiler implements ModuleCompiler {
  private worker: Worker | null = null;
  private port: MessagePort | null = null;
  private closed = false;
  /** The thread has loaded and listens for jobs (its first message, READY_MESSAGE), or has failed. */
  private started = false;
  /** Modules received from the port and not taken yet. */
  private readonly done: CompiledModule[] = [];

  constructor(private readonly onError: (e: Error) => void) {}

  /**
   * Start the thread now, if it is not running yet: a hart calls this when it begins to run,
   * so that the thread has started (a Node worker takes tens of ms) before the first hot
   * blocks of the guest's boot are submitted.
   */
  start(): void {
    if (this.closed || this.port) return;
    const { port1, port2 } = new MessageChannel();
    this.worker = new Worker(new URL('./jit-compiler-worker.js', import.meta.url), { workerData: { port: port2 }, transferList: [port2] });
    this.worker.once('error', (e: Error) => { this.started = true; this.onError(e); });
    this.worker.unref();
    this.port = port1;
  }

  submit(job: CompileJob): void {
    if (this.closed) return;
    this.start();
    const m: JobMessage = { id: job.id, blocks: packBlocks(job.blocks), layout: { rvcTable: job.layout.rvcTable, tlbTableBytes: job.layout.tlbTableBytes, xBase: job.layout.xBase }, linked: job.linked, cross: job.cross };
    this.port!.postMessage(m, [m.blocks.buffer as ArrayBuffer]);
  }

  take(): CompiledModule | undefined {
    if (!this.done.length) this.receive();
    return this.done.shift();
  }

  /**
   * True once the thread has loaded its modules and listens (or has failed or been closed,
   * and jobs are dropped as before); starts it if it is not running. A job submitted earlier
   * would wait in the port for the thread to load.
   */
  ready(): boolean {
    if (this.started || this.closed) return true;
    this.start();
    this.receive();
    return this.started;
  }

  /** Read what the thread has posted: its ready message, then finished modules. */
  private receive(): void {
    const port = this.port;
    if (!port) return;
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      const msg = m.message as CompiledModule | typeof READY_MESSAGE;
      if (msg === READY_MESSAGE) this.started = true;
      else this.done.push(msg);
    }
  }

  close(): void {
    this.closed = true;
    this.port?.close();
    if (this.worker) void this.worker.terminate();
  }
}
