/**
 * The host daemon's view of VMs: their durable definitions and runtime records.
 * Stored under `$TSVISOR_HOME/vms/<name>/config.json` (written atomically:
 * write a temporary file, fsync, rename).
 */

import type { VmProcessConfig } from '../vmm/vm-config.js';

/** Restart policy, as in Docker/Podman: never, on a crash only, or always when it stops by itself. */
export type RestartPolicy = 'no' | 'on-failure' | 'always';

/**
 * A VM definition (`tsvisor vm create`): the machine (name, vcpus, memoryBytes, disks,
 * cdrom, kernel, initrd, append; see VmProcessConfig, what the VM process reads) plus
 * the host's policy for it. Sizes in bytes. `name` is [a-z0-9][a-z0-9-]{0,62}.
 */
export interface VmDefinition extends VmProcessConfig {
  /** Relative CPU weight, 1..10000 (default 100), enforced by the kernel (cgroup cpu.weight / cpu.shares). */
  cpuWeight: number;
  /** CPU cap in percent of one host core (1..100*cores), or 0 for none (cgroup cpu.max / cfs_quota). */
  cpuCap: number;
  restart: RestartPolicy;
  /** A dynamic VM's claim on memory when the budget is short: higher gets first and gives back last, 0..100 (absent: 50). */
  memoryPriority?: number;
  /**
   * The VM's claim on a contended host disk, 1..10000 (absent: 100), as cgroup io.weight:
   * while several VMs keep the disk busy, each gets requests and bytes per second in
   * proportion to it (src/host/disk-arbiter.ts).
   */
  diskWeight?: number;
  createdAt: number;
}

/** Lifecycle state as the daemon reports it. */
export type VmState = 'stopped' | 'starting' | 'running' | 'paused' | 'stopping' | 'crashed';
