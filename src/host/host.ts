/**
 * The hypervisor proper: the VM registry, admission control, CPU policy, metering and
 * the supervision of VM processes.
 *
 * Each VM runs as its own OS process (`node dist/src/vmm/main.js <vmDir>`), spawned
 * detached with its output in `<vmDir>/vm.log`, so a crash or `kill -9` of one VM
 * touches nothing else and the VMs outlive the daemon. The daemon notices a VM process
 * ending (its own children: the exit event; adopted ones: pid liveness every `pollMs`),
 * records `stopped` (guest power-off, or stop/kill asked for) or `crashed` (anything
 * else), and restarts it as its restart policy says. A new daemon re-adopts the VM
 * processes still alive (pid + /proc starttime from `state.json`, control socket
 * answering `GET /status`).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ensureDefaultImage } from '../images/index.js';
import type { VmProcessStatus } from '../vmm/control-api.js';
import { hostCapacity, type HostCapacity, type MemoryBudget } from './admission.js';
import { writeFileAtomic, readJsonFile } from '../vmm/atomic.js';
import { bundleIsFresh } from '../vmm/bundle-entry.js';
import { detectCgroups, type CgroupDriver } from './cgroups.js';
import { HostError } from './errors.js';
import { HostMeter } from './meter.js';
import { checkedCdrom, checkedDisplay, checkedDiskMeter, checkedMemory, checkedSsh, describeExit, logTail, readExitFile, restartDelayMs, shouldRestart, spawnVmProcess } from './vm-process.js';
import type { HostPaths } from './paths.js';
import { processAlive, processCpuSeconds, readProcStat } from './procfs.js';
import { VmStore, checkVmName, validateDefinition, type VmExit } from './store.js';
import { NetworkConfigError, checkPortsFree, freeLoopbackPort } from '../vmm/network.js';
import type { VmDefinition, VmState } from './types.js';
import type { DiskAttachResult, HostInfo, TopRow, UsageReport, VmCreateInput, VmInfo, VmPatch } from './api-types.js';
import { VmChannel } from './vm-channel.js';
import { ALIVE, type Entry } from './entry.js';
import { hostInfo, topRows, usageReport, vmInfo, type ReportSources } from './reports.js';
import { NetworkManager } from './network-manager.js';
import { MemoryBalancer } from './memory-balancer.js';
import { MemoryAdmission } from './memory-admission.js';
import { VmChanges } from './vm-changes.js';
import { VmCreation } from './vm-creation.js';
import { VmAccess } from './vm-access.js';
import { DiskArbiter } from './disk-arbiter.js';
import type { HostMemory } from './memory-plan.js';

const BUNDLED_VMM = fileURLToPath(new URL('../../bundle/vmm.js', import.meta.url));
const TSC_VMM = fileURLToPath(new URL('../vmm/main.js', import.meta.url));
/**
 * The VM process entry point: the bundle's (dist/bundle/vmm.js, scripts/bundle.js) when it
 * was built after tsc's output, which starts a VM with fewer files to load; else tsc's
 * (dist/src/vmm/main.js).
 */
export const DEFAULT_VMM_ENTRY = bundleIsFresh(BUNDLED_VMM, TSC_VMM) ? BUNDLED_VMM : TSC_VMM;

/** Options of {@link Host.open}. */
export interface HostOptions {
  paths: HostPaths;
  /** Memory overcommit ratio; default: `overcommit` of host.json, else 1.0. */
  overcommit?: number;
  /** Cgroup driver (default: {@link detectCgroups} on `cgroupRoot`). */
  cgroups?: CgroupDriver;
  /** Cgroup file system root (default /sys/fs/cgroup). */
  cgroupRoot?: string;
  /** Script run as the VM process (default `$TSVISOR_VMM`, else {@link DEFAULT_VMM_ENTRY}). */
  vmmEntry?: string;
  /** Liveness and CPU sampling period (default 500 ms). */
  pollMs?: number;
  /** Ledger flush period (default 5000 ms). */
  flushMs?: number;
  /** How long a start waits for the control socket (default 60 s). */
  startTimeoutMs?: number;
  /** Host capacity (default: this machine's). */
  capacity?: HostCapacity;
  /** Make sure the default image is built before starting a VM that uses it (default true). */
  ensureImage?: boolean;
  /** Environment of VM processes (default process.env; TSVISOR_HOME is always set). */
  env?: NodeJS.ProcessEnv;
  /** Log sink (one line per call, no trailing newline). */
  log?: (line: string) => void;
  /** The host's memory for the dynamic policy (default: /proc/meminfo and /proc/pressure/memory). */
  hostMemory?: () => HostMemory | null;
  /** How long a start or a growth waits for dynamic VMs to give memory back (default 30 s). */
  roomWaitMs?: number;
}

