/**
 * virtio-mmio transport, version 2 (modern), virtio-v1.2-cs01 §4.2
 * ("Virtio Over MMIO"), register layout of §4.2.2:
 *
 * | offset | register                         | offset | register                   |
 * |--------|----------------------------------|--------|----------------------------|
 * | 0x000  | MagicValue (R) 0x74726976 "virt" | 0x060  | InterruptStatus (R)        |
 * | 0x004  | Version (R) 2                    | 0x064  | InterruptACK (W)           |
 * | 0x008  | DeviceID (R)                     | 0x070  | Status (RW)                |
 * | 0x00c  | VendorID (R) 0x554d4551 "QEMU"   | 0x080/0x084 | QueueDescLow/High (W) |
 * | 0x010  | DeviceFeatures (R)               | 0x090/0x094 | QueueDriverLow/High (W) |
 * | 0x014  | DeviceFeaturesSel (W)            | 0x0a0/0x0a4 | QueueDeviceLow/High (W) |
 * | 0x020  | DriverFeatures (W)               | 0x0ac  | SHMSel (W)                |
 * | 0x024  | DriverFeaturesSel (W)            | 0x0b0..0x0bc | SHMLen/SHMBase (R): no regions, length -1 |
 * | 0x030  | QueueSel (W)                     | 0x0c0  | QueueReset (RW): not offered, 0 |
 * | 0x034  | QueueNumMax (R)                  | 0x0fc  | ConfigGeneration (R)      |
 * | 0x038  | QueueNum (W)                     | 0x100+ | device configuration space |
 * | 0x044  | QueueReady (RW)                  |        |                            |
 * | 0x050  | QueueNotify (W)                  |        |                            |
 *
 * Registers below 0x100 must be accessed 4 bytes wide and aligned (§4.2.2.2);
 * other accesses read 0 and are ignored. Write-only registers read back what was
 * last written (harmless, helps debugging). The configuration space takes any width.
 *
 * Guest errors never throw: a bad queue layout, a malformed chain or an exception
 * from the device puts the device in DEVICE_NEEDS_RESET (§2.1.1) and raises a
 * configuration change interrupt.
 */
import type { IrqLine, MmioDevice, MmioWidth, Persistable } from '../bus.js';
import type { GuestMemory } from '../guest-memory.js';
import {
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET,
  VIRTIO_STATUS_DRIVER_OK,
  VIRTIO_STATUS_FEATURES_OK,
  type VirtioDevice,
  type VirtioDeviceContext,
} from './device.js';
import { Virtqueue, type VirtqueueState } from './queue.js';

export * from './device.js';

export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
export const VIRTIO_MMIO_VERSION = 0x004;
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
export const VIRTIO_MMIO_STATUS = 0x070;
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
export const VIRTIO_MMIO_QUEUE_DRIVER_LOW = 0x090;
export const VIRTIO_MMIO_QUEUE_DRIVER_HIGH = 0x094;
export const VIRTIO_MMIO_QUEUE_DEVICE_LOW = 0x0a0;
export const VIRTIO_MMIO_QUEUE_DEVICE_HIGH = 0x0a4;
export const VIRTIO_MMIO_SHM_SEL = 0x0ac;
export const VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0;
export const VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4;
export const VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8;
export const VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc;
export const VIRTIO_MMIO_QUEUE_RESET = 0x0c0;
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
export const VIRTIO_MMIO_CONFIG = 0x100;

/** "virt" in little-endian. */
export const VIRTIO_MMIO_MAGIC = 0x74726976;
/** "QEMU", the vendor ID QEMU's virtio-mmio reports. */
export const VIRTIO_MMIO_VENDOR = 0x554d4551;

/** InterruptStatus bits (§4.2.2). */
export const VIRTIO_MMIO_INT_VRING = 1;
export const VIRTIO_MMIO_INT_CONFIG = 2;

const MASK64 = (1n << 64n) - 1n;

/** Options for {@link VirtioMmio}. */
export interface VirtioMmioOptions {
  /** MMIO window size in bytes, at least 0x100 (default 0x1000, one virt slot, matching the device tree's `reg`; QEMU decodes only 0x200). */
  windowSize?: number;
  /** Offer VIRTIO_F_EVENT_IDX (default true). */
  eventIdx?: boolean;
  /** Offer VIRTIO_F_INDIRECT_DESC (default true). */
  indirect?: boolean;
  /** Called when the device enters DEVICE_NEEDS_RESET, with the reason (for logs). */
  onNeedsReset?: (reason: string) => void;
  /**
   * Keep InterruptStatus in `words[index]` (a SharedArrayBuffer), so that a hart's
   * thread can read and acknowledge it without a round trip to the device thread (see
   * src/machine/hart-mmio.ts). Changes are atomic; after each one the transport calls
   * `irq.set()`, which must then read the word itself under the interrupt
   * controller's lock (`Plic.wordLine`). Default: a private word.
   */
  interruptStatus?: { words: Int32Array; index: number };
}

/** Per-queue transport registers (§4.2.2), addresses as 32-bit halves. */
interface QueueRegs {
  num: number;
  ready: boolean;
  descLo: number;
  descHi: number;
  driverLo: number;
  driverHi: number;
  deviceLo: number;
  deviceHi: number;
}

/** Saved state of a {@link VirtioMmio} transport and its device (plain JSON). */
export interface VirtioMmioState {
  status: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  /** Driver features as a hex string. */
  driverFeatures: string;
  queueSel: number;
  shmSel: number;
  interruptStatus: number;
  configGeneration: number;
  lastError: string | null;
  queues: (QueueRegs & { vq: VirtqueueState | null })[];
  device: unknown;
}

function newQueueRegs(): QueueRegs {
  return { num: 0, ready: false, descLo: 0, descHi: 0, driverLo: 0, driverHi: 0, deviceLo: 0, deviceHi: 0 };
}

function join(lo: number, hi: number): number {
  return hi * 0x100000000 + lo;
}

/**
 * virtio-mmio v2 transport hosting one {@link VirtioDevice}.
 *
 * Board duties: map it in a virtio-mmio slot (QEMU virt: 0x1000_1000 + 0x1000*n,
 * PLIC sources 1..8), with `size` bytes. Queue notifications are served
 * synchronously inside the QueueNotify write; the `virt` board runs the transport on
 * the VM's device thread, where the harts post their writes without waiting for them
 * (machine/hart-mmio.ts).
 */
export class VirtioMmio implements MmioDevice, Persistable<VirtioMmioState> {
  readonly size: number;
  /** Features offered to the driver: the device's plus the transport's. */
  readonly deviceFeatures: bigint;
  private status = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private shmSel = 0;
  /** InterruptStatus lives in isr[isrIndex] (see VirtioMmioOptions.interruptStatus). */
  private readonly isr: Int32Array;
  private readonly isrIndex: number;
  /** True when another thread may change InterruptStatus too. */
  private readonly sharedIsr: boolean;
  private configGeneration = 0;
  private irqLevel = false;
  private queues: QueueRegs[];
  private vqs: (Virtqueue | null)[];
  /** Incremented on every reset: contexts from an older epoch are inert. */
  private epoch = 0;
  private activated = false;
  private _lastError: string | null = null;
  private readonly onNeedsReset?: (reason: string) => void;

