/**
 * The host daemon's view of VMs: their durable definitions and runtime records.
 * Stored under `$TSVISOR_HOME/vms/<name>/config.json` (written atomically:
 * write a temporary file, fsync, rename).
 */

/** Restart policy, as in Docker/Podman: never, on a crash only, or always when it stops by itself. */
export type RestartPolicy = 'no' | 'on-failure' | 'always';

/** A VM definition (`tsvisor vm create`). Sizes in bytes. */
export interface VmDefinition {
  /** [a-z0-9][a-z0-9-]{0,62}; also the guest's host name. */
  name: string;
  vcpus: number;
  memoryBytes: number;
  disks: Array<{ path: string; readonly: boolean }>;
  /** ISO 9660 image attached read-only after the disks (optional). */
  cdrom?: string;
  /** Own kernel/initrd; absent = the default image. */
  kernel?: string;
  initrd?: string;
  /** Extra kernel command-line arguments. */
  append?: string;
  /** Relative CPU weight, 1..10000 (default 100), enforced by the kernel (cgroup cpu.weight / cpu.shares). */
  cpuWeight: number;
  /** CPU cap in percent of one host core (1..100*cores), or 0 for none (cgroup cpu.max / cfs_quota). */
  cpuCap: number;
  restart: RestartPolicy;
  createdAt: number;
}

/** Lifecycle state as the daemon reports it. */
export type VmState = 'stopped' | 'starting' | 'running' | 'paused' | 'stopping' | 'crashed';
