/**
 * `tsvisor run`: boot a VM in the foreground, like `qemu-system-riscv64 -nographic`.
 * With a command, run it in the default image and exit with its status.
 */
import { totalmem } from 'node:os';
import { UsageError } from './errors.js';
import { readFileArg } from './files.js';
import { parseSize, parseVram, formatSize } from './size.js';
import { Vm } from '../vmm/vm.js';
import { prestartHarts } from '../vmm/hart-threads.js';
import { ExitMarkerFilter } from '../vmm/console.js';
import { StdioCharBackend } from '../devices/node/stdio-char.js';
import { adviseHugePages, madviseDiscarder } from '../devices/node/discard.js';
import { attachTerminal, handleVmSignals } from './terminal.js';
import { loadEngineModule } from '../engine/node/module.js';
import type { EngineKind } from '../engine/hart-state.js';
import { MAX_RAM_BYTES, MAX_HARTS } from '../engine/layout.js';
import { openDisk, type DiskImage } from '../devices/node/disk.js';
import { ensureDefaultImage } from '../images/index.js';
import { kernelBootargs, initrdBlobWithCommand } from '../vmm/boot-config.js';
import { fileBlob } from '../vmm/boot-files.js';
import { networkDefinition, parseNetRate, NetworkConfigError, type NicDefinition, type PublishedPort } from '../vmm/network.js';
import type { NetLink } from '../vmm/net-links.js';
import { parseMac } from '../devices/net/frame.js';
import type { Board, CdromConfig, DisplayConfig, NicConfig, ShareConfig } from '../machine/board.js';
import type { BootBlob } from '../machine/boot.js';
import type { VmDisplay } from '../vmm/vm-display.js';
import { VNC_BASE_PORT } from '../vmm/vnc/rfb.js';
import { VmShares, ShareConfigError, checkShareDirs, checkShareList, parseShareSpec } from '../vmm/shares.js';

// The command line and initrd assembly live in src/vmm (shared with the VM process);
// re-exported for the benchmarks and tests that import them from here.
export { kernelBootargs, initrdWithCommand, shellQuote } from '../vmm/boot-config.js';

/** Options of `tsvisor run` as given on the command line. */
export interface RunOptions {
  memory: string;
  cpus: string;
  /** `--engine jit|interp` (default jit). */
  engine?: EngineKind;
  /** `--stats`: instructions, MIPS and the JIT's figures on stderr at the end. */
  stats?: boolean;
  disk: string[];
  kernel?: string;
  initrd?: string;
  append?: string;
  verbose?: boolean;
  /** `--image NAME`: boot a system image (debian) from its own disk. */
  image?: string;
  /** `--disk-size SIZE` with `--image`. */
  diskSize?: string;
  /** `--boot-disk FILE`: boot this system disk (raw or qcow2) through the firmware. */
  bootDisk?: string;
  /** `--network user|none` (repeatable; default one `user` card). */
  network?: string[];
  /** `--publish [HOST_IP:]HOST_PORT:GUEST_PORT[/udp]` (repeatable). */
  publish?: string[];
  /** `--net-rate MBIT`: bandwidth cap of each card, each way. */
  netRate?: string;
  /** `--cdrom ISO`: an ISO 9660 image in the CD-ROM drive. */
  cdrom?: string;
  /** `--share HOSTDIR:TAG[,readonly]` (repeatable). */
  share?: string[];
  /** `--vnc [HOST:]DISPLAY`: a display, served by a VNC server on HOST, port 5900 + DISPLAY (QEMU's `-vnc`). */
  vnc?: string;
  /** `--vram SIZE` and `--resolution WxH` of that display. */
  vram?: string;
  resolution?: string;
}

/** The CD-ROM drive, shared folders and display of `tsvisor run`, opened; close() releases them. */
export interface RunMedia {
  cdrom?: CdromConfig;
  shares: ShareConfig[];
  /** The display (`--vnc`), for the board. */
  display?: DisplayConfig;
  /** The board of the current boot (or null): the display's VNC server shows it. */
  setBoard(board: Board | null): void;
  close(): void;
}

/**
 * Parses `--vnc [HOST:]DISPLAY` as QEMU's `-vnc`: HOST (default 127.0.0.1; `[v6]` in
 * brackets) and TCP port 5900 + DISPLAY (0 to 99).
 * @throws UsageError (one line).
 */
