/**
 * End to end: the Debian image (issue "A whole Debian system on its own disk").
 *
 * Builds (or reuses, from the cache in $TSVISOR_HOME) the image with `tsvisor image pull
 * debian`: stage 1 on the host (fakeroot, mke2fs, sfdisk, depmod), stage 2 inside tsvisor.
 * Then boots it as a user would: through its firmware (S-mode U-Boot) and the kernel and
 * initrd in its own /boot, systemd as PID 1, the command through the guest agent.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describeRun, findTool, tsvisor } from './helpers.js';

interface ListedImage { name: string; path: string; size: number; created: string; current: boolean }

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (b) => h.update(b)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });
}

describe('the Debian image (end to end)', { timeout: 90 * 60_000 }, () => {
  let image: ListedImage;
  let baseHash: string;
  let root: string | undefined;
  let env: Record<string, string> = {};

  after(async () => {
    if (!root) return;
    await tsvisor(['daemon', 'stop'], { env, timeoutMs: 60_000 }).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  before(async () => {
    const pull = await tsvisor(['image', 'pull', 'debian'], { timeoutMs: 75 * 60_000 });
    assert.equal(pull.code, 0, describeRun('tsvisor image pull debian', pull));
    const list = await tsvisor(['image', 'list', '--json']);
    assert.equal(list.code, 0, describeRun('tsvisor image list --json', list));
    const images = JSON.parse(list.stdout) as ListedImage[];
    const found = images.find((i) => i.name === 'debian' && i.current);
    assert.ok(found, `image list shows no current debian image: ${list.stdout}`);
    image = found;
    baseHash = await sha256File(image.path);
  });

  it('image list shows the image with its path, size and build date', () => {
    assert.match(image.path, /debian-[0-9a-f]{16}\/disk\.img$/);
    assert.ok(image.size > 100 * 1024 * 1024 && image.size < 4 * 1024 ** 3, `size ${image.size}`);
    assert.ok(!Number.isNaN(Date.parse(image.created)), `created ${image.created}`);
  });

  it('run --image debian runs a command in a real Debian 13 and exits with its status', async () => {
    const r = await tsvisor(['run', '--image', 'debian', '--memory', '1G', '--', 'sh', '-c', '. /etc/os-release; echo $ID $VERSION_ID; exit 3'], { timeoutMs: 15 * 60_000 });
    assert.equal(r.code, 3, describeRun('run --image debian', r));
    assert.equal(r.stdout.trim(), 'debian 13', describeRun('run --image debian', r));
  });

  it('boots systemd to a running system with no failed unit, from the kernel in its own /boot', async () => {
    const cmd = 'systemctl is-system-running --wait; echo pid1=$(cat /proc/1/comm); echo kernel=$(uname -r);'
      + ' ls /boot/vmlinux-$(uname -r) /boot/initrd.img-$(uname -r); systemctl --failed --no-legend --plain';
    const r = await tsvisor(['run', '--image', 'debian', '--memory', '1G', '--', 'sh', '-c', cmd], { timeoutMs: 15 * 60_000 });
    assert.equal(r.code, 0, describeRun('run --image debian', r));
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], 'running', describeRun('systemctl is-system-running', r));
    assert.ok(lines.includes('pid1=systemd'), r.stdout);
    const kver = lines.find((l) => l.startsWith('kernel='))!.slice('kernel='.length);
    assert.ok(lines.includes(`/boot/vmlinux-${kver}`) && lines.includes(`/boot/initrd.img-${kver}`), r.stdout);
    assert.equal(lines.filter((l) => l.includes('failed')).length, 0, r.stdout);
  });

  it('vm create --image: a VM of its own on a qcow2 overlay, named, grown, and keeping its changes across a restart', async () => {
    // a daemon of its own, sharing the image cache
    root = mkdtempSync(join(tmpdir(), 'tsvisor-e2e-debian-'));
    const home = join(root, 'home');
    mkdirSync(home);
    mkdirSync(join(root, 'run'), { mode: 0o700 });
    symlinkSync(dirname(dirname(dirname(image.path))), join(home, 'cache'));
    env = { TSVISOR_HOME: home, XDG_RUNTIME_DIR: join(root, 'run') };
    const cli = async (args: string[], timeoutMs = 60_000) => {
      const r = await tsvisor(args, { env, timeoutMs });
      assert.equal(r.code, 0, describeRun(`tsvisor ${args.join(' ')}`, r));
      return r.stdout;
    };
    await cli(['vm', 'create', 'web', '--image', 'debian', '--disk-size', '3G', '--memory', '1G', '--start']);
    const overlay = join(home, 'vms', 'web', 'system.qcow2');
    assert.ok(statSync(overlay).isFile(), 'the VM has its own overlay');
    // the agent answers once systemd started it
    let out = '';
    for (let i = 0; i < 90 && !out; i++) {
      const r = await tsvisor(['vm', 'exec', 'web', '--', 'sh', '-c', 'systemctl is-system-running --wait; hostname; df -B1M --output=size / | tail -1; echo kept > /root/marker; sync'], { env, timeoutMs: 10 * 60_000 });
      if (r.code === 0) out = r.stdout;
      else await new Promise((res) => setTimeout(res, 10_000));
    }
    const [state, hostname, sizeMiB] = out.trim().split('\n').map((l) => l.trim());
    assert.equal(state, 'running', out);
    assert.equal(hostname, 'web', out);
    assert.ok(Number(sizeMiB) > 2800, `the root file system grew to the 3G disk: ${sizeMiB} MiB`);
    await cli(['vm', 'restart', 'web', '--timeout', '300'], 6 * 60_000);
    let after2 = '';
    for (let i = 0; i < 90 && !after2; i++) {
      const r = await tsvisor(['vm', 'exec', 'web', '--', 'sh', '-c', 'cat /root/marker; hostname'], { env, timeoutMs: 10 * 60_000 });
      if (r.code === 0) after2 = r.stdout;
      else await new Promise((res) => setTimeout(res, 10_000));
    }
    assert.equal(after2.trim(), 'kept\nweb');
    await cli(['vm', 'stop', 'web', '--timeout', '300'], 6 * 60_000);
    const qemuImg = findTool('qemu-img');
    if (qemuImg) {
      const check = spawnSync(qemuImg, ['check', overlay], { encoding: 'utf8' });
      assert.equal(check.status, 0, `qemu-img check ${overlay}: ${check.stdout}${check.stderr}`);
    }
    assert.ok(statSync(overlay).blocks * 512 < 200 * 1024 * 1024, 'the overlay holds only the VM\'s changes');
    await cli(['vm', 'delete', 'web']);
  });

  it('never writes the base image', async () => {
    assert.equal(await sha256File(image.path), baseHash);
  });
});
