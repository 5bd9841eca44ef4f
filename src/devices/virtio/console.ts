/**
 * virtio-console device (virtio-v1.2-cs01 §5.3 "Console Device") with
 * VIRTIO_CONSOLE_F_MULTIPORT: port 0 plus named ports, each a byte stream
 * between the host and the guest (QEMU's `virtio-serial`).
 *
 * Virtqueues (§5.3.2), for `n` ports:
 *
 * | index      | queue                                   |
 * |------------|-----------------------------------------|
 * | 0, 1       | port 0 receiveq, transmitq              |
 * | 2, 3       | control receiveq, control transmitq     |
 * | 2p+2, 2p+3 | port p receiveq, transmitq (p = 1..n-1) |
 *
 * "receiveq" is device → driver (host → guest): the driver posts empty
 * device-writable buffers, the device fills them. "transmitq" is driver →
 * device: device-readable buffers the device consumes.
 *
 * Configuration space (§5.3.4), little-endian, read-only here:
 * `{ le16 cols; le16 rows; le32 max_nr_ports; le32 emerg_wr; }` (12 bytes).
 * Only `max_nr_ports` is meaningful (F_SIZE and F_EMERG_WRITE are not offered).
 *
 * Control messages (§5.3.6.2): `{ le32 id; le16 event; le16 value; }` (8 bytes),
 * followed by the name for PORT_NAME. The handshake, as Linux's
 * drivers/char/virtio_console.c drives it and this device answers it:
 *
 * 1. driver → DEVICE_READY(value 1)         device → PORT_ADD(p) for every port
 * 2. driver → PORT_READY(p, 1)              device → CONSOLE_PORT(p, 1) if p is a console port,
 *                                            PORT_OPEN(p, 1) (the host end is always connected),
 *                                            PORT_NAME(p) + name if the port has a name
 * 3. driver → PORT_OPEN(p, 1 or 0)          a guest process opened/closed the port (for a
 *                                            console port: the hvc console was set up)
 *
 * PORT_OPEN goes before PORT_NAME on purpose: Linux makes the name visible in
 * sysfs when PORT_NAME arrives, and a guest program that finds the port by name
 * and opens it at once must already see the host connected (otherwise its
 * first read() returns 0, end of file).
 *
 * Data (§5.3.6): host bytes for a port are written into the port's receiveq
 * buffers only while the guest has the port open (Linux discards data that
 * arrives for a closed port); until then, and while the guest has posted no
 * buffers, they wait in the port (up to `maxBuffered` bytes; beyond that they
 * are dropped and counted). Guest output on a transmitq goes to the port's
 * `onData` callback, one call per buffer, in order.
 *
 * Guest errors never throw: a control message shorter than 8 bytes, for an
 * unknown port, or with an unknown event is ignored and counted; a data buffer
 * outside RAM or larger than {@link VIRTIO_CONSOLE_MAX_TX_CHAIN} is dropped and
 * counted; a structurally broken ring puts the device in DEVICE_NEEDS_RESET.
 */
import type { MmioWidth } from '../bus.js';
import { VIRTIO_ID_CONSOLE, readConfigBytes, type VirtioDevice, type VirtioDeviceContext } from './device.js';
import type { DescriptorChain, Virtqueue } from './queue.js';
import { ByteQueue } from '../byte-queue.js';

/** Feature bits (§5.3.3), as masks. */
export const VIRTIO_CONSOLE_F_SIZE = 1n << 0n;
export const VIRTIO_CONSOLE_F_MULTIPORT = 1n << 1n;
export const VIRTIO_CONSOLE_F_EMERG_WRITE = 1n << 2n;

/** Control message events (§5.3.6.2). */
export const VIRTIO_CONSOLE_DEVICE_READY = 0;
export const VIRTIO_CONSOLE_DEVICE_ADD = 1;
/** Linux's name for DEVICE_ADD. */
export const VIRTIO_CONSOLE_PORT_ADD = VIRTIO_CONSOLE_DEVICE_ADD;
export const VIRTIO_CONSOLE_DEVICE_REMOVE = 2;
export const VIRTIO_CONSOLE_PORT_READY = 3;
export const VIRTIO_CONSOLE_CONSOLE_PORT = 4;
export const VIRTIO_CONSOLE_RESIZE = 5;
export const VIRTIO_CONSOLE_PORT_OPEN = 6;
export const VIRTIO_CONSOLE_PORT_NAME = 7;