  /**
   * @param device the device model behind this transport.
   * @param mem guest RAM (virtqueues and buffers live there).
   * @param irq level-triggered interrupt line (high while InterruptStatus != 0).
   * @throws RangeError if `windowSize` is smaller than 0x100.
   */
  constructor(readonly device: VirtioDevice, readonly mem: GuestMemory, private readonly irq: IrqLine, options: VirtioMmioOptions = {}) {
    this.size = options.windowSize ?? 0x1000;
    if (!Number.isInteger(this.size) || this.size < 0x100) throw new RangeError(`virtio-mmio window 0x${this.size.toString(16)} too small`);
    let f = (device.features & MASK64) | VIRTIO_F_VERSION_1;
    if (options.eventIdx ?? true) f |= VIRTIO_F_EVENT_IDX;
    if (options.indirect ?? true) f |= VIRTIO_F_INDIRECT_DESC;
    this.deviceFeatures = f;
    this.onNeedsReset = options.onNeedsReset;
    this.sharedIsr = options.interruptStatus !== undefined;
    this.isr = options.interruptStatus?.words ?? new Int32Array(1);
    this.isrIndex = options.interruptStatus?.index ?? 0;
    if (!Number.isInteger(this.isrIndex) || this.isrIndex < 0 || this.isrIndex >= this.isr.length) {
      throw new RangeError(`virtio-mmio interrupt status index ${this.isrIndex} out of range`);
    }
    Atomics.store(this.isr, this.isrIndex, 0);
    this.queues = Array.from({ length: device.numQueues }, newQueueRegs);
    this.vqs = new Array(device.numQueues).fill(null);
  }

  /** Device status (§2.1), as the driver reads it. */
  get deviceStatus(): number {
    return this.status;
  }

  /** Why the device last entered DEVICE_NEEDS_RESET, or null. */
  get lastError(): string | null {
    return this._lastError;
  }

  /** Current level of the interrupt line. */
  get irqAsserted(): boolean {
    return this.sharedIsr ? Atomics.load(this.isr, this.isrIndex) !== 0 : this.irqLevel;
  }