/** `host.json`: host policy. */
export interface HostConfigFile {
  overcommit?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** How long `current` waits for a VM process's status before it answers with the last poll's, in ms. */
const STATUS_NOW_MS = 1000;

/** Read `host.json` (overcommit ratio); invalid values are ignored. */
export function readHostConfig(path: string): HostConfigFile {
  const c = readJsonFile<HostConfigFile>(path) ?? {};
  return typeof c.overcommit === 'number' && c.overcommit > 0 && Number.isFinite(c.overcommit) ? { overcommit: c.overcommit } : {};
}

/** The supervisor of all VMs of one tsvisor home. */
export class Host {
  readonly paths: HostPaths;
  readonly store: VmStore;
  readonly cgroups: CgroupDriver;
  /** CPU, memory, disk and network metering (the ledger and top's rates). */
  readonly meter: HostMeter;
  readonly capacity: HostCapacity;
  readonly overcommit: number;
  readonly startedAt = Date.now();
  private readonly opts: HostOptions;
  private readonly vmm: string;
  private readonly entries = new Map<string, Entry>();
  private readonly timers: NodeJS.Timeout[] = [];
  private ticks = 0;
  private closed = false;
  private readonly logLine: (line: string) => void;

  /** The virtual networks and their switches. */
  readonly networks: NetworkManager;
  /** Divides memory among the VMs on the dynamic policy. */
  private readonly balancer: MemoryBalancer;
  /** The memory budget and what may take from it. */
  private readonly admission: MemoryAdmission;
  /** Shares a contended host disk among the VMs by weight. */
  private readonly disks: DiskArbiter;
  /** `vm set` and `vm disk`: changes to definitions and running VMs. */
  private readonly changes: VmChanges;
  /** Defining VMs (vm-creation.ts). */
  private readonly creation: VmCreation;
  /** The ways into a running VM: keys, screen, VNC, exec, console (vm-access.ts). */
  readonly access: VmAccess;

  private constructor(opts: HostOptions) {
    this.opts = opts;
    this.paths = opts.paths;
    this.logLine = opts.log ?? (() => {});
    mkdirSync(this.paths.vms, { recursive: true, mode: 0o700 });
    this.store = new VmStore(this.paths.vms);
    this.networks = new NetworkManager({
      dir: join(this.paths.home, 'networks'),
      socketDir: this.switchDir,
      allowed: (vm, mac, network) => this.entries.get(vm)?.def.nics?.some((n) => n.kind === 'network' && n.network === network && n.mac === mac) ?? false,
      log: (l) => this.log(l),
    });
    this.cgroups = opts.cgroups ?? detectCgroups(opts.cgroupRoot);
    this.meter = new HostMeter(this.paths.usage, this.cgroups);
    this.capacity = opts.capacity ?? hostCapacity();
    const ratio = opts.overcommit ?? readHostConfig(this.paths.hostConfig).overcommit ?? 1;
    if (!(ratio > 0) || !Number.isFinite(ratio)) throw new HostError('invalid_argument', `overcommit ${ratio}: must be a positive number`);
    this.overcommit = ratio;
    this.vmm = opts.vmmEntry ?? opts.env?.TSVISOR_VMM ?? process.env.TSVISOR_VMM ?? DEFAULT_VMM_ENTRY;
    this.balancer = new MemoryBalancer({
      entries: this.entries,
      limitBytes: () => this.budget().limitBytes,
      post: (name, path, body) => this.channel(name).post(path, body),
      changed: (name, e) => this.save(name, e),
      log: (l) => this.log(l),
      hostMemory: opts.hostMemory,
    });
    this.admission = new MemoryAdmission({ entries: this.entries, capacity: this.capacity, overcommit: this.overcommit, balancer: this.balancer, roomWaitMs: opts.roomWaitMs });
    this.disks = new DiskArbiter({ entries: this.entries, post: (name, path, body) => this.channel(name).post(path, body), log: (l) => this.log(l) });
    this.changes = new VmChanges({
      store: this.store, cgroups: this.cgroups, meter: this.meter, capacity: this.capacity, admission: this.admission, balancer: this.balancer,
      locked: (name, fn) => this.locked(name, fn),
      channel: (name) => this.channel(name),
      noteStatus: (name, e, st) => this.noteStatus(name, e, st),
      save: (name, e) => this.save(name, e),
      checkNetworksExist: (def) => this.checkNetworksExist(def),
      get: (name) => this.get(name),
      log: (line) => this.log(line),
    });
    this.access = new VmAccess({
      entry: (name) => this.entry(name),
      channel: (name) => this.channel(name),
      noteStatus: (name, e, st) => this.noteStatus(name, e, st),
    });
    this.creation = new VmCreation({
      store: this.store, capacity: this.capacity, home: this.paths.home,
      has: (name) => this.entries.has(name),
      added: (def) => this.entries.set(def.name, { def, rt: { state: 'stopped', restarts: 0 }, lock: Promise.resolve(), statusBusy: false, waiters: [], deadTicks: 0 }),
      checkNetworksExist: (def) => this.checkNetworksExist(def),
      get: (name) => this.get(name),
      log: (line) => this.log(line),
    });
  }

