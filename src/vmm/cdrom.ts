/**
 * A VM process's CD-ROM drive, across guest reboots: every board has one (virtio-scsi with
 * an MMC logical unit, src/devices/scsi/cdrom.ts), empty or holding an ISO image, which
 * is opened read-only and never written. The guest's own eject empties the drive and
 * closes the image; a reboot keeps whatever is in the drive.
 */
import { openDisk, type DiskImage } from '../devices/node/disk.js';
import { DiskChangeError } from './disks.js';
import type { BlockBackend } from '../devices/bus.js';
import type { CdromUnit } from '../devices/scsi/cdrom.js';
import type { CdromConfig } from '../machine/board.js';

/** What `GET /status` says of the drive: the image in it (null: empty), and whether the guest holds it locked. */
export interface CdromStatus {
  path: string | null;
  locked: boolean;
}

/** The drive; see the file comment. */
export class VmCdrom {
  private path: string | null = null;
  private image: DiskImage | null = null;
  private unit: CdromUnit | null = null;

  constructor(private readonly log: (line: string) => void) {}

  /**
   * Put the ISO image at `path` in the drive for the first boot.
   * @throws Error with the image's one-line reason.
   */
  open(path: string): void {
    this.image = openDisk(path, { readonly: true, format: 'raw' });
    this.path = path;
  }

  /** The drive of the next board. */
  boardConfig(): CdromConfig {
    return { medium: this.image, onEject: (m) => this.guestEjected(m) };
  }

  /** Follow the drive of the board that now runs (null between boards). */
  setBoard(unit: CdromUnit | null): void {
    this.unit = unit;
  }

  private guestEjected(medium: BlockBackend): void {
    if (medium !== this.image) return;
    this.log(`the guest ejected ${this.path}`);
    try { this.image?.close(); } catch { /* nothing more to do */ }
    this.image = null;
    this.path = null;
  }

  /**
   * Put the ISO image at `path` in the drive (the disc in it, if any, is taken out first);
   * a running guest is told (UNIT ATTENTION, media event), and the next boot has it.
   * @throws DiskChangeError(400) when the image cannot be opened; nothing changes then.
   */
  insert(path: string): void {
    let image: DiskImage;
    try {
      image = openDisk(path, { readonly: true, format: 'raw' });
    } catch (e) {
      throw new DiskChangeError(400, (e as Error).message);
    }
    const old = this.image;
    if (this.unit) this.unit.insert(image);
    this.image = image;
    this.path = path;
    if (old) { try { old.close(); } catch { /* nothing more to do */ } }
    this.log(`CD-ROM: ${path} inserted`);
  }

  /**
   * Take the disc out. While the running guest holds the tray locked (a mounted disc),
   * only `force` does; otherwise the guest is asked to let it go (a media event) and this
   * throws.
   * @throws DiskChangeError(409) with the reason when the tray is locked.
   */
  eject(force: boolean): void {
    if (this.unit && this.unit.eject(force) === 'locked') {
      throw new DiskChangeError(409, 'the guest holds the tray locked (the disc is mounted): unmount it in the guest first, or eject with --force');
    }
    const path = this.path;
    try { this.image?.close(); } catch { /* nothing more to do */ }
    this.image = null;
    this.path = null;
    if (path) this.log(`CD-ROM: ${path} ejected${force ? ' (forced)' : ''}`);
  }

  /** The drive's state for `GET /status`. */
  status(): CdromStatus {
    return { path: this.path, locked: this.unit?.locked ?? false };
  }

  /** Close the image (the process exits). */
  close(): void {
    try { this.image?.close(); } catch { /* already closed */ }
    this.image = null;
  }
}
