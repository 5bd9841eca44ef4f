import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import {
  FALLBACK_APPLETS, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, agentScript, buildInitramfs, busyboxApplets, initScript, initramfsEntries,
  moduleDeviceTypes,
} from '../../src/images/index.js';
import type { InitramfsInputs } from '../../src/images/index.js';
import { hasCommand, syntheticModule, tempDir } from './helpers.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A fake busybox: some bytes, then an applet_names table as busybox lays it out. */
function fakeBusybox(names: string[]): Uint8Array {
  return enc.encode(`\x7fELF junk [ not-a-table\0 ${names.join('\0')}\0\0/var/log/wtmp\0more`);
}

const REAL_LIKE = ['[', '[[', 'acpid', 'ash', 'awk', 'cat', 'cttyhack', 'dd', 'echo', 'halt', 'hostname', 'insmod', 'ls', 'mkdir', 'modprobe',
  'mount', 'poweroff', 'printf', 'reboot', 'setsid', 'sh', 'sleep', 'sort', 'stty', 'sync', 'umount', 'uname', 'usleep', 'busybox',
  'dpkg-deb', 'ssl_client', 'zcat'].sort();

/** Enough names for a plausible table (>= 40). */
const ALL_NAMES = REAL_LIKE.concat([...Array(20).keys()].map((i) => `zz${String(i).padStart(2, '0')}`));

function inputs(): InitramfsInputs {
  return {
    busybox: fakeBusybox(ALL_NAMES),
    kernelVersion: '6.12.0-test-riscv64',
    modules: [
      { name: 'crc16', path: 'kernel/lib/crc16.ko', data: syntheticModule(['name=crc16']), depends: [] },
      { name: 'jbd2', path: 'kernel/fs/jbd2/jbd2.ko', data: syntheticModule(['name=jbd2']), depends: [] },
      { name: 'ext4', path: 'kernel/fs/ext4/ext4.ko', data: syntheticModule(['name=ext4']), depends: ['jbd2', 'crc16'] },
    ],
  };
}

test('busybox applet table is read from the binary', () => {
  assert.deepEqual(busyboxApplets(fakeBusybox(ALL_NAMES)), ALL_NAMES);
  assert.deepEqual(busyboxApplets(enc.encode('no table here')), [...FALLBACK_APPLETS]);
});

test('initramfs layout', () => {
  const entries = initramfsEntries(inputs());
  const byPath = new Map(entries.map((e) => [e.path, e]));
  // Parents come before children, no duplicates.
  const seen = new Set<string>();
  for (const e of entries) {
    const parent = e.path.split('/').slice(0, -1).join('/');
    if (parent) assert.ok(seen.has(parent), `${parent} before ${e.path}`);
    assert.ok(!seen.has(e.path), `duplicate ${e.path}`);
    seen.add(e.path);
  }
  const type = (p: string): number => byPath.get(p)!.mode & S_IFMT;
  assert.equal(type('init'), S_IFREG);
  assert.equal(byPath.get('init')!.mode & 0o777, 0o755);
  assert.equal(type('bin/busybox'), S_IFREG);
  assert.equal(type('dev/console'), S_IFCHR);
  assert.equal(byPath.get('dev/console')!.rdevMajor, 5);
  assert.equal(byPath.get('dev/console')!.rdevMinor, 1);
  assert.equal(type('tsvisor'), S_IFDIR);
  assert.equal(byPath.get('tmp')!.mode & 0o7777, 0o1777);
  for (const a of ['sh', 'mount', 'insmod', 'stty', 'setsid', 'cttyhack', 'zz19', '[', 'dpkg-deb']) {
    assert.equal(type(`bin/${a}`), S_IFLNK, a);
    assert.equal(byPath.get(`bin/${a}`)!.symlinkTarget, 'busybox');
  }
  assert.ok(!byPath.has('bin/busybox') || type('bin/busybox') === S_IFREG);
  for (const a of ['poweroff', 'reboot', 'halt']) assert.equal(type(`bin/${a}`), S_IFREG, `${a} is a script`);
  for (const l of ['sbin', 'usr/bin', 'usr/sbin']) assert.equal(type(l), S_IFLNK);
  const mods = dec.decode(byPath.get('etc/tsvisor/modules')!.data);
  assert.equal(
    mods,
    '/lib/modules/6.12.0-test-riscv64/kernel/lib/crc16.ko 2\n/lib/modules/6.12.0-test-riscv64/kernel/fs/jbd2/jbd2.ko 2\n' +
      '/lib/modules/6.12.0-test-riscv64/kernel/fs/ext4/ext4.ko 2\n',
  );
  const dep = dec.decode(byPath.get('lib/modules/6.12.0-test-riscv64/modules.dep')!.data);
  assert.match(dep, /^kernel\/fs\/ext4\/ext4\.ko: kernel\/fs\/jbd2\/jbd2\.ko kernel\/lib\/crc16\.ko$/m);
  assert.match(dep, /^kernel\/lib\/crc16\.ko:$/m);
  assert.equal(type('lib/modules/6.12.0-test-riscv64/kernel/fs/ext4/ext4.ko'), S_IFREG);
  assert.match(dec.decode(byPath.get('etc/profile')!.data), /poweroff\(\)/);
});

