/**
 * A VM process's CD-ROM drive, across guest reboots: every board has one (virtio-scsi with
 * an MMC logical unit, src/devices/scsi/cdrom.ts), empty or holding an ISO image, which
 * is opened read-only and never written. The guest's own eject empties the drive and
 * closes the image; a reboot keeps whatever is in the drive.
 */
import { openDisk, type DiskImage } from '../devices/node/disk.js';
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
