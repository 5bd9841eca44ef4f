import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ImageError, cachePaths, ensureDefaultImage, tsvisorHome } from '../../src/images/index.js';
import { run } from '../../src/images/exec.js';
import { withFileLock } from '../../src/images/lock.js';
import { tempDir } from './helpers.js';

test('tsvisor home and cache layout', () => {
  assert.equal(tsvisorHome({ TSVISOR_HOME: '/srv/tsv' }), '/srv/tsv');
  assert.equal(tsvisorHome({ XDG_DATA_HOME: '/x/data', HOME: '/home/u' }), '/x/data/tsvisor');
  assert.equal(tsvisorHome({ XDG_DATA_HOME: 'relative', HOME: '/home/u' }), '/home/u/.local/share/tsvisor');
  assert.equal(tsvisorHome({ HOME: '/home/u' }), '/home/u/.local/share/tsvisor');
  assert.deepEqual(cachePaths('/h'), {
    home: '/h', cache: '/h/cache', apt: '/h/cache/apt', debs: '/h/cache/debs', extract: '/h/cache/extract', images: '/h/cache/images',
  });
});

test('a missing host tool is a one-line ImageError', async () => {
  await assert.rejects(run('tsvisor-no-such-tool', [], { purpose: 'test things', providedBy: 'nothing' }), (e: Error) => {
    assert.ok(e instanceof ImageError);
    assert.equal(e.message, 'tsvisor-no-such-tool is not installed, needed to test things (apt-get install nothing)');
    return true;
  });
});

test('no apt sources and no cache: ensureDefaultImage names the problem', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  await assert.rejects(
    ensureDefaultImage({ home: join(dir, 'home'), etcApt: join(dir, 'etc-apt'), env: {}, quiet: true }),
    (e: Error) => e instanceof ImageError && /no Debian archive found/.test(e.message) && !e.message.includes('\n'),
  );
  assert.ok(!existsSync(join(dir, 'home', 'cache', 'default-image.lock')), 'lock released');
});

test('lock files serialize and stale ones are taken over', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const lock = join(dir, 'x.lock');
  const log: string[] = [];
  const job = (name: string) =>
    withFileLock(lock, async () => {
      log.push(`${name}+`);
      await new Promise((r) => setTimeout(r, 50));
      log.push(`${name}-`);
    });
  await Promise.all([job('a'), job('b')]);
  assert.deepEqual(log, ['a+', 'a-', 'b+', 'b-']);
  writeFileSync(lock, '999999999\n'); // no such process
  assert.equal(await withFileLock(lock, async () => 7), 7);
  assert.ok(!existsSync(lock));
});
