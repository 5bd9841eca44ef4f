/**
 * The default guest's initramfs: a static busybox, the kernel modules the `virt` board
 * needs, and an `/init` script with a fixed contract that the run command relies on.
 *
 * ## The /init contract
 *
 * 1. Mounts proc on /proc, sysfs on /sys, devtmpfs on /dev, devpts on /dev/pts, tmpfs on
 *    /tmp and /run; brings `lo` up; sets the hostname from kernel command-line
 *    `tsvisor.hostname=NAME` (default `tsvisor`).
 * 2. `insmod`s the modules listed in `/etc/tsvisor/modules` (load order, dependencies
 *    first), silently; failures are printed only when the command line has
 *    `tsvisor.verbose`. A line `PATH TYPES` (comma-separated virtio device types, see
 *    {@link MODULE_DEVICE_TYPES}) is loaded only when the board has a virtio device of
 *    one of those types (`/sys/bus/virtio/devices/DEV/device`); a line `PATH` always. The
 *    modules not loaded stay in `/lib/modules`, for `modprobe`.
 *    Then every network card (`eth*`) is brought up by DHCP (busybox `udhcpc`, at most
 *    ~5 s each; the lease script /etc/tsvisor/udhcpc.script sets address, MTU, default
 *    route and /etc/resolv.conf), so the command in step 4 starts with a network.
 * 3. If `/tsvisor/mounts` exists, mounts each line `DEVICE MOUNTPOINT [FSTYPE [OPTIONS]]`
 *    (mountpoint created first; `/dev/...` devices are awaited up to 5 s; FSTYPE `-` or
 *    `auto` means "let mount guess"; `9p` defaults to `trans=virtio,version=9p2000.L`).
 *    Then every shared folder (virtio-9p) not mounted yet is mounted on `/mnt/TAG`
 *    ({@link mountSharesScript}).
 * 4. If `/tsvisor/cmd` exists (a shell script body, normally supplied by a second cpio
 *    archive appended by the run command): puts the console in raw mode
 *    (`stty raw -echo`, so output bytes are not translated), lowers the kernel console
 *    log level to emergencies only (unless `tsvisor.verbose`), and runs `sh /tsvisor/cmd`
 *    in `/root` with HOME=/root, PATH=/usr/sbin:/usr/bin:/sbin:/bin and TERM from
 *    `tsvisor.term=` (default `linux`). Its stdin is /dev/null, unless the flag file
 *    `/tsvisor/stdin` exists: then it runs as a session leader with the console as its
 *    controlling terminal (`setsid cttyhack`). Afterwards /init writes exactly
 *    `\x1fTSVISOR-EXIT <status>\x1f` (decimal exit status) to /dev/console, syncs and
 *    powers off (`poweroff -f`).
 * 5. Otherwise: an interactive login shell with job control on the console
 *    (`setsid cttyhack sh -l`); when it exits, sync and power off. The optional
 *    `tsvisor.cols=`/`tsvisor.rows=` set the console's window size first.
 *
 * Before step 4 or 5, if the board has a virtio-console device (a `device` file under
 * `/sys/bus/virtio/devices/` reads `0x0003`), /init starts the guest agent
 * `/bin/tsvisor-agent` in the background, in its own session, stdin /dev/null, output
 * to `/run/tsvisor-agent.log` (never the console), and restarts it a second after it
 * exits. The agent waits (up to 30 s) for the virtio port named `org.tsvisor.agent`
 * (`/sys/class/virtio-ports/vportNpM/name`), opens `/dev/vportNpM` and serves the line
 * protocol documented in src/vmm/agent.ts (see {@link agentScript}).
 *
 * There is no init daemon, so busybox's `poweroff`/`reboot`/`halt` (which signal pid 1)
 * would do nothing: in login shells they are shell functions (from /etc/profile), and
 * as programs in /bin small scripts, that sync and call busybox's forced variant
 * (`halt` powers off). Busybox's own shell runs applets directly, so a non-login
 * `sh` script calling `poweroff` is unaffected (and /init powers off after it anyway). Appended archives must contain only files whose
 * parent directories exist (`/tsvisor` exists, empty, in the base archive).
 */
import type { CpioEntry } from './cpio.js';

