/**
 * The default guest image: Debian trixie's riscv64 kernel (`linux-image-riscv64`) and
 * an initramfs built from busybox-static plus the kernel modules the board needs.
 *
 * Cache layout (below `$TSVISOR_HOME/cache`, see paths.ts):
 *   apt/                              private apt state (apt.ts)
 *   debs/*.deb                        downloaded packages
 *   extract/<package>_<version>/      `dpkg-deb -x` trees
 *   images/default-<kver>-<key>/      Image (the kernel), initramfs.cpio, manifest.json
 *   images/default.json               which build is current, and from which package lists
 *
 * A call with a complete cache and package lists younger than a day touches neither
 * apt nor the network; the image is rebuilt only when the package versions, the module
 * list or {@link INITRAMFS_BUILDER_VERSION} change.
 */
import { createHash } from 'node:crypto';
import {
  copyFileSync, existsSync, linkSync, mkdirSync, openSync, readFileSync, readSync, closeSync, readdirSync, renameSync, rmSync,
  statSync, writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { PrivateApt, dependsNames } from './apt.js';
import { ImageError } from './errors.js';
import { isFile, readJson } from './files.js';
import { runChecked } from './exec.js';
import {
  DEFAULT_GUEST_MODULES, INITRAMFS_BUILDER_VERSION, OPTIONAL_GUEST_MODULES, buildInitramfs, collectModules,
} from './initramfs.js';
import { withFileLock } from './lock.js';
import { KernelModuleTree } from './modules.js';
import { cachePaths, tsvisorHome } from './paths.js';
import type { CachePaths } from './paths.js';
import { formatBytes, stderrProgress } from './progress.js';
import type { ProgressListener } from './progress.js';
import { findDebianMirror } from './sources.js';

/** The kernel metapackage of the default guest. */
export const KERNEL_METAPACKAGE = 'linux-image-riscv64';
/** The package providing the initramfs's busybox. */
export const BUSYBOX_PACKAGE = 'busybox-static';
/** Package lists older than this (ms) are refreshed with `apt-get update`: one day. */
export const DEFAULT_MAX_LIST_AGE_MS = 24 * 3600 * 1000;

/** Options of {@link ensureDefaultImage}. */
export interface EnsureDefaultImageOptions {
  /** tsvisor home (default {@link tsvisorHome}: `$TSVISOR_HOME`, ...). */
  home?: string;
  /** Update the package lists now, whatever their age (and fail rather than fall back to the cache). */
  refresh?: boolean;
  /** No progress output (warnings still go to stderr unless `onProgress` is given). */
  quiet?: boolean;
  /** Receives progress and warnings instead of stderr. */
  onProgress?: ProgressListener;
  /** Package lists older than this many ms are updated first (default one day). */
  maxListAgeMs?: number;
  /** Environment for `TSVISOR_DEBIAN_MIRROR` (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** Host apt configuration directory to find the mirror in (default `/etc/apt`). */
  etcApt?: string;
}

/** A built default image. Paths are absolute; files must not be modified. */
export interface DefaultImage {
  /** The kernel: a RISC-V Linux `Image` (with an EFI/PE header), loaded at RAM base + `text_offset`. */
  kernel: string;
  /** The initramfs: an uncompressed newc cpio archive (the /init contract is in initramfs.ts). */
  initrd: string;
  /** Kernel release, e.g. `6.12.107+deb13-riscv64`. */
  kernelVersion: string;
  /** Package name -> Debian version the image was built from. */
  packages: Record<string, string>;
  /** Modules in the initramfs, in load order. */
  modules: string[];
  /** The image folder (holds `manifest.json` too). */
  dir: string;
}

interface Manifest extends DefaultImage {
  builder: number;
  key: string;
  builtinModules: string[];
  created: string;
}

interface Pointer {
  manifest: string;
  /** `time` of the apt update stamp the build was checked against. */
  listsTime: number;
}

/** Fields of the RISC-V Linux image header (Documentation/arch/riscv/boot-image-header.rst). */
export interface RiscvImageHeader {
  /** Offset from the start of RAM where the image must be placed, bytes (0x200000 for rv64). */
  textOffset: number;
  /** Effective image size (bytes of memory it occupies, including bss). */
  imageSize: number;
  flags: number;
  /** Header version (major << 16 | minor). */
  version: number;
}

/**
 * Parses the 64-byte header of a RISC-V Linux `Image`.
 * @returns undefined when `head` (at least 64 bytes from the file start) lacks the
 * `RSC\x05` magic at offset 0x38.
 */
export function parseRiscvImageHeader(head: Uint8Array): RiscvImageHeader | undefined {
  if (head.length < 64) return undefined;
  if (head[0x38] !== 0x52 || head[0x39] !== 0x53 || head[0x3a] !== 0x43 || head[0x3b] !== 0x05) return undefined;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  return {
    textOffset: Number(dv.getBigUint64(0x08, true)),
    imageSize: Number(dv.getBigUint64(0x10, true)),
    flags: Number(dv.getBigUint64(0x18, true)),
    version: dv.getUint32(0x20, true),
  };
}

/** `<package>_<version>` with the epoch colon escaped as apt does in file names (`1:2.0` -> `1%3a2.0`). */
function fsName(pkg: string, version: string): string {
  return `${pkg}_${version.replace(/:/g, '%3a')}`;
}

function readHead(path: string, n: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

function validManifest(path: string): Manifest | undefined {
  const m = readJson<Manifest>(path);
  if (!m || m.builder !== INITRAMFS_BUILDER_VERSION || !isFile(m.kernel) || !isFile(m.initrd)) return undefined;
  return m;
}

function publicImage(m: Manifest): DefaultImage {
  return { kernel: m.kernel, initrd: m.initrd, kernelVersion: m.kernelVersion, packages: m.packages, modules: m.modules, dir: m.dir };
}

function aptStampTime(p: CachePaths): number | undefined {
  return readJson<{ time: number }>(join(p.apt, 'update-stamp.json'))?.time;
}

/**
 * Extracts a `.deb` with `dpkg-deb -x` into `dest` (once: an extracted tree is marked
 * complete and reused).
 * @returns `dest`.
 * @throws ImageError when dpkg-deb is missing or fails.
 */
export async function extractDeb(deb: string, dest: string): Promise<string> {
  const marker = join(dest, '.tsvisor-extracted');
  if (existsSync(marker)) return dest;
  const tmp = `${dest}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await runChecked(`dpkg-deb -x ${deb}`, 'dpkg-deb', ['-x', deb, tmp], {
      purpose: 'unpack Debian packages',
      providedBy: 'dpkg',
    });
    writeFileSync(join(tmp, '.tsvisor-extracted'), '');
    rmSync(dest, { recursive: true, force: true });
    renameSync(tmp, dest);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return dest;
}

/**
 * Returns the default guest image, downloading and building it when needed.
 *
 * Steps: find the Debian mirror from the host's apt sources (or `TSVISOR_DEBIAN_MIRROR`);
 * `apt-get update` the private trixie/riscv64 lists when older than a day (or `refresh`);
 * resolve `linux-image-riscv64` to its versioned `linux-image-<kver>` and
 * `busybox-static`; download both (progress on stderr); extract them; compute module
 * dependencies; write the initramfs. A second call with everything cached returns at once
 * without network access. When the lists are stale but the update fails (offline) and a
 * previous build exists, that build is returned with a warning (not with `refresh`).
 * Concurrent callers (other processes) wait for each other through a lock file.
 *
 * @throws ImageError with a one-line message: no apt sources / mirror, apt-get update or
 * download failure, `dpkg-deb`/`xz`/`apt-get` missing, unexpected package contents.
 */
export async function ensureDefaultImage(opts: EnsureDefaultImageOptions = {}): Promise<DefaultImage> {
  const paths = cachePaths(opts.home ?? tsvisorHome(opts.env));
  const progress = opts.onProgress ?? stderrProgress({ quiet: opts.quiet });
  const maxAge = opts.maxListAgeMs ?? DEFAULT_MAX_LIST_AGE_MS;
  const pointerPath = join(paths.images, 'default.json');

  const cached = (): Manifest | undefined => {
    const ptr = readJson<Pointer>(pointerPath);
    return ptr ? validManifest(ptr.manifest) : undefined;
  };
  const fresh = (): Manifest | undefined => {
    if (opts.refresh) return undefined;
    const ptr = readJson<Pointer>(pointerPath);
    const stamp = aptStampTime(paths);
    if (!ptr || stamp === undefined || ptr.listsTime !== stamp || Date.now() - stamp > maxAge) return undefined;
    return validManifest(ptr.manifest);
  };

  const quick = fresh();
  if (quick) return publicImage(quick);

  mkdirSync(paths.cache, { recursive: true });
  return withFileLock(
    join(paths.cache, 'default-image.lock'),
    async () => {
      const again = fresh();
      if (again) return publicImage(again); // another process just built it
      let apt: PrivateApt;
      try {
        const mirror = findDebianMirror({ env: opts.env, etcApt: opts.etcApt });
        apt = new PrivateApt({ dir: paths.apt, mirror, onProgress: progress });
        apt.prepare();
        const age = apt.listsAge();
        if (opts.refresh || age === undefined || age > maxAge) await apt.update();
      } catch (e) {
        const old = cached();
        if (e instanceof ImageError && old && !opts.refresh) {
          progress({ kind: 'warning', message: `${e.message}; using the cached image (${old.kernelVersion})` });
          return publicImage(old);
        }
        throw e;
      }
      return build(apt, paths, progress, pointerPath);
    },
    { onWait: (pid) => progress({ kind: 'step', message: `waiting for tsvisor process ${pid} to finish preparing the default image` }) },
  );
}

async function build(apt: PrivateApt, paths: CachePaths, progress: ProgressListener, pointerPath: string): Promise<DefaultImage> {
  const listsTime = aptStampTime(paths) ?? 0;
  const writePointer = (m: Manifest): void => {
    const ptr: Pointer = { manifest: join(m.dir, 'manifest.json'), listsTime };
    writeFileSync(`${pointerPath}.tmp`, JSON.stringify(ptr, null, 2));
    renameSync(`${pointerPath}.tmp`, pointerPath);
  };

  const meta = await apt.show(KERNEL_METAPACKAGE);
  const imagePkg = dependsNames(meta.Depends).find((n) => /^linux-image-\d.*-riscv64$/.test(n));
  if (!imagePkg) {
    throw new ImageError(`${KERNEL_METAPACKAGE} ${meta.Version} does not depend on a linux-image-<version>-riscv64 package (Depends: ${meta.Depends ?? ''})`);
  }
  const kernelVersion = imagePkg.slice('linux-image-'.length);
  const image = await apt.show(imagePkg);
  const busybox = await apt.show(BUSYBOX_PACKAGE);
  const packages: Record<string, string> = { [imagePkg]: image.Version, [BUSYBOX_PACKAGE]: busybox.Version };
  const key = createHash('sha256')
    .update(JSON.stringify({ builder: INITRAMFS_BUILDER_VERSION, packages, modules: DEFAULT_GUEST_MODULES, optional: OPTIONAL_GUEST_MODULES }))
    .digest('hex')
    .slice(0, 16);
  const dir = join(paths.images, `default-${kernelVersion}-${key}`);
  const existing = validManifest(join(dir, 'manifest.json'));
  if (existing && existing.key === key) {
    writePointer(existing);
    return publicImage(existing);
  }

  mkdirSync(paths.debs, { recursive: true });
  const [kernelDeb, busyboxDeb] = await apt.download([`${imagePkg}=${image.Version}`, `${BUSYBOX_PACKAGE}=${busybox.Version}`], paths.debs);

  progress({ kind: 'step', message: `unpacking ${imagePkg} ${image.Version} and ${BUSYBOX_PACKAGE} ${busybox.Version}` });
  const kroot = await extractDeb(kernelDeb!, join(paths.extract, fsName(imagePkg, image.Version)));
  const bbroot = await extractDeb(busyboxDeb!, join(paths.extract, fsName(BUSYBOX_PACKAGE, busybox.Version)));

  const kernelSrc = join(kroot, 'boot', `vmlinux-${kernelVersion}`);
  if (!isFile(kernelSrc)) throw new ImageError(`${imagePkg} ${image.Version} has no boot/vmlinux-${kernelVersion}`);
  if (!parseRiscvImageHeader(readHead(kernelSrc, 64))) {
    throw new ImageError(`boot/vmlinux-${kernelVersion} of ${imagePkg} is not a RISC-V Linux Image (no RSC\\x05 magic)`);
  }
  const busyboxPath = [join(bbroot, 'usr', 'bin', 'busybox'), join(bbroot, 'bin', 'busybox')].find(isFile);
  if (!busyboxPath) throw new ImageError(`${BUSYBOX_PACKAGE} ${busybox.Version} has no usr/bin/busybox`);

  progress({ kind: 'step', message: `building the initramfs (kernel modules of ${kernelVersion})` });
  const tree = new KernelModuleTree(join(kroot, 'usr', 'lib', 'modules', kernelVersion));
  const { resolution, modules } = await collectModules(tree);
  const cpio = buildInitramfs({ busybox: readFileSync(busyboxPath), kernelVersion, modules });

  mkdirSync(paths.images, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    try {
      linkSync(kernelSrc, join(tmp, 'Image'));
    } catch {
      copyFileSync(kernelSrc, join(tmp, 'Image'));
    }
    writeFileSync(join(tmp, 'initramfs.cpio'), cpio);
    const manifest: Manifest = {
      kernel: join(dir, 'Image'),
      initrd: join(dir, 'initramfs.cpio'),
      kernelVersion,
      packages,
      modules: resolution.order,
      dir,
      builder: INITRAMFS_BUILDER_VERSION,
      key,
      builtinModules: resolution.builtin,
      created: new Date().toISOString(),
    };
    writeFileSync(join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    const previous = readJson<Pointer>(pointerPath);
    writePointer(manifest);
    const keepImages = new Set([dir, ...(previous ? [dirname(previous.manifest)] : [])]);
    prune(paths, new Set([fsName(imagePkg, image.Version), fsName(BUSYBOX_PACKAGE, busybox.Version)]), keepImages);
    progress({
      kind: 'done',
      message: `default image ready: kernel ${kernelVersion} (${formatBytes(statSync(kernelSrc).size)}), initramfs ${formatBytes(cpio.length)} with ${modules.length} modules`,
    });
    return publicImage(manifest);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** True for the packages the default image is made of (any version of the kernel). */
function ownPackage(name: string): boolean {
  return name === BUSYBOX_PACKAGE || /^linux-image-\d.*-riscv64$/.test(name);
}

/**
 * Removes downloads and extracted trees of other versions of the image's packages
 * (`keep` holds the current `<package>_<version>` names), and image folders other than
 * `keepImages` (the current one and the one it replaces, which a VM may be starting from).
 */
function prune(paths: CachePaths, keep: Set<string>, keepImages: Set<string>): void {
  const safeList = (d: string): string[] => {
    try {
      return readdirSync(d);
    } catch {
      return [];
    }
  };
  for (const f of safeList(paths.debs)) {
    const [name, version] = f.split('_');
    if (!f.endsWith('.deb') || !ownPackage(name!)) continue;
    if (!keep.has(`${name}_${version}`)) rmSync(join(paths.debs, f), { force: true });
  }
  for (const d of safeList(paths.extract)) {
    if (ownPackage(d.split('_')[0]!) && !keep.has(d)) rmSync(join(paths.extract, d), { recursive: true, force: true });
  }
  for (const d of safeList(paths.images)) {
    const full = join(paths.images, d);
    if (d.startsWith('default-') && !keepImages.has(full)) rmSync(full, { recursive: true, force: true });
  }
}
