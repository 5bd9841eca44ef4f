/**
 * First-boot configuration from a NoCloud seed disc, as cloud images are configured
 * (cloud-init's NoCloud datasource: an ISO 9660 volume labelled `cidata` holding
 * `user-data` and `meta-data`). The file format is the contract: `vm create --cloud-init
 * USER_DATA [--meta-data FILE]` builds such a disc (xorriso) and puts it in the CD-ROM
 * drive, so a guest running cloud-init itself configures itself from it; for tsvisor's own
 * images (no cloud-init: it takes minutes per boot on an emulated CPU) the VM process
 * reads whatever `cidata` disc is in the drive and the guest agent applies it, as root,
 * in cloud-init's order:
 *
 *  - every boot: `bootcmd`, then the host name (`fqdn`, `hostname`, or meta-data
 *    `local-hostname`; it replaces the VM's name);
 *  - once per instance (meta-data `instance-id`, kept in the guest in
 *    `/var/lib/tsvisor/cloud-init/instance-id`): `write_files` (not deferred),
 *    `timezone`, `users` (`default` is the image's user `debian`; name, gecos, groups,
 *    sudo, shell, homedir, primary_group, uid, system, passwd/hashed_passwd, lock_passwd,
 *    ssh_authorized_keys) and the top-level `ssh_authorized_keys` (the default user's),
 *    `packages` with `package_update`/`package_upgrade` (apt, from the guest's own
 *    sources), deferred `write_files`, `runcmd`, and a user-data that is a `#!` script.
 *
 * Other keys are not applied; they are named in the VM's log. The outcome is in the guest
 * in `/var/lib/tsvisor/cloud-init/status` (`done INSTANCE-ID`, or `error: ...`) and the
 * commands' output in `/var/log/cloud-init-output.log`.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { parse as parseYaml } from 'yaml';
import { shellQuoteArgv } from './agent.js';
import { DEFAULT_SSH_USER, authorizedKeysLines, checkSshPublicKey } from './guest-setup.js';

/** Largest user-data or meta-data accepted (bytes). */
export const MAX_SEED_FILE_BYTES = 1 << 20;
/** Largest disc read as a seed (bytes). */
export const MAX_SEED_ISO_BYTES = 64 << 20;
/** Largest content of one `write_files` entry once decoded (bytes): it travels in one agent command. */
export const MAX_WRITE_FILE_BYTES = 64 * 1024;
/** Where the guest keeps the instance it applied, and the outcome. */
export const CLOUD_INIT_STATE_DIR = '/var/lib/tsvisor/cloud-init';

/** A seed that cannot be used: a one-line reason. */
export class CloudInitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CloudInitError';
  }
}

/** The two files of a NoCloud seed, as text. */
export interface CloudInitSeed {
  userData: string;
  metaData: string;
}

/** One user of `users`. */
export interface CloudUser {
  name: string;
  gecos?: string;
  groups: string[];
  /** sudoers rules, e.g. `ALL=(ALL) NOPASSWD:ALL`. */
  sudo: string[];
  shell?: string;
  homedir?: string;
  primaryGroup?: string;
  uid?: number;
  system: boolean;
  /** A crypt(3) hash. */
  passwd?: string;
  lockPasswd: boolean;
  keys: string[];
}

/** One `write_files` entry, decoded. */
export interface CloudFile {
  path: string;
  content: Buffer;
  /** `user[:group]`. */
  owner?: string;
  /** Octal mode text, e.g. `0644`. */
  permissions?: string;
  append: boolean;
  defer: boolean;
}

/** What a seed asks for, checked. */
export interface CloudInitPlan {
  instanceId: string;
  hostname?: string;
  bootcmd: string[];
  writeFiles: CloudFile[];
  timezone?: string;
  users: CloudUser[];
  packages: string[];
  packageUpdate: boolean;
  packageUpgrade: boolean;
  runcmd: string[];
  /** A user-data that is a script (`#!`), run once per instance after runcmd. */
  script?: string;
  /** Top-level keys of the cloud-config that are not applied. */
  ignored: string[];
}

