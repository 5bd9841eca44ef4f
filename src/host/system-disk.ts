/**
 * The system disk of a VM that boots what it installed (issue "A whole Debian system"):
 * either a copy-on-write overlay of a system image (`vm create --image debian`) or the
 * user's own disk (`vm create --boot-disk FILE`), booted through the firmware (Debian's
 * S-mode U-Boot, which extlinux-boots the kernel and initrd in the disk's /boot).
 */
import { isAbsolute } from 'node:path';
import { createDisk, diskInfo } from '../devices/node/disk.js';
import { DEBIAN_IMAGE_NAME } from '../images/index.js';
import type { DebianImage } from '../images/debian-image.js';
import { ensureBootFirmware, ensureDebianImage } from '../vmm/debian-build.js';
import { HostError } from './errors.js';

/** What the daemon passes: its home (the image cache) and its log. */
interface Context { home: string; log(line: string): void }

/**
 * The image a VM is made from, built on first use (minutes; the daemon logs the steps).
 * @throws HostError: invalid_argument (unknown image; kernel, initrd or append given, or a
 *   disk size below the base's or not a multiple of 512), unavailable (cannot be built).
 */
export async function resolveImage(c: Context & { image: string; diskSizeBytes?: number; kernel?: string; initrd?: string; append?: string }): Promise<DebianImage> {
  if (c.kernel || c.initrd || c.append) {
    throw new HostError('invalid_argument', 'a VM made from an image boots the kernel installed in it: kernel, initrd and append do not apply');
  }
  if (c.image !== DEBIAN_IMAGE_NAME) throw new HostError('invalid_argument', `unknown image "${c.image}" (known: ${DEBIAN_IMAGE_NAME})`);
  let img: DebianImage;
  try {
    img = await ensureDebianImage({
      home: c.home, quiet: true,
      onProgress: (ev) => { if (ev.kind !== 'bytes') c.log(`image: ${ev.message}`); },
    });
  } catch (err) {
    throw new HostError('unavailable', `the ${c.image} image is not available: ${(err as Error).message.split('\n')[0]}`);
  }
  const size = c.diskSizeBytes ?? img.diskSize;
  if (size < img.diskSize || size % 512 !== 0) {
    throw new HostError('invalid_argument', `disk size ${size}: must be a multiple of 512 bytes and at least the image's ${img.diskSize} bytes`);
  }
  return img;
}

/**
 * Makes a VM's own qcow2 overlay of `img`'s base disk at `path`, `sizeBytes` large (default:
 * the base's; the guest grows its root file system into the rest at boot).
 * @throws Error from the disk layer (the file exists, or cannot be written).
 */
export function createImageOverlay(img: DebianImage, path: string, sizeBytes?: number): void {
  createDisk(path, { format: 'qcow2', backing: img.disk, backingFormat: 'raw', size: sizeBytes ?? img.diskSize });
}

/**
 * Checks a user's boot disk (raw or a valid qcow2 with its backing chain) and returns the
 * firmware that boots it (downloaded on first use).
 * @throws HostError: invalid_argument (relative path, unreadable or invalid disk; kernel,
 *   initrd or append given), unavailable (the firmware cannot be fetched).
 */
export async function bootDiskFirmware(c: Context & { bootDisk: string; kernel?: string; initrd?: string; append?: string }): Promise<string> {
  if (c.kernel || c.initrd || c.append) {
    throw new HostError('invalid_argument', 'a VM with a boot disk boots the kernel installed on it: kernel, initrd and append do not apply');
  }
  if (!isAbsolute(c.bootDisk)) throw new HostError('invalid_argument', `boot disk ${c.bootDisk}: must be an absolute path`);
  try {
    diskInfo(c.bootDisk);
  } catch (err) {
    throw new HostError('invalid_argument', `boot disk: ${(err as Error).message.split('\n')[0]}`);
  }
  try {
    return await ensureBootFirmware({
      home: c.home, quiet: true,
      onProgress: (ev) => { if (ev.kind !== 'bytes') c.log(`firmware: ${ev.message}`); },
    });
  } catch (err) {
    throw new HostError('unavailable', `the boot firmware is not available: ${(err as Error).message.split('\n')[0]}`);
  }
}
