/**
 * The `virt`-compatible board: QEMU virt's memory map and device-tree
 * bindings (hw/riscv/virt.c), so a distribution kernel finds every device.
 *
 *   0x0010_0000  syscon / SiFive test (poweroff, reboot)
 *   0x0010_1000  goldfish RTC                       (PLIC source 11)
 *   0x0200_0000  CLINT                              (M-mode only, listed for compatibility)
 *   0x0c00_0000  PLIC
 *   0x1000_0000  NS16550A UART                      (PLIC source 10)
 *   0x1000_1000  virtio-mmio slot i at +0x1000*i    (PLIC source 1 + i; slots 8..15: 48 + i - 8), 16 slots
 *   0x8000_0000  RAM
 */
import { HartSignals, createGuestMemory } from '../engine/hart-state.js';
import { RAM_BASE, RAM_OFFSET, TIMEBASE_HZ, MAX_HARTS, backedRamBytes } from '../engine/layout.js';
import { codeWriteNotifier } from '../engine/code-pages.js';
import type { MmioDevice, CharBackend, BlockBackend, NetBackend, WallClock, MmioWidth } from '../devices/bus.js';
import { GuestMemory } from '../devices/guest-memory.js';
import { Plic } from '../devices/plic.js';
import { Uart16550 } from '../devices/uart16550.js';
import { Aclint } from '../devices/aclint.js';
import { GoldfishRtc } from '../devices/goldfish-rtc.js';
import { Syscon, type PowerEvent } from '../devices/syscon.js';
import { VirtioMmioTransport } from '../devices/virtio/mmio.js';
import { VirtioMmioSlot } from '../devices/virtio/mmio-slot.js';
import type { VirtioDevice } from '../devices/virtio/device.js';
import { VirtioBlk } from '../devices/virtio/blk.js';
import { VirtioConsole, type VirtioConsolePort } from '../devices/virtio/console.js';
import { VirtioNet } from '../devices/virtio/net.js';
import { VirtioScsi } from '../devices/virtio/scsi.js';
import { CdromUnit } from '../devices/scsi/cdrom.js';
import { VirtioP9 } from '../devices/virtio/9p.js';
import { VirtioGpu, type VirtioGpuOptions } from '../devices/virtio/gpu.js';
import { KEYBOARD, TABLET, VirtioInput } from '../devices/virtio/input.js';
import type { P9Server } from '../devices/9p/wire.js';
import { VirtioBalloon, VIRTIO_BALLOON_PAGE_BYTES, type BalloonStats } from '../devices/virtio/balloon.js';
import type { RamDiscarder } from '../devices/guest-memory.js';
import type { IoLimiter } from '../devices/io-limiter.js';
import { FdtNode, buildFdt, cells64 } from './fdt.js';
import { sExternalInterrupts, type HartMmioLayout } from './hart-mmio.js';
import { parseKernelImage, layoutBoot, isElf, parseElfExecutable, layoutElfBoot, toBootBlob, BootError, type BootBlob, type BootLayout } from './boot.js';

export const SYSCON_BASE = 0x10_0000;
export const RTC_BASE = 0x10_1000;
export const CLINT_BASE = 0x200_0000;
export const PLIC_BASE = 0xc00_0000;
export const UART_BASE = 0x1000_0000;
export const VIRTIO_BASE = 0x1000_1000;
export const VIRTIO_STRIDE = 0x1000;
/** virtio-mmio slots: QEMU virt's 8, then 8 more above them (below QEMU's fw_cfg at 0x1010_0000). */
export const VIRTIO_SLOTS = 16;
export const UART_IRQ = 10;
export const RTC_IRQ = 11;
export const VIRTIO_IRQ0 = 1;
/** PLIC source of virtio slots 8.. (QEMU virt's 1..8 are taken by slots 0..7, 10 and 11 by the UART and RTC, 32..35 by PCIe). */
export const VIRTIO_IRQ_HIGH = 48;

