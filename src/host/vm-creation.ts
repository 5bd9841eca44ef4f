/**
 * Defining VMs: a plain definition, one made from a system image (its own overlay of the
 * image's base disk), one booting a user's own system disk, and any of them with a
 * cloud-init seed disc built first (vmm/cloud-init.ts). Everything is checked before
 * anything is written; what a refused request wrote (a VM folder) is removed.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CloudInitError, buildSeedIso, defaultMetaData, parseCloudInit } from '../vmm/cloud-init.js';
import { bootDiskFirmware, createImageOverlay, resolveImage } from './system-disk.js';
import type { HostCapacity } from './admission.js';
import { HostError } from './errors.js';
import { checkVmName, validateDefinition, type VmStore } from './store.js';
import type { VmDefinition } from './types.js';
import type { VmCreateInput, VmInfo } from './api-types.js';
import { newDefinition } from './definitions.js';

/** Longest Unix socket path Linux takes (sun_path is 108 bytes with its NUL). */
const MAX_UNIX_SOCKET_PATH = 107;

/** What creation needs from the daemon (src/host/host.ts). */
export interface CreationHost {
  readonly store: VmStore;
  readonly capacity: HostCapacity;
  /** TSVISOR_HOME (the image cache is under it). */
  readonly home: string;
  /** Whether the daemon knows a VM named `name`. */
  has(name: string): boolean;
  /** A new definition was stored: track it (stopped). */
  added(def: VmDefinition): void;
  /** @throws HostError('invalid_argument') for a network that does not exist. */
  checkNetworksExist(def: VmDefinition): void;
  get(name: string): VmInfo;
  log(line: string): void;
}

/** See the file comment. */
export class VmCreation {
  constructor(private readonly host: CreationHost) {}

  /** Define a new VM (validated first: a refused request writes nothing). */
  create(input: VmCreateInput, image?: { name: string; key: string }): VmInfo {
    checkVmName(input.name);
    this.checkNew(input.name);
    const def = newDefinition(input, image);
    validateDefinition(def, { cores: this.host.capacity.cores });
    this.host.checkNetworksExist(def);
    const sock = this.host.store.paths(def.name).sock;
    if (Buffer.byteLength(sock) > MAX_UNIX_SOCKET_PATH) {
      throw new HostError('invalid_argument', `VM name ${def.name} is too long for this TSVISOR_HOME: its control socket ${sock} would pass the ${MAX_UNIX_SOCKET_PATH}-byte limit of Unix socket paths`);
    }
    this.host.store.create(def);
    this.host.added(def);
    this.host.log(`created ${def.name}`);
    return this.host.get(def.name);
  }

  /**
   * Define a VM from a system image (`vm create NAME --image debian [--disk-size]`): its own
   * qcow2 overlay of the image's base disk in the VM's folder (`system.qcow2`) is its first
   * disk, booted through the image's firmware. The base is never written.
   * @throws HostError: invalid_argument (unknown image, size below the base's), already_exists,
   *   unavailable (the image cannot be built); whatever {@link create} throws.
   */
  async createFromImage(input: VmCreateInput & { image: string; diskSizeBytes?: number }): Promise<VmInfo> {
    checkVmName(input.name);
    this.checkNew(input.name);
    const img = await resolveImage({ home: this.host.home, ...input, log: (l) => this.host.log(l) });
    this.checkNew(input.name); // the build may have taken minutes
    const dir = this.host.store.paths(input.name).dir;
    const overlay = join(dir, 'system.qcow2');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      createImageOverlay(img, overlay, input.diskSizeBytes);
      const { image: _image, diskSizeBytes: _size, ...rest } = input;
      return this.create({ ...rest, disks: [{ path: overlay }, ...(input.disks ?? [])], kernel: img.firmware }, { name: img.name, key: img.key });
    } catch (err) {
      if (!this.host.store.has(input.name)) rmSync(dir, { recursive: true, force: true });
      throw err instanceof HostError ? err : new HostError('invalid_argument', (err as Error).message);
    }
  }

  /**
   * Define a VM that boots a user's own system disk (`vm create NAME --boot-disk FILE`):
   * FILE (raw or qcow2, absolute path; written in place, as QEMU's `-drive` does) is its
   * first disk, and the firmware boots the kernel and initrd in the disk's /boot.
   * @throws HostError: invalid_argument (not a readable raw or qcow2 disk; kernel, initrd
   *   or append given), unavailable (no firmware); whatever {@link create} throws.
   */
  async createFromBootDisk(input: VmCreateInput & { bootDisk: string }): Promise<VmInfo> {
    checkVmName(input.name);
    this.checkNew(input.name);
    const firmware = await bootDiskFirmware({ home: this.host.home, ...input, log: (l) => this.host.log(l) });
    const { bootDisk, ...rest } = input;
    return this.create({ ...rest, disks: [{ path: bootDisk }, ...(input.disks ?? [])], kernel: firmware });
  }

  /**
   * Create a VM with `make`; with `input.cloudInit`, first build its NoCloud seed disc
   * (`seed.iso` in the VM's folder; vmm/cloud-init.ts) and put it in the CD-ROM drive.
   * @throws HostError: invalid_argument (a seed that cannot be applied, a --cdrom too: one
   *   drive), unavailable (xorriso missing); whatever `make` throws (the seed is removed).
   */
  async withCloudInit<I extends VmCreateInput, T>(input: I, make: (input: I) => Promise<T>): Promise<T> {
    if (!input.cloudInit) return await make(input);
    checkVmName(input.name);
    this.checkNew(input.name);
    if (input.cdrom) throw new HostError('invalid_argument', 'the cloud-init seed disc goes in the CD-ROM drive: give --cdrom or --cloud-init, not both');
    const seed = { userData: input.cloudInit.userData, metaData: input.cloudInit.metaData ?? defaultMetaData(input.name) };
    try {
      parseCloudInit(seed);
    } catch (e) {
      throw new HostError('invalid_argument', `cloud-init: ${(e as Error).message}`);
    }
    const dir = this.host.store.paths(input.name).dir;
    const iso = join(dir, 'seed.iso');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      buildSeedIso(iso, seed);
      const { cloudInit: _seed, ...rest } = input;
      return await make({ ...rest, cdrom: iso } as I);
    } catch (err) {
      if (!this.host.store.has(input.name)) rmSync(dir, { recursive: true, force: true });
      if (err instanceof CloudInitError) throw new HostError(/not installed/.test(err.message) ? 'unavailable' : 'invalid_argument', `cloud-init: ${err.message}`);
      throw err;
    }
  }

  private checkNew(name: string): void {
    if (this.host.has(name) || this.host.store.has(name)) throw new HostError('already_exists', `VM ${name} already exists`);
  }
}
