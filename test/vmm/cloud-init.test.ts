/**
 * NoCloud seeds (src/vmm/cloud-init.ts): what a cloud-config asks for, checked (YAML 1.1 as
 * cloud-init reads it), the steps the guest agent runs, the seed disc xorriso builds and
 * reading it back, and seeds that cannot be applied (one-line errors).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  CloudInitError, buildSeedIso, defaultMetaData, everyBootSteps, instanceCheckScript, instanceSteps, isoVolumeId, parseCloudInit, readSeedIso,
} from '../../src/vmm/cloud-init.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkXxT4kTuhhRqAc1o3EjzY6Ew2k0d2pKuAVPR8pGcP1 a@b';
const META = 'instance-id: iid-1\nlocal-hostname: meta-host\n';

function hasXorriso(): boolean {
  try { execFileSync('xorriso', ['-version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

test('cloud-config: users, keys, files, packages, commands, host name, in cloud-init\'s order', () => {
  const userData = [
    '#cloud-config',
    'fqdn: web.example.org',
    'ssh_authorized_keys:',
    `  - ${KEY}`,
    'users:',
    '  - default',
    '  - name: alice',
    '    groups: users, adm',
    '    sudo: ["ALL=(ALL) NOPASSWD:ALL"]',
    '    lock_passwd: false',
    '    hashed_passwd: $6$salt$hash',
    'write_files:',
    '  - path: /etc/a',
    '    content: plain',
    '    permissions: 0600', // YAML 1.1: octal, as PyYAML reads it
    '  - path: /etc/b',
    `    content: ${gzipSync(Buffer.from('zipped')).toString('base64')}`,
    '    encoding: gz+b64',
    '    owner: alice:alice',
    '    defer: true',
    'packages: [curl, [jq, "1.7.1-3"]]',
    'bootcmd: [echo boot]',
    'runcmd:',
    '  - echo one',
    '  - [touch, "/root/it\'s here"]',
    'phone_home: {url: x}',
    '',
  ].join('\n');
  const p = parseCloudInit({ userData, metaData: META });
  assert.equal(p.instanceId, 'iid-1');
  assert.equal(p.hostname, 'web.example.org', 'fqdn wins over local-hostname');
  assert.deepEqual(p.users.map((u) => u.name), ['debian', 'alice']);
  assert.deepEqual(p.users[0].keys, [KEY], 'top-level keys are the default user\'s');
  assert.deepEqual(p.users[1].groups, ['users', 'adm']);
  assert.equal(p.users[1].lockPasswd, false);
  assert.equal(p.writeFiles[0].permissions, '0600');
  assert.equal(p.writeFiles[1].content.toString(), 'zipped');
  assert.deepEqual(p.packages, ['curl', 'jq=1.7.1-3']);
  assert.equal(p.packageUpdate, true, 'packages imply an update');
  assert.deepEqual(p.runcmd, ['echo one', "touch '/root/it'\\''s here'"]);
  assert.deepEqual(p.ignored, ['phone_home']);
  const steps = instanceSteps(p).map((s) => s.what);
  assert.deepEqual(steps, ['write_files /etc/a', 'users debian', 'users alice', 'packages', 'write_files /etc/b', 'runcmd']);
  assert.deepEqual(everyBootSteps(p).map((s) => s.what), ['bootcmd']);
  const alice = instanceSteps(p)[2].script;
  assert.match(alice, /useradd -m alice/);
  assert.match(alice, /usermod -aG users,adm "\$u"/);
  assert.match(alice, /usermod -p '\$6\$salt\$hash' "\$u"/);
  assert.doesNotMatch(alice, /passwd -l/, 'lock_passwd: false');
  assert.match(instanceCheckScript('iid-1'), /instance-id/);
});

test('cloud-config defaults: no users key gives the default user; a #! script runs once; meta-data names the host', () => {
  const p = parseCloudInit({ userData: '#cloud-config\nruncmd: [date]\n', metaData: META });
  assert.deepEqual(p.users.map((u) => u.name), ['debian']);
  assert.equal(p.hostname, 'meta-host');
  const s = parseCloudInit({ userData: '#!/bin/sh\necho hi\n', metaData: META });
  assert.equal(s.script, '#!/bin/sh\necho hi\n');
  assert.equal(instanceSteps(s).at(-1)!.what, 'user-data script');
  assert.match(defaultMetaData('web'), /^instance-id: iid-web-[0-9a-f]{8}\nlocal-hostname: web\n$/);
});

test('seeds that cannot be applied: one-line errors', () => {
  const bad: Array<[string, string, RegExp]> = [
    ['#cloud-config\nusers: [\n', META, /user-data is not valid YAML/],
    ['#cloud-config\n', 'local-hostname: x\n', /meta-data needs an instance-id/],
    ['hello', META, /must start with #cloud-config/],
    ['#cloud-config\nusers: [{name: "Bad Name"}]\n', META, /users\[0\]\.name/],
    ['#cloud-config\nwrite_files: [{path: relative, content: x}]\n', META, /absolute file path/],
    ['#cloud-config\nwrite_files: [{path: /x, content: x, permissions: "rwx"}]\n', META, /octal mode/],
    ['#cloud-config\nwrite_files: [{path: /x, content: "%%%", encoding: gzip}]\n', META, /cannot be decoded/],
    ['#cloud-config\npackages: ["curl; rm -rf /"]\n', META, /not a package name/],
    ['#cloud-config\nssh_authorized_keys: [not-a-key]\n', META, /ssh_authorized_keys\[0\]/],
    ['#cloud-config\nhostname: "bad host"\n', META, /host name/],
    ['#cloud-config\ntimezone: ../../etc/shadow\n', META, /zone name/],
    ['#cloud-config\nusers: [{name: a}, {name: a}]\n', META, /listed twice/],
  ];
  for (const [userData, metaData, re] of bad) {
    assert.throws(() => parseCloudInit({ userData, metaData }), (e: unknown) => e instanceof CloudInitError && re.test(e.message) && !e.message.includes('\n'), userData);
  }
});

test('the seed disc: xorriso builds a cidata ISO; it reads back; another disc is not a seed; a symlinked meta-data is refused', { skip: !hasXorriso() && 'xorriso is not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-seed-test-'));
  try {
    const iso = join(dir, 'seed.iso');
    const seed = { userData: '#cloud-config\nruncmd: [date]\n', metaData: META };
    buildSeedIso(iso, seed);
    assert.equal(isoVolumeId(iso), 'cidata');
    assert.deepEqual(readSeedIso(iso), seed);
    const tree = join(dir, 'tree');
    mkdirSync(tree);
    writeFileSync(join(tree, 'meta-data'), META);
    const other = join(dir, 'other.iso');
    execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'TOOLS', '-R', '-o', other, tree], { stdio: 'ignore' });
    assert.equal(readSeedIso(other), null, 'not labelled cidata');
    const evil = join(dir, 'evil');
    mkdirSync(evil);
    symlinkSync('/etc/passwd', join(evil, 'meta-data'));
    const evilIso = join(dir, 'evil.iso');
    execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'cidata', '-R', '-o', evilIso, evil], { stdio: 'ignore' });
    assert.throws(() => readSeedIso(evilIso), /not a regular file|no meta-data/);
    assert.equal(isoVolumeId(join(dir, 'missing.iso')), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
