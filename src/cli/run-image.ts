/**
 * `tsvisor run --image debian [-- COMMAND...]`: boots the Debian image on a throwaway
 * qcow2 overlay (the base image is never written), through its firmware (S-mode U-Boot,
 * which boots the kernel and initrd in the guest's own /boot). `tsvisor run --boot-disk
 * FILE` boots a user's own system disk (raw or qcow2, written in place) the same way.
 * With a command, runs it as root through the guest agent, prints its output, powers the
 * guest off (a clean systemd shutdown) and exits with the command's status; without one,
 * the serial console (a login prompt: `root`, no password). `reboot` in the guest
 * restarts the VM; `poweroff` ends it.
 */
import type { NicConfig } from '../machine/board.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './errors.js';
import type { RunMedia } from './run.js';
import { parseSize } from './size.js';
import { Vm } from '../vmm/vm.js';
import { AgentClient } from '../vmm/agent.js';
import { ensureBootFirmware, ensureDebianImage } from '../vmm/debian-build.js';
import { StdioCharBackend } from '../devices/node/stdio-char.js';
import { adviseHugePages, madviseDiscarder } from '../devices/node/discard.js';
import { attachTerminal, handleVmSignals } from './terminal.js';
import { createDisk, openDisk } from '../devices/node/disk.js';
import type { DiskImage } from '../devices/node/disk.js';
import { loadEngineModule } from '../engine/node/module.js';
import type { EngineKind } from '../engine/hart.js';
import { DEBIAN_IMAGE_NAME } from '../images/index.js';
import type { PowerEvent } from '../devices/syscon.js';
import { networkWaitScript } from '../vmm/guest-setup.js';
import { mountSharesAgentScript } from '../vmm/shares.js';

/** How long a command run waits for the guest's network address after the agent answers (s). */
const NETWORK_WAIT_SECONDS = 60;
/** How long a command run waits for the guest agent after power-on (ms). */
const AGENT_TIMEOUT_MS = 10 * 60 * 1000;
/** How long a clean shutdown may take before the VM is stopped (ms). */
const SHUTDOWN_TIMEOUT_MS = 120 * 1000;

/** What {@link runImage} needs from `tsvisor run`'s options. */
export interface RunImageOptions {
  /** `--image NAME`: a throwaway overlay of this image is the system disk. */
  image?: string;
  /** `--boot-disk`: this disk (already opened) is the system disk, instead of an image. */
  bootDisk?: DiskImage;
  ramBytes: number;
  cpus: number;
  /** How guest code runs (default jit). */
  engineKind?: EngineKind;
  /** Print instructions, MIPS and the JIT's figures at the end. */
  stats?: boolean;
  /** Extra disks (already opened), after the system disk: /dev/vdb, ... */
  disks: DiskImage[];
  /** Network cards (their backends already started). */
  nics?: NicConfig[];
  /** `--disk-size`: the overlay's size (default: the base image's). */
  diskSize?: string;
  /** The CD-ROM drive and shared folders (already opened). */
  media?: RunMedia;
  verbose?: boolean;
}

/**
 * Runs the image. Returns the process exit status (the command's, with a command).
 * @throws UsageError for an unknown image or a bad size; ImageError when the image
 *   cannot be built.
 */
