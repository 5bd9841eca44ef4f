/**
 * A scripted VNC viewer for the tests (RFC 6143, RFB 3.8 or 3.3, security None): it keeps
 * the framebuffer as RGBA from Raw, zlib and DesktopSize rectangles, and sends keys (X
 * keysyms and QEMU extended key events) and pointer events.
 */
import { connect, type Socket } from 'node:net';
import zlib from 'node:zlib';

/** One rectangle of a FramebufferUpdate as received. */
export interface ReceivedRect { x: number; y: number; width: number; height: number; encoding: number }

export class RfbClient {
  width = 0;
  height = 0;
  name = '';
  /** The framebuffer, RGBA. */
  fb = new Uint8Array(0);
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private ended = false;
  private readonly inflate = zlib.createInflate();
  private inflated: Buffer[] = [];
  /** Bytes received from the server. */
  bytesReceived = 0;

  /** `paint`: keep `fb` (false: read the rectangles and drop them, as a bench viewer). */
  private constructor(private readonly socket: Socket, private readonly paintFb: boolean) {
    socket.on('data', (c: Buffer) => { this.bytesReceived += c.length; this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c; this.wake(); });
    socket.on('close', () => { this.ended = true; this.wake(); });
    socket.on('error', () => { /* seen as close */ });
    this.inflate.on('data', (c: Buffer) => this.inflated.push(c));
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Resolves with `n` bytes, or rejects when the connection ends first or `timeoutMs` passes. */
  async read(n: number, timeoutMs = 30_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended) throw new Error(`connection closed (wanted ${n} bytes, have ${this.buf.length})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => { clearTimeout(t); resolve(); };
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** True when the server has closed the connection. */
  get closed(): boolean {
    return this.ended;
  }

  /** Bytes received and not read yet. */
  get unread(): number {
    return this.buf.length;
  }

  /** Connects to `port` on loopback (or uses `socket`) and does the handshake up to ServerInit. */
  static async connect(target: number | Socket, version = '003.008', opts: { paint?: boolean } = {}): Promise<RfbClient> {
    const socket = typeof target === 'number' ? connect(target, '127.0.0.1') : target;
    const c = new RfbClient(socket, opts.paint ?? true);
    const banner = (await c.read(12)).toString('latin1');
    if (banner !== 'RFB 003.008\n') throw new Error(`server version ${JSON.stringify(banner)}`);
    socket.write(`RFB ${version}\n`);
    if (version === '003.003') {
      const type = (await c.read(4)).readUInt32BE(0);
      if (type !== 1) throw new Error(`security type ${type}: ${(await c.read((await c.read(4)).readUInt32BE(0))).toString()}`);
    } else {
      const n = (await c.read(1))[0];
      if (n === 0) throw new Error(`refused: ${(await c.read((await c.read(4)).readUInt32BE(0))).toString()}`);
      const types = [...await c.read(n)];
      if (!types.includes(1)) throw new Error(`no None security: ${types}`);
      socket.write(Uint8Array.of(1));
      if ((await c.read(4)).readUInt32BE(0) !== 0) throw new Error('security failed');
    }
    socket.write(Uint8Array.of(1)); // shared
    const init = await c.read(24);
    c.width = init.readUInt16BE(0);
    c.height = init.readUInt16BE(2);
    c.name = (await c.read(init.readUInt32BE(20))).toString('utf8');
    c.fb = new Uint8Array(c.width * c.height * 4);
    return c;
  }

  setEncodings(encodings: number[]): void {
    const b = Buffer.alloc(4 + 4 * encodings.length);
    b[0] = 2;
    b.writeUInt16BE(encodings.length, 2);
    encodings.forEach((e, i) => b.writeInt32BE(e, 4 + 4 * i));
    this.socket.write(b);
  }

  /** SetPixelFormat: 16 bits per pixel, RGB565, little-endian (to check conversion). */
  setRgb565(): void {
    const b = Buffer.alloc(20);
    b[0] = 0;
    Buffer.from([16, 16, 0, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0]).copy(b, 4);
    this.socket.write(b);
    this.rgb565 = true;
  }

  private rgb565 = false;

  requestUpdate(incremental: boolean, x = 0, y = 0, width = this.width, height = this.height): void {
    const b = Buffer.alloc(10);
    b[0] = 3; b[1] = incremental ? 1 : 0;
    b.writeUInt16BE(x, 2); b.writeUInt16BE(y, 4); b.writeUInt16BE(width, 6); b.writeUInt16BE(height, 8);
    this.socket.write(b);
  }

  key(down: boolean, keysym: number): void {
    const b = Buffer.alloc(8);
    b[0] = 4; b[1] = down ? 1 : 0;
    b.writeUInt32BE(keysym, 4);
    this.socket.write(b);
  }

  qemuKey(down: boolean, keysym: number, keycode: number): void {
    const b = Buffer.alloc(12);
    b[0] = 255; b[1] = 0;
    b.writeUInt16BE(down ? 1 : 0, 2);
    b.writeUInt32BE(keysym, 4);
    b.writeUInt32BE(keycode, 8);
    this.socket.write(b);
  }

  pointer(buttons: number, x: number, y: number): void {
    const b = Buffer.alloc(6);
    b[0] = 5; b[1] = buttons;
    b.writeUInt16BE(x, 2); b.writeUInt16BE(y, 4);
    this.socket.write(b);
  }

  /** Raw bytes to the server (to break the protocol on purpose). */
  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Reads one FramebufferUpdate and applies it to `fb`. */
  async update(timeoutMs = 30_000): Promise<ReceivedRect[]> {
    const head = await this.read(4, timeoutMs);
    if (head[0] !== 0) throw new Error(`server message type ${head[0]}`);
    const rects: ReceivedRect[] = [];
    for (let i = head.readUInt16BE(2); i > 0; i--) {
      const h = await this.read(12, timeoutMs);
      const r = { x: h.readUInt16BE(0), y: h.readUInt16BE(2), width: h.readUInt16BE(4), height: h.readUInt16BE(6), encoding: h.readInt32BE(8) };
      rects.push(r);
      const bpp = this.rgb565 ? 2 : 4;
      if (r.encoding === 0) {
        const pixels = await this.read(r.width * r.height * bpp, timeoutMs);
        if (this.paintFb) this.paint(r, pixels, bpp);
      } else if (r.encoding === 6) {
        const packed = await this.read((await this.read(4, timeoutMs)).readUInt32BE(0), timeoutMs);
        if (!this.paintFb) continue;
        this.inflate.write(packed);
        await new Promise<void>((resolve) => this.inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve()));
        const pixels = Buffer.concat(this.inflated);
        this.inflated = [];
        if (pixels.length !== r.width * r.height * bpp) throw new Error(`zlib rectangle: ${pixels.length} bytes`);
        this.paint(r, pixels, bpp);
      } else if (r.encoding === -223) {
        this.width = r.width;
        this.height = r.height;
        this.fb = new Uint8Array(r.width * r.height * 4);
      } else if (r.encoding !== -258) {
        throw new Error(`encoding ${r.encoding}`);
      }
    }
    return rects;
  }

  private paint(r: ReceivedRect, pixels: Buffer, bpp: number): void {
    for (let row = 0; row < r.height; row++) {
      for (let col = 0; col < r.width; col++) {
        const s = (row * r.width + col) * bpp;
        const d = ((r.y + row) * this.width + r.x + col) * 4;
        if (bpp === 4) {
          this.fb[d] = pixels[s + 2]; this.fb[d + 1] = pixels[s + 1]; this.fb[d + 2] = pixels[s];
        } else {
          const p = pixels.readUInt16LE(s);
          this.fb[d] = p >> 11; this.fb[d + 1] = (p >> 5) & 63; this.fb[d + 2] = p & 31;
        }
        this.fb[d + 3] = 255;
      }
    }
  }

  close(): void {
    this.socket.destroy();
    this.inflate.close();
  }
}