  /**
   * Open the registry under `opts.paths`, re-adopt the VM processes still running,
   * mark the others that died while no daemon watched (and restart them as their
   * policy says), and start supervising.
   */
  static async open(opts: HostOptions): Promise<Host> {
    const h = new Host(opts);
    if (h.cgroups.warning) h.log(`warning: ${h.cgroups.warning}`);
    else h.log(`cgroup ${h.cgroups.version} at ${h.cgroups.root}`);
    h.log(`capacity ${h.capacity.cores} cores, ${h.capacity.memoryBytes} bytes; overcommit ${h.overcommit}; VM process ${h.vmm}`);
    // every VM first (so admission counts them all), then adopt or record each
    for (const name of h.store.names()) {
      const def = h.store.load(name);
      if (!def) continue;
      h.entries.set(name, { def, rt: h.store.loadRuntime(name), lock: Promise.resolve(), statusBusy: false, waiters: [], deadTicks: 0 });
    }
    await h.networks.open(); // before adopting: running VMs reconnect their cards
    for (const [name, e] of h.entries) await h.adopt(name, e);
    const poll = opts.pollMs ?? 500;
    h.timers.push(setInterval(() => h.tick(), poll));
    h.timers.push(setInterval(() => h.flush(), opts.flushMs ?? 5000));
    for (const t of h.timers) t.unref();
    h.flush();
    return h;
  }

  private log(line: string): void { this.logLine(line); }

  /** Folder of the virtual networks' switch sockets (VM processes get it as TSVISOR_SWITCH_DIR). */
  private get switchDir(): string { return join(this.paths.runDir, 'net'); }

  /** Every virtual network a definition names must exist. @throws HostError('invalid_argument'). */
  private checkNetworksExist(def: VmDefinition): void {
    for (const n of def.nics ?? []) {
      if (n.kind === 'network' && !this.networks.has(n.network)) throw new HostError('invalid_argument', `no network ${n.network} (tsvisor network create ${n.network})`);
    }
  }

  /**
   * Deletes virtual network `name`.
   * @throws HostError: not_found; conflict while a VM definition has a card on it.
   */
  deleteNetwork(name: string): void {
    this.networks.get(name);
    const users = [...this.entries].filter(([, e]) => e.def.nics?.some((n) => n.kind === 'network' && n.network === name)).map(([n]) => n).sort();
    if (users.length) throw new HostError('conflict', `network ${name} is used by ${users.join(', ')}: remove their cards first (vm set NAME --network ...)`);
    this.networks.delete(name);
  }

  /** The control channel of VM `name`'s process. */
  private channel(name: string): VmChannel {
    return new VmChannel(this.store.paths(name).dir);
  }

  /** Stop supervising (the VM processes keep running) and write the ledger. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    for (const e of this.entries.values()) if (e.restartTimer) clearTimeout(e.restartTimer);
    for (const [name, e] of this.entries) this.meter.sampleCpu(name, e.rt.pid);
    this.flush(true);
    for (const e of this.entries.values()) {
      if (e.child) { e.child.removeAllListeners('exit'); e.child.unref(); }
    }
    this.networks.close();
  }

  /** Write the metering ledger (if changed). */
  flush(force = false): void {
    try {
      this.meter.ledger.flush(force);
    } catch (e) {
      this.log(`cannot write ${this.paths.usage}: ${(e as Error).message}`);
    }
  }

  // ---------------------------------------------------------------- queries

  private entry(name: string): Entry {
    checkVmName(name);
    const e = this.entries.get(name);
    if (!e) throw new HostError('not_found', `no VM named ${name}`);
    return e;
  }

  /** Run `fn` with VM `name`'s operation lock (operations on one VM never overlap). */
  private locked<T>(name: string, fn: (e: Entry) => Promise<T>): Promise<T> {
    const e = this.entry(name);
    const run = e.lock.then(() => fn(this.entry(name)));
    e.lock = run.catch(() => undefined);
    return run;
  }

  /** RAM promised to VM processes that are alive (a dynamic VM: its memory or its ceiling, the larger). */
  allocatedBytes(): number {
    return this.admission.allocatedBytes();
  }

  /** The memory budget now. */
  budget(): MemoryBudget {
    return this.admission.budget();
  }

  /** What the reports (reports.ts) are computed from, now. */
  private sources(): ReportSources {
    return {
      entries: this.entries, capacity: this.capacity, overcommit: this.overcommit, budget: this.budget(),
      cgroups: this.cgroups, meter: this.meter, store: this.store, home: this.paths.home, startedAt: this.startedAt,
    };
  }

  /** `GET /v1/host`. */
  info(): HostInfo {
    return hostInfo(this.sources());
  }

  private vmInfo(name: string, e: Entry): VmInfo {
    return vmInfo(this.sources(), name, e);
  }

  /** All VMs, sorted by name. */
  list(): VmInfo[] {
    const src = this.sources(); // once: the budget walks every VM
    return [...this.entries.keys()].sort().map((n) => vmInfo(src, n, this.entries.get(n)!));
  }

  /** One VM; throws HostError('not_found'). */
  get(name: string): VmInfo {
    return this.vmInfo(name, this.entry(name));
  }

