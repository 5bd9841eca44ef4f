/**
 * SSH for VMs: which public keys `vm create` gives the guest's default user, and
 * `tsvisor vm ssh NAME [-- COMMAND]`, which runs the host's OpenSSH client against the
 * loopback port the daemon published to the guest's port 22.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { constants, homedir } from 'node:os';
import { join } from 'node:path';
import type { VmInfo } from '../host/api-types.js';
import { checkSshPublicKey } from '../vmm/guest-setup.js';
import { UsageError } from './errors.js';

/** The public keys `vm create` uses without `--ssh-key`, first found wins (as ssh-copy-id). */
export const DEFAULT_PUBLIC_KEYS = ['.ssh/id_ed25519.pub', '.ssh/id_rsa.pub'];

/**
 * The public key lines of `--ssh-key` arguments: each FILE's key lines (comments and blank
 * lines skipped); `none` alone means no keys. With no argument, the first of
 * {@link DEFAULT_PUBLIC_KEYS} under the home folder, if any (else none).
 * @throws UsageError naming the file and what is wrong with it.
 */
export function readSshKeys(files: readonly string[] | undefined, home = homedir()): string[] {
  if (!files || files.length === 0) {
    const found = DEFAULT_PUBLIC_KEYS.map((f) => join(home, f)).find((f) => existsSync(f));
    return found ? readKeyFile(found) : [];
  }
  if (files.includes('none')) {
    if (files.length > 1) throw new UsageError('--ssh-key none cannot be combined with key files');
    return [];
  }
  return files.flatMap(readKeyFile);
}

function readKeyFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--ssh-key ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (lines.length === 0) throw new UsageError(`--ssh-key ${path}: no public key in it`);
  return lines.map((l) => {
    try {
      return checkSshPublicKey(l);
    } catch (e) {
      throw new UsageError(`--ssh-key ${path}: ${(e as Error).message}`);
    }
  });
}

/** Options of {@link runSsh}. */
export interface SshOptions {
  /** `-i FILE`: the private key (default: ssh's own, ~/.ssh/id_*). */
  identity?: string;
  /** How long to wait for the guest's sshd, ms (default 180000). */
  waitMs?: number;
}

/**
 * The argv of the OpenSSH client for VM `v` (ready, with a port): its host keys go to
 * the VM's own known_hosts file, accepted the first time (a VM made again under the same
 * name has a new folder, so no "host key changed" warning).
 */
export function sshArgv(v: VmInfo, command: readonly string[], opts: SshOptions = {}): string[] {
  const ssh = v.ssh!;
  return [
    '-p', String(ssh.port),
    '-o', `HostKeyAlias=tsvisor-${v.name}`,
    '-o', `UserKnownHostsFile=${ssh.knownHostsFile}`,
    '-o', 'StrictHostKeyChecking=accept-new',
    '-o', 'LogLevel=ERROR',
    ...(opts.identity ? ['-i', opts.identity, '-o', 'IdentitiesOnly=yes'] : []),
    ...(command.length === 0 ? ['-t'] : []),
    `${ssh.user}@${ssh.host}`,
    ...(command.length ? ['--', ...command] : []),
  ];
}

/**
 * `vm ssh`: waits until the guest's user and sshd are ready (`get` fetches the VM), then
 * runs `ssh` with the terminal; resolves with its exit status.
 * @throws UsageError (one line) when the VM has no SSH access, is not running, its guest
 *   has no sshd, it does not get ready in time, or ssh is not installed.
 */
export async function runSsh(name: string, get: () => Promise<VmInfo>, command: readonly string[], opts: SshOptions = {}): Promise<number> {
  const deadline = Date.now() + (opts.waitMs ?? 180_000);
  let told = false;
  for (;;) {
    const v = await get();
    if (!v.ssh) throw new UsageError(`VM ${name} has no SSH access: give it a key (tsvisor vm set ${name} --ssh-key ~/.ssh/id_ed25519.pub) and restart it`);
    if (v.state !== 'running' && v.state !== 'starting') throw new UsageError(`VM ${name} is ${v.state} (start it: tsvisor vm start ${name})`);
    if (v.ssh.error) throw new UsageError(`VM ${name}: ${v.ssh.error}`);
    if (v.ssh.ready && v.ssh.port) return spawnSsh(sshArgv(v, command, opts));
    if (Date.now() > deadline) throw new UsageError(`VM ${name}: its SSH server did not get ready within ${Math.round((opts.waitMs ?? 180_000) / 1000)} s (see tsvisor vm console ${name})`);
    if (!told) {
      process.stderr.write(`waiting for the SSH server of ${name}...\n`);
      told = true;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function spawnSsh(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.env.TSVISOR_SSH || 'ssh', argv, { stdio: 'inherit' });
    child.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT'
      ? new UsageError('ssh is not installed (Debian: apt-get install openssh-client)')
      : e));
    // a signal ends it as a shell reports it: 128 + the signal's number
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1)));
  });
}
