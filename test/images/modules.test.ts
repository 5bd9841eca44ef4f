import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import {
  ImageError, KernelModuleTree, elfSection, globMatch, modinfoFromElf, moduleNameFromPath, parseModinfo, resolveModuleOrder,
} from '../../src/images/index.js';
import type { ModInfo, ModuleSource } from '../../src/images/index.js';
import { hasCommand, syntheticModule, tempDir } from './helpers.js';

const enc = new TextEncoder();

test('modinfo blob: depends, softdep, aliases, padding', () => {
  const blob = enc.encode(
    '\0\0license=GPL\0softdep=pre: crypto-crc32c\0alias=fs-ext4\0alias=ext3\0depends=jbd2,mbcache,crc16\0' +
      'intree=Y\0name=ext4\0vermagic=6.12.107+deb13-riscv64 SMP mod_unload modversions riscv\0\0\0',
  );
  const info = parseModinfo(blob);
  assert.deepEqual(info, {
    name: 'ext4',
    depends: ['jbd2', 'mbcache', 'crc16'],
    softdepPre: ['crypto-crc32c'],
    softdepPost: [],
    aliases: ['fs-ext4', 'ext3'],
    vermagic: '6.12.107+deb13-riscv64 SMP mod_unload modversions riscv',
  });
  assert.deepEqual(parseModinfo(enc.encode('depends=\0name=virtio-rng\0softdep=pre: a b post: c\0')), {
    name: 'virtio_rng', depends: [], softdepPre: ['a', 'b'], softdepPost: ['c'], aliases: [],
  });
});

test('.modinfo is found in an ELF file', () => {
  const elf = syntheticModule(['name=demo', 'depends=a,b-c']);
  const sec = elfSection(elf, '.modinfo');
  assert.ok(sec);
  assert.equal(new TextDecoder().decode(sec), 'name=demo\0depends=a,b-c\0');
  assert.equal(elfSection(elf, '.modinf'), undefined);
  assert.deepEqual(modinfoFromElf(elf).depends, ['a', 'b_c']);
  assert.throws(() => elfSection(enc.encode('not an elf file at all, really not one; padding padding padding'), '.modinfo'), /not an ELF/);
});

test('names and globs', () => {
  assert.equal(moduleNameFromPath('kernel/drivers/char/hw_random/virtio-rng.ko.xz'), 'virtio_rng');
  assert.equal(moduleNameFromPath('kernel/fs/nls/nls_iso8859-1.ko'), 'nls_iso8859_1');
  assert.ok(globMatch('virtio:d00000002v*', 'virtio:d00000002v00001AF4'));
  assert.ok(globMatch('crc32c', 'crc32c'));
  assert.ok(!globMatch('crc32c', 'crc32'));
  assert.ok(globMatch('pci:v[0-9]*', 'pci:v1'));
});

/** A synthetic kernel: ext4's real dependency shape, plus built-ins, aliases and a cycle. */
function synthetic(): ModuleSource & { infos: Map<string, ModInfo> } {
  const m = (name: string, depends: string[] = [], pre: string[] = [], aliases: string[] = [], post: string[] = []): ModInfo => ({
    name, depends, softdepPre: pre, softdepPost: post, aliases,
  });
  const infos = new Map<string, ModInfo>(
    [
      m('ext4', ['jbd2', 'mbcache', 'crc16'], ['crypto-crc32c']),
      m('jbd2', [], ['crypto-crc32c']),
      m('mbcache'),
      m('crc16'),
      m('crc32c_generic', [], [], ['crypto-crc32c', 'crc32c']),
      m('virtio_mmio'),
      m('virtio_net', ['net_failover']),
      m('net_failover', ['failover']),
      m('failover'),
      m('a', [], ['b']),
      m('b', [], ['a']), // softdep cycle
      m('broken', ['nonexistent']),
      m('x', [], [], [], ['no-such-alias']),
    ].map((i) => [i.name, i]),
  );
  const builtin = new Set(['virtio', 'virtio_ring', 'virtio_console', 'crc32']);
  return {
    infos,
    isBuiltin: (n) => builtin.has(n),
    has: (n) => infos.has(n),
    info: async (n) => infos.get(n)!,
    resolveAlias: async (alias) => [...infos.values()].find((i) => i.aliases.includes(alias))?.name,
  };
}

