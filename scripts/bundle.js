/**
 * `npm run build:bundle`: the modules of the processes that run a VM, bundled by esbuild from
 * tsc's output (dist/src) into a few files in dist/bundle: `tsvisor run` (bin/tsvisor.js
 * loads it) and the host daemon's VM processes (src/host/host.ts starts vmm.js).
 *
 * Node loads an ES module graph file by file (resolve, read, compile each of about a hundred
 * small files, in the CLI's thread, the hart's and the JIT compiler's), and that was most of
 * the time before a VM's first guest instruction: a boot to `true` took a median 2.46-2.56 s
 * bundled against 2.67-2.74 s unbundled (eight alternating a side, twice), with 0.25-0.33 s
 * less CPU.
 *
 * Entries: the CLI, the hart threads' starter (imported first by bin/tsvisor.js), the
 * daemon's VM process (dist/src/vmm/main.js, as vmm.js), and the two worker scripts, which
 * src/vmm/hart-threads.ts and src/engine/node/jit-compiler.ts start from their own folder
 * (`new URL('./<name>.js', import.meta.url)`): so every file, entries and shared chunks, is
 * written to the one folder. koffi (a native addon) stays a
 * package import; the CommonJS packages bundled in (commander) get a `require` of their own.
 */
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

const out = 'dist/bundle';
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: {
    main: 'dist/src/cli/main.js',
    'hart-threads': 'dist/src/vmm/hart-threads.js',
    vmm: 'dist/src/vmm/main.js',
    'hart-worker': 'dist/src/vmm/hart-worker.js',
    'jit-compiler-worker': 'dist/src/engine/node/jit-compiler-worker.js',
  },
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
