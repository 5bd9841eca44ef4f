/**
 * virtio-input (virtio-v1.2-cs01 §5.8 "Input Device"), as QEMU's virtio-keyboard and
 * virtio-tablet: Linux's `virtio_input` makes each an evdev device (`/dev/input/eventN`).
 *
 *  - Configuration (§5.8.4): the driver writes `select` and `subsel`, then reads `size` and
 *    the union at offset 8: the name, serial, device ids (BUS_VIRTUAL), property bits, the
 *    event codes of each event type (EV_BITS, subsel = type), an axis's range (ABS_INFO,
 *    subsel = axis). Anything not described reads size 0.
 *  - eventq (queue 0): the host's events go, 8 bytes each (`le16 type, le16 code, le32
 *    value`, Linux's input ABI), into the buffers the driver made available; a batch ends
 *    with EV_SYN/SYN_REPORT. Events wait in a bounded queue while the driver has no buffer;
 *    past {@link MAX_PENDING_EVENTS} the oldest batches are dropped (and counted).
 *  - statusq (queue 1): the driver's events to the device (keyboard LEDs): kept in
 *    {@link VirtioInput.leds}, otherwise ignored.
 *
 * Every buffer is checked by the queue; an event buffer shorter than 8 bytes is returned
 * unused (length 0).
 */
import type { MmioWidth } from '../bus.js';
import type { VirtioDevice, VirtioDeviceContext } from './device.js';

/** Device ID of an input device (§5). */
export const VIRTIO_ID_INPUT = 18;

/** Configuration selectors (§5.8.4). */
export const VIRTIO_INPUT_CFG = { UNSET: 0x00, ID_NAME: 0x01, ID_SERIAL: 0x02, ID_DEVIDS: 0x03, PROP_BITS: 0x10, EV_BITS: 0x11, ABS_INFO: 0x12 } as const;

/** Linux input event types and codes used here (include/uapi/linux/input-event-codes.h). */
export const EV_SYN = 0x00;
export const EV_KEY = 0x01;
export const EV_REL = 0x02;
export const EV_ABS = 0x03;
export const EV_LED = 0x11;
export const EV_REP = 0x14;
export const SYN_REPORT = 0;
export const ABS_X = 0x00;
export const ABS_Y = 0x01;
export const REL_WHEEL = 0x08;
export const BTN_LEFT = 0x110;
export const BTN_RIGHT = 0x111;
export const BTN_MIDDLE = 0x112;
export const LED_NUML = 0;
export const LED_CAPSL = 1;
export const LED_SCROLLL = 2;
/** Largest absolute coordinate of the tablet (as QEMU's INPUT_EVENT_ABS_MAX). */
export const TABLET_ABS_MAX = 0x7fff;
/** Events kept while the driver has no buffers. */
export const MAX_PENDING_EVENTS = 4096;

const BUS_VIRTUAL = 0x06;
const QUEUE_SIZE = 64;

/** What an input device says of itself. */
export interface InputDescription {
  name: string;
  serial: string;
  /** devids product number. */
  product: number;
  /** Event type -> the codes the device sends of it. */
  events: ReadonlyMap<number, readonly number[]>;
  /** Axis -> [min, max] for EV_ABS codes. */
  abs?: ReadonlyMap<number, readonly [number, number]>;
  /** INPUT_PROP_* bits. */
  props?: readonly number[];
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/** A keyboard: every key code from KEY_ESC (1) to KEY_MICMUTE (248), LEDs and autorepeat. */
export const KEYBOARD: InputDescription = {
  name: 'tsvisor keyboard', serial: 'tsvisor-keyboard', product: 1,
  events: new Map<number, readonly number[]>([[EV_KEY, range(1, 248)], [EV_LED, [LED_NUML, LED_CAPSL, LED_SCROLLL]], [EV_REP, [0, 1]]]),
};

/** A tablet: absolute X and Y (0..TABLET_ABS_MAX), three buttons and a wheel. */
export const TABLET: InputDescription = {
  name: 'tsvisor tablet', serial: 'tsvisor-tablet', product: 3,
  events: new Map<number, readonly number[]>([[EV_KEY, [BTN_LEFT, BTN_RIGHT, BTN_MIDDLE]], [EV_REL, [REL_WHEEL]], [EV_ABS, [ABS_X, ABS_Y]]]),
  abs: new Map<number, readonly [number, number]>([[ABS_X, [0, TABLET_ABS_MAX]], [ABS_Y, [0, TABLET_ABS_MAX]]]),
};

/** Counters of the device (mutated in place). */
export interface VirtioInputMetrics {
  events: number;
  /** Events dropped because the driver took none for too long. */
  dropped: number;
}

/** A virtio-input device; see the file comment. */
export class VirtioInput implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_INPUT;
  readonly features = 0n;
  readonly numQueues = 2;
  readonly metrics: VirtioInputMetrics = { events: 0, dropped: 0 };
  /** The LEDs the guest set (EV_LED code -> on). */
  readonly leds = new Map<number, boolean>();
  private ctx: VirtioDeviceContext | null = null;
  private select = 0;
  private subsel = 0;
  private readonly pending: Uint8Array[] = [];

  constructor(readonly description: InputDescription) {}

  queueMaxSize(index: number): number {
    return index === 0 || index === 1 ? QUEUE_SIZE : 0;
  }

