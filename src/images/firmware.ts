/**
 * The board's firmware for booting a guest's own disk: Debian's S-mode U-Boot
 * (`u-boot-qemu`, `qemu-riscv64_smode/uboot.elf`). It runs on tsvisor's SBI like a kernel
 * and extlinux-boots the kernel and initrd that the guest installed in its /boot (the
 * `/boot/extlinux/extlinux.conf` that Debian's `u-boot-menu` writes), as Debian's
 * riscv64 systems boot on real boards. Kept on the host, as a board's flash would be.
 */
import { join } from 'node:path';
import type { PrivateApt } from './apt.js';
import { extractDeb } from './default-image.js';
import { ImageError } from './errors.js';
import { isFile } from './files.js';
import type { CachePaths } from './paths.js';

/** Debian package that ships the firmware. */
export const UBOOT_PACKAGE = 'u-boot-qemu';
/** Path of the S-mode U-Boot inside {@link UBOOT_PACKAGE}. */
export const UBOOT_SMODE_PATH = 'usr/lib/u-boot/qemu-riscv64_smode/uboot.elf';

/** The firmware file and the package version it came from. */
export interface Firmware {
  /** Absolute path of `uboot.elf` (an ELF64 RISC-V executable). */
  path: string;
  /** `u-boot-qemu=<version>`. */
  package: string;
}

/**
 * Downloads (once) and extracts Debian's S-mode U-Boot. The lists of `apt` must be current.
 * @throws ImageError when the package cannot be fetched or lacks the file.
 */
export async function ensureUbootFirmware(apt: PrivateApt, paths: CachePaths): Promise<Firmware> {
  const rec = await apt.show(UBOOT_PACKAGE);
  const spec = `${UBOOT_PACKAGE}=${rec.Version}`;
  const [deb] = await apt.download([spec], paths.debs);
  const dir = await extractDeb(deb!, join(paths.extract, `${UBOOT_PACKAGE}_${rec.Version.replace(/:/g, '%3a')}`));
  const path = join(dir, UBOOT_SMODE_PATH);
  if (!isFile(path)) throw new ImageError(`${spec} has no ${UBOOT_SMODE_PATH}`);
  return { path, package: spec };
}
