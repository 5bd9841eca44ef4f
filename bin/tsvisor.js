#!/usr/bin/env -S node --max-semi-space-size=2 --v8-pool-size=1 --wasm-tiering-budget=8000000 --no-wasm-lazy-compilation
import { reexecForVm } from '../dist/src/cli/reexec.js';
import { bundleIsFresh } from '../dist/src/vmm/bundle-entry.js';
// the first line gives Node the flags of a VM process (src/vmm/node-flags.ts); when it was
// started otherwise ('node bin/tsvisor.js'), a command that runs a VM restarts it with them
reexecForVm(process.argv.slice(2));
// `tsvisor run` loads its modules from dist/bundle (scripts/bundle.js), when that was built
// after tsc's last output: a few files instead of about a hundred
const bundled = process.argv[2] === 'run' && bundleIsFresh(new URL('../dist/bundle/main.js', import.meta.url), new URL('../dist/src/cli/main.js', import.meta.url));
// `tsvisor run`: the first hart's thread starts now and gets ready while the CLI loads
if (process.argv[2] === 'run') (await import(bundled ? '../dist/bundle/hart-threads.js' : '../dist/src/vmm/hart-threads.js')).prestartHarts(1);
const { main } = await import(bundled ? '../dist/bundle/main.js' : '../dist/src/cli/main.js');
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });

