/**
 * qcow2 disks end to end: `tsvisor disk create` makes two copy-on-write overlays over one
 * ext4 base image; one `tsvisor run` boots the Debian kernel with both (/dev/vda,
 * /dev/vdb), reads the base's files through them and writes different files into each.
 * Afterwards the base is unchanged, `qemu-img check` finds both overlays clean, and
 * `qemu-img convert` + debugfs/e2fsck show exactly what the guest wrote.
 *
 * Needs the default image (`tsvisor image pull`), mke2fs, debugfs, e2fsck and qemu-img.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bytesHash, describeRun, fileHash, findTool, host, pseudoRandomBytes, results, tsvisor } from './helpers.js';

const BOOT_TIMEOUT_MS = 6 * 60_000;

describe('qcow2 overlays in a VM (end to end)', { timeout: 15 * 60_000 }, () => {
  let work = '';
  const tools: Record<string, string> = {};
  before(async () => {
    for (const t of ['mke2fs', 'debugfs', 'e2fsck', 'qemu-img']) {
      const p = findTool(t);
      if (!p) throw new Error(`this test needs the host tool "${t}" (Debian: apt-get install e2fsprogs qemu-utils)`);
      tools[t] = p;
    }
    const pull = await tsvisor(['image', 'pull'], { timeoutMs: 20 * 60_000 });
    assert.equal(pull.code, 0, describeRun('tsvisor image pull', pull));
    work = mkdtempSync(join(tmpdir(), 'tsvisor-e2e-qcow2-'));
  }, { timeout: 25 * 60_000 });
  after(() => { if (work && !process.env.TSVISOR_E2E_KEEP) rmSync(work, { recursive: true, force: true }); });

  test('two overlays over one base: the guest reads the base and writes its own data into each', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
    const files = join(work, 'files');
    mkdirSync(files);
    const big = pseudoRandomBytes(3 * 1024 * 1024, 0x5eed);
    writeFileSync(join(files, 'big.bin'), big);
    writeFileSync(join(files, 'hello.txt'), 'from the base\n');
    const base = join(work, 'base.img');
    host(tools['mke2fs'], ['-q', '-t', 'ext4', '-F', '-d', files, base, '48M']);
    const baseHash = fileHash(base);
    for (const vm of ['vm1', 'vm2']) {
      const c = await tsvisor(['disk', 'create', join(work, `${vm}.qcow2`), '--backing', 'base.img'], { timeoutMs: 60_000 });
      assert.equal(c.code, 0, describeRun('disk create', c));
    }
    const script = [
      'r() { echo "@@ $*"; }',
      'mkdir -p /a /b',
      'mount -t ext4 /dev/vda /a; r mount-a $?',
      'mount -t ext4 /dev/vdb /b; r mount-b $?',
      'r hello-a "$(cat /a/hello.txt)"',
      'r big-b "$(md5sum < /b/big.bin | cut -d" " -f1)"',
      'echo "written in vm1" > /a/note.txt',
      'dd if=/dev/urandom of=/a/rand.bin bs=64k count=40 2>/dev/null; r rand-a "$(md5sum < /a/rand.bin | cut -d" " -f1)"',
      'echo "written in vm2" > /b/note.txt',
      'rm /b/big.bin; r rm-b $?',
      'sync; umount /a; r umount-a $?; umount /b; r umount-b $?',
    ].join('\n');
    const r = await tsvisor(['run', '--disk', join(work, 'vm1.qcow2'), '--disk', join(work, 'vm2.qcow2'), '--', 'sh', '-c', script], { timeoutMs: BOOT_TIMEOUT_MS });
    t.diagnostic(`boot + guest work: ${r.seconds.toFixed(1)} s`);
    assert.equal(r.code, 0, describeRun('tsvisor run', r));
    const res = results(r);
    for (const k of ['mount-a', 'mount-b', 'rm-b', 'umount-a', 'umount-b']) assert.equal(res.get(k), '0', `${k}\n${describeRun('run', r)}`);
    assert.equal(res.get('hello-a'), 'from the base');
    assert.equal(res.get('big-b'), bytesHash(big, 'md5'));

    assert.equal(fileHash(base), baseHash, 'the base image was written');
    for (const vm of ['vm1', 'vm2']) {
      const img = join(work, `${vm}.qcow2`);
      const check = host(tools['qemu-img'], ['check', img]).toString();
      assert.match(check, /No errors were found on the image/, check);
      const raw = join(work, `${vm}.raw`);
      host(tools['qemu-img'], ['convert', '-O', 'raw', img, raw]);
      host(tools['e2fsck'], ['-fn', raw]); // exits non-zero on any file system error
      assert.equal(host(tools['debugfs'], ['-R', 'cat /note.txt', raw]).toString(), `written in ${vm}\n`);
      assert.equal(host(tools['debugfs'], ['-R', 'cat /hello.txt', raw]).toString(), 'from the base\n');
    }
    const dump = join(work, 'rand.bin');
    host(tools['debugfs'], ['-R', `dump /rand.bin ${dump}`, join(work, 'vm1.raw')]);
    assert.equal(fileHash(dump, 'md5'), res.get('rand-a'));
    const ls2 = host(tools['debugfs'], ['-R', 'ls /', join(work, 'vm2.raw')]).toString();
    assert.doesNotMatch(ls2, /big\.bin/, 'vm2 deleted big.bin');
    const ls1 = host(tools['debugfs'], ['-R', 'ls /', join(work, 'vm1.raw')]).toString();
    assert.match(ls1, /big\.bin/, 'vm1 still has big.bin');
  });
});