  /** The union of the configuration for the current select/subsel: its bytes (size = length). */
  private payload(): Uint8Array {
    const d = this.description;
    switch (this.select) {
      case VIRTIO_INPUT_CFG.ID_NAME: return this.subsel === 0 ? Buffer.from(d.name, 'latin1').subarray(0, 128) : new Uint8Array(0);
      case VIRTIO_INPUT_CFG.ID_SERIAL: return this.subsel === 0 ? Buffer.from(d.serial, 'latin1').subarray(0, 128) : new Uint8Array(0);
      case VIRTIO_INPUT_CFG.ID_DEVIDS: {
        if (this.subsel !== 0) return new Uint8Array(0);
        const b = new Uint8Array(8);
        const v = new DataView(b.buffer);
        v.setUint16(0, BUS_VIRTUAL, true);
        v.setUint16(2, 0x0627, true); // vendor (QEMU's)
        v.setUint16(4, d.product, true);
        v.setUint16(6, 1, true);
        return b;
      }
      case VIRTIO_INPUT_CFG.PROP_BITS: return this.subsel === 0 ? bitmap(d.props ?? []) : new Uint8Array(0);
      case VIRTIO_INPUT_CFG.EV_BITS: {
        const codes = d.events.get(this.subsel);
        return codes ? bitmap(codes) : new Uint8Array(0);
      }
      case VIRTIO_INPUT_CFG.ABS_INFO: {
        const r = d.abs?.get(this.subsel);
        if (!r) return new Uint8Array(0);
        const b = new Uint8Array(20);
        const v = new DataView(b.buffer);
        v.setUint32(0, r[0], true);
        v.setUint32(4, r[1], true);
        return b; // fuzz, flat, res: 0
      }
      default: return new Uint8Array(0);
    }
  }

  readConfig(offset: number, width: MmioWidth): number {
    const p = this.payload();
    let v = 0;
    for (let i = width - 1; i >= 0; i--) {
      const o = offset + i;
      const byte = o === 0 ? this.select : o === 1 ? this.subsel : o === 2 ? p.length : o >= 8 && o - 8 < p.length ? p[o - 8] : 0;
      v = v * 256 + byte;
    }
    return v;
  }

  /** `select` (offset 0) and `subsel` (offset 1) are the driver's to write; the rest is read-only. */
  writeConfig(offset: number, width: MmioWidth, value: number): void {
    for (let i = 0; i < width; i++) {
      const byte = (value >>> (8 * i)) & 0xff;
      if (offset + i === 0) this.select = byte;
      else if (offset + i === 1) this.subsel = byte;
    }
  }

  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
    this.flush();
  }

  /** Device reset (§2.4): pending events and the selection go. */
  reset(): void {
    this.ctx = null;
    this.pending.length = 0;
    this.select = 0;
    this.subsel = 0;
    this.leds.clear();
  }

  /**
   * Send events `[type, code, value]...` as one batch (an EV_SYN/SYN_REPORT is added). They
   * reach the guest now if it has buffers, else when it makes some available.
   */
  send(events: ReadonlyArray<readonly [number, number, number]>): void {
    for (const [type, code, value] of [...events, [EV_SYN, SYN_REPORT, 0] as const]) {
      const e = new Uint8Array(8);
      const v = new DataView(e.buffer);
      v.setUint16(0, type, true);
      v.setUint16(2, code, true);
      v.setInt32(4, value, true);
      this.pending.push(e);
    }
    while (this.pending.length > MAX_PENDING_EVENTS) {
      this.pending.shift();
      this.metrics.dropped++;
    }
    this.flush();
  }

  /** A key (Linux KEY_* or BTN_* code) pressed or released. */
  key(code: number, down: boolean): void {
    this.send([[EV_KEY, code, down ? 1 : 0]]);
  }

  /** Deliver pending events into the driver's buffers. */
  private flush(): void {
    const ctx = this.ctx;
    const vq = ctx?.queue(0);
    if (!ctx || !vq || this.pending.length === 0) return;
    let pushed = false;
    while (this.pending.length > 0) {
      const chain = vq.pop();
      if (!chain) break;
      if (chain.writableLength < 8 || !vq.writeBuffers(chain.writable, this.pending[0])) {
        vq.pushUsed(chain.head, 0);
      } else {
        this.pending.shift();
        this.metrics.events++;
        vq.pushUsed(chain.head, 8);
      }
      pushed = true;
    }
    if (pushed) ctx.usedBuffers(0);
  }

  queueNotify(index: number): void {
    const ctx = this.ctx;
    if (!ctx) return;
    if (index === 0) { this.flush(); return; }
    if (index !== 1) return;
    const vq = ctx.queue(1);
    if (!vq) return;
    let pushed = false;
    for (let chain = vq.pop(); chain; chain = vq.pop()) {
      const b = chain.readableLength >= 8 ? vq.readBuffers(chain.readable, 0, 8) : null;
      if (b) {
        const v = new DataView(b.buffer);
        if (v.getUint16(0, true) === EV_LED) this.leds.set(v.getUint16(2, true), v.getInt32(4, true) !== 0);
      }
      vq.pushUsed(chain.head, 0);
      pushed = true;
    }
    if (pushed) ctx.usedBuffers(1);
  }

  /** Saved state: none. */
  save(): unknown { return {}; }

  restore(): void { /* nothing */ }
}

/** A bitmap with bit `c` set for each code, as long as the highest set byte (at most 128 bytes). */
function bitmap(codes: readonly number[]): Uint8Array {
  const max = Math.max(-1, ...codes.filter((c) => c < 1024));
  const b = new Uint8Array(max < 0 ? 0 : (max >> 3) + 1);
  for (const c of codes) if (c < 1024) b[c >> 3] |= 1 << (c & 7);
  return b;
}

/** Scale a viewer's pixel coordinate `p` on a `size`-pixel axis to the tablet's 0..TABLET_ABS_MAX. */
export function tabletCoordinate(p: number, size: number): number {
  if (size <= 1) return 0;
  return Math.round((Math.min(Math.max(p, 0), size - 1) * TABLET_ABS_MAX) / (size - 1));
}
