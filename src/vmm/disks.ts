/**
 * A VM process's disks, across guest reboots: the images it has open, their counters, and
 * the changes made while the guest runs, as `virsh attach-disk` / `detach-disk` make them:
 *
 *   - grow (`resize`): the image grows, then virtio-blk's configuration-change interrupt
 *     tells the guest (virtio 1.2 §5.2.4), which sees the new size at once;
 *   - attach (`attach`): the image is opened and plugged into an empty virtio-mmio slot
 *     the board kept at boot (machine/board.ts); the guest agent then binds the slot's
 *     platform device (`/sys/bus/platform/drivers/virtio-mmio/bind`), so Linux probes it
 *     and the disk appears (the next `vdX`);
 *   - detach (`detach`): the guest agent refuses while the disk (or a partition) is
 *     mounted, used as swap or held by another block device, unless forced; otherwise it
 *     syncs and unbinds the platform device (the driver resets it), and the slot is
 *     emptied and the image flushed and closed.
 *
 * A guest reboot gives every disk in the list a slot of its own, in list order: the next
 * boot sees them as the next start from the daemon's definition would.
 */
import { openDisk, type DiskImage } from '../devices/node/disk.js';
import type { IoLimiter } from '../devices/io-limiter.js';
import type { VirtioBlk } from '../devices/virtio/blk.js';
import { VIRTIO_STATUS_DRIVER_OK } from '../devices/virtio/device.js';
import { Board, type DiskConfig } from '../machine/board.js';

/** A disk change that cannot be made; `status` is 400 (bad request) or 409 (not now). */
export class DiskChangeError extends Error {
  constructor(readonly status: 400 | 409, message: string) {
    super(message);
    this.name = 'DiskChangeError';
  }
}

/** Runs a shell script in the guest (the agent); resolves with its exit status, collecting stdout and stderr. */
export type GuestShell = (script: string) => Promise<{ status: number; stdout: string; stderr: string }>;

/** One disk as the VM process holds it. */
interface VmDisk {
  path: string;
  readonly: boolean;
  image: DiskImage;
  /** Serial number the guest reads (VIRTIO_BLK_T_GET_ID; `/dev/disk/by-id/virtio-<serial>`). */
  serial: string;
  /** Bytes read and written in earlier boots and by earlier devices. */
  base: { readBytes: number; writtenBytes: number };
  /** Its device in the running board and the slot it sits in, or null between boots. */
  dev: { blk: VirtioBlk; slot: number } | null;
}

/** Exit status of the detach script when the guest uses the disk. */
const IN_USE = 3;

/** The platform device name Linux gives the device-tree node of virtio-mmio slot `slot` (`<unit address>.<node name>`). */
export function slotDeviceName(slot: number): string {
  return `${Board.slotAddress(slot).toString(16)}.virtio_mmio`;
}

/**
 * The guest script (busybox `sh` or dash) that binds slot `slot`'s platform device and
 * prints the name of the block device that appears (`vdc`).
 */
export function bindScript(slot: number): string {
  const dev = slotDeviceName(slot);
  return [
    `dev=${dev}; d=/sys/bus/platform/devices/$dev`,
    'if [ ! -e "$d" ]; then echo "the guest has no virtio-mmio device $dev" >&2; exit 1; fi',
    'modprobe virtio_blk 2>/dev/null',
    'if [ ! -e "$d/driver" ]; then echo $dev > /sys/bus/platform/drivers/virtio-mmio/bind || exit 1; fi',
    'n=0',
    'while [ $n -lt 100 ]; do',
    '  for b in "$d"/virtio*/block/*; do if [ -e "$b" ]; then echo "${b##*/}"; exit 0; fi; done',
    '  sleep 0.1 2>/dev/null || sleep 1',
    '  n=$((n+1))',
    'done',
    'echo "the guest bound $dev but no disk appeared in 10 s" >&2; exit 1',
  ].join('\n') + '\n';
}

/**
 * The guest script that lets slot `slot`'s disk go: unless `force`, it exits with status
 * {@link IN_USE} and a one-line reason while the disk or a partition of it is mounted,
 * used as swap or held (LVM, RAID); then it syncs and unbinds the platform device.
 */
