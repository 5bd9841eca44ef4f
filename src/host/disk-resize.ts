/**
 * A VM's disks seen from the daemon (`tsvisor vm disk resize|attach|detach`): which disk
 * the user means, an image checked before it is attached to a stopped VM, and the resize
 * of a stopped VM's image file. A running VM's disks are changed by its own process
 * (`POST /disk-resize`, `/disk-attach`, `/disk-detach`), which has the images open and
 * tells the guest.
 */
import { openDisk } from '../devices/node/disk.js';
import { HostError } from './errors.js';
import type { VmDefinition } from './types.js';

/**
 * The index of the disk `spec` names in `def`: the guest's name (`vda`, `vdb`, ... in
 * attach order), a number (0, 1, ...), or the image's path as defined; for `resize`
 * (the default), a writable one.
 * @throws HostError('invalid_argument') for no such disk, the CD-ROM, or (resize) a read-only disk.
 */
export function diskIndex(def: VmDefinition, spec: string, purpose: 'resize' | 'detach' = 'resize'): number {
  let i = -1;
  const m = /^vd([a-z])$/.exec(spec);
  if (m) i = m[1].charCodeAt(0) - 97;
  else if (/^\d+$/.test(spec)) i = Number(spec);
  else i = def.disks.findIndex((d) => d.path === spec);
  if (i < 0 || i >= def.disks.length) {
    if (def.cdrom && (i === def.disks.length || spec === def.cdrom)) throw new HostError('invalid_argument', `${spec} is the CD-ROM of ${def.name}: it cannot be ${purpose === 'resize' ? 'resized' : 'detached'}`);
    throw new HostError('invalid_argument', `${def.name} has no disk ${spec} (its disks: ${def.disks.map((_, k) => `vd${String.fromCharCode(97 + k)}`).join(', ') || 'none'})`);
  }
  if (purpose === 'resize' && def.disks[i].readonly) throw new HostError('invalid_argument', `disk ${spec} of ${def.name} is attached read-only`);
  return i;
}

/**
 * Grow the image file at `path` (raw or qcow2, not in use by a VM process) to `bytes`.
 * @throws HostError('invalid_argument') with the image's one-line reason (smaller than
 *   now, not a multiple of 512, unreadable, ...).
 */
export function resizeStoppedDisk(path: string, bytes: number): void {
  let disk;
  try {
    disk = openDisk(path);
  } catch (e) {
    throw new HostError('invalid_argument', (e as Error).message);
  }
  try {
    disk.resize(bytes);
  } catch (e) {
    throw new HostError('invalid_argument', (e as Error).message);
  } finally {
    disk.close();
  }
}

/**
 * Check that `path` is a disk image this host can open (raw or qcow2, with its backing
 * chain; read-only when `readonly`), without writing it.
 * @throws HostError('invalid_argument') with the image's one-line reason.
 */
export function checkDiskImage(path: string, readonly: boolean): void {
  let disk;
  try {
    disk = openDisk(path, { readonly });
  } catch (e) {
    throw new HostError('invalid_argument', (e as Error).message);
  }
  disk.close();
}
