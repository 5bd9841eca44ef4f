/**
 * A VM's VNC server (RFB 3.8, RFC 6143; wire format in rfb.ts): any VNC viewer sees the
 * display's screen and drives its keyboard and tablet.
 *
 *  - Handshake: versions 3.3, 3.7 and 3.8 (anything newer is answered as 3.8), security
 *    type None (the server listens on loopback, or is reached through the VM's 0600 control
 *    socket and the daemon's token-checked WebSocket). Every viewer shares the screen.
 *  - Updates: only when the guest flushed part of the screen (RESOURCE_FLUSH) or a viewer
 *    asks for a full update; an idle screen sends nothing and costs nothing. Each viewer
 *    keeps its own damaged region and gets at most one update per request (§7.5.3), in Raw
 *    or zlib (one zlib stream per connection, each rectangle ended with Z_SYNC_FLUSH).
 *  - A mode change is a DesktopSize rectangle for viewers that announce it; others keep
 *    their size and see the screen clipped to it.
 *  - Input: X keysyms (US layout) and QEMU extended key events (scan codes, any layout) to
 *    the keyboard; pointer position, buttons and wheel to the tablet, scaled to its axes.
 *    Keys and buttons a viewer still holds when it leaves are released.
 *  - A viewer breaking the protocol, or still in its handshake after HANDSHAKE_TIMEOUT_MS,
 *    is disconnected; at most MAX_VIEWERS at once.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import {
  convertRect, ENCODING, parseClientMessage, rectHeader, RfbProtocolError, RFB_VERSION_3_8, SECURITY_NONE,
  SERVER_PIXEL_FORMAT, serverInit, updateHeader, type ClientMessage, type PixelFormat, type PixelSource,
} from './rfb.js';
import { keysymToLinux, qnumToLinux } from './keys.js';
import { ABS_X, ABS_Y, BTN_LEFT, BTN_MIDDLE, BTN_RIGHT, EV_ABS, EV_KEY, EV_REL, REL_WHEEL, tabletCoordinate } from '../../devices/virtio/input.js';

/** Viewers connected at once, at most. */
export const MAX_VIEWERS = 16;
/** A viewer must finish its handshake within this (ms). */
export const HANDSHAKE_TIMEOUT_MS = 30_000;
/** Damaged rectangles kept per viewer before they are merged into their bounding box. */
const MAX_DIRTY_RECTS = 16;

/** A rectangle in screen pixels. */
export interface Rect { x: number; y: number; width: number; height: number }

/** What the server shows and drives: the VM's display, keyboard and tablet. */
export interface VncTarget {
  /** The screen now: its pixels and size, or null while the guest shows nothing. */
  screen(): (PixelSource & { width: number; height: number }) | null;
  /** The size of a blank screen (the display's preferred mode), in pixels. */
  blankSize(): { width: number; height: number };
  /** A Linux key code pressed or released on the keyboard. */
  key(code: number, down: boolean): void;
  /** Events `[type, code, value]` for the tablet, sent as one report. */
  pointer(events: Array<[number, number, number]>): void;
}

/** Counters of the server (mutated in place). */
export interface VncMetrics {
  connections: number;
  /** FramebufferUpdate messages sent. */
  updates: number;
  /** Bytes sent to viewers. */
  bytesSent: number;
  /** Viewers disconnected for breaking the protocol. */
  protocolErrors: number;
}

/** The VNC server of one VM; see the file comment. */
export class VncServer {
  readonly metrics: VncMetrics = { connections: 0, updates: 0, bytesSent: 0, protocolErrors: 0 };
  private readonly viewers = new Set<Viewer>();
  private tcp: Server | null = null;

  /** `name`: the desktop name viewers show (the VM's name). */
  constructor(private readonly target: VncTarget, private readonly name: string) {}

  /** Viewers connected now. */
  get viewerCount(): number {
    return this.viewers.size;
  }

  /**
   * Listen for viewers on TCP `host:port` (port 0: any free one); resolves with the port.
   * @throws the listen error (EADDRINUSE, ...).
   */
  async listen(host: string, port: number): Promise<number> {
    const server = createServer((socket) => { socket.setNoDelay(true); this.attach(socket); });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    server.on('error', () => { /* accept errors end that connection only */ });
    this.tcp = server;
    return (server.address() as AddressInfo).port;
  }

  /** Serve one viewer on `stream` (a TCP socket, or an upgraded control-socket connection). */
  attach(stream: Duplex): void {
    this.metrics.connections++;
    const viewer = new Viewer(stream, this.target, this.name, this.metrics, this.viewers.size >= MAX_VIEWERS);
    this.viewers.add(viewer);
    stream.once('close', () => { viewer.close(); this.viewers.delete(viewer); });
  }

