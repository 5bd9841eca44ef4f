/**
 * `npm run build:bundle`: the modules `tsvisor run` loads, bundled by esbuild from tsc's
 * output (dist/src) into a few files in dist/bundle, which bin/tsvisor.js loads for `run`.
 *
 * Node loads an ES module graph file by file (resolve, read, compile each of about a hundred
 * small files, in the CLI's thread, the hart's and the JIT compiler's), and that was most of
 * the time before a VM's first guest instruction: a boot to `true` took a median 2.46-2.56 s
 * bundled against 2.67-2.74 s unbundled (eight alternating a side, twice), with 0.25-0.33 s
 * less CPU.
 *
 * Entries: the CLI, the hart threads' starter (imported first by bin/tsvisor.js), and the
 * two worker scripts, which src/vmm/hart-threads.ts and src/engine/node/jit-compiler.ts
 * start from their own folder (`new URL('./<name>.js', import.meta.url)`): so every file,
 * entries and shared chunks, is written to the one folder. koffi (a native addon) stays a
 * package import; the CommonJS packages bundled in (commander) get a `require` of their own.
 */
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

const out = 'dist/bundle';
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: ['dist/src/cli/main.js', 'dist/src/vmm/hart-threads.js', 'dist/src/vmm/hart-worker.js', 'dist/src/engine/node/jit-compiler-worker.js'],
  outdir: out,
  entryNames: '[name]',
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['koffi'],
  banner: { js: "import { createRequire as __tsvisorRequire } from 'node:module'; const require = __tsvisorRequire(import.meta.url);" },
  logLevel: 'warning',
});
