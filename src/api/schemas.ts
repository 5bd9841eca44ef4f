/**
 * The REST API's request and response shapes, as zod schemas: request bodies are
 * validated with them, and the OpenAPI document (openapi.ts) is generated from them,
 * so the two cannot drift apart.
 */
import { z } from 'zod';
import { MAX_HARTS, MAX_RAM_BYTES } from '../engine/layout.js';
import { MAX_NET_RATE_MBIT } from '../vmm/network.js';
import { MAX_DISK_LIMIT } from '../vmm/vm-config.js';

const MiB = 1024 * 1024;

/** A VM name (also the guest's host name). */
export const VmName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'use 1-63 of a-z, 0-9 and -, starting with a letter or digit')
  .meta({ description: 'VM name, also the guest host name', example: 'web-1' });

const RestartPolicy = z.enum(['no', 'on-failure', 'always'])
  .meta({ description: 'restart when the VM process ends by itself: never, after a crash, or always' });

const Disk = z.strictObject({
  path: z.string().min(1).meta({ description: 'disk image on the host, raw or qcow2 (format detected; absolute path)' }),
  readonly: z.boolean().optional(),
});

const memoryBytes = z.number().int().positive('must be positive').min(64 * MiB, 'at least 64 MiB is needed to boot Linux')
  .max(MAX_RAM_BYTES, `at most ${Math.floor(MAX_RAM_BYTES / MiB)} MiB per VM`).refine((n) => n % MiB === 0, 'must be a whole number of MiB')
  .meta({ description: 'guest RAM in bytes (a multiple of 1 MiB)', example: 268435456 });
const maxMemoryBytes = z.number().int().positive('must be positive').min(64 * MiB, 'at least 64 MiB')
  .max(MAX_RAM_BYTES, `at most ${Math.floor(MAX_RAM_BYTES / MiB)} MiB per VM`).refine((n) => n % MiB === 0, 'must be a whole number of MiB')
  .meta({ description: 'RAM the guest boots with, at least memoryBytes; the balloon holds the difference, so the memory can grow up to it while the VM runs (default memoryBytes)', example: 2147483648 });
const memoryPolicy = z.enum(['static', 'dynamic']).meta({ description: 'dynamic: the memory follows the guest\'s needs between minMemoryBytes and maxMemoryBytes (balloon), starting at memoryBytes; static (default): it moves only when asked' });
const minMemoryBytes = z.number().int().min(64 * MiB, 'at least 64 MiB').refine((n) => n % MiB === 0, 'must be a whole number of MiB')
  .meta({ description: 'a dynamic VM\'s guaranteed memory (what admission reserves), at most memoryBytes; default min(memoryBytes, 256 MiB)' });
const memoryBufferPercent = z.number().int().min(5).max(200).meta({ description: 'a dynamic VM\'s free memory above its working set, percent of it (default 20)' });
const diskWeight = z.number().int().min(1).max(10000).meta({ description: 'the VM\'s share of a contended host disk (default 100), as cgroup io.weight: while VMs keep the disk busy, each gets requests and bytes per second in proportion' });
const memoryPriority = z.number().int().min(0).max(100).meta({ description: 'a dynamic VM\'s claim when memory is short (default 50): higher gets memory first and gives it back last' });
const vcpus = z.number().int().min(1, 'at least 1').max(MAX_HARTS, `at most ${MAX_HARTS}`).meta({ description: 'number of vCPUs (harts)' });
const maxVcpus = z.number().int().min(1, 'at least 1').max(MAX_HARTS, `at most ${MAX_HARTS}`).meta({ description: 'harts the guest boots with, at least vcpus; vcpus can go up to it while the VM runs (default vcpus)' });
const cpuWeight = z.number().int().min(1).max(10000).meta({ description: 'relative CPU weight (default 100), kernel-enforced' });
const engine = z.enum(['jit', 'interp']).meta({ description: 'how the vCPUs run guest code: jit (hot code translated to wasm, the default) or interp (the interpreter alone)' });
const netRateMbit = z.number().min(0).max(MAX_NET_RATE_MBIT).meta({ description: 'bandwidth cap of each network card in Mbit/s, each way (token bucket); 0 = none', example: 100 });
const diskLimit = (what: string) => z.number().int().min(0).max(MAX_DISK_LIMIT).meta({ description: `${what} per second for all the VM's disks together (token bucket); 0 = none` });
const sshKeys = z.array(z.string().min(1).max(16384)).min(1).max(32).meta({ description: 'OpenSSH public keys (lines of id_*.pub) for the guest\'s default user, who has sudo; vm ssh logs in as it through a loopback port published at each start (needs a user-mode card)' });
const cpuCap = z.number().int().min(0).meta({ description: 'CPU cap in percent of one host core; 0 = none' });