/** The PLIC source of virtio-mmio slot `slot`. */
export function virtioIrq(slot: number): number {
  return slot < 8 ? VIRTIO_IRQ0 + slot : VIRTIO_IRQ_HIGH + slot - 8;
}
/** PLIC sources (QEMU virt: VIRT_IRQCHIP_NUM_SOURCES). */
export const PLIC_SOURCES = 96;
/**
 * Free space at the end of the device tree blob, in bytes. S-mode U-Boot (Debian's
 * qemu-riscv64_smode, 2025.01) keeps the blob it was handed as its control DT, copied
 * into a reservation of exactly `totalsize` bytes just below its global data, and with
 * `fdt_high=0xffffffffffffffff` edits that copy in place when it boots Linux (bootargs,
 * initrd, boot-hartid): without room inside `totalsize` those edits overwrite its
 * global data (seen: a load access fault after "No RNG device" with a 110-byte append).
 */
const FDT_FREE_BYTES = 8192;
/** UART input clock in Hz (as QEMU virt). */
const UART_CLOCK_HZ = 3_686_400;

/** One disk of the board. */
export interface DiskConfig {
  backend: BlockBackend;
  /** Serial string reported by VIRTIO_BLK_T_GET_ID (at most 20 bytes). */
  serial?: string;
  /** I/O limits (may be shared by several disks). */
  limiter?: IoLimiter;
}

/** The CD-ROM drive of the board (virtio-scsi, one MMC logical unit). */
export interface CdromConfig {
  /** The disc in the drive at power-on (an ISO image), or null for an empty drive. */
  medium: BlockBackend | null;
  /** The guest ejected the disc (START STOP UNIT): the drive is empty; the disc is the caller's to close. */
  onEject?: (medium: BlockBackend) => void;
}

/** Virtio slots a display takes: virtio-gpu, a keyboard and a tablet. */
export const DISPLAY_SLOTS = 3;

/** One shared folder of the board (virtio-9p). */
export interface ShareConfig {
  /** Mount tag (src/devices/virtio/9p.ts isValidMountTag). */
  tag: string;
  /** The 9P2000.L server of the folder (src/devices/node/host-share.ts); the board does not close it. */
  server: P9Server;
}

/**
 * The display of the board (virtio-gpu 2D, one scanout): its graphics memory (QEMU's
 * max_hostmem), preferred mode and the hooks of the device (devices/virtio/gpu.ts).
 */
export type DisplayConfig = VirtioGpuOptions;

/** One network card of the board (virtio-net). */
export interface NicConfig {
  backend: NetBackend;
  /** MAC address, 6 bytes. */
  mac: Uint8Array;
}

/** Name of the virtio-console port the guest agent serves (see src/vmm/agent.ts). */
export const AGENT_PORT_NAME = 'org.tsvisor.agent';

/** Host end of the guest-agent channel: a virtio-console port named {@link AGENT_PORT_NAME}. */
export interface AgentChannelConfig {
  /** Bytes the guest agent wrote (one call per virtio buffer; the array is the callee's). */
  onData(bytes: Uint8Array): void;
  /** The guest opened (true) or closed (false) the port. */
  onOpen?(open: boolean): void;
}

/** The memory balloon of the board (virtio-balloon with statistics and free page reporting). */
export interface BalloonConfig {
  /** Bytes the guest starts without (the initial target; a multiple of 4 KiB below RAM). Default 0. */
  targetBytes?: number;
  /** Told of each statistics update from the guest. */
  onStats?: (stats: BalloonStats) => void;
  /**
   * Offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM (virtio 1.2 §5.5.3): the guest takes pages back
   * from the balloon rather than kill a process when it runs out of memory. For memory that
   * follows the guest (the dynamic policy), not for a fixed size. Default false.
   */
  deflateOnOom?: boolean;
}