export function parseVnc(spec: string): { host: string; port: number } {
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d{1,2})$/.exec(spec.trim());
  if (!m) throw new UsageError(`--vnc ${spec}: expected [HOST:]DISPLAY, as QEMU's -vnc (e.g. 127.0.0.1:0 for port 5900)`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port: VNC_BASE_PORT + Number(m[3]) };
}

/** Opens the display of `--vnc` (null without it): its VNC server listens before the guest starts. */
async function openRunDisplay(opts: Pick<RunOptions, 'vnc' | 'vram' | 'resolution'>, board: () => Board | null): Promise<VmDisplay | null> {
  if (opts.vnc === undefined) {
    if (opts.vram !== undefined || opts.resolution !== undefined) throw new UsageError('--vram and --resolution set up the display of --vnc: give --vnc too');
    return null;
  }
  const where = parseVnc(opts.vnc);
  // the display's modules (PNG, the VNC server) are loaded only for a VM that has one
  const [{ displayOf, DisplayConfigError }, { VmDisplay }] = await Promise.all([import('../vmm/display.js'), import('../vmm/vm-display.js')]);
  let config: ReturnType<typeof displayOf>;
  try {
    config = displayOf(opts.vram === undefined ? undefined : parseVram(opts.vram), opts.resolution);
  } catch (e) {
    if (e instanceof DisplayConfigError) throw new UsageError(e.message);
    throw e;
  }
  if (!config) throw new UsageError('--vnc needs a display: --vram 0 gives none');
  const display = new VmDisplay(config, 'tsvisor run', board, (line) => process.stderr.write(`tsvisor: ${line}\n`));
  try {
    await display.listen(where.host, where.port);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`--vnc ${opts.vnc}: cannot listen on ${where.host} port ${where.port}: ${code === 'EADDRINUSE' ? 'the port is in use' : code === 'EADDRNOTAVAIL' ? 'no such address on this host' : (e as Error).message}`);
  }
  const loopback = /^(127\.|::1$|localhost$)/.test(where.host);
  process.stderr.write(`tsvisor: VNC server on vnc://${where.host.includes(':') ? `[${where.host}]` : where.host}:${where.port}${loopback ? '' : ' (no password: whoever reaches this address sees the screen and types)'}\n`);
  return display;
}

/**
 * Opens `--cdrom` (read-only) and the `--share` folders. The VM has a CD-ROM drive only
 * with `--cdrom`.
 * @throws UsageError (one line) for an ISO that is missing or not a file, a bad share or a missing folder.
 */
export async function openRunMedia(opts: Pick<RunOptions, 'cdrom' | 'share' | 'vnc' | 'vram' | 'resolution'>): Promise<RunMedia> {
  let shares: VmShares;
  try {
    const defs = checkShareList((opts.share ?? []).map((s) => parseShareSpec(s)), process.cwd());
    checkShareDirs(defs);
    shares = new VmShares(defs);
  } catch (e) {
    if (e instanceof ShareConfigError) throw new UsageError(e.message);
    throw e;
  }
  let iso: DiskImage | null = null;
  if (opts.cdrom !== undefined) {
    try {
      iso = openDisk(opts.cdrom, { readonly: true, format: 'raw' });
    } catch (e) {
      shares.close();
      throw new UsageError(`--cdrom: ${(e as Error).message}`);
    }
  }
  const disc = iso;
  const closeMedia = () => {
    shares.close();
    try { disc?.close(); } catch { /* already closed */ }
  };
  let board: Board | null = null;
  let display: VmDisplay | null;
  try {
    display = await openRunDisplay(opts, () => board);
  } catch (e) {
    closeMedia();
    throw e;
  }
  return {
    // a drive only with a disc: nothing can put one into the drive of a foreground VM later
    ...(disc ? { cdrom: { medium: disc, onEject: () => {} } } : {}),
    shares: shares.boardConfig(),
    ...(display ? { display: display.boardConfig() } : {}),
    setBoard: (b) => { board = b; display?.boardChanged(); },
    close: () => {
      closeMedia();
      void display?.close();
    },
  };
}

/**
 * The network cards of `tsvisor run` from `--network` (`user`, the default, or `none`),
 * `--publish` and `--net-rate` (Mbit/s; 0: no cap).
 * @throws UsageError for an unknown network, `none` with others, a bad `--publish` or `--net-rate`.
 */
