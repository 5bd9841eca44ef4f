/**
 * An MMC CD-ROM drive as a SCSI logical unit (SPC-3, MMC-6 subset), answering what Linux's
 * `sr` and `cdrom` drivers send, as QEMU's `scsi-cd` does (hw/scsi/scsi-disk.c). Its host
 * adapter is src/devices/virtio/scsi.ts; the unit knows nothing of virtio.
 *
 * Commands (CDB fields big-endian): TEST UNIT READY, REQUEST SENSE, INQUIRY (standard and
 * the VPD pages 00, 80, 83), MODE SENSE(6/10) page 2A (and 3F), START STOP UNIT (load and
 * eject), PREVENT ALLOW MEDIUM REMOVAL, READ CAPACITY(10), READ(10), READ(12), READ TOC
 * (formats 0 and 1, LBA and MSF, the lead-out track AA), GET CONFIGURATION, GET EVENT
 * STATUS NOTIFICATION (media class, polled), READ DISC INFORMATION, REPORT LUNS,
 * MECHANISM STATUS and SET CD SPEED (accepted, no effect). Writes get DATA PROTECT;
 * anything else CHECK CONDITION with ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE.
 *
 * The medium: an ISO image of 2048-byte blocks, read-only; the host inserts and ejects it
 * ({@link CdromUnit.insert}, {@link CdromUnit.eject}). As on QEMU, after an insert the
 * guest's next commands get UNIT ATTENTION 06/3A/00 and then 06/28/00 (medium may have
 * changed), and one GET EVENT STATUS NOTIFICATION reports NewMedia; a guest that holds the
 * tray locked (PREVENT, as Linux does while the disc is mounted) refuses a host eject
 * unless forced, and is told of the request (EjectRequest). A guest's own eject (START
 * STOP with LoEj) empties the drive and is reported through `onEject`.
 *
 * Sense data is fixed format (SPC-3 §4.5.3), 18 bytes.
 */
import type { BlockBackend } from '../bus.js';

/** SAM status codes. */
export const SCSI_STATUS_GOOD = 0x00;
export const SCSI_STATUS_CHECK_CONDITION = 0x02;

/** Sense keys (SPC-3 table 27). */
export const SENSE_NO_SENSE = 0x0;
export const SENSE_NOT_READY = 0x2;
export const SENSE_MEDIUM_ERROR = 0x3;
export const SENSE_ILLEGAL_REQUEST = 0x5;
export const SENSE_UNIT_ATTENTION = 0x6;
export const SENSE_DATA_PROTECT = 0x7;

/** CD-ROM logical block size in bytes. */
export const CD_BLOCK_BYTES = 2048;
/** Images up to this many bytes are CDs (profile 0008h), larger ones DVDs (0010h), as QEMU's CD_MAX_SECTORS. */
const CD_MAX_BYTES = 1_440_000 * 512;

/** A sense key with its additional sense code and qualifier. */
export interface Sense { key: number; asc: number; ascq: number }

const sense = (key: number, asc: number, ascq: number): Sense => ({ key, asc, ascq });
/** The conditions this unit reports (SPC-3 Annex D). */
export const SENSE = {
  noMedium: sense(SENSE_NOT_READY, 0x3a, 0x00),
  invalidOpcode: sense(SENSE_ILLEGAL_REQUEST, 0x20, 0x00),
  lbaOutOfRange: sense(SENSE_ILLEGAL_REQUEST, 0x21, 0x00),
  invalidField: sense(SENSE_ILLEGAL_REQUEST, 0x24, 0x00),
  lunNotSupported: sense(SENSE_ILLEGAL_REQUEST, 0x25, 0x00),
  savingNotSupported: sense(SENSE_ILLEGAL_REQUEST, 0x39, 0x00),
  removalPrevented: sense(SENSE_ILLEGAL_REQUEST, 0x53, 0x02),
  notReadyRemovalPrevented: sense(SENSE_NOT_READY, 0x53, 0x02),
  writeProtected: sense(SENSE_DATA_PROTECT, 0x27, 0x00),
  readError: sense(SENSE_MEDIUM_ERROR, 0x11, 0x00),
  mediumChanged: sense(SENSE_UNIT_ATTENTION, 0x28, 0x00),
  reset: sense(SENSE_UNIT_ATTENTION, 0x29, 0x00),
  attentionNoMedium: sense(SENSE_UNIT_ATTENTION, 0x3a, 0x00),
} as const;