/** A shared folder (virtio-9p). */
export const Share = z.strictObject({
  path: z.string().min(1).refine((p) => p.startsWith('/') && !p.includes('\0'), 'must be an absolute path')
    .meta({ description: 'the folder on the daemon\'s host', example: '/srv/share' }),
  tag: z.string().regex(/^[A-Za-z0-9_.-]{1,31}$/, 'a tag is 1 to 31 letters, digits, "_", "-" or "."')
    .meta({ description: 'the mount tag; the guest mounts it on /mnt/TAG (mount -t 9p -o trans=virtio,version=9p2000.L TAG DIR)', example: 'data' }),
  readonly: z.boolean().optional().meta({ description: 'refuse every change from the guest (default false)' }),
}).meta({ id: 'Share' });

/** `POST /v1/vms`. */
export const VmCreateBody = z.strictObject({
  name: VmName,
  vcpus: vcpus.optional(),
  maxVcpus: maxVcpus.optional(),
  memoryBytes: memoryBytes.optional(),
  maxMemoryBytes: maxMemoryBytes.optional(),
  memoryPolicy: memoryPolicy.optional(),
  minMemoryBytes: minMemoryBytes.optional(),
  memoryBufferPercent: memoryBufferPercent.optional(),
  memoryPriority: memoryPriority.optional(),
  diskWeight: diskWeight.optional(),
  disks: z.array(Disk).max(7).optional(),
  cdrom: z.string().min(1).optional().meta({ description: 'ISO 9660 image in the CD-ROM drive (virtio-scsi; the guest\'s /dev/sr0), opened read-only' }),
  shares: z.array(Share).max(3).optional().meta({ description: 'host folders shared into the guest (virtio-9p 9P2000.L), mounted on /mnt/TAG' }),
  kernel: z.string().min(1).optional().meta({ description: 'RISC-V Linux Image; default: the default image' }),
  initrd: z.string().min(1).optional(),
  append: z.string().optional().meta({ description: 'extra kernel command-line arguments' }),
  cpuWeight: cpuWeight.optional(),
  cpuCap: cpuCap.optional(),
  restart: RestartPolicy.optional(),
  image: z.enum(['debian']).optional().meta({ description: 'make the VM from a system image: its own copy-on-write overlay of the image is its first disk, booted through its firmware' }),
  diskSizeBytes: z.number().int().positive().optional().meta({ description: 'with image: size of the system disk in bytes (default: the image\'s); the guest grows its root file system to fill it' }),
  bootDisk: z.string().min(1).optional().meta({ description: 'the VM\'s own system disk on the host (raw or qcow2, absolute path, written in place): its first disk, booted through the firmware from the kernel in its /boot' }),
  networks: z.array(z.string().min(1)).max(7).optional().meta({ description: 'network cards: "user" (NAT through passt, no root needed), a virtual network\'s name, "tap:IFNAME" (an existing tap device), or "none" alone; default one "user" card', example: ['user'] }),
  publish: z.array(z.string().min(1)).max(64).optional().meta({ description: 'host ports forwarded into the guest through its user-mode card, as docker -p: [HOST_IP:]HOST_PORT:GUEST_PORT[/udp]', example: ['8080:80'] }),
  netRateMbit: netRateMbit.optional(),
  diskIops: diskLimit('disk requests').optional(),
  diskBps: diskLimit('disk bytes').optional(),
  sshKeys: sshKeys.optional(),
  cloudInit: z.strictObject({
    userData: z.string().max(1 << 20).meta({ description: 'user-data: #cloud-config YAML or a #! script' }),
    metaData: z.string().max(1 << 20).optional().meta({ description: 'meta-data YAML (instance-id, local-hostname); default: a fresh instance-id and the VM\'s name' }),
  }).optional().meta({ description: 'first-boot configuration: a NoCloud seed disc (label cidata) built from these and put in the CD-ROM drive; applied at first boot (hostname, users, SSH keys, packages, write_files, runcmd)' }),
  engine: engine.optional(),
  vramBytes: z.number().int().min(0).max(1024 * 1024 * 1024).optional().meta({ description: 'graphics memory of the display (virtio-gpu) in bytes: what the guest\'s screen buffers may take (default 16 MiB; 0: no display)' }),
  resolution: z.string().regex(/^\d{2,5}x\d{2,5}$/, 'expected WIDTHxHEIGHT').optional().meta({ description: 'the display\'s preferred mode (default 1280x800)', example: '1920x1080' }),
}).meta({ id: 'VmCreate' });