  /** The guest flushed `rect` of the screen: viewers that asked get it. */
  damage(rect: Rect): void {
    for (const v of this.viewers) v.damage(rect);
  }

  /** The screen changed size or was blanked: every viewer gets all of it again. */
  resized(): void {
    for (const v of this.viewers) v.resized();
  }

  /** Stop listening and disconnect every viewer. */
  async close(): Promise<void> {
    for (const v of this.viewers) v.close();
    this.viewers.clear();
    const tcp = this.tcp;
    this.tcp = null;
    if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }
}

type Phase = 'version' | 'security' | 'init' | 'normal' | 'closed';

/** One connected viewer. */
class Viewer {
  private phase: Phase = 'version';
  private minor = 8;
  private input: Buffer = Buffer.alloc(0);
  private format: PixelFormat = SERVER_PIXEL_FORMAT;
  private encodings = new Set<number>();
  private readonly dirty: Rect[] = [];
  /** The framebuffer size the viewer knows. */
  private size = { width: 0, height: 0 };
  private requested = false;
  /** The screen changed size since the viewer's last update: a DesktopSize rectangle is owed. */
  private pendingResize = false;
  private busy = false;
  private announceExtendedKeys = false;
  private deflate: zlib.Deflate | null = null;
  private deflated: Buffer[] = [];
  private readonly keysDown = new Set<number>();
  private buttons = 0;
  private readonly handshakeTimer: NodeJS.Timeout;

  /** `full`: too many viewers; this one is told so once it has said its version. */
  constructor(private readonly stream: Duplex, private readonly target: VncTarget, private readonly name: string, private readonly metrics: VncMetrics, private readonly full: boolean) {
    this.handshakeTimer = setTimeout(() => this.fail(), HANDSHAKE_TIMEOUT_MS);
    stream.on('data', (chunk: Buffer) => this.receive(chunk));
    stream.on('error', () => this.close());
    stream.on('end', () => this.close());
    this.send(Buffer.from(RFB_VERSION_3_8, 'latin1'));
  }

  private send(b: Uint8Array): void {
    if (this.stream.destroyed || !this.stream.writable) return;
    this.metrics.bytesSent += b.length;
    this.stream.write(b);
  }

  /** The viewer broke the protocol (or was too slow to start): drop it. */
  private fail(): void {
    if (this.phase === 'closed') return;
    this.metrics.protocolErrors++;
    this.close();
  }

  /** Release what the viewer held and drop the connection. */
  close(): void {
    clearTimeout(this.handshakeTimer);
    if (this.phase === 'normal') {
      for (const k of this.keysDown) this.target.key(k, false);
      this.keysDown.clear();
      if (this.buttons & 7) this.target.pointer(this.buttonEvents(this.buttons, 0));
      this.buttons = 0;
    }
    this.phase = 'closed';
    this.deflate?.close();
    this.deflate = null;
    if (!this.stream.destroyed) this.stream.destroy();
  }

  private receive(chunk: Buffer): void {
    this.input = this.input.length ? Buffer.concat([this.input, chunk]) : chunk;
    try {
      for (;;) {
        const used = this.step();
        if (used === 0) break;
        this.input = this.input.subarray(used);
      }
    } catch {
      // a protocol violation (RfbProtocolError) or anything else: this viewer goes, the VM stays
      this.fail();
    }
  }

  /** Handle what the input starts with; returns the bytes used, 0 when more are needed. */
  private step(): number {
    const b = this.input;
    switch (this.phase) {
      case 'version': {
        if (b.length < 12) return 0;
        const m = /^RFB (\d{3})\.(\d{3})\n$/.exec(b.subarray(0, 12).toString('latin1'));
        if (!m || Number(m[1]) !== 3) throw new RfbProtocolError('not an RFB 3.x client');
        const minor = Number(m[2]);
        this.minor = minor >= 8 ? 8 : minor === 7 ? 7 : 3;
        if (this.full) return this.refuse('too many viewers are connected to this VM');
        if (this.minor === 3) {
          this.send(u32(SECURITY_NONE)); // 3.3: the server picks (§7.1.2)
          this.phase = 'init';
        } else {
          this.send(Uint8Array.of(1, SECURITY_NONE));
          this.phase = 'security';
        }
        return 12;
      }
      case 'security':
        if (b.length < 1) return 0;
        if (b[0] !== SECURITY_NONE) throw new RfbProtocolError(`security type ${b[0]} was not offered`);
        if (this.minor === 8) this.send(u32(0)); // SecurityResult OK (3.8 sends it for None too)
        this.phase = 'init';
        return 1;
      case 'init': {
        if (b.length < 1) return 0; // ClientInit's shared flag: every viewer shares
        clearTimeout(this.handshakeTimer);
        this.size = this.currentSize();
        this.send(serverInit(this.size.width, this.size.height, this.name));
        this.phase = 'normal';
        return 1;
      }
      case 'normal': {
        const parsed = parseClientMessage(b);
        if (!parsed) return 0;
        this.handle(parsed.message);
        return parsed.bytes;
      }
      default:
        return 0;
    }
  }