/** Everything needed to build a board. Sizes in bytes. */
export interface BoardConfig {
  ramBytes: number;
  /** Number of harts (1..64). */
  harts: number;
  /**
   * What hart 0 starts in S-mode (a0 = hart id, a1 = device tree): a Linux RISC-V `Image`,
   * or an ELF64 RISC-V executable (e.g. S-mode U-Boot), told apart by the ELF magic.
   */
  kernel: Uint8Array | BootBlob;
  initrd?: Uint8Array | BootBlob;
  /** Kernel command line (/chosen/bootargs). */
  bootargs: string;
  /**
   * U-Boot's autoboot delay in seconds, written as `/config/bootdelay` (U-Boot reads it
   * in common/autoboot.c bootdelay_process() and prefers it to its environment's
   * `bootdelay`; -1 stops at the prompt; a key already waiting at the check stops
   * autoboot even at 0). Default: 0 when `kernel` is an ELF executable (Debian's
   * S-mode U-Boot would otherwise wait 2 s), no /config node otherwise.
   */
  bootDelay?: number;
  disks: DiskConfig[];
  /** A CD-ROM drive (virtio-scsi), in the virtio slot after the disks; absent: none. */
  cdrom?: CdromConfig;
  /** Network cards, in the virtio slots after the disks (the guest's eth0, eth1, ... in this order). */
  nics?: NicConfig[];
  /**
   * Guest-agent channel: adds a virtio-console (port 0 a console, port 1 named
   * {@link AGENT_PORT_NAME}) in the virtio slot after the disks and network cards. Send with `board.agent.write()`.
   */
  agent?: AgentChannelConfig;
  /** Memory balloon, in the virtio slot after the agent channel (and free page reporting with it). Absent: none. */
  balloon?: BalloonConfig;
  /** Shared folders (virtio-9p), one slot each after the balloon. */
  shares?: ShareConfig[];
  /**
   * A display (virtio-gpu) with its keyboard and tablet (virtio-input), in the three slots
   * after the shares; absent: none of them.
   */
  display?: DisplayConfig;
  /**
   * Empty virtio-mmio slots reserved after every other device, listed in the device tree,
   * for disks plugged in while the guest runs ({@link Board.plugDisk}). Default 0; at most
   * the slots the other devices leave.
   */
  hotplugSlots?: number;
  /** Gives guest RAM back to the host for the balloon (Node: madvise, src/devices/node/discard.ts); default zero-fill. */
  discardRam?: RamDiscarder;
  /**
   * Called once with the whole guest RAM, before the kernel is loaded into it: host advice
   * about its pages (Node: transparent huge pages, adviseHugePages in
   * src/devices/node/discard.ts). Default none.
   */
  adviseRam?: (ram: Uint8Array) => void;
  console: CharBackend;
  clock: WallClock;
  /** Monotonic time source in ns (performance.now()*1e6 on Node). */
  monotonicNs: () => number;
  /** Called once when the guest powers off, resets or reports failure. */
  onPower: (event: PowerEvent) => void;
}

interface Window { base: number; end: number; dev: MmioDevice }

/** Where the boot hart starts: kernel entry (a guest physical address) and a1 (the device tree's address). */
export interface BootEntry { entry: number; fdt: number }

/**
 * A built machine: memory, devices and the loaded boot images. The harts run
 * elsewhere (one worker thread each, see src/vmm); the board serves their MMIO
 * and raises their interrupts through HartSignals.
 */
export class Board {
  readonly memory: GuestMemory;
  readonly wasmMemory: WebAssembly.Memory;
  /**
   * The guest RAM memory backs, from RAM_BASE (bytes): all of `ramBytes` up to
   * MAX_BACKED_RAM_BYTES; the rest is reserved in the device tree (src/engine/layout.ts).
   */
  readonly backedBytes: number;
  readonly signals: HartSignals[] = [];
  /** Set by create(). */
  boot: BootEntry = { entry: 0, fdt: 0 };
  readonly plic: Plic;
  readonly uart: Uart16550;
  readonly rtc: GoldfishRtc;
  readonly clint: Aclint;
  readonly syscon: Syscon;
  readonly virtio: VirtioMmioTransport[] = [];
  readonly disks: VirtioBlk[] = [];
  readonly nics: VirtioNet[] = [];
  /** Host end of the guest-agent port (write() sends to the guest), or null without `cfg.agent`. */
  readonly agent: VirtioConsolePort | null = null;
  /** The memory balloon, or null without `cfg.balloon`. */
  readonly balloon: VirtioBalloon | null = null;
  /** The CD-ROM drive, or null without `cfg.cdrom`. */
  readonly cdrom: CdromUnit | null = null;
  /** The shared folders, in `cfg.shares` order. */
  readonly shares: VirtioP9[] = [];
  /** The display, or null without `cfg.display`. */
  readonly gpu: VirtioGpu | null = null;
  /** The keyboard and tablet of the display, or null without `cfg.display`. */
  readonly keyboard: VirtioInput | null = null;
  readonly tablet: VirtioInput | null = null;
  /** The hot-plug slots ({@link BoardConfig.hotplugSlots}), in slot order after the boot devices. */
  private readonly hotplug: VirtioMmioSlot[] = [];
  /** The disks in the board now (booted with or plugged in since), by slot. */
  private readonly plugged = new Map<number, { disk: DiskConfig; blk: VirtioBlk }>();
  /** The slots that hold a disk or may be given one, by slot index. */
  private readonly diskSlots = new Map<number, VirtioMmioSlot>();
  private readonly windows: Window[] = [];
  /** virtio-mmio InterruptStatus words, one per slot, shared with the harts' threads. */
  private readonly isrWords = new Int32Array(new SharedArrayBuffer(4 * VIRTIO_SLOTS));
  private readonly cfg: BoardConfig;
  private readonly t0: number;
  /** Set once the guest asked for poweroff/reset. */
  powerEvent: PowerEvent | null = null;
  /** `/config/bootdelay` of the device tree (see {@link BoardConfig.bootDelay}), or undefined for none. */
  private bootDelay: number | undefined;

