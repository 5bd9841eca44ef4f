/**
 * Loading the compiled engine on Node. The engine itself imports nothing from
 * Node; this file is its Node backend.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
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

/**
 * Path of build/engine.wasm (produced by `npm run build:wasm`): in the package's `build`
 * folder, found from this module's folder upward (dist/src/engine/node/ when compiled by
 * tsc, dist/bundle/ in the bundle of `tsvisor run`, src/engine/node/ under a TypeScript
 * loader). The package root's own path when none is found, for the error message.
 */
export function engineWasmPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 5; up++) {
    const p = join(dir, 'build', 'engine.wasm');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
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