  /** Tell a 3.7/3.8 client why it cannot connect (§7.1.2: zero security types and a reason). */
  private refuse(reason: string): number {
    const text = Buffer.from(reason, 'utf8');
    if (this.minor === 3) this.send(u32(0));
    else this.send(Uint8Array.of(0));
    this.send(u32(text.length));
    this.send(text);
    this.stream.end();
    this.phase = 'closed';
    return 12;
  }

  private currentSize(): { width: number; height: number } {
    const s = this.target.screen();
    return s ? { width: s.width, height: s.height } : this.target.blankSize();
  }

  private handle(m: ClientMessage): void {
    switch (m.type) {
      case 'setPixelFormat':
        this.format = m.format;
        this.damage({ x: 0, y: 0, ...this.size }); // what the viewer has is in the old format
        return;
      case 'setEncodings':
        this.encodings = new Set(m.encodings);
        if (this.encodings.has(ENCODING.QEMU_EXTENDED_KEY_EVENT)) this.announceExtendedKeys = true;
        this.pump();
        return;
      case 'updateRequest':
        if (!m.incremental) this.damage({ x: m.x, y: m.y, width: m.width, height: m.height });
        this.requested = true;
        this.pump();
        return;
      case 'key':
        this.key(keysymToLinux(m.keysym), m.down);
        return;
      case 'qemuKey':
        this.key(qnumToLinux(m.keycode) || keysymToLinux(m.keysym), m.down);
        return;
      case 'pointer':
        this.pointer(m.buttons, m.x, m.y);
        return;
      case 'cutText':
        return; // the guest has no clipboard channel
    }
  }

  private key(code: number, down: boolean): void {
    if (code === 0) return;
    if (down) this.keysDown.add(code);
    else if (!this.keysDown.delete(code)) return; // a release of a key this viewer never pressed
    this.target.key(code, down);
  }

  private buttonEvents(before: number, after: number): Array<[number, number, number]> {
    const events: Array<[number, number, number]> = [];
    for (const [bit, btn] of [[1, BTN_LEFT], [2, BTN_MIDDLE], [4, BTN_RIGHT]] as const) {
      if ((before ^ after) & bit) events.push([EV_KEY, btn, after & bit ? 1 : 0]);
    }
    return events;
  }

  /** Pointer at viewer pixel (x, y) with RFB button mask `mask` (§7.5.5: bits 0-2 buttons, 3/4 wheel up/down). */
  private pointer(mask: number, x: number, y: number): void {
    const events: Array<[number, number, number]> = [
      [EV_ABS, ABS_X, tabletCoordinate(x, this.size.width)],
      [EV_ABS, ABS_Y, tabletCoordinate(y, this.size.height)],
      ...this.buttonEvents(this.buttons, mask & 7),
    ];
    if (mask & 8 && !(this.buttons & 8)) events.push([EV_REL, REL_WHEEL, 1]);
    if (mask & 16 && !(this.buttons & 16)) events.push([EV_REL, REL_WHEEL, -1]);
    this.buttons = mask;
    this.target.pointer(events);
  }

