/**
 * A virtio-mmio slot that may be empty: the window a board reserves at boot, listed in
 * its device tree, so that a device can be plugged in while the guest runs.
 *
 * Empty, it answers as QEMU's `virt` board answers for a slot with no device: MagicValue
 * "virt", Version 2, DeviceID 0 (virtio 1.2 §4.2.2: "reserved (invalid)"; Linux's
 * virtio_mmio_probe() then ends with -ENODEV and leaves the platform device unbound), the
 * vendor, and zero elsewhere; writes are ignored. Plugged, every access goes to the
 * device's transport. The guest finds a newly plugged device when the platform device is
 * bound again (`/sys/bus/platform/drivers/virtio-mmio/bind`), and lets it go when unbound.
 */
import type { MmioDevice, MmioWidth } from '../bus.js';
import {
  VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_MAGIC, VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_VENDOR, VIRTIO_MMIO_VENDOR_ID,
  VIRTIO_MMIO_VERSION, type VirtioMmioTransport,
} from './mmio.js';

/** One virtio-mmio window whose device can come and go; see the file comment. */
export class VirtioMmioSlot implements MmioDevice {
  /** Window size in bytes (one `virt` slot). */
  readonly size = 0x1000;
  private current: VirtioMmioTransport | null = null;

  /** The transport plugged in, or null while empty. */
  get transport(): VirtioMmioTransport | null {
    return this.current;
  }

  /**
   * Plug `t` in (its window must fit the slot's).
   * @throws RangeError if the slot is taken or the window is larger.
   */
  plug(t: VirtioMmioTransport): void {
    if (this.current) throw new RangeError('virtio-mmio slot already holds a device');
    if (t.size > this.size) throw new RangeError(`virtio-mmio window 0x${t.size.toString(16)} larger than the slot`);
    this.current = t;
  }

  /** Empty the slot; returns what it held. */
  unplug(): VirtioMmioTransport | null {
    const t = this.current;
    this.current = null;
    return t;
  }

  /** MMIO read (§4.2.2). */
  read(offset: number, width: MmioWidth): number {
    if (this.current) return this.current.read(offset, width);
    if (width !== 4) return 0;
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE: return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION: return 2;
      case VIRTIO_MMIO_DEVICE_ID: return 0;
      case VIRTIO_MMIO_VENDOR_ID: return VIRTIO_MMIO_VENDOR;
      default: return 0;
    }
  }

  /** MMIO write (§4.2.2): the device's, or nothing while empty. */
  write(offset: number, width: MmioWidth, value: number): void {
    this.current?.write(offset, width, value);
  }
}
