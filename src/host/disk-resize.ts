/**
 * Growing a VM's disk (`tsvisor vm disk resize NAME DISK SIZE`): which disk the user
 * means, and the resize of a stopped VM's image file. A running VM's disk is grown by its
 * own process (`POST /disk-resize`), which has the image open and tells the guest.
 */
import { openDisk } from '../devices/node/disk.js';
import { HostError } from './errors.js';
import type { VmDefinition } from './types.js';

/**
 * The index of the disk `spec` names in `def`: the guest's name (`vda`, `vdb`, ... in
 * attach order), a number (0, 1, ...), or the image's path as defined.
 * @throws HostError('invalid_argument') for no such disk, the CD-ROM, or a read-only disk.
 */
export function diskIndex(def: VmDefinition, spec: string): number {
  let i = -1;
  const m = /^vd([a-z])$/.exec(spec);
  if (m) i = m[1].charCodeAt(0) - 97;
  else if (/^\d+$/.test(spec)) i = Number(spec);
  else i = def.disks.findIndex((d) => d.path === spec);
  if (i < 0 || i >= def.disks.length) {
    if (def.cdrom && (i === def.disks.length || spec === def.cdrom)) throw new HostError('invalid_argument', `${spec} is the CD-ROM of ${def.name}: it cannot be resized`);
    throw new HostError('invalid_argument', `${def.name} has no disk ${spec} (its disks: ${def.disks.map((_, k) => `vd${String.fromCharCode(97 + k)}`).join(', ') || 'none'})`);
  }
  if (def.disks[i].readonly) throw new HostError('invalid_argument', `disk ${spec} of ${def.name} is attached read-only`);
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