/** Syntax-check `script` with the host's POSIX shell (`sh -n`); noted, not failed, without one. */
function checkShellSyntax(t: TestContext, name: string, script: string): void {
  const shell = ['dash', 'sh'].find((c) => hasCommand(c, ['-c', 'true']));
  if (!shell) {
    t.diagnostic('no host sh: syntax not checked');
    return;
  }
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  writeFileSync(join(dir, name), script);
  const r = spawnSync(shell, ['-n', join(dir, name)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

test('modules are loaded for the virtio devices that need them, with their dependencies', () => {
  const mod = (name: string, depends: string[] = []) => ({ name, path: `kernel/${name}.ko`, data: new Uint8Array(0), depends });
  const types = moduleDeviceTypes([
    mod('virtio_mmio'), mod('scsi_common'), mod('scsi_mod', ['scsi_common']), mod('virtio_scsi', ['scsi_mod']),
    mod('cdrom'), mod('sr_mod', ['scsi_mod', 'cdrom']), mod('crc16'), mod('ext4', ['crc16']), mod('isofs', ['cdrom']),
    mod('drm'), mod('virtio_gpu', ['drm']), mod('mystery', ['crc16']),
  ]);
  assert.equal(types.get('virtio_mmio'), null, 'no rule, no dependent: always');
  assert.deepEqual(types.get('scsi_common'), [8], 'through scsi_mod, for virtio_scsi and sr_mod');
  assert.deepEqual(types.get('cdrom'), [2, 8], 'for sr_mod (8) and isofs (2, 8)');
  assert.deepEqual(types.get('drm'), [16]);
  assert.deepEqual(types.get('ext4'), [2]);
  assert.equal(types.get('crc16'), null, 'needed by a module loaded always');
  assert.equal(types.get('mystery'), null);
});

test('/init keeps its contract', (t) => {
  const s = initScript();
  assert.ok(s.startsWith('#!/bin/sh\n'));
  for (const needle of [
    'mount -t proc', 'mount -t sysfs', 'mount -t devtmpfs', 'mount -t devpts', 'tmpfs /tmp', 'tmpfs /run',
    'tsvisor.hostname=', 'tsv_hostname=tsvisor', 'tsvisor.verbose', 'tsvisor.term=', 'tsv_term=linux',
    '/etc/tsvisor/modules', '/tsvisor/mounts', '/tsvisor/cmd', '/tsvisor/stdin', 'stty -F /dev/console raw -echo',
    'sh /tsvisor/cmd < /dev/null', 'setsid cttyhack sh /tsvisor/cmd', 'export HOME=/root', 'cd /root',
    'export PATH=/usr/sbin:/usr/bin:/sbin:/bin', "printf '\\037TSVISOR-EXIT %d\\037' \"$tsv_status\" > /dev/console",
    'setsid cttyhack sh -l', 'sync', 'poweroff -f',
  ]) {
    assert.ok(s.includes(needle), `init contains ${needle}`);
  }
  // The marker comes after the command and before power-off.
  assert.ok(s.indexOf('sh /tsvisor/cmd < /dev/null') < s.indexOf('TSVISOR-EXIT'));
  assert.ok(s.indexOf('TSVISOR-EXIT') < s.lastIndexOf('poweroff -f'));
  checkShellSyntax(t, 'init', s);
});

test('the guest agent is in the image and /init starts it', (t) => {
  const byPath = new Map(initramfsEntries(inputs()).map((e) => [e.path, e]));
  const agent = byPath.get('bin/tsvisor-agent');
  assert.ok(agent);
  assert.equal(agent.mode & S_IFMT, S_IFREG);
  assert.equal(agent.mode & 0o777, 0o755);
  const s = agentScript();
  assert.equal(dec.decode(agent.data), s);
  for (const needle of ['org.tsvisor.agent', '/sys/class/virtio-ports/', 'H ok', 'base64 -w 0', 'base64 -d', 'mkfifo', 'poweroff -f', 'bs=32768']) {
    assert.ok(s.includes(needle), `agent contains ${needle}`);
  }
  const init = initScript();
  assert.ok(init.includes('/bin/tsvisor-agent; sleep 1; done'), 'started and restarted');
  assert.ok(init.indexOf('/bin/tsvisor-agent') < init.indexOf('if [ -f /tsvisor/cmd ]'), 'started before the command or the shell');
  checkShellSyntax(t, 'agent', s);
});

test('the archive lists with the host cpio', (t) => {
  if (!hasCommand('cpio')) {
    t.skip('cpio is not installed (apt-get install cpio)');
    return;
  }
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const file = join(dir, 'initramfs.cpio');
  const archive = buildInitramfs(inputs());
  assert.equal(archive.length % 4, 0);
  writeFileSync(file, archive);
  const r = spawnSync('cpio', ['-it', '--quiet', '-F', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const names = r.stdout.split('\n');
  for (const n of ['init', 'bin/busybox', 'bin/sh', 'dev/console', 'etc/tsvisor/modules', 'lib/modules/6.12.0-test-riscv64/kernel/fs/ext4/ext4.ko']) {
    assert.ok(names.includes(n), n);
  }
});