/**
 * What a command did: GOOD with data-in bytes (already cut to the CDB's allocation
 * length) or with a read of the medium (`offset`/`length` in bytes, checked against it),
 * or CHECK CONDITION with its sense.
 */
export type ScsiOutcome =
  | { status: typeof SCSI_STATUS_GOOD; data?: Uint8Array; read?: undefined }
  | { status: typeof SCSI_STATUS_GOOD; read: { medium: BlockBackend; offset: number; length: number }; data?: undefined }
  | { status: typeof SCSI_STATUS_CHECK_CONDITION; sense: Sense };

/** Fixed-format sense data (SPC-3 §4.5.3): 18 bytes, current error. */
export function fixedSense(s: Sense): Uint8Array {
  const b = new Uint8Array(18);
  b[0] = 0x70;
  b[2] = s.key & 0x0f;
  b[7] = 10;
  b[12] = s.asc;
  b[13] = s.ascq;
  return b;
}

/** Strings of the standard INQUIRY data, space-padded to their fields. */
export interface CdromIdentity {
  /** T10 vendor, at most 8 ASCII characters (default "TSVISOR"). */
  vendor?: string;
  /** Product, at most 16 (default "CD-ROM"). */
  product?: string;
  /** Revision, at most 4 (default "1.0"). */
  revision?: string;
  /** Unit serial number (VPD page 80) and device identifier (page 83), at most 20 (default "tsvisor-cd0"). */
  serial?: string;
}

/** The result of a host eject. */
export type EjectResult = 'ejected' | 'empty' | 'locked';

/** UNIT ATTENTION precedence (QEMU scsi_sense_to_prio / SAM-5 5.14): lower wins. */
function uaPriority(s: Sense): number {
  if (s.asc === 0x29) return s.ascq === 0 ? 0 : s.ascq;
  return (s.asc << 8) | s.ascq;
}

const be16 = (b: Uint8Array, at: number, v: number) => { b[at] = (v >>> 8) & 0xff; b[at + 1] = v & 0xff; };
const be32 = (b: Uint8Array, at: number, v: number) => { be16(b, at, Math.floor(v / 0x10000) & 0xffff); be16(b, at + 2, v & 0xffff); };
const get16 = (c: Uint8Array, at: number) => (c[at] << 8) | c[at + 1];
const get32 = (c: Uint8Array, at: number) => ((c[at] << 24) >>> 0) + ((c[at + 1] << 16) | (c[at + 2] << 8) | c[at + 3]);

/** ASCII of `s`, space-padded or cut to `n` bytes. */
function ascii(s: string, n: number): Uint8Array {
  const out = new Uint8Array(n).fill(0x20);
  for (let i = 0; i < Math.min(n, s.length); i++) out[i] = s.charCodeAt(i) & 0x7f;
  return out;
}

/** The CD-ROM logical unit (LUN 0); see the file comment. */
export class CdromUnit {
  private mediumImage: BlockBackend | null = null;
  private trayOpen = false;
  private trayLocked = false;
  /** The pending UNIT ATTENTION, reported to the next command that is not exempt. */
  private unitAttention: Sense | null = SENSE.reset;
  /** After the next UNIT ATTENTION is reported, arm 06/28/00 (a medium was inserted). */
  private mediaChanged = false;
  /** GESN events not reported yet: NewMedia, EjectRequest. */
  private mediaEvent = false;
  private ejectRequest = false;
  /** The sense of the last command, for REQUEST SENSE. */
  private lastSense: Sense | null = null;
  private readonly id: Required<CdromIdentity>;

  /**
   * @param identity INQUIRY strings.
   * @param onEject called when the guest ejects the medium (START STOP UNIT, LoEj): the
   *   drive is empty, the medium is the caller's to close.
   */
  constructor(identity: CdromIdentity = {}, private readonly onEject?: (medium: BlockBackend) => void) {
    this.id = { vendor: 'TSVISOR', product: 'CD-ROM', revision: '1.0', serial: 'tsvisor-cd0', ...identity };
  }

  /** The medium in the drive, or null. */
  get medium(): BlockBackend | null { return this.mediumImage; }

  /** Whether the guest holds the tray locked (PREVENT MEDIUM REMOVAL). */
  get locked(): boolean { return this.trayLocked; }

