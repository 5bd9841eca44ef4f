#!/usr/bin/env node
import { reexecForVm } from '../dist/src/cli/reexec.js';
// a command that runs a VM restarts Node under the VM process's flags (src/cli/reexec.ts)
reexecForVm(process.argv.slice(2));
const { main } = await import('../dist/src/cli/main.js');
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