/** Port id the driver uses in DEVICE_READY (Linux: VIRTIO_CONSOLE_BAD_ID). */
export const VIRTIO_CONSOLE_BAD_ID = 0xffffffff;
/** Size of `struct virtio_console_control` (§5.3.6.2). */
export const VIRTIO_CONSOLE_CONTROL_SIZE = 8;
/** Size of the configuration space (§5.3.4). */
export const VIRTIO_CONSOLE_CONFIG_SIZE = 12;
/** Longest port name sent, in UTF-8 bytes (Linux takes any length up to its buffer, a page). */
export const VIRTIO_CONSOLE_MAX_NAME = 255;
/** Largest transmitq chain accepted, in bytes (Linux sends at most 32 KiB per write(), a pipe's worth for splice). */
export const VIRTIO_CONSOLE_MAX_TX_CHAIN = 4 * 1024 * 1024;
/** Most ports per device, a tsvisor limit (Linux accepts up to 0x8000); 31 ports make 64 virtqueues. */
export const VIRTIO_CONSOLE_MAX_PORTS = 31;

/** One port of a {@link VirtioConsole}. */
export interface VirtioConsolePortConfig {
  /** Name sent with PORT_NAME (§5.3.6.2); Linux shows it in /sys/class/virtio-ports/vportNpM/name. ASCII/UTF-8, at most 255 bytes. */
  name?: string;
  /** Send CONSOLE_PORT for this port: the guest hooks it to an hvc console (/dev/hvcN) instead of /dev/vportNpM. */
  console?: boolean;
  /** Guest output (one call per transmitq buffer). The array is a copy the callee may keep. */
  onData?: (bytes: Uint8Array) => void;
  /** The guest opened (true) or closed (false) the port (PORT_OPEN from the driver). */
  onOpen?: (open: boolean) => void;
  /** Host bytes kept while the guest cannot take them, at most (default 4 MiB). */
  maxBuffered?: number;
}

/** Options of {@link VirtioConsole}. */
export interface VirtioConsoleOptions {
  /** The ports, by id (port 0 first). Default: one unnamed console port. At most {@link VIRTIO_CONSOLE_MAX_PORTS}. */
  ports?: VirtioConsolePortConfig[];
  /** QueueNumMax of the port queues, a power of 2 in 2..32768 (default 128, as QEMU). */
  queueSize?: number;
  /** QueueNumMax of the control queues, a power of 2 in 2..32768 (default 32, as QEMU). */
  controlQueueSize?: number;
}

/** Counters of one port (bytes count only data that reached the other side). */
export interface VirtioConsolePortMetrics {
  /** Host → guest bytes placed in receiveq buffers. */
  rxBytes: number;
  /** Guest → host bytes handed to `onData`. */
  txBytes: number;
  /** Host bytes dropped because more than `maxBuffered` were waiting. */
  droppedBytes: number;
  /** Transmitq buffers dropped (outside RAM or too large). */
  badBuffers: number;
}

/** Counters of the device. */
export interface VirtioConsoleMetrics {
  /** Control messages from the driver that were malformed (short, unknown port, unknown event). */
  badControl: number;
  /** Control messages to the driver dropped because the driver's buffer was too small or outside RAM. */
  droppedControl: number;
  /** DEVICE_READY or PORT_READY with value 0 (the driver failed to set something up). */
  driverFailures: number;
  /** Times the device entered DEVICE_NEEDS_RESET. */
  needsReset: number;
}

/** Saved state of one port (plain JSON). */
export interface VirtioConsolePortState {
  ready: boolean;
  guestOpen: boolean;
  /** Host bytes not yet delivered, base64. */
  pending: string;
  metrics: VirtioConsolePortMetrics;
}

/** Saved state of a {@link VirtioConsole} (plain JSON). */
export interface VirtioConsoleState {
  ports: VirtioConsolePortState[];
  /** Control messages not yet delivered to the driver, base64 each. */
  control: string[];
  metrics: VirtioConsoleMetrics;
}

function newPortMetrics(): VirtioConsolePortMetrics {
  return { rxBytes: 0, txBytes: 0, droppedBytes: 0, badBuffers: 0 };
}

function newMetrics(): VirtioConsoleMetrics {
  return { badControl: 0, droppedControl: 0, driverFailures: 0, needsReset: 0 };
}

function checkQueueSize(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 2 || n > 32768 || (n & (n - 1)) !== 0) {
    throw new RangeError(`virtio-console ${what} must be a power of 2 in 2..32768, got ${n}`);
  }
  return n;
}

