/**
 * JIT profiles end to end (src/vmm/jit-profile.ts): the first `tsvisor run` of a kernel
 * writes its profile, the next one is seeded from it and still runs the command right, and
 * `--no-jit-profile` neither reads nor writes it. The kernel is a copy of the default
 * image's, at a path of this test's own, so that its profile is this test's alone.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { describeRun, tempTsvisorHome, tsvisor } from './helpers.js';
import { fileStamp, jitProfilePath, loadJitProfile } from '../../src/vmm/jit-profile.js';

const BOOT_TIMEOUT_MS = 4 * 60_000;
const SEEDED = /(\d+) block starts seeded from the JIT profile/;

describe('JIT profile (end to end)', { timeout: 15 * 60_000 }, () => {
  let root = '';
  let env: Record<string, string> = {};
  let kernel = '';
  let initrd = '';
  let profile = '';

  before(async () => {
    const pull = await tsvisor(['image', 'pull'], { timeoutMs: 20 * 60_000 });
    const lines = pull.stdout.split('\n').map((s) => s.trim());
    const image = lines.find((s) => s.startsWith('/') && s.endsWith('/Image'));
    const cpio = lines.find((s) => s.startsWith('/') && s.endsWith('.cpio'));
    assert.ok(pull.code === 0 && image && cpio, describeRun('tsvisor image pull', pull));
    ({ root, env } = tempTsvisorHome('tsvisor-jitprof-'));
    kernel = join(root, 'Image');
    copyFileSync(image, kernel);
    initrd = cpio;
    profile = jitProfilePath([fileStamp(kernel)], join(env.TSVISOR_HOME, 'cache'));
  });
  after(() => {
    if (profile) rmSync(profile, { force: true }); // in the shared image cache that the home links to
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const run = (word: string, ...extra: string[]) => tsvisor(
    ['run', '--stats', '--network', 'none', '--kernel', kernel, '--initrd', initrd, ...extra, '--', 'echo', word],
    { timeoutMs: BOOT_TIMEOUT_MS, env },
  );

  test('the first run writes a profile, the next one starts from it', { timeout: 3 * BOOT_TIMEOUT_MS }, async () => {
    const first = await run('first');
    assert.equal(first.code, 0, describeRun('first run', first));
    assert.equal(first.stdout.replace(/\r/g, '').trim(), 'first');
    assert.doesNotMatch(first.stderr, SEEDED, 'no profile yet');
    const written = loadJitProfile(profile);
    assert.ok(written.length >= 100, `the first run's profile holds ${written.length} block starts`);

    const second = await run('second');
    assert.equal(second.code, 0, describeRun('second run', second));
    assert.equal(second.stdout.replace(/\r/g, '').trim(), 'second');
    const seeded = Number(SEEDED.exec(second.stderr)?.[1] ?? 0);
    assert.ok(seeded >= written.length / 2, describeRun(`second run: ${seeded} starts seeded of ${written.length}`, second));

    const stamp = statSync(profile).mtimeMs;
    const cold = await run('cold', '--no-jit-profile');
    assert.equal(cold.code, 0, describeRun('--no-jit-profile run', cold));
    assert.equal(cold.stdout.replace(/\r/g, '').trim(), 'cold');
    assert.doesNotMatch(cold.stderr, SEEDED, '--no-jit-profile starts cold');
    assert.ok(existsSync(profile));
    assert.equal(statSync(profile).mtimeMs, stamp, '--no-jit-profile leaves the profile as it was');
  });
});