/** `PATCH /v1/vms/{name}`: `null` removes an optional field. */
export const VmPatchBody = z.strictObject({
  vcpus: vcpus.optional().meta({ description: 'number of vCPUs; a running VM brings them online or offline at once (guest agent), up to the harts it booted with' }),
  maxVcpus: maxVcpus.nullable().optional(),
  memoryBytes: memoryBytes.optional().meta({ description: 'guest memory in bytes (a multiple of 1 MiB); a running VM\'s balloon moves to it at once, up to the RAM it booted with' }),
  maxMemoryBytes: maxMemoryBytes.nullable().optional(),
  memoryPolicy: memoryPolicy.optional(),
  minMemoryBytes: minMemoryBytes.nullable().optional(),
  memoryBufferPercent: memoryBufferPercent.nullable().optional(),
  memoryPriority: memoryPriority.nullable().optional(),
  diskWeight: diskWeight.nullable().optional(),
  disks: z.array(Disk).max(7).optional(),
  cdrom: z.string().min(1).nullable().optional(),
  kernel: z.string().min(1).nullable().optional(),
  initrd: z.string().min(1).nullable().optional(),
  append: z.string().nullable().optional(),
  cpuWeight: cpuWeight.optional(),
  cpuCap: cpuCap.optional(),
  restart: RestartPolicy.optional(),
  networks: z.array(z.string().min(1)).max(7).optional().meta({ description: 'network cards: "user" (NAT through passt, no root needed), a virtual network\'s name, "tap:IFNAME" (an existing tap device), or "none" alone; default one "user" card', example: ['user'] }),
  publish: z.array(z.string().min(1)).max(64).optional().meta({ description: 'host ports forwarded into the guest through its user-mode card, as docker -p: [HOST_IP:]HOST_PORT:GUEST_PORT[/udp]', example: ['8080:80'] }),
  netRateMbit: netRateMbit.nullable().optional(),
  diskIops: diskLimit('disk requests').nullable().optional(),
  diskBps: diskLimit('disk bytes').nullable().optional(),
  sshKeys: sshKeys.nullable().optional(),
  engine: engine.nullable().optional(),
}).meta({ id: 'VmPatch', description: 'CPU weight and cap, memory, vCPUs (up to their maxima), the memory policy, disk limits and weight and the network rate apply to a running VM at once; the rest at its next start' });

/** `POST /v1/networks`. */
export const NetworkCreateBody = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, 'use 1-31 of a-z, 0-9 and -, starting with a letter').meta({ description: 'network name, also its DNS domain', example: 'lan' }),
  subnet: z.string().optional().meta({ description: 'IPv4 subnet in CIDR notation, prefix 16-29 (default: the first free 10.97.N.0/24)', example: '10.97.0.0/24' }),
}).meta({ id: 'NetworkCreate' });

