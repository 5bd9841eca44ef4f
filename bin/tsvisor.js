#!/usr/bin/env -S node --max-semi-space-size=2 --v8-pool-size=1 --wasm-tiering-budget=8000000
import { reexecForVm } from '../dist/src/cli/reexec.js';
// the first line gives Node the flags of a VM process (src/vmm/node-flags.ts); when it was
// started otherwise ('node bin/tsvisor.js'), a command that runs a VM restarts it with them
reexecForVm(process.argv.slice(2));
// `tsvisor run`: the first hart's thread starts now and gets ready while the CLI loads
if (process.argv[2] === 'run') (await import('../dist/src/vmm/hart-threads.js')).prestartHarts(1);
const { main } = await import('../dist/src/cli/main.js');
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
