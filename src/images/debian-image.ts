/**
 * The Debian system image (`tsvisor image pull debian`): a whole Debian trixie riscv64
 * system on an ext4 disk, built from Debian's own packages in two stages, as multistrap
 * and `debootstrap --foreign` do for an architecture the host cannot run.
 *
 * Stage 1 ({@link buildDebianStage1}, on the host, no root): the packages of priority
 * `required` plus {@link DEBIAN_PACKAGES} (plus the user's extra ones) are resolved by the
 * private apt and downloaded into the shared `.deb` cache; every package's data is
 * unpacked with `dpkg-deb --fsys-tarfile | tar -x` inside one `fakeroot` session (so the
 * owners, modes, device nodes and symlinks the packages declare are kept), and recorded in
 * dpkg's database exactly as `dpkg --unpack` leaves a package: `Status: install ok
 * unpacked`, its file list and maintainer scripts under `/var/lib/dpkg/info`, its conffiles
 * as `<path>.dpkg-new` with the hash `newconffile`. tsvisor's own files (fstab, the guest
 * agent and its unit, the stage-2 script) are added, and `mke2fs -d` builds the ext4 file
 * system inside the same fakeroot session.
 *
 * Stage 2 (vmm/debian-build.ts, inside a tsvisor VM): {@link STAGE2_SCRIPT} runs in a
 * chroot of the disk: every package's `preinst install` in apt's installation order, then
 * `dpkg --configure -a` (the postinst scripts, file capabilities, users, the initrd built
 * by initramfs-tools), then per-VM identity is cleared (machine-id, SSH host keys) so that
 * each VM made from the image gets its own.
 *
 * Cache layout (below `$TSVISOR_HOME/cache`):
 *   debs/*.deb                          the downloaded packages (shared with the default image)
 *   images/debian-<key>/disk.img        the base disk (raw ext4, read-only once built)
 *   images/debian-<key>/manifest.json   name, packages and versions, kernel, size, build date
 *   images/debian.json                  which build is current
 * The key is a hash of {@link DEBIAN_BUILDER_VERSION} and every package's name and version,
 * so an image is named by its package versions.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  chmodSync, existsSync, lstatSync, truncateSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { PrivateApt, ResolvedPackage } from './apt.js';
import { ImageError } from './errors.js';
import { isFile, readJson } from './files.js';
import { run } from './exec.js';
import { AGENT_PORT_NAME, agentScript } from './initramfs.js';
import type { CachePaths } from './paths.js';
import { formatBytes } from './progress.js';
import type { ProgressListener } from './progress.js';

/** Name of the image in `tsvisor image list` and `--image`. */
export const DEBIAN_IMAGE_NAME = 'debian';
/** Bump when the recipe or the build steps change: the image key changes with it. */
export const DEBIAN_BUILDER_VERSION = 3;
/** Debian suite and version the image is built from. */
export const DEBIAN_SUITE = 'trixie';

/**
 * Packages installed on top of priority `required` (and their dependencies, without
 * Recommends). Lean on purpose: a small set configures and boots faster; users add the
 * rest with apt.
 */
export const DEBIAN_PACKAGES: readonly string[] = [
  'systemd-sysv', 'udev', 'dbus', 'linux-image-riscv64', 'initramfs-tools', 'zstd', 'openssh-server', 'sudo',
  'ca-certificates', 'iproute2', 'iputils-ping', 'procps', 'less', 'e2fsprogs', 'u-boot-menu', 'systemd-repart',
  'systemd-resolved',
];

/**
 * Partition type GUID of a RISC-V 64 root partition (the Discoverable Partitions
 * Specification), so systemd-repart and systemd-gpt-auto-generator recognise it.
 */
export const ROOT_RISCV64_PARTITION_TYPE = '72EC70A6-CF74-40E6-BD49-4BDA08E8F224';
/** The root partition starts 1 MiB into the disk (bytes). */
export const ROOT_PARTITION_OFFSET = 1024 * 1024;
/**
 * Kernel parameters of the image (`/etc/kernel/cmdline`, which u-boot-menu writes into
 * /boot/extlinux/extlinux.conf): the root file system by label, no 4-level page tables
 * (Sv39 is faster to walk), no crypto self-tests at boot (slow on an emulated CPU).
 */