/** A network (`GET /v1/networks/{name}`). */
export const NetworkSchema = z.object({
  name: z.string(), subnet: z.string(), createdAt: z.number(),
  address: z.string().meta({ description: 'the network\'s own address: its DHCP and DNS server' }),
  ports: z.array(z.object({
    vm: z.string(), mac: z.string(), rxFrames: z.number(), rxBytes: z.number(), txFrames: z.number(), txBytes: z.number(),
    droppedSpoofed: z.number(), droppedFlood: z.number(), droppedCongested: z.number(), droppedOther: z.number(),
  })).meta({ description: 'connected cards; rx is from the VM, tx to it' }),
}).meta({ id: 'Network' });

/** `POST /v1/vms/{name}/stop` and `/restart` (body optional). */
/** `POST /v1/vms/{name}/disks/{disk}/resize`. */
export const DiskResizeBody = z.strictObject({
  sizeBytes: z.number().int().positive().refine((n) => n % 512 === 0, 'must be a multiple of 512')
    .meta({ description: 'the new size in bytes, at least the current one (disks only grow)', example: 2147483648 }),
}).meta({ id: 'DiskResize' });

/** `POST /v1/vms/{name}/disks`. */
export const DiskAttachBody = z.strictObject({
  path: z.string().min(1).refine((p) => p.startsWith('/') && !p.includes('\0'), 'must be an absolute path')
    .meta({ description: 'the disk image (raw or qcow2) on the daemon\'s host', example: '/srv/disks/data.qcow2' }),
  readonly: z.boolean().optional().meta({ description: 'attach it read-only (default false)' }),
}).meta({ id: 'DiskAttach' });

/** `POST /v1/vms/{name}/send-key`. */
export const SendKeyBody = z.strictObject({
  keys: z.array(z.string().min(1).max(32)).min(1).max(16).meta({ description: 'keys pressed together, then released: Linux names (KEY_LEFTCTRL, KEY_C) or codes', example: ['KEY_LEFTCTRL', 'KEY_C'] }),
}).meta({ id: 'SendKey' });

/** `POST /v1/daemon/web`: open the web console's TCP listener. */
export const WebBody = z.object({
  listen: z.string().optional().meta({ description: 'HOST:PORT (default 127.0.0.1:8006, or any free port when that is taken)', example: '127.0.0.1:8006' }),
}).strict().meta({ id: 'Web' });

/** `POST /v1/session`: the web console's login. */
export const SessionBody = z.object({
  token: z.string().min(1).max(256).meta({ description: 'the daemon\'s bearer token ($TSVISOR_HOME/token)' }),
}).strict().meta({ id: 'Session' });

/** `POST /v1/vms/{name}/cdrom`. */
export const CdromInsertBody = z.strictObject({
  path: z.string().min(1).refine((p) => p.startsWith('/') && !p.includes('\0'), 'must be an absolute path')
    .meta({ description: 'the ISO 9660 image on the daemon\'s host, opened read-only', example: '/srv/iso/tools.iso' }),
}).meta({ id: 'CdromInsert' });

export const StopBody = z.strictObject({
  timeoutMs: z.number().int().min(0).max(3_600_000).optional()
    .meta({ description: 'graceful shutdown time before the VM process is killed (default 30000)' }),
}).meta({ id: 'StopOptions' });

/** `POST /v1/vms/{name}/exec`. */
export const ExecBody = z.strictObject({
  argv: z.array(z.string()).min(1).meta({ description: 'program and arguments', example: ['uname', '-n'] }),
  stdin: z.string().optional().meta({ description: 'standard input, base64' }),
}).meta({ id: 'ExecRequest' });

// ------------------------------------------------------------------ responses (documentation)

