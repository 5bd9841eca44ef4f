import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSize } from '../../src/cli/size.js';
import { parseDiskSpec, shellQuote, checkMemory } from '../../src/cli/run.js';
import { UsageError } from '../../src/cli/errors.js';

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
