// JIT profile files (src/vmm/jit-profile.ts): names, the round trip, the merge with the
// profile a run was seeded with, and files that are not profiles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileStamp, jitProfilePath, loadJitProfile, replacesProfile, saveJitProfile } from '../../src/vmm/jit-profile.js';
import { MAX_PROFILE_STARTS } from '../../src/engine/jit/code-cache.js';

function withDir(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-jitprof-'));
  try { body(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

test('jit profile: a kernel file replaced in place gets another profile', () => withDir((dir) => {
  const kernel = join(dir, 'Image');
  writeFileSync(kernel, 'kernel one');
  const first = jitProfilePath([fileStamp(kernel)], join(dir, 'cache'));
  assert.equal(dirname(first), join(dir, 'cache', 'jit'));
  assert.equal(jitProfilePath([fileStamp(kernel)], join(dir, 'cache')), first, 'the same file, the same profile');
  writeFileSync(kernel, 'kernel two!');
  utimesSync(kernel, new Date(2000, 0, 1), new Date(2000, 0, 1));
  assert.notEqual(jitProfilePath([fileStamp(kernel)], join(dir, 'cache')), first);
  assert.throws(() => fileStamp(join(dir, 'missing')), /ENOENT/);
}));

test('jit profile: saved and loaded back, the harts\' starts without repeats, in place of the last run\'s', () => withDir((dir) => {
  const path = join(dir, 'jit', 'k.prof');
  assert.deepEqual([...loadJitProfile(path)], [], 'no profile yet');
  saveJitProfile(path, [[0x44, 0x2000]]);
  saveJitProfile(path, [[0x2000, 0x10], [0x10, 0x3000]]);
  assert.deepEqual([...loadJitProfile(path)], [0x2000, 0x10, 0x3000]);
  assert.deepEqual(readdirSync(join(dir, 'jit')), ['k.prof'], 'no temporary file left');
}));

test('jit profile: a run much shorter than the last one keeps its profile', () => {
  assert.ok(replacesProfile(0, 0), 'no profile yet: the first run writes one');
  assert.ok(replacesProfile(1000, 2800), 'a boot after a longer workload');
  assert.ok(!replacesProfile(100, 1000), 'a run stopped during its boot');
});

test('jit profile: at most MAX_PROFILE_STARTS starts are kept, the first ones', () => withDir((dir) => {
  const path = join(dir, 'k.prof');
  const run = Array.from({ length: MAX_PROFILE_STARTS + 10 }, (_, i) => 2 * i);
  saveJitProfile(path, [run.slice(0, 100), run]);
  const got = loadJitProfile(path);
  assert.equal(got.length, MAX_PROFILE_STARTS);
  assert.deepEqual([...got.slice(-2)], [2 * (MAX_PROFILE_STARTS - 2), 2 * (MAX_PROFILE_STARTS - 1)]);
}));

test('jit profile: a file that is not a whole profile is no profile', () => withDir((dir) => {
  const path = join(dir, 'k.prof');
  const header = (count: number, extra: number) => {
    const b = Buffer.alloc(12 + 4 * extra);
    b.write('TSVJITP1', 0, 'latin1');
    b.writeUInt32LE(count, 8);
    return b;
  };
  const bad: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['short header', Buffer.from('TSVJITP1\x01')],
    ['bad magic', Buffer.concat([Buffer.from('TSVJITP2'), header(1, 1).subarray(8)])],
    ['count past the end', header(3, 2)],
    ['bytes after the last start', header(1, 2)],
    ['count over the limit', header(MAX_PROFILE_STARTS + 1, MAX_PROFILE_STARTS + 1)],
    ['count of 2^32 - 1', header(0xffff_ffff, 1)],
  ];
  for (const [what, bytes] of bad) {
    writeFileSync(path, bytes);
    assert.deepEqual([...loadJitProfile(path)], [], what);
  }
  writeFileSync(path, header(0, 0));
  assert.deepEqual([...loadJitProfile(path)], [], 'an empty profile');
  assert.deepEqual([...loadJitProfile(dir)], [], 'a folder');
  writeFileSync(path, Buffer.concat([header(MAX_PROFILE_STARTS, MAX_PROFILE_STARTS), Buffer.alloc(1 << 20)]));
  assert.deepEqual([...loadJitProfile(path)], [], 'a file larger than any profile');
  rmSync(path);
  execFileSync('mkfifo', [path]);
  assert.deepEqual([...loadJitProfile(path)], [], 'a FIFO (not read: that would wait for a writer)');
}));

test('jit profile: a profile that cannot be written throws and leaves no temporary file', () => withDir((dir) => {
  const path = join(dir, 'k.prof');
  mkdirSync(join(path, 'x'), { recursive: true }); // a non-empty folder where the profile goes: rename fails
  assert.throws(() => saveJitProfile(path, [[0x80]]), /EISDIR|ENOTEMPTY|EEXIST/);
  assert.deepEqual(readdirSync(dir), ['k.prof']);
  assert.deepEqual([...loadJitProfile(path)], []);
}));
