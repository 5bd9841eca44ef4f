/**
 * Loading the compiled engine on Node. The engine itself imports nothing from
 * Node; this file is its Node backend.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';

/**
 * Let V8 use the branch hints of translated code (the custom section
 * "metadata.code.branch_hint", src/engine/jit/wasm.ts): its optimizing compiler then keeps
 * the slow paths (TLB misses, faults) out of line, with their register spills, instead of
 * spilling on the fast path. V8's flags are per process; this sets it once, for every thread.
 */
export function enableBranchHints(): void {
  if (hintsOn) return;
  setFlagsFromString('--experimental-wasm-branch-hinting');
  hintsOn = true;
}
let hintsOn = false;

let cached: WebAssembly.Module | null = null;

/** Path of build/engine.wasm (produced by `npm run build:wasm`). */
export function engineWasmPath(): string {
  return fileURLToPath(new URL('../../../../build/engine.wasm', import.meta.url));
}

/** Compile (once per process) and return the engine module. Throws if the build is missing. */
export function loadEngineModule(): WebAssembly.Module {
  enableBranchHints();
  if (!cached) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(engineWasmPath());
    } catch {
      throw new Error(`engine not built: ${engineWasmPath()} is missing (run "npm run build")`);
    }
    cached = new WebAssembly.Module(bytes);
  }
  return cached;
}
