/**
 * The control channel of one VM process: HTTP/1.1 over the Unix socket
 * `<vmDir>/vm.sock` (owner-only), JSON bodies. The host daemon is its client.
 * Nothing here knows that more than one VM exists.
 *
 *   GET  /status                 -> VmProcessStatus
 *   POST /stop    {timeoutMs?}   -> 202; asks the guest to power off (guest agent), forces after timeoutMs (default 30000)
 *   POST /kill                   -> 202; exits at once
 *   POST /pause                  -> 200; all harts park, guest time stops advancing for the harts
 *   POST /resume                 -> 200
 *   POST /net-rate {mbit}        -> 200; sets the bandwidth cap of every network card (Mbit/s each way, 0: none)
 *   POST /cpus    {count}        -> 200 once the guest agent brought vCPUs 1..count-1 online and the rest
 *                                   offline; 400 beyond the harts it booted with, 409 without an agent
 *   POST /disk-resize {index, bytes} -> 200; grows disk `index` (not the CD-ROM) to `bytes` (a multiple of 512)
 *                                   and tells the guest (virtio-blk configuration change); 400 when it cannot
 *   POST /disk-attach {path, readonly?} -> 200 {device, status}; attaches the image at `path` to the running
 *                                   guest (a spare virtio slot, bound by the guest agent); `device` is the
 *                                   guest's name of it (`vdc`); 400 bad image or already attached, 409 not now
 *   POST /disk-detach {path, force?} -> 200; detaches the disk of image `path` (not the CD-ROM) once the guest let it go;
 *                                   409 while the guest uses it (mounted, swap, held) unless `force`
 *   POST /cdrom {path | null, force?} -> 200; puts the ISO image at `path` in the CD-ROM drive (the guest is told),
 *                                   or (null) takes the disc out; 409 while the guest holds the tray locked unless `force`
 *   POST /disk-rate {iops, bps}  -> 200; sets the VM's disk I/O limits (requests/s and bytes/s for all disks, 0: none)
 *   POST /disk-share {iops, bps} -> 200; sets the VM's share of a contended host disk (the daemon's, by --disk-weight;
 *                                   0: none); the smaller of it and the limits above is in force
 *   POST /memory  {bytes}        -> 200; moves the balloon so that the guest has `bytes` of RAM (whole MiB,
 *                                   at most the RAM it booted with); 409 when the guest cannot give that much
 *   POST /memory-policy {minBytes, ceilingBytes, bufferPercent} | {} -> 200; puts the memory under the dynamic
 *                                   policy (vmm/memory-policy.ts) with these figures, or ({}) takes it off
 *   GET  /vnc                    -> HTTP upgrade ("Upgrade: rfb"): an RFB 3.8 connection to the VNC server (vnc/server.ts);
 *                                   409 without a display
 *   GET  /console                -> HTTP upgrade ("Upgrade: tsvisor-console"): raw byte stream both ways;
 *                                   the server first sends the scrollback (last 64 KiB of console.log)
 *   POST /exec    {argv: string[], stdin?: string (base64)}
 *                                -> 200, body = newline-delimited JSON ExecEvent objects, streamed as they come
 *
 * Errors are JSON `{ "error": { "code": string, "message": string } }` with a 4xx/5xx status.
 */
import type { MemoryPolicy } from './memory-policy.js';
import type { CdromStatus } from './cdrom.js';

/** `GET /status`. Sizes in bytes, times in ms since the Unix epoch. */
export interface VmProcessStatus {
  name: string;
  pid: number;
  state: 'booting' | 'running' | 'paused' | 'stopping';
  /** vCPUs online in the guest (what was last asked), and the harts of the board. */
  vcpus: number;
  maxVcpus: number;
  /** The guest's current memory (the RAM it booted with, less the balloon's target). */
  memoryBytes: number;
  /** Memory and the balloon; see {@link VmMemoryStatus}. */
  memory: VmMemoryStatus;
  startedAt: number;
  /** Guest agent answering (exec available). */
  agent: boolean;
  /** Per disk, its size and the bytes the guest read and wrote. */
  disks: Array<{ path: string; sizeBytes: number; readBytes: number; writtenBytes: number }>;
  /** The CD-ROM drive: the ISO image in it (null: empty), and whether the guest holds the tray locked (a mounted disc). */
  cdrom?: CdromStatus;
  /**
   * Per network card (guest order): where it is attached (`user` or the virtual network's
   * name), its MAC, frames and Ethernet bytes delivered to (`rx`) and sent by (`tx`) the
   * guest since the VM process started, and frames dropped since the guest last booted
   * (`rxDropped`: no room or too large; `txDropped`: runt, oversize or malformed).
   */
  nics: Array<{ network: string; mac: string; rxBytes: number; rxPackets: number; txBytes: number; txPackets: number; rxDropped: number; txDropped: number }>;
  /** The cap of each card, Mbit/s each way; 0: none. */
  netRateMbit: number;
  /**
   * Disk I/O of the VM (all disks): the user's limits per second (0: none), how often a
   * request had to wait, the share of a contended host disk the daemon set (`--disk-weight`;
   * 0: none), and what was metered since the process started (requests, bytes, ms served, ms waited).
   */
  diskRate: { iops: number; bps: number; throttled: number; share: { iops: number; bps: number }; ops: number; bytes: number; serviceMs: number; waitMs: number };
  /**
   * SSH access (`vm ssh`): the host loopback port published to the guest's port 22, and
   * whether the default user and sshd are ready (or why not). Null: the VM has none.
   */
  ssh: { port: number; ready: boolean; error?: string } | null;
  /**
   * The display (null: none): the mode the guest shows now (pixels; null: nothing yet), the
   * VNC server's loopback port and the viewers connected.
   */
  display: { mode: { width: number; height: number } | null; vncPort: number | null; viewers: number } | null;
}

/**
 * A running VM's memory, in bytes. `maxBytes` is the RAM the guest booted with (its
 * device tree); the balloon holds `maxBytes - currentBytes` once the guest has caught up
 * (`balloonBytes` is what its driver says it holds). `guest` is the guest's own view from
 * the balloon's statistics (null before the driver sent any), `atMs` when it was taken.
 * `rssBytes` is the VM process's resident memory on the host.
 */
export interface VmMemoryStatus {
  currentBytes: number;
  maxBytes: number;
  balloonBytes: number;
  /** Bytes the host got back from the guest since it booted (inflated and reported free pages). */
  returnedBytes: number;
  guest: { totalBytes?: number; freeBytes?: number; availableBytes?: number; cachesBytes?: number; oomKills?: number; allocStalls?: number; atMs: number } | null;
  rssBytes: number;
  /** The dynamic policy in force (absent: the memory moves only when asked). */
  policy?: MemoryPolicy;
}

/** One line of a `POST /exec` response body. `data` is base64. */
export type ExecEvent =
  | { stream: 'stdout' | 'stderr'; data: string }
  | { exit: number }
  | { error: string };
