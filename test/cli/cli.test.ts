import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSize } from '../../src/cli/size.js';
import { parseDiskSpec, shellQuote, checkMemory } from '../../src/cli/run.js';
import { UsageError } from '../../src/cli/errors.js';
import { VM_NODE_FLAGS } from '../../src/vmm/node-flags.js';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../../bin/tsvisor.js', import.meta.url));

test('sizes: K/M/G suffixes, bytes, bad input', () => {
  assert.equal(parseSize('512M'), 512 * 1024 * 1024);
  assert.equal(parseSize('1g'), 1024 ** 3);
  assert.equal(parseSize('64K'), 65536);
  assert.equal(parseSize('1048576'), 1048576);
  assert.equal(parseSize('2GiB'), 2 * 1024 ** 3);
  for (const bad of ['abc', '', '-1M', '1X', 'M']) assert.throws(() => parseSize(bad), UsageError, bad);
  assert.throws(() => checkMemory('100T'), /more than the host has/);
  assert.throws(() => checkMemory('1M'), /at least 64M/);
});

test('disk specs and shell quoting', () => {
  assert.deepEqual(parseDiskSpec('a.img'), { path: 'a.img', readonly: false });
  assert.deepEqual(parseDiskSpec('a.img,readonly'), { path: 'a.img', readonly: true });
  assert.throws(() => parseDiskSpec('a.img,rw'), /unknown option "rw"/);
  assert.equal(shellQuote(['sh', '-c', "echo 'x' $HOME"]), `sh -c 'echo '\\''x'\\'' $HOME'`);
});

test('bin/tsvisor.js starts Node with the flags of a VM process, and restarts it with them for run when started without', async () => {
  const shebang = readFileSync(BIN, 'utf8').split('\n')[0];
  assert.equal(shebang, `#!/usr/bin/env -S node ${VM_NODE_FLAGS.join(' ')}`);
  // 'node bin/tsvisor.js run' (no flags): the same process (pid) soon runs under them
  const child = spawn(process.execPath, [BIN, 'run', '--network', 'none', '--', 'sleep', '30'], { stdio: 'ignore' });
  try {
    let cmdline: string[] = [];
    for (let i = 0; i < 100; i++) {
      cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
      if (VM_NODE_FLAGS.every((f) => cmdline.includes(f))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const f of VM_NODE_FLAGS) assert.ok(cmdline.includes(f), `${f} in ${cmdline.join(' ')}`);
    assert.deepEqual(cmdline.slice(-7, -1), ['run', '--network', 'none', '--', 'sleep', '30'], 'the same command');
  } finally {
    child.kill('SIGKILL');
  }
});