export function runNetworks(opts: Pick<RunOptions, 'network' | 'publish' | 'netRate'>): { nics: NicDefinition[]; publish: PublishedPort[]; rateMbit: number } {
  try {
    const net = networkDefinition('tsvisor-run', opts.network, opts.publish);
    const virtual = net.nics.find((n) => n.kind === 'network');
    if (virtual) throw new UsageError(`--network ${virtual.kind === 'network' ? virtual.network : ''}: tsvisor run knows "user", "tap:IFNAME" and "none"; virtual networks are for VMs of the daemon (vm create --network)`);
    return { ...net, rateMbit: opts.netRate === undefined ? 0 : parseNetRate(opts.netRate) };
  } catch (e) {
    if (e instanceof NetworkConfigError) throw new UsageError(`${e.message}`);
    throw e;
  }
}

/**
 * Starts the cards' backends (one passt each).
 * @throws UsageError (exit status 1) when passt is missing or a port cannot be published.
 */
export async function startRunNetworks(net: { nics: NicDefinition[]; publish: PublishedPort[]; rateMbit: number }, verbose?: boolean): Promise<{ nics: NicConfig[]; links: NetLink[] }> {
  if (net.nics.length === 0) return { links: [], nics: [] };
  const { startNetLinks } = await import('../vmm/net-links.js'); // passt, tap and switch links: only for a VM with a card
  let links: NetLink[];
  try {
    links = await startNetLinks('tsvisor', net.nics, net.publish, (line) => { if (verbose) process.stderr.write(`tsvisor: ${line}\n`); }, undefined, net.rateMbit);
  } catch (e) {
    if (e instanceof NetworkConfigError) throw new Error(`cannot start networking: ${e.message}`);
    throw e;
  }
  return { links, nics: links.map((l, i) => ({ backend: l.backend, mac: parseMac(net.nics[i].mac) })) };
}

/** A `--disk PATH[,readonly]` argument. */
export interface DiskSpec { path: string; readonly: boolean }

/** Parse `PATH[,readonly|,ro]`. Throws UsageError for unknown flags. */
export function parseDiskSpec(spec: string): DiskSpec {
  const parts = spec.split(',');
  const path = parts[0];
  if (!path) throw new UsageError(`invalid --disk "${spec}": missing path`);
  let ro = false;
  for (const flag of parts.slice(1)) {
    if (flag === 'readonly' || flag === 'ro') ro = true;
    else throw new UsageError(`invalid --disk "${spec}": unknown option "${flag}" (expected "readonly")`);
  }
  return { path, readonly: ro };
}

/** Validate `--memory` against the engine's limit and the host's RAM. */
export function checkMemory(text: string): number {
  const bytes = parseSize(text, '--memory');
  if (bytes % (1024 * 1024) !== 0) throw new UsageError(`--memory ${text}: must be a whole number of MiB`);
  if (bytes < 64 * 1024 * 1024) throw new UsageError(`--memory ${text}: at least 64M is needed to boot Linux`);
  if (bytes > totalmem()) throw new UsageError(`--memory ${text}: more than the host has (${formatSize(totalmem())})`);
  if (bytes > MAX_RAM_BYTES) throw new UsageError(`--memory ${text}: at most ${formatSize(MAX_RAM_BYTES - (MAX_RAM_BYTES % (1024 * 1024)))} per VM`);
  return bytes;
}