  /** Whether the tray is open (after an eject). */
  get open(): boolean { return this.trayOpen; }

  /**
   * Insert `medium` (an ISO image: its blocks are 2048 bytes; a partial last block is not
   * readable) and close the tray; the guest is told (UNIT ATTENTION, GESN NewMedia).
   * @returns the medium it replaced, for the caller to close, or null.
   */
  insert(medium: BlockBackend): BlockBackend | null {
    const old = this.mediumImage;
    this.mediumImage = medium;
    this.trayOpen = false;
    this.mediaChanged = true;
    this.mediaEvent = true;
    this.ejectRequest = false;
    this.armAttention(SENSE.attentionNoMedium);
    return old;
  }

  /**
   * Eject the medium from the host side. While the guest holds the tray locked, only
   * `force` ejects; otherwise the guest is asked (GESN EjectRequest) and `locked` returned.
   * @returns `ejected` (the medium is the caller's to close: {@link medium} was it), `empty` or `locked`.
   */
  eject(force: boolean): EjectResult {
    if (this.trayLocked && !force) {
      this.ejectRequest = true;
      return 'locked';
    }
    this.trayLocked = false;
    const had = this.mediumImage !== null;
    this.mediumImage = null;
    this.trayOpen = true;
    this.mediaChanged = false;
    this.ejectRequest = false;
    this.mediaEvent = true;
    this.armAttention(SENSE.attentionNoMedium);
    return had ? 'ejected' : 'empty';
  }

  /** Device or logical unit reset: UNIT ATTENTION 06/29/00, tray closed and unlocked. */
  reset(): void {
    this.trayLocked = false;
    this.trayOpen = false;
    this.lastSense = null;
    this.armAttention(SENSE.reset);
  }

  /** Report the pending UNIT ATTENTION (there is one): after an insert's first, 06/28/00 follows. */
  private takeAttention(): Sense {
    const ua = this.unitAttention!;
    this.unitAttention = null;
    if (this.mediaChanged) {
      this.mediaChanged = false;
      this.unitAttention = SENSE.mediumChanged;
    }
    return ua;
  }

  private armAttention(s: Sense): void {
    if (!this.unitAttention || uaPriority(s) < uaPriority(this.unitAttention)) this.unitAttention = s;
  }

  private get available(): boolean {
    return this.mediumImage !== null && !this.trayOpen;
  }

  /** Blocks of 2048 bytes on the medium (0 without one). */
  private get blocks(): number {
    return this.mediumImage ? Math.floor(this.mediumImage.size / CD_BLOCK_BYTES) : 0;
  }

  /**
   * Execute `cdb` addressed to logical unit `lun`. Never throws for what the guest sent.
   * Data-in is cut to the CDB's allocation length here; the adapter cuts it to the
   * guest's buffers.
   */
  execute(lun: number, cdb: Uint8Array): ScsiOutcome {
    const out = lun === 0 ? this.executeLun0(cdb) : this.otherLun(cdb);
    this.lastSense = out.status === SCSI_STATUS_CHECK_CONDITION ? out.sense : null;
    return out;
  }

  private check(s: Sense): ScsiOutcome {
    return { status: SCSI_STATUS_CHECK_CONDITION, sense: s };
  }

  private good(data?: Uint8Array, alloc?: number): ScsiOutcome {
    if (!data) return { status: SCSI_STATUS_GOOD };
    return { status: SCSI_STATUS_GOOD, data: alloc === undefined || alloc >= data.length ? data : data.subarray(0, alloc) };
  }

  /** LUNs other than 0 (SPC-3 §6.4.1, QEMU scsi-bus.c): the sequential LUN scan ends at the first. */
  private otherLun(cdb: Uint8Array): ScsiOutcome {
    switch (cdb[0]) {
      case 0x12: {
        if (cdb[1] & 1) return this.check(SENSE.lunNotSupported);
        const d = new Uint8Array(36);
        d[0] = 0x7f; // peripheral qualifier 3, device type 1Fh: no logical unit here
        return this.good(d, get16(cdb, 3));
      }
      case 0x03: return this.good(fixedSense(SENSE.lunNotSupported), cdb[4]);
      case 0xa0: return this.reportLuns(cdb);
      default: return this.check(SENSE.lunNotSupported);
    }
  }

