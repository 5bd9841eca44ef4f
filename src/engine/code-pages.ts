/**
 * Writes to guest RAM that do not go through a hart (device DMA, the SBI console) and
 * the JIT: code translated from a page that is written must not run again. The engine's
 * own stores check this themselves (mmu.noteCodeWrite); this is the same rule for
 * writers on other threads. Imports nothing from Node.
 */
import { CODE_EPOCH, CODE_GEN } from './layout.js';

/**
 * A callback for GuestMemory's `onWrite`: after `len` bytes were written at byte `off`
 * of RAM, retire the translated code of every 4 KiB page they touch (make its code
 * generation even and bump the code epoch, as src/engine/as/jit.ts describes).
 * `memory` is the VM's shared memory.
 */
export function codeWriteNotifier(memory: WebAssembly.Memory): (off: number, len: number) => void {
  const words = new Int32Array(memory.buffer);
  return (off: number, len: number) => {
    if (len <= 0) return;
    const last = (off + len - 1) >>> 12;
    for (let page = off >>> 12; page <= last; page++) {
      const i = (CODE_GEN >> 2) + page;
      const g = Atomics.load(words, i);
      if ((g & 1) !== 0 && Atomics.compareExchange(words, i, g, g + 1) === g) Atomics.add(words, CODE_EPOCH >> 2, 1);
    }
  };
}
