/**
 * The CLI of the host daemon: `tsvisor vm ...`, `host info`, `usage`, `top` and
 * `daemon start|stop|status`. Every command is a call of the REST API; the daemon is
 * started on first use when none answers on the local socket.
 */
import { linuxKeyCode } from '../devices/input-keys.js';
import { parseShareSpec, ShareConfigError, type ShareDefinition } from '../vmm/shares.js';
import { DEFAULT_BUFFER_PERCENT, defaultMinMemory } from '../vmm/memory-policy.js';
import { DEFAULT_MEMORY_PRIORITY } from '../host/memory-balancer.js';
import type { NetworkInfo } from '../host/network-manager.js';
import { formatPublish, nicAttachment, parseNetRate } from '../vmm/network.js';
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { ENGINE_KINDS } from '../engine/hart.js';
import { ApiClient, ApiClientError, apiTarget, parseListen, pingSocket, readJsonAnswer } from '../api/client.js';
import { DEFAULT_DISK_WEIGHT } from '../host/disk-arbiter.js';
import type { DiskAttachResult, HostInfo, TopRow, UsageReport, VmInfo } from '../host/api-types.js';
import { hostPaths, type HostPaths } from '../host/paths.js';
import type { RestartPolicy } from '../host/types.js';
import { UsageError } from './errors.js';
import { readFileArg } from './files.js';
import { DEFAULT_PUBLIC_KEYS, readSshKeys, runSsh } from './ssh.js';
import { DEFAULT_SSH_USER } from '../vmm/guest-setup.js';
import { parseDiskSpec } from './run.js';
import { formatSize, parseSize, parseVram } from './size.js';
import { DEFAULT_RESOLUTION, DEFAULT_VRAM_BYTES } from '../vmm/display.js';
import { DEBIAN_IMAGE_NAME } from '../images/index.js';
import { VM_NODE_FLAGS } from '../vmm/node-flags.js';
import { ensureDebianImage } from '../vmm/debian-build.js';

/** `bin/tsvisor.js` (this file runs as dist/src/cli/host-commands.js). */
const TSVISOR_BIN = fileURLToPath(new URL('../../../bin/tsvisor.js', import.meta.url));

const out = (s: string) => process.stdout.write(s);

// ------------------------------------------------------------------ connection

/**
 * Start a daemon in the background (`tsvisor daemon start --foreground ARGS`, output
 * appended to `$TSVISOR_HOME/daemon.log`) and wait until it answers on its socket.
 */
export async function spawnDaemon(paths: HostPaths, args: string[] = [], timeoutMs = 20_000): Promise<void> {
  mkdirSync(paths.home, { recursive: true, mode: 0o700 });
  const fd = openSync(paths.daemonLog, 'a', 0o600);
  const child = spawn(process.execPath, [...VM_NODE_FLAGS, TSVISOR_BIN, 'daemon', 'start', '--foreground', ...args], {
    detached: true, stdio: ['ignore', fd, fd], env: process.env, cwd: paths.home,
  });
  closeSync(fd);
  let exited: number | null = null;
  child.on('exit', (code) => { exited = code ?? -1; });
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pingSocket(paths.socket, 1000)) return;
    if (exited !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (await pingSocket(paths.socket, 1000)) return; // another daemon won the race
  let tail = '';
  try {
    const lines = readFileSync(paths.daemonLog, 'utf8').trim().split('\n');
    tail = lines[lines.length - 1] ?? '';
  } catch { /* no log */ }
  throw new Error(`the tsvisor daemon did not start${exited !== null ? ` (exit status ${exited})` : ''}${tail ? `: ${tail.replace(/^\S+Z /, '')}` : ''} (log: ${paths.daemonLog})`);
}

/** An API client; on the local socket, starts the daemon first if none answers. */
export async function connect(autostart = true): Promise<ApiClient> {
  const paths = hostPaths();
  const target = apiTarget(paths);
  if ('socket' in target && !(await pingSocket(target.socket))) {
    if (!autostart) throw new Error(`the tsvisor daemon is not running (socket ${target.socket})`);
    await spawnDaemon(paths);
  }
  return new ApiClient(target);
}

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const c = await connect();
  try {
    return await c.call<T>(method, path, body);
  } catch (e) {
    if (e instanceof ApiClientError) throw e;
    throw new Error(`cannot reach the tsvisor daemon: ${(e as Error).message}`);
  }
}

const vmPath = (name: string, action?: string) => `/v1/vms/${encodeURIComponent(name)}${action ? `/${action}` : ''}`;

// ------------------------------------------------------------------ formatting

function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  ').trimEnd() + '\n';
  return line(header) + rows.map(line).join('');
}