  private executeLun0(cdb: Uint8Array): ScsiOutcome {
    const op = cdb[0];
    // UNIT ATTENTION goes to the first command that is not exempt, instead of running it
    const exempt = op === 0x12 || op === 0xa0 || op === 0x46 || op === 0x4a || op === 0x03;
    if (this.unitAttention && !exempt) return this.check(this.takeAttention());
    const needsMedium = !(op === 0x12 || op === 0x1a || op === 0x5a || op === 0x1b || op === 0x1e || op === 0x46
      || op === 0x4a || op === 0xbd || op === 0x03 || op === 0xa0);
    if (needsMedium && !this.available) return this.check(SENSE.noMedium);
    switch (op) {
      case 0x00: return this.good(); // TEST UNIT READY
      case 0x03: return this.requestSense(cdb);
      case 0x12: return this.inquiry(cdb);
      case 0x1a: return this.modeSense(cdb, false);
      case 0x5a: return this.modeSense(cdb, true);
      case 0x1b: return this.startStop(cdb);
      case 0x1e: this.trayLocked = (cdb[4] & 1) === 1; return this.good(); // PREVENT ALLOW MEDIUM REMOVAL
      case 0x25: return this.readCapacity(cdb);
      case 0x28: return this.read(get32(cdb, 2), get16(cdb, 7), cdb);
      case 0xa8: return this.read(get32(cdb, 2), get32(cdb, 6), cdb);
      case 0x43: return this.readToc(cdb);
      case 0x46: return this.getConfiguration(cdb);
      case 0x4a: return this.eventStatus(cdb);
      case 0x51: return this.discInformation(cdb);
      case 0xa0: return this.reportLuns(cdb);
      case 0xbd: { // MECHANISM STATUS: one slot, idle
        const d = new Uint8Array(8);
        d[5] = 1;
        return this.good(d, get16(cdb, 8));
      }
      case 0xbb: return this.good(); // SET CD SPEED: the emulated drive has one speed
      case 0x0a: case 0x2a: case 0xaa: case 0x2e: case 0x8a: case 0x8e: case 0x41: case 0x93:
        return this.check(SENSE.writeProtected); // WRITE(6/10/12/16), WRITE AND VERIFY, WRITE SAME
      default:
        return this.check(SENSE.invalidOpcode);
    }
  }

  /** REQUEST SENSE (SPC-3 §6.27): the last command's sense, else NO SENSE; fixed format. */
  private requestSense(cdb: Uint8Array): ScsiOutcome {
    const s = this.unitAttention ? this.takeAttention() : this.lastSense ?? sense(SENSE_NO_SENSE, 0, 0);
    return this.good(fixedSense(s), cdb[4]);
  }

  /** INQUIRY (SPC-3 §6.4): standard data, or the VPD pages 00, 80 and 83. */
  private inquiry(cdb: Uint8Array): ScsiOutcome {
    const alloc = get16(cdb, 3);
    if (cdb[1] & 1) {
      const page = cdb[2];
      let body: Uint8Array;
      if (page === 0x00) body = Uint8Array.of(0x00, 0x80, 0x83);
      else if (page === 0x80) body = ascii(this.id.serial, Math.min(this.id.serial.length, 36));
      else if (page === 0x83) {
        const idb = ascii(this.id.serial, Math.min(this.id.serial.length, 247));
        body = new Uint8Array(4 + idb.length);
        body.set([0x02, 0x00, 0x00, idb.length]); // ASCII, LU association, vendor specific
        body.set(idb, 4);
      } else return this.check(SENSE.invalidField);
      const d = new Uint8Array(4 + body.length);
      d.set([0x05, page, 0, body.length]);
      d.set(body, 4);
      return this.good(d, alloc);
    }
    if (cdb[2] !== 0) return this.check(SENSE.invalidField);
    const d = new Uint8Array(36);
    d[0] = 0x05; // CD/DVD device
    d[1] = 0x80; // removable
    d[2] = 0x05; // SPC-3
    d[3] = 0x12; // HiSup, response data format 2
    d[4] = 31;
    d[7] = 0x12; // Sync, CmdQue
    d.set(ascii(this.id.vendor, 8), 8);
    d.set(ascii(this.id.product, 16), 16);
    d.set(ascii(this.id.revision, 4), 32);
    return this.good(d, alloc);
  }