  /** MMIO read (§4.2.2). */
  read(offset: number, width: MmioWidth): number {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      try {
        return this.device.readConfig(offset - VIRTIO_MMIO_CONFIG, width) >>> 0;
      } catch (e) {
        this.enterNeedsReset(`config read failed: ${errorMessage(e)}`);
        return 0;
      }
    }
    if (width !== 4 || (offset & 3) !== 0) return 0;
    const q = this.queueSel < this.queues.length ? this.queues[this.queueSel] : null;
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE: return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION: return 2;
      case VIRTIO_MMIO_DEVICE_ID: return this.device.deviceId >>> 0;
      case VIRTIO_MMIO_VENDOR_ID: return VIRTIO_MMIO_VENDOR;
      case VIRTIO_MMIO_DEVICE_FEATURES:
        if (this.deviceFeaturesSel > 1) return 0;
        return Number((this.deviceFeatures >> BigInt(32 * this.deviceFeaturesSel)) & 0xffffffffn);
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL: return this.deviceFeaturesSel;
      case VIRTIO_MMIO_DRIVER_FEATURES:
        if (this.driverFeaturesSel > 1) return 0;
        return Number((this.driverFeatures >> BigInt(32 * this.driverFeaturesSel)) & 0xffffffffn);
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL: return this.driverFeaturesSel;
      case VIRTIO_MMIO_QUEUE_SEL: return this.queueSel;
      case VIRTIO_MMIO_QUEUE_NUM_MAX: return q ? this.queueMax(this.queueSel) : 0;
      case VIRTIO_MMIO_QUEUE_NUM: return q ? q.num : 0;
      case VIRTIO_MMIO_QUEUE_READY: return q && q.ready ? 1 : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS: return Atomics.load(this.isr, this.isrIndex);
      case VIRTIO_MMIO_STATUS: return this.status;
      case VIRTIO_MMIO_QUEUE_DESC_LOW: return q ? q.descLo : 0;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH: return q ? q.descHi : 0;
      case VIRTIO_MMIO_QUEUE_DRIVER_LOW: return q ? q.driverLo : 0;
      case VIRTIO_MMIO_QUEUE_DRIVER_HIGH: return q ? q.driverHi : 0;
      case VIRTIO_MMIO_QUEUE_DEVICE_LOW: return q ? q.deviceLo : 0;
      case VIRTIO_MMIO_QUEUE_DEVICE_HIGH: return q ? q.deviceHi : 0;
      case VIRTIO_MMIO_SHM_SEL: return this.shmSel;
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
        return 0xffffffff; // no shared memory regions: length -1 (§4.2.2)
      case VIRTIO_MMIO_CONFIG_GENERATION: return this.configGeneration;
      default: return 0;
    }
  }

  /** MMIO write (§4.2.2, §4.2.3). */
  write(offset: number, width: MmioWidth, value: number): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      try {
        this.device.writeConfig(offset - VIRTIO_MMIO_CONFIG, width, value >>> 0);
      } catch (e) {
        this.enterNeedsReset(`config write failed: ${errorMessage(e)}`);
      }
      return;
    }
    if (width !== 4 || (offset & 3) !== 0) return;
    const v = value >>> 0;
    const q = this.queueSel < this.queues.length ? this.queues[this.queueSel] : null;
    // Queue layout registers only change while the queue is not ready (§4.2.3.2).
    const qw = q && !q.ready ? q : null;
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL: this.deviceFeaturesSel = v; break;
      case VIRTIO_MMIO_DRIVER_FEATURES:
        // Features are fixed once FEATURES_OK is set (§3.1.1).
        if (this.status & VIRTIO_STATUS_FEATURES_OK || this.driverFeaturesSel > 1) break;
        {
          const shift = BigInt(32 * this.driverFeaturesSel);
          this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(v) << shift);
        }
        break;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL: this.driverFeaturesSel = v; break;
      case VIRTIO_MMIO_QUEUE_SEL: this.queueSel = v; break;
      case VIRTIO_MMIO_QUEUE_NUM: if (qw) qw.num = v; break;
      case VIRTIO_MMIO_QUEUE_READY: this.setQueueReady(v === 1); break;
      case VIRTIO_MMIO_QUEUE_NOTIFY: this.notify(v & 0xffff); break;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        this.acknowledge(v);
        break;
      case VIRTIO_MMIO_STATUS: this.writeStatus(v & 0xff); break;
      case VIRTIO_MMIO_QUEUE_DESC_LOW: if (qw) qw.descLo = v; break;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH: if (qw) qw.descHi = v; break;
      case VIRTIO_MMIO_QUEUE_DRIVER_LOW: if (qw) qw.driverLo = v; break;
      case VIRTIO_MMIO_QUEUE_DRIVER_HIGH: if (qw) qw.driverHi = v; break;
      case VIRTIO_MMIO_QUEUE_DEVICE_LOW: if (qw) qw.deviceLo = v; break;
      case VIRTIO_MMIO_QUEUE_DEVICE_HIGH: if (qw) qw.deviceHi = v; break;
      case VIRTIO_MMIO_SHM_SEL: this.shmSel = v; break;
      default: break;
    }
  }

  /** Serializable state of the transport, its queues and its device (see {@link VirtioMmioState}). */
  save(): VirtioMmioState {
    return {
      status: this.status,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      driverFeatures: this.driverFeatures.toString(16),
      queueSel: this.queueSel,
      shmSel: this.shmSel,
      interruptStatus: Atomics.load(this.isr, this.isrIndex),
      configGeneration: this.configGeneration,
      lastError: this._lastError,
      queues: this.queues.map((q, i) => ({ ...q, vq: this.vqs[i]?.save() ?? null })),
      device: this.device.save(),
    };
  }

  /**
   * Restore a state from {@link save}: rebuilds the virtqueues, restores the
   * device, re-activates it if DRIVER_OK was set, and processes any buffers the
   * driver made available meanwhile (a spurious notification is harmless, §2.7.13).
   * Drives the IRQ line to the restored level.
   * @throws Error if the state has a different number of queues.
   */
  restore(s: VirtioMmioState): void {
    if (s.queues.length !== this.queues.length) throw new Error(`virtio-mmio state has ${s.queues.length} queues, device has ${this.queues.length}`);
    this.device.reset();
    this.epoch++;
    this.activated = false;
    this.status = s.status & 0xff;
    this.deviceFeaturesSel = s.deviceFeaturesSel >>> 0;
    this.driverFeaturesSel = s.driverFeaturesSel >>> 0;
    this.driverFeatures = BigInt('0x' + s.driverFeatures) & MASK64;
    this.queueSel = s.queueSel >>> 0;
    this.shmSel = s.shmSel >>> 0;
    Atomics.store(this.isr, this.isrIndex, s.interruptStatus & 3);
    this.configGeneration = s.configGeneration >>> 0;
    this._lastError = s.lastError;
    this.queues = s.queues.map((q) => ({
      num: q.num >>> 0, ready: !!q.ready,
      descLo: q.descLo >>> 0, descHi: q.descHi >>> 0,
      driverLo: q.driverLo >>> 0, driverHi: q.driverHi >>> 0,
      deviceLo: q.deviceLo >>> 0, deviceHi: q.deviceHi >>> 0,
    }));
    this.vqs = this.queues.map(() => null);
    this.device.restore(s.device);
    this.irqLevel = Atomics.load(this.isr, this.isrIndex) !== 0;
    this.irq.set(this.irqLevel);
    if (this.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) return;
    for (let i = 0; i < this.queues.length; i++) {
      if (!this.queues[i].ready) continue;
      this.vqs[i] = this.makeQueue(i, s.queues[i].vq ?? undefined);
      if (!this.vqs[i]) return;
    }
    if (this.status & VIRTIO_STATUS_DRIVER_OK) {
      this.activate();
      for (let i = 0; i < this.queues.length; i++) if (this.vqs[i]) this.notify(i);
    }
  }

  // ---- internals ----

  private queueMax(index: number): number {
    const n = this.device.queueMaxSize(index);
    return Number.isInteger(n) && n > 0 ? Math.min(n, 32768) : 0;
  }

  /** Status register write (§2.1, §3.1.1, §4.2.3.1). */
  private writeStatus(v: number): void {
    if (v === 0) {
      this.reset();
      return;
    }
    const old = this.status;
    // DEVICE_NEEDS_RESET is owned by the device. §2.1.2: the driver MUST NOT clear a
    // status bit (only a reset does), so a write that tries keeps the bit: DRIVER_OK
    // cannot go 1 -> 0 -> 1 and activate the device twice with two feature sets.
    let next = ((v | old) & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET) | (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    if ((next & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
      // §3.1.1 step 6 / §2.2: accept only offered features, and (for a modern
      // transport) only if VIRTIO_F_VERSION_1 was accepted; otherwise leave
      // FEATURES_OK clear so the driver sees the refusal.
      const unoffered = this.driverFeatures & ~this.deviceFeatures;
      if (unoffered !== 0n || !(this.driverFeatures & VIRTIO_F_VERSION_1)) next &= ~VIRTIO_STATUS_FEATURES_OK;
    }
    this.status = next;
    if ((next & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
      if (!(next & VIRTIO_STATUS_FEATURES_OK)) {
        this.enterNeedsReset('DRIVER_OK set without FEATURES_OK');
        return;
      }
      if (!(next & VIRTIO_STATUS_DEVICE_NEEDS_RESET) && !this.activated) this.activate();
    }
  }

  /** Device reset (§2.4, §4.2.3.1: writing 0 to Status). */
  private reset(): void {
    this.epoch++;
    this.activated = false;
    try {
      this.device.reset();
    } catch {
      // a device must not fail to reset; nothing else to do
    }
    this.status = 0;
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.driverFeatures = 0n;
    this.queueSel = 0;
    this.shmSel = 0;
    Atomics.store(this.isr, this.isrIndex, 0);
    this._lastError = null;
    this.queues = this.queues.map(newQueueRegs);
    this.vqs = this.vqs.map(() => null);
    this.updateIrq();
  }

  private setQueueReady(ready: boolean): void {
    const i = this.queueSel;
    if (i >= this.queues.length) return;
    const q = this.queues[i];
    if (!ready) {
      q.ready = false;
      this.vqs[i] = null;
      return;
    }
    if (q.ready) return;
    if (this.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) return;
    const max = this.queueMax(i);
    if (max === 0) return;
    if (q.num === 0 || q.num > max) {
      this.enterNeedsReset(`queue ${i}: QueueNum ${q.num} not in 1..${max}`);
      return;
    }
    const vq = this.makeQueue(i);
    if (!vq) return;
    q.ready = true;
    this.vqs[i] = vq;
  }

  private makeQueue(i: number, state?: VirtqueueState): Virtqueue | null {
    const q = this.queues[i];
    try {
      return new Virtqueue(
        this.mem,
        {
          size: q.num,
          desc: join(q.descLo, q.descHi),
          driver: join(q.driverLo, q.driverHi),
          device: join(q.deviceLo, q.deviceHi),
        },
        {
          indirect: (this.driverFeatures & VIRTIO_F_INDIRECT_DESC) !== 0n,
          eventIdx: (this.driverFeatures & VIRTIO_F_EVENT_IDX) !== 0n,
        },
        state,
      );
    } catch (e) {
      this.enterNeedsReset(`queue ${i}: ${errorMessage(e)}`);
      return null;
    }
  }

  private activate(): void {
    const epoch = this.epoch;
    const live = () => epoch === this.epoch;
    const ctx: VirtioDeviceContext = {
      mem: this.mem,
      features: this.driverFeatures,
      queue: (index: number) => (live() && index >= 0 && index < this.vqs.length ? this.vqs[index] : null),
      usedBuffers: (index: number) => {
        if (live()) this.usedBuffers(index);
      },
      configChanged: () => {
        if (!live()) return;
        this.configGeneration = (this.configGeneration + 1) >>> 0;
        this.raise(VIRTIO_MMIO_INT_CONFIG);
      },
      needsReset: (reason: string) => {
        if (live()) this.enterNeedsReset(reason);
      },
    };
    this.activated = true;
    try {
      this.device.activate(ctx);
    } catch (e) {
      this.enterNeedsReset(`activation failed: ${errorMessage(e)}`);
    }
  }

  private usedBuffers(index: number): void {
    const vq = this.vqs[index];
    if (!vq) return;
    let notify: boolean;
    try {
      notify = vq.needsNotification();
    } catch (e) {
      this.enterNeedsReset(`queue ${index}: ${errorMessage(e)}`);
      return;
    }
    if (notify) {
      this.raise(VIRTIO_MMIO_INT_VRING);
    }
  }

  /** QueueNotify (§4.2.2): pass to the device if it is live and the queue is ready. */
  private notify(index: number): void {
    if (!this.activated || (this.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)) return;
    if (index >= this.vqs.length || !this.vqs[index]) return;
    try {
      this.device.queueNotify(index);
    } catch (e) {
      this.enterNeedsReset(`queue ${index}: device error: ${errorMessage(e)}`);
    }
  }

  /** §2.1.1/§2.1.2: set DEVICE_NEEDS_RESET and send a configuration change notification. */
  private enterNeedsReset(reason: string): void {
    if (this.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) return;
    this._lastError = reason;
    this.status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    this.raise(VIRTIO_MMIO_INT_CONFIG);
    this.onNeedsReset?.(reason);
  }

  /** Set InterruptStatus bits (§4.2.2) and raise the line. */
  private raise(bits: number): void {
    Atomics.or(this.isr, this.isrIndex, bits);
    this.updateIrq();
  }

  /** InterruptACK (§4.2.2): clear the acknowledged bits; the line follows. */
  private acknowledge(bits: number): void {
    Atomics.and(this.isr, this.isrIndex, ~bits);
    this.updateIrq();
  }

  private updateIrq(): void {
    const lvl = Atomics.load(this.isr, this.isrIndex) !== 0;
    if (lvl !== this.irqLevel || this.sharedIsr) {
      this.irqLevel = lvl;
      this.irq.set(lvl);
    }
  }
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Alias of {@link VirtioMmio}. */
export { VirtioMmio as VirtioMmioTransport };