export const DEBIAN_KERNEL_CMDLINE = `root=LABEL=debian-root ro quiet no4lvl cryptomgr.notests`;

/** File-system label of the image's root file system. */
export const DEBIAN_ROOT_LABEL = 'debian-root';
/** Where stage 2's script lives inside the image (removed when it succeeds). */
export const STAGE2_SCRIPT = '/usr/lib/tsvisor/stage2';
/** Where the guest agent lives inside the image. */
export const DEBIAN_AGENT_PATH = '/usr/lib/tsvisor/tsvisor-agent';

/** What the build will install, and under which key. */
export interface DebianPlan {
  /** Hex key naming the build: builder version + every package's name and version. */
  key: string;
  /** Packages in apt's installation order. */
  packages: ResolvedPackage[];
  /** The user's extra packages (`--packages`), as given. */
  extra: string[];
  /** Kernel release of the `linux-image-<release>` package, e.g. `6.12.117+deb13-riscv64`. */
  kernelVersion: string;
}

/** A built (or stage-1) Debian image. Paths are absolute. */
export interface DebianImage {
  /** {@link DEBIAN_IMAGE_NAME}. */
  name: string;
  /** The base disk: a raw ext4 file system (never written once built). */
  disk: string;
  /** The image folder (holds `manifest.json`). */
  dir: string;
  key: string;
  /** Kernel release installed in the image's /boot. */
  kernelVersion: string;
  /** Package name -> version. */
  packages: Record<string, string>;
  /** Extra packages asked for. */
  extra: string[];
  /** UUID of the root file system. */
  rootUuid: string;
  /** Size of the base disk as the guest sees it, bytes. */
  diskSize: number;
  /** ISO 8601 time the build finished. */
  created: string;
  /** {@link DEBIAN_BUILDER_VERSION} it was built with. */
  builder: number;
  /** The firmware that boots it (Debian's S-mode U-Boot, see firmware.ts). */
  firmware: string;
  /** Seconds stage 1 and stage 2 took (downloads excluded); absent in older builds. */
  buildSeconds?: number;
}

/** A guest image as `tsvisor image list` shows it. */
export interface ImageListEntry {
  name: string;
  /** The image's main file (the base disk, or the kernel of the default image). */
  path: string;
  /** Bytes the image takes on the host's disk (allocated blocks). */
  size: number;
  /** ISO 8601 build time. */
  created: string;
  /** True for the build `--image NAME` uses. */
  current: boolean;
}

/**
 * Resolves the image's packages with the private apt (lists must be up to date).
 * @param extra additional package names (`--packages a,b,c`).
 * @throws ImageError naming an unknown package, or when apt fails.
 */
export async function planDebianImage(apt: PrivateApt, extra: readonly string[] = []): Promise<DebianPlan> {
  for (const name of extra) {
    if (!/^[a-z0-9][a-z0-9+.-]+$/.test(name)) throw new ImageError(`invalid package name in the image recipe: "${name}"`);
  }
  const required = await apt.requiredPackages();
  const packages = await apt.resolveInstall([...new Set([...required, ...DEBIAN_PACKAGES, ...extra])]);
  const kernel = packages.find((p) => /^linux-image-\d.*-riscv64$/.test(p.name));
  if (!kernel) throw new ImageError('the package set has no linux-image-<version>-riscv64 kernel');
  const key = createHash('sha256')
    .update(JSON.stringify({ builder: DEBIAN_BUILDER_VERSION, packages: packages.map((p) => `${p.name}=${p.version}`).sort() }))
    .digest('hex')
    .slice(0, 16);
  return { key, packages, extra: [...extra], kernelVersion: kernel.name.slice('linux-image-'.length) };
}

/** The folder of the build `key`. */
export function debianImageDir(paths: CachePaths, key: string): string {
  return join(paths.images, `${DEBIAN_IMAGE_NAME}-${key}`);
}

/**
 * The built image of `key` (or the current one when `key` is omitted), if complete.
 */