  /** The CD/DVD capabilities and mechanical status page (MMC-6 §7.14), 22 bytes. */
  private capabilitiesPage(): Uint8Array {
    const p = new Uint8Array(22);
    p[0] = 0x2a;
    p[1] = 20;
    p[2] = 0x3b; // reads CD-R, CD-RW, method 2, DVD-ROM
    p[4] = 0x7f; // audio play, composite, digital ports, mode 2 form 1 and 2, multisession
    p[5] = 0xff; // CD-DA commands, accurate stream, R-W, C2, ISRC, UPC, barcode
    p[6] = 0x2d | (this.trayLocked ? 0x02 : 0); // tray loading, eject, prevent jumper, lock state, lock
    be16(p, 8, 8800); // max read speed, kB/s (50x)
    be16(p, 10, 2);
    be16(p, 12, 2048);
    be16(p, 14, 2816); // current read speed (16x)
    be16(p, 18, 2816);
    be16(p, 20, 2816);
    return p;
  }

  /** MODE SENSE(6/10) (SPC-3 §6.9, 6.10): page 2A (or all: 3F), no block descriptor. */
  private modeSense(cdb: Uint8Array, ten: boolean): ScsiOutcome {
    const pc = cdb[2] >> 6;
    const page = cdb[2] & 0x3f;
    if (pc === 3) return this.check(SENSE.savingNotSupported);
    if (page !== 0x2a && page !== 0x3f) return this.check(SENSE.invalidField);
    const body = this.capabilitiesPage();
    if (pc === 1) body.fill(0, 2); // changeable: nothing
    const hdr = ten ? 8 : 4;
    const d = new Uint8Array(hdr + body.length);
    if (ten) be16(d, 0, d.length - 2); else d[0] = d.length - 1;
    d.set(body, hdr);
    return this.good(d, ten ? get16(cdb, 7) : cdb[4]);
  }

  /** START STOP UNIT (SBC-3 §5.25, MMC-6 §6.39): LoEj with Start 0 ejects, with Start 1 loads. */
  private startStop(cdb: Uint8Array): ScsiOutcome {
    const start = (cdb[4] & 1) === 1;
    const loej = (cdb[4] & 2) === 2;
    if ((cdb[4] & 0xf0) !== 0 || !loej) return this.good();
    if (start) {
      this.trayOpen = false;
      return this.good();
    }
    if (this.trayLocked) return this.check(this.mediumImage ? SENSE.removalPrevented : SENSE.notReadyRemovalPrevented);
    this.trayOpen = true;
    const m = this.mediumImage;
    this.mediumImage = null;
    if (m) this.onEject?.(m);
    return this.good();
  }

  /** READ CAPACITY(10) (SBC-3 §5.12): the last LBA and the block size. */
  private readCapacity(cdb: Uint8Array): ScsiOutcome {
    if ((cdb[8] & 1) === 0 && get32(cdb, 2) !== 0) return this.check(SENSE.invalidField);
    const n = this.blocks;
    if (n === 0) return this.check(sense(SENSE_NOT_READY, 0x04, 0x03));
    const d = new Uint8Array(8);
    be32(d, 0, Math.min(n - 1, 0xffffffff));
    be32(d, 4, CD_BLOCK_BYTES);
    return this.good(d);
  }

  /** READ(10)/READ(12) (MMC-6 §6.22, 6.23): `count` blocks from `lba`. */
  private read(lba: number, count: number, cdb: Uint8Array): ScsiOutcome {
    if (cdb[1] & 0xe0) return this.check(SENSE.invalidField); // RDPROTECT
    if (lba + count > this.blocks) return this.check(SENSE.lbaOutOfRange);
    if (count === 0) return this.good();
    return { status: SCSI_STATUS_GOOD, read: { medium: this.mediumImage!, offset: lba * CD_BLOCK_BYTES, length: count * CD_BLOCK_BYTES } };
  }

  /** Track 1's and the lead-out's address, LBA or MSF (MMC-6 §6.26.3.2). */
  private address(d: Uint8Array, at: number, lba: number, msf: boolean): void {
    if (!msf) { be32(d, at, lba); return; }
    const x = lba + 150;
    d[at + 1] = Math.min(255, Math.floor(x / 75 / 60));
    d[at + 2] = Math.floor(x / 75) % 60;
    d[at + 3] = x % 75;
  }