  /** Add `r` (clipped to the viewer's framebuffer) to the damaged region and send if asked. */
  damage(r: Rect): void {
    if (this.phase !== 'normal') return;
    const x0 = Math.max(0, r.x), y0 = Math.max(0, r.y);
    const x1 = Math.min(this.size.width, r.x + r.width), y1 = Math.min(this.size.height, r.y + r.height);
    if (x1 <= x0 || y1 <= y0) { this.pump(); return; }
    const rect = { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
    if (!this.dirty.some((d) => contains(d, rect))) {
      for (let i = this.dirty.length - 1; i >= 0; i--) if (contains(rect, this.dirty[i])) this.dirty.splice(i, 1);
      this.dirty.push(rect);
      if (this.dirty.length > MAX_DIRTY_RECTS) {
        const all = this.dirty.reduce(union);
        this.dirty.length = 0;
        this.dirty.push(all);
      }
    }
    this.pump();
  }

  resized(): void {
    if (this.phase !== 'normal') return;
    const size = this.currentSize();
    if (this.encodings.has(ENCODING.DESKTOP_SIZE)) {
      if (size.width !== this.size.width || size.height !== this.size.height) this.pendingResize = true;
      this.size = size;
    }
    this.dirty.length = 0;
    this.damage({ x: 0, y: 0, ...this.size });
  }

  /** Send an update if the viewer asked for one and there is something to send. */
  private pump(): void {
    if (this.phase !== 'normal' || !this.requested || this.busy) return;
    if (this.dirty.length === 0 && !this.pendingResize && !this.announceExtendedKeys) return;
    this.requested = false;
    this.busy = true;
    this.sendUpdate().then(() => {
      this.busy = false;
      this.pump();
    }, () => this.close());
  }

  private async sendUpdate(): Promise<void> {
    const parts: Uint8Array[] = [];
    let count = 0;
    if (this.announceExtendedKeys) {
      parts.push(rectHeader(0, 0, 0, 0, ENCODING.QEMU_EXTENDED_KEY_EVENT));
      count++;
      this.announceExtendedKeys = false;
    }
    if (this.pendingResize) {
      parts.push(rectHeader(0, 0, this.size.width, this.size.height, ENCODING.DESKTOP_SIZE));
      count++;
      this.pendingResize = false;
    }
    // every rectangle is read now, in the format asked now: the guest may change the screen while zlib works
    const screen = this.target.screen();
    const rects = this.dirty.splice(0).map((r) => ({
      ...r,
      pixels: screen && r.x + r.width <= screen.width && r.y + r.height <= screen.height
        ? convertRect(screen, r.x, r.y, r.width, r.height, this.format)
        : this.blank(r, screen),
    }));
    const zlibOn = this.preferred(ENCODING.ZLIB);
    for (const { pixels, ...r } of rects) {
      if (zlibOn) {
        const packed = await this.compress(pixels);
        parts.push(rectHeader(r.x, r.y, r.width, r.height, ENCODING.ZLIB), u32(packed.length), packed);
      } else {
        parts.push(rectHeader(r.x, r.y, r.width, r.height, ENCODING.RAW), pixels);
      }
      count++;
    }
    if (this.phase !== 'normal') return;
    this.send(updateHeader(count));
    for (const p of parts) this.send(p);
    this.metrics.updates++;
  }

  /** The rectangle where the screen has no pixels (blank, or smaller than the viewer's): black, with what the screen has. */
  private blank(r: Rect, screen: ReturnType<VncTarget['screen']>): Uint8Array {
    const bpp = this.format.bitsPerPixel >> 3;
    const out = new Uint8Array(r.width * r.height * bpp);
    if (!screen) return out;
    const w = Math.max(0, Math.min(r.width, screen.width - r.x));
    const h = Math.max(0, Math.min(r.height, screen.height - r.y));
    if (w === 0 || h === 0) return out;
    const part = convertRect(screen, r.x, r.y, w, h, this.format);
    for (let row = 0; row < h; row++) out.set(part.subarray(row * w * bpp, (row + 1) * w * bpp), row * r.width * bpp);
    return out;
  }

  /** True when `encoding` comes before Raw in the viewer's list (§7.5.2: in order of preference). */
  private preferred(encoding: number): boolean {
    for (const e of this.encodings) {
      if (e === encoding) return true;
      if (e === ENCODING.RAW) return false;
    }
    return false;
  }

  /** `data` through the connection's zlib stream, ended with a sync flush. */
  private compress(data: Uint8Array): Promise<Buffer> {
    if (!this.deflate) {
      this.deflate = zlib.createDeflate({ level: 1 });
      this.deflate.on('data', (c: Buffer) => this.deflated.push(c));
      this.deflate.on('error', () => this.close());
    }
    const d = this.deflate;
    d.write(data);
    return new Promise((resolve, reject) => {
      d.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        if (this.deflate !== d) { reject(new Error('closed')); return; }
        const out = Buffer.concat(this.deflated);
        this.deflated = [];
        resolve(out);
      });
    });
  }
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function contains(outer: Rect, inner: Rect): boolean {
  return inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.width <= outer.x + outer.width && inner.y + inner.height <= outer.y + outer.height;
}

function union(a: Rect, b: Rect): Rect {
  const x = Math.min(a.x, b.x), y = Math.min(a.y, b.y);
  return { x, y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: Math.max(a.y + a.height, b.y + b.height) - y };
}