/** Run a VM in the foreground. Returns the process exit status. */
export async function runCommand(opts: RunOptions, command: string[]): Promise<number> {
  const ramBytes = checkMemory(opts.memory);
  const cpus = Number(opts.cpus);
  if (!/^\d+$/.test(opts.cpus) || cpus < 1) throw new UsageError(`--cpus ${opts.cpus}: expected a whole number from 1 to ${MAX_HARTS}`);
  if (cpus > MAX_HARTS) throw new UsageError(`--cpus ${opts.cpus}: at most ${MAX_HARTS} vCPUs per VM`);
  prestartHarts(cpus); // while the kernel is read and the board built
  const diskSpecs = opts.disk.map(parseDiskSpec);
  if (opts.image !== undefined && opts.bootDisk !== undefined) throw new UsageError('--image and --boot-disk are two system disks: give one');
  if (opts.image !== undefined || opts.bootDisk !== undefined) {
    const flag = opts.image !== undefined ? '--image' : '--boot-disk';
    if (opts.kernel || opts.initrd || opts.append) throw new UsageError(`${flag} boots the kernel installed on its disk: --kernel, --initrd and --append do not apply`);
  }
  if (opts.image === undefined && opts.diskSize !== undefined) {
    throw new UsageError('--disk-size needs --image');
  }
  const net = runNetworks(opts);
  // open disks first: a bad path fails before anything is downloaded or written
  const disks: DiskImage[] = [];
  let links: NetLink[] = [];
  const media = await openRunMedia(opts);
  try {
    if (opts.bootDisk !== undefined) {
      try {
        disks.push(openDisk(opts.bootDisk)); // the guest's own system disk, written in place
      } catch (e) {
        throw new UsageError(`--boot-disk: ${(e as Error).message}`);
      }
    }
    for (const d of diskSpecs) {
      try {
        disks.push(openDisk(d.path, { readonly: d.readonly })); // raw or qcow2 (with its backing chain)
      } catch (e) {
        throw new UsageError((e as Error).message); // a bad --disk is the user's input: exit status 2
      }
    }
    const started = await startRunNetworks(net, opts.verbose);
    links = started.links;
    const nics = started.nics;
    if (opts.bootDisk !== undefined || opts.image !== undefined) {
      const { runImage } = await import('./run-image.js'); // a system disk's boot (firmware, guest agent): loaded only for one
      if (opts.bootDisk !== undefined) {
        return await runImage({ bootDisk: disks[0], ramBytes, cpus, engineKind: opts.engine, stats: opts.stats, disks: disks.slice(1), nics, media, verbose: opts.verbose }, command);
      }
      return await runImage({ image: opts.image, ramBytes, cpus, engineKind: opts.engine, stats: opts.stats, disks, nics, media, diskSize: opts.diskSize, verbose: opts.verbose }, command);
    }
    return await runWithDisks(opts, command, ramBytes, cpus, disks, nics, media);
  } finally {
    media.close();
    for (const d of disks) { try { d.close(); } catch { /* already closed */ } }
    for (const l of links) l.stop();
  }
}

async function runWithDisks(opts: RunOptions, command: string[], ramBytes: number, cpus: number, disks: DiskImage[], nics: NicConfig[], media: RunMedia): Promise<number> {
  let kernel: Uint8Array | BootBlob;
  let initrd: Uint8Array | BootBlob | undefined;
  if (opts.kernel) {
    kernel = readFileArg(opts.kernel, 'kernel');
    if (opts.initrd) initrd = readFileArg(opts.initrd, 'initrd');
  } else {
    if (opts.initrd) throw new UsageError('--initrd needs --kernel (the default image brings its own)');
    const img = await ensureDefaultImage({ quiet: !process.stderr.isTTY && !opts.verbose });
    // read by the board straight into guest RAM
    kernel = fileBlob(img.kernel);
    initrd = fileBlob(img.initrd);
  }
  if (command.length > 0) initrd = initrdBlobWithCommand(initrd, command);
  const bootargs = kernelBootargs(opts);

  const filter = command.length > 0 ? new ExitMarkerFilter() : null;
  const stdout = process.stdout;
  let vm: Vm | null = null;
  const console = new StdioCharBackend((bytes) => {
    const out = filter ? filter.push(bytes) : bytes.slice();
    if (out.length) stdout.write(out);
  }, { onInput: () => vm?.kick() });
  vm = await Vm.create({
    ramBytes, harts: cpus, engine: loadEngineModule(), engineKind: opts.engine, stats: opts.stats, kernel, initrd, bootargs,
    disks: disks.map((backend, i) => ({ backend, serial: `disk${i}` })),
    cdrom: media.cdrom, shares: media.shares, display: media.display,
    nics,
    // free page reporting: memory the guest frees goes back to the host
    balloon: {}, discardRam: madviseDiscarder, adviseRam: adviseHugePages,
    console,
    clock: { nowNs: () => BigInt(Date.now()) * 1_000_000n },
  });
  const theVm = vm;
  media.setBoard(theVm.board);

  // console input: interactive shell gets the terminal; Ctrl-A x quits (as QEMU)
  const detachTerminal = command.length === 0 ? attachTerminal(console, () => theVm.stop()) : null;
  // SIGUSR1 prints each hart's state (pc, privilege, interrupts, parked) to stderr
  const removeSignals = handleVmSignals(() => theVm.stop(), () => theVm.hartReport());
  let ev;
  try {
    ev = await theVm.run();
  } finally {
    removeSignals();
    detachTerminal?.();
  }
  await new Promise<void>((resolve) => stdout.write('', () => resolve()));
  if (filter) {
    if (filter.exitCode !== null) return filter.exitCode;
    process.stderr.write(`tsvisor: the guest ${ev ? (ev.kind === 'reset' ? 'rebooted' : 'powered off') : 'was stopped'} before the command finished\n`);
    return 255;
  }
  if (ev && ev.kind === 'fail') return ev.code || 1;
  return 0;
}