  /** READ TOC/PMA/ATIP (MMC-6 §6.26): formats 0 (TOC) and 1 (session information). */
  private readToc(cdb: Uint8Array): ScsiOutcome {
    const msf = (cdb[1] & 2) !== 0;
    const format = cdb[2] & 0x0f;
    const track = cdb[6];
    const alloc = get16(cdb, 7);
    if (format === 1) {
      const d = new Uint8Array(12);
      be16(d, 0, 10);
      d[2] = 1;
      d[3] = 1;
      return this.good(d, alloc);
    }
    if (format !== 0 || (track > 1 && track !== 0xaa)) return this.check(SENSE.invalidField);
    const descriptors: Array<[number, number, number]> = track === 0xaa ? [] : [[0x14, 1, 0]];
    descriptors.push([0x16, 0xaa, this.blocks]); // the lead-out
    const d = new Uint8Array(4 + 8 * descriptors.length);
    be16(d, 0, d.length - 2);
    d[2] = 1;
    d[3] = 1;
    descriptors.forEach(([ctl, no, lba], i) => {
      d[4 + 8 * i + 1] = ctl; // ADR 1, CONTROL 4: data track
      d[4 + 8 * i + 2] = no;
      this.address(d, 4 + 8 * i + 4, lba, msf);
    });
    return this.good(d, alloc);
  }

  /** GET CONFIGURATION (MMC-6 §6.6): the profile list, core and removable medium features. */
  private getConfiguration(cdb: Uint8Array): ScsiOutcome {
    const current = !this.available ? 0x0000 : (this.mediumImage!.size > CD_MAX_BYTES ? 0x0010 : 0x0008);
    const d = new Uint8Array(40);
    be32(d, 0, 36);
    be16(d, 6, current);
    // feature 0000h: profile list, DVD-ROM and CD-ROM
    d.set([0x00, 0x00, 0x03, 8, 0x00, 0x10, current === 0x0010 ? 1 : 0, 0, 0x00, 0x08, current === 0x0008 ? 1 : 0, 0], 8);
    // feature 0001h: core, SCSI physical interface, DBE
    d.set([0x00, 0x01, 0x0b, 8, 0, 0, 0, 1, 0x01, 0, 0, 0], 20);
    // feature 0003h: removable medium, tray, eject, lock
    d.set([0x00, 0x03, 0x0b, 4, 0x39, 0, 0, 0], 32);
    return this.good(d, get16(cdb, 7));
  }

  /** GET EVENT STATUS NOTIFICATION (MMC-6 §6.7), polled, media class only. */
  private eventStatus(cdb: Uint8Array): ScsiOutcome {
    if ((cdb[1] & 1) === 0) return this.check(SENSE.invalidField);
    const alloc = get16(cdb, 7);
    if ((cdb[4] & 0x10) === 0) return this.good(Uint8Array.of(0, 0, 0x80, 0x10), alloc);
    let code = 0;
    if (!this.trayOpen) {
      if (this.mediaEvent) { code = 2; this.mediaEvent = false; } // NewMedia
      else if (this.ejectRequest) { code = 1; this.ejectRequest = false; } // EjectRequest
    }
    const status = this.trayOpen ? 0x01 : this.mediumImage ? 0x02 : 0x00;
    return this.good(Uint8Array.of(0, 4, 0x04, 0x10, code, status, 0, 0), alloc);
  }

  /** READ DISC INFORMATION (MMC-6 §6.22): one complete session, one track. */
  private discInformation(cdb: Uint8Array): ScsiOutcome {
    if ((cdb[1] & 7) !== 0) return this.check(SENSE.invalidField);
    const d = new Uint8Array(34);
    be16(d, 0, 32);
    d[2] = 0x0e; // last session complete, disc complete
    d[3] = 1;
    d[4] = 1;
    d[5] = 1;
    d[6] = 1;
    d[7] = 0x20; // unrestricted use
    return this.good(d, get16(cdb, 7));
  }

  /** REPORT LUNS (SPC-3 §6.21): LUN 0 alone. */
  private reportLuns(cdb: Uint8Array): ScsiOutcome {
    const alloc = get32(cdb, 6);
    if (alloc < 16 || cdb[2] > 2) return this.check(SENSE.invalidField);
    const d = new Uint8Array(16);
    be32(d, 0, 8);
    return this.good(d, alloc);
  }
}
