/**
 * The bundle of the processes that run a VM (scripts/bundle.js, dist/bundle): its entries
 * are there, newer than tsc's output (bin/tsvisor.js and the host daemon use it only then),
 * and a VM runs from it, with its worker threads and the engine found from the bundle's own
 * folder. The daemon's VM processes run from it in test/e2e/host.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VM_NODE_FLAGS } from '../../src/vmm/node-flags.js';

const BUNDLE = fileURLToPath(new URL('../../bundle/', import.meta.url));
const TSC_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('dist/bundle holds the CLI, the hart threads\' starter, the VM process and both worker scripts, built after tsc\'s output', () => {
  for (const f of ['main.js', 'hart-threads.js', 'vmm.js', 'hart-worker.js', 'jit-compiler-worker.js']) {
    assert.ok(statSync(BUNDLE + f).mtimeMs >= statSync(TSC_MAIN).mtimeMs, `${f} is older than dist/src/cli/main.js: npm run build:bundle`);
  }
});

test('a VM runs a command from the bundle alone', () => {
  const script = `const { main } = await import(${JSON.stringify(BUNDLE + 'main.js')});
process.exitCode = await main(['run', '--network', 'none', '--', 'sh', '-c', 'echo from-the-bundle; exit 3']);`;
  // a file, not -e: the workers inherit the process's execArgv
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-bundle-'));
  try {
    writeFileSync(join(dir, 'run.mjs'), script);
    const r = spawnSync(process.execPath, [...VM_NODE_FLAGS, join(dir, 'run.mjs')], { encoding: 'utf8', timeout: 120_000 });
    assert.match(r.stdout, /^from-the-bundle$/m, r.stderr);
    assert.equal(r.status, 3, r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