  private constructor(cfg: BoardConfig) {
    // the boot images are loaded by create() and not kept: tens of MiB the guest has its own copy of
    this.cfg = { ...cfg, kernel: new Uint8Array(0), initrd: undefined };
    this.t0 = cfg.monotonicNs();
    this.backedBytes = backedRamBytes(cfg.ramBytes);
    this.wasmMemory = createGuestMemory(this.backedBytes);
    const ram = new Uint8Array(this.wasmMemory.buffer, RAM_OFFSET, this.backedBytes);
    cfg.adviseRam?.(ram);
    this.memory = new GuestMemory(ram, RAM_BASE, codeWriteNotifier(this.wasmMemory), cfg.discardRam);
    for (let i = 0; i < cfg.harts; i++) this.signals.push(new HartSignals(this.wasmMemory, i));
    this.plic = new Plic(PLIC_SOURCES, 2 * cfg.harts, sExternalInterrupts(this.signals));
    this.uart = new Uart16550(cfg.console, this.plic.line(UART_IRQ));
    this.rtc = new GoldfishRtc(cfg.clock, this.plic.line(RTC_IRQ));
    this.clint = new Aclint(cfg.harts, () => BigInt(Math.floor(this.nowTicks())), () => {}, () => {});
    this.syscon = new Syscon((ev) => this.power(ev));
    this.map(SYSCON_BASE, this.syscon);
    this.map(RTC_BASE, this.rtc);
    this.map(CLINT_BASE, this.clint);
    this.map(PLIC_BASE, this.plic);
    this.map(UART_BASE, this.uart);
    const shares = cfg.shares ?? [];
    const slots = cfg.disks.length + (cfg.cdrom ? 1 : 0) + (cfg.nics?.length ?? 0) + (cfg.agent ? 1 : 0) + (cfg.balloon ? 1 : 0) + shares.length + (cfg.display ? DISPLAY_SLOTS : 0);
    if (slots > VIRTIO_SLOTS) {
      throw new BootError(`too many devices: ${cfg.disks.length} disks${cfg.cdrom ? ', the CD-ROM drive' : ''}, ${cfg.nics?.length ?? 0} network cards${cfg.agent ? ', the agent channel' : ''}${cfg.balloon ? ', the balloon' : ''}, ${shares.length} shared folders${cfg.display ? ', the display with its keyboard and tablet' : ''} need ${slots} virtio slots, the board has ${VIRTIO_SLOTS}`);
    }
    const hotplug = cfg.hotplugSlots ?? 0;
    if (!Number.isInteger(hotplug) || hotplug < 0 || slots + hotplug > VIRTIO_SLOTS) {
      throw new BootError(`hotplugSlots ${hotplug}: expected 0..${VIRTIO_SLOTS - slots} (the virtio slots the other devices leave)`);
    }
    const balloonTarget = cfg.balloon?.targetBytes ?? 0;
    if (!Number.isInteger(balloonTarget) || balloonTarget < 0 || balloonTarget % VIRTIO_BALLOON_PAGE_BYTES !== 0 || balloonTarget >= cfg.ramBytes) {
      throw new BootError(`balloon target ${balloonTarget}: expected a whole number of 4 KiB pages below the RAM size`);
    }
    cfg.disks.forEach((d, i) => {
      const blk = new VirtioBlk(d.backend, { serial: d.serial ?? `tsvisor-disk${i}`, limiter: d.limiter });
      const mmio = this.virtioTransport(blk, i);
      this.disks.push(blk);
      this.virtio.push(mmio);
      this.plugged.set(i, { disk: d, blk });
    });
    if (cfg.cdrom) {
      const unit = new CdromUnit({}, cfg.cdrom.onEject);
      if (cfg.cdrom.medium) unit.insert(cfg.cdrom.medium);
      this.virtio.push(this.virtioTransport(new VirtioScsi(unit), this.virtio.length));
      this.cdrom = unit;
    }
    for (const n of cfg.nics ?? []) {
      const nic = new VirtioNet(n.backend, { mac: n.mac });
      this.virtio.push(this.virtioTransport(nic, this.virtio.length));
      this.nics.push(nic);
    }
    if (cfg.agent) {
      const slot = this.virtio.length;
      const ch = cfg.agent;
      const con = new VirtioConsole({ ports: [{ console: true }, { name: AGENT_PORT_NAME, onData: (b) => ch.onData(b), onOpen: (o) => ch.onOpen?.(o) }] });
      this.virtio.push(this.virtioTransport(con, slot));
      this.agent = con.ports[1];
    }
    if (cfg.balloon) {
      const b = cfg.balloon;
      this.balloon = new VirtioBalloon({ targetPages: balloonTarget / VIRTIO_BALLOON_PAGE_BYTES, onStats: b.onStats, deflateOnOom: b.deflateOnOom });
      this.virtio.push(this.virtioTransport(this.balloon, this.virtio.length));
    }
    for (const sh of shares) {
      const dev = new VirtioP9(sh.tag, sh.server);
      this.virtio.push(this.virtioTransport(dev, this.virtio.length));
      this.shares.push(dev);
    }
    if (cfg.display) {
      this.gpu = new VirtioGpu(cfg.display);
      this.virtio.push(this.virtioTransport(this.gpu, this.virtio.length));
      this.keyboard = new VirtioInput(KEYBOARD);
      this.virtio.push(this.virtioTransport(this.keyboard, this.virtio.length));
      this.tablet = new VirtioInput(TABLET);
      this.virtio.push(this.virtioTransport(this.tablet, this.virtio.length));
    }
    // a disk's slot can be emptied while the guest runs (the disk detached), and a spare one filled
    for (let i = 0; i < this.virtio.length; i++) {
      if (i < cfg.disks.length) {
        const slot = new VirtioMmioSlot();
        slot.plug(this.virtio[i]);
        this.diskSlots.set(i, slot);
        this.map(Board.slotAddress(i), slot);
      } else {
        this.map(Board.slotAddress(i), this.virtio[i]);
      }
    }
    for (let i = 0; i < hotplug; i++) {
      const slot = new VirtioMmioSlot();
      this.hotplug.push(slot);
      this.diskSlots.set(this.virtio.length + i, slot);
      this.map(Board.slotAddress(this.virtio.length + i), slot);
    }
  }

