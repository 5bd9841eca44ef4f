/**
 * Changes to a VM's configuration, stored and live: `vm set` (a definition patch, of which
 * a running VM takes the CPU weight and cap, memory, vCPUs, disk limits and network rate
 * at once) and `vm disk resize|attach|detach`. What a running VM took is written to its
 * definition as it is taken, so that the two never disagree, and a change a running VM
 * refuses leaves the definition as it was.
 */
import { HostError } from './errors.js';
import { ALIVE, type Entry } from './entry.js';
import type { VmProcessStatus } from '../vmm/control-api.js';
import type { CgroupDriver } from './cgroups.js';
import type { HostMeter } from './meter.js';
import type { HostCapacity } from './admission.js';
import type { VmStore } from './store.js';
import { validateDefinition } from './store.js';
import type { VmDefinition } from './types.js';
import type { DiskAttachResult, VmInfo, VmPatch } from './api-types.js';
import type { VmChannel } from './vm-channel.js';
import type { MemoryAdmission } from './memory-admission.js';
import type { MemoryBalancer } from './memory-balancer.js';
import { diskIndex, resizeStoppedDisk, checkDiskImage } from './disk-resize.js';
import { patchDefinition } from './definitions.js';

/** What the changes need from the daemon (src/host/host.ts). */
export interface ChangesHost {
  readonly store: VmStore;
  readonly cgroups: CgroupDriver;
  readonly meter: HostMeter;
  readonly capacity: HostCapacity;
  readonly admission: MemoryAdmission;
  readonly balancer: MemoryBalancer;
  /** Run `fn` with VM `name`'s operation lock. @throws HostError('not_found'). */
  locked<T>(name: string, fn: (e: Entry) => Promise<T>): Promise<T>;
  /** VM `name`'s control channel. */
  channel(name: string): VmChannel;
  /** A status the VM process answered. */
  noteStatus(name: string, e: Entry, st: VmProcessStatus): void;
  /** The runtime record of `name` changed (to be saved). */
  save(name: string, e: Entry): void;
  /** @throws HostError('invalid_argument') for a network that does not exist. */
  checkNetworksExist(def: VmDefinition): void;
  /** The VM as the API reports it. */
  get(name: string): VmInfo;
  log(line: string): void;
}

/** The reason a VM process gave (meant for the user as it is), as the message (after `prefix`); any other error as it is. */
export function vmReason(err: unknown, prefix = ''): unknown {
  const reason = err instanceof HostError ? err.details?.reason : undefined;
  return typeof reason === 'string' && err instanceof HostError ? new HostError(err.code, `${prefix}${reason}`) : err;
}

/** See the file comment. */
export class VmChanges {
  constructor(private readonly host: ChangesHost) {}