function toBase64(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(s: unknown): Uint8Array {
  if (typeof s !== 'string') return new Uint8Array(0);
  try {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return new Uint8Array(0);
  }
}

/**
 * The host end of one port: a byte stream to and from the guest
 * (a CharBackend turned around: the host pushes, the guest's output is a callback).
 */
export class VirtioConsolePort {
  /** Port id (0 = the first port). */
  readonly id: number;
  /** Name sent to the guest, or null. */
  readonly name: string | null;
  /** Whether the port is announced as a console port (CONSOLE_PORT). */
  readonly console: boolean;
  /** Guest output; may be replaced any time. The array is the callee's to keep. */
  onData: ((bytes: Uint8Array) => void) | null;
  /** Guest opened/closed the port; may be replaced any time. */
  onOpen: ((open: boolean) => void) | null;
  /** Live counters. */
  readonly metrics: VirtioConsolePortMetrics = newPortMetrics();
  /** @internal Bytes waiting for the guest, oldest first. */
  readonly pending = new ByteQueue();
  /** @internal The driver sent PORT_READY(1) since the last reset. */
  readyFlag = false;
  /** @internal The driver reports the port open. */
  openFlag = false;
  private readonly maxBuffered: number;

  /** @internal Made by {@link VirtioConsole}. */
  constructor(id: number, cfg: VirtioConsolePortConfig, private readonly kick: (port: VirtioConsolePort) => void) {
    this.id = id;
    this.name = cfg.name ?? null;
    this.console = cfg.console ?? false;
    this.onData = cfg.onData ?? null;
    this.onOpen = cfg.onOpen ?? null;
    this.maxBuffered = cfg.maxBuffered ?? 4 * 1024 * 1024;
  }

  /** The driver has set the port up (PORT_READY) and a guest program has it open (PORT_OPEN 1). */
  get guestOpen(): boolean {
    return this.readyFlag && this.openFlag;
  }

  /** Host bytes waiting to be delivered to the guest. */
  get buffered(): number {
    return this.pending.length;
  }

  /**
   * Send bytes to the guest (§5.3.6: they fill the port's receiveq buffers).
   * Strings are UTF-8 encoded; bytes are copied. Delivered at once if the guest
   * has the port open and buffers posted, else kept (in order) until it has.
   * All or nothing: a write that does not fit in what is left of `maxBuffered` is
   * dropped whole (a message is never cut in two, e.g. an agent command line).
   * @returns false if the bytes were dropped because too many are already waiting.
   */
  write(bytes: Uint8Array | string): boolean {
    const b = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes.slice();
    if (b.length > this.maxBuffered - this.pending.length) {
      this.metrics.droppedBytes += b.length;
      return false;
    }
    if (b.length > 0) {
      this.pending.push(b);
      this.kick(this);
    }
    return true;
  }
}

/**
 * virtio-console with multiport (§5.3). Host it in a `VirtioMmio` transport;
 * everything is served synchronously inside `queueNotify` and
 * {@link VirtioConsolePort.write} (Linux busy-waits for control transmitq
 * buffers to come back, so they must be answered inside the notification).
 */
export class VirtioConsole implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_CONSOLE;
  readonly features = VIRTIO_CONSOLE_F_MULTIPORT;
  readonly numQueues: number;
  /** The ports, by id. */
  readonly ports: readonly VirtioConsolePort[];
  /** Live counters. */
  readonly metrics: VirtioConsoleMetrics = newMetrics();
  private readonly queueSize: number;
  private readonly controlQueueSize: number;
  private readonly config = new Uint8Array(VIRTIO_CONSOLE_CONFIG_SIZE);
  private ctx: VirtioDeviceContext | null = null;
  /** Control messages waiting for control receiveq buffers. */
  private control: Uint8Array[] = [];
  /** Re-entrancy guard: a callback (onData/onOpen) may call write(); delivery then happens after it. */
  private busy = false;
  /** Set on DEVICE_NEEDS_RESET: nothing is processed until the driver resets the device. */
  private broken = false;

  /** @throws RangeError for bad options (queue sizes, port count, a name longer than 255 bytes). */
  constructor(options: VirtioConsoleOptions = {}) {
    const cfgs = options.ports && options.ports.length > 0 ? options.ports : [{ console: true }];
    if (cfgs.length > VIRTIO_CONSOLE_MAX_PORTS) throw new RangeError(`virtio-console: at most ${VIRTIO_CONSOLE_MAX_PORTS} ports`);
    for (const c of cfgs) {
      if (c.name !== undefined && (c.name.length === 0 || new TextEncoder().encode(c.name).length > VIRTIO_CONSOLE_MAX_NAME || c.name.includes('\0'))) {
        throw new RangeError(`virtio-console: bad port name ${JSON.stringify(c.name)}`);
      }
    }
    this.queueSize = checkQueueSize('queueSize', options.queueSize ?? 128);
    this.controlQueueSize = checkQueueSize('controlQueueSize', options.controlQueueSize ?? 32);
    this.ports = cfgs.map((c, i) => new VirtioConsolePort(i, c, (p) => this.kickPort(p)));
    this.numQueues = 2 * (this.ports.length + 1);
    new DataView(this.config.buffer).setUint32(4, this.ports.length, true); // max_nr_ports
  }

  /** The port called `name`, if any. */
  port(name: string): VirtioConsolePort | undefined {
    return this.ports.find((p) => p.name === name);
  }

  /** QueueNumMax (§4.2.2): control queues (2, 3) `controlQueueSize`, port queues `queueSize`, else 0. */
  queueMaxSize(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.numQueues) return 0;
    return index === 2 || index === 3 ? this.controlQueueSize : this.queueSize;
  }

  /** Config space read (§5.3.4), little-endian, any width; bytes past the structure read 0. */
  readConfig(offset: number, width: MmioWidth): number {
    return readConfigBytes(this.config, offset, width);
  }

  /** Config space writes are ignored (emerg_wr needs VIRTIO_CONSOLE_F_EMERG_WRITE, not offered). */
  writeConfig(_offset: number, _width: MmioWidth, _value: number): void {}

  /** DRIVER_OK (§3.1.1): serve queues through `ctx`. Without MULTIPORT negotiated, port 0 is the only port and is treated as open (§5.3.6). */
  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
    if (!this.multiport) {
      const p0 = this.ports[0];
      p0.readyFlag = true;
      p0.openFlag = true;
    }
    this.flush();
  }

  /** Device reset (§2.4): forget the driver's view (ready/open ports, queued control messages). Host bytes not yet delivered are kept for the next driver. */
  reset(): void {
    this.ctx = null;
    this.broken = false;
    this.control = [];
    for (const p of this.ports) {
      const wasOpen = p.guestOpen;
      p.readyFlag = false;
      p.openFlag = false;
      if (wasOpen) this.callOpen(p, false);
    }
  }

  /** Available buffer notification (§2.7.13) for queue `index`. */
  queueNotify(index: number): void {
    const ctx = this.ctx;
    if (!ctx || this.broken) return;
    const q = this.queueRole(index);
    if (!q) return;
    this.busy = true;
    try {
      if (q.kind === 'ctrl-tx') this.serveControlTx(ctx);
      else if (q.kind === 'tx') this.serveTx(ctx, index, this.ports[q.port]);
      // receiveq buffers posted (port or control): flush() below fills them
    } finally {
      this.busy = false;
    }
    this.flush();
  }

  /** Serializable state (see {@link VirtioConsoleState}). */
  save(): VirtioConsoleState {
    return {
      ports: this.ports.map((p) => ({ ready: p.readyFlag, guestOpen: p.openFlag, pending: toBase64(p.pending.peekAll()), metrics: { ...p.metrics } })),
      control: this.control.map(toBase64),
      metrics: { ...this.metrics },
    };
  }

  /** Restore from {@link save}; malformed fields read as empty/0. Call before the transport re-activates the device. */
  restore(state: unknown): void {
    const s = state as Partial<VirtioConsoleState> | null;
    const ports = Array.isArray(s?.ports) ? s!.ports : [];
    this.ports.forEach((p, i) => {
      const ps = ports[i] as Partial<VirtioConsolePortState> | undefined;
      p.readyFlag = ps?.ready === true;
      p.openFlag = ps?.guestOpen === true;
      p.pending.clear();
      p.pending.push(fromBase64(ps?.pending));
      Object.assign(p.metrics, numbers(newPortMetrics(), ps?.metrics));
    });
    this.control = Array.isArray(s?.control) ? s!.control.map(fromBase64).filter((m) => m.length >= VIRTIO_CONSOLE_CONTROL_SIZE) : [];
    Object.assign(this.metrics, numbers(newMetrics(), s?.metrics));
  }

  // ---- internals ----

  private get multiport(): boolean {
    return this.ctx !== null && (this.ctx.features & VIRTIO_CONSOLE_F_MULTIPORT) !== 0n;
  }

  /** What queue `index` is (§5.3.2). */
  private queueRole(index: number): { kind: 'rx' | 'tx' | 'ctrl-rx' | 'ctrl-tx'; port: number } | null {
    if (!Number.isInteger(index) || index < 0 || index >= this.numQueues) return null;
    if (index === 2 || index === 3) return this.multiport ? { kind: index === 2 ? 'ctrl-rx' : 'ctrl-tx', port: -1 } : null;
    const port = index < 2 ? 0 : (index >> 1) - 1;
    if (port > 0 && !this.multiport) return null;
    return { kind: (index & 1) === 0 ? 'rx' : 'tx', port };
  }

  private rxQueueIndex(port: number): number {
    return port === 0 ? 0 : 2 * port + 2;
  }

  private kickPort(_p: VirtioConsolePort): void {
    if (!this.busy) this.flush();
  }

  /** Deliver whatever can be delivered now: control messages, then waiting port bytes. Never throws. */
  private flush(): void {
    const ctx = this.ctx;
    if (!ctx || this.broken) return;
    try {
      if (this.multiport) this.deliverControl(ctx);
      for (const p of this.ports) if (p.pending.length > 0 && p.guestOpen) this.deliverPort(ctx, p);
    } catch (e) {
      this.fail(ctx, e);
    }
  }

  private fail(ctx: VirtioDeviceContext, e: unknown): void {
    if (this.broken) return;
    this.broken = true;
    this.metrics.needsReset++;
    ctx.needsReset(`virtio-console: ${e instanceof Error ? e.message : String(e)}`);
  }

  /** Queue a control message for the driver (§5.3.6.2). */
  private sendControl(id: number, event: number, value: number, extra?: Uint8Array): void {
    const m = new Uint8Array(VIRTIO_CONSOLE_CONTROL_SIZE + (extra?.length ?? 0));
    const v = new DataView(m.buffer);
    v.setUint32(0, id >>> 0, true);
    v.setUint16(4, event, true);
    v.setUint16(6, value, true);
    if (extra) m.set(extra, VIRTIO_CONSOLE_CONTROL_SIZE);
    // A driver that keeps sending DEVICE_READY/PORT_READY without posting control
    // receiveq buffers would grow this queue without bound: past the cap (every port's
    // whole set-up, several times over) new messages are dropped and counted.
    if (this.control.length >= this.maxControl) {
      this.metrics.droppedControl++;
      return;
    }
    this.control.push(m);
  }

  /** Most control messages kept waiting for receiveq buffers. */
  private get maxControl(): number {
    return 16 + 8 * this.ports.length;
  }

  /** Fill control receiveq buffers with waiting messages, one message per buffer. */
  private deliverControl(ctx: VirtioDeviceContext): void {
    if (this.control.length === 0) return;
    const vq = ctx.queue(2);
    if (!vq) return;
    let pushed = false;
    while (this.control.length > 0) {
      const chain = vq.pop();
      if (!chain) break;
      const msg = this.control.shift()!;
      if (vq.writeBuffers(chain.writable, msg)) {
        vq.pushUsed(chain.head, msg.length);
      } else {
        // too small or outside RAM: the message is lost, the buffer goes back empty
        this.metrics.droppedControl++;
        vq.pushUsed(chain.head, 0);
      }
      pushed = true;
    }
    if (pushed) ctx.usedBuffers(2);
  }

  /** Fill port receiveq buffers with waiting host bytes. */
  private deliverPort(ctx: VirtioDeviceContext, p: VirtioConsolePort): void {
    const qi = this.rxQueueIndex(p.id);
    const vq = ctx.queue(qi);
    if (!vq) return;
    let pushed = false;
    while (p.pending.length > 0) {
      const chain = vq.pop();
      if (!chain) break;
      const n = Math.min(chain.writableLength, p.pending.length);
      const segs = n > 0 ? vq.checkBuffers(chain.writable, 0, n) : null;
      if (!segs) {
        // no writable space or outside RAM: return the buffer unused, keep the bytes
        vq.pushUsed(chain.head, 0);
        pushed = true;
        continue;
      }
      vq.copyToSegments(segs, p.pending.take(n));
      p.metrics.rxBytes += n;
      vq.pushUsed(chain.head, n);
      pushed = true;
    }
    if (pushed) ctx.usedBuffers(qi);
  }

  /** Consume a port's transmitq: each buffer's bytes go to `onData`. */
  private serveTx(ctx: VirtioDeviceContext, qi: number, p: VirtioConsolePort): void {
    this.drain(ctx, qi, readChain, (data) => {
      if (!data) {
        p.metrics.badBuffers++;
        return;
      }
      if (data.length === 0) return;
      p.metrics.txBytes += data.length;
      try {
        p.onData?.(data);
      } catch {
        // a host callback bug is not the guest's fault
      }
    });
  }

  /** Consume the control transmitq (§5.3.6.2), answering each message. */
  private serveControlTx(ctx: VirtioDeviceContext): void {
    this.drain(ctx, 3, (vq, chain) => vq.readBuffers(chain.readable, 0, VIRTIO_CONSOLE_CONTROL_SIZE), (msg) => {
      if (!msg) {
        this.metrics.badControl++;
        return;
      }
      const v = new DataView(msg.buffer);
      this.handleControl(v.getUint32(0, true), v.getUint16(4, true), v.getUint16(6, true));
    });
  }

  /**
   * Take every available buffer of the device-readable queue `qi`: `read` copies what
   * is needed out of it, the buffer goes back to the used ring at once (nothing is
   * written into it), then `handle` gets the copy (null: `read` refused the buffer).
   * One used-buffer notification at the end; a structural ring error fails the device.
   */
  private drain<T>(ctx: VirtioDeviceContext, qi: number, read: (vq: Virtqueue, chain: DescriptorChain) => T | null, handle: (data: T | null) => void): void {
    const vq = ctx.queue(qi);
    if (!vq) return;
    let pushed = false;
    try {
      for (;;) {
        const chain = vq.pop();
        if (!chain) break;
        const data = read(vq, chain);
        vq.pushUsed(chain.head, 0);
        pushed = true;
        handle(data);
      }
    } catch (e) {
      if (pushed) ctx.usedBuffers(qi);
      this.fail(ctx, e);
      return;
    }
    if (pushed) ctx.usedBuffers(qi);
  }

  /** One control message from the driver (§5.3.6.2; QEMU's virtio-serial-bus handle_control_message). */
  private handleControl(id: number, event: number, value: number): void {
    if (event === VIRTIO_CONSOLE_DEVICE_READY) {
      if (value === 0) {
        this.metrics.driverFailures++;
        return;
      }
      for (const p of this.ports) this.sendControl(p.id, VIRTIO_CONSOLE_PORT_ADD, 1);
      return;
    }
    const p = id < this.ports.length ? this.ports[id] : undefined;
    if (!p) {
      this.metrics.badControl++;
      return;
    }
    switch (event) {
      case VIRTIO_CONSOLE_PORT_READY:
        if (value === 0) {
          this.metrics.driverFailures++;
          return;
        }
        p.readyFlag = true;
        if (p.console) this.sendControl(p.id, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
        this.sendControl(p.id, VIRTIO_CONSOLE_PORT_OPEN, 1); // the host end is always connected
        if (p.name !== null) this.sendControl(p.id, VIRTIO_CONSOLE_PORT_NAME, 1, new TextEncoder().encode(p.name + '\0'));
        return;
      case VIRTIO_CONSOLE_PORT_OPEN: {
        const open = value !== 0;
        if (open === p.openFlag) return;
        p.openFlag = open;
        this.callOpen(p, open);
        return;
      }
      default:
        this.metrics.badControl++;
    }
  }

  private callOpen(p: VirtioConsolePort, open: boolean): void {
    const was = this.busy;
    this.busy = true;
    try {
      p.onOpen?.(open);
    } catch {
      // host callback bug: ignore
    } finally {
      this.busy = was;
    }
  }
}

/** The readable bytes of a chain (a copy), or null if it is larger than the cap or reaches outside RAM. */
function readChain(vq: Virtqueue, chain: DescriptorChain): Uint8Array | null {
  if (chain.readableLength > VIRTIO_CONSOLE_MAX_TX_CHAIN) return null;
  return vq.readBuffers(chain.readable, 0, chain.readableLength);
}

/** `defaults` with every finite number of `from` copied over. */
function numbers<T extends object>(defaults: T, from: unknown): T {
  const src = (from ?? {}) as Record<string, unknown>;
  const out = defaults as Record<string, unknown>;
  for (const k of Object.keys(out)) {
    const v = src[k];
    if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  }
  return defaults;
}
