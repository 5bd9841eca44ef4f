/**
 * The code generations of guest RAM pages, from the TypeScript side (src/engine/as/jit.ts
 * describes the protocol; mmu.noteCodeWrite is the engine's own half): an odd generation
 * means the page has translated code. The JIT marks the pages it translates; writers that
 * do not go through a hart (device DMA, the SBI console) retire the code of the pages
 * they write, so that it never runs again. Imports nothing from Node.
 */
import { CODE_EPOCH, CODE_GEN, RAM_OFFSET } from './layout.js';

export class CodePages {
  private readonly words: Int32Array;
  /** @param memory the VM's shared memory */
  constructor(memory: WebAssembly.Memory) {
    this.words = new Int32Array(memory.buffer);
  }

  /** Index in `words` of the generation of the page holding linear-memory (host) address `host` in RAM. */
  private index(host: number): number {
    return (CODE_GEN >> 2) + ((host - RAM_OFFSET) >>> 12);
  }

  /** The current generation of the page holding host address `host`. */
  generation(host: number): number {
    return Atomics.load(this.words, this.index(host));
  }

  /** Mark the page holding host address `host` as having code (bumping the code epoch if it had none); returns its odd generation. */
  mark(host: number): number {
    const i = this.index(host);
    for (;;) {
      const g = Atomics.load(this.words, i);
      if (g & 1) return g;
      if (Atomics.compareExchange(this.words, i, g, g + 1) === g) {
        Atomics.add(this.words, CODE_EPOCH >> 2, 1);
        return g + 1;
      }
    }
  }

  /** After `len` bytes were written at host address `host`: retire the code of every page they touch (generation even, epoch bumped). */
  retire(host: number, len: number): void {
    if (len <= 0) return;
    const last = this.index(host + len - 1);
    for (let i = this.index(host); i <= last; i++) {
      const g = Atomics.load(this.words, i);
      if ((g & 1) !== 0 && Atomics.compareExchange(this.words, i, g, g + 1) === g) Atomics.add(this.words, CODE_EPOCH >> 2, 1);
    }
  }

  /** The code epoch (i32): it moves whenever a page gains or loses code. */
  epoch(): number {
    return Atomics.load(this.words, CODE_EPOCH >> 2);
  }
}

/**
 * A callback for GuestMemory's `onWrite` (`off` and `len` in bytes of RAM): retire the
 * translated code of every page written. `memory` is the VM's shared memory.
 */
export function codeWriteNotifier(memory: WebAssembly.Memory): (off: number, len: number) => void {
  const pages = new CodePages(memory);
  return (off: number, len: number) => pages.retire(RAM_OFFSET + off, len);
}
