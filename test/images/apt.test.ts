import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PrivateApt, dependsNames, parseControlStanzas } from '../../src/images/index.js';
import { tempDir } from './helpers.js';

test('control stanzas and Depends', () => {
  const recs = parseControlStanzas(`Package: linux-image-riscv64
Source: linux
Version: 6.12.107-1
Depends: linux-image-6.12.107+deb13-riscv64 (= 6.12.107-1)
Description: Linux for 64-bit RISC-V platforms (meta-package)
 continued line

Package: busybox-static
Version: 1:1.37.0-6+b9
`);
  assert.equal(recs.length, 2);
  assert.equal(recs[0]!.Version, '6.12.107-1');
  assert.match(recs[0]!.Description!, /meta-package\)\ncontinued line$/);
  assert.deepEqual(dependsNames(recs[0]!.Depends), ['linux-image-6.12.107+deb13-riscv64']);
  assert.deepEqual(dependsNames('kmod, initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, libc6:any, x [riscv64]'), [
    'kmod', 'initramfs-tools', 'libc6', 'x',
  ]);
  assert.deepEqual(dependsNames(undefined), []);
});

test('the private apt is confined to its directory', (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const apt = new PrivateApt({ dir, mirror: { uri: 'http://mirror.example.org/debian', origin: 'test' } });
  apt.prepare();
  assert.equal(
    readFileSync(join(dir, 'etc', 'sources.list'), 'utf8'),
    'deb [arch=riscv64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example.org/debian trixie main\n',
  );
  assert.equal(apt.sourcesLine(true), 'deb [arch=riscv64 trusted=yes] http://mirror.example.org/debian trixie main\n');
  assert.ok(existsSync(join(dir, 'state', 'status')));
  const opts = apt.aptOptions();
  const values = new Map<string, string>();
  for (let i = 0; i < opts.length; i += 2) {
    assert.equal(opts[i], '-o');
    const [k, v] = opts[i + 1]!.split(/=(.*)/s) as [string, string];
    values.set(k, v);
  }
  for (const k of ['Dir::State', 'Dir::State::status', 'Dir::Cache', 'Dir::Etc::SourceList', 'Dir::Etc::PreferencesParts', 'Dir::Log']) {
    assert.ok(values.get(k)!.startsWith(dir), `${k} inside the private dir`);
  }
  assert.equal(values.get('Dir::Etc::SourceParts'), '/dev/null');
  assert.equal(values.get('APT::Architecture'), 'riscv64');
  assert.equal(values.get('APT::Architectures'), 'riscv64');
  assert.equal(values.get('Acquire::Languages'), 'none');
  // Never updated: no list age.
  assert.equal(apt.listsAge(), undefined);
});