  /**
   * One VM as its process sees it now: a running or paused VM's status (guest state, agent,
   * memory, CD-ROM drive and tray lock, display) is asked for first, not taken from the last
   * poll (every 4 ticks), so that what the guest just did shows; when the process does not
   * answer within STATUS_NOW_MS, the last poll's. Throws HostError('not_found').
   */
  async current(name: string): Promise<VmInfo> {
    const e = this.entry(name);
    const pid = e.rt.pid;
    if (pid && (e.rt.state === 'running' || e.rt.state === 'paused')) await this.refreshStatus(name, e, pid, STATUS_NOW_MS);
    return this.get(name);
  }

  /**
   * Ask VM `name`'s process (pid `pid`) for its status and note it, unless the process
   * changed or ended meanwhile; a starting VM becomes running (or paused). A process that
   * does not answer within `timeoutMs` changes nothing. Never throws.
   */
  private async refreshStatus(name: string, e: Entry, pid: number, timeoutMs: number): Promise<void> {
    let st: VmProcessStatus;
    try { st = await this.channel(name).status(timeoutMs); } catch { return; }
    if (e.rt.pid !== pid || !ALIVE.includes(e.rt.state)) return;
    this.noteStatus(name, e, st);
    if (e.rt.state === 'starting') this.setState(name, e, st.state === 'paused' ? 'paused' : 'running');
  }

  // ---------------------------------------------------------------- definitions

  /** Define a new VM (see {@link VmCreation.create}). */
  create(input: VmCreateInput, image?: { name: string; key: string }): VmInfo {
    return this.creation.create(input, image);
  }

  /** Define a VM from a system image (see {@link VmCreation.createFromImage}). */
  createFromImage(input: VmCreateInput & { image: string; diskSizeBytes?: number }): Promise<VmInfo> {
    return this.creation.createFromImage(input);
  }

  /** Define a VM that boots a user's own system disk (see {@link VmCreation.createFromBootDisk}). */
  createFromBootDisk(input: VmCreateInput & { bootDisk: string }): Promise<VmInfo> {
    return this.creation.createFromBootDisk(input);
  }

  /** Create a VM with `make`, first building its cloud-init seed disc (see {@link VmCreation.withCloudInit}). */
  withCloudInit<I extends VmCreateInput, T>(input: I, make: (input: I) => Promise<T>): Promise<T> {
    return this.creation.withCloudInit(input, make);
  }

  /**
   * Change a VM's definition; what a running VM can take applies at once (see
   * {@link VmChanges.update}).
   */
  update(name: string, patch: VmPatch): Promise<VmInfo> {
    return this.changes.update(name, patch);
  }

  /** Grow one of a VM's disks (see {@link VmChanges.resizeDisk}). */
  resizeDisk(name: string, disk: string, bytes: number): Promise<VmInfo> {
    return this.changes.resizeDisk(name, disk, bytes);
  }

  /** Attach a disk image to a VM, running or not (see {@link VmChanges.attachDisk}). */
  attachDisk(name: string, path: string, opts: { readonly?: boolean } = {}): Promise<DiskAttachResult> {
    return this.changes.attachDisk(name, path, opts);
  }

  /** Share a host folder with a stopped VM, or (null) stop sharing it (see {@link VmChanges.setShare}). */
  setShare(name: string, tag: string, share: { path: string; readonly?: boolean } | null): Promise<VmInfo> {
    return this.changes.setShare(name, tag, share);
  }

  /** Insert a disc in a VM's CD-ROM drive, or (null) eject it (see {@link VmChanges.setCdrom}). */
  setCdrom(name: string, path: string | null, opts: { force?: boolean } = {}): Promise<VmInfo> {
    return this.changes.setCdrom(name, path, opts);
  }

  /** Detach one of a VM's disks, running or not (see {@link VmChanges.detachDisk}). */
  detachDisk(name: string, disk: string, opts: { force?: boolean } = {}): Promise<VmInfo> {
    return this.changes.detachDisk(name, disk, opts);
  }

  /** Delete a VM (its folder, cgroup; usage totals are kept). A VM whose process is alive needs `force`. */
  delete(name: string, opts: { force?: boolean } = {}): Promise<void> {
    return this.locked(name, async (e) => {
      if (ALIVE.includes(e.rt.state)) {
        if (!opts.force) throw new HostError('conflict', `VM ${name} is ${e.rt.state}: stop it first (or delete with force)`);
        await this.killLocked(name, e);
      }
      if (e.restartTimer) clearTimeout(e.restartTimer);
      this.cgroups.remove(name);
      this.store.remove(name);
      this.meter.ledger.markDeleted(name);
      this.entries.delete(name);
      this.flush();
      this.log(`deleted ${name}`);
    });
  }

  // ---------------------------------------------------------------- lifecycle

  private save(name: string, e: Entry): void {
    try {
      this.store.saveRuntime(name, e.rt);
    } catch (err) {
      this.log(`cannot write state of ${name}: ${(err as Error).message}`);
    }
  }

  private setState(name: string, e: Entry, state: VmState): void {
    if (e.rt.state === state) return;
    e.rt.state = state;
    this.save(name, e);
  }

