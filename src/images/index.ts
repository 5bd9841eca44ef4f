/**
 * Guest images: Debian packages -> kernel, initramfs (and later disks).
 * Public API of `src/images/`.
 */
export { ImageError } from './errors.js';
export { tsvisorHome, cachePaths, cacheDir } from './paths.js';
export type { CachePaths } from './paths.js';
export {
  parseOneLineSources, parseDeb822Sources, readAptSources, chooseMirror, findDebianMirror, isMainArchiveSuite,
} from './sources.js';
export type { AptSource, MirrorChoice } from './sources.js';
export { PrivateApt, DEBIAN_ARCHIVE_KEYRING, parseControlStanzas, dependsNames } from './apt.js';
export type { PrivateAptOptions, PackageRecord, DownloadTarget } from './apt.js';
export {
  cpioNewc, cpioFile, cpioDir, cpioSymlink, CPIO_TRAILER, NEWC_HEADER_SIZE,
  S_IFMT, S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO,
} from './cpio.js';
export type { CpioEntry } from './cpio.js';
export {
  parseModinfo, parseSoftdep, elfSection, modinfoFromElf, resolveModuleOrder, KernelModuleTree, normalizeModuleName,
  moduleNameFromPath, globMatch,
} from './modules.js';
export type { ModInfo, ModuleSource, ModuleOrder } from './modules.js';
export {
  buildInitramfs, initramfsEntries, initScript, agentScript, AGENT_PORT_NAME, busyboxApplets, collectModules, DEFAULT_GUEST_MODULES, OPTIONAL_GUEST_MODULES,
  MODULE_DEVICE_TYPES, moduleDeviceTypes,
  INITRAMFS_BUILDER_VERSION, FALLBACK_APPLETS,
} from './initramfs.js';
export type { InitramfsInputs, InitramfsModule } from './initramfs.js';
export {
  ensureDefaultImage, extractDeb, parseRiscvImageHeader, KERNEL_METAPACKAGE, BUSYBOX_PACKAGE, DEFAULT_MAX_LIST_AGE_MS,
} from './default-image.js';
export type { DefaultImage, EnsureDefaultImageOptions, RiscvImageHeader } from './default-image.js';
export { stderrProgress, formatBytes } from './progress.js';
export type { ProgressEvent, ProgressListener } from './progress.js';
export {
  DEBIAN_IMAGE_NAME, DEBIAN_BUILDER_VERSION, DEBIAN_PACKAGES, DEBIAN_SUITE, DEBIAN_ROOT_LABEL, STAGE2_SCRIPT, planDebianImage, buildDebianStage1,
  finishDebianImage, findDebianImage, debianImageDir, listImages, stage2Script,
} from './debian-image.js';
export type { DebianPlan, DebianImage, ImageListEntry, Stage1Options, Stage1Result } from './debian-image.js';
export type { ResolvedPackage } from './apt.js';
export { withFileLock } from './lock.js';
export { UBOOT_PACKAGE, UBOOT_SMODE_PATH, ensureUbootFirmware } from './firmware.js';
export type { Firmware } from './firmware.js';