export async function runImage(opts: RunImageOptions, command: string[]): Promise<number> {
  if (opts.bootDisk) {
    const firmware = await ensureBootFirmware({ quiet: !process.stderr.isTTY && !opts.verbose });
    return boot(opts, command, readFileSync(firmware), [opts.bootDisk, ...opts.disks]);
  }
  if (opts.image !== DEBIAN_IMAGE_NAME) throw new UsageError(`unknown image "${opts.image}" (known: ${DEBIAN_IMAGE_NAME})`);
  const size = opts.diskSize ? parseSize(opts.diskSize, '--disk-size') : undefined;
  const img = await ensureDebianImage({ quiet: !process.stderr.isTTY && !opts.verbose });
  if (size !== undefined && (size < img.diskSize || size % 512 !== 0)) {
    throw new UsageError(`--disk-size ${opts.diskSize}: must be a multiple of 512 bytes and at least the image's ${img.diskSize} bytes`);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'tsvisor-run-'));
  const overlayPath = join(tmp, 'system.qcow2');
  let system: DiskImage | undefined;
  try {
    createDisk(overlayPath, { format: 'qcow2', backing: img.disk, backingFormat: 'raw', size: size ?? img.diskSize });
    system = openDisk(overlayPath);
    return await boot(opts, command, readFileSync(img.firmware), [system, ...opts.disks]);
  } finally {
    system?.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function boot(opts: RunImageOptions, command: string[], firmware: Uint8Array, disks: DiskImage[]): Promise<number> {
  const engine = loadEngineModule();
  const stdout = process.stdout;
  const interactive = command.length === 0;
  let vm: Vm | null = null;
  let agent: AgentClient | null = null;
  const console = new StdioCharBackend((bytes) => {
    if (interactive) stdout.write(bytes);
    else if (opts.verbose) process.stderr.write(bytes);
  }, { onInput: () => vm?.kick() });

  const detachTerminal = interactive ? attachTerminal(console, () => vm?.stop()) : null;
  let stopping = false;
  const onSignal = (): void => {
    if (stopping || !agent) vm?.stop();
    else { stopping = true; agent.poweroff(); }
  };
  const removeSignals = handleVmSignals(onSignal, () => vm?.hartReport() ?? null);

  let status: number | null = null;
  try {
    for (;;) {
      vm = await Vm.create({
        ramBytes: opts.ramBytes, harts: opts.cpus, engine, engineKind: opts.engineKind, stats: opts.stats, kernel: firmware, bootargs: '',
        disks: disks.map((backend, i) => ({ backend, serial: i === 0 ? 'system' : `disk${i}` })),
        nics: opts.nics,
        cdrom: opts.media?.cdrom, shares: opts.media?.shares, display: opts.media?.display,
        balloon: {}, discardRam: madviseDiscarder, adviseRam: adviseHugePages,
        console,
        clock: { nowNs: () => BigInt(Date.now()) * 1_000_000n },
        agent: { onData: (b) => agent?.receive(b) },
      });
      const theVm = vm;
      opts.media?.setBoard(theVm.board);
      agent = new AgentClient(theVm.board.agent!);
      const client = agent;
      // with a command the loop ends at the first power event, so this runs once
      if (!interactive) runThroughAgent(client, command, theVm, (opts.nics?.length ?? 0) > 0, (opts.media?.shares.length ?? 0) > 0).then((st) => { status = st; }, () => {});
      const ev: PowerEvent | null = await theVm.run();
      client.close('the guest stopped');
      if (ev?.kind === 'reset' && interactive) {
        process.stderr.write('\r\ntsvisor: the guest rebooted\r\n');
        continue;
      }
      break;
    }
  } finally {
    removeSignals();
    detachTerminal?.();
  }
  await new Promise<void>((resolve) => stdout.write('', () => resolve()));
  if (interactive) return 0;
  if (status === null) {
    process.stderr.write('tsvisor: the guest stopped (or rebooted) before the command finished\n');
    return 255;
  }
  return status;
}

/**
 * Waits for the agent (and, with a network card, for the guest's address by DHCP; with
 * shared folders, mounts them on /mnt/TAG), runs `command`, then asks for a clean shutdown
 * (forced after a timeout).
 */
async function runThroughAgent(agent: AgentClient, command: string[], vm: Vm, network: boolean, shares: boolean): Promise<number> {
  try {
    await agent.ready(AGENT_TIMEOUT_MS);
  } catch (e) {
    process.stderr.write(`tsvisor: the guest agent did not answer: ${(e as Error).message}\n`);
    vm.stop();
    throw e;
  }
  if (network) {
    await agent.execShell(networkWaitScript(NETWORK_WAIT_SECONDS), { stdout: () => {}, stderr: (b) => process.stderr.write(b) });
  }
  if (shares) {
    await agent.execShell(mountSharesAgentScript(), { stdout: () => {}, stderr: (b) => process.stderr.write(b) });
  }
  const status = await agent.exec(command, {
    stdout: (b) => process.stdout.write(b),
    stderr: (b) => process.stderr.write(b),
  });
  agent.poweroff();
  const t = setTimeout(() => vm.stop(), SHUTDOWN_TIMEOUT_MS);
  t.unref();
  return status;
}