  /**
   * Change a VM's definition. CPU weight and cap, memory, vCPUs, disk limits and weight, the
   * network rate and the memory policy apply to a running VM at once (the memory through its
   * balloon, up to the RAM it booted with; growing it is admitted against the host's budget
   * first; the disk weight at the daemon's next round); the rest at its next start.
   */
  update(name: string, patch: VmPatch): Promise<VmInfo> {
    return this.host.locked(name, async (e) => {
      const next = patchDefinition(e.def, patch);
      validateDefinition(next, { cores: this.host.capacity.cores });
      this.host.checkNetworksExist(next);
      // A running VM takes some changes at once, one after the other. What it took is kept in
      // the definition even when a later one is refused, so that the two never disagree.
      let applied: VmDefinition = e.def;
      const took = (...keys: Array<keyof VmDefinition>) => {
        const a = { ...applied } as Record<string, unknown>;
        for (const k of keys) { if (next[k] === undefined) delete a[k]; else a[k] = next[k]; }
        applied = a as unknown as VmDefinition;
      };
      const running = e.rt.state === 'running' || e.rt.state === 'paused';
      try {
        const cpuChanged = next.cpuWeight !== e.def.cpuWeight || next.cpuCap !== e.def.cpuCap;
        if (cpuChanged && ALIVE.includes(e.rt.state) && this.host.cgroups.version !== 'none') {
          try {
            this.host.cgroups.apply(name, next.cpuWeight, next.cpuCap);
          } catch (err) {
            throw new HostError('internal', `cannot apply CPU weight/cap to ${name}: ${(err as Error).message}`);
          }
          took('cpuWeight', 'cpuCap');
        }
        // a dynamic VM's memory is its policy's; its --memory is where it starts next time
        if (next.memoryBytes !== e.def.memoryBytes && ALIVE.includes(e.rt.state) && next.memoryPolicy !== 'dynamic' && e.def.memoryPolicy !== 'dynamic') {
          await this.setRunningMemory(name, e, next.memoryBytes);
          took('memoryBytes');
        }
        if (next.vcpus !== e.def.vcpus && ALIVE.includes(e.rt.state)) {
          await this.setRunningCpus(name, e, next.vcpus);
          took('vcpus');
        }
        const disk = { iops: next.diskIops ?? 0, bps: next.diskBps ?? 0 };
        if ((disk.iops !== (e.def.diskIops ?? 0) || disk.bps !== (e.def.diskBps ?? 0)) && running) {
          await this.host.channel(name).post('/disk-rate', disk);
          took('diskIops', 'diskBps');
        }
        const rate = next.netRateMbit ?? 0;
        if (rate !== (e.def.netRateMbit ?? 0) && running) await this.host.channel(name).post('/net-rate', { mbit: rate });
      } catch (err) {
        if (applied !== e.def) {
          this.host.store.saveDefinition(applied);
          e.def = applied;
          this.host.log(`updated ${name} in part (${(err as Error).message})`);
        }
        throw err;
      }
      this.host.store.saveDefinition(next);
      e.def = next;
      this.host.log(`updated ${name}: ${JSON.stringify(patch)}`);
      const policyChanged = (['memoryPolicy', 'minMemoryBytes', 'memoryBufferPercent', 'memoryPriority'] as const).some((k) => patch[k] !== undefined);
      if (policyChanged && running) await this.host.balancer.rebalance();
      return this.host.get(name);
    });
  }

  /**
   * Bring a running VM's online vCPUs to `count` (through its guest agent), up to the
   * harts it booted with.
   * @throws HostError: conflict (not running, no agent, the guest refused), invalid_argument (above its harts).
   */
  private async setRunningCpus(name: string, e: Entry, count: number): Promise<void> {
    if (e.rt.state !== 'running') throw new HostError('conflict', `VM ${name} is ${e.rt.state}: its vCPUs can change while it runs`);
    try {
      this.host.noteStatus(name, e, await this.host.channel(name).post('/cpus', { count }, 30_000) as VmProcessStatus);
    } catch (err) {
      throw vmReason(err, `cannot change the vCPUs of ${name}: `);
    }
  }

  /**
   * Move a running VM's memory to `bytes` (its balloon): growth beyond what it holds is
   * admitted first; its reservation follows once the VM process took the change.
   * @throws HostError: conflict (not running or paused, or the guest cannot give that much
   *   now), insufficient_resources, invalid_argument (above the RAM it booted with).
   */
  private async setRunningMemory(name: string, e: Entry, bytes: number): Promise<void> {
    if (e.rt.state !== 'running' && e.rt.state !== 'paused') throw new HostError('conflict', `VM ${name} is ${e.rt.state}: its memory can change once it runs`);
    try {
      const st = await this.host.admission.setRunningMemory(name, e, bytes, () => this.host.channel(name).post('/memory', { bytes }) as Promise<VmProcessStatus>);
      this.host.meter.ledger.setRunMemory(name, bytes);
      this.host.noteStatus(name, e, st);
    } catch (err) {
      throw vmReason(err, `cannot change the memory of ${name}: `);
    } finally {
      this.host.save(name, e);
    }
  }