const VmDefinition = z.object({
  name: VmName, vcpus: z.number().int(), maxVcpus: z.number().int().optional(), memoryBytes: z.number().int(), maxMemoryBytes: z.number().int().optional(),
  memoryPolicy: z.literal('dynamic').optional(), minMemoryBytes: z.number().int().optional(), memoryBufferPercent: z.number().int().optional(), memoryPriority: z.number().int().optional(),
  disks: z.array(z.object({ path: z.string(), readonly: z.boolean() })),
  cdrom: z.string().optional(), kernel: z.string().optional(), initrd: z.string().optional(), append: z.string().optional(),
  cpuWeight: z.number().int(), cpuCap: z.number().int(), restart: RestartPolicy,
  nics: z.array(z.object({ kind: z.enum(['user', 'network', 'tap']), mac: z.string(), network: z.string().optional(), ifname: z.string().optional() })).optional().meta({ description: 'network cards, in order (eth0, eth1, ...)' }),
  publish: z.array(z.object({ hostIp: z.string().optional(), hostPort: z.number().int(), guestPort: z.number().int(), protocol: z.enum(['tcp', 'udp']) })).optional(),
  netRateMbit: z.number().optional().meta({ description: 'bandwidth cap of each network card, Mbit/s each way' }),
  diskIops: z.number().optional(), diskBps: z.number().optional(), diskWeight: z.number().int().optional(),
  ssh: z.object({ user: z.string(), keys: z.array(z.string()) }).optional().meta({ description: 'the guest\'s default user and its public keys' }),
  engine: engine.optional(),
  createdAt: z.number().meta({ description: 'ms since the Unix epoch' }),
}).meta({ id: 'VmDefinition' });

const VmState = z.enum(['stopped', 'starting', 'running', 'paused', 'stopping', 'crashed']).meta({ id: 'VmState' });

const UsageTotals = z.object({
  cpuSeconds: z.number(), memoryGiBSeconds: z.number(), diskReadBytes: z.number(), diskWrittenBytes: z.number(),
  netRxBytes: z.number().meta({ description: 'bytes the guest received (Ethernet frames, all cards)' }), netTxBytes: z.number(),
  netRxPackets: z.number(), netTxPackets: z.number(),
});

/** A VM (`GET /v1/vms/{name}`). */
export const VmInfoSchema = z.object({
  name: VmName,
  state: VmState,
  definition: VmDefinition,
  pid: z.number().int().nullable(),
  startedAt: z.number().nullable(),
  uptimeSeconds: z.number().nullable(),
  allocatedMemoryBytes: z.number(),
  restarts: z.number().int(),
  lastExit: z.object({
    at: z.number(), code: z.number().int().nullable(), signal: z.string().nullable(),
    reason: z.enum(['poweroff', 'requested', 'crash']),
  }).nullable(),
  cgroup: z.string().nullable(),
  guest: z.object({ state: z.string(), agent: z.boolean() }).nullable(),
  memory: z.object({
    currentBytes: z.number(), maxBytes: z.number().meta({ description: 'the RAM the guest booted with' }),
    balloonBytes: z.number().meta({ description: 'what the guest\'s balloon driver holds' }),
    returnedBytes: z.number().meta({ description: 'guest memory given back to the host since the guest booted (ballooned and reported free pages)' }),
    rssBytes: z.number().meta({ description: 'the VM process\'s resident memory on the host' }),
    guest: z.object({
      totalBytes: z.number().optional(), freeBytes: z.number().optional(), availableBytes: z.number().optional(),
      allocStalls: z.number().optional(), oomKills: z.number().optional(), atMs: z.number(),
    }).nullable()
      .meta({ description: 'the guest\'s MemTotal, MemFree and MemAvailable, allocation stalls and OOM kills, from the balloon\'s statistics' }),
    policy: z.object({ minBytes: z.number(), ceilingBytes: z.number(), bufferPercent: z.number() }).optional()
      .meta({ description: 'a dynamic VM\'s guarantee, the ceiling granted to it now and its buffer' }),
  }).nullable().meta({ description: 'a running VM\'s memory; null when it is not running' }),
  cdrom: z.object({ path: z.string().nullable(), locked: z.boolean() }).nullable()
    .meta({ description: 'a running VM\'s CD-ROM drive: the disc in it (null: empty) and whether the guest holds the tray locked (a mounted disc); null when not running' }),
  display: z.object({
    mode: z.object({ width: z.number().int(), height: z.number().int() }).nullable().meta({ description: 'the mode the guest shows now (pixels); null: nothing yet' }),
    vnc: z.string().nullable().meta({ description: 'the VNC server, host:port on loopback (RFB 3.8, no password)', example: '127.0.0.1:5900' }),
    viewers: z.number().int().meta({ description: 'VNC viewers connected now' }),
  }).nullable().meta({ description: 'a running VM\'s display; null when it is not running or has none' }),
  diskShare: z.object({ iops: z.number(), bps: z.number() }).nullable()
    .meta({ description: 'what the daemon holds a running VM to while the host disk is contended (by diskWeight): requests/s and bytes/s, 0 for none; null: no share' }),
  ssh: z.object({
    user: z.string(), host: z.string(), port: z.number().int().nullable().meta({ description: 'host port published to the guest\'s port 22 while it runs' }),
    ready: z.boolean(), error: z.string().optional(), knownHostsFile: z.string(),
  }).nullable().meta({ description: 'SSH access (tsvisor vm ssh); null without keys' }),
  usage: UsageTotals,
  log: z.string().meta({ description: 'the VM process log file' }),
}).meta({ id: 'Vm' });

