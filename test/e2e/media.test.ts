/**
 * The CD-ROM drive end to end, through the daemon and the guest's own virtio_scsi, sr_mod
 * and isofs (default image):
 *   - an ISO made with xorriso holding a 50 MiB file: `vm create --cdrom ISO`, then in the
 *     guest `mount -o ro /dev/sr0` and the file's sha256 is the host's;
 *   - the guest sees a SCSI CD-ROM (`/sys/block/sr0`, device type 5) and `vm info` shows the disc;
 *   - on the running VM: `vm cdrom eject` is refused while the guest has the disc mounted
 *     (the guest keeps reading it), works once it is unmounted (the guest's drive is empty),
 *     and `vm cdrom insert` of ISO B gives the guest B, with no reboot;
 *   - bad input: an ISO that does not exist (create, insert) is one line of error, and
 *     nothing changes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { describeRun, findTool, host, pseudoRandomBytes, tempTsvisorHome, tsvisor, withVmLogs, type RunResult } from './helpers.js';

const T = 60_000;
const VM = `e2e-cd-${process.pid.toString(36)}`;
let root = '';
let env: Record<string, string> = {};

async function cli(args: string[]): Promise<RunResult> {
  const r = await tsvisor(args, { env, timeoutMs: 3 * T });
  assert.equal(r.code, 0, describeRun(`tsvisor ${args.join(' ')}`, r));
  return r;
}

async function guest(script: string): Promise<string> {
  return (await cli(['vm', 'exec', VM, '--', 'sh', '-c', script])).stdout;
}

before(() => {
  ({ root, env } = tempTsvisorHome('tsvisor-e2e-media-'));
});

after(async () => {
  await tsvisor(['vm', 'kill', VM], { env, timeoutMs: T }).catch(() => undefined);
  await tsvisor(['daemon', 'stop'], { env, timeoutMs: T }).catch(() => undefined);
});

test('a CD-ROM drive: the guest mounts /dev/sr0 and reads a 50 MiB file of an xorriso ISO byte for byte', { timeout: 8 * T }, async () => {
  const xorriso = findTool('xorriso');
  assert.ok(xorriso, 'xorriso is installed (npm run test:deps)');
  const tree = join(root, 'tree');
  mkdirSync(tree);
  const blob = pseudoRandomBytes(50 << 20, 13);
  writeFileSync(join(tree, 'big.bin'), blob);
  writeFileSync(join(tree, 'hello.txt'), 'hello from the disc\n');
  const iso = join(root, 'a.iso');
  host(xorriso, ['-as', 'mkisofs', '-quiet', '-V', 'TSVISOR_A', '-J', '-R', '-o', iso, tree]);
  const want = createHash('sha256').update(readFileSync(join(tree, 'big.bin'))).digest('hex');

  const missing = await tsvisor(['vm', 'create', 'nocd', '--cdrom', join(root, 'missing.iso')], { env });
  assert.equal(missing.code, 1, describeRun('create with a missing ISO', missing));
  assert.equal(missing.stderr.split('\n').filter(Boolean).length, 1, `one line: ${missing.stderr}`);
  assert.equal((await tsvisor(['vm', 'info', 'nocd'], { env })).code, 1, 'nothing was created');

  const shared = join(root, 'shared');
  mkdirSync(shared);
  writeFileSync(join(shared, 'note.txt'), 'from the host\n');
  await cli(['vm', 'create', VM, '--memory', '512M', '--network', 'none', '--cdrom', iso, '--share', `${shared}:data`]);
  await withVmLogs(() => join(root, 'home'), [VM], async () => {
    await cli(['vm', 'start', VM]);
    const deadline = Date.now() + 3 * T;
    while ((await tsvisor(['vm', 'exec', VM, '--', 'true'], { env })).code !== 0) {
      assert.ok(Date.now() < deadline, 'the guest agent answers');
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.equal((await guest('cat /sys/block/sr0/device/type')).trim(), '5', 'a SCSI CD-ROM');
    const out = await guest('mkdir -p /mnt/cd && mount -o ro /dev/sr0 /mnt/cd && cat /mnt/cd/hello.txt && sha256sum /mnt/cd/big.bin');
    assert.match(out, /^hello from the disc\n/);
    assert.equal(out.split('\n')[1].split(' ')[0], want, 'the 50 MiB file reads byte for byte');
    const info = JSON.parse((await cli(['vm', 'info', VM, '--json'])).stdout);
    assert.equal(info.definition.cdrom, iso);
    assert.deepEqual(info.cdrom, { path: iso, locked: true }, 'mounted: the guest holds the tray locked');

    // a mounted disc: the eject is refused and the guest keeps reading
    const busy = await tsvisor(['vm', 'cdrom', 'eject', VM], { env });
    assert.equal(busy.code, 1, describeRun('eject a mounted disc', busy));
    assert.match(busy.stderr, /^tsvisor: cannot eject the disc of .*: the guest holds the tray locked \(the disc is mounted\): unmount it in the guest first, or eject with --force\n$/);
    assert.equal((await guest('sync; echo 3 > /proc/sys/vm/drop_caches; sha256sum /mnt/cd/big.bin')).split(' ')[0], want);
    // unmounted: ejected; the guest's drive is empty
    await guest('umount /mnt/cd');
    await cli(['vm', 'cdrom', 'eject', VM]);
    assert.equal(JSON.parse((await cli(['vm', 'info', VM, '--json'])).stdout).cdrom.path, null);
    assert.notEqual((await tsvisor(['vm', 'exec', VM, '--', 'mount', '-o', 'ro', '/dev/sr0', '/mnt/cd'], { env })).code, 0, 'no disc to mount');
    // ISO B, with no reboot
    const treeB = join(root, 'treeB');
    mkdirSync(treeB);
    writeFileSync(join(treeB, 'b.txt'), 'disc B\n');
    const isoB = join(root, 'b.iso');
    host(xorriso, ['-as', 'mkisofs', '-quiet', '-V', 'TSVISOR_B', '-J', '-R', '-o', isoB, treeB]);
    const bad = await tsvisor(['vm', 'cdrom', 'insert', VM, join(root, 'nope.iso')], { env });
    assert.equal(bad.code, 1, describeRun('insert a missing ISO', bad));
    assert.equal(bad.stderr.split('\n').filter(Boolean).length, 1, `one line: ${bad.stderr}`);
    const uptime = Number((await guest('cut -d. -f1 /proc/uptime')).trim());
    await cli(['vm', 'cdrom', 'insert', VM, isoB]);
    assert.equal((await guest('mount -o ro /dev/sr0 /mnt/cd && cat /mnt/cd/b.txt')), 'disc B\n');
    assert.ok(Number((await guest('cut -d. -f1 /proc/uptime')).trim()) >= uptime, 'no reboot');
    assert.equal(JSON.parse((await cli(['vm', 'info', VM, '--json'])).stdout).definition.cdrom, isoB, 'the VM keeps disc B');

    // the shared folder, mounted at boot on /mnt/data
    assert.equal(await guest('cat /mnt/data/note.txt && echo from the guest > /mnt/data/back.txt && sync'), 'from the host\n');
    assert.equal(readFileSync(join(shared, 'back.txt'), 'utf8'), 'from the guest\n');
    const live = await tsvisor(['vm', 'share', 'add', VM, `${root}:more`], { env });
    assert.equal(live.code, 1, describeRun('share add on a running VM', live));
    assert.match(live.stderr, /^tsvisor: VM .* is running: shared folders change while it is stopped/);
    assert.deepEqual(JSON.parse((await cli(['vm', 'info', VM, '--json'])).stdout).definition.shares, [{ path: shared, tag: 'data' }]);
  });
});
