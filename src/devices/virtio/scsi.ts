/**
 * virtio-scsi (virtio-v1.2-cs01 §5.6 "SCSI Host Device") with one target (0) and one
 * logical unit (LUN 0): the CD-ROM drive of src/devices/scsi/cdrom.ts. Linux drives it with
 * its own `virtio_scsi`, `sr_mod` and `cdrom` modules (`/dev/sr0`).
 *
 * Virtqueues (§5.6.2): 0 controlq, 1 eventq, 2 one request queue. No device feature is
 * offered: not INOUT (bidirectional commands), not T10_PI (Linux would change the request
 * header), not HOTPLUG or CHANGE (media change needs no event: Linux learns of it from
 * UNIT ATTENTION and GET EVENT STATUS NOTIFICATION, and the spec forbids PARAM_CHANGE for
 * MMC devices, §5.6.6.3), so the event queue is never used.
 *
 * Configuration space (§5.6.4), little-endian: num_queues 1, seg_max, max_sectors,
 * cmd_per_lun, event_info_size 16, sense_size (96, driver-writable), cdb_size (32,
 * driver-writable), max_channel 0, max_target 0, max_lun 0.
 *
 * A request (§5.6.6.1) is, by byte offset over the chain: the request header (19 +
 * cdb_size bytes: lun[8], tag, task attribute, priority, CRN, CDB), data-out, then on the
 * writable side the response header (12 + sense_size bytes: sense_len, residual, status
 * qualifier, status, response, sense) and data-in. Commands complete synchronously, in
 * the QueueNotify that brought them, so task management (§5.6.6.2) finds nothing in
 * flight: ABORT answers FUNCTION COMPLETE, a LUN or nexus reset resets the unit.
 *
 * Hostile input: every length and address comes from the chain and is checked
 * (Virtqueue.checkBuffers); a chain too short for the response header cannot be answered
 * and sets DEVICE_NEEDS_RESET; a read is only of the medium's blocks.
 */
import type { MmioWidth } from '../bus.js';
import { readConfigBytes, serveChains, type VirtioDevice, type VirtioDeviceContext } from './device.js';
import type { DescriptorChain, Virtqueue } from './queue.js';
import { CdromUnit, SCSI_STATUS_CHECK_CONDITION, SENSE, fixedSense, type ScsiOutcome } from '../scsi/cdrom.js';

/** Device ID of a SCSI host (§5). */
export const VIRTIO_ID_SCSI = 8;

/** Response codes (§5.6.6.1, §5.6.6.2). */
export const VIRTIO_SCSI_S_OK = 0;
export const VIRTIO_SCSI_S_OVERRUN = 1;
export const VIRTIO_SCSI_S_BAD_TARGET = 3;
export const VIRTIO_SCSI_S_FAILURE = 9;
export const VIRTIO_SCSI_S_FUNCTION_REJECTED = 11;
export const VIRTIO_SCSI_S_INCORRECT_LUN = 12;

/** Control queue request types and task management functions (§5.6.6.2). */
export const VIRTIO_SCSI_T_TMF = 0;
export const VIRTIO_SCSI_T_AN_QUERY = 1;
export const VIRTIO_SCSI_T_AN_SUBSCRIBE = 2;
export const VIRTIO_SCSI_T_TMF_ABORT_TASK = 0;
export const VIRTIO_SCSI_T_TMF_ABORT_TASK_SET = 1;
export const VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET = 3;
export const VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET = 4;
export const VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET = 5;
export const VIRTIO_SCSI_T_TMF_QUERY_TASK = 6;
export const VIRTIO_SCSI_T_TMF_QUERY_TASK_SET = 7;

/** Default sense_size and cdb_size (§5.6.4). */
export const VIRTIO_SCSI_SENSE_SIZE = 96;
export const VIRTIO_SCSI_CDB_SIZE = 32;
const QUEUE_SIZE = 256;
const CONFIG_BYTES = 36;
/** Largest transfer of one command, in 512-byte sectors (max_sectors). */
const MAX_SECTORS = 0xffff;

/** Counters of the device (mutated in place). */
export interface VirtioScsiMetrics {
  requests: number;
  readBytes: number;
  /** Requests answered with a transport failure (bad layout, overrun, no such target). */
  failed: number;
}

