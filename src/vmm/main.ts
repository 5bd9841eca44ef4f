/**
 * The VM process: `node dist/src/vmm/main.js <vmDir>`, one OS process per VM, started
 * detached by the host daemon (it outlives the daemon and keeps serving).
 *
 * Files in `<vmDir>`:
 *
 *   config.json     read: the VmDefinition (only its machine part is used, vm-config.ts)
 *   vm.sock         written: the control channel (control-api.ts), mode 0600; a stale
 *                   one is removed at start, a live one makes this process refuse to start
 *   vm.pid          written atomically once the socket listens; removed at exit
 *   console.log     all serial console output, appended; rotated at 1 MiB to console.log.1
 *   vm.log          lifecycle events, one timestamped line each; the last line says why
 *                   the process exited (the daemon may also point stdout/stderr here:
 *                   open it in append mode)
 *   vm.exit         written at exit: JSON `{ code, reason, pid, at }` (at: ms since the epoch)
 *
 * Exit status: 0 when the guest powered off, or after a stop or kill asked by the host
 * (POST /stop, POST /kill, SIGTERM, SIGINT); 1 when the VM failed (bad configuration,
 * unreadable disk or image, a device model or engine error, the guest reporting failure
 * through the test device); 2 for a bad command line. A guest reboot restarts the guest
 * in the same process (the state goes back to `booting`).
 *
 * The guest runs its login shell on the serial console (no command archive). The
 * control channel's console viewers see and type into it.
 */
