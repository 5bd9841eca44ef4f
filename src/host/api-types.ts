/**
 * The shapes the host daemon takes and returns (`/v1/...`): what a new VM or a change
 * names, and the VM, host, usage and top reports. Sizes in bytes, times in ms since the
 * epoch unless named otherwise. Validated at the API edge by src/api/schemas.ts.
 */
import type { MemoryBudget } from './admission.js';
import type { IoCounters } from './metering.js';
import type { CgroupVersion } from './cgroups.js';
import type { VmExit } from './store.js';
import type { RestartPolicy, VmDefinition, VmState } from './types.js';
import type { EngineKind } from '../engine/hart.js';

/** Fields of a new VM; omitted ones get defaults (1 vCPU, 512 MiB, weight 100, no cap, restart `no`). */
export interface VmCreateInput {
  name: string;
  vcpus?: number;
  /** Harts the guest boots with; `vcpus` of them are online, so `vm set --cpus` can add more while it runs. Default: `vcpus`. */
  maxVcpus?: number;
  memoryBytes?: number;
  /** RAM the guest boots with; the balloon holds what `memoryBytes` leaves, so `vm set --memory` can grow it while it runs. Default: `memoryBytes`. */
  maxMemoryBytes?: number;
  /**
   * `dynamic`: the memory follows the guest's needs within [minMemoryBytes, maxMemoryBytes],
   * starting at `memoryBytes` (src/host/memory-balancer.ts); default `static`.
   */
  memoryPolicy?: 'static' | 'dynamic';
  /** A dynamic VM's guarantee (what admission reserves); default min(memoryBytes, 256 MiB). */
  minMemoryBytes?: number;
  /** A dynamic VM's free memory above its working set, percent of it (5..200, default 20). */
  memoryBufferPercent?: number;
  /** A dynamic VM's priority when memory is short (0..100, default 50): higher gets first and gives back last. */
  memoryPriority?: number;
  /** Share of a contended host disk, 1..10000 (default 100). */
  diskWeight?: number;
  disks?: Array<{ path: string; readonly?: boolean }>;
  cdrom?: string;
  /** Host folders shared into the guest (virtio-9p; vmm/shares.ts), absolute paths. */
  shares?: Array<{ path: string; tag: string; readonly?: boolean }>;
  kernel?: string;
  initrd?: string;
  append?: string;
  cpuWeight?: number;
  cpuCap?: number;
  restart?: RestartPolicy;
  /** Network cards: `user` (NAT through passt) or `none` alone; default one `user` card. */
  networks?: string[];
  /** Host ports forwarded into the guest, `[HOST_IP:]HOST_PORT:GUEST_PORT[/udp]` each. */
  publish?: string[];
  /** Bandwidth cap of each network card, Mbit/s each way; 0 or absent: none. */
  netRateMbit?: number;
  /** Disk I/O limits of the VM (all disks together): requests/s and bytes/s; 0 or absent: none. */
  diskIops?: number;
  diskBps?: number;
  /** OpenSSH public key lines for the guest's default user (`vm ssh`); needs a `user` card. */
  sshKeys?: string[];
  /**
   * First-boot configuration (NoCloud): the daemon builds a seed disc (`cidata`) from these
   * texts in the VM's folder and puts it in the CD-ROM drive (vmm/cloud-init.ts).
   * `metaData` absent: a fresh instance-id and the VM's name as local-hostname.
   */
  cloudInit?: { userData: string; metaData?: string };
  /** How the vCPUs run guest code; default jit. */
  engine?: EngineKind;
  /** Graphics memory of the display in bytes (default 16 MiB; 0: no display). */
  vramBytes?: number;
  /** The display's preferred mode, `WxH` (default 1280x800). */
  resolution?: string;
}

/** `POST /v1/vms/{name}/disks`: the guest's name of the new disk (null for a stopped VM) and the VM. */
export interface DiskAttachResult {
  device: string | null;
  vm: VmInfo;
}

/** Changes to a VM (`PATCH`): `null` removes an optional field. CPU weight and cap apply at once. */
export interface VmPatch {
  /** Applies to a running VM at once (the guest agent brings vCPUs online or offline), up to the harts it booted with. */
  vcpus?: number;
  /** At the next start (null: the same as `vcpus`). */
  maxVcpus?: number | null;
  /** Applies to a running VM at once, through its balloon (up to the RAM it booted with); a dynamic VM's at its next start. */
  memoryBytes?: number;
  /** At the next start (null: the same as `memoryBytes`). */
  maxMemoryBytes?: number | null;
  /** As in {@link VmCreateInput}; apply to a running VM at once (`static` keeps the memory it has then). */
  memoryPolicy?: 'static' | 'dynamic';
  minMemoryBytes?: number | null;
  memoryBufferPercent?: number | null;
  memoryPriority?: number | null;
  /** Applies to a running VM at once (null: the default, 100). */
  diskWeight?: number | null;
  disks?: Array<{ path: string; readonly?: boolean }>;
  cdrom?: string | null;
  kernel?: string | null;
  initrd?: string | null;
  append?: string | null;
  cpuWeight?: number;
  cpuCap?: number;
  restart?: RestartPolicy;
  /** As in {@link VmCreateInput}; replaces the cards (their MACs stay those of the VM's name). */
  networks?: string[];
  /** As in {@link VmCreateInput}; replaces the published ports. */
  publish?: string[];
  /** As in {@link VmCreateInput} (0 or null: none); applies to a running VM at once. */
  netRateMbit?: number | null;
  /** As in {@link VmCreateInput} (0 or null: none); apply to a running VM at once. */
  diskIops?: number | null;
  diskBps?: number | null;
  /** As in {@link VmCreateInput}; replaces the keys (null: no SSH access); keys are added at the next boot. */
  sshKeys?: string[] | null;
  /** As in {@link VmCreateInput} (null: the default); at the next start. */
  engine?: EngineKind | null;
}

