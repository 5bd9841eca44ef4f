/**
 * Shared folders end to end, through the guest's own `9p` and `9pnet_virtio` (default
 * image, `tsvisor run --share`):
 *   - a 3 MiB file the host wrote reads byte for byte in the guest, and one the guest wrote
 *     (with directories, a rename and a hard link) reads byte for byte on the host;
 *   - a `readonly` share refuses every write the guest tries, and the host folder stays as
 *     it was;
 *   - symlinks to a host file outside the share (absolute, `../..`), made by the guest or
 *     planted by the host, do not reach it: the guest reads its own namespace or gets an
 *     error, never the host file's bytes;
 *   - bad input: a missing folder, a tag with a comma, an ISO that is not a file: one line
 *     of error, exit status 2.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { describeRun, pseudoRandomBytes, tempTsvisorHome, tsvisor } from './helpers.js';

const T = 60_000;
let root = '';
let env: Record<string, string> = {};

before(() => {
  ({ root, env } = tempTsvisorHome('tsvisor-e2e-shares-'));
});

async function run(args: string[], script: string) {
  const r = await tsvisor(['run', '--network', 'none', ...args, '--', 'sh', '-c', script], { env, timeoutMs: 4 * T });
  assert.equal(r.code, 0, describeRun('tsvisor run', r));
  return r.stdout;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('a shared folder: host bytes read in the guest, guest bytes land on the host, a readonly share refuses writes', { timeout: 6 * T }, async () => {
  const rw = join(root, 'rw');
  const ro = join(root, 'ro');
  mkdirSync(rw);
  mkdirSync(ro);
  const hostBlob = pseudoRandomBytes(3 << 20, 7);
  writeFileSync(join(rw, 'from-host.bin'), hostBlob);
  writeFileSync(join(ro, 'keep.txt'), 'read only\n');
  const out = await run(['--share', `${rw}:data`, '--share', `${ro}:ro,readonly`], [
    'sha256sum /mnt/data/from-host.bin',
    'head -c 1500000 /dev/urandom > /tmp/g.bin && sha256sum /tmp/g.bin',
    'mkdir -p /mnt/data/a/b && cp /tmp/g.bin /mnt/data/a/b/g.bin && mv /mnt/data/a/b/g.bin /mnt/data/a/moved.bin && ln /mnt/data/a/moved.bin /mnt/data/hard.bin',
    'sync',
    'cat /mnt/ro/keep.txt',
    'for op in "touch /mnt/ro/new" "mkdir /mnt/ro/d" "rm /mnt/ro/keep.txt" "cp /tmp/g.bin /mnt/ro/keep.txt"; do if $op 2>/dev/null; then echo "WROTE: $op"; else echo "refused: $op"; fi; done',
  ].join('\n'));
  const lines = out.split('\n');
  assert.equal(lines[0].split(' ')[0], sha(hostBlob), `the host file reads byte for byte in the guest: ${out}`);
  const guestSha = lines[1].split(' ')[0];
  assert.equal(sha(readFileSync(join(rw, 'a', 'moved.bin'))), guestSha, 'the guest file reads byte for byte on the host');
  assert.equal(sha(readFileSync(join(rw, 'hard.bin'))), guestSha, 'and its hard link');
  assert.equal(lines[2], 'read only');
  assert.doesNotMatch(out, /WROTE/, `the readonly share refused every write: ${out}`);
  assert.equal((out.match(/^refused: /gm) ?? []).length, 4);
  assert.deepEqual(readdirSync(ro), ['keep.txt']);
  assert.equal(readFileSync(join(ro, 'keep.txt'), 'utf8'), 'read only\n');
});

test('a shared folder: symlinks out of it, the guest\'s or planted by the host, never read the host file', { timeout: 6 * T }, async () => {
  const share = join(root, 'share');
  const outside = join(root, 'outside');
  mkdirSync(share);
  mkdirSync(outside);
  const secret = 'HOST-SECRET-4711';
  writeFileSync(join(outside, 'secret.txt'), `${secret}\n`);
  symlinkSync(join(outside, 'secret.txt'), join(share, 'planted-abs'));
  symlinkSync('../outside/secret.txt', join(share, 'planted-rel'));
  symlinkSync(outside, join(share, 'planted-dir'));
  const out = await run(['--share', `${share}:s`], [
    `ln -s ${join(outside, 'secret.txt')} /mnt/s/abs`,
    'ln -s ../../outside/secret.txt /mnt/s/up',
    'ln -s /etc/shadow /mnt/s/shadow',
    'for f in abs up shadow planted-abs planted-rel planted-dir/secret.txt; do if cat "/mnt/s/$f" 2>/dev/null; then echo "read $f"; else echo "error $f"; fi; done',
    'cd /mnt/s/.. && ls',
  ].join('\n'));
  assert.ok(!out.includes(secret), `the host file was not read: ${out}`);
  for (const f of ['abs', 'up', 'shadow', 'planted-abs', 'planted-rel', 'planted-dir/secret.txt']) assert.match(out, new RegExp(`^error ${f.replace('/', '\\/')}$`, 'm'), `${f}: ${out}`);
  assert.match(out, /^s$/m, '.. of the mount point is the guest\'s /mnt');
  assert.equal(readFileSync(join(outside, 'secret.txt'), 'utf8'), `${secret}\n`);
});

test('bad --share and --cdrom: one line of error, exit status 2', { timeout: 2 * T }, async () => {
  const dir = join(root, 'bad');
  mkdirSync(dir);
  const cases: Array<[string[], RegExp]> = [
    [['--share', join(root, 'missing') + ':x'], /no such directory/],
    [['--share', `${dir}:a,b`], /invalid --share/],
    [['--share', `${dir}`], /expected HOSTDIR:TAG/],
    [['--cdrom', dir], /--cdrom: .*not a regular file|--cdrom: .*directory/],
    [['--cdrom', join(root, 'missing.iso')], /--cdrom: /],
  ];
  for (const [args, re] of cases) {
    const r = await tsvisor(['run', '--network', 'none', ...args, '--', 'true'], { env, timeoutMs: T });
    assert.equal(r.code, 2, describeRun(args.join(' '), r));
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, `one line: ${r.stderr}`);
    assert.match(lines[0], re);
  }
});