/** `GET /v1/host`. */
export const HostInfoSchema = z.object({
  cores: z.number().int(),
  memoryBytes: z.number(),
  overcommit: z.number(),
  memory: z.object({
    capacityBytes: z.number(), overcommit: z.number(), limitBytes: z.number(), allocatedBytes: z.number(), freeBytes: z.number(),
  }),
  vcpusAllocated: z.number().int(),
  vms: z.object({ defined: z.number().int(), running: z.number().int() }),
  cgroup: z.object({ version: z.enum(['v1', 'v2', 'none']), root: z.string(), warning: z.string().nullable() }),
  warnings: z.array(z.string()),
  daemon: z.object({ pid: z.number().int(), startedAt: z.number(), home: z.string() }),
}).meta({ id: 'Host' });

/** `GET /v1/usage`. */
export const UsageReportSchema = z.object({
  at: z.number(),
  vms: z.array(UsageTotals.extend({ name: z.string(), deleted: z.boolean(), since: z.number(), updatedAt: z.number() })),
}).meta({ id: 'Usage' });

/** `GET /v1/top`. */
export const TopSchema = z.object({
  at: z.number(),
  vms: z.array(z.object({
    name: z.string(), state: VmState, pid: z.number().int().nullable(), vcpus: z.number().int(),
    cpuPercent: z.number().meta({ description: 'percent of one host core, over the last ~3 s' }),
    memoryBytes: z.number(), guaranteedMemoryBytes: z.number(), maxMemoryBytes: z.number(), guestAvailableBytes: z.number().nullable(), rssBytes: z.number().nullable(),
    diskReadBytesPerSec: z.number(), diskWrittenBytesPerSec: z.number(),
    netRxBytesPerSec: z.number().meta({ description: 'received by the guest' }), netTxBytesPerSec: z.number(),
    netRxPacketsPerSec: z.number(), netTxPacketsPerSec: z.number(), cpuSeconds: z.number(),
  })),
}).meta({ id: 'Top' });

/** Every error answer. */
export const ErrorSchema = z.object({
  error: z.object({
    code: z.string().meta({ example: 'not_found' }),
    message: z.string().meta({ example: 'no VM named web-1' }),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
}).meta({ id: 'Error' });

/** One line of the exec stream (newline-delimited JSON). */
export const ExecEventSchema = z.union([
  z.object({ stream: z.enum(['stdout', 'stderr']), data: z.string().meta({ description: 'base64' }) }),
  z.object({ exit: z.number().int() }),
  z.object({ error: z.string() }),
]).meta({ id: 'ExecEvent' });

/** A one-line description of the first problem zod found. */
export function describeZodError(err: z.ZodError): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid request body';
  const where = issue.path.length ? issue.path.join('.') : 'body';
  if (issue.code === 'unrecognized_keys') return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  return `${where}: ${issue.message}`;
}
