/**
 * The default image end to end. Downloads ~115 MB, so it runs only with
 * TSVISOR_NET_TESTS=1; the cache lives in $TSVISOR_TEST_HOME (default
 * <tmpdir>/tsvisor-test-home) and is reused by later runs. When qemu-system-riscv64 is
 * installed, the image is also booted to check the /init contract.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpioDir, cpioFile, cpioNewc, ensureDefaultImage, parseRiscvImageHeader } from '../../src/images/index.js';
import type { DefaultImage, ProgressEvent } from '../../src/images/index.js';
import { hasCommand, tempDir } from './helpers.js';

test('RISC-V Image header', () => {
  const h = new Uint8Array(64);
  const dv = new DataView(h.buffer);
  dv.setBigUint64(0x08, 0x200000n, true);
  dv.setBigUint64(0x10, 0x2000000n, true);
  dv.setUint32(0x20, 0x2, true);
  assert.equal(parseRiscvImageHeader(h), undefined);
  h.set([0x52, 0x53, 0x43, 0x05], 0x38);
  assert.deepEqual(parseRiscvImageHeader(h), { textOffset: 0x200000, imageSize: 0x2000000, flags: 0, version: 2 });
});

const net = process.env.TSVISOR_NET_TESTS === '1';
const home = process.env.TSVISOR_TEST_HOME ?? join(tmpdir(), 'tsvisor-test-home');

test('ensureDefaultImage downloads, caches and builds', { skip: net ? false : 'set TSVISOR_NET_TESTS=1 to download the default image (~115 MB)', timeout: 15 * 60_000 }, async (t) => {
  const events: ProgressEvent[] = [];
  const img = await ensureDefaultImage({ home, onProgress: (e) => events.push(e) });
  t.diagnostic(`kernel ${img.kernelVersion}: ${img.kernel}; initrd ${statSync(img.initrd).size} bytes; ${img.modules.length} modules`);
  assert.match(img.kernelVersion, /^\d+\.\d+.*-riscv64$/);
  const head = readFileSync(img.kernel).subarray(0, 64);
  assert.equal(parseRiscvImageHeader(head)?.textOffset, 0x200000);
  for (const m of ['virtio_mmio', 'virtio_blk', 'virtio_net', 'ext4', 'jbd2', 'isofs', '9p', '9pnet_virtio', 'vfat']) {
    assert.ok(img.modules.includes(m), m);
  }
  assert.ok(img.modules.indexOf('jbd2') < img.modules.indexOf('ext4'));
  assert.ok(!events.some((e) => e.kind === 'warning'), JSON.stringify(events.filter((e) => e.kind === 'warning')));

  // Cached: immediate, no apt at all.
  const t0 = Date.now();
  const again = await ensureDefaultImage({ home, onProgress: (e) => assert.fail(`unexpected progress ${JSON.stringify(e)}`) });
  assert.deepEqual(again, img);
  assert.ok(Date.now() - t0 < 1000, 'cached call is fast');

  if (hasCommand('cpio')) {
    const r = spawnSync('cpio', ['-it', '--quiet', '-F', img.initrd], { encoding: 'utf8', maxBuffer: 1 << 26 });
    assert.equal(r.status, 0, r.stderr);
    const names = new Set(r.stdout.split('\n'));
    for (const n of ['init', 'bin/busybox', 'bin/sh', 'dev/console', 'etc/tsvisor/modules',
      `lib/modules/${img.kernelVersion}/kernel/fs/ext4/ext4.ko`, `lib/modules/${img.kernelVersion}/kernel/drivers/virtio/virtio_mmio.ko`]) {
      assert.ok(names.has(n), n);
    }
  }

  if (!hasCommand('qemu-system-riscv64')) {
    t.diagnostic('qemu-system-riscv64 not installed: boot check skipped');
    return;
  }
  await bootCheck(t, img);
});

/** Boots the image under QEMU with an appended per-run archive and checks the /init contract. */
async function bootCheck(t: { after: (fn: () => void) => void; diagnostic: (msg: string) => void }, img: DefaultImage): Promise<void> {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const withDisk = hasCommand('mke2fs', ['-V']);
  const args: string[] = [];
  let mounts = '';
  if (withDisk) {
    const root = join(dir, 'root');
    spawnSync('mkdir', ['-p', root]);
    writeFileSync(join(root, 'hello.txt'), 'hello from ext4\n');
    const disk = join(dir, 'disk.ext4');
    assert.equal(spawnSync('mke2fs', ['-q', '-t', 'ext4', '-d', root, disk, '8M']).status, 0);
    args.push('-drive', `file=${disk},format=raw,if=none,id=d0`, '-device', 'virtio-blk-device,drive=d0');
    mounts = '/dev/vda /mnt/disk ext4\n';
  }
  const cmd = `hostname; printf 'a\\nb\\n'; ${withDisk ? 'cat /mnt/disk/hello.txt; ' : ''}pwd; echo "$HOME $TERM"; exit 42\n`;
  const extra = cpioNewc([cpioDir('tsvisor'), cpioFile('tsvisor/cmd', cmd), ...(mounts ? [cpioFile('tsvisor/mounts', mounts)] : [])]);
  const initrd = join(dir, 'initrd.cpio');
  writeFileSync(initrd, Buffer.concat([readFileSync(img.initrd), extra]));
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn('qemu-system-riscv64', [
      '-M', 'virt', '-m', '512', '-nographic', '-bios', 'default', '-no-reboot', '-kernel', img.kernel, '-initrd', initrd,
      '-append', 'console=ttyS0 quiet tsvisor.hostname=boot-test tsvisor.term=xterm', ...args,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    p.stdout.on('data', (d: Buffer) => (buf += d.toString('latin1')));
    const timer = setTimeout(() => {
      p.kill();
      reject(new Error(`guest did not power off in time; output: ${buf.slice(-2000)}`));
    }, 240_000);
    p.on('close', () => {
      clearTimeout(timer);
      resolve(buf);
    });
  });
  const expected = `boot-test\na\nb\n${withDisk ? 'hello from ext4\n' : ''}/root\n/root xterm\n\x1fTSVISOR-EXIT 42\x1f`;
  assert.ok(out.includes(expected), `guest output: ${JSON.stringify(out.slice(-1500))}`);
  t.diagnostic('booted under qemu: /init contract holds');
}