export function unbindScript(slot: number, force: boolean): string {
  const dev = slotDeviceName(slot);
  const lines = [
    `dev=${dev}; d=/sys/bus/platform/devices/$dev`,
    'name=',
    'for b in "$d"/virtio*/block/*; do if [ -e "$b" ]; then name=${b##*/}; fi; done',
  ];
  if (!force) {
    lines.push(
      'if [ -n "$name" ]; then',
      '  while read src mnt rest; do case "$src" in /dev/$name|/dev/$name[0-9]*) echo "/dev/$name is mounted at $mnt in the guest: unmount it first (or detach with --force)" >&2; exit 3;; esac; done < /proc/mounts',
      '  while read src rest; do case "$src" in /dev/$name|/dev/$name[0-9]*) echo "$src is in use as swap in the guest: swapoff it first (or detach with --force)" >&2; exit 3;; esac; done < /proc/swaps',
      '  for h in /sys/block/$name/holders/* /sys/block/$name/$name*/holders/*; do if [ -e "$h" ]; then echo "/dev/$name is held by ${h##*/} in the guest: release it first (or detach with --force)" >&2; exit 3; fi; done',
      'fi',
    );
  }
  lines.push(
    'sync',
    'if [ -e "$d/driver" ]; then echo $dev > /sys/bus/platform/drivers/virtio-mmio/unbind || exit 1; fi',
  );
  return lines.join('\n') + '\n';
}

/** The disks of one VM process; see the file comment. (The CD-ROM drive is vmm/cdrom.ts.) */
export class VmDisks {
  private readonly disks: VmDisk[] = [];
  private board: Board | null = null;
  /** Serializes attach and detach. */
  private ops: Promise<unknown> = Promise.resolve();
  private nextSerial = 0;

  /** @param limiter the VM's disk I/O limits, shared by every disk. */
  constructor(private readonly limiter: IoLimiter, private readonly log: (line: string) => void) {}

  /**
   * Open the disks the VM starts with (raw or qcow2, detected, each with its backing chain).
   * @throws Error with the image's one-line reason; the disks opened before stay open (close with {@link closeAll}).
   */
  open(disks: ReadonlyArray<{ path: string; readonly?: boolean }>): void {
    for (const d of disks) this.add(d.path, !!d.readonly, openDisk(d.path, { readonly: d.readonly }));
  }

  private add(path: string, readonly: boolean, image: DiskImage): VmDisk {
    const disk: VmDisk = { path, readonly, image, serial: `disk${this.nextSerial++}`, base: { readBytes: 0, writtenBytes: 0 }, dev: null };
    this.disks.push(disk);
    return disk;
  }

  /** The disks of the next board, in slot order (the board's first slots). */
  boardDisks(): DiskConfig[] {
    return this.disks.map((d) => ({ backend: d.image, serial: d.serial, limiter: this.limiter }));
  }

  /**
   * Follow a board built from {@link boardDisks} (its disk i is disk i), or none (the
   * guest stopped: the counters of its devices are kept).
   */
  setBoard(board: Board | null): void {
    for (const d of this.disks) VmDisks.unbind(d);
    this.board = board;
    if (board) this.disks.forEach((d, i) => { d.dev = { blk: board.disks[i], slot: i }; });
  }

  /** `d` leaves its device: the device's counters go into the disk's own. */
  private static unbind(d: VmDisk): void {
    if (d.dev) {
      d.base.readBytes += d.dev.blk.metrics.readBytes;
      d.base.writtenBytes += d.dev.blk.metrics.writeBytes;
    }
    d.dev = null;
  }

  /** Per disk: path, size and the bytes the guest read and wrote since the process started. */
  status(): Array<{ path: string; sizeBytes: number; readBytes: number; writtenBytes: number }> {
    return this.disks.map((d) => ({
      path: d.path,
      sizeBytes: d.image.size,
      readBytes: d.base.readBytes + (d.dev?.blk.metrics.readBytes ?? 0),
      writtenBytes: d.base.writtenBytes + (d.dev?.blk.metrics.writeBytes ?? 0),
    }));
  }

  /**
   * Grow disk `index` to `bytes` and tell the guest.
   * @throws DiskChangeError(400): no such disk, read-only, or the image's reason (smaller, not a multiple of 512).
   */
  resize(index: number, bytes: number): void {
    const d = this.disks[index];
    if (!d) throw new DiskChangeError(400, `no disk ${index}: this VM has ${this.disks.length} disk(s)`);
    if (d.readonly) throw new DiskChangeError(400, `disk ${index} is attached read-only`);
    const before = d.image.size;
    try {
      d.image.resize(bytes);
    } catch (e) {
      throw new DiskChangeError(400, (e as Error).message);
    }
    d.dev?.blk.resized();
    if (bytes !== before) this.log(`disk ${index} (${d.path}) grown from ${before} to ${bytes} bytes`);
  }