test('dependency order: deps and softdep-pre first, built-ins skipped', async () => {
  const src = synthetic();
  const r = await resolveModuleOrder(['virtio_mmio', 'virtio_console', 'virtio_net', 'ext4'], src);
  assert.deepEqual(r.order, ['virtio_mmio', 'failover', 'net_failover', 'virtio_net', 'crc32c_generic', 'jbd2', 'mbcache', 'crc16', 'ext4']);
  assert.deepEqual(r.builtin, ['virtio_console']);
  for (const [name, info] of src.infos) {
    if (!r.order.includes(name)) continue;
    for (const d of info.depends) assert.ok(r.order.indexOf(d) < r.order.indexOf(name), `${d} before ${name}`);
  }
});

test('cycles, unresolved soft deps, optional and missing modules', async () => {
  const src = synthetic();
  const cyc = await resolveModuleOrder(['a'], src);
  assert.deepEqual(cyc.order, ['b', 'a']);
  const soft = await resolveModuleOrder(['x', 'maybe'], src, ['maybe']);
  assert.deepEqual(soft.order, ['x']);
  assert.deepEqual(soft.unresolved, ['maybe', 'no-such-alias']);
  await assert.rejects(resolveModuleOrder(['broken'], src), (e: Error) => e instanceof ImageError && /nonexistent \(needed by broken\)/.test(e.message));
  await assert.rejects(resolveModuleOrder(['nothere'], src), ImageError);
  // A wanted name may be an alias.
  assert.deepEqual((await resolveModuleOrder(['crc32c'], src)).order, ['crc32c_generic']);
});

test('a Debian-style module tree: .ko.xz files, modules.builtin, alias lookup', async (t) => {
  if (!hasCommand('xz')) {
    t.skip('xz is not installed (apt-get install xz-utils)');
    return;
  }
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const put = (rel: string, modinfo: string[]): void => {
    const path = join(dir, rel);
    mkdirSync(dirname(path), { recursive: true });
    const raw = path.replace(/\.xz$/, '');
    writeFileSync(raw, syntheticModule(modinfo));
    if (rel.endsWith('.xz')) assert.equal(spawnSync('xz', ['-z', '--check=crc32', raw]).status, 0);
  };
  put('kernel/fs/ext4/ext4.ko.xz', ['softdep=pre: crypto-crc32c', 'depends=jbd2,crc16', 'name=ext4']);
  put('kernel/fs/jbd2/jbd2.ko.xz', ['depends=', 'name=jbd2']);
  put('kernel/lib/crc16.ko', ['depends=', 'name=crc16']);
  put('kernel/crypto/crc32c_generic.ko.xz', ['alias=crypto-crc32c', 'alias=crc32c', 'depends=', 'name=crc32c_generic']);
  put('kernel/crypto/sha1_generic.ko.xz', ['alias=crypto-sha1-ni-fake', 'depends=', 'name=sha1_generic']);
  put('kernel/drivers/char/hw_random/virtio-rng.ko.xz', ['depends=', 'name=virtio_rng']);
  writeFileSync(join(dir, 'modules.builtin'), 'kernel/drivers/char/virtio_console.ko\nkernel/lib/crc32.ko\n');
  writeFileSync(join(dir, 'modules.builtin.modinfo'), 'crc32.alias=crc32-builtin\0crc32.license=GPL\0');

  const tree = new KernelModuleTree(dir);
  assert.ok(tree.has('virtio-rng') && tree.has('virtio_rng'));
  assert.ok(tree.isBuiltin('virtio_console'));
  assert.equal(tree.relPath('virtio_rng'), 'kernel/drivers/char/hw_random/virtio-rng.ko.xz');
  assert.equal(await tree.resolveAlias('crypto-crc32c'), 'crc32c_generic'); // name heuristic
  assert.equal(await tree.resolveAlias('crypto-sha1-ni-fake'), 'sha1_generic'); // found by scanning kernel/crypto
  assert.equal(await tree.resolveAlias('crc32-builtin'), 'crc32');
  assert.equal(await tree.resolveAlias('nothing'), undefined);
  const r = await resolveModuleOrder(['virtio_rng', 'virtio_console', 'ext4'], tree);
  assert.deepEqual(r.order, ['virtio_rng', 'crc32c_generic', 'jbd2', 'crc16', 'ext4']);
  const elf = await tree.load('ext4');
  assert.deepEqual([...elf.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
  assert.throws(() => new KernelModuleTree(join(dir, 'nope')), ImageError);
});