export function findDebianImage(paths: CachePaths, key?: string): DebianImage | undefined {
  let dir: string | undefined;
  if (key) dir = debianImageDir(paths, key);
  else dir = readJson<{ dir: string }>(join(paths.images, `${DEBIAN_IMAGE_NAME}.json`))?.dir;
  if (!dir) return undefined;
  const m = readJson<DebianImage>(join(dir, 'manifest.json'));
  if (!m || m.builder !== DEBIAN_BUILDER_VERSION || !isFile(m.disk) || !isFile(m.firmware)) return undefined;
  return m;
}

/** Options of {@link buildDebianStage1}. */
export interface Stage1Options {
  paths: CachePaths;
  /** The `.deb` files of `plan.packages`, same order. */
  debs: string[];
  /** Mirror URI written into the guest's apt sources (derived from the host's at run time). */
  mirrorUri: string;
  progress: ProgressListener;
}

/** The result of stage 1: an unconfigured system disk in a temporary folder. */
export interface Stage1Result {
  /** Temporary build folder (renamed into place by {@link finishDebianImage}). */
  dir: string;
  /** The raw ext4 disk. */
  disk: string;
  plan: DebianPlan;
  rootUuid: string;
}

/**
 * Stage 1: unpacks the packages into a tree with fakeroot, writes dpkg's database and
 * tsvisor's files, and builds the ext4 disk with `mke2fs -d`.
 * @throws ImageError when fakeroot, dpkg-deb, tar or mke2fs is missing or fails, or a
 *   package's contents are unusable.
 */