  /** Guest physical address of virtio-mmio slot `slot`'s window. */
  static slotAddress(slot: number): number {
    return VIRTIO_BASE + slot * VIRTIO_STRIDE;
  }

  /** Hot-plug slots with no device in them. */
  get freeHotplugSlots(): number {
    return this.hotplug.filter((s) => !s.transport).length;
  }

  /**
   * Plug disk `disk` into the first empty hot-plug slot (the guest finds it once it binds
   * the slot's platform device again; see devices/virtio/mmio-slot.ts).
   * @returns the slot's index and the new device.
   * @throws RangeError when no hot-plug slot is empty.
   */
  plugDisk(disk: DiskConfig): { slot: number; blk: VirtioBlk } {
    const k = this.hotplug.findIndex((s) => !s.transport);
    if (k < 0) throw new RangeError(`no free virtio slot: the ${this.hotplug.length} slot(s) kept for disks attached while the VM runs are taken (a restart gives the attached disks slots of their own)`);
    const slot = this.virtio.length + k;
    const blk = new VirtioBlk(disk.backend, { serial: disk.serial ?? `tsvisor-disk-slot${slot}`, limiter: disk.limiter });
    this.hotplug[k].plug(this.virtioTransport(blk, slot));
    this.plugged.set(slot, { disk, blk });
    return { slot, blk };
  }

