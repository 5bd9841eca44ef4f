/**
 * Loading the compiled engine on Node. The engine itself imports nothing from
 * Node; this file is its Node backend.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

let cached: WebAssembly.Module | null = null;

/** Path of build/engine.wasm (produced by `npm run build:wasm`). */
export function engineWasmPath(): string {
  return fileURLToPath(new URL('../../../../build/engine.wasm', import.meta.url));
}

/** Compile (once per process) and return the engine module. Throws if the build is missing. */
export function loadEngineModule(): WebAssembly.Module {
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