  /** Start VM `name`: admission control, cgroup, spawn, wait for its control socket. */
  start(name: string): Promise<VmInfo> {
    return this.locked(name, (e) => this.startLocked(name, e, false));
  }

  private async startLocked(name: string, e: Entry, auto: boolean): Promise<VmInfo> {
    if (this.closed) throw new HostError('unavailable', 'the daemon is shutting down');
    if (ALIVE.includes(e.rt.state)) throw new HostError('conflict', `VM ${name} is already ${e.rt.state}`);
    if (e.restartTimer) { clearTimeout(e.restartTimer); e.restartTimer = undefined; }
    if (!auto) e.rt.shortRuns = 0;
    validateDefinition(e.def, { cores: this.capacity.cores });
    this.checkNetworksExist(e.def);
    if (!e.def.kernel && this.opts.ensureImage !== false) {
      try {
        await ensureDefaultImage({
          home: this.paths.home, quiet: true,
          onProgress: (ev) => { if (ev.kind === 'warning') this.log(`image: ${ev.message}`); },
        });
      } catch (err) {
        throw new HostError('unavailable', `cannot start ${name}: the default image is not available: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    if (ALIVE.includes(e.rt.state)) throw new HostError('conflict', `VM ${name} is already ${e.rt.state}`);
    // a published port in use fails the start here, with nothing started
    try {
      await checkPortsFree(e.def.publish ?? []);
    } catch (err) {
      if (err instanceof NetworkConfigError) throw new HostError('conflict', `cannot start ${name}: ${err.message}`);
      throw err;
    }
    // `vm ssh` goes through a loopback port chosen at each start, published to the guest's port 22
    const sshPort = e.def.ssh && e.def.nics?.some((n) => n.kind === 'user') ? await freeLoopbackPort() : 0;
    if (ALIVE.includes(e.rt.state)) throw new HostError('conflict', `VM ${name} is already ${e.rt.state}`);
    const releaseRoom = await this.admission.admitStart(name, e);
    try {
      if (ALIVE.includes(e.rt.state)) throw new HostError('conflict', `VM ${name} is already ${e.rt.state}`);
      // admission and reservation in one synchronous step: two starts cannot both pass on the same free memory
      this.admission.checkStart(name, e);
      e.intent = undefined;
      e.guest = undefined;
      this.meter.resetRates(name);
      e.deadTicks = 0;
      e.rt = {
        ...e.rt, state: 'starting', memoryBytes: e.def.memoryBytes, startedAt: Date.now(), pid: undefined, starttime: undefined,
        // a dynamic VM process may hold what it starts with until the balancer grants more
        ceilingBytes: e.def.memoryPolicy === 'dynamic' ? e.def.memoryBytes : undefined,
      };
    } finally {
      releaseRoom(); // booked now (or not started): the balancer may divide it again
    }
    const p = this.store.paths(name);
    this.save(name, e);

    let cgroupOk = false;
    if (this.cgroups.version !== 'none') {
      try {
        this.cgroups.create(name);
        this.cgroups.apply(name, e.def.cpuWeight, e.def.cpuCap);
        cgroupOk = true;
      } catch (err) {
        this.log(`warning: ${name}: cannot prepare cgroup ${this.cgroups.path(name)}: ${(err as Error).message}; CPU weight/cap not enforced`);
      }
    }

    rmSync(p.sock, { force: true });
    rmSync(p.exit, { force: true });
    let child: ChildProcess & { pid: number };
    try {
      child = await spawnVmProcess(this.vmm, p.dir, p.log,
        { ...(this.opts.env ?? process.env), TSVISOR_HOME: this.paths.home, TSVISOR_SWITCH_DIR: this.switchDir, TSVISOR_SSH_PORT: String(sshPort) });
    } catch (err) {
      e.rt.state = 'stopped';
      this.save(name, e);
      throw new HostError('internal', `cannot start ${name}: ${(err as Error).message}`);
    }
    const pid = child.pid;
    e.child = child;
    child.once('exit', (code, signal) => this.onGone(name, pid, code, signal));
    child.on('error', (err) => this.log(`${name}: process error: ${err.message}`));

    // into the cgroup before the VM process creates its vCPU threads
    let cgroupBaseNs: number | null = null;
    if (cgroupOk) {
      try {
        this.cgroups.attach(name, pid);
        cgroupBaseNs = this.cgroups.usageNs(name) ?? null;
      } catch (err) {
        this.log(`warning: ${name}: cannot move pid ${pid} into ${this.cgroups.path(name)}: ${(err as Error).message}`);
      }
    }
    const stat = readProcStat(pid);
    const cpuBase = stat ? processCpuSeconds(pid) ?? 0 : 0;
    e.rt.pid = pid;
    e.rt.starttime = stat?.starttime ?? 0;
    this.meter.ledger.beginRun(name, { pid, starttime: e.rt.starttime, memoryBytes: e.def.memoryBytes, cpuBaseSeconds: cgroupBaseNs === null ? 0 : cpuBase, cgroupBaseNs });
    try { writeFileAtomic(p.pid, `${pid}\n`, 0o644); } catch { /* the VM folder vanished */ }
    this.save(name, e);
    this.log(`started ${name}: pid ${pid}${auto ? ` (automatic restart ${e.rt.restarts})` : ''}`);

    // wait for the control channel
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 60_000);
    const channel = this.channel(name);
    while (Date.now() < deadline) {
      if (e.rt.pid !== pid || !ALIVE.includes(e.rt.state)) {
        throw new HostError('internal', `VM ${name} exited while starting${e.rt.lastExit ? ` (${describeExit(e.rt.lastExit)})` : ''}${logTail(p.log)}`);
      }
      if (existsSync(p.sock)) {
        try {
          const st = await channel.status(1000);
          this.noteStatus(name, e, st);
          if (e.rt.state === 'starting') this.setState(name, e, st.state === 'paused' ? 'paused' : 'running');
          return this.get(name);
        } catch { /* not listening yet */ }
      }
      await sleep(100);
    }
    this.log(`warning: ${name}: control socket ${p.sock} did not answer within the start time limit`);
    return this.get(name);
  }

  private noteStatus(name: string, e: Entry, st: VmProcessStatus): void {
    e.guest = { state: st.state, agent: !!st.agent, at: Date.now(), ssh: checkedSsh(st.ssh), memory: checkedMemory(st.memory), disk: checkedDiskMeter(st.diskRate), cdrom: checkedCdrom(st.cdrom), display: checkedDisplay(st.display) };
    const now = e.guest.memory?.currentBytes;
    // a dynamic VM moves its own memory: the books and the meter follow it
    if (e.guest.memory?.policy && now !== undefined && now !== e.rt.memoryBytes && ALIVE.includes(e.rt.state)) {
      e.rt.memoryBytes = now;
      this.meter.ledger.setRunMemory(name, now);
    }
    this.meter.noteStatus(name, st);
    if (e.rt.state === 'running' && st.state === 'paused') this.setState(name, e, 'paused');
    else if (e.rt.state === 'paused' && st.state !== 'paused' && st.state !== 'stopping') this.setState(name, e, 'running');
  }

  /** Resolve when the process of `e` is gone, or after `ms` (false). */
  private waitGone(e: Entry, pid: number, ms: number): Promise<boolean> {
    if (e.rt.pid !== pid || !ALIVE.includes(e.rt.state)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => { clearTimeout(t); resolve(true); };
      const t = setTimeout(() => {
        e.waiters = e.waiters.filter((w) => w !== done);
        resolve(!processAlive(pid, e.rt.starttime || undefined));
      }, ms);
      e.waiters.push(done);
    });
  }

  private signal(pid: number, sig: NodeJS.Signals): void {
    try { process.kill(pid, sig); } catch { /* gone */ }
  }

  /** Gracefully stop VM `name` (guest power-off), forced (SIGKILL) after `timeoutMs` (default 30 s). */
  stop(name: string, opts: { timeoutMs?: number } = {}): Promise<VmInfo> {
    return this.locked(name, async (e) => {
      this.cancelRestart(e);
      if (!ALIVE.includes(e.rt.state) || !e.rt.pid) throw new HostError('conflict', `VM ${name} is not running (${e.rt.state})`);
      const pid = e.rt.pid;
      const timeoutMs = opts.timeoutMs ?? 30_000;
      e.intent = 'stop';
      const wasPaused = e.rt.state === 'paused';
      this.setState(name, e, 'stopping');
      const ch = this.channel(name);
      if (wasPaused) await ch.post('/resume', {}, 2000).catch(() => undefined);
      let asked = true;
      try {
        await ch.post('/stop', { timeoutMs }, 5000);
      } catch (err) {
        asked = false;
        this.log(`${name}: POST /stop failed (${(err as Error).message}); sending SIGTERM`);
        this.signal(pid, 'SIGTERM');
      }
      if (!(await this.waitGone(e, pid, timeoutMs + (asked ? 5000 : 0)))) {
        this.log(`${name}: did not stop within ${timeoutMs} ms; killing pid ${pid}`);
        this.signal(pid, 'SIGKILL');
        await this.waitGone(e, pid, 5000);
      }
      await this.reapIfNeeded(name, e, pid);
      return this.get(name);
    });
  }

  /** Kill VM `name` at once (POST /kill, then SIGKILL). */
  kill(name: string): Promise<VmInfo> {
    return this.locked(name, async (e) => {
      this.cancelRestart(e);
      if (!ALIVE.includes(e.rt.state) || !e.rt.pid) throw new HostError('conflict', `VM ${name} is not running (${e.rt.state})`);
      await this.killLocked(name, e);
      return this.get(name);
    });
  }

  private async killLocked(name: string, e: Entry): Promise<void> {
    const pid = e.rt.pid;
    if (!pid) { this.setState(name, e, 'stopped'); return; }
    e.intent = 'kill';
    await this.channel(name).post('/kill', {}, 1000).catch(() => undefined);
    if (!(await this.waitGone(e, pid, 2000))) {
      this.signal(pid, 'SIGKILL');
      await this.waitGone(e, pid, 5000);
    }
    await this.reapIfNeeded(name, e, pid);
  }

  /** The process is gone but no exit was recorded yet (adopted process, poll not yet run): record it now. */
  private async reapIfNeeded(name: string, e: Entry, pid: number): Promise<void> {
    if (e.rt.pid === pid && ALIVE.includes(e.rt.state) && !processAlive(pid, e.rt.starttime || undefined)) {
      if (e.child && e.child.exitCode === null && e.child.signalCode === null) await sleep(50); // let the exit event in
      if (e.rt.pid === pid && ALIVE.includes(e.rt.state)) this.onGone(name, pid, null, null);
    }
  }

  /** Pause VM `name` (all harts park). */
  pause(name: string): Promise<VmInfo> {
    return this.locked(name, async (e) => {
      if (e.rt.state === 'paused') return this.get(name);
      if (e.rt.state !== 'running') throw new HostError('conflict', `VM ${name} is not running (${e.rt.state})`);
      await this.channel(name).post('/pause', {}, 5000);
      this.setState(name, e, 'paused');
      return this.get(name);
    });
  }

  /** Resume a paused VM. */
  resume(name: string): Promise<VmInfo> {
    return this.locked(name, async (e) => {
      if (e.rt.state === 'running') return this.get(name);
      if (e.rt.state !== 'paused') throw new HostError('conflict', `VM ${name} is not paused (${e.rt.state})`);
      await this.channel(name).post('/resume', {}, 5000);
      this.setState(name, e, 'running');
      return this.get(name);
    });
  }

  /** Stop VM `name` if it runs (gracefully, then forced), then start it. */
  async restart(name: string, opts: { timeoutMs?: number } = {}): Promise<VmInfo> {
    const e = this.entry(name);
    if (ALIVE.includes(e.rt.state)) await this.stop(name, opts);
    return this.start(name);
  }

  private cancelRestart(e: Entry): void {
    if (e.restartTimer) { clearTimeout(e.restartTimer); e.restartTimer = undefined; }
  }

  // ---------------------------------------------------------------- metering

  /** `GET /v1/usage`: totals per VM (running VMs sampled now). */
  usage(): UsageReport {
    return usageReport(this.sources());
  }

  /** `GET /v1/top`: live CPU %, memory, disk and network rates per VM. */
  top(): TopRow[] {
    return topRows(this.sources());
  }

  // ---------------------------------------------------------------- supervision

  /** Adopt the process of a VM found on disk, or record that it ended while no daemon watched. */
  private async adopt(name: string, e: Entry): Promise<void> {
    const p = this.store.paths(name);
    let pid = e.rt.pid;
    if (!pid) {
      const n = Number.parseInt(safeRead(p.pid), 10);
      if (Number.isInteger(n) && n > 0) pid = n;
    }
    const wasAlive = ALIVE.includes(e.rt.state);
    if (pid && processAlive(pid, e.rt.starttime || undefined)) {
      let st: VmProcessStatus | undefined;
      try { st = await this.channel(name).status(2000); } catch { /* booting, or busy */ }
      if (st && typeof st.pid === 'number' && st.pid !== pid) st = undefined;
      if (st || (e.rt.pid === pid && e.rt.starttime)) {
        const stat = readProcStat(pid);
        e.rt.pid = pid;
        e.rt.starttime = stat?.starttime ?? e.rt.starttime ?? 0;
        e.rt.memoryBytes = e.rt.memoryBytes ?? (st?.memoryBytes || e.def.memoryBytes);
        e.rt.startedAt = e.rt.startedAt ?? st?.startedAt ?? Date.now();
        if (e.rt.state === 'stopping' || st?.state === 'stopping') {
          // a stop was asked before the daemon restarted: it is still a stop (no restart after it)
          e.rt.state = 'stopping';
          e.intent = 'stop';
        } else {
          e.rt.state = st ? (st.state === 'paused' ? 'paused' : 'running') : (wasAlive && e.rt.state !== 'starting' ? e.rt.state : 'running');
        }
        let cgroupBaseNs: number | null = null;
        if (this.cgroups.version !== 'none') {
          try {
            this.cgroups.create(name);
            this.cgroups.apply(name, e.def.cpuWeight, e.def.cpuCap);
            this.cgroups.attach(name, pid); // a no-op if it is there already
            cgroupBaseNs = this.cgroups.usageNs(name) ?? null;
          } catch (err) {
            this.log(`warning: ${name}: cannot re-attach pid ${pid} to its cgroup: ${(err as Error).message}`);
          }
        }
        const existing = this.meter.ledger.run(name);
        if (!(existing && existing.pid === pid && existing.starttime === e.rt.starttime)) {
          // never metered by a daemon (ledger lost): count the process's whole CPU time so far
          this.meter.ledger.beginRun(name, {
            pid, starttime: e.rt.starttime, memoryBytes: e.rt.memoryBytes,
            cpuBaseSeconds: cgroupBaseNs === null ? 0 : processCpuSeconds(pid) ?? 0, cgroupBaseNs,
          });
        }
        if (st) this.noteStatus(name, e, st);
        this.save(name, e);
        this.log(`adopted ${name}: pid ${pid} (${e.rt.state})`);
        return;
      }
    }
    if (wasAlive) {
      // it ended while no daemon was watching
      const x = pid ? readExitFile(this.store.paths(name).exit, pid) : null;
      const code = x?.code ?? null;
      const reason: VmExit['reason'] = e.rt.state === 'stopping' ? 'requested' : code === 0 ? 'poweroff' : 'crash';
      this.recordExit(name, e, { at: x?.at ?? Date.now(), code, signal: null, reason });
      this.maybeRestart(name, e, reason);
    } else if (e.rt.lastExit && (e.rt.state === 'crashed' || e.rt.state === 'stopped')) {
      // an automatic restart that was waiting out its backoff when the last daemon stopped
      this.maybeRestart(name, e, e.rt.lastExit.reason);
    }
  }

  /** The VM process `pid` of `name` ended. Idempotent. */
  private onGone(name: string, pid: number, code: number | null, signal: NodeJS.Signals | null): void {
    const e = this.entries.get(name);
    if (!e || e.rt.pid !== pid || !ALIVE.includes(e.rt.state)) {
      if (e && e.child?.pid === pid) e.child = undefined;
      return;
    }
    if (e.child?.pid === pid) e.child = undefined;
    if (code === null && signal === null) code = readExitFile(this.store.paths(name).exit, pid)?.code ?? null;
    const reason: VmExit['reason'] = e.intent ? 'requested' : code === 0 ? 'poweroff' : 'crash';
    this.recordExit(name, e, { at: Date.now(), code, signal, reason });
    this.maybeRestart(name, e, reason);
  }

  private recordExit(name: string, e: Entry, exit: VmExit): void {
    this.meter.sampleCpu(name, e.rt.pid); // the cgroup still counts the last moments
    this.meter.ledger.endRun(name, exit.at);
    const ranMs = e.rt.startedAt ? exit.at - e.rt.startedAt : 0;
    // a run that ended by itself soon after its start makes the next automatic restart wait longer
    const shortRuns = exit.reason === 'requested' ? 0 : ranMs > 30_000 ? 1 : (e.rt.shortRuns ?? 0) + 1;
    e.rt = { state: exit.reason === 'crash' ? 'crashed' : 'stopped', restarts: e.rt.restarts, lastExit: exit, shortRuns };
    e.intent = undefined;
    e.guest = undefined;
    this.meter.resetRates(name);
    const p = this.store.paths(name);
    rmSync(p.pid, { force: true });
    this.cgroups.remove(name);
    this.save(name, e);
    this.flush();
    this.log(`${name} ${e.rt.state}: ${describeExit(exit)}`);
    const w = e.waiters;
    e.waiters = [];
    for (const f of w) f();
  }

  private maybeRestart(name: string, e: Entry, reason: VmExit['reason']): void {
    if (this.closed || !shouldRestart(e.def.restart, reason)) return;
    const delay = restartDelayMs(Math.max(0, (e.rt.shortRuns ?? 0) - 1));
    this.log(`${name}: restart policy ${e.def.restart}: restarting in ${delay} ms`);
    this.cancelRestart(e);
    e.restartTimer = setTimeout(() => {
      e.restartTimer = undefined;
      if (!this.entries.has(name) || this.closed) return;
      this.locked(name, async (cur) => {
        if (ALIVE.includes(cur.rt.state)) return;
        cur.rt.restarts++;
        await this.startLocked(name, cur, true);
      }).catch((err) => this.log(`${name}: automatic restart failed: ${(err as Error).message}`));
    }, delay);
    e.restartTimer.unref();
  }

  /** One supervision tick: liveness, CPU and memory metering, and (every 4th) the VM's /status. */
  private tick(): void {
    if (this.closed) return;
    this.ticks++;
    const now = Date.now();
    for (const [name, e] of this.entries) {
      if (!ALIVE.includes(e.rt.state) || !e.rt.pid) continue;
      const pid = e.rt.pid;
      if (!processAlive(pid, e.rt.starttime || undefined)) {
        // own children report through their exit event (with the exit status); give it a moment
        if (e.child?.pid === pid && ++e.deadTicks < 3) continue;
        this.onGone(name, pid, null, null);
        continue;
      }
      this.meter.tick(name, pid, now);
      if ((this.ticks % 4 === 0 || e.rt.state === 'starting') && !e.statusBusy) {
        e.statusBusy = true;
        void this.refreshStatus(name, e, pid, 1500).finally(() => { e.statusBusy = false; });
      }
    }
    // with the statuses of the tick before, which have come back by now
    if (this.ticks % 4 === 1) {
      this.balancer.rebalance().catch((err) => this.log(`memory balancing: ${(err as Error).message}`));
      this.disks.rebalance().catch((err) => this.log(`disk sharing: ${(err as Error).message}`));
    }
  }
}

function safeRead(path: string): string {
  try { return readFileSync(path, 'utf8'); } catch { return ''; }
}