  /**
   * Empty slot `slot` of a disk (one the board booted with or one plugged in since), after
   * the guest let its device go, and flush the disk; the caller closes its backend.
   * @returns the transport's device status when it was unplugged (0 once the driver reset it).
   * @throws RangeError if `slot` holds no disk.
   */
  unplugDisk(slot: number): number {
    const p = this.plugged.get(slot);
    const s = this.diskSlots.get(slot);
    if (!p || !s) throw new RangeError(`virtio slot ${slot} holds no disk`);
    const status = s.transport?.deviceStatus ?? 0;
    s.unplug();
    Atomics.store(this.isrWords, slot, 0);
    this.plic.setLevel(virtioIrq(slot), false);
    this.plugged.delete(slot);
    try { p.disk.backend.flush(); } catch { /* reported by the device on guest flush */ }
    return status;
  }

  /** Build the board and load the kernel, initrd and device tree. Throws BootError. */
  static create(cfg: BoardConfig): Board {
    if (!Number.isInteger(cfg.harts) || cfg.harts < 1 || cfg.harts > MAX_HARTS) {
      throw new BootError(`harts must be 1..${MAX_HARTS}`);
    }
    if (cfg.bootDelay !== undefined && (!Number.isInteger(cfg.bootDelay) || cfg.bootDelay < -1)) {
      throw new BootError(`bootDelay ${cfg.bootDelay}: expected a whole number of seconds, or -1`);
    }
    const kernel = toBootBlob(cfg.kernel);
    const initrd = cfg.initrd === undefined ? undefined : toBootBlob(cfg.initrd);
    const initrdBytes = initrd?.length ?? 0;
    const elfKernel = isElf(kernel.read(0, 4));
    let layout: BootLayout;
    let load: (board: Board) => void;
    if (elfKernel) {
      const file = kernel.read(0, kernel.length);
      const elf = parseElfExecutable(file);
      layout = layoutElfBoot(RAM_BASE, backedRamBytes(cfg.ramBytes), elf, initrdBytes);
      load = (board) => {
        for (const s of elf.segments) {
          const dst = board.memory.slice(s.paddr, s.memSize);
          dst.set(file.subarray(s.offset, s.offset + s.fileSize));
          dst.fill(0, s.fileSize);
        }
      };
    } else {
      layout = layoutBoot(RAM_BASE, backedRamBytes(cfg.ramBytes), parseKernelImage(kernel), initrdBytes);
      load = (board) => kernel.copyTo(board.memory.slice(layout.kernelAddr, kernel.length));
    }
    const board = new Board(cfg);
    board.bootDelay = cfg.bootDelay ?? (elfKernel ? 0 : undefined);
    load(board);
    if (initrd) initrd.copyTo(board.memory.slice(layout.initrdAddr, initrdBytes));
    const fdt = board.deviceTree(initrd ? layout : null);
    board.memory.slice(layout.fdtAddr, fdt.length).set(fdt);
    board.boot = { entry: layout.kernelAddr, fdt: layout.fdtAddr };
    return board;
  }

  /** The transport of virtio-mmio slot `slot`, its InterruptStatus shared with the harts (hart-mmio.ts). */
  private virtioTransport(dev: VirtioDevice, slot: number): VirtioMmioTransport {
    const line = this.plic.wordLine(virtioIrq(slot), this.isrWords, slot);
    return new VirtioMmioTransport(dev, this.memory, line, { interruptStatus: { words: this.isrWords, index: slot } });
  }

  /** What the harts' threads need to serve the PLIC and the virtio interrupt registers themselves, and where they may post writes. */
  hartMmioLayout(): HartMmioLayout {
    return {
      plicBase: PLIC_BASE,
      plicSize: this.plic.size,
      plicSources: this.plic.numSources,
      plicContexts: this.plic.numContexts,
      plicBuffer: this.plic.buffer,
      virtio: [...this.virtio, ...this.hotplug].map((t, i) => ({ base: VIRTIO_BASE + i * VIRTIO_STRIDE, size: t.size, irq: virtioIrq(i), isr: i })),
      isrBuffer: this.isrWords.buffer as SharedArrayBuffer,
      windows: this.windows.filter((w) => w.dev !== this.plic).map((w) => ({ base: w.base, size: w.end - w.base })),
    };
  }

  private map(base: number, dev: MmioDevice): void {
    this.windows.push({ base, end: base + dev.size, dev });
  }

  // ------------------------------------------------------------ HartHost