  /**
   * Grow disk `disk` of VM `name` (`vda`, an index or its path; see disk-resize.ts) to
   * `bytes`: a running VM's own process grows it and tells the guest, which sees the new
   * size at once; a stopped VM's image is grown here.
   * @throws HostError: not_found, invalid_argument (no such disk, the CD-ROM, read-only,
   *   smaller than now, not a multiple of 512), conflict (starting or stopping).
   */
  resizeDisk(name: string, disk: string, bytes: number): Promise<VmInfo> {
    return this.host.locked(name, async (e) => {
      const i = diskIndex(e.def, disk);
      if (e.rt.state === 'running' || e.rt.state === 'paused') {
        try {
          this.host.noteStatus(name, e, await this.host.channel(name).post('/disk-resize', { index: i, bytes }, 60_000) as VmProcessStatus);
        } catch (err) {
          throw vmReason(err);
        }
      } else if (ALIVE.includes(e.rt.state)) {
        throw new HostError('conflict', `VM ${name} is ${e.rt.state}: resize its disk once it runs or has stopped`);
      } else {
        resizeStoppedDisk(e.def.disks[i].path, bytes);
      }
      this.host.log(`${name}: disk ${disk} grown to ${bytes} bytes`);
      return this.host.get(name);
    });
  }