function duration(s: number | null): string {
  if (s === null) return '-';
  const t = Math.floor(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/** `vm info`'s line on a running VM's memory: the guest's size and free memory, the balloon, the host RSS. */
function memoryNow(m: NonNullable<VmInfo['memory']>): string {
  const g = m.guest;
  const guest = g?.totalBytes !== undefined ? `guest total ${formatSize(g.totalBytes)}${g.freeBytes !== undefined ? `, free ${formatSize(g.freeBytes)}` : ''}${g.availableBytes !== undefined ? `, available ${formatSize(g.availableBytes)}` : ''}` : 'no guest figures yet';
  return `${guest}; balloon ${formatSize(m.balloonBytes)} of ${formatSize(m.maxBytes)} RAM; host RSS ${formatSize(m.rssBytes)} (${formatSize(m.returnedBytes)} given back)`;
}

/** `vm info`'s line on a dynamic VM's policy: guarantee, buffer, priority, and the ceiling granted now. */
function memoryPolicyLine(v: VmInfo): string {
  const d = v.definition;
  const p = v.memory?.policy;
  return `dynamic: guaranteed ${formatSize(d.minMemoryBytes ?? defaultMinMemory(d.memoryBytes))}, `
    + `at most ${formatSize(d.maxMemoryBytes ?? d.memoryBytes)}, starts with ${formatSize(d.memoryBytes)}, `
    + `buffer ${d.memoryBufferPercent ?? DEFAULT_BUFFER_PERCENT}%, priority ${d.memoryPriority ?? DEFAULT_MEMORY_PRIORITY}`
    + (p ? `; now ${formatSize(v.memory!.currentBytes)}, may grow to ${formatSize(p.ceilingBytes)}` : '');
}

/** `--share HOSTDIR:TAG[,readonly]` as the API's Share. @throws UsageError for a bad spec. */
function shareSpec(spec: string): ShareDefinition {
  try {
    return parseShareSpec(spec);
  } catch (e) {
    if (e instanceof ShareConfigError) throw new UsageError(e.message);
    throw e;
  }
}

/** `tsvisor vm info` text. */
export function formatVmInfo(v: VmInfo): string {
  const d = v.definition;
  const lines: Array<[string, string]> = [
    ['name', v.name],
    ['state', v.state + (v.guest ? ` (guest ${v.guest.state}${v.guest.agent ? ', agent' : ''})` : '')],
    ['pid', v.pid === null ? '-' : String(v.pid)],
    ['uptime', duration(v.uptimeSeconds)],
    ['vcpus', String(d.vcpus) + (d.maxVcpus ? ` (at most ${d.maxVcpus})` : '')],
    ['memory', formatSize(d.memoryBytes) + (d.maxMemoryBytes ? ` (at most ${formatSize(d.maxMemoryBytes)})` : '')],
    ...(d.memoryPolicy === 'dynamic' ? [['memory policy', memoryPolicyLine(v)] as [string, string]] : []),
    ...(v.memory ? [['memory now', memoryNow(v.memory)] as [string, string]] : []),
    ['engine', d.engine ?? 'jit'],
    ...d.disks.map((k, i): [string, string] => [`disk ${i}`, `${k.path}${k.readonly ? ' (read-only)' : ''}`]),
    ...(v.cdrom ? [['cdrom', v.cdrom.path ? `${v.cdrom.path}${v.cdrom.locked ? ' (mounted in the guest: tray locked)' : ''}` : 'empty'] as [string, string]]
      : d.cdrom ? [['cdrom', d.cdrom] as [string, string]] : []),
    ['display', (d.vramBytes === 0 ? 'none' : `${d.resolution ?? `${DEFAULT_RESOLUTION.width}x${DEFAULT_RESOLUTION.height}`}, ${formatSize(d.vramBytes ?? DEFAULT_VRAM_BYTES)} of graphics memory`)
      + (v.display ? `; showing ${v.display.mode ? `${v.display.mode.width}x${v.display.mode.height}` : 'nothing yet'}` : '')],
    ...(v.display?.vnc ? [['vnc', `vnc://${v.display.vnc} (${v.display.viewers} viewer${v.display.viewers === 1 ? '' : 's'})`] as [string, string]] : []),
    ...(d.shares ?? []).map((s): [string, string] => [`share ${s.tag}`, `${s.path}${s.readonly ? ' (read-only)' : ''} on /mnt/${s.tag}`]),
    ...(d.nics ?? []).map((n, i): [string, string] => [`network ${i}`, `${nicAttachment(n)} (eth${i}, ${n.mac})`]),
    ...(d.publish?.length ? [['published', d.publish.map((p) => `${formatPublish(p)}`).join(', ')] as [string, string]] : []),
    ...(d.image ? [['image', `${d.image.name} (${d.image.key}), booted through ${d.kernel}`] as [string, string]] : [['kernel', d.kernel ?? 'default image'] as [string, string]]),
    ...(d.initrd ? [['initrd', d.initrd] as [string, string]] : []),
    ...(d.append ? [['append', d.append] as [string, string]] : []),
    ...(d.diskIops || d.diskBps ? [['disk limits', `${d.diskIops ? `${d.diskIops} requests/s` : 'any requests/s'}, ${d.diskBps ? `${formatSize(d.diskBps)}/s` : 'any bytes/s'}`] as [string, string]] : []),
    ['disk weight', `${d.diskWeight ?? DEFAULT_DISK_WEIGHT}${v.diskShare ? ` (host disk contended: held to ${v.diskShare.iops ? `${v.diskShare.iops} requests/s` : 'any requests/s'}, ${v.diskShare.bps ? `${formatSize(v.diskShare.bps)}/s` : 'any bytes/s'})` : ''}`],
    ['cpu weight', String(d.cpuWeight)],
    ['cpu cap', d.cpuCap ? `${d.cpuCap}%` : 'none'],
    ...(v.ssh ? [['ssh', `${v.ssh.user}@${v.ssh.host}${v.ssh.port ? `:${v.ssh.port}` : ''} (${v.ssh.ready ? 'ready' : v.ssh.error ?? (v.ssh.port ? 'not ready yet' : 'when running')}; tsvisor vm ssh ${v.name})`] as [string, string]] : []),
    ...(d.nics?.length ? [['net rate', d.netRateMbit ? `${d.netRateMbit} Mbit/s each way` : 'no cap'] as [string, string]] : []),
    ['restart', d.restart + (v.restarts ? ` (${v.restarts} automatic restarts)` : '')],
    ['cgroup', v.cgroup ?? '-'],
    ['last exit', v.lastExit ? `${new Date(v.lastExit.at).toISOString()} ${v.lastExit.reason}${v.lastExit.signal ? ` (signal ${v.lastExit.signal})` : v.lastExit.code !== null ? ` (exit status ${v.lastExit.code})` : ''}` : '-'],
    ['cpu seconds', v.usage.cpuSeconds.toFixed(2)],
    ['memory GiB·s', v.usage.memoryGiBSeconds.toFixed(1)],
    ['disk read', formatSize(v.usage.diskReadBytes)],
    ['disk written', formatSize(v.usage.diskWrittenBytes)],
    ['net received', `${formatSize(v.usage.netRxBytes)} (${v.usage.netRxPackets} packets)`],
    ['net sent', `${formatSize(v.usage.netTxBytes)} (${v.usage.netTxPackets} packets)`],
    ['log', v.log],
  ];
  return lines.map(([k, val]) => `${(k + ':').padEnd(16)}${val}\n`).join('');
}

/** `tsvisor vm list` text. */
export function formatVmList(vms: VmInfo[]): string {
  if (vms.length === 0) return 'no VMs (create one: tsvisor vm create NAME)\n';
  return table(['NAME', 'STATE', 'VCPUS', 'MEMORY', 'PID', 'UPTIME', 'CPU-S', 'WEIGHT', 'CAP'], vms.map((v) => [
    v.name, v.state, String(v.definition.vcpus), formatSize(v.definition.memoryBytes), v.pid === null ? '-' : String(v.pid),
    duration(v.uptimeSeconds), v.usage.cpuSeconds.toFixed(1), String(v.definition.cpuWeight), v.definition.cpuCap ? `${v.definition.cpuCap}%` : '-',
  ]));
}

/** `tsvisor host info` text. */
export function formatHostInfo(h: HostInfo): string {
  const m = h.memory;
  return [
    `cores:          ${h.cores}`,
    `memory:         ${formatSize(h.memoryBytes)}`,
    `overcommit:     ${h.overcommit}`,
    `memory limit:   ${formatSize(m.limitBytes)} (capacity × overcommit)`,
    `allocated:      ${formatSize(m.allocatedBytes)}`,
    `free:           ${formatSize(m.freeBytes)}`,
    `vcpus in use:   ${h.vcpusAllocated}`,
    `VMs:            ${h.vms.running} running, ${h.vms.defined} defined`,
    `cgroup:         ${h.cgroup.version === 'none' ? 'none' : `${h.cgroup.version} (${h.cgroup.root})`}`,
    `daemon:         pid ${h.daemon.pid}, home ${h.daemon.home}`,
    ...h.warnings.map((w) => `warning: ${w}`),
  ].join('\n') + '\n';
}

/** `tsvisor usage` text. */
export function formatUsage(u: UsageReport): string {
  if (u.vms.length === 0) return 'no usage recorded yet\n';
  return table(['NAME', 'CPU-SECONDS', 'MEMORY-GiB·s', 'DISK-READ', 'DISK-WRITTEN', 'NET-RX', 'NET-TX', 'RX-PKTS', 'TX-PKTS', 'SINCE'], u.vms.map((v) => [
    v.name + (v.deleted ? ' (deleted)' : ''), v.cpuSeconds.toFixed(2), v.memoryGiBSeconds.toFixed(1),
    formatSize(v.diskReadBytes), formatSize(v.diskWrittenBytes), formatSize(v.netRxBytes), formatSize(v.netTxBytes),
    String(v.netRxPackets), String(v.netTxPackets), new Date(v.since).toISOString().replace(/\.\d+Z$/, 'Z'),
  ]));
}

/** `tsvisor top` text. */
export function formatTop(rows: TopRow[], host?: HostInfo): string {
  const head = host ? `tsvisor top — ${host.vms.running}/${host.vms.defined} VMs running, memory ${formatSize(host.memory.allocatedBytes)} of ${formatSize(host.memory.limitBytes)} allocated, ${host.cores} cores\n\n` : '';
  if (rows.length === 0) return head + 'no VMs\n';
  return head + table(['NAME', 'STATE', 'PID', 'VCPUS', 'CPU%', 'MEMORY', 'MIN/MAX', 'AVAIL', 'RSS', 'READ/s', 'WRITE/s', 'NET-RX/s', 'NET-TX/s', 'CPU-S'], rows.map((r) => [
    r.name, r.state, r.pid === null ? '-' : String(r.pid), String(r.vcpus), r.cpuPercent.toFixed(1),
    r.memoryBytes ? formatSize(r.memoryBytes) : '-',
    r.guaranteedMemoryBytes ? `${formatSize(r.guaranteedMemoryBytes)}/${formatSize(r.maxMemoryBytes)}` : '-',
    r.guestAvailableBytes === null || r.guestAvailableBytes === undefined ? '-' : formatSize(r.guestAvailableBytes),
    r.rssBytes === null ? '-' : formatSize(r.rssBytes),
    formatSize(Math.round(r.diskReadBytesPerSec)), formatSize(Math.round(r.diskWrittenBytesPerSec)),
    formatSize(Math.round(r.netRxBytesPerSec)), formatSize(Math.round(r.netTxBytesPerSec)), r.cpuSeconds.toFixed(1),
  ]));
}

// ------------------------------------------------------------------ option parsing

function intOption(text: string | undefined, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text.trim()) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`invalid ${what} "${text}": expected a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}`);
  }
  return Number(text);
}