  /** Time in timebase ticks since the board was created. */
  nowTicks(): number {
    return ((this.cfg.monotonicNs() - this.t0) * TIMEBASE_HZ) / 1e9;
  }

  private find(pa: number, size: number): Window | undefined {
    for (const w of this.windows) if (pa >= w.base && pa + size <= w.end) return w;
    return undefined;
  }

  mmioRead(pa: number, size: number): number | undefined {
    const w = this.find(pa, size);
    if (!w) return undefined;
    return w.dev.read(pa - w.base, size as MmioWidth);
  }

  mmioWrite(pa: number, size: number, value: number): boolean {
    const w = this.find(pa, size);
    if (!w) return false;
    w.dev.write(pa - w.base, size as MmioWidth, value);
    return true;
  }

  /** Guest console output that did not come through the UART (SBI DBCN, legacy putchar). */
  consoleWrite(bytes: Uint8Array): boolean { this.cfg.console.write(bytes); return true; }

  /** Power event raised outside the syscon device (SBI SRST). */
  systemReset(kind: 'shutdown' | 'reboot'): void {
    this.power(kind === 'shutdown' ? { kind: 'poweroff' } : { kind: 'reset' });
  }

  private power(ev: PowerEvent): void {
    if (this.powerEvent) return;
    this.powerEvent = ev;
    this.cfg.onPower(ev);
  }

  /**
   * Milliseconds until {@link pollDevices} must run again by itself (the RTC alarm), or
   * null when nothing is due: console input calls it through the backend's input hook,
   * so an idle board needs no periodic wake-up.
   */
  nextPollMs(): number | null {
    const at = this.rtc.nextAlarmWallNs();
    if (at === null) return null;
    const ms = Number(at - this.cfg.clock.nowNs()) / 1e6;
    return ms > 0 ? ms : 0;
  }

  /** Poll devices whose input arrives asynchronously (console input, RTC alarm). */
  pollDevices(): void {
    this.uart.poll();
    this.rtc.poll();
  }

  /** Flush every disk in the board (used at power-off). */
  flushDisks(): void {
    for (const p of this.plugged.values()) {
      try { p.disk.backend.flush(); } catch { /* reported by the device on guest flush */ }
    }
  }

  // ------------------------------------------------------------ device tree