  /**
   * Attach the image at `path` to the running guest (see the file comment).
   * @returns the guest's name of the new disk (`vdc`).
   * @throws DiskChangeError: 400 (already attached, cannot be opened), 409 (no guest
   *   running, no free slot, the guest did not take it: the image is closed again).
   */
  attach(path: string, readonly: boolean, shell: GuestShell | null): Promise<string> {
    return this.serialize(async () => {
      if (this.disks.some((d) => d.path === path)) throw new DiskChangeError(400, `${path} is already attached to this VM`);
      const board = this.board;
      if (!board) throw new DiskChangeError(409, 'the guest is not running');
      if (!shell) throw new DiskChangeError(409, 'the guest agent is not running (yet): a disk is attached through it');
      if (board.freeHotplugSlots === 0) throw new DiskChangeError(409, 'no free virtio slot for another disk: restart the VM to attach more (the definition keeps the disk if attached while stopped)');
      let image: DiskImage;
      try {
        image = openDisk(path, { readonly });
      } catch (e) {
        throw new DiskChangeError(400, (e as Error).message);
      }
      const disk = this.add(path, readonly, image);
      let slot = -1;
      try {
        const plugged = board.plugDisk({ backend: image, serial: disk.serial, limiter: this.limiter });
        slot = plugged.slot;
        disk.dev = { blk: plugged.blk, slot };
        const r = await shell(bindScript(slot));
        const name = r.stdout.trim().split('\n').pop() ?? '';
        if (r.status !== 0 || !/^vd[a-z]+$/.test(name)) throw new DiskChangeError(409, `the guest did not take the disk: ${lastLine(r.stderr) || `status ${r.status}`}`);
        this.log(`disk ${path} attached in virtio slot ${slot}: the guest's /dev/${name}`);
        return name;
      } catch (e) {
        if (this.board !== board && this.disks.includes(disk)) {
          // the guest rebooted meanwhile: the new board has the disk in a slot of its own, in list order
          const name = `vd${String.fromCharCode(97 + this.disks.indexOf(disk))}`;
          this.log(`disk ${path} attached while the guest rebooted: the guest's /dev/${name} once it is up`);
          return name;
        }
        if (slot >= 0 && this.board === board) {
          // the guest may have bound it after all: let go of it before the slot empties
          await shell(unbindScript(slot, true)).catch(() => undefined);
          try { board.unplugDisk(slot); } catch { /* already empty */ }
        }
        this.disks.splice(this.disks.indexOf(disk), 1);
        try { image.close(); } catch { /* nothing more to do */ }
        throw e;
      }
    });
  }

  /**
   * Detach the disk of image `path` from the running guest (see the file comment); the
   * image is flushed and closed.
   * @throws DiskChangeError: 400 (no such disk, the CD-ROM), 409 (no guest or agent, the
   *   guest uses it and `force` is false, the guest did not let it go).
   */
  detach(path: string, force: boolean, shell: GuestShell | null): Promise<void> {
    return this.serialize(async () => {
      const d = this.disks.find((x) => x.path === path);
      if (!d) throw new DiskChangeError(400, `${path} is not a disk of this VM`);
      const board = this.board;
      if (!board || !d.dev) throw new DiskChangeError(409, 'the guest is not running');
      if (!shell) throw new DiskChangeError(409, 'the guest agent is not running (yet): a disk is detached through it');
      const slot = d.dev.slot;
      const r = await shell(unbindScript(slot, force));
      if (r.status !== 0) throw new DiskChangeError(409, r.status === IN_USE ? lastLine(r.stderr) : `the guest did not let the disk go: ${lastLine(r.stderr) || `status ${r.status}`}`);
      if (this.board !== board || !d.dev) throw new DiskChangeError(409, 'the guest stopped while the disk was being detached');
      const status = board.unplugDisk(slot);
      VmDisks.unbind(d);
      this.disks.splice(this.disks.indexOf(d), 1);
      try { d.image.close(); } catch (e) { this.log(`closing ${d.path}: ${(e as Error).message}`); }
      // Linux resets the device when its driver goes, then sets ACKNOWLEDGE again (virtio_dev_remove)
      const driverOk = (status & VIRTIO_STATUS_DRIVER_OK) !== 0;
      this.log(`disk ${d.path} detached from virtio slot ${slot}${driverOk ? ` (its driver had not reset it: status ${status})` : ''}${force ? ' (forced)' : ''}`);
    });
  }

  /** Flush and close every image (the process exits). */
  closeAll(): void {
    for (const d of this.disks) {
      try { d.image.flush(); } catch { /* reported on the guest's flush */ }
      try { d.image.close(); } catch { /* already closed */ }
    }
  }

  private serialize<T>(op: () => Promise<T>): Promise<T> {
    const p = this.ops.then(op, op);
    this.ops = p.catch(() => undefined);
    return p;
  }
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? '';
}