/**
 * Shell lines that mount every shared folder of the board (a virtio-9p device, its tag in
 * sysfs `mount_tag`) on `/mnt/TAG`, 9P2000.L with a 256 KiB msize, unless the tag is
 * mounted already. Used by the default image's /init and the Debian image's
 * `tsvisor-shares.service`.
 */
export function mountSharesScript(): string {
  return [
    '# shared folders (virtio-9p): each on /mnt/TAG',
    'for tsv_tagf in /sys/bus/virtio/devices/*/mount_tag; do',
    '  [ -e "$tsv_tagf" ] || continue',
    '  tsv_tag=$(tr -d \'\\000\\n\' < "$tsv_tagf")',
    '  case "$tsv_tag" in \'\'|*[!A-Za-z0-9_.-]*) continue ;; esac',
    '  grep -qs "^$tsv_tag " /proc/mounts && continue',
    '  mkdir -p "/mnt/$tsv_tag"',
    '  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 "$tsv_tag" "/mnt/$tsv_tag" || echo "tsvisor: cannot mount the shared folder $tsv_tag" >&2',
    'done',
  ].join('\n');
}
import { S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, cpioNewc } from './cpio.js';
import type { KernelModuleTree, ModuleOrder } from './modules.js';
import { resolveModuleOrder, stripModuleSignature } from './modules.js';

/**
 * Version of the initramfs layout and /init script; part of the image cache key, so
 * bump it whenever the built initramfs would change for the same inputs.
 */
export const INITRAMFS_BUILDER_VERSION = 10;

/**
 * Modules the default guest loads (names as the kernel knows them), in the order they
 * are requested. Built-in ones are skipped at build time; their dependencies (ext4 ->
 * jbd2, mbcache, crc16, crc32c via `softdep`; 9p -> 9pnet, netfs; ...) are added.
 */
export const DEFAULT_GUEST_MODULES: readonly string[] = [
  'virtio_mmio',
  'virtio_blk',
  'virtio_net',
  'virtio_rng',
  'virtio_console',
  'virtio_balloon',
  'virtio_scsi',
  'sr_mod',
  'ext4',
  'crc32c_generic',
  'vfat',
  'nls_cp437',
  'nls_iso8859_1',
  'nls_ascii',
  'nls_utf8',
  'isofs',
  '9p',
  '9pnet_virtio',
  'virtio_gpu',
  'virtio_input',
  'evdev',
];

/** Of {@link DEFAULT_GUEST_MODULES}, those that another kernel build may lack without harm. */
export const OPTIONAL_GUEST_MODULES: readonly string[] = ['crc32c_generic', 'nls_iso8859_1', 'nls_ascii', 'nls_utf8', 'virtio_console', 'virtio_input', 'evdev'];

/**
 * Of {@link DEFAULT_GUEST_MODULES}, those /init loads only when the board has a virtio
 * device of one of these types (virtio 1.2 §5: 1 network card, 2 block device, 3 console,
 * 4 entropy source, 5 memory balloon, 8 SCSI host, 9 9P transport, 16 GPU, 18 input), with
 * the modules they depend on unless another module loaded always needs those too. A guest
 * without a display, shares or network then does not spend its boot relocating and
 * checking megabytes of drm, 9p and network code it cannot use: `run --network none`
 * loads 2 of the 35 modules (virtio_mmio, virtio_balloon), and with a disk and a network
 * card 19.
 */
export const MODULE_DEVICE_TYPES: Readonly<Record<string, readonly number[]>> = {
  virtio_net: [1],
  virtio_blk: [2],
  virtio_console: [3],
  virtio_rng: [4],
  virtio_balloon: [5],
  virtio_scsi: [8],
  sr_mod: [8],
  // the file systems of disks and discs
  ext4: [2],
  crc32c_generic: [2],
  vfat: [2, 8],
  nls_cp437: [2, 8],
  nls_iso8859_1: [2, 8],
  nls_ascii: [2, 8],
  nls_utf8: [2, 8],
  isofs: [2, 8],
  '9p': [9],
  '9pnet_virtio': [9],
  virtio_gpu: [16],
  virtio_input: [18],
  evdev: [18],
};