  /** Generate the flattened device tree (QEMU virt bindings). */
  deviceTree(initrd: { initrdAddr: number; initrdEnd: number } | null): Uint8Array {
    let phandle = 1;
    const root = new FdtNode('');
    root.prop('#address-cells', [2]).prop('#size-cells', [2])
      .prop('compatible', 'riscv-virtio').prop('model', 'riscv-virtio,qemu');
    const chosen = root.child('chosen');
    chosen.prop('bootargs', this.cfg.bootargs);
    chosen.prop('stdout-path', `/soc/serial@${UART_BASE.toString(16)}`);
    if (initrd) {
      chosen.prop('linux,initrd-start', cells64(initrd.initrdAddr));
      chosen.prop('linux,initrd-end', cells64(initrd.initrdEnd));
    }
    const seed = new Uint8Array(32);
    globalThis.crypto.getRandomValues(seed);
    chosen.prop('rng-seed', seed);
    if (this.bootDelay !== undefined) root.child('config').prop('bootdelay', [this.bootDelay]);
    root.child(`memory@${RAM_BASE.toString(16)}`)
      .prop('device_type', 'memory')
      .prop('reg', [...cells64(RAM_BASE), ...cells64(this.cfg.ramBytes)]);
    if (this.backedBytes < this.cfg.ramBytes) {
      // RAM past what the wasm memory backs: reserved, never mapped (devicetree
      // bindings, reserved-memory/reserved-memory.yaml)
      const rsv = root.child('reserved-memory');
      rsv.prop('#address-cells', [2]).prop('#size-cells', [2]).prop('ranges', null);
      const at = RAM_BASE + this.backedBytes;
      rsv.child(`unbacked@${at.toString(16)}`).prop('reg', [...cells64(at), ...cells64(this.cfg.ramBytes - this.backedBytes)]).prop('no-map', null);
    }
    const cpus = root.child('cpus');
    cpus.prop('#address-cells', [1]).prop('#size-cells', [0]).prop('timebase-frequency', [TIMEBASE_HZ]);
    const intcPhandles: number[] = [];
    const cpuPhandles: number[] = [];
    for (let i = 0; i < this.cfg.harts; i++) {
      const cpuPh = phandle++;
      const intcPh = phandle++;
      cpuPhandles.push(cpuPh);
      intcPhandles.push(intcPh);
      const cpu = cpus.child(`cpu@${i}`);
      cpu.prop('phandle', [cpuPh]).prop('device_type', 'cpu').prop('reg', [i]).prop('status', 'okay')
        .prop('compatible', 'riscv')
        .prop('riscv,isa', 'rv64imafdc_zicntr_zicsr_zifencei_sstc')
        .prop('riscv,isa-base', 'rv64i')
        .prop('riscv,isa-extensions', ['i', 'm', 'a', 'f', 'd', 'c', 'zicntr', 'zicsr', 'zifencei', 'sstc'])
        .prop('mmu-type', 'riscv,sv48');
      cpu.child('interrupt-controller')
        .prop('#interrupt-cells', [1]).prop('interrupt-controller', null)
        .prop('compatible', 'riscv,cpu-intc').prop('phandle', [intcPh]);
    }
    const map = cpus.child('cpu-map').child('cluster0');
    for (let i = 0; i < this.cfg.harts; i++) map.child(`core${i}`).prop('cpu', [cpuPhandles[i]]);

    const soc = root.child('soc');
    soc.prop('#address-cells', [2]).prop('#size-cells', [2]).prop('compatible', 'simple-bus').prop('ranges', null);
    const plicPh = phandle++;
    const testPh = phandle++;
    soc.child(`test@${SYSCON_BASE.toString(16)}`).prop('phandle', [testPh])
      .prop('reg', [...cells64(SYSCON_BASE), 0, 0x1000])
      .prop('compatible', ['sifive,test1', 'sifive,test0', 'syscon']);
    soc.child('poweroff').prop('value', [0x5555]).prop('offset', [0]).prop('regmap', [testPh]).prop('compatible', 'syscon-poweroff');
    soc.child('reboot').prop('value', [0x7777]).prop('offset', [0]).prop('regmap', [testPh]).prop('compatible', 'syscon-reboot');
    soc.child(`rtc@${RTC_BASE.toString(16)}`)
      .prop('interrupts', [RTC_IRQ]).prop('interrupt-parent', [plicPh])
      .prop('reg', [...cells64(RTC_BASE), 0, 0x1000]).prop('compatible', 'google,goldfish-rtc');
    soc.child(`serial@${UART_BASE.toString(16)}`)
      .prop('interrupts', [UART_IRQ]).prop('interrupt-parent', [plicPh])
      .prop('clock-frequency', [UART_CLOCK_HZ])
      .prop('reg', [...cells64(UART_BASE), 0, 0x100]).prop('compatible', 'ns16550a');
    for (let i = 0; i < this.virtio.length + this.hotplug.length; i++) {
      const base = VIRTIO_BASE + i * VIRTIO_STRIDE;
      soc.child(`virtio_mmio@${base.toString(16)}`)
        .prop('interrupts', [virtioIrq(i)]).prop('interrupt-parent', [plicPh])
        .prop('reg', [...cells64(base), 0, VIRTIO_STRIDE]).prop('compatible', 'virtio,mmio');
    }
    const plicIrqs: number[] = [];
    const clintIrqs: number[] = [];
    for (const ph of intcPhandles) { plicIrqs.push(ph, 11, ph, 9); clintIrqs.push(ph, 3, ph, 7); }
    soc.child(`plic@${PLIC_BASE.toString(16)}`).prop('phandle', [plicPh])
      .prop('riscv,ndev', [PLIC_SOURCES - 1])
      .prop('reg', [...cells64(PLIC_BASE), 0, 0x600000])
      .prop('interrupts-extended', plicIrqs)
      .prop('interrupt-controller', null)
      .prop('compatible', ['sifive,plic-1.0.0', 'riscv,plic0'])
      .prop('#address-cells', [0]).prop('#interrupt-cells', [1]);
    soc.child(`clint@${CLINT_BASE.toString(16)}`)
      .prop('interrupts-extended', clintIrqs)
      .prop('reg', [...cells64(CLINT_BASE), 0, 0x10000])
      .prop('compatible', ['sifive,clint0', 'riscv,clint0']);
    return buildFdt(root, 0, FDT_FREE_BYTES);
  }
}

