import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  DEBIAN_IMAGE_NAME, DEBIAN_BUILDER_VERSION, ImageError, cachePaths, debianImageDir, findDebianImage, listImages, planDebianImage, stage2Script,
} from '../../src/images/index.js';
import type { PrivateApt } from '../../src/images/index.js';
import { tempDir } from './helpers.js';

/** A PrivateApt stand-in that must not be reached. */
const noApt = {
  requiredPackages: () => { throw new Error('apt must not be called'); },
  resolveInstall: () => { throw new Error('apt must not be called'); },
} as unknown as PrivateApt;

test('a malformed extra package name is refused before apt runs', async () => {
  for (const bad of ['Foo', 'a b', '-x', '../etc', 'x;rm']) {
    await assert.rejects(planDebianImage(noApt, [bad]), (e: unknown) => e instanceof ImageError && e.message.includes(bad));
  }
});

test('the plan is keyed by every package version, and names the kernel', async () => {
  const apt = (ver: string) => ({
    requiredPackages: async () => ['base-files', 'dpkg'],
    resolveInstall: async (names: string[]) => [
      ...names.filter((n) => n !== 'linux-image-riscv64').map((name) => ({ name, version: '1.0', arch: 'riscv64' })),
      { name: 'linux-image-6.12.9+deb13-riscv64', version: ver, arch: 'riscv64' },
    ],
  }) as unknown as PrivateApt;
  const a = await planDebianImage(apt('6.12.9-1'));
  const b = await planDebianImage(apt('6.12.9-2'));
  assert.equal(a.kernelVersion, '6.12.9+deb13-riscv64');
  assert.match(a.key, /^[0-9a-f]{16}$/);
  assert.notEqual(a.key, b.key);
  assert.equal((await planDebianImage(apt('6.12.9-1'))).key, a.key);
});

test('image list and findDebianImage read only complete builds', () => {
  const tmp = tempDir();
  const paths = cachePaths(tmp.dir);
  const dir = debianImageDir(paths, '0123456789abcdef');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'disk.img'), Buffer.alloc(4096, 1));
  writeFileSync(join(dir, 'uboot.elf'), 'x');
  const manifest = {
    name: DEBIAN_IMAGE_NAME, disk: join(dir, 'disk.img'), dir, key: '0123456789abcdef', kernelVersion: 'k', packages: {}, extra: [],
    rootUuid: 'u', diskSize: 4096, created: '2026-12-03T10:00:00.000Z', builder: DEBIAN_BUILDER_VERSION, firmware: join(dir, 'uboot.elf'),
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  mkdirSync(join(paths.images, 'debian-ffff.tmp-123'));
  assert.equal(findDebianImage(paths), undefined, 'no pointer yet');
  assert.equal(findDebianImage(paths, '0123456789abcdef')?.disk, join(dir, 'disk.img'));
  writeFileSync(join(paths.images, 'debian.json'), JSON.stringify({ dir }));
  assert.equal(findDebianImage(paths)?.key, '0123456789abcdef');
  const list = listImages(paths);
  assert.equal(list.length, 1);
  assert.deepEqual({ ...list[0], size: list[0]!.size > 0 }, { name: 'debian', path: join(dir, 'disk.img'), size: true, created: manifest.created, current: true });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, builder: DEBIAN_BUILDER_VERSION - 1 }));
  assert.equal(findDebianImage(paths), undefined, 'a build of another builder version is not used');
  tmp.cleanup();
});

test('stage 2 configures, builds the initrd and boot menu, and clears per-VM identity', () => {
  const s = stage2Script('6.12.9+deb13-riscv64');
  for (const step of ['dpkg --configure -a', 'update-initramfs -c -k 6.12.9+deb13-riscv64', 'u-boot-update', ': > /etc/machine-id', 'rm -f /etc/ssh/ssh_host_*', 'dpkg --audit']) {
    assert.ok(s.includes(step), step);
  }
  assert.ok(s.indexOf('preinst') < s.indexOf('dpkg --configure -a'));
});