/**
 * The device types a module of `modules` (load order) is loaded for, from
 * {@link MODULE_DEVICE_TYPES} and the modules that depend on it: null when it is always
 * loaded (named nowhere there, or needed by one that is).
 */
export function moduleDeviceTypes(modules: readonly InitramfsModule[]): Map<string, number[] | null> {
  const dependents = new Map<string, string[]>();
  for (const m of modules) for (const d of m.depends) dependents.set(d, [...(dependents.get(d) ?? []), m.name]);
  const out = new Map<string, number[] | null>();
  // dependents come after their dependencies in load order: from the end, each module's
  // dependents are done before it
  for (let i = modules.length - 1; i >= 0; i--) {
    const m = modules[i];
    const by = dependents.get(m.name) ?? [];
    const own = Object.hasOwn(MODULE_DEVICE_TYPES, m.name) ? MODULE_DEVICE_TYPES[m.name] : undefined;
    if (own === undefined && !by.length) { out.set(m.name, null); continue; }
    const sets = [own ?? [], ...by.map((d) => out.get(d) ?? null)];
    out.set(m.name, sets.some((t) => t === null) ? null : [...new Set(sets.flat() as number[])].sort((a, b) => a - b));
  }
  return out;
}

/**
 * Common busybox applets, used only when the applet table cannot be read from the
 * binary (see {@link busyboxApplets}).
 */
export const FALLBACK_APPLETS: readonly string[] = [
  '[', '[[', 'ash', 'awk', 'basename', 'cat', 'chmod', 'chown', 'chroot', 'clear', 'cmp', 'cp', 'cpio', 'cttyhack',
  'cut', 'date', 'dd', 'df', 'diff', 'dirname', 'dmesg', 'du', 'echo', 'env', 'expr', 'false', 'find', 'free',
  'grep', 'gunzip', 'gzip', 'head', 'hexdump', 'hostname', 'id', 'ifconfig', 'insmod', 'ip', 'kill', 'less', 'ln',
  'ls', 'lsmod', 'md5sum', 'mkdir', 'mknod', 'mktemp', 'modprobe', 'more', 'mount', 'mv', 'nproc', 'od', 'printf',
  'ps', 'pwd', 'readlink', 'realpath', 'rm', 'rmdir', 'rmmod', 'sed', 'seq', 'setsid', 'sh', 'sha1sum', 'sha256sum',
  'sha512sum', 'sleep', 'sort', 'stat', 'stty', 'switch_root', 'sync', 'sysctl', 'tail', 'tar', 'tee', 'test', 'time',
  'top', 'touch', 'tr', 'true', 'truncate', 'tty', 'udhcpc', 'umount', 'uname', 'uniq', 'uptime', 'usleep', 'vi', 'wc',
  'wget', 'which', 'xargs', 'xz', 'yes', 'zcat',
];

/** Applets that must exist for /init to work. */
const REQUIRED_APPLETS = ['sh', 'mount', 'mkdir', 'insmod', 'stty', 'setsid', 'cttyhack', 'printf', 'sync', 'hostname', 'cat'];
/** Applets replaced by scripts (no init daemon to signal). */
const SHUTDOWN_APPLETS = ['poweroff', 'reboot', 'halt'];

/**
 * The applet names compiled into a busybox binary, read from its `applet_names` table
 * (a sorted run of NUL-terminated names starting `[`, `[[`) without running it (the
 * binary is riscv64). Falls back to {@link FALLBACK_APPLETS} when no plausible table
 * is found.
 */