export async function buildDebianStage1(plan: DebianPlan, opts: Stage1Options): Promise<Stage1Result> {
  const { paths, progress } = opts;
  const dir = `${debianImageDir(paths, plan.key)}.tmp-${process.pid}`;
  rmSync(dir, { recursive: true, force: true });
  const root = join(dir, 'root');
  const control = join(dir, 'control');
  const lists = join(dir, 'lists');
  for (const d of [root, control, lists]) mkdirSync(d, { recursive: true });
  const state = join(dir, 'fakeroot.state');
  writeFileSync(state, '');

  // merged /usr, as base-files and debootstrap lay it out: /bin, /sbin, /lib -> usr/...
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib']) mkdirSync(join(root, d), { recursive: true });

  progress({ kind: 'step', message: `unpacking ${plan.packages.length} packages (stage 1, on the host)` });
  const script = ['set -e', 'umask 022', `cd ${shq(root)}`, 'ln -s usr/bin bin', 'ln -s usr/sbin sbin', 'ln -s usr/lib lib'];
  plan.packages.forEach((p, i) => {
    const deb = opts.debs[i]!;
    const id = infoName(p, {});
    script.push(
      `echo "P ${i + 1} ${p.name}"`,
      `mkdir ${shq(join(control, id))}`,
      `dpkg-deb -e ${shq(deb)} ${shq(join(control, id))}`,
      `dpkg-deb --fsys-tarfile ${shq(deb)} | tar -x -v --keep-directory-symlink --no-overwrite-dir -f - > ${shq(join(lists, id))}`,
    );
  });
  await fakeroot(['-s', state], script.join('\n'), 'unpack the Debian packages', (line) => {
    const m = /^P (\d+) (\S+)/.exec(line);
    if (m) progress({ kind: 'bytes', items: true, label: 'unpacking packages', done: Number(m[1]), total: plan.packages.length });
  });

  // depmod on the host: in the guest it decompresses every module (.ko.xz) on the
  // emulated CPU, which takes about 20 minutes; stage 2's depmod shim then skips it
  progress({ kind: 'step', message: `depmod ${plan.kernelVersion} (on the host)` });
  const dm = await run('depmod', ['-b', root, plan.kernelVersion], { purpose: 'index the kernel modules of the Debian image', providedBy: 'kmod' });
  if (dm.code !== 0) throw new ImageError(`depmod -b ${root} ${plan.kernelVersion} failed: ${dm.stderr.toString('utf8').trim().split('\n').at(-1)}`);

  // dpkg's database, as `dpkg --unpack` leaves it
  const dpkg = join(root, 'var/lib/dpkg');
  for (const d of ['info', 'updates', 'triggers', 'alternatives', 'parts']) mkdirSync(join(dpkg, d), { recursive: true });
  writeFileSync(join(dpkg, 'info/format'), '1\n');
  for (const f of ['diversions', 'statoverride', 'available', 'triggers/Unincorp']) writeFileSync(join(dpkg, f), '');
  const stanzas: string[] = [];
  const order: string[] = [];
  for (const p of plan.packages) {
    const id = infoName(p, {});
    const ctl = join(control, id);
    const fields = readFileSync(join(ctl, 'control'), 'utf8').replace(/\n+$/, '');
    const multiArchSame = /^Multi-Arch:\s*same\s*$/m.test(fields);
    const info = infoName(p, { multiArchSame });
    order.push(info);
    const conffiles = existsSync(join(ctl, 'conffiles'))
      ? readFileSync(join(ctl, 'conffiles'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '')
      : [];
    const conf: string[] = [];
    for (const line of conffiles) {
      const words = line.split(/\s+/);
      const path = words.at(-1)!;
      if (words.includes('remove-on-upgrade')) continue;
      if (!path.startsWith('/') || path.includes('/../')) throw new ImageError(`package ${p.name}: bad conffile path ${path}`);
      const abs = join(root, path);
      if (exists(abs)) renameSync(abs, `${abs}.dpkg-new`);
      conf.push(` ${path} newconffile`);
    }
    const lines = fields.split('\n');
    const status = [lines[0]!, 'Status: install ok unpacked', ...lines.slice(1)];
    if (conf.length) status.push('Conffiles:', ...conf);
    stanzas.push(status.join('\n'));
    // file list: tar -v prints ./, ./usr/, ./usr/bin/x ...; dpkg lists /., /usr, /usr/bin/x
    const listed = readFileSync(join(lists, id), 'utf8').split('\n').filter((l) => l !== '');
    const files = listed.map((l) => {
      const n = l.replace(/^\.\//, '/').replace(/\/$/, '');
      return n === '' || n === '.' ? '/.' : n;
    });
    writeFileSync(join(dpkg, 'info', `${info}.list`), `${files.join('\n')}\n`);
    for (const f of readdirSync(ctl)) {
      if (f === 'control') continue;
      writeFileSync(join(dpkg, 'info', `${info}.${f}`), readFileSync(join(ctl, f)));
      chmodSync(join(dpkg, 'info', `${info}.${f}`), statSync(join(ctl, f)).mode & 0o777);
    }
  }
  writeFileSync(join(dpkg, 'status'), `${stanzas.join('\n\n')}\n`);
  writeFileSync(join(dpkg, 'status-old'), '');

  writeTsvisorFiles(root, plan, order, opts.mirrorUri);

  // size: what the tree holds, plus room for stage 2 (initrd, caches) and the user
  const used = treeBytes(root);
  const size = roundUp(Math.max(2 * 1024 ** 3, used * 2 + 512 * 1024 ** 2), 256 * 1024 ** 2);
  const fsBytes = size - ROOT_PARTITION_OFFSET - 1024 * 1024; // the backup GPT takes the last 33 sectors
  const disk = join(dir, 'disk.img');
  const rootUuid = randomUUID();
  progress({ kind: 'step', message: `building the disk: GPT, ext4 root partition (${formatBytes(used)} of files, ${formatBytes(size)} disk)` });
  writeFileSync(disk, '');
  truncateSync(disk, size);
  const layout = [
    'label: gpt',
    `start=${ROOT_PARTITION_OFFSET / 512}, size=${fsBytes / 512}, type=${ROOT_RISCV64_PARTITION_TYPE}, name="root", attrs="LegacyBIOSBootable"`,
    '',
  ].join('\n');
  const sf = await run('sh', ['-c', `printf '%s' "$1" | sfdisk --quiet --no-reread --no-tell-kernel "$2"`, 'sh', layout, disk], {
    purpose: 'partition the Debian image', providedBy: 'fdisk',
  });
  if (sf.code !== 0) throw new ImageError(`sfdisk ${disk} failed: ${sf.stderr.toString('utf8').trim().split('\n').at(-1)}`);
  await fakeroot(['-i', state], [
    'set -e',
    `mke2fs -q -F -t ext4 -L ${DEBIAN_ROOT_LABEL} -U ${rootUuid} -E offset=${ROOT_PARTITION_OFFSET} -d ${shq(root)} ${shq(disk)} ${Math.floor(fsBytes / 1024)}k`,
  ].join('\n'), 'build the ext4 file system', () => {});
  // only now: fakeroot's state is keyed by inode, and a file created after a removal
  // outside the session could reuse a removed file's inode and take on its faked mode
  for (const p of [root, control, lists, state]) rmSync(p, { recursive: true, force: true });
  return { dir, disk, plan, rootUuid };
}

/**
 * Moves a configured stage-1 build into place as the current, read-only base image.
 * @returns the image.
 */
export function finishDebianImage(paths: CachePaths, s: Stage1Result, firmware: string, buildSeconds?: number): DebianImage {
  const dir = debianImageDir(paths, s.plan.key);
  const image: DebianImage = {
    name: DEBIAN_IMAGE_NAME,
    disk: join(dir, 'disk.img'),
    dir,
    key: s.plan.key,
    kernelVersion: s.plan.kernelVersion,
    packages: Object.fromEntries(s.plan.packages.map((p) => [p.name, p.version])),
    extra: s.plan.extra,
    rootUuid: s.rootUuid,
    diskSize: statSync(s.disk).size,
    created: new Date().toISOString(),
    builder: DEBIAN_BUILDER_VERSION,
    firmware,
    ...(buildSeconds !== undefined ? { buildSeconds } : {}),
  };
  chmodSync(s.disk, 0o444);
  writeFileSync(join(s.dir, 'manifest.json'), `${JSON.stringify(image, null, 2)}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(s.dir, dir);
  setCurrentDebianImage(paths, image);
  return image;
}

/** Makes `image` the one `--image debian` uses (atomic rename of the pointer file). */
export function setCurrentDebianImage(paths: CachePaths, image: DebianImage): void {
  const pointer = join(paths.images, `${DEBIAN_IMAGE_NAME}.json`);
  writeFileSync(`${pointer}.tmp`, JSON.stringify({ dir: image.dir }));
  renameSync(`${pointer}.tmp`, pointer);
}

/** Every built image in the cache (the default image and Debian builds), oldest first. */
export function listImages(paths: CachePaths): ImageListEntry[] {
  const out: ImageListEntry[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(paths.images);
  } catch {
    return out;
  }
  const current = new Set<string>();
  const debianPtr = readJson<{ dir: string }>(join(paths.images, `${DEBIAN_IMAGE_NAME}.json`));
  if (debianPtr) current.add(debianPtr.dir);
  const defaultPtr = readJson<{ manifest: string }>(join(paths.images, 'default.json'));
  if (defaultPtr) current.add(join(defaultPtr.manifest, '..'));
  for (const n of names.sort()) {
    const dir = join(paths.images, n);
    if (n.includes('.tmp-')) continue;
    const m = readJson<{ name?: string; disk?: string; kernel?: string; initrd?: string; created?: string }>(join(dir, 'manifest.json'));
    if (!m) continue;
    if (n.startsWith(`${DEBIAN_IMAGE_NAME}-`) && m.disk && isFile(m.disk)) {
      out.push({ name: m.name ?? DEBIAN_IMAGE_NAME, path: m.disk, size: allocated(m.disk), created: m.created ?? '', current: current.has(dir) });
    } else if (n.startsWith('default-') && m.kernel && isFile(m.kernel)) {
      const size = allocated(m.kernel) + (m.initrd && isFile(m.initrd) ? allocated(m.initrd) : 0);
      out.push({ name: 'default', path: m.kernel, size, created: m.created ?? '', current: current.has(join(dir)) });
    }
  }
  return out.sort((a, b) => a.created.localeCompare(b.created));
}

/** The info-file stem dpkg uses: `pkg`, or `pkg:arch` for `Multi-Arch: same` packages. */
function infoName(p: ResolvedPackage, o: { multiArchSame?: boolean }): string {
  return o.multiArchSame ? `${p.name}:${p.arch}` : p.name;
}

/** tsvisor's files in the image: fstab, hostname, apt sources, the agent, stage 2. */
function writeTsvisorFiles(root: string, plan: DebianPlan, order: string[], mirrorUri: string): void {
  const put = (path: string, text: string, mode = 0o644): void => {
    const abs = join(root, path);
    mkdirSync(join(abs, '..'), { recursive: true });
    writeFileSync(abs, text);
    chmodSync(abs, mode);
  };
  put('etc/fstab', `# <file system> <mount point> <type> <options> <dump> <pass>\nLABEL=${DEBIAN_ROOT_LABEL} / ext4 rw,errors=remount-ro,x-systemd.growfs 0 1\n`);
  put('etc/hostname', 'debian\n');
  put('etc/hosts', '127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\t\tlocalhost ip6-localhost ip6-loopback\n');
  put('etc/apt/sources.list.d/debian.sources', [
    'Types: deb',
    `URIs: ${mirrorUri}`,
    `Suites: ${DEBIAN_SUITE} ${DEBIAN_SUITE}-updates`,
    'Components: main',
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
    '',
  ].join('\n'));
  // a small initrd with what the board needs (initramfs-tools' MODULES=most takes minutes to build here)
  put('etc/initramfs-tools/conf.d/tsvisor.conf', '# tsvisor: only the modules listed in /etc/initramfs-tools/modules (and what hooks add)\nMODULES=list\n');
  put('etc/initramfs-tools/modules', '# tsvisor board: virtio-mmio transport, virtio-blk root disk, ext4\nvirtio_mmio\nvirtio_blk\next4\ncrc32c_generic\n');
  put(DEBIAN_AGENT_PATH.slice(1), agentScript({ systemd: true }), 0o755);
  put('etc/systemd/system/tsvisor-agent.service', [
    '[Unit]',
    'Description=tsvisor guest agent',
    `BindsTo=dev-virtio\\x2dports-${AGENT_PORT_NAME}.device`,
    `After=dev-virtio\\x2dports-${AGENT_PORT_NAME}.device`,
    'DefaultDependencies=no',
    'After=local-fs.target',
    '',
    '[Service]',
    `ExecStart=${DEBIAN_AGENT_PATH}`,
    'Restart=always',
    'RestartSec=1',
    '',
  ].join('\n'));
  put('etc/udev/rules.d/60-tsvisor-agent.rules',
    `SUBSYSTEM=="virtio-ports", ATTR{name}=="${AGENT_PORT_NAME}", TAG+="systemd", ENV{SYSTEMD_WANTS}+="tsvisor-agent.service"\n`);
  put('etc/systemd/system/tsvisor-ssh-keygen.service', [
    '[Unit]',
    "Description=Generate this VM's SSH host keys",
    'ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key',
    'Before=ssh.service',
    '',
    '[Service]',
    'Type=oneshot',
    "ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key",
    "ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N '' -f /etc/ssh/ssh_host_ecdsa_key",
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n'));
  // every Ethernet card by DHCP (systemd-networkd; names and DNS through systemd-resolved)
  put('etc/systemd/network/80-tsvisor-dhcp.network', [
    '# tsvisor: every Ethernet card gets its address, route, MTU and DNS by DHCP',
    '[Match]',
    'Type=ether',
    '',
    '[Network]',
    'DHCP=yes',
    '',
    '[DHCPv4]',
    'UseDomains=yes',
    'UseMTU=yes',
    '',
  ].join('\n'));
  put('etc/kernel/cmdline', `${DEBIAN_KERNEL_CMDLINE}\n`);
  // first boot: the root partition grows to the end of the disk (systemd-repart), then
  // its file system (x-systemd.growfs in fstab)
  put('etc/repart.d/50-root.conf', '[Partition]\nType=root\n');
  // stage 2 only: depmod was run on the host (see buildDebianStage1)
  put('usr/lib/tsvisor/stage2-bin/depmod', [
    '#!/bin/sh',
    '# tsvisor stage 2: the host already ran depmod for the installed kernel',
    'if [ "$#" = 1 ] && [ -s "/usr/lib/modules/$1/modules.dep.bin" ]; then exit 0; fi',
    'exec /usr/sbin/depmod "$@"',
    '',
  ].join('\n'), 0o755);
  // placeholders: openssh-server's postinst then skips generating host keys (an RSA key
  // takes minutes on an emulated CPU); stage 2 removes them, and each VM makes its own
  for (const t of ['rsa', 'ecdsa', 'ed25519']) {
    put(`etc/ssh/ssh_host_${t}_key`, '', 0o600);
    put(`etc/ssh/ssh_host_${t}_key.pub`, '');
  }
  put('var/lib/tsvisor/preinst-order', `${order.join('\n')}\n`);
  put(STAGE2_SCRIPT.slice(1), stage2Script(plan.kernelVersion), 0o755);
}

/**
 * The stage-2 script, run as root in a chroot of the unconfigured disk with /proc, /sys,
 * /dev and /run mounted. Exit status 0 when the system is configured.
 */
export function stage2Script(kernelVersion: string): string {
  return `#!/bin/sh
# tsvisor stage 2 (builder ${DEBIAN_BUILDER_VERSION}): configure the packages stage 1 unpacked
set -u
export PATH=/usr/lib/tsvisor/stage2-bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root
export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true
export DPKG_ROOT= DPKG_ADMINDIR=/var/lib/dpkg
echo "tsvisor-stage2: preinst scripts"
ldconfig
while read -r p; do
  s=/var/lib/dpkg/info/$p.preinst
  [ -x "$s" ] || continue
  DPKG_MAINTSCRIPT_NAME=preinst DPKG_MAINTSCRIPT_PACKAGE=\${p%%:*} DPKG_MAINTSCRIPT_ARCH=\${p#*:} "$s" install \\
    || echo "tsvisor-stage2: warning: $p preinst failed"
done < /var/lib/tsvisor/preinst-order
echo "tsvisor-stage2: dpkg --configure -a"
dpkg --configure -a || dpkg --configure -a || exit 1
ldconfig
[ -e /boot/initrd.img-${kernelVersion} ] || update-initramfs -c -k ${kernelVersion} || exit 1
echo "tsvisor-stage2: boot menu"
# U-Boot boots the default entry at once (u-boot-menu's defaults wait 5 s at a prompt)
sed -i -e 's/^#\\?U_BOOT_PROMPT=.*/U_BOOT_PROMPT="0"/' -e 's/^#\\?U_BOOT_TIMEOUT=.*/U_BOOT_TIMEOUT="0"/' \\
  -e 's/^#\\?U_BOOT_ALTERNATIVES=.*/U_BOOT_ALTERNATIVES="default"/' /etc/default/u-boot
u-boot-update || exit 1
[ -s /boot/extlinux/extlinux.conf ] || { echo "tsvisor-stage2: no /boot/extlinux/extlinux.conf"; exit 1; }
echo "tsvisor-stage2: finishing"
systemctl enable tsvisor-ssh-keygen.service >/dev/null 2>&1 || true
systemctl enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1 || echo "tsvisor-stage2: warning: cannot enable systemd-networkd"
ln -sf ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
systemctl set-default multi-user.target >/dev/null 2>&1 || true
passwd -d root >/dev/null
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
rm -rf /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/*.log /var/lib/tsvisor/preinst-order
dpkg --audit || exit 1
rm -rf ${STAGE2_SCRIPT} /usr/lib/tsvisor/stage2-bin
sync
echo "tsvisor-stage2: done"
`;
}

/** Runs `sh -c script` under fakeroot with `args` (-s/-i state); lines of stdout go to `onLine`. */
async function fakeroot(args: string[], script: string, purpose: string, onLine: (line: string) => void): Promise<void> {
  let pending = '';
  const r = await run('fakeroot', [...args, '--', 'sh', '-c', script], {
    purpose,
    providedBy: 'fakeroot',
    env: { ...process.env, LC_ALL: 'C' },
    onOutput: (chunk, stream) => {
      if (stream !== 'stdout') return;
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const l of lines) onLine(l);
    },
  });
  if (r.code !== 0) {
    const err = r.stderr.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '').at(-1) ?? `exit status ${r.code}`;
    throw new ImageError(`cannot ${purpose}: ${err}`);
  }
}

function treeBytes(dir: string): number {
  let total = 0;
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      total += 4096;
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) total += lstatSync(p).size;
    }
  };
  walk(dir);
  return total;
}

function allocated(path: string): number {
  try {
    return statSync(path).blocks * 512;
  } catch {
    return 0;
  }
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