  /**
   * Attach the disk image at `path` (absolute) to VM `name`, as its last disk: a running
   * VM's process plugs it into a spare virtio slot and its guest agent binds it, so the
   * guest sees a new `vdX` at once; a stopped VM gets it at its next start. Either way
   * the definition keeps it (as `virsh attach-disk --live --config`).
   * @throws HostError: not_found; invalid_argument (not a readable raw or qcow2 image,
   *   already attached, too many devices); conflict (starting or stopping, paused, no
   *   guest agent, no spare slot: with the VM process's reason).
   */
  attachDisk(name: string, path: string, opts: { readonly?: boolean }): Promise<DiskAttachResult> {
    return this.host.locked(name, async (e) => {
      const readonly = !!opts.readonly;
      if (e.def.disks.some((d) => d.path === path) || e.def.cdrom === path) throw new HostError('invalid_argument', `${path} is already attached to ${name}`);
      const next: VmDefinition = { ...e.def, disks: [...e.def.disks, { path, readonly }] };
      validateDefinition(next, { cores: this.host.capacity.cores });
      let device: string | null = null;
      if (e.rt.state === 'running') {
        try {
          const r = await this.host.channel(name).post('/disk-attach', { path, readonly }, 60_000) as { device: string; status: VmProcessStatus };
          device = r.device;
          this.host.noteStatus(name, e, r.status);
        } catch (err) {
          throw vmReason(err, `cannot attach ${path} to ${name}: `);
        }
      } else if (ALIVE.includes(e.rt.state)) {
        throw new HostError('conflict', `VM ${name} is ${e.rt.state}: attach the disk while it runs or once it has stopped`);
      } else {
        checkDiskImage(path, readonly);
      }
      this.host.store.saveDefinition(next);
      e.def = next;
      this.host.log(`${name}: disk ${path} attached${device ? ` (the guest's ${device})` : ''}`);
      return { device, vm: this.host.get(name) };
    });
  }

  /**
   * Detach disk `disk` (`vdb`, an index or its path) from VM `name`: a running guest lets
   * it go first (refused while it is mounted, swap or held there, unless `force`), then
   * the VM process closes it; the definition drops it. The image file is left as it is.
   * @throws HostError: not_found; invalid_argument (no such disk, the CD-ROM); conflict
   *   (starting or stopping, paused, no guest agent, in use in the guest: its reason).
   */
  detachDisk(name: string, disk: string, opts: { force?: boolean }): Promise<VmInfo> {
    return this.host.locked(name, async (e) => {
      const i = diskIndex(e.def, disk, 'detach');
      const path = e.def.disks[i].path;
      if (e.rt.state === 'running') {
        try {
          this.host.noteStatus(name, e, await this.host.channel(name).post('/disk-detach', { path, force: !!opts.force }, 60_000) as VmProcessStatus);
        } catch (err) {
          throw vmReason(err, `cannot detach ${disk} from ${name}: `);
        }
      } else if (ALIVE.includes(e.rt.state)) {
        throw new HostError('conflict', `VM ${name} is ${e.rt.state}: detach the disk while it runs or once it has stopped`);
      }
      const next: VmDefinition = { ...e.def, disks: e.def.disks.filter((_, k) => k !== i) };
      this.host.store.saveDefinition(next);
      e.def = next;
      this.host.log(`${name}: disk ${path} detached${opts.force ? ' (forced)' : ''}`);
      return this.host.get(name);
    });
  }

  /**
   * Put the ISO image at `path` (absolute) in VM `name`'s CD-ROM drive, or (null) take the
   * disc out, as `virsh change-media --live --config`: a running guest is told (it sees the
   * new disc at its next access; a disc it has mounted holds the tray locked, and only
   * `force` ejects it then); the definition keeps the change for the next start.
   * @throws HostError: not_found; invalid_argument (the image cannot be opened); conflict
   *   (starting, stopping or paused; the tray is locked: the VM process's reason).
   */
  setCdrom(name: string, path: string | null, opts: { force?: boolean }): Promise<VmInfo> {
    return this.host.locked(name, async (e) => {
      const next: VmDefinition = { ...e.def };
      if (path === null) delete next.cdrom; else next.cdrom = path;
      validateDefinition(next, { cores: this.host.capacity.cores });
      if (e.rt.state === 'running') {
        try {
          this.host.noteStatus(name, e, await this.host.channel(name).post('/cdrom', { path, force: !!opts.force }, 30_000) as VmProcessStatus);
        } catch (err) {
          throw vmReason(err, path === null ? `cannot eject the disc of ${name}: ` : `cannot insert ${path} in ${name}: `);
        }
      } else if (ALIVE.includes(e.rt.state)) {
        throw new HostError('conflict', `VM ${name} is ${e.rt.state}: change its disc while it runs or once it has stopped`);
      } else if (path !== null) {
        checkDiskImage(path, true);
      }
      this.host.store.saveDefinition(next);
      e.def = next;
      this.host.log(`${name}: CD-ROM ${path === null ? `ejected${opts.force ? ' (forced)' : ''}` : `${path} inserted`}`);
      return this.host.get(name);
    });
  }

  /**
   * Share the host folder `share.path` (absolute) with stopped VM `name` under
   * `share.tag`, or (`share` null) stop sharing the folder tagged `tag`: the definition
   * changes, and the guest has it from its next start (mounted on /mnt/TAG).
   * @throws HostError: not_found; invalid_argument (no such folder, a tag taken or unknown,
   *   too many); conflict (the VM is not stopped).
   */
  setShare(name: string, tag: string, share: { path: string; readonly?: boolean } | null): Promise<VmInfo> {
    return this.host.locked(name, async (e) => {
      if (ALIVE.includes(e.rt.state)) throw new HostError('conflict', `VM ${name} is ${e.rt.state}: shared folders change while it is stopped (vm stop ${name} first)`);
      const shares = e.def.shares ?? [];
      const has = shares.some((s) => s.tag === tag);
      if (share === null && !has) throw new HostError('invalid_argument', `${name} has no shared folder tagged ${tag}`);
      if (share !== null && has) throw new HostError('invalid_argument', `${name} already has a shared folder tagged ${tag}`);
      const rest = shares.filter((s) => s.tag !== tag);
      const list = share === null ? rest : [...rest, { path: share.path, tag, ...(share.readonly ? { readonly: true } : {}) }];
      const next: VmDefinition = { ...e.def, shares: list };
      if (list.length === 0) delete next.shares;
      validateDefinition(next, { cores: this.host.capacity.cores });
      this.host.store.saveDefinition(next);
      e.def = next;
      this.host.log(`${name}: ${share === null ? `shared folder ${tag} removed` : `${share.path} shared as ${tag}${share.readonly ? ' (read-only)' : ''}`}`);
      return this.host.get(name);
    });
  }
}
