/**
 * What the VM process sets up inside a guest through its agent at each boot, as
 * cloud-init would: the host name of a VM made from a system image, and the default user
 * that `tsvisor vm ssh` logs in as (with the host user's public keys and sudo).
 * The scripts are POSIX sh, run as root, and idempotent.
 */

/** The default user of a VM with SSH keys (as Debian's cloud images name theirs). */
export const DEFAULT_SSH_USER = 'debian';

/** Key types `authorized_keys` takes (OpenSSH sshd(8) "AUTHORIZED_KEYS FILE FORMAT"). */
const KEY_TYPES = [
  'ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com',
];
const KEY_RE = /^(\S+) ([A-Za-z0-9+/]+={0,3})(?: ([^\n\r]*))?$/;

/** A public key that cannot be used (one line, for the user). */
export class SshKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SshKeyError';
  }
}

/**
 * Checks one OpenSSH public key line (`TYPE BASE64 [COMMENT]`, as in `id_ed25519.pub`) and
 * returns it trimmed. Options before the type are not accepted.
 * @throws SshKeyError naming what is wrong.
 */
export function checkSshPublicKey(line: string): string {
  const t = line.trim();
  if (t.startsWith('-----BEGIN')) throw new SshKeyError('this is a private key: give the public key (the .pub file)');
  const m = KEY_RE.exec(t);
  if (!m) throw new SshKeyError('not an OpenSSH public key line (TYPE BASE64 [COMMENT]; the .pub file, not the private key)');
  if (!KEY_TYPES.includes(m[1])) throw new SshKeyError(`unknown key type ${JSON.stringify(m[1].slice(0, 40))} (known: ${KEY_TYPES.join(', ')})`);
  const blob = Buffer.from(m[2], 'base64');
  // the blob starts with the type again, as an SSH string (RFC 4253 §6.6)
  if (blob.length < 4 + m[1].length || blob.readUInt32BE(0) !== m[1].length || blob.subarray(4, 4 + m[1].length).toString('latin1') !== m[1]) {
    throw new SshKeyError(`the key data does not match its type ${m[1]}`);
  }
  return t;
}

/** Guest user names (Debian's adduser NAME_REGEX, shortened). */
export const SSH_USER_RE = /^[a-z][a-z0-9_-]{0,31}$/;

/**
 * The script that sets the guest's host name (`/etc/hostname`, `/etc/hosts`' 127.0.1.1
 * line, the running name). `name` must be a checked VM name.
 */
export function hostnameScript(name: string): string {
  return `[ "$(cat /etc/hostname 2>/dev/null)" = ${name} ] || { echo ${name} > /etc/hostname; sed -i 's/^127\\.0\\.1\\.1\\s.*/127.0.1.1\\t${name}/' /etc/hosts; };`
    + ` [ "$(hostname)" = ${name} ] || hostname ${name}`;
}

/** What {@link sshUserScript} prints last: the guest has no SSH server. */
export const NO_SSHD_MARK = 'tsvisor: no sshd';

/**
 * Shell lines that add each of `keys` (checked lines) to the `~/.ssh/authorized_keys` of the
 * user named by `$u` unless already there (keys the user added stay), with the owner and
 * modes sshd wants (the folder 700, the file 600).
 */
export function authorizedKeysLines(keys: readonly string[]): string[] {
  const b64 = Buffer.from(keys.map((k) => `${k}\n`).join('')).toString('base64');
  return [
    'h=$(getent passwd "$u" | cut -d: -f6)', 'g=$(id -gn "$u")',
    'install -d -m 700 -o "$u" -g "$g" "$h/.ssh"',
    'f="$h/.ssh/authorized_keys"', 'touch "$f"',
    `echo ${b64} | base64 -d | while IFS= read -r k; do grep -qxF "$k" "$f" || printf '%s\\n' "$k" >> "$f"; done`,
    'chown "$u:$g" "$f" && chmod 600 "$f"',
  ];
}

/**
 * The script that makes `user` (a member of `sudo`, sudo without password), adds each of
 * `keys` (checked lines) to its `~/.ssh/authorized_keys` unless already there (keys the
 * user added stay), and waits up to 300 s (a first boot makes host keys) for sshd to
 * listen on port 22. A guest without sshd (the busybox image) prints {@link NO_SSHD_MARK}
 * and exits 0; exit status 1 when sshd does not come up.
 */
export function sshUserScript(user: string, keys: readonly string[]): string {
  if (!SSH_USER_RE.test(user)) throw new SshKeyError(`bad user name ${JSON.stringify(user)}`);
  const checked = keys.map((k) => checkSshPublicKey(k));
  return [
    `[ -x /usr/sbin/sshd ] || { echo '${NO_SSHD_MARK}'; exit 0; }`,
    'set -e',
    `u=${user}`,
    'id -u "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo -c "tsvisor default user" "$u"',
    'printf "%s ALL=(ALL) NOPASSWD:ALL\\n" "$u" > /etc/sudoers.d/90-tsvisor-user.tmp',
    'chmod 440 /etc/sudoers.d/90-tsvisor-user.tmp && mv /etc/sudoers.d/90-tsvisor-user.tmp /etc/sudoers.d/90-tsvisor-user',
    ...authorizedKeysLines(checked),
    // sshd listening on port 22 (0x0016), IPv4 or IPv6: state 0A is LISTEN
    'i=0; until grep -qs ":0016 0\\{8,32\\}:0000 0A" /proc/net/tcp /proc/net/tcp6; do i=$((i+1)); [ $i -le 300 ] || { echo "sshd is not listening on port 22 after 300 s" >&2; exit 1; }; sleep 1; done',
  ].join('\n');
}

/**
 * The script that waits (up to `seconds`) until the guest has a global IPv4 address and,
 * with systemd-resolved, a DNS server from DHCP: `tsvisor run -- COMMAND` runs the command
 * with the network up. Prints a line on stderr and exits 1 if it does not come.
 */
export function networkWaitScript(seconds: number): string {
  const n = Math.max(1, Math.ceil(seconds * 5));
  return [
    `i=0; while [ $i -lt ${n} ]; do`,
    '  if ip -4 -o addr show scope global 2>/dev/null | grep -q inet; then',
    '    command -v resolvectl >/dev/null 2>&1 || exit 0',
    "    resolvectl dns 2>/dev/null | grep -q '[0-9]' && exit 0",
    '  fi',
    '  i=$((i+1)); sleep 0.2',
    `done; echo "tsvisor: the guest has no network address after ${seconds} s" >&2; exit 1`,
  ].join('\n');
}
