/**
 * Builds the Debian image end to end: stage 1 on the host (images/debian-image.ts), then
 * stage 2 inside a tsvisor VM, as `debootstrap --second-stage` runs on a foreign
 * architecture: the default image's kernel and busybox initramfs boot, mount the new disk
 * and run its stage-2 script in a chroot (`dpkg --configure -a`, the initrd, ...).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FileBlockBackend } from '../devices/node/file-block.js';
import { loadEngineModule } from '../engine/node/module.js';
import {
  PrivateApt, cachePaths, ensureUbootFirmware, ensureDefaultImage, findDebianMirror, stderrProgress, tsvisorHome, ImageError,
} from '../images/index.js';
import type { ProgressListener } from '../images/index.js';
import {
  STAGE2_SCRIPT, buildDebianStage1, setCurrentDebianImage, finishDebianImage, findDebianImage, planDebianImage,
} from '../images/debian-image.js';
import type { DebianImage, Stage1Result } from '../images/debian-image.js';
import { withFileLock } from '../images/lock.js';
import { initrdBlobWithCommand, kernelBootargs } from './boot-config.js';
import { fileBlob } from './boot-files.js';
import { ExitMarkerFilter } from './console.js';
import { Vm } from './vm.js';

/** Package lists older than this are refreshed first (ms): one day. */
const MAX_LIST_AGE_MS = 24 * 3600 * 1000;
/** RAM of the stage-2 VM, bytes. */
const STAGE2_RAM = 1024 * 1024 * 1024;

/** Options of {@link ensureDebianImage}. */
export interface EnsureDebianImageOptions {
  home?: string;
  /** Extra packages (`--packages`); undefined: the current build, whatever it was built with. */
  packages?: string[];
  /** Update the package lists now and rebuild if the versions changed. */
  refresh?: boolean;
  quiet?: boolean;
  onProgress?: ProgressListener;
  /** Receives stage 2's console output (default: dropped unless verbose). */
  onConsole?: (bytes: Uint8Array) => void;
  env?: NodeJS.ProcessEnv;
}

/**
 * Returns the Debian image, building it when no build of the current package versions
 * exists. With a complete build and lists younger than a day, touches neither apt nor the
 * network. Concurrent callers wait for each other through a lock file.
 * @throws ImageError (one line) when a package is unknown, a download or a host tool
 *   fails, or stage 2 fails inside the VM.
 */
export async function ensureDebianImage(opts: EnsureDebianImageOptions = {}): Promise<DebianImage> {
  const paths = cachePaths(opts.home ?? tsvisorHome(opts.env));
  const progress = opts.onProgress ?? stderrProgress({ quiet: opts.quiet });
  const extra = opts.packages ?? [];
  // without `packages`, any current build will do (e.g. one pulled with --packages)
  const quick = (): DebianImage | undefined => {
    if (opts.refresh) return undefined;
    const img = findDebianImage(paths);
    return img && (opts.packages === undefined || sameExtra(img.extra, extra)) ? img : undefined;
  };
  const have = quick();
  if (have) return have;
  mkdirSync(paths.cache, { recursive: true });
  return withFileLock(join(paths.cache, 'debian-image.lock'), async () => {
    const again = quick();
    if (again) return again;
    const mirror = findDebianMirror({ env: opts.env });
    const apt = new PrivateApt({ dir: paths.apt, mirror, onProgress: progress });
    apt.prepare();
    const age = apt.listsAge();
    if (opts.refresh || age === undefined || age > MAX_LIST_AGE_MS) await apt.update();
    const plan = await planDebianImage(apt, extra);
    const built = findDebianImage(paths, plan.key);
    if (built) {
      setCurrentDebianImage(paths, built);
      return built;
    }
    const firmware = await ensureUbootFirmware(apt, paths);
    mkdirSync(paths.debs, { recursive: true });
    progress({ kind: 'step', message: `Debian ${plan.packages.length} packages, kernel ${plan.kernelVersion}` });
    const debs = await apt.download(plan.packages.map((p) => `${p.name}=${p.version}`), paths.debs);
    const t0 = Date.now();
    const s1 = await buildDebianStage1(plan, { paths, debs, mirrorUri: mirror.uri, progress });
    progress({ kind: 'step', message: `configuring the packages inside a tsvisor VM (stage 2; this takes several minutes)` });
    await runStage2(s1, opts, progress);
    const seconds = Math.round((Date.now() - t0) / 1000);
    const img = finishDebianImage(paths, s1, firmware.path, seconds);
    progress({ kind: 'done', message: `Debian image ready in ${seconds} s: ${img.disk}` });
    return img;
  }, { onWait: (pid) => progress({ kind: 'step', message: `waiting for tsvisor process ${pid} to finish building the Debian image` }) });
}