import { accessSync, appendFileSync, constants, readFileSync, unlinkSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import type { Duplex } from 'node:stream';
import { Vm } from './vm.js';
import { ConsoleHub } from './console-hub.js';
import { ControlServer, ControlHttpError, type ControlTarget, type ExecOutput, DEFAULT_STOP_TIMEOUT_MS } from './control.js';
import type { VmProcessStatus } from './control-api.js';
import { readVmConfig, vmDirPaths, VmConfigError, type VmDirPaths, type VmProcessConfig } from './vm-config.js';
import { kernelBootargs, shellQuote } from './boot-config.js';
import { fileBlob } from './boot-files.js';
import { prestartHarts } from './hart-threads.js';
import { AgentClient, AgentError } from './agent.js';
import { StdioCharBackend } from '../devices/node/stdio-char.js';
import { VmDisks, DiskChangeError, type GuestShell } from './disks.js';
import { VmCdrom } from './cdrom.js';
import { VmShares, mountSharesAgentScript } from './shares.js';
import { displayOf } from './display.js';
import { VmDisplay } from './vm-display.js';
import { everyBootSteps, instanceCheckScript, instanceSteps, parseCloudInit, readSeedIso, statusScript, type CloudInitPlan, type CloudInitStep } from './cloud-init.js';
import { DISPLAY_SLOTS, VIRTIO_SLOTS } from '../machine/board.js';
import { loadEngineModule } from '../engine/node/module.js';
import { ensureDefaultImage } from '../images/index.js';
import type { PowerEvent } from '../devices/syscon.js';
import { parseMac } from '../devices/net/frame.js';
import { startNetLinks, type NetLink } from './net-links.js';
import { NO_SSHD_MARK, hostnameScript, sshUserScript } from './guest-setup.js';
import { nicAttachment } from './network.js';
import { VmMemory, MemoryChangeError } from './memory.js';
import { DEFAULT_BUFFER_PERCENT, defaultMinMemory, type MemoryPolicy } from './memory-policy.js';
import { VcpuChangeError, cpuOnlineScript } from './vcpus.js';
import { adviseHugePages, madviseDiscarder } from '../devices/node/discard.js';
import { IoLimiter } from '../devices/io-limiter.js';

/** How often a dynamic VM looks at its guest's memory (ms). */
const POLICY_TICK_MS = 250;
/** The longest a shrink waits for the guest's fresh memory statistics (ms). */
const STATS_WAIT_MS = 3000;

/**
 * Largest exec stdin: the agent runs one `sh -c` command line, which Linux limits to
 * 128 KiB (MAX_ARG_STRLEN), and stdin travels in it as base64.
 */
const MAX_EXEC_STDIN = 64 * 1024;

/** The machine-independent state of the process, across guest reboots. */
class VmProcess implements ControlTarget {
  private readonly paths: VmDirPaths;
  private cfg: VmProcessConfig | null = null;
  private state: VmProcessStatus['state'] = 'booting';
  private readonly startedAt = Date.now();
  private vm: Vm | null = null;
  private agent: AgentClient | null = null;
  private agentReady = false;
  /** The VM name, when it boots a system image (the host name is set through the agent). */
  private get imageHostname(): string | null { return this.cfg?.image ? this.cfg.name : null; }
  /** Disk I/O limits shared by every disk, across reboots. */
  private readonly diskLimiter = new IoLimiter({ iops: 0, bps: 0 });
  /** The disks, across reboots (vmm/disks.ts). */
  private readonly disks = new VmDisks(this.diskLimiter, (line) => this.log(line));
  /** The CD-ROM drive, across reboots (vmm/cdrom.ts). */
  private readonly cdrom = new VmCdrom((line) => this.log(line));
  /** The board whose boot applied the cloud-init seed's every-boot part (once per board, not per agent connection). */
  private cloudInitBoard: Vm | null = null;
  /** The display with its VNC server (vmm/vm-display.ts), or null for none. */
  private display: VmDisplay | null = null;
  /** The shared folders' servers, opened at start (vmm/shares.ts). */
  private shares = new VmShares([]);
  /** The host side of each network card, in card order. */
  private links: NetLink[] = [];
  /** Host loopback port published to the guest's port 22 (`TSVISOR_SSH_PORT`, chosen by the daemon), or 0. */
  private sshPort = 0;
  private sshState: { ready: boolean; error?: string } = { ready: false };
  private netRateMbit = 0;
  /** The guest's memory and balloon, across reboots (set once the configuration is read). */
  private memory: VmMemory | null = null;
  /** vCPUs the guest should keep online, and the harts of the board (vcpus.ts). */
  private vcpus = 1;
  private maxVcpus = 1;
  /** Serializes vCPU changes through the agent. */
  private cpuOps: Promise<unknown> = Promise.resolve();
  private hub: ConsoleHub | null = null;
  private console: StdioCharBackend | null = null;
  private server: ControlServer | null = null;
  private stopTimer: NodeJS.Timeout | null = null;
  private stopDeadline = Infinity;
  private stopRequested = false;
  private finishing = false;
  private ownsPidFile = false;
  /** Another live process serves this folder: touch none of its files. */
  private foreign = false;
  /** Serializes pause/resume. */
  private ops: Promise<unknown> = Promise.resolve();

  constructor(vmDir: string) {
    this.paths = vmDirPaths(vmDir);
  }

  /** Append a timestamped line to vm.log (never throws). */
  log(message: string): void {
    try { appendFileSync(this.paths.log, `${new Date().toISOString()} ${message}\n`); } catch { /* nowhere to report */ }
  }

  /** Append the running guest's hart report (Vm.hartReport()) to vm.log, for a guest that seems stuck. */
  logHartReport(): void {
    if (!this.vm) { this.log('hart report: no guest is running'); return; }
    for (const line of this.vm.hartReport()) this.log(`hart report: ${line}`);
  }

  /** Run the process; never returns (exits). */
  async main(): Promise<never> {
    this.log(`vm process ${process.pid} starting (node ${process.version})`);
    try {
      this.cfg = readVmConfig(this.paths.dir);
    } catch (e) {
      return this.finish(1, e instanceof VmConfigError ? `bad configuration: ${e.message}` : `cannot start: ${(e as Error).message}`);
    }
    const cfg = this.cfg;
    this.netRateMbit = cfg.netRateMbit ?? 0;
    this.memory = new VmMemory(cfg.maxMemoryBytes ?? cfg.memoryBytes, cfg.memoryBytes);
    if (cfg.memoryPolicy === 'dynamic') {
      // until the daemon grants more, the VM may hold what it starts with
      this.memory.setPolicy({
        minBytes: cfg.minMemoryBytes ?? defaultMinMemory(cfg.memoryBytes), ceilingBytes: cfg.memoryBytes,
        bufferPercent: cfg.memoryBufferPercent ?? DEFAULT_BUFFER_PERCENT,
      });
    }
    const policyTimer = setInterval(() => {
      const before = this.memory!.currentBytes;
      const moved = this.memory!.policyTick(Date.now());
      if (moved !== null) this.log(`memory policy: ${before / (1024 * 1024)} MiB -> ${moved / (1024 * 1024)} MiB (${this.memory!.lastMoveFigures})`);
    }, POLICY_TICK_MS);
    policyTimer.unref();
    this.vcpus = cfg.vcpus;
    this.diskLimiter.set({ iops: cfg.diskIops ?? 0, bps: cfg.diskBps ?? 0 });
    this.maxVcpus = cfg.maxVcpus ?? cfg.vcpus;
    prestartHarts(this.maxVcpus); // the hart threads start while networking and the board are set up
    // networking first: a published port that cannot be bound fails the start before the
    // control socket exists, so the daemon reports it as this VM's start error
    const publish = [...cfg.publish ?? []];
    const sshPort = Number(process.env.TSVISOR_SSH_PORT ?? 0);
    if (cfg.ssh && Number.isInteger(sshPort) && sshPort > 0 && sshPort < 65536 && cfg.nics?.some((n) => n.kind === 'user')) {
      // `vm ssh` reaches the guest's sshd through a loopback port the daemon chose
      this.sshPort = sshPort;
      publish.push({ hostIp: '127.0.0.1', hostPort: sshPort, guestPort: 22, protocol: 'tcp' });
    }
    try {
      this.links = await startNetLinks(cfg.name, cfg.nics ?? [], publish, (line) => this.log(line), process.env.TSVISOR_SWITCH_DIR, cfg.netRateMbit ?? 0);
    } catch (e) {
      return this.finish(1, `cannot start networking: ${(e as Error).message}`);
    }
    if (publish.length) this.log(`published ports: ${publish.map((p) => `${p.hostIp ?? '*'}:${p.hostPort}->${p.guestPort}/${p.protocol}`).join(', ')}`);
    this.server = new ControlServer(this);
    try {
      await this.server.listen(this.paths.sock);
    } catch (e) {
      this.server = null;
      if (e instanceof ControlHttpError && e.code === 'already_running') {
        // the folder belongs to a live process: leave its socket, vm.pid and vm.exit alone
        this.foreign = true;
        return this.finish(1, `another VM process is already running for ${this.paths.dir}`);
      }
      return this.finish(1, `cannot listen on ${this.paths.sock}: ${(e as Error).message}`);
    }
    writeFileAtomic(this.paths.pid, `${process.pid}\n`, 0o644);
    this.ownsPidFile = true;
    this.hub = new ConsoleHub({
      logPath: this.paths.consoleLog,
      onInput: (b) => this.console?.push(b),
      onLogError: (e) => this.log(`console.log: ${e.message}`),
    });
    this.console = new StdioCharBackend((bytes) => this.hub!.output(bytes), { onInput: () => this.vm?.kick() });
    this.log(`listening on ${this.paths.sock}; ${cfg.vcpus} vCPU(s), ${cfg.memoryBytes / (1024 * 1024)} MiB${cfg.maxMemoryBytes ? ` of at most ${cfg.maxMemoryBytes / (1024 * 1024)} MiB` : ''}`);

    // boot images and disks; the images are read again at each boot, so that their bytes
    // (tens of MiB) are not kept in this process while the guest runs
    let kernelPath: string;
    let initrdPath: string | undefined;
    try {
      // raw or qcow2 (detected), each with its backing chain; closed (chain included) in finish()
      this.disks.open(cfg.disks);
      if (cfg.cdrom) this.cdrom.open(cfg.cdrom); // an ISO 9660 image, in the CD-ROM drive
      this.shares = new VmShares(cfg.shares ?? []); // host folders, held open until the process ends
      const display = displayOf(cfg.vramBytes, cfg.resolution);
      if (display) {
        this.display = new VmDisplay(display, cfg.name, () => this.vm?.board ?? null, (line) => this.log(line));
        this.log(`VNC server on 127.0.0.1:${await this.display.listen()}`);
      }
      if (cfg.kernel) {
        kernelPath = cfg.kernel;
        initrdPath = cfg.initrd;
      } else {
        const img = await ensureDefaultImage({
          quiet: true,
          onProgress: (ev) => { if (ev.kind === 'warning' || ev.kind === 'step') this.log(`image: ${ev.message}`); },
        });
        kernelPath = img.kernel;
        initrdPath = img.initrd;
      }
      // a missing or unreadable image fails the start here
      accessSync(kernelPath, constants.R_OK);
      if (initrdPath) accessSync(initrdPath, constants.R_OK);
    } catch (e) {
      return this.finish(1, `cannot boot: ${(e as Error).message}`);
    }
    if (this.stopRequested) return this.finish(0, 'stopped before the guest started');
    const engine = loadEngineModule();

    for (;;) {
      let ev: PowerEvent | null;
      try {
        // with harts to spare, the guest brings up only the vCPUs it should have (the agent onlines more later)
        const bootargs = kernelBootargs({ hostname: cfg.name, append: cfg.append, maxcpus: this.maxVcpus > this.vcpus ? this.vcpus : undefined });
        this.vm = await this.createVm(cfg, engine, kernelPath, initrdPath, bootargs);
        this.display?.boardChanged();
        this.newAgent(null);
        this.memory.attach(this.vm.board.balloon);
        this.disks.setBoard(this.vm.board);
        this.cdrom.setBoard(this.vm.board.cdrom);
        if (this.stopRequested) this.vm.stop(); // asked while the board was being built
        else this.state = 'running';
        this.log('guest started');
        ev = await this.vm.run();
      } catch (e) {
        return this.finish(1, (e as Error).message.startsWith('VM failed') ? (e as Error).message : `VM failed: ${(e as Error).message}`);
      }
      this.disks.setBoard(null);
      this.cdrom.setBoard(null);
      this.memory.attach(null);
      this.closeAgent('the guest stopped');
      this.vm = null;
      this.display?.boardChanged();
      if (ev?.kind === 'reset' && !this.stopRequested) {
        this.state = 'booting';
        this.log('guest rebooted');
        continue;
      }
      if (ev === null) return this.finish(0, 'stopped (forced)');
      if (ev.kind === 'fail') return this.finish(1, `VM failed: the guest reported failure (code ${ev.code})`);
      return this.finish(0, ev.kind === 'reset' ? 'guest rebooted while stopping' : 'guest powered off');
    }
  }

  /**
   * Build the board of one boot. The boot images are read here, so that nothing but the
   * guest's RAM holds them once it runs.
   */
  private async createVm(cfg: VmProcessConfig, engine: WebAssembly.Module, kernelPath: string, initrdPath: string | undefined, bootargs: string): Promise<Vm> {
    const disks = this.disks.boardDisks();
    const balloon = this.memory!.boardConfig();
    return await Vm.create({
      ramBytes: this.memory!.maxBytes, harts: this.maxVcpus,
      balloon, discardRam: madviseDiscarder, adviseRam: adviseHugePages, engine, engineKind: cfg.engine,
      kernel: fileBlob(kernelPath), initrd: initrdPath ? fileBlob(initrdPath) : undefined, bootargs,
      disks,
      cdrom: this.cdrom.boardConfig(),
      shares: this.shares.boardConfig(),
      ...(this.display ? { display: this.display.boardConfig() } : {}),
      // every virtio slot the other devices leave is kept for disks attached while the guest runs
      hotplugSlots: Math.max(0, VIRTIO_SLOTS - disks.length - 1 - this.links.length - 1 - (balloon ? 1 : 0) - this.shares.count - (this.display ? DISPLAY_SLOTS : 0)),
      nics: this.links.map((l, i) => ({ backend: l.backend, mac: parseMac(cfg.nics![i].mac) })),
      console: this.console!,
      clock: { nowNs: () => BigInt(Date.now()) * 1_000_000n },
      agent: {
        onData: (b) => this.agent?.receive(b),
        onOpen: (open) => { if (!open) this.newAgent('the guest agent closed its port'); },
      },
    });
  }

  /** Start talking to the guest agent of the current board afresh (after boot, or when the agent went away). */
  private newAgent(why: string | null): void {
    if (why) this.log(why);
    this.closeAgent(why ?? 'replaced');
    const port = this.vm?.board.agent;
    if (!port) return;
    const client = new AgentClient(port);
    this.agent = client;
    client.ready().then(() => {
      if (this.agent !== client) return;
      if (this.stopRequested) {
        this.agentReady = true;
        this.log('asking the guest agent to power off');
        client.poweroff();
        return;
      }
      void this.setUpGuest(client); // ready for exec once the boot-time set-up is done
    }, () => { /* closed before it answered */ });
  }

  /**
   * What the guest is given once its agent answers, in order: a cloud-init seed's boot
   * commands (once per board), the host name (the seed's, else a system image's VM name),
   * the shared folders mounted on /mnt/TAG; then the agent is ready (`vm exec` runs, and
   * finds the host name and the shares in place), and the vCPUs online, the seed's new
   * instance (vmm/cloud-init.ts) and the SSH user follow.
   */
  private async setUpGuest(client: AgentClient): Promise<void> {
    const board = this.vm;
    const seed = board && this.cloudInitBoard !== board ? this.cloudInitPlan() : null;
    if (seed) this.cloudInitBoard = board;
    const ready = () => {
      if (this.agent !== client || this.agentReady) return;
      this.agentReady = true;
      this.log('guest agent ready');
      if (this.stopRequested) {
        this.log('asking the guest agent to power off');
        client.poweroff();
        return;
      }
      // a system image boots its own command line (no maxcpus=): bring the online vCPUs to the target
      if (this.maxVcpus > this.vcpus) void this.setCpus(this.vcpus).catch((e) => this.log(`vCPUs: ${(e as Error).message}`));
    };
    try {
      if (seed) await this.runCloudInitSteps(client, everyBootSteps(seed));
      const hostname = seed?.hostname ?? this.imageHostname;
      if (hostname && this.agent === client) await this.setGuestHostname(client, hostname);
      // a display's text cursor does not blink, so that an idle guest stays idle (the default image's /init does it too)
      if (this.display && this.agent === client) await this.agentRun(client, '[ -w /sys/class/graphics/fbcon/cursor_blink ] && echo 0 > /sys/class/graphics/fbcon/cursor_blink; true');
      // shared folders on /mnt/TAG (the default image's /init mounts them itself; again is a no-op)
      if (this.shares.count > 0 && this.agent === client) {
        const r = await this.agentRun(client, mountSharesAgentScript());
        if (r.err.trim()) this.log(`shared folders: ${r.err.trim()}`);
      }
      ready();
      if (seed && this.agent === client) await this.applyCloudInit(client, seed);
    } catch (e) {
      if (!(e instanceof AgentError)) this.log(`guest set-up: ${(e as Error).message}`);
    }
    ready();
    if (this.cfg?.ssh && this.sshPort && this.agent === client) this.setUpSsh(client, this.cfg.ssh);
  }

  /** The NoCloud seed in the CD-ROM drive (a `cidata` disc), checked; null when there is none or it cannot be used (logged). */
  private cloudInitPlan(): CloudInitPlan | null {
    const path = this.cdrom.status().path;
    if (!path) return null;
    try {
      const seed = readSeedIso(path);
      return seed ? parseCloudInit(seed) : null;
    } catch (e) {
      this.log(`cloud-init: the seed ${path} is not applied: ${(e as Error).message}`);
      return null;
    }
  }

  /** Run `script` through the agent: its exit status and output (text). */
  private async agentRun(client: AgentClient, script: string): Promise<{ status: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
    const status = await client.execShell(script, { stdout: (b) => { out += text(b); }, stderr: (b) => { err += text(b); } });
    return { status, out, err };
  }

  /** Run cloud-init steps in turn; the names of those that failed (each logged). */
  private async runCloudInitSteps(client: AgentClient, steps: CloudInitStep[]): Promise<string[]> {
    const failed: string[] = [];
    for (const step of steps) {
      const r = await this.agentRun(client, step.script);
      if (r.status !== 0) {
        failed.push(step.what);
        this.log(`cloud-init: ${step.what} failed (status ${r.status})${r.err.trim() ? `: ${r.err.trim().split('\n').pop()}` : ''}`);
      }
    }
    return failed;
  }

  /** Apply the seed's instance unless the guest has already (as cloud-init's per-instance modules). */
  private async applyCloudInit(client: AgentClient, plan: CloudInitPlan): Promise<void> {
    const check = await this.agentRun(client, instanceCheckScript(plan.instanceId));
    if (check.out.trim() === 'applied') {
      this.log(`cloud-init: instance ${plan.instanceId} was applied at an earlier boot`);
      return;
    }
    if (plan.ignored.length) this.log(`cloud-init: not applied (not supported): ${plan.ignored.join(', ')}`);
    this.log(`cloud-init: applying instance ${plan.instanceId}`);
    const failed = await this.runCloudInitSteps(client, instanceSteps(plan));
    const error = failed.length ? `${failed.join(', ')} failed` : null;
    await this.agentRun(client, statusScript(plan.instanceId, error));
    this.log(`cloud-init: instance ${plan.instanceId} applied${error ? ` (${error}; see /var/log/cloud-init-output.log in the guest)` : ''}`);
  }

  /**
   * A VM made from a system image boots the command line in its own /boot, so its host
   * name comes through the agent: `/etc/hostname` (kept on its disk) and the running name.
   */
  private async setGuestHostname(client: AgentClient, name: string): Promise<void> {
    const st = await client.execShell(hostnameScript(name), { stdout: () => {}, stderr: (b) => this.log(`hostname: ${Buffer.from(b).toString('utf8').trim()}`) });
    if (st !== 0) this.log(`setting the guest's host name failed (status ${st})`);
  }

  /**
   * The default user with the host user's keys, then wait for sshd: `vm ssh` connects
   * once the status says ready.
   */
  private setUpSsh(client: AgentClient, ssh: { user: string; keys: string[] }): void {
    this.agentRun(client, sshUserScript(ssh.user, ssh.keys))
      .then(({ status: st, out, err }) => {
        if (this.agent !== client) return;
        if (out.includes(NO_SSHD_MARK)) this.sshState = { ready: false, error: 'the guest has no SSH server (openssh-server)' };
        else if (st === 0) this.sshState = { ready: true };
        else this.sshState = { ready: false, error: `setting up SSH in the guest failed (status ${st}): ${err.trim().split('\n').pop() ?? ''}` };
        this.log(this.sshState.ready ? `ssh: user ${ssh.user} ready on 127.0.0.1:${this.sshPort}` : `ssh: ${this.sshState.error}`);
      }, () => { /* agent went away */ });
  }

  private closeAgent(reason: string): void {
    this.agent?.close(reason);
    this.agent = null;
    this.agentReady = false;
    this.sshState = { ready: false };
  }

  // ------------------------------------------------------------ ControlTarget

  /** {@link ControlTarget.status}. */
  status(): VmProcessStatus {
    const cfg = this.cfg!;
    return {
      name: cfg.name,
      pid: process.pid,
      state: this.state === 'running' && this.vm?.paused ? 'paused' : this.state,
      vcpus: this.vcpus,
      maxVcpus: this.maxVcpus,
      memoryBytes: this.memory!.currentBytes,
      memory: this.memory!.status(process.memoryUsage.rss()),
      startedAt: this.startedAt,
      agent: this.agentReady,
      disks: this.disks.status(),
      cdrom: this.cdrom.status(),
      nics: this.links.map((l, i) => {
        const nic = cfg.nics![i];
        const m = this.vm?.board.nics[i]?.metrics;
        return {
          network: nicAttachment(nic), mac: nic.mac,
          ...l.backend.counters,
          rxDropped: m?.rxDropped ?? 0,
          txDropped: m ? m.txRunt + m.txOversize + m.txBad : 0,
        };
      }),
      netRateMbit: this.netRateMbit,
      diskRate: { ...this.diskLimiter.current, throttled: this.diskLimiter.throttled, share: this.diskLimiter.share, ...this.diskLimiter.meter },
      ssh: this.sshPort ? { port: this.sshPort, ...this.sshState } : null,
      display: this.display?.status() ?? null,
    };
  }

  /** {@link ControlTarget.setNetRate}. */
  setNetRate(mbit: number): void {
    this.netRateMbit = mbit;
    for (const l of this.links) l.backend.setRate(mbit);
    this.log(mbit ? `network rate cap set to ${mbit} Mbit/s each way` : 'network rate cap removed');
  }

  /** {@link ControlTarget.setCpus}: the guest agent brings vCPUs online or offline (vmm/vcpus.ts). */
  setCpus(count: number): Promise<void> {
    let script: string;
    try {
      script = cpuOnlineScript(count, this.maxVcpus);
    } catch (e) {
      return Promise.reject(e instanceof VcpuChangeError ? new ControlHttpError(e.status, 'bad_request', e.message) : e);
    }
    const run = async (): Promise<void> => {
      const client = this.agentReady ? this.agent : null;
      if (!client) throw new ControlHttpError(409, 'agent_unavailable', 'the guest agent is not running (yet): vCPUs are brought online or offline through it');
      let err = '';
      const st = await client.execShell(script, { stdout: () => {}, stderr: (b) => { err += Buffer.from(b).toString('utf8'); } });
      if (st !== 0) throw new ControlHttpError(409, 'conflict', `the guest refused to bring its vCPUs to ${count}: ${err.trim().split('\n').pop() || `status ${st}`}`);
      const before = this.vcpus;
      this.vcpus = count;
      if (before !== count) this.log(`vCPUs ${before} -> ${count} (of ${this.maxVcpus})`);
    };
    const op = this.cpuOps.then(run, run);
    this.cpuOps = op.catch(() => {});
    return op;
  }

  /** {@link ControlTarget.resizeDisk}: the image grows, then virtio-blk tells the guest. */
  resizeDisk(index: number, bytes: number): void {
    try {
      this.disks.resize(index, bytes);
    } catch (e) {
      throw controlError(e);
    }
  }

  /** {@link ControlTarget.attachDisk}: plugged into a spare virtio slot, bound by the guest agent (vmm/disks.ts). */
  async attachDisk(path: string, readonly: boolean): Promise<string> {
    try {
      return await this.disks.attach(path, readonly, this.guestShell());
    } catch (e) {
      throw controlError(e);
    }
  }

  /** {@link ControlTarget.detachDisk}: released by the guest agent, then the slot is emptied (vmm/disks.ts). */
  async detachDisk(path: string, force: boolean): Promise<void> {
    try {
      await this.disks.detach(path, force, this.guestShell());
    } catch (e) {
      throw controlError(e);
    }
  }

  /** A shell in the running guest through its agent, or null while there is none (or the VM is paused). */
  private guestShell(): GuestShell | null {
    const client = this.agentReady && this.state === 'running' && !this.vm?.paused ? this.agent : null;
    if (!client) return null;
    return async (script) => {
      let stdout = '';
      let stderr = '';
      const status = await client.execShell(script, {
        stdout: (b) => { stdout += Buffer.from(b).toString('utf8'); },
        stderr: (b) => { stderr += Buffer.from(b).toString('utf8'); },
      });
      return { status, stdout, stderr };
    };
  }

  /** {@link ControlTarget.screenshot}. */
  screenshot(): { width: number; height: number; png: string } {
    if (!this.display) throw new ControlHttpError(409, 'no_display', 'the VM has no display (--vram 0)');
    return this.display.screenshot();
  }

  /** {@link ControlTarget.sendKeys}. */
  sendKeys(keys: number[]): void {
    if (!this.display) throw new ControlHttpError(409, 'no_display', 'the VM has no display, so no keyboard (--vram 0)');
    this.display.sendKeys(keys);
  }

  /** {@link ControlTarget.vncAvailable}. */
  vncAvailable(): boolean {
    return this.display !== null && !this.finishing;
  }

  /** {@link ControlTarget.attachVnc}. */
  attachVnc(stream: Duplex): void {
    if (!this.display) throw new ControlHttpError(409, 'no_display', 'the VM has no display (--vram 0)');
    if (this.finishing) throw new ControlHttpError(409, 'invalid_state', 'the VM is exiting');
    this.display.attachViewer(stream);
  }

  /** {@link ControlTarget.setCdrom}: the CD-ROM drive (vmm/cdrom.ts). */
  setCdrom(path: string | null, force: boolean): void {
    try {
      if (path === null) this.cdrom.eject(force);
      else this.cdrom.insert(path);
    } catch (e) {
      throw controlError(e);
    }
  }

  /** {@link ControlTarget.setDiskRate}. */
  setDiskRate(iops: number, bps: number): void {
    this.diskLimiter.set({ iops, bps });
    this.log(iops || bps ? `disk limits set to ${iops || 'any'} requests/s, ${bps || 'any'} bytes/s` : 'disk limits removed');
  }

  /** {@link ControlTarget.setDiskShare}: the daemon's share of a contended host disk. */
  setDiskShare(iops: number, bps: number): void {
    const before = this.diskLimiter.share;
    this.diskLimiter.setShare({ iops, bps });
    if ((before.iops === 0 && before.bps === 0) !== (iops === 0 && bps === 0)) {
      this.log(iops || bps ? `host disk contended: this VM's share is ${iops || 'any'} requests/s, ${bps || 'any'} bytes/s` : 'host disk share removed');
    }
  }

  /**
   * {@link ControlTarget.setMemory}: the balloon moves (vmm/memory.ts); a shrink is decided
   * on statistics the guest takes now (waited for at most STATS_WAIT_MS).
   */
  async setMemory(bytes: number): Promise<void> {
    const before = this.memory!.currentBytes;
    if (bytes < before) await this.memory!.refreshStats(STATS_WAIT_MS);
    try {
      this.memory!.set(bytes);
    } catch (e) {
      if (e instanceof MemoryChangeError) throw new ControlHttpError(e.status, e.status === 400 ? 'bad_request' : 'conflict', e.message);
      throw e;
    }
    this.log(`memory ${before / (1024 * 1024)} MiB -> ${bytes / (1024 * 1024)} MiB (balloon target ${(this.memory!.maxBytes - bytes) / (1024 * 1024)} MiB)`);
  }

  /** {@link ControlTarget.setMemoryPolicy}. */
  setMemoryPolicy(policy: MemoryPolicy | null): void {
    try {
      this.memory!.setPolicy(policy);
    } catch (e) {
      if (e instanceof MemoryChangeError) throw new ControlHttpError(e.status, 'bad_request', e.message);
      throw e;
    }
  }

  /** {@link ControlTarget.stop}: agent poweroff, or force after `timeoutMs`. A repeated stop may shorten the deadline. */
  stop(timeoutMs: number): void {
    const deadline = Date.now() + timeoutMs;
    if (!this.stopRequested) {
      this.stopRequested = true;
      this.state = 'stopping';
      this.log(`stop requested (force after ${timeoutMs} ms)`);
      if (this.vm?.paused) void this.vm.resume();
      if (!this.vm) {
        // still preparing the boot: nothing runs yet, main() exits once it gets here
        this.stopDeadline = deadline;
        this.stopTimer = setTimeout(() => void this.finish(0, 'stopped before the guest started'), timeoutMs);
        return;
      }
      if (this.agent && this.agentReady) {
        this.log('asking the guest agent to power off');
        this.agent.poweroff();
      } else {
        this.log('guest agent not ready: waiting for it or for the deadline');
      }
    }
    if (deadline < this.stopDeadline) {
      this.stopDeadline = deadline;
      if (this.stopTimer) clearTimeout(this.stopTimer);
      this.stopTimer = setTimeout(() => {
        this.log(`stop: the guest did not power off within ${timeoutMs} ms; forcing`);
        if (this.vm) this.vm.stop(); else void this.finish(0, 'stopped before the guest started');
      }, timeoutMs);
      this.stopTimer.unref();
    }
  }

  /** {@link ControlTarget.kill}: exit now (disks flushed). */
  kill(): void {
    this.log('kill requested');
    void this.finish(0, 'killed');
  }

  /** {@link ControlTarget.pause}. */
  pause(): Promise<void> {
    return this.serialize(async () => {
      if (this.state !== 'running' || !this.vm) throw new ControlHttpError(409, 'invalid_state', `cannot pause a VM that is ${this.state}`);
      if (this.vm.paused) return;
      await this.vm.pause();
      this.log('paused');
    });
  }

  /** {@link ControlTarget.resume}. */
  resume(): Promise<void> {
    return this.serialize(async () => {
      if (!this.vm?.paused) return;
      await this.vm.resume();
      this.log('resumed');
    });
  }

  /** {@link ControlTarget.attachConsole}. */
  attachConsole(stream: Duplex): void {
    if (!this.hub || this.finishing) throw new ControlHttpError(409, 'invalid_state', 'the VM is exiting');
    this.hub.attach(stream);
  }

  /** {@link ControlTarget.exec}. */
  async exec(argv: string[], stdin: Uint8Array | undefined, out: ExecOutput): Promise<number> {
    if (!this.agent || !this.agentReady) throw new ControlHttpError(409, 'agent_unavailable', 'the guest agent is not answering');
    if (this.state !== 'running') throw new ControlHttpError(409, 'invalid_state', `the VM is ${this.state}`);
    if (this.vm?.paused) throw new ControlHttpError(409, 'invalid_state', 'the VM is paused');
    const handlers = { stdout: out.stdout, stderr: out.stderr };
    if (!stdin || stdin.length === 0) return this.agent.exec(argv, handlers);
    // the agent runs commands with stdin /dev/null: carry small inputs in the command line
    if (stdin.length > MAX_EXEC_STDIN) throw new ControlHttpError(413, 'too_large', `exec stdin is limited to ${MAX_EXEC_STDIN} bytes`);
    const b64 = Buffer.from(stdin).toString('base64');
    return this.agent.execShell(`printf %s ${b64} | base64 -d | ${shellQuote(argv)}`, handlers);
  }

  private serialize<T>(op: () => Promise<T>): Promise<T> {
    const p = this.ops.then(op, op);
    this.ops = p.catch(() => undefined);
    return p;
  }

  // ------------------------------------------------------------ exit

  /** Clean up and exit with `code`; logs `reason`. Only the first call counts. */
  async finish(code: number, reason: string): Promise<never> {
    if (this.finishing) return new Promise<never>(() => {});
    this.finishing = true;
    this.log(`exit ${code}: ${reason}`);
    if (this.stopTimer) clearTimeout(this.stopTimer);
    this.closeAgent('the VM process is exiting');
    try { this.vm?.board.flushDisks(); } catch { /* best effort */ }
    this.disks.closeAll();
    this.cdrom.close();
    this.shares.close();
    for (const l of this.links) l.stop();
    // let viewers see the last output and the end of the stream, briefly
    const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
    if (this.hub) await Promise.race([this.hub.close(), sleep(300)]);
    if (this.display) await Promise.race([this.display.close(), sleep(300)]);
    if (this.server) {
      const server = this.server;
      this.server = null;
      await Promise.race([server.close(), sleep(300)]);
    }
    if (this.ownsPidFile) {
      try {
        if (readFileSync(this.paths.pid, 'utf8').trim() === String(process.pid)) unlinkSync(this.paths.pid);
      } catch { /* gone */ }
    }
    if (!this.foreign) try {
      writeFileAtomic(this.paths.exit, JSON.stringify({ code, reason, pid: process.pid, at: Date.now() }) + '\n', 0o644);
    } catch { /* best effort */ }
    process.exit(code);
  }
}

/** A disk or CD-ROM change the VM process refused, as the control channel's error (400 bad_request, 409 conflict); anything else as it is. */
function controlError(e: unknown): unknown {
  return e instanceof DiskChangeError ? new ControlHttpError(e.status, e.status === 400 ? 'bad_request' : 'conflict', e.message) : e;
}

/** Entry point: `main.js <vmDir>`. */
async function run(argv: string[]): Promise<void> {
  // stdout/stderr may be a pipe of a daemon that died: never let a write to them kill the VM
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  if (argv.length !== 1 || argv[0].startsWith('-')) {
    process.stderr.write('usage: node dist/src/vmm/main.js <vmDir>\n');
    process.exit(2);
  }
  const p = new VmProcess(argv[0]);
  const fatal = (what: string) => (e: unknown) => {
    void p.finish(1, `VM failed: ${what}: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  };
  process.on('uncaughtException', fatal('uncaught exception'));
  process.on('unhandledRejection', fatal('unhandled rejection'));
  process.on('SIGTERM', () => { p.log('SIGTERM'); p.stop(DEFAULT_STOP_TIMEOUT_MS); });
  process.on('SIGINT', () => { p.log('SIGINT'); p.stop(DEFAULT_STOP_TIMEOUT_MS); });
  process.on('SIGHUP', () => { p.log('SIGHUP ignored'); });
  // SIGUSR1: each hart's state (pc, privilege, interrupts, parked) into vm.log
  process.on('SIGUSR1', () => { p.logHartReport(); });
  await p.main();
}

void run(process.argv.slice(2));
