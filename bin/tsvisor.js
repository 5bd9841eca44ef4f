#!/usr/bin/env -S node --max-semi-space-size=2 --v8-pool-size=1
import { reexecForVm } from '../dist/src/cli/reexec.js';
// the first line gives Node the flags of a VM process (src/vmm/node-flags.ts); when it was
// started otherwise ('node bin/tsvisor.js'), a command that runs a VM restarts it with them
reexecForVm(process.argv.slice(2));
const { main } = await import('../dist/src/cli/main.js');
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