const APPLIED_KEYS = new Set([
  'bootcmd', 'hostname', 'fqdn', 'preserve_hostname', 'manage_etc_hosts', 'write_files', 'timezone', 'users',
  'ssh_authorized_keys', 'packages', 'package_update', 'package_upgrade', 'runcmd',
]);
const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const PACKAGE_RE = /^[a-z0-9][a-z0-9+.-]+$/;
const VERSION_RE = /^[A-Za-z0-9.+~:-]+$/;
const TIMEZONE_RE = /^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/;
const OWNER_RE = /^[A-Za-z_][A-Za-z0-9_.-]*(:[A-Za-z_][A-Za-z0-9_.-]*)?$/;
const INSTANCE_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

function yamlDoc(text: string, what: string): unknown {
  try {
    // cloud-init reads YAML 1.1 (PyYAML): 0644 is octal, yes/no are booleans
    return parseYaml(text, { version: '1.1', maxAliasCount: 100 });
  } catch (e) {
    throw new CloudInitError(`${what} is not valid YAML: ${(e as Error).message.split('\n')[0].replace(/:\s*$/, '')}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function text(v: unknown, what: string): string {
  if (typeof v !== 'string' && typeof v !== 'number') throw new CloudInitError(`${what} must be a string`);
  const s = String(v);
  if (s.includes('\0')) throw new CloudInitError(`${what} holds a NUL byte`);
  return s;
}

function list(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new CloudInitError(`${what} must be a list`);
  return v;
}

/** A command of `runcmd`/`bootcmd`: a string for `sh -c`, or an argv list. */
function command(v: unknown, what: string): string {
  if (Array.isArray(v)) return shellQuoteArgv(v.map((a, i) => text(a, `${what}[${i}]`)));
  return text(v, what);
}

function strings(v: unknown, what: string): string[] {
  if (v === undefined || v === null || v === false) return [];
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return list(v, what).map((x, i) => text(x, `${what}[${i}]`));
}

function user(v: unknown, i: number): CloudUser {
  const what = `users[${i}]`;
  if (!isObject(v)) throw new CloudInitError(`${what} must be "default" or a mapping`);
  const name = text(v.name, `${what}.name`);
  if (!USER_RE.test(name)) throw new CloudInitError(`${what}.name ${JSON.stringify(name)} is not a user name`);
  const groups = strings(v.groups, `${what}.groups`);
  for (const g of groups) if (!USER_RE.test(g)) throw new CloudInitError(`${what}.groups: ${JSON.stringify(g)} is not a group name`);
  const sudo = v.sudo === true ? ['ALL=(ALL) NOPASSWD:ALL'] : typeof v.sudo === 'string' ? [v.sudo] : strings(v.sudo, `${what}.sudo`);
  for (const r of sudo) if (/[\n\r]/.test(r)) throw new CloudInitError(`${what}.sudo: a rule is one line`);
  const opt = (k: string, re: RegExp): string | undefined => {
    if (v[k] === undefined || v[k] === null) return undefined;
    const s = text(v[k], `${what}.${k}`);
    if (!re.test(s)) throw new CloudInitError(`${what}.${k} ${JSON.stringify(s)} is not valid`);
    return s;
  };
  const uid = v.uid === undefined || v.uid === null ? undefined : Number(v.uid);
  if (uid !== undefined && (!Number.isInteger(uid) || uid < 0 || uid > 2 ** 31 - 1)) throw new CloudInitError(`${what}.uid must be a whole number`);
  const keys = list(v.ssh_authorized_keys, `${what}.ssh_authorized_keys`).map((k, j) => sshKey(k, `${what}.ssh_authorized_keys[${j}]`));
  return {
    name, groups, sudo, keys, uid,
    gecos: opt('gecos', /^[^:\n\r]*$/),
    shell: opt('shell', /^\/[A-Za-z0-9_./+-]+$/),
    homedir: opt('homedir', /^\/[A-Za-z0-9_./+-]+$/),
    primaryGroup: opt('primary_group', USER_RE),
    passwd: opt('hashed_passwd', /^[^:\s]+$/) ?? opt('passwd', /^[^:\s]+$/),
    lockPasswd: v.lock_passwd !== false,
    system: v.system === true,
  };
}

function sshKey(v: unknown, what: string): string {
  try {
    return checkSshPublicKey(text(v, what));
  } catch (e) {
    throw new CloudInitError(`${what}: ${(e as Error).message}`);
  }
}

function writeFile(v: unknown, i: number): CloudFile {
  const what = `write_files[${i}]`;
  if (!isObject(v)) throw new CloudInitError(`${what} must be a mapping`);
  const path = text(v.path, `${what}.path`);
  if (!path.startsWith('/') || path.endsWith('/')) throw new CloudInitError(`${what}.path must be an absolute file path`);
  const raw = v.content === undefined || v.content === null ? '' : text(v.content, `${what}.content`);
  const enc = v.encoding === undefined ? 'text/plain' : text(v.encoding, `${what}.encoding`).toLowerCase();
  let content: Buffer;
  try {
    if (['b64', 'base64'].includes(enc)) content = Buffer.from(raw, 'base64');
    else if (['gz', 'gzip'].includes(enc)) content = gunzipSync(Buffer.from(raw, 'latin1'));
    else if (['gz+b64', 'gz+base64', 'gzip+b64', 'gzip+base64'].includes(enc)) content = gunzipSync(Buffer.from(raw, 'base64'));
    else if (enc === 'text/plain') content = Buffer.from(raw, 'utf8');
    else throw new CloudInitError(`${what}.encoding ${JSON.stringify(enc)}: expected b64, gzip, gz+b64 or text/plain`);
  } catch (e) {
    if (e instanceof CloudInitError) throw e;
    throw new CloudInitError(`${what}.content cannot be decoded as ${enc}`);
  }
  if (content.length > MAX_WRITE_FILE_BYTES) throw new CloudInitError(`${what}: ${content.length} bytes; at most ${MAX_WRITE_FILE_BYTES} per file`);
  let permissions: string | undefined;
  if (v.permissions !== undefined && v.permissions !== null) {
    // YAML 1.1 reads 0644 as the number 420; a string keeps its digits
    permissions = typeof v.permissions === 'number' ? `0${v.permissions.toString(8)}` : text(v.permissions, `${what}.permissions`);
    if (!/^0?[0-7]{3,4}$/.test(permissions)) throw new CloudInitError(`${what}.permissions ${JSON.stringify(permissions)}: expected an octal mode like 0644`);
  }
  const owner = v.owner === undefined || v.owner === null ? undefined : text(v.owner, `${what}.owner`);
  if (owner !== undefined && !OWNER_RE.test(owner)) throw new CloudInitError(`${what}.owner ${JSON.stringify(owner)}: expected user[:group]`);
  return { path, content, owner, permissions, append: v.append === true, defer: v.defer === true };
}

/**
 * Reads and checks a seed: meta-data (YAML or JSON: `instance-id`, optional
 * `local-hostname`) and user-data (`#cloud-config` YAML or a `#!` script).
 * @throws CloudInitError (one line) for anything that cannot be applied as asked.
 */
export function parseCloudInit(seed: CloudInitSeed): CloudInitPlan {
  const meta = seed.metaData.trim() === '' ? {} : yamlDoc(seed.metaData, 'meta-data');
  if (!isObject(meta)) throw new CloudInitError('meta-data must be a mapping (instance-id: ...)');
  const instanceId = meta['instance-id'] === undefined ? '' : text(meta['instance-id'], 'meta-data instance-id');
  if (!INSTANCE_RE.test(instanceId)) throw new CloudInitError('meta-data needs an instance-id (1 to 128 letters, digits, "_", ".", ":" or "-")');
  const plan: CloudInitPlan = {
    instanceId, bootcmd: [], writeFiles: [], users: [], packages: [], packageUpdate: false, packageUpgrade: false, runcmd: [], ignored: [],
  };
  const metaHost = meta['local-hostname'] === undefined ? undefined : text(meta['local-hostname'], 'meta-data local-hostname');
  const ud = seed.userData;
  if (ud.startsWith('#!')) {
    plan.script = ud;
    plan.users = [defaultUser([])];
  } else if (ud.trim() === '' || ud.startsWith('#cloud-config')) {
    const doc = ud.trim() === '' ? {} : yamlDoc(ud, 'user-data');
    if (doc !== null && !isObject(doc)) throw new CloudInitError('user-data (#cloud-config) must be a mapping');
    applyCloudConfig(plan, (doc ?? {}) as Record<string, unknown>);
  } else {
    throw new CloudInitError('user-data must start with #cloud-config (YAML) or #! (a script); MIME multi-part is not supported');
  }
  const host = plan.hostname ?? metaHost;
  if (host !== undefined) {
    if (!HOSTNAME_RE.test(host)) throw new CloudInitError(`host name ${JSON.stringify(host)} is not valid`);
    plan.hostname = host;
  }
  return plan;
}

function defaultUser(keys: string[]): CloudUser {
  return { name: DEFAULT_SSH_USER, groups: ['sudo'], sudo: ['ALL=(ALL) NOPASSWD:ALL'], shell: '/bin/bash', system: false, lockPasswd: true, keys };
}

function applyCloudConfig(plan: CloudInitPlan, c: Record<string, unknown>): void {
  plan.ignored = Object.keys(c).filter((k) => !APPLIED_KEYS.has(k));
  plan.bootcmd = list(c.bootcmd, 'bootcmd').map((x, i) => command(x, `bootcmd[${i}]`));
  plan.runcmd = list(c.runcmd, 'runcmd').map((x, i) => command(x, `runcmd[${i}]`));
  plan.writeFiles = list(c.write_files, 'write_files').map(writeFile);
  const fqdn = c.fqdn ?? c.hostname;
  if (fqdn !== undefined && fqdn !== null) plan.hostname = text(fqdn, c.fqdn !== undefined ? 'fqdn' : 'hostname');
  if (c.timezone !== undefined && c.timezone !== null) {
    const tz = text(c.timezone, 'timezone');
    if (!TIMEZONE_RE.test(tz) || tz.includes('..')) throw new CloudInitError(`timezone ${JSON.stringify(tz)} is not a zone name`);
    plan.timezone = tz;
  }
  const topKeys = list(c.ssh_authorized_keys, 'ssh_authorized_keys').map((k, i) => sshKey(k, `ssh_authorized_keys[${i}]`));
  const users = c.users === undefined ? ['default'] : list(c.users, 'users');
  let sawDefault = false;
  plan.users = users.map((u, i) => {
    if (u === 'default') { sawDefault = true; return defaultUser(topKeys); }
    return user(u, i);
  });
  if (!sawDefault && topKeys.length) plan.users.unshift(defaultUser(topKeys)); // the keys still need an owner
  const names = new Set<string>();
  for (const u of plan.users) {
    if (names.has(u.name)) throw new CloudInitError(`users: ${u.name} is listed twice`);
    names.add(u.name);
  }
  plan.packages = list(c.packages, 'packages').map((p, i) => {
    const [name, version] = Array.isArray(p) ? [text(p[0], `packages[${i}][0]`), p[1] === undefined ? undefined : text(p[1], `packages[${i}][1]`)] : [text(p, `packages[${i}]`), undefined];
    if (!PACKAGE_RE.test(name)) throw new CloudInitError(`packages[${i}]: ${JSON.stringify(name)} is not a package name`);
    if (version !== undefined && !VERSION_RE.test(version)) throw new CloudInitError(`packages[${i}]: ${JSON.stringify(version)} is not a version`);
    return version === undefined ? name : `${name}=${version}`;
  });
  plan.packageUpgrade = c.package_upgrade === true;
  plan.packageUpdate = c.package_update === true || plan.packageUpgrade || plan.packages.length > 0;
}

/** One command the agent runs as root (`sh -c`), with what it is for. */
export interface CloudInitStep {
  what: string;
  script: string;
}

const q = (s: string) => shellQuoteArgv([s]);
const LOG = '/var/log/cloud-init-output.log';

function fileStep(f: CloudFile): CloudInitStep {
  const lines = [
    'set -e',
    `p=${q(f.path)}`,
    'mkdir -p "$(dirname "$p")"',
    `echo ${f.content.toString('base64') || "''"} | base64 -d ${f.append ? '>>' : '>'} "$p"`,
    ...(f.permissions ? [`chmod ${f.permissions} "$p"`] : []),
    ...(f.owner ? [`chown ${q(f.owner)} "$p"`] : []),
  ];
  return { what: `write_files ${f.path}`, script: lines.join('\n') };
}

function userStep(u: CloudUser): CloudInitStep {
  const add = ['useradd', '-m'];
  if (u.shell) add.push('-s', u.shell);
  if (u.gecos !== undefined) add.push('-c', u.gecos);
  if (u.homedir) add.push('-d', u.homedir);
  if (u.primaryGroup) add.push('-g', u.primaryGroup);
  if (u.uid !== undefined) add.push('-u', String(u.uid));
  if (u.system) add.push('--system');
  add.push(u.name);
  const lines = [
    'set -e',
    `u=${u.name}`,
    ...(u.primaryGroup ? [`getent group ${u.primaryGroup} >/dev/null || groupadd ${u.primaryGroup}`] : []),
    `id -u "$u" >/dev/null 2>&1 || ${shellQuoteArgv(add)}`,
    ...u.groups.map((g) => `getent group ${g} >/dev/null || groupadd ${g}`),
    ...(u.groups.length ? [`usermod -aG ${u.groups.join(',')} "$u"`] : []),
  ];
  if (u.sudo.length) {
    const f = `/etc/sudoers.d/90-cloud-init-users-${u.name}`;
    lines.push(`printf '%s\\n' ${u.sudo.map((r) => q(`${u.name} ${r}`)).join(' ')} > ${f}.tmp`, `chmod 440 ${f}.tmp`, `mv ${f}.tmp ${f}`);
  }
  if (u.passwd) lines.push(`usermod -p ${q(u.passwd)} "$u"`);
  if (u.lockPasswd) lines.push('passwd -l "$u" >/dev/null 2>&1 || usermod -L "$u"');
  else if (u.passwd) lines.push('usermod -U "$u" 2>/dev/null || true');
  if (u.keys.length) lines.push(...authorizedKeysLines(u.keys));
  return { what: `users ${u.name}`, script: lines.join('\n') };
}

/** Commands run through the log, as cloud-init runs them: one script, each line in turn, errors do not stop the rest. */
function commandsStep(what: string, cmds: string[]): CloudInitStep {
  const body = cmds.join('\n');
  const b64 = Buffer.from(`${body}\n`).toString('base64');
  return {
    what,
    script: `mkdir -p ${CLOUD_INIT_STATE_DIR} /var/log && echo ${b64} | base64 -d > ${CLOUD_INIT_STATE_DIR}/${what}.sh && { echo "== ${what} $(date -u +%FT%TZ)"; sh ${CLOUD_INIT_STATE_DIR}/${what}.sh; } >> ${LOG} 2>&1`,
  };
}

/** The script that tells whether `instanceId` was applied already: it prints `applied` or `new`. */
export function instanceCheckScript(instanceId: string): string {
  return `[ "$(cat ${CLOUD_INIT_STATE_DIR}/instance-id 2>/dev/null)" = ${q(instanceId)} ] && echo applied || echo new`;
}

/** The steps of every boot (before the host name is set): `bootcmd`. */
export function everyBootSteps(plan: CloudInitPlan): CloudInitStep[] {
  return plan.bootcmd.length ? [commandsStep('bootcmd', plan.bootcmd)] : [];
}

/** The steps of a new instance, in cloud-init's order; the last one records it. */
export function instanceSteps(plan: CloudInitPlan): CloudInitStep[] {
  const steps: CloudInitStep[] = [];
  for (const f of plan.writeFiles) if (!f.defer) steps.push(fileStep(f));
  if (plan.timezone) {
    steps.push({ what: 'timezone', script: `[ -e /usr/share/zoneinfo/${plan.timezone} ] && ln -sf /usr/share/zoneinfo/${plan.timezone} /etc/localtime && echo ${plan.timezone} > /etc/timezone` });
  }
  for (const u of plan.users) steps.push(userStep(u));
  if (plan.packageUpdate || plan.packages.length) {
    const apt = 'DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Options::=--force-confold';
    steps.push(commandsStep('packages', [
      'set -e',
      ...(plan.packageUpdate ? [`${apt} update`] : []),
      ...(plan.packageUpgrade ? [`${apt} upgrade`] : []),
      ...(plan.packages.length ? [`${apt} install ${plan.packages.join(' ')}`] : []),
    ]));
  }
  for (const f of plan.writeFiles) if (f.defer) steps.push(fileStep(f));
  if (plan.runcmd.length) steps.push(commandsStep('runcmd', plan.runcmd));
  if (plan.script) {
    const b64 = Buffer.from(plan.script).toString('base64');
    steps.push({ what: 'user-data script', script: `mkdir -p ${CLOUD_INIT_STATE_DIR} && echo ${b64} | base64 -d > ${CLOUD_INIT_STATE_DIR}/user-data && chmod 700 ${CLOUD_INIT_STATE_DIR}/user-data && ${CLOUD_INIT_STATE_DIR}/user-data >> ${LOG} 2>&1` });
  }
  return steps;
}

/** The script that records the instance (so it is not applied again) and the outcome: `done INSTANCE` or `error: ...`. */
export function statusScript(instanceId: string, error: string | null): string {
  // the instance is recorded either way, as cloud-init's per-instance semaphores: a failed step is not run again
  return `mkdir -p ${CLOUD_INIT_STATE_DIR} && echo ${q(instanceId)} > ${CLOUD_INIT_STATE_DIR}/instance-id && echo ${q(error === null ? `done ${instanceId}` : `error: ${error}`)} > ${CLOUD_INIT_STATE_DIR}/status`;
}

/** meta-data for a VM named `name`: a fresh instance-id and its host name. */
export function defaultMetaData(name: string): string {
  return `instance-id: iid-${name}-${randomBytes(4).toString('hex')}\nlocal-hostname: ${name}\n`;
}

function xorriso(args: string[]): void {
  try {
    execFileSync('xorriso', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new CloudInitError('xorriso is not installed (Debian: apt-get install xorriso)');
    const err = String((e as { stderr?: Buffer }).stderr ?? '').trim().split('\n').pop();
    throw new CloudInitError(`xorriso failed: ${err || (e as Error).message}`);
  }
}

/**
 * Writes the NoCloud seed disc `out` (ISO 9660 with Joliet and Rock Ridge, volume label
 * `cidata`, files `user-data` and `meta-data`), as cloud-localds does.
 * @throws CloudInitError when xorriso is missing or fails.
 */
export function buildSeedIso(out: string, seed: CloudInitSeed): void {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-seed-'));
  try {
    writeFileSync(join(dir, 'user-data'), seed.userData);
    writeFileSync(join(dir, 'meta-data'), seed.metaData);
    xorriso(['-as', 'mkisofs', '-quiet', '-V', 'cidata', '-J', '-R', '-o', out, dir]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The volume identifier of the ISO 9660 image at `path` (its primary volume descriptor, ECMA-119 §8.4), or null. */
export function isoVolumeId(path: string): string | null {
  const pvd = Buffer.alloc(2048);
  let fd: number;
  try { fd = openSync(path, 'r'); } catch { return null; }
  try {
    if (readSync(fd, pvd, 0, 2048, 16 * 2048) !== 2048) return null;
  } finally {
    closeSync(fd);
  }
  if (pvd[0] !== 1 || pvd.toString('latin1', 1, 6) !== 'CD001') return null;
  return pvd.toString('latin1', 40, 72).trimEnd();
}

/**
 * The seed on the disc at `path` when it is a NoCloud seed (volume label `cidata`, any
 * case), else null. Its files are read with xorriso, at most {@link MAX_SEED_FILE_BYTES} each.
 * @throws CloudInitError for a `cidata` disc that cannot be read or lacks meta-data.
 */
export function readSeedIso(path: string): CloudInitSeed | null {
  if (isoVolumeId(path)?.toLowerCase() !== 'cidata') return null;
  if (statSync(path).size > MAX_SEED_ISO_BYTES) throw new CloudInitError(`a cidata disc larger than ${MAX_SEED_ISO_BYTES >> 20} MiB is not a seed`);
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-seed-'));
  try {
    const read = (name: string): string | null => {
      try {
        xorriso(['-osirrox', 'on', '-indev', path, '-extract', `/${name}`, join(dir, name)]);
      } catch {
        return null; // not on the disc
      }
      // a Rock Ridge symlink is extracted as one: read only a regular file, never through a link
      let fd: number;
      try { fd = openSync(join(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW); } catch { throw new CloudInitError(`the seed's ${name} is not a regular file`); }
      let b: Buffer;
      try {
        if (!fstatSync(fd).isFile()) throw new CloudInitError(`the seed's ${name} is not a regular file`);
        b = readFileSync(fd);
      } finally {
        closeSync(fd);
      }
      if (b.length > MAX_SEED_FILE_BYTES) throw new CloudInitError(`the seed's ${name} is larger than ${MAX_SEED_FILE_BYTES} bytes`);
      return b.toString('utf8');
    };
    const metaData = read('meta-data');
    if (metaData === null) throw new CloudInitError('the cidata disc has no meta-data');
    return { metaData, userData: read('user-data') ?? '' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