function restartOption(text: string | undefined): RestartPolicy | undefined {
  if (text === undefined) return undefined;
  if (text === 'no' || text === 'on-failure' || text === 'always') return text;
  throw new UsageError(`invalid --restart "${text}": expected no, on-failure or always`);
}

function capOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (text === 'none') return 0;
  return intOption(text.replace(/%$/, ''), '--cpu-cap', 0);
}

function netRateOption(text: string): number {
  try {
    return parseNetRate(text);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function memoryOption(text: string | undefined): number | undefined {
  return text === undefined ? undefined : parseSize(text, '--memory');
}

interface VmOpts {
  cpus?: string; maxCpus?: string; memory?: string; maxMemory?: string; disk?: string[]; cdrom?: string; kernel?: string; initrd?: string; append?: string;
  cpuWeight?: string; cpuCap?: string; restart?: string; network?: string[]; publish?: string[]; netRate?: string; sshKey?: string[];
  diskIops?: string; diskBps?: string; diskWeight?: string;
  engine?: string;
  memoryPolicy?: string; minMemory?: string; memoryBuffer?: string; memoryPriority?: string;
}

function definitionFields(o: VmOpts): Record<string, unknown> {
  const f: Record<string, unknown> = {
    vcpus: intOption(o.cpus, '--cpus', 1),
    maxVcpus: o.maxCpus === undefined ? undefined : o.maxCpus === 'none' ? null : intOption(o.maxCpus, '--max-cpus', 1),
    memoryBytes: memoryOption(o.memory),
    maxMemoryBytes: o.maxMemory === undefined ? undefined : o.maxMemory === 'none' ? null : parseSize(o.maxMemory, '--max-memory'),
    memoryPolicy: o.memoryPolicy,
    minMemoryBytes: o.minMemory === undefined ? undefined : o.minMemory === 'none' ? null : parseSize(o.minMemory, '--min-memory'),
    memoryBufferPercent: o.memoryBuffer === undefined ? undefined : o.memoryBuffer === 'none' ? null : intOption(o.memoryBuffer.replace(/%$/, ''), '--memory-buffer', 5, 200),
    memoryPriority: o.memoryPriority === undefined ? undefined : o.memoryPriority === 'none' ? null : intOption(o.memoryPriority, '--memory-priority', 0, 100),
    disks: o.disk && o.disk.length ? o.disk.map(parseDiskSpec).map((d) => ({ path: resolvePath(d.path), readonly: d.readonly })) : undefined,
    cdrom: o.cdrom === undefined ? undefined : resolvePath(o.cdrom),
    kernel: o.kernel === undefined ? undefined : resolvePath(o.kernel),
    initrd: o.initrd === undefined ? undefined : resolvePath(o.initrd),
    append: o.append,
    cpuWeight: intOption(o.cpuWeight, '--cpu-weight', 1, 10000),
    cpuCap: capOption(o.cpuCap),
    restart: restartOption(o.restart),
    networks: o.network && o.network.length ? o.network : undefined,
    publish: o.publish && o.publish.length ? o.publish : undefined,
    netRateMbit: o.netRate === undefined ? undefined : netRateOption(o.netRate),
    diskIops: o.diskIops === undefined ? undefined : o.diskIops === 'none' ? 0 : intOption(o.diskIops, '--disk-iops', 0),
    diskBps: o.diskBps === undefined ? undefined : o.diskBps === 'none' || o.diskBps === '0' ? 0 : parseSize(o.diskBps.replace(/\/s$/, ''), '--disk-bps'),
    diskWeight: o.diskWeight === undefined ? undefined : intOption(o.diskWeight, '--disk-weight', 1, 10000),
    engine: o.engine,
  };
  for (const k of Object.keys(f)) if (f[k] === undefined) delete f[k];
  return f;
}

function resolvePath(p: string): string {
  return resolve(p);
}

const collect = (v: string, acc: string[]) => [...acc, v];

function addDefinitionOptions(cmd: Command): Command {
  return cmd
    .option('--cpus <n>', 'number of vCPUs; a running VM brings them online or offline at once, up to the vCPUs it booted with')
    .option('--max-cpus <n>', 'vCPUs the guest boots with, so that --cpus can grow up to it while the VM runs (none: the same as --cpus)')
    .addOption(new Option('--engine <kind>', 'how guest code runs: jit (hot code translated to wasm, the default) or interp (the interpreter alone)').choices(ENGINE_KINDS))
    .option('-m, --memory <size>', 'guest memory (K, M, G suffixes); a running VM gets it at once through its balloon, up to the RAM it booted with (a dynamic VM: the memory it starts with)')
    .option('--max-memory <size>', 'RAM the guest boots with, so that --memory can grow up to it while the VM runs (none: the same as --memory)')
    .addOption(new Option('--memory-policy <policy>', 'dynamic: the memory follows the guest\'s needs between --min-memory and --max-memory, starting at --memory; static (the default): it moves only when asked').choices(['static', 'dynamic']))
    .option('--min-memory <size>', 'a dynamic VM\'s guaranteed memory, what admission reserves (default: --memory, at most 256M)')
    .option('--memory-buffer <percent>', 'a dynamic VM\'s free memory above its working set, 5..200 percent of it (default 20)')
    .option('--memory-priority <n>', 'a dynamic VM\'s claim when memory is short, 0..100 (default 50): higher gets memory first and gives it back last')
    .option('--disk <path[,readonly]>', 'attach a disk image, raw or qcow2 (repeatable)', collect, [] as string[])
    .option('--cdrom <iso>', 'put an ISO 9660 image in the CD-ROM drive (the guest\'s /dev/sr0; read-only)')
    .option('--kernel <file>', 'boot this RISC-V Linux Image instead of the default image')
    .option('--initrd <file>', 'initramfs to use with --kernel')
    .option('--append <args>', 'extra kernel command-line arguments')
    .option('--cpu-weight <n>', 'relative CPU weight, 1..10000 (default 100)')
    .option('--cpu-cap <percent>', 'CPU cap in percent of one host core (0 or "none": no cap)')
    .option('--restart <policy>', 'restart policy: no, on-failure, always')
    .option('--network <net>', 'network card: user (NAT through passt, the default), a network\'s name (tsvisor network create), tap:IFNAME (an existing tap device), or none (repeatable; replaces the cards)', collect, [] as string[])
    .option('-p, --publish <[ip:]hostport:guestport[/udp]>', 'forward a host port into the guest, as docker -p (repeatable; replaces the published ports)', collect, [] as string[])
    .option('--net-rate <mbit>', 'bandwidth cap of each network card in Mbit/s, each way (none: no cap); applies to a running VM at once')
    .option('--disk-iops <n>', 'disk requests per second, all the VM\'s disks together (none: no limit); applies to a running VM at once')
    .option('--disk-bps <size>', 'disk bytes per second (K, M, G suffixes), all the VM\'s disks together (none: no limit); applies to a running VM at once')
    .option('--disk-weight <n>', 'share of a contended host disk, 1..10000 (default 100), as cgroup io.weight: while VMs keep the disk busy, each gets requests and bytes per second in proportion; applies to a running VM at once')
    .option('--ssh-key <file>', `public key for the guest's default user "${DEFAULT_SSH_USER}" (sudo), for vm ssh (repeatable; none: no SSH access; vm create's default: ~/${DEFAULT_PUBLIC_KEYS.join(' or ~/')})`, collect, [] as string[]);
}

// ------------------------------------------------------------------ console and exec

async function attachConsole(name: string): Promise<number> {
  const c = await connect();
  const { socket, head } = await c.upgrade(vmPath(name, 'console'), 'tsvisor-console');
  const stdin = process.stdin;
  const stdout = process.stdout;
  const raw = stdin.isTTY;
  process.stderr.write(`[attached to the console of ${name}; Ctrl-A x detaches, the VM keeps running]\r\n`);
  if (head.length) stdout.write(head);
  socket.on('data', (b: Buffer) => stdout.write(b));
  if (raw) stdin.setRawMode(true);
  let escape = false;
  let detached = false;
  return new Promise<number>((resolve) => {
    const finish = (code: number, msg: string) => {
      stdin.off('data', onData);
      stdin.pause();
      if (raw) stdin.setRawMode(false);
      process.stderr.write(msg);
      socket.destroy();
      resolve(code);
    };
    const onData = (d: Buffer) => {
      const pass: number[] = [];
      for (const b of d) {
        if (escape) {
          escape = false;
          if (b === 0x78 /* x */) { detached = true; socket.write(Uint8Array.from(pass)); finish(0, '\r\n[detached; the VM keeps running]\r\n'); return; }
          if (b === 0x01) pass.push(0x01);
          continue;
        }
        if (b === 0x01) { escape = true; continue; }
        pass.push(b);
      }
      if (pass.length) socket.write(Uint8Array.from(pass));
    };
    stdin.on('data', onData);
    stdin.on('end', () => { if (!raw && !detached) { /* input ended: keep showing output until the VM closes */ } });
    stdin.resume();
    socket.on('close', () => { if (!detached) finish(0, '\r\n[console closed]\r\n'); });
    socket.on('error', () => undefined);
  });
}

async function readAllStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function execCommand(name: string, argv: string[], opts: { stdin?: boolean }): Promise<number> {
  if (argv.length === 0) throw new UsageError('vm exec: missing command (tsvisor vm exec NAME -- CMD [ARG...])');
  const body: { argv: string[]; stdin?: string } = { argv };
  if (opts.stdin) body.stdin = (await readAllStdin()).toString('base64');
  const c = await connect();
  const res = await c.open('POST', vmPath(name, 'exec'), body);
  if (res.statusCode !== 200) {
    await readJsonAnswer(res); // throws with the API's message
    throw new Error(`exec: HTTP ${res.statusCode}`);
  }
  let buf = '';
  let exit: number | null = null;
  const handle = async (line: string) => {
    if (!line.trim()) return;
    let ev: { stream?: string; data?: string; exit?: number; error?: string };
    try { ev = JSON.parse(line); } catch { return; }
    if (typeof ev.exit === 'number') exit = ev.exit;
    else if (ev.error) { process.stderr.write(`tsvisor: exec: ${ev.error}\n`); exit = exit ?? 255; }
    else if (ev.data !== undefined) {
      const stream = ev.stream === 'stderr' ? process.stderr : process.stdout;
      const bytes = Buffer.from(ev.data, 'base64');
      if (!stream.write(bytes)) await new Promise((r) => stream.once('drain', r));
    }
  };
  for await (const chunk of res) {
    buf += (chunk as Buffer).toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      await handle(line);
    }
  }
  await handle(buf);
  await new Promise<void>((r) => process.stdout.write('', () => r()));
  if (exit === null) {
    process.stderr.write('tsvisor: exec: the stream ended without an exit status\n');
    return 255;
  }
  return exit;
}

// ------------------------------------------------------------------ commands

async function printVm(v: VmInfo, json: boolean | undefined, verb?: string): Promise<void> {
  if (json) out(JSON.stringify(v, null, 2) + '\n');
  else if (verb) out(`${v.name} ${verb} (${v.state}${v.pid ? `, pid ${v.pid}` : ''})\n`);
  else out(formatVmInfo(v));
}

/** Add `vm`, `host`, `usage`, `top` and `daemon` to the program. */
export function registerHostCommands(program: Command): void {
  const vm = program.command('vm').description('manage VMs through the host daemon (started on first use)');

  addDefinitionOptions(vm.command('create').description('define a VM').argument('<name>', 'VM name (also the guest host name)'))
    .option('--image <name>', 'make it from a system image (debian): its own copy-on-write overlay of the image is /dev/vda')
    .option('--disk-size <size>', 'with --image: size of its system disk (default: the image\'s); the guest grows into it')
    .option('--boot-disk <file>', 'boot its own system disk (raw or qcow2, written in place) through the firmware, from the kernel in its /boot')
    .option('--share <hostdir:tag[,readonly]>', 'share a host folder with the guest (virtio-9p), mounted on /mnt/TAG (repeatable; later: vm share add|remove)', collect, [] as string[])
    .option('--cloud-init <user-data>', 'configure the guest at first boot from this cloud-init user-data (#cloud-config YAML or a #! script): a NoCloud seed disc in the CD-ROM drive')
    .option('--meta-data <file>', 'with --cloud-init: its meta-data (default: a fresh instance-id and the VM\'s name as local-hostname)')
    .option('--vram <size>', 'graphics memory of the display (K, M, G suffixes; default 16M; 0: no display): bounds the screen modes the guest can set')
    .option('--resolution <WxH>', 'the display\'s preferred mode (default 1280x800)')
    .option('--start', 'start it right away')
    .option('--json', 'print the VM as JSON')
    .action(async (name: string, o: VmOpts & { start?: boolean; json?: boolean; image?: string; diskSize?: string; bootDisk?: string; share?: string[]; cloudInit?: string; metaData?: string; vram?: string; resolution?: string }) => {
      const fromImage: Record<string, unknown> = {};
      if (o.share?.length) fromImage.shares = o.share.map(shareSpec);
      if (o.vram !== undefined) fromImage.vramBytes = parseVram(o.vram);
      if (o.resolution !== undefined) fromImage.resolution = o.resolution;
      if (o.metaData !== undefined && o.cloudInit === undefined) throw new UsageError('--meta-data needs --cloud-init');
      if (o.cloudInit !== undefined) {
        fromImage.cloudInit = { userData: readFileArg(o.cloudInit, '--cloud-init', 1 << 20).toString('utf8'), ...(o.metaData !== undefined ? { metaData: readFileArg(o.metaData, '--meta-data', 1 << 20).toString('utf8') } : {}) };
      }
      if (o.image !== undefined && o.bootDisk !== undefined) throw new UsageError('--image and --boot-disk are two system disks: give one');
      if (o.bootDisk !== undefined) {
        if (o.diskSize !== undefined) throw new UsageError('--disk-size needs --image');
        fromImage.bootDisk = resolvePath(o.bootDisk);
      } else if (o.image !== undefined) {
        fromImage.image = o.image;
        if (o.diskSize !== undefined) fromImage.diskSizeBytes = parseSize(o.diskSize, '--disk-size');
        // build the image here, with progress, when the daemon is local (it shares the cache)
        if (o.image === DEBIAN_IMAGE_NAME && !process.env.TSVISOR_URL) await ensureDebianImage({});
      } else if (o.diskSize !== undefined) {
        throw new UsageError('--disk-size needs --image');
      }
      // the user's own key by default, as ssh-copy-id; only where a user-mode card can reach sshd
      const userCard = !o.network?.length || o.network.includes('user');
      const sshKeys = userCard || o.sshKey?.length ? readSshKeys(o.sshKey) : [];
      const fields = definitionFields(o);
      if (fields.maxMemoryBytes === null) delete fields.maxMemoryBytes; // `none` is the default
      if (fields.maxVcpus === null) delete fields.maxVcpus;
      let v = await api<VmInfo>('POST', '/v1/vms', { name, ...fields, ...fromImage, ...(sshKeys.length ? { sshKeys } : {}) });
      if (o.start) v = await api<VmInfo>('POST', vmPath(name, 'start'));
      await printVm(v, o.json, o.start ? 'created and started' : 'created');
    });

  const simple: Array<[string, string, string]> = [
    ['start', 'start a VM', 'started'],
    ['kill', 'kill a VM process at once', 'killed'],
    ['pause', 'pause a VM', 'paused'],
    ['resume', 'resume a paused VM', 'resumed'],
  ];
  for (const [action, desc, verb] of simple) {
    vm.command(action).description(desc).argument('<name>').option('--json', 'print the VM as JSON')
      .action(async (name: string, o: { json?: boolean }) => printVm(await api<VmInfo>('POST', vmPath(name, action)), o.json, verb));
  }
  for (const [action, verb] of [['stop', 'stopped'], ['restart', 'restarted']] as const) {
    vm.command(action).description(action === 'stop' ? 'stop a VM gracefully (guest power-off), forced after the timeout' : 'stop (gracefully) and start a VM')
      .argument('<name>').option('-t, --timeout <seconds>', 'seconds before the VM process is killed', '30').option('--json', 'print the VM as JSON')
      .action(async (name: string, o: { timeout: string; json?: boolean }) => {
        const s = Number(o.timeout);
        if (!Number.isFinite(s) || s < 0) throw new UsageError(`invalid --timeout "${o.timeout}": expected seconds`);
        await printVm(await api<VmInfo>('POST', vmPath(name, action), { timeoutMs: Math.round(s * 1000) }), o.json, verb);
      });
  }
  vm.command('delete').description('delete a VM (its usage totals are kept)').argument('<name>')
    .option('-f, --force', 'kill it first if it is running')
    .action(async (name: string, o: { force?: boolean }) => {
      await api('DELETE', vmPath(name) + (o.force ? '?force=true' : ''));
      out(`${name} deleted\n`);
    });
  vm.command('info').description('show a VM').argument('<name>').option('--json', 'as JSON')
    .action(async (name: string, o: { json?: boolean }) => printVm(await api<VmInfo>('GET', vmPath(name)), o.json));
  vm.command('list').alias('ls').description('list VMs').option('--json', 'as JSON')
    .action(async (o: { json?: boolean }) => {
      const r = await api<{ vms: VmInfo[] }>('GET', '/v1/vms');
      out(o.json ? JSON.stringify(r.vms, null, 2) + '\n' : formatVmList(r.vms));
    });
  addDefinitionOptions(vm.command('set').description('change a VM: vCPUs, memory, CPU weight and cap and the network rate apply at once, the rest at the next start').argument('<name>'))
    .option('--no-cdrom', 'detach the CD-ROM')
    .option('--json', 'print the VM as JSON')
    .action(async (name: string, o: Omit<VmOpts, 'cdrom'> & { json?: boolean; cdrom?: string | boolean }) => {
      const fields = definitionFields({ ...o, cdrom: typeof o.cdrom === 'string' ? o.cdrom : undefined });
      if (o.cdrom === false) fields.cdrom = null;
      if (o.sshKey?.length) {
        const keys = readSshKeys(o.sshKey);
        fields.sshKeys = keys.length ? keys : null;
      }
      if (Object.keys(fields).length === 0) throw new UsageError('vm set: nothing to change (see tsvisor vm set --help)');
      await printVm(await api<VmInfo>('PATCH', vmPath(name), fields), o.json, 'updated');
    });
  vm.command('console').description('attach to the serial console (Ctrl-A x detaches, the VM keeps running)').argument('<name>')
    .action(async (name: string) => { process.exitCode = await attachConsole(name); });
  const vmDisk = vm.command('disk').description("change a VM's disks");
  vmDisk.command('resize').description('grow a disk (raw or qcow2) to SIZE; a running guest sees the new size at once (resize2fs can then grow its file system online)')
    .argument('<name>').argument('<disk>', 'vda, vdb, ... (attach order), an index, or the image path').argument('<size>', 'new size (K, M, G, T suffixes), at least the current one')
    .option('--json', 'print the VM as JSON')
    .action(async (name: string, disk: string, size: string, o: { json?: boolean }) => {
      const bytes = parseSize(size, 'size');
      const spec = /^(vd[a-z]|\d+)$/.test(disk) ? disk : resolvePath(disk);
      const v = await api<VmInfo>('POST', `${vmPath(name)}/disks/${encodeURIComponent(spec)}/resize`, { sizeBytes: bytes });
      if (o.json) process.stdout.write(JSON.stringify(v, null, 2) + '\n');
      else process.stdout.write(`${name}: disk ${disk} is now ${formatSize(bytes)}${v.state === 'running' || v.state === 'paused' ? ' (the guest was told)' : ''}\n`);
    });
  vmDisk.command('attach').description('attach a disk image (raw or qcow2) as the last disk; a running guest sees a new vdX at once, and the VM keeps it')
    .argument('<name>').argument('<file>', 'the image (created with tsvisor disk create or qemu-img)')
    .option('--readonly', 'attach it read-only')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, file: string, o: { readonly?: boolean; json?: boolean }) => {
      const path = resolvePath(file);
      const r = await api<DiskAttachResult>('POST', `${vmPath(name)}/disks`, { path, ...(o.readonly ? { readonly: true } : {}) });
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else process.stdout.write(`${name}: attached ${path}${r.device ? ` (the guest's /dev/${r.device})` : ' (at its next start)'}\n`);
    });
  vmDisk.command('detach').description('detach a disk; a running guest lets it go first (refused while it is mounted there, unless --force); the image file is kept')
    .argument('<name>').argument('<disk>', 'vda, vdb, ... (attach order), an index, or the image path')
    .option('--force', 'detach even while the guest uses it (the guest syncs first; what it has not written is lost)')
    .option('--json', 'print the VM as JSON')
    .action(async (name: string, disk: string, o: { force?: boolean; json?: boolean }) => {
      const spec = /^(vd[a-z]|\d+)$/.test(disk) ? disk : resolvePath(disk);
      const v = await api<VmInfo>('DELETE', `${vmPath(name)}/disks/${encodeURIComponent(spec)}${o.force ? '?force=true' : ''}`);
      if (o.json) process.stdout.write(JSON.stringify(v, null, 2) + '\n');
      else process.stdout.write(`${name}: detached ${disk}\n`);
    });
  vm.command('send-key').description('press keys together on the VM\'s keyboard, then release them, as virsh send-key (e.g. KEY_LEFTCTRL KEY_C)')
    .argument('<name>').argument('<keys...>', 'Linux key names (KEY_A, KEY_ENTER; the KEY_ prefix is optional) or codes')
    .action(async (name: string, keys: string[]) => {
      for (const k of keys) { try { linuxKeyCode(k); } catch (e) { throw new UsageError((e as Error).message); } }
      await api<VmInfo>('POST', `${vmPath(name)}/send-key`, { keys });
      process.stdout.write(`${name}: sent ${keys.join('+')}\n`);
    });
  vm.command('vnc').description('print the address of the VM\'s VNC server (loopback; any VNC viewer), as virsh vncdisplay')
    .argument('<name>')
    .action(async (name: string) => {
      const v = await api<{ vnc: string; viewers: number }>('GET', `${vmPath(name)}/vnc`);
      process.stdout.write(`vnc://${v.vnc}\n`);
    });
  vm.command('screenshot').description('save what the VM\'s display shows as a PNG file')
    .argument('<name>').argument('<file.png>')
    .action(async (name: string, file: string) => {
      const s = await api<{ width: number; height: number; png: string }>('GET', `${vmPath(name)}/screenshot`);
      const path = resolvePath(file);
      const tmp = `${path}.tmp-${process.pid}`;
      writeFileSync(tmp, Buffer.from(s.png, 'base64'));
      renameSync(tmp, path);
      process.stdout.write(`${name}: ${s.width}x${s.height} screen saved to ${path}\n`);
    });
  const vmShare = vm.command('share').description('share host folders with a stopped VM (virtio-9p; the guest mounts each on /mnt/TAG)');
  vmShare.command('add').description('share a host folder; the guest has it from its next start')
    .argument('<name>').argument('<hostdir:tag[,readonly]>')
    .action(async (name: string, spec: string) => {
      const s = shareSpec(spec);
      await api<VmInfo>('POST', `${vmPath(name)}/shares`, s);
      process.stdout.write(`${name}: ${s.path} shared as ${s.tag}${s.readonly ? ' (read-only)' : ''}\n`);
    });
  vmShare.command('remove').alias('rm').description('stop sharing the folder tagged TAG')
    .argument('<name>').argument('<tag>')
    .action(async (name: string, tag: string) => {
      await api<VmInfo>('DELETE', `${vmPath(name)}/shares/${encodeURIComponent(tag)}`);
      process.stdout.write(`${name}: shared folder ${tag} removed\n`);
    });
  const vmCdrom = vm.command('cdrom').description("change the disc in a VM's CD-ROM drive");
  vmCdrom.command('insert').description('put an ISO 9660 image in the drive (taking out the disc in it); a running guest sees it at once, and the VM keeps it')
    .argument('<name>').argument('<iso>')
    .action(async (name: string, iso: string) => {
      const path = resolvePath(iso);
      const v = await api<VmInfo>('POST', `${vmPath(name)}/cdrom`, { path });
      process.stdout.write(`${name}: ${path} inserted${v.state === 'running' ? ' (the guest was told)' : ''}\n`);
    });
  vmCdrom.command('eject').description('take the disc out; refused while the guest has it mounted (the tray locked), unless --force')
    .argument('<name>')
    .option('--force', 'eject even from a locked tray (reads of the mounted disc fail in the guest)')
    .action(async (name: string, o: { force?: boolean }) => {
      await api<VmInfo>('DELETE', `${vmPath(name)}/cdrom${o.force ? '?force=true' : ''}`);
      process.stdout.write(`${name}: disc ejected\n`);
    });
  vm.command('exec').description('run a command in the guest; exits with its status').usage('[options] <name> -- <command...>')
    .argument('<name>').argument('<command...>')
    .option('-i, --stdin', 'send standard input to the command')
    .action(async (name: string, command: string[], o: { stdin?: boolean }) => { process.exitCode = await execCommand(name, command, o); });
  vm.command('ssh').description(`log in to the guest over SSH as its default user (a VM created with a key); exits with the command's status`)
    .usage('[options] <name> [-- <command...>]')
    .argument('<name>').argument('[command...]', 'run this instead of a login shell')
    .option('-i, --identity <file>', 'private key (default: ssh\'s own, ~/.ssh/id_*)')
    .action(async (name: string, command: string[], o: { identity?: string }) => {
      process.exitCode = await runSsh(name, () => api<VmInfo>('GET', vmPath(name)), command, { identity: o.identity });
    });

  const host = program.command('host').description('the host');
  host.command('info').description('capacity, allocation, policy, warnings').option('--json', 'as JSON')
    .action(async (o: { json?: boolean }) => {
      const h = await api<HostInfo>('GET', '/v1/host');
      out(o.json ? JSON.stringify(h, null, 2) + '\n' : formatHostInfo(h));
    });

  const network = program.command('network').description('virtual networks between VMs (a switch with DHCP and DNS, in the daemon)');
  network.command('create').description('define a network; VMs join it with vm create --network NAME').argument('<name>', 'network name, also its DNS domain')
    .option('--subnet <cidr>', 'IPv4 subnet, prefix 16-29 (default: the first free 10.97.N.0/24)')
    .option('--json', 'as JSON')
    .action(async (name: string, o: { subnet?: string; json?: boolean }) => {
      const n = await api<NetworkInfo>('POST', '/v1/networks', { name, ...(o.subnet ? { subnet: o.subnet } : {}) });
      out(o.json ? JSON.stringify(n, null, 2) + '\n' : `${n.name} created (${n.subnet}; DHCP and DNS at ${n.address})\n`);
    });
  network.command('list').alias('ls').description('list networks').option('--json', 'as JSON')
    .action(async (o: { json?: boolean }) => {
      const r = await api<{ networks: NetworkInfo[] }>('GET', '/v1/networks');
      if (o.json) { out(JSON.stringify(r.networks, null, 2) + '\n'); return; }
      const rows = r.networks.map((n) => [n.name, n.subnet, n.address, n.ports.map((p) => p.vm).join(',') || '-']);
      out([['NAME', 'SUBNET', 'ADDRESS', 'CONNECTED'], ...rows].map((c) => `${c[0].padEnd(16)}${c[1].padEnd(20)}${c[2].padEnd(16)}${c[3]}`).join('\n') + '\n');
    });
  network.command('info').description('show a network and the counters of its connected cards').argument('<name>').option('--json', 'as JSON')
    .action(async (name: string, o: { json?: boolean }) => {
      const n = await api<NetworkInfo>('GET', `/v1/networks/${encodeURIComponent(name)}`);
      if (o.json) { out(JSON.stringify(n, null, 2) + '\n'); return; }
      out(`name:     ${n.name}\nsubnet:   ${n.subnet}\naddress:  ${n.address} (DHCP, DNS)\n` + n.ports.map((p) =>
        `port:     ${p.vm} ${p.mac}: from it ${p.rxFrames} frames/${formatSize(p.rxBytes)}, to it ${p.txFrames} frames/${formatSize(p.txBytes)}; dropped: ${p.droppedSpoofed} spoofed, ${p.droppedFlood} flood, ${p.droppedCongested} congested, ${p.droppedOther} other\n`).join(''));
    });
  network.command('delete').alias('rm').description('delete a network no VM has a card on').argument('<name>')
    .action(async (name: string) => {
      await api('DELETE', `/v1/networks/${encodeURIComponent(name)}`);
      out(`${name} deleted\n`);
    });

  program.command('usage').description('metering report: CPU-seconds, memory GiB·s, disk and network bytes per VM').option('--json', 'as JSON')
    .action(async (o: { json?: boolean }) => {
      const u = await api<UsageReport>('GET', '/v1/usage');
      out(o.json ? JSON.stringify(u, null, 2) + '\n' : formatUsage(u));
    });

  program.command('top').description('live CPU %, memory, disk and network I/O per VM')
    .option('--once', 'print one snapshot and exit')
    .option('-n, --interval <seconds>', 'refresh interval', '1')
    .option('--json', 'with --once: as JSON')
    .action(async (o: { once?: boolean; interval: string; json?: boolean }) => {
      const interval = Math.max(0.2, Number(o.interval) || 1) * 1000;
      const snapshot = async () => {
        const [t, h] = await Promise.all([api<{ at: number; vms: TopRow[] }>('GET', '/v1/top'), api<HostInfo>('GET', '/v1/host')]);
        return { t, h };
      };
      if (o.once) {
        const { t, h } = await snapshot();
        out(o.json ? JSON.stringify(t, null, 2) + '\n' : formatTop(t.vms, h));
        return;
      }
      let stop = false;
      const onSig = () => { stop = true; };
      process.once('SIGINT', onSig);
      try {
        while (!stop) {
          const { t, h } = await snapshot();
          out('\x1b[H\x1b[2J' + formatTop(t.vms, h) + '\n(Ctrl-C quits)\n');
          await new Promise((r) => setTimeout(r, interval));
        }
      } finally {
        process.off('SIGINT', onSig);
      }
    });

  program.command('web').description('the web console: the daemon listens on TCP (default 127.0.0.1:8006) and this prints the address to open in a browser, with the token that logs in')
    .option('--listen <host:port>', 'where the daemon listens, if it does not yet (default 127.0.0.1:8006, or any free port when that is taken)')
    .action(async (o: { listen?: string }) => {
      const paths = hostPaths();
      const target = apiTarget(paths);
      let url: string;
      let token: string | undefined;
      if ('url' in target) {
        url = new URL('/', target.url).toString();
        token = target.token;
      } else {
        if (o.listen !== undefined) { try { parseListen(o.listen); } catch (e) { throw new UsageError((e as Error).message); } }
        url = (await api<{ url: string }>('POST', '/v1/daemon/web', o.listen !== undefined ? { listen: o.listen } : {})).url;
        try { token = readFileSync(paths.token, 'utf8').trim(); } catch { /* none */ }
      }
      // the token rides in the fragment, which the browser never sends; the page logs in with it
      out(`${url}${token ? `#token=${token}` : ''}\n`);
    });

  const daemon = program.command('daemon').description('the host daemon');
  daemon.command('start').description('start the host daemon in the background (VMs it finds running are re-adopted)')
    .option('--listen <host:port>', 'also listen on TCP (bearer token from $TSVISOR_HOME/token)')
    .addOption(new Option('--overcommit <ratio>', 'memory overcommit ratio (default: host.json, else 1.0)'))
    .option('--foreground', 'run in the foreground (log to stdout)')
    .action(async (o: { listen?: string; overcommit?: string; foreground?: boolean }) => {
      let overcommit: number | undefined;
      if (o.overcommit !== undefined) {
        overcommit = Number(o.overcommit);
        if (!(overcommit > 0) || !Number.isFinite(overcommit)) throw new UsageError(`invalid --overcommit "${o.overcommit}": expected a positive number`);
      }
      const paths = hostPaths();
      if (o.foreground) {
        const { runDaemon } = await import('../api/daemon.js'); // the daemon's modules only where it runs
        const d = await runDaemon({ paths, listen: o.listen, overcommit });
        const onSig = () => void d.close();
        process.on('SIGTERM', onSig);
        process.on('SIGINT', onSig);
        await d.closed;
        process.off('SIGTERM', onSig);
        process.off('SIGINT', onSig);
        return;
      }
      if (await pingSocket(paths.socket)) {
        let pid = '?';
        try { pid = readFileSync(paths.daemonPid, 'utf8').trim(); } catch { /* unknown */ }
        out(`tsvisor daemon already running (pid ${pid})\n`);
        return;
      }
      const args = [...(o.listen ? ['--listen', o.listen] : []), ...(overcommit !== undefined ? ['--overcommit', String(overcommit)] : [])];
      await spawnDaemon(paths, args);
      const pid = readFileSync(paths.daemonPid, 'utf8').trim();
      out(`tsvisor daemon started (pid ${pid}, socket ${paths.socket}, log ${paths.daemonLog})\n`);
    });
  daemon.command('stop').description('stop the host daemon (VMs keep running)')
    .action(async () => {
      const paths = hostPaths();
      if (!(await pingSocket(paths.socket))) { out('tsvisor daemon is not running\n'); return; }
      let pid = 0;
      try { pid = Number(readFileSync(paths.daemonPid, 'utf8').trim()); } catch { /* unknown */ }
      await new ApiClient({ socket: paths.socket }).call('POST', '/v1/daemon/shutdown');
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && pid > 0) {
        try { process.kill(pid, 0); } catch { break; }
        await new Promise((r) => setTimeout(r, 100));
      }
      out(`tsvisor daemon stopped${pid ? ` (pid ${pid})` : ''}\n`);
    });
  daemon.command('status').description('is the daemon running? (exit status 3 if not)')
    .action(async () => {
      const paths = hostPaths();
      if (!(await pingSocket(paths.socket))) {
        out(`tsvisor daemon is not running (socket ${paths.socket})\n`);
        process.exitCode = 3;
        return;
      }
      const h = await new ApiClient({ socket: paths.socket }).call<HostInfo>('GET', '/v1/host');
      out(`tsvisor daemon running: pid ${h.daemon.pid}, socket ${paths.socket}, ${h.vms.running} of ${h.vms.defined} VMs running\n`);
    });
}