export function busyboxApplets(binary: Uint8Array): string[] {
  const needle = new TextEncoder().encode('[\0[[\0');
  const buf = Buffer.from(binary.buffer, binary.byteOffset, binary.byteLength);
  let at = buf.indexOf(needle);
  while (at >= 0) {
    const names: string[] = [];
    let p = at;
    for (;;) {
      const end = buf.indexOf(0, p);
      if (end < 0) break;
      const name = buf.subarray(p, end).toString('latin1');
      if (!/^[a-z0-9_.[-][a-z0-9_.[+-]*$/.test(name)) break;
      if (names.length > 0 && name <= names[names.length - 1]!) break;
      names.push(name);
      p = end + 1;
    }
    if (names.length >= 40 && REQUIRED_APPLETS.every((a) => names.includes(a))) return names;
    at = buf.indexOf(needle, at + 1);
  }
  return [...FALLBACK_APPLETS];
}

/** The `/init` script (busybox ash). See the module comment for its contract. */
export function initScript(): string {
  return `#!/bin/sh
# tsvisor initramfs /init (builder ${INITRAMFS_BUILDER_VERSION}); contract in tsvisor src/images/initramfs.ts
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
umask 022
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr

tsv_hostname=tsvisor
tsv_verbose=
tsv_term=linux
tsv_cols=
tsv_rows=
set -f
read -r tsv_cmdline < /proc/cmdline
for tsv_arg in $tsv_cmdline; do
  case "$tsv_arg" in
    tsvisor.hostname=*) tsv_hostname=\${tsv_arg#tsvisor.hostname=} ;;
    tsvisor.verbose|tsvisor.verbose=*) tsv_verbose=1 ;;
    tsvisor.term=*) tsv_term=\${tsv_arg#tsvisor.term=} ;;
    tsvisor.cols=*) tsv_cols=\${tsv_arg#tsvisor.cols=} ;;
    tsvisor.rows=*) tsv_rows=\${tsv_arg#tsvisor.rows=} ;;
  esac
done
set +f
[ -n "$tsv_hostname" ] || tsv_hostname=tsvisor
hostname "$tsv_hostname"
echo "$tsv_hostname" > /etc/hostname
ip link set lo up 2>/dev/null

if [ -f /etc/tsvisor/modules ]; then
  # a module with device types only for a virtio device of one of them (virtio_mmio, loaded
  # first, has found the board's devices by then)
  tsv_types=
  while read -r tsv_mod tsv_for; do
    [ -n "$tsv_mod" ] || continue
    if [ -n "$tsv_for" ]; then
      if [ -z "$tsv_types" ]; then
        tsv_types=,
        for tsv_f in /sys/bus/virtio/devices/*/device; do
          [ -r "$tsv_f" ] && read -r tsv_d < "$tsv_f" && tsv_types="$tsv_types$((tsv_d)),"
        done
      fi
      tsv_need=
      tsv_ifs=$IFS
      IFS=,
      for tsv_t in $tsv_for; do
        case "$tsv_types" in *",$tsv_t,"*) tsv_need=1 ;; esac
      done
      IFS=$tsv_ifs
      [ -n "$tsv_need" ] || continue
    fi
    if [ -n "$tsv_verbose" ]; then
      insmod "$tsv_mod" || echo "tsvisor-init: insmod $tsv_mod failed" >&2
    else
      insmod "$tsv_mod" >/dev/null 2>&1
    fi
  done < /etc/tsvisor/modules
fi
# a display's text cursor does not blink: an idle guest stays idle (no redraw 5 times a second)
[ -w /sys/class/graphics/fbcon/cursor_blink ] && echo 0 > /sys/class/graphics/fbcon/cursor_blink
# the CD-ROM drive (virtio-scsi): SCSI scans asynchronously; /dev/sr0 within a moment
if [ -d /sys/class/scsi_host/host0 ]; then
  tsv_i=0
  while [ ! -e /sys/block/sr0 ] && [ "$tsv_i" -lt 30 ]; do sleep 0.1 2>/dev/null || sleep 1; tsv_i=$((tsv_i+1)); done
fi

# network cards (virtio-net): address, route and DNS by DHCP before anything runs
for tsv_if in /sys/class/net/eth*; do
  [ -e "$tsv_if" ] || continue
  tsv_if=\${tsv_if##*/}
  ip link set "$tsv_if" up 2>/dev/null
  if ! udhcpc -i "$tsv_if" -f -q -n -t 5 -T 1 -O mtu -s /etc/tsvisor/udhcpc.script >/dev/null 2>&1; then
    [ -z "$tsv_verbose" ] || echo "tsvisor-init: no DHCP answer on $tsv_if" >&2
  fi
done

if [ -f /tsvisor/mounts ]; then
  while read -r tsv_dev tsv_mp tsv_fs tsv_opts tsv_rest; do
    case "$tsv_dev" in ''|'#'*) continue ;; esac
    [ -n "$tsv_mp" ] || continue
    mkdir -p "$tsv_mp"
    case "$tsv_dev" in
      /dev/*) tsv_n=0
        while [ ! -e "$tsv_dev" ] && [ "$tsv_n" -lt 50 ]; do usleep 100000; tsv_n=$((tsv_n + 1)); done ;;
    esac
    case "$tsv_fs" in -|auto) tsv_fs= ;; esac
    if [ "$tsv_fs" = 9p ] && [ -z "$tsv_opts" ]; then tsv_opts=trans=virtio,version=9p2000.L; fi
    set --
    [ -z "$tsv_fs" ] || set -- -t "$tsv_fs"
    [ -z "$tsv_opts" ] || set -- "$@" -o "$tsv_opts"
    mount "$@" "$tsv_dev" "$tsv_mp" || echo "tsvisor-init: cannot mount $tsv_dev on $tsv_mp" >&2
  done < /tsvisor/mounts
  set --
fi
${mountSharesScript()}

mkdir -p /root
cd /root
export HOME=/root
export TERM="$tsv_term"

if [ -x /bin/tsvisor-agent ] && grep -qs '^0x0003$' /sys/bus/virtio/devices/*/device; then
  setsid sh -c 'while :; do /bin/tsvisor-agent; sleep 1; done' < /dev/null > /run/tsvisor-agent.log 2>&1 &
fi

if [ -f /tsvisor/cmd ]; then
  [ -n "$tsv_verbose" ] || echo 1 > /proc/sys/kernel/printk
  stty -F /dev/console raw -echo 2>/dev/null
  if [ -e /tsvisor/stdin ]; then
    setsid cttyhack sh /tsvisor/cmd
  else
    sh /tsvisor/cmd < /dev/null
  fi
  tsv_status=$?
  printf '\\037TSVISOR-EXIT %d\\037' "$tsv_status" > /dev/console
else
  if [ -n "$tsv_cols" ] && [ -n "$tsv_rows" ]; then stty -F /dev/console cols "$tsv_cols" rows "$tsv_rows" 2>/dev/null; fi
  setsid cttyhack sh -l
fi
sync
poweroff -f
echo o > /proc/sysrq-trigger 2>/dev/null
while :; do sleep 3600; done
`;
}

/** Name of the virtio-console port the agent serves (the board's AGENT_PORT_NAME). */
export const AGENT_PORT_NAME = 'org.tsvisor.agent';

/**
 * `/bin/tsvisor-agent`, the guest agent (busybox ash). It finds the virtio port named
 * {@link AGENT_PORT_NAME}, opens it read-write on fd 3, says `H ok`, then serves one
 * request per line (the host side and the full protocol: src/vmm/agent.ts):
 *
 * - `H` → `H ok` (hello / readiness).
 * - `E <id> <base64 of a shell command line>` → runs `sh -c CMD` in /root (stdin
 *   /dev/null) in the background; its stdout and stderr go through two FIFOs to pumps
 *   that send `O <id> <base64>` / `R <id> <base64>` lines, one per read() of at most
 *   22 KiB (so output streams while the command runs), then `X <id> <status>`.
 * - `P` → `sync; poweroff -f` (with `systemd`: `systemctl --no-block poweroff`, a clean shutdown).
 *
 * Every line is written with a single write() of at most 32 KiB (busybox's `echo` builds
 * the whole line first; output lines are written by `dd bs=32768` from a file), and
 * Linux's virtio port turns each such write() into one buffer, so lines of concurrent
 * execs never interleave. A read() returning end of
 * file (the host end not connected) is retried every second.
 */
export function agentScript(opts: { systemd?: boolean } = {}): string {
  // On a systemd system (the Debian image) `P` asks systemd for a clean shutdown, and
  // coreutils' sleep replaces busybox's usleep; the busybox flavour is unchanged.
  const nap = opts.systemd ? 'sleep 0.1' : 'usleep 100000';
  const poweroff = opts.systemd ? 'systemctl --no-block poweroff' : 'sync; poweroff -f';
  return `#!/bin/sh
# tsvisor guest agent (builder ${INITRAMFS_BUILDER_VERSION}); protocol in tsvisor src/vmm/agent.ts
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
umask 022
tsa_run=/run/tsvisor-agent
mkdir -p "$tsa_run" || exit 1

# /dev/vportNpM of the port named ${AGENT_PORT_NAME}, or fail
tsa_find() {
  for tsa_f in /sys/class/virtio-ports/*/name; do
    [ -r "$tsa_f" ] || continue
    tsa_name=
    read -r tsa_name < "$tsa_f" 2>/dev/null
    [ "$tsa_name" = ${AGENT_PORT_NAME} ] || continue
    tsa_f=\${tsa_f%/name}
    echo "/dev/\${tsa_f##*/}"
    return 0
  done
  return 1
}

# tsa_pump TAG ID < FIFO: one line per read() of at most 22 KiB, until end of file. The
# line is built in a file and written by dd with one write() (lines of concurrent execs
# must not interleave); a shell variable would be slower for 30 KB strings.
tsa_pump() {
  tsa_p=$tsa_d/$1
  while dd bs=22528 count=1 of="$tsa_p.raw" 2>/dev/null && [ -s "$tsa_p.raw" ]; do
    { printf '%s %s ' "$1" "$2"; base64 -w 0 "$tsa_p.raw"; echo; } > "$tsa_p.line"
    dd if="$tsa_p.line" bs=32768 2>/dev/null >&3
  done
}

# tsa_exec ID BASE64-COMMAND-LINE
tsa_exec() {
  tsa_d=$tsa_run/$1
  if ! mkdir "$tsa_d" 2>/dev/null || ! mkfifo "$tsa_d/o" "$tsa_d/e"; then
    echo "R $1 $(echo "tsvisor-agent: cannot start exec $1" | base64 -w 0)" >&3
    echo "X $1 255" >&3
    return
  fi
  tsa_pump O "$1" < "$tsa_d/o" &
  tsa_pump R "$1" < "$tsa_d/e" &
  tsa_cmd=$(echo "$2" | base64 -d 2>/dev/null)
  (cd /root 2>/dev/null; exec sh -c "$tsa_cmd") > "$tsa_d/o" 2> "$tsa_d/e" < /dev/null 3>&-
  tsa_st=$?
  wait
  rm -rf "$tsa_d"
  echo "X $1 $tsa_st" >&3
}

tsa_i=0
until tsa_dev=$(tsa_find) && [ -c "$tsa_dev" ]; do
  tsa_i=$((tsa_i + 1))
  if [ "$tsa_i" -gt 300 ]; then echo "tsvisor-agent: no virtio port named ${AGENT_PORT_NAME}" >&2; exit 1; fi
  ${nap}
done
exec 3<> "$tsa_dev" || exit 1
echo "H ok" >&3
while :; do
  if ! IFS= read -r tsa_line <&3; then
    [ -c "$tsa_dev" ] || exit 1
    sleep 1
    continue
  fi
  set -f
  set -- $tsa_line
  set +f
  case "$1" in
    H) echo "H ok" >&3 ;;
    E)
      case "$2" in ''|*[!0-9]*) continue ;; esac
      # double fork: the exec is reparented to init, this shell keeps no job entry
      (tsa_exec "$2" "$3" &) ;;
    P) ${poweroff} ;;
  esac
done
`;
}

/**
 * The script busybox `udhcpc` runs on lease events (`$1` deconfig/bound/renew, lease
 * fields in the environment: ip, mask, router, dns, domain, mtu): sets the address, the
 * MTU (passt offers 65520, so the emulated guest handles far fewer frames), the default
 * route and /etc/resolv.conf.
 */
export function udhcpcScript(): string {
  return `#!/bin/sh
# tsvisor: udhcpc lease script
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface" 2>/dev/null
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface" 2>/dev/null
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -z "$mtu" ] || ip link set "$interface" mtu "$mtu"
    for r in $router; do ip route add default via "$r" dev "$interface" 2>/dev/null && break; done
    {
      [ -z "$domain" ] || echo "search $domain"
      for d in $dns; do echo "nameserver $d"; done
    } > /run/resolv.conf.tmp
    # every card's servers and domains; a virtual network's (no router) first: its server
    # answers its VMs' names and passes other names on, a NAT card's server knows only the latter
    rm -f /run/resolv.conf.?."$interface"
    mv /run/resolv.conf.tmp "/run/resolv.conf.$([ -n "$router" ] && echo 1 || echo 0).$interface"
    {
      s=$(sed -n 's/^search //p' /run/resolv.conf.?.* | tr '\\n' ' ')
      [ -z "$s" ] || echo "search $s"
      grep -h '^nameserver' $(ls /run/resolv.conf.?.* | sort)
    } > /etc/resolv.conf.new && mv /etc/resolv.conf.new /etc/resolv.conf
    ;;
esac
exit 0
`;
}

/** `/etc/profile` of the guest's login shell. */
export function profileScript(): string {
  return `# tsvisor guest /etc/profile
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=\${HOME:-/root}
PS1='\\u@\\h:\\w\\$ '
alias ll='ls -l'
# No init daemon runs (busybox's applets would signal pid 1 in vain): act at once.
poweroff() { sync; busybox poweroff -f "$@"; }
halt() { sync; busybox poweroff -f "$@"; }
reboot() { sync; busybox reboot -f "$@"; }
`;
}

/**
 * The replacement for `poweroff`/`reboot`/`halt` when executed as programs: there is no
 * init daemon to signal. (`halt` powers off: a halted VM would only hang.)
 */
function shutdownScript(applet: string): string {
  const action = applet === 'reboot' ? 'reboot' : 'poweroff';
  return `#!/bin/sh
# tsvisor: no init daemon runs in this initramfs; ${action} right away.
sync
exec /bin/busybox ${action} -f "$@"
`;
}

/** A kernel module to put into the initramfs. */
export interface InitramfsModule {
  /** Module name, normalized (`virtio_rng`). */
  name: string;
  /** Path below `/lib/modules/<version>/`, ending in `.ko` (e.g. `kernel/fs/ext4/ext4.ko`). */
  path: string;
  /** The decompressed module (ELF). */
  data: Uint8Array;
  /** Hard dependencies (module names) that are also in the initramfs. */
  depends: string[];
}

/** Everything {@link initramfsEntries} puts into the archive. */
export interface InitramfsInputs {
  /** The static riscv64 busybox binary (`usr/bin/busybox` of Debian's busybox-static). */
  busybox: Uint8Array;
  /** Applets to link to busybox (default: read from the binary with {@link busyboxApplets}). */
  applets?: readonly string[];
  /** Kernel release, e.g. `6.12.107+deb13-riscv64` (the `/lib/modules/<version>` folder). */
  kernelVersion: string;
  /** Modules in load order (dependencies first). */
  modules: readonly InitramfsModule[];
  /** mtime of every entry, seconds since the epoch (default 0, for reproducible output). */
  mtime?: number;
}

/**
 * The archive members of the initramfs, parents before children. Layout: `/bin` holds
 * busybox and its applet links; `/sbin`, `/usr/bin`, `/usr/sbin` are symlinks to it;
 * `/dev/console` and `/dev/null` exist before devtmpfs is mounted (the kernel opens
 * /dev/console for /init's stdio); modules live at `/lib/modules/<version>/<path>` with
 * a `modules.dep` for busybox modprobe; `/etc/tsvisor/modules` lists their absolute
 * paths in load order.
 */
export function initramfsEntries(inputs: InitramfsInputs): CpioEntry[] {
  const mtime = inputs.mtime ?? 0;
  const enc = new TextEncoder();
  const entries: CpioEntry[] = [];
  const seen = new Set<string>();
  const ensureDir = (path: string, perm = 0o755): void => {
    const parts = path.split('/').filter((p) => p !== '');
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      if (seen.has(p)) continue;
      seen.add(p);
      entries.push({ path: p, mode: S_IFDIR | (i === parts.length ? perm : 0o755), mtime });
    }
  };
  const add = (e: CpioEntry): void => {
    const parent = e.path.split('/').slice(0, -1).join('/');
    if (parent !== '') ensureDir(parent);
    if (seen.has(e.path)) throw new Error(`initramfs: duplicate entry ${e.path}`);
    seen.add(e.path);
    entries.push({ ...e, mtime });
  };
  const file = (path: string, data: Uint8Array | string, perm: number): void =>
    add({ path, mode: S_IFREG | perm, data: typeof data === 'string' ? enc.encode(data) : data });
  const link = (path: string, target: string): void => add({ path, mode: S_IFLNK | 0o777, symlinkTarget: target });

  for (const d of ['bin', 'dev', 'etc', 'etc/tsvisor', 'lib', 'mnt', 'proc', 'run', 'sys', 'tsvisor', 'usr', 'var']) ensureDir(d);
  ensureDir('root', 0o700);
  ensureDir('tmp', 0o1777);
  add({ path: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 });
  add({ path: 'dev/null', mode: S_IFCHR | 0o666, rdevMajor: 1, rdevMinor: 3 });
  link('sbin', 'bin');
  link('usr/bin', '../bin');
  link('usr/sbin', '../bin');
  link('var/run', '../run');
  link('var/tmp', '../tmp');

  file('bin/busybox', inputs.busybox, 0o755);
  const applets = new Set(inputs.applets ?? busyboxApplets(inputs.busybox));
  for (const a of REQUIRED_APPLETS) applets.add(a);
  for (const a of [...applets].sort()) {
    if (a === 'busybox' || a.includes('/') || SHUTDOWN_APPLETS.includes(a)) continue;
    link(`bin/${a}`, 'busybox');
  }
  for (const a of SHUTDOWN_APPLETS) file(`bin/${a}`, shutdownScript(a), 0o755);

  file('init', initScript(), 0o755);
  file('bin/tsvisor-agent', agentScript(), 0o755);
  file('etc/profile', profileScript(), 0o644);
  file('etc/tsvisor/udhcpc.script', udhcpcScript(), 0o755);
  file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n', 0o644);
  file('etc/group', 'root:x:0:\ntty:x:5:\n', 0o644);
  file('etc/shells', '/bin/sh\n/bin/ash\n', 0o644);
  file('etc/hosts', '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n', 0o644);
  link('etc/mtab', '/proc/self/mounts');

  const modRoot = `lib/modules/${inputs.kernelVersion}`;
  ensureDir(modRoot);
  const byName = new Map(inputs.modules.map((m) => [m.name, m]));
  for (const m of inputs.modules) file(`${modRoot}/${m.path}`, m.data, 0o644);
  const depLines = inputs.modules.map((m) => {
    // depmod lists the transitive closure; modprobe loads it from the end.
    const closure: string[] = [];
    const walk = (n: string): void => {
      for (const d of byName.get(n)?.depends ?? []) {
        if (closure.includes(d) || !byName.has(d)) continue;
        closure.push(d);
        walk(d);
      }
    };
    walk(m.name);
    return `${m.path}:${closure.map((d) => ` ${byName.get(d)!.path}`).join('')}\n`;
  });
  file(`${modRoot}/modules.dep`, depLines.join(''), 0o644);
  const types = moduleDeviceTypes(inputs.modules);
  file('etc/tsvisor/modules', inputs.modules.map((m) => {
    const t = types.get(m.name);
    return `/${modRoot}/${m.path}${t ? ` ${t.join(',')}` : ''}\n`;
  }).join(''), 0o644);
  return entries;
}

/** The initramfs as an uncompressed newc cpio archive (see {@link initramfsEntries}). */
export function buildInitramfs(inputs: InitramfsInputs): Uint8Array {
  return cpioNewc(initramfsEntries(inputs));
}

/**
 * Resolves `wanted` (default {@link DEFAULT_GUEST_MODULES}) against a kernel's module
 * tree and loads the decompressed modules, in load order.
 * @throws ImageError when a required module or dependency is missing or unreadable.
 */
export async function collectModules(
  tree: KernelModuleTree,
  wanted: readonly string[] = DEFAULT_GUEST_MODULES,
  optional: readonly string[] = OPTIONAL_GUEST_MODULES,
): Promise<{ resolution: ModuleOrder; modules: InitramfsModule[] }> {
  const resolution = await resolveModuleOrder(wanted, tree, optional);
  const included = new Set(resolution.order);
  const modules: InitramfsModule[] = [];
  for (const name of resolution.order) {
    const info = await tree.info(name);
    modules.push({
      name,
      path: tree.relPath(name).replace(/\.(xz|gz|zst)$/, ''),
      data: stripModuleSignature(await tree.load(name)),
      depends: info.depends.filter((d) => included.has(d)),
    });
  }
  return { resolution, modules };
}