/** A VM as the API shows it. */
export interface VmInfo {
  name: string;
  state: VmState;
  definition: VmDefinition;
  pid: number | null;
  startedAt: number | null;
  uptimeSeconds: number | null;
  /** RAM promised to the running process (0 when not running). */
  allocatedMemoryBytes: number;
  restarts: number;
  lastExit: VmExit | null;
  /** The VM's cgroup folder, when enforced. */
  cgroup: string | null;
  /** What the VM process said last (`GET /status`). */
  guest: { state: string; agent: boolean } | null;
  /**
   * A running VM's memory: what it has now (`currentBytes`), the RAM it booted with
   * (`maxBytes`), what its balloon holds, the guest's own figures from the balloon's
   * statistics (null before the first) and the VM process's resident memory on the host.
   * Null when the VM is not running.
   */
  memory: {
    currentBytes: number; maxBytes: number; balloonBytes: number; returnedBytes: number; rssBytes: number;
    guest: { totalBytes?: number; freeBytes?: number; availableBytes?: number; allocStalls?: number; oomKills?: number; atMs: number } | null;
    /** The dynamic policy the VM process applies (absent: static): its guarantee, the ceiling granted now, its buffer. */
    policy?: { minBytes: number; ceilingBytes: number; bufferPercent: number };
  } | null;
  /**
   * SSH access (`vm ssh`), for a VM with keys: the guest user, the host address and port
   * published to its port 22 while it runs (null when stopped), whether the user and sshd
   * are ready (or why not), and the known_hosts file that keeps its host keys.
   */
  ssh: { user: string; host: string; port: number | null; ready: boolean; error?: string; knownHostsFile: string } | null;
  /**
   * What the daemon holds a running VM to while the host disk is contended (its
   * `diskWeight`'s share; src/host/disk-arbiter.ts): requests/s and bytes/s, 0 for none.
   * Null: no share.
   */
  diskShare: { iops: number; bps: number } | null;
  /**
   * A running VM's display: the mode the guest shows now (pixels; null: nothing yet), its
   * VNC server (`host:port` on loopback, null until it listens) and the viewers connected;
   * null when the VM is not running or has no display.
   */
  display: { mode: { width: number; height: number } | null; vnc: string | null; viewers: number } | null;
  /** A running VM's CD-ROM drive: the disc in it (null: empty) and whether the guest holds the tray locked; null when not running. */
  cdrom: { path: string | null; locked: boolean } | null;
  /** Totals since the VM was created: CPU, memory, disk and network (`rx`: to the guest). */
  usage: { cpuSeconds: number; memoryGiBSeconds: number } & IoCounters;
  log: string;
}

/** `GET /v1/host`. */
export interface HostInfo {
  cores: number;
  memoryBytes: number;
  overcommit: number;
  memory: MemoryBudget;
  vcpusAllocated: number;
  vms: { defined: number; running: number };
  cgroup: { version: CgroupVersion; root: string; warning: string | null };
  warnings: string[];
  daemon: { pid: number; startedAt: number; home: string };
}

/** One row of `tsvisor top`. Rates are averaged over the last few seconds. */
export interface TopRow {
  name: string;
  state: VmState;
  pid: number | null;
  vcpus: number;
  /** CPU use in percent of one host core. */
  cpuPercent: number;
  /** The guest's memory now (0 when not running). */
  memoryBytes: number;
  /** What it is guaranteed (a dynamic VM's minimum, another's memory; 0 when not running) and the RAM it boots with. */
  guaranteedMemoryBytes: number;
  maxMemoryBytes: number;
  /** The guest's MemAvailable from its balloon statistics (null before the first, or when not running). */
  guestAvailableBytes: number | null;
  /** The VM process's resident memory on the host. */
  rssBytes: number | null;
  diskReadBytesPerSec: number;
  diskWrittenBytesPerSec: number;
  /** Network traffic of all the VM's cards; `rx` is what the guest received. */
  netRxBytesPerSec: number;
  netTxBytesPerSec: number;
  netRxPacketsPerSec: number;
  netTxPacketsPerSec: number;
  cpuSeconds: number;
}

/** `GET /v1/usage`. */
export interface UsageReport {
  at: number;
  vms: Array<{ name: string; deleted: boolean; since: number; updatedAt: number; cpuSeconds: number; memoryGiBSeconds: number } & IoCounters>;
}
