import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readSshKeys, runSsh, sshArgv } from '../../src/cli/ssh.js';
import type { VmInfo } from '../../src/host/api-types.js';
import { checkSshPublicKey, sshUserScript, SshKeyError } from '../../src/vmm/guest-setup.js';
import { checkVmConfig, VmConfigError } from '../../src/vmm/vm-config.js';

const dir = mkdtempSync(join(tmpdir(), 'tsvisor-ssh-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A real key pair from ssh-keygen. */
function keygen(name: string, type: string): string {
  const f = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `${name} comment`, '-f', f]);
  return f;
}

test('public keys: ssh-keygen\'s lines are accepted; private keys, garbage and mismatched types are refused', () => {
  const ed = keygen('ed', 'ed25519');
  const line = readFileSync(`${ed}.pub`, 'utf8');
  assert.equal(checkSshPublicKey(line), line.trim());
  const rsa = readFileSync(`${keygen('rsa', 'rsa')}.pub`, 'utf8').trim();
  assert.equal(checkSshPublicKey(rsa), rsa);
  assert.throws(() => checkSshPublicKey(readFileSync(ed, 'utf8')), SshKeyError);
  assert.throws(() => checkSshPublicKey('ssh-ed25519 !!!'), SshKeyError);
  assert.throws(() => checkSshPublicKey(line.replace('ssh-ed25519', 'ssh-rsa')), /does not match its type/);
  assert.throws(() => checkSshPublicKey('ssh-dss AAAA'), /unknown key type/);
  assert.throws(() => checkSshPublicKey(`${line.trim()}\nssh-ed25519 AAAA`), SshKeyError);
});

test('readSshKeys: named files, none, and the default ~/.ssh key', () => {
  const ed = keygen('k1', 'ed25519');
  const home = join(dir, 'home');
  mkdirSync(join(home, '.ssh'), { recursive: true });
  assert.deepEqual(readSshKeys(undefined, home), [], 'no default key: no SSH access');
  writeFileSync(join(home, '.ssh', 'id_rsa.pub'), readFileSync(`${ed}.pub`));
  assert.equal(readSshKeys([], home).length, 1);
  assert.deepEqual(readSshKeys(['none'], home), []);
  assert.throws(() => readSshKeys(['none', `${ed}.pub`]), /cannot be combined/);
  assert.throws(() => readSshKeys([join(dir, 'missing.pub')]), /missing\.pub: no such file/);
  assert.throws(() => readSshKeys([ed]), /k1: this is a private key/);
  const two = join(dir, 'two.pub');
  writeFileSync(two, `# mine\n${readFileSync(`${ed}.pub`, 'utf8')}\n${readFileSync(`${keygen('k2', 'ed25519')}.pub`, 'utf8')}`);
  assert.equal(readSshKeys([two]).length, 2);
});

test('the guest script carries the keys base64-encoded and checks the user name', () => {
  const line = readFileSync(`${keygen('k3', 'ed25519')}.pub`, 'utf8').trim();
  const s = sshUserScript('debian', [line]);
  assert.ok(s.includes(Buffer.from(`${line}\n`).toString('base64')));
  assert.ok(!s.includes(line), 'no key text inside the shell script');
  assert.throws(() => sshUserScript('root; rm -rf /', [line]), /bad user name/);
  assert.throws(() => sshUserScript('debian', ['echo hi']), SshKeyError);
});

test('VM configurations take ssh { user, keys } and refuse bad ones', () => {
  const line = readFileSync(`${keygen('k4', 'ed25519')}.pub`, 'utf8').trim();
  const base = { name: 'web', vcpus: 1, memoryBytes: 256 << 20, disks: [], nics: [{ kind: 'user', mac: '52:54:00:00:00:01' }] };
  assert.deepEqual(checkVmConfig({ ...base, ssh: { user: 'debian', keys: [line] } }, '/').ssh, { user: 'debian', keys: [line] });
  assert.throws(() => checkVmConfig({ ...base, ssh: { user: 'debian', keys: [] } }, '/'), VmConfigError);
  assert.throws(() => checkVmConfig({ ...base, ssh: { user: 'Bad User', keys: [line] } }, '/'), /ssh.user/);
  assert.throws(() => checkVmConfig({ ...base, ssh: { user: 'debian', keys: ['nope'] } }, '/'), /ssh.keys\[0\]/);
});

function vmInfo(ssh: VmInfo['ssh'], state: VmInfo['state'] = 'running'): VmInfo {
  return { name: 'web', state, ssh } as VmInfo;
}

test('vm ssh: the ssh command line; one-line refusals when it cannot connect', async () => {
  const ready = vmInfo({ user: 'debian', host: '127.0.0.1', port: 40022, ready: true, knownHostsFile: '/h/vms/web/known_hosts' });
  assert.deepEqual(sshArgv(ready, ['uname', '-n'], { identity: '/k' }), [
    '-p', '40022', '-o', 'HostKeyAlias=tsvisor-web', '-o', 'UserKnownHostsFile=/h/vms/web/known_hosts', '-o', 'StrictHostKeyChecking=accept-new',
    '-o', 'LogLevel=ERROR', '-i', '/k', '-o', 'IdentitiesOnly=yes', 'debian@127.0.0.1', '--', 'uname', '-n',
  ]);
  assert.ok(sshArgv(ready, []).includes('-t'), 'a login shell gets a terminal');
  await assert.rejects(runSsh('web', async () => vmInfo(null), []), /has no SSH access/);
  await assert.rejects(runSsh('web', async () => vmInfo({ ...ready.ssh!, port: null, ready: false }, 'stopped'), []), /is stopped/);
  await assert.rejects(runSsh('web', async () => vmInfo({ ...ready.ssh!, ready: false, error: 'the guest has no SSH server (openssh-server)' }), []), /no SSH server/);
  await assert.rejects(runSsh('web', async () => vmInfo({ ...ready.ssh!, ready: false }), [], { waitMs: 0 }), /did not get ready/);
});