/** The virtio-scsi host with its CD-ROM unit; see the file comment. */
export class VirtioScsi implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_SCSI;
  readonly features = 0n;
  readonly numQueues = 3;
  readonly metrics: VirtioScsiMetrics = { requests: 0, readBytes: 0, failed: 0 };
  private ctx: VirtioDeviceContext | null = null;
  private senseSize = VIRTIO_SCSI_SENSE_SIZE;
  private cdbSize = VIRTIO_SCSI_CDB_SIZE;

  /** @param unit the CD-ROM drive at target 0, LUN 0. */
  constructor(readonly unit: CdromUnit) {}

  queueMaxSize(index: number): number {
    return index >= 0 && index < this.numQueues ? QUEUE_SIZE : 0;
  }

  private config(): Uint8Array {
    const c = new Uint8Array(CONFIG_BYTES);
    const v = new DataView(c.buffer);
    v.setUint32(0, 1, true); // num_queues
    v.setUint32(4, QUEUE_SIZE - 2, true); // seg_max
    v.setUint32(8, MAX_SECTORS, true);
    v.setUint32(12, 128, true); // cmd_per_lun
    v.setUint32(16, 16, true); // event_info_size
    v.setUint32(20, this.senseSize, true);
    v.setUint32(24, this.cdbSize, true);
    // max_channel, max_target, max_lun: 0 (one target, one LUN)
    return c;
  }

  readConfig(offset: number, width: MmioWidth): number {
    return readConfigBytes(this.config(), offset, width);
  }

  /** sense_size and cdb_size are the driver's to set (§5.6.4), 32-bit writes only. */
  writeConfig(offset: number, width: MmioWidth, value: number): void {
    if (width !== 4) return;
    if (offset === 20 && value >= 18 && value <= 252) this.senseSize = value;
    if (offset === 24 && value >= 6 && value <= 255) this.cdbSize = value;
  }

  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  /** Device reset (§2.4): sizes back to their defaults, and a unit reset (UNIT ATTENTION 06/29/00). */
  reset(): void {
    this.ctx = null;
    this.senseSize = VIRTIO_SCSI_SENSE_SIZE;
    this.cdbSize = VIRTIO_SCSI_CDB_SIZE;
    this.unit.reset();
  }

  queueNotify(index: number): void {
    const ctx = this.ctx;
    if (!ctx || (index !== 0 && index !== 2)) return; // the event queue holds buffers the device never uses
    serveChains(ctx, index, 'virtio-scsi', (vq, chain) => (index === 0 ? this.control(vq, chain) : this.request(vq, chain)));
  }

  /** Decode an 8-byte LUN (§5.6.6.1): the LUN number on target 0, or -1 for no such target. */
  private static lun(b: Uint8Array): number {
    if (b[0] !== 1 || b[1] !== 0 || (b[2] !== 0 && (b[2] & 0xc0) !== 0x40)) return -1;
    return ((b[2] << 8) | b[3]) & 0x3fff;
  }

  /** A control request (§5.6.6.2): bytes written to its writable side, or -1. */
  private control(vq: Virtqueue, chain: DescriptorChain): number {
    const head = vq.readBuffers(chain.readable, 0, Math.min(chain.readableLength, 24));
    if (!head || head.length < 4) return this.answer(vq, chain, Uint8Array.of(VIRTIO_SCSI_S_FAILURE));
    const type = new DataView(head.buffer).getUint32(0, true);
    if (type === VIRTIO_SCSI_T_TMF) {
      if (head.length < 24) return this.answer(vq, chain, Uint8Array.of(VIRTIO_SCSI_S_FAILURE));
      const subtype = new DataView(head.buffer).getUint32(4, true);
      const lun = VirtioScsi.lun(head.subarray(8, 16));
      let response = VIRTIO_SCSI_S_OK;
      if (lun < 0) response = VIRTIO_SCSI_S_BAD_TARGET;
      else if (lun !== 0) response = VIRTIO_SCSI_S_INCORRECT_LUN;
      else if (subtype === VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET || subtype === VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET) this.unit.reset();
      else if (![VIRTIO_SCSI_T_TMF_ABORT_TASK, VIRTIO_SCSI_T_TMF_ABORT_TASK_SET, VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET, VIRTIO_SCSI_T_TMF_QUERY_TASK, VIRTIO_SCSI_T_TMF_QUERY_TASK_SET].includes(subtype)) {
        response = VIRTIO_SCSI_S_FUNCTION_REJECTED;
      }
      // nothing is ever in flight: aborts and queries find no task
      return this.answer(vq, chain, Uint8Array.of(response));
    }
    if (type === VIRTIO_SCSI_T_AN_QUERY || type === VIRTIO_SCSI_T_AN_SUBSCRIBE) {
      return this.answer(vq, chain, new Uint8Array(5)); // event_actual 0, response OK: no asynchronous notification
    }
    return this.answer(vq, chain, Uint8Array.of(VIRTIO_SCSI_S_FAILURE));
  }

  /** Write `data` at the start of the writable side: its length, or -1 when it does not fit. */
  private answer(vq: Virtqueue, chain: DescriptorChain, data: Uint8Array): number {
    return vq.writeBuffers(chain.writable, data) ? data.length : -1;
  }

  /** A command request (§5.6.6.1): bytes written to its writable side, or -1. */
  private request(vq: Virtqueue, chain: DescriptorChain): number {
    this.metrics.requests++;
    const respBytes = 12 + this.senseSize;
    if (chain.writableLength < respBytes) return -1;
    const resp = new Uint8Array(respBytes);
    const view = new DataView(resp.buffer);
    const reqBytes = 19 + this.cdbSize;
    const hdr = chain.readableLength >= reqBytes ? vq.readBuffers(chain.readable, 0, reqBytes) : null;
    const dataOut = chain.readableLength - reqBytes;
    const dataIn = chain.writableLength - respBytes;
    const fail = (response: number) => {
      this.metrics.failed++;
      resp[11] = response;
      return vq.writeBuffers(chain.writable, resp) ? respBytes : -1;
    };
    if (!hdr) return fail(VIRTIO_SCSI_S_FAILURE);
    if (dataOut > 0 && dataIn > 0) return fail(VIRTIO_SCSI_S_FAILURE); // bidirectional: INOUT not offered
    const lun = VirtioScsi.lun(hdr.subarray(0, 8));
    if (lun < 0) return fail(VIRTIO_SCSI_S_BAD_TARGET);
    const cdb = hdr.subarray(19, 19 + this.cdbSize);
    let out: ScsiOutcome = this.unit.execute(lun, cdb);
    let written = 0;
    if (out.status !== SCSI_STATUS_CHECK_CONDITION && out.read) {
      const { medium, offset, length } = out.read;
      if (length > dataIn) return fail(VIRTIO_SCSI_S_OVERRUN);
      const segs = vq.checkBuffers(chain.writable, respBytes, length);
      if (!segs) return fail(VIRTIO_SCSI_S_FAILURE);
      try {
        vq.readFromBackend(segs, medium, offset);
        written = length;
        this.metrics.readBytes += length;
      } catch {
        out = { status: SCSI_STATUS_CHECK_CONDITION, sense: SENSE.readError };
        written = 0;
      }
    } else if (out.status !== SCSI_STATUS_CHECK_CONDITION && out.data) {
      const n = Math.min(out.data.length, dataIn);
      const segs = vq.checkBuffers(chain.writable, respBytes, n);
      if (!segs) return fail(VIRTIO_SCSI_S_FAILURE);
      vq.copyToSegments(segs, out.data.subarray(0, n));
      written = n;
    }
    if (out.status === SCSI_STATUS_CHECK_CONDITION) {
      const s = fixedSense(out.sense);
      const n = Math.min(s.length, this.senseSize);
      resp.set(s.subarray(0, n), 12);
      view.setUint32(0, n, true);
    }
    view.setUint32(4, Math.max(0, dataIn - written), true); // residual
    resp[10] = out.status;
    resp[11] = VIRTIO_SCSI_S_OK;
    if (!vq.writeBuffers(chain.writable, resp)) return -1;
    return respBytes + written;
  }

  /** Saved state: none beyond the unit's medium, which the VM process re-inserts. */
  save(): unknown { return {}; }

  restore(): void { /* nothing */ }
}