/**
 * The firmware that boots a guest's own disk (`--boot-disk`, or an image's overlay):
 * Debian's S-mode U-Boot, which extlinux-boots the kernel and initrd in the disk's /boot.
 * Takes the current Debian image's copy when one is built; otherwise downloads
 * `u-boot-qemu` once through the private apt (mirror from the host's apt sources).
 * @returns the absolute path of `uboot.elf`.
 * @throws ImageError when the package cannot be fetched.
 */
export async function ensureBootFirmware(opts: Pick<EnsureDebianImageOptions, 'home' | 'quiet' | 'onProgress' | 'env'> = {}): Promise<string> {
  const paths = cachePaths(opts.home ?? tsvisorHome(opts.env));
  const img = findDebianImage(paths);
  if (img) return img.firmware;
  const progress = opts.onProgress ?? stderrProgress({ quiet: opts.quiet });
  mkdirSync(paths.cache, { recursive: true });
  return withFileLock(join(paths.cache, 'debian-image.lock'), async () => {
    const apt = new PrivateApt({ dir: paths.apt, mirror: findDebianMirror({ env: opts.env }), onProgress: progress });
    apt.prepare();
    const age = apt.listsAge();
    if (age === undefined || age > MAX_LIST_AGE_MS) await apt.update();
    return (await ensureUbootFirmware(apt, paths)).path;
  }, { onWait: (pid) => progress({ kind: 'step', message: `waiting for tsvisor process ${pid} to finish with the image cache` }) });
}

function sameExtra(a: string[], b: string[]): boolean {
  return [...a].sort().join(',') === [...b].sort().join(',');
}

/** Boots the stage-1 disk under the default kernel and runs its stage-2 script in a chroot. */
async function runStage2(s1: Stage1Result, opts: EnsureDebianImageOptions, progress: ProgressListener): Promise<void> {
  const def = await ensureDefaultImage({ home: opts.home, env: opts.env, onProgress: progress });
  const cmd = [
    'set -e',
    'mount -t ext4 /dev/vda1 /mnt',
    'for d in proc sys dev run; do mount -o rbind /$d /mnt/$d; done',
    `st=0; chroot /mnt ${STAGE2_SCRIPT} || st=$?`,
    'sync',
    'umount -l /mnt/proc /mnt/sys /mnt/dev /mnt/run 2>/dev/null || true',
    'umount /mnt || mount -o remount,ro /mnt',
    'exit $st',
  ].join('\n');
  // read by the board straight into guest RAM, as `tsvisor run` does
  const initrd = initrdBlobWithCommand(fileBlob(def.initrd), ['sh', '-c', cmd]);
  const disk = new FileBlockBackend(s1.disk);
  const filter = new ExitMarkerFilter();
  let tail = '';
  const vm = await Vm.create({
    ramBytes: STAGE2_RAM, harts: 2, engine: loadEngineModule(), kernel: fileBlob(def.kernel), initrd,
    bootargs: kernelBootargs({}),
    disks: [{ backend: disk, serial: 'debian' }],
    console: {
      write: (bytes: Uint8Array) => {
        const out = filter.push(bytes);
        if (!out.length) return;
        opts.onConsole?.(out);
        tail = (tail + Buffer.from(out).toString('utf8')).slice(-4000);
        for (const m of Buffer.from(out).toString('utf8').matchAll(/tsvisor-stage2: ([^\r\n]*)/g)) {
          progress({ kind: 'step', message: `stage 2: ${m[1]}` });
        }
      },
      read: () => new Uint8Array(0),
      pending: () => 0,
    },
    clock: { nowNs: () => BigInt(Date.now()) * 1_000_000n },
  });
  try {
    await vm.run();
  } finally {
    disk.close();
  }
  if (filter.exitCode !== 0) {
    const last = tail.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '').slice(-3).join(' | ');
    throw new ImageError(`stage 2 of the Debian image failed (exit status ${filter.exitCode ?? 'none: the VM stopped'}): ${last}`);
  }
}
