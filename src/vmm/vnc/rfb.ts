/**
 * The RFB protocol's wire format (RFC 6143, "The Remote Framebuffer Protocol", version
 * 3.8), the server's side: the handshake messages (§7.1-7.3), the client-to-server
 * messages (§7.5) with QEMU's client message for extended key events (the community
 * RFB specification, "QEMU Client Message", subtype 0), and the server-to-client
 * FramebufferUpdate (§7.6.1) with its encodings: Raw (§7.7.1), zlib (type 6), and the
 * pseudo-encodings DesktopSize (-223, §7.8.2) and QEMU Extended Key Event (-258).
 *
 * Pixel conversion: the screen's 4-byte pixels (any virtio-gpu format, given by where red,
 * green and blue sit) into the viewer's true-colour pixel format (§7.4: 8, 16 or 32 bits
 * per pixel, either byte order, any channel maxima and shifts). Colour-map formats are
 * refused.
 *
 * Everything a client sends is checked: message types, pixel formats, lengths (a cut
 * text longer than MAX_CUT_TEXT_BYTES is refused). A violation throws RfbProtocolError
 * and the connection is closed.
 */

/** TCP port of VNC display :0; display N listens on VNC_BASE_PORT + N (the convention of VNC servers and QEMU's -vnc). */
export const VNC_BASE_PORT = 5900;

/** The version the server offers (§7.1.1). */
export const RFB_VERSION_3_8 = 'RFB 003.008\n';
/** Security type None (§7.1.2). */
export const SECURITY_NONE = 1;

/** Client-to-server message types (§7.5). */
export const CLIENT_MSG = {
  SET_PIXEL_FORMAT: 0, SET_ENCODINGS: 2, FRAMEBUFFER_UPDATE_REQUEST: 3, KEY_EVENT: 4,
  POINTER_EVENT: 5, CLIENT_CUT_TEXT: 6, QEMU: 255,
} as const;
/** QEMU client message subtype: extended key event. */
export const QEMU_EXTENDED_KEY_EVENT = 0;
/** Server-to-client message types (§7.6). */
export const SERVER_MSG = { FRAMEBUFFER_UPDATE: 0, BELL: 2 } as const;
/** Encodings and pseudo-encodings (§7.7, §7.8). */
export const ENCODING = { RAW: 0, ZLIB: 6, DESKTOP_SIZE: -223, QEMU_EXTENDED_KEY_EVENT: -258 } as const;
/** Longest ClientCutText accepted (bytes); the text itself is ignored. */
export const MAX_CUT_TEXT_BYTES = 1024 * 1024;

/** A client broke the protocol (one line). */
export class RfbProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RfbProtocolError';
  }
}

/** A pixel format (§7.4). Only true-colour formats are used. */
export interface PixelFormat {
  /** 8, 16 or 32. */
  bitsPerPixel: number;
  depth: number;
  bigEndian: boolean;
  trueColour: boolean;
  redMax: number;
  greenMax: number;
  blueMax: number;
  redShift: number;
  greenShift: number;
  blueShift: number;
}

/** The server's own format: 32 bits per pixel, depth 24, little-endian 0x00RRGGBB. */
export const SERVER_PIXEL_FORMAT: PixelFormat = {
  bitsPerPixel: 32, depth: 24, bigEndian: false, trueColour: true,
  redMax: 255, greenMax: 255, blueMax: 255, redShift: 16, greenShift: 8, blueShift: 0,
};

/** The 16 bytes of a PIXEL_FORMAT (§7.4). */
export function encodePixelFormat(pf: PixelFormat): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  b[0] = pf.bitsPerPixel; b[1] = pf.depth; b[2] = pf.bigEndian ? 1 : 0; b[3] = pf.trueColour ? 1 : 0;
  v.setUint16(4, pf.redMax); v.setUint16(6, pf.greenMax); v.setUint16(8, pf.blueMax);
  b[10] = pf.redShift; b[11] = pf.greenShift; b[12] = pf.blueShift;
  return b;
}

/**
 * Reads a PIXEL_FORMAT at `at` of `b` (16 bytes) and checks it can be produced.
 * @throws RfbProtocolError for a colour-map format, bits per pixel other than 8/16/32, or
 *   a channel that does not fit in the pixel.
 */
export function decodePixelFormat(b: Uint8Array, at: number): PixelFormat {
  const v = new DataView(b.buffer, b.byteOffset + at, 16);
  const pf: PixelFormat = {
    bitsPerPixel: v.getUint8(0), depth: v.getUint8(1), bigEndian: v.getUint8(2) !== 0, trueColour: v.getUint8(3) !== 0,
    redMax: v.getUint16(4), greenMax: v.getUint16(6), blueMax: v.getUint16(8),
    redShift: v.getUint8(10), greenShift: v.getUint8(11), blueShift: v.getUint8(12),
  };
  if (!pf.trueColour) throw new RfbProtocolError('colour-map pixel formats are not supported');
  if (pf.bitsPerPixel !== 8 && pf.bitsPerPixel !== 16 && pf.bitsPerPixel !== 32) throw new RfbProtocolError(`${pf.bitsPerPixel} bits per pixel: expected 8, 16 or 32`);
  for (const [max, shift] of [[pf.redMax, pf.redShift], [pf.greenMax, pf.greenShift], [pf.blueMax, pf.blueShift]]) {
    if (max === 0 || (max & (max + 1)) !== 0 || shift + Math.log2(max + 1) > pf.bitsPerPixel) {
      throw new RfbProtocolError(`pixel format: channel maximum ${max} at shift ${shift} does not fit ${pf.bitsPerPixel} bits`);
    }
  }
  return pf;
}

/** ServerInit (§7.3.2): the framebuffer's size (pixels), the server's pixel format, the desktop name. */
export function serverInit(width: number, height: number, name: string): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const b = new Uint8Array(24 + nameBytes.length);
  const v = new DataView(b.buffer);
  v.setUint16(0, width); v.setUint16(2, height);
  b.set(encodePixelFormat(SERVER_PIXEL_FORMAT), 4);
  v.setUint32(20, nameBytes.length);
  b.set(nameBytes, 24);
  return b;
}

/** The header of a FramebufferUpdate of `count` rectangles (§7.6.1). */
export function updateHeader(count: number): Uint8Array {
  const b = new Uint8Array(4);
  b[0] = SERVER_MSG.FRAMEBUFFER_UPDATE;
  new DataView(b.buffer).setUint16(2, count);
  return b;
}

/** A rectangle's header (§7.6.1): position, size (pixels) and encoding type. */
export function rectHeader(x: number, y: number, width: number, height: number, encoding: number): Uint8Array {
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  v.setUint16(0, x); v.setUint16(2, y); v.setUint16(4, width); v.setUint16(6, height);
  v.setInt32(8, encoding);
  return b;
}

/** A message from the client (§7.5), decoded. */
export type ClientMessage =
  | { type: 'setPixelFormat'; format: PixelFormat }
  | { type: 'setEncodings'; encodings: number[] }
  | { type: 'updateRequest'; incremental: boolean; x: number; y: number; width: number; height: number }
  | { type: 'key'; down: boolean; keysym: number }
  | { type: 'pointer'; buttons: number; x: number; y: number }
  | { type: 'cutText' }
  | { type: 'qemuKey'; down: boolean; keysym: number; keycode: number };

/**
 * The next client message at the start of `b`: the message and its length in bytes, or
 * null when `b` does not hold all of it yet.
 * @throws RfbProtocolError for an unknown type or subtype, a bad pixel format or a cut
 *   text past MAX_CUT_TEXT_BYTES.
 */
export function parseClientMessage(b: Uint8Array): { message: ClientMessage; bytes: number } | null {
  if (b.length === 0) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (b[0]) {
    case CLIENT_MSG.SET_PIXEL_FORMAT:
      if (b.length < 20) return null;
      return { message: { type: 'setPixelFormat', format: decodePixelFormat(b, 4) }, bytes: 20 };
    case CLIENT_MSG.SET_ENCODINGS: {
      if (b.length < 4) return null;
      const count = v.getUint16(2);
      if (b.length < 4 + count * 4) return null;
      const encodings: number[] = [];
      for (let i = 0; i < count; i++) encodings.push(v.getInt32(4 + i * 4));
      return { message: { type: 'setEncodings', encodings }, bytes: 4 + count * 4 };
    }
    case CLIENT_MSG.FRAMEBUFFER_UPDATE_REQUEST:
      if (b.length < 10) return null;
      return { message: { type: 'updateRequest', incremental: b[1] !== 0, x: v.getUint16(2), y: v.getUint16(4), width: v.getUint16(6), height: v.getUint16(8) }, bytes: 10 };
    case CLIENT_MSG.KEY_EVENT:
      if (b.length < 8) return null;
      return { message: { type: 'key', down: b[1] !== 0, keysym: v.getUint32(4) }, bytes: 8 };
    case CLIENT_MSG.POINTER_EVENT:
      if (b.length < 6) return null;
      return { message: { type: 'pointer', buttons: b[1], x: v.getUint16(2), y: v.getUint16(4) }, bytes: 6 };
    case CLIENT_MSG.CLIENT_CUT_TEXT: {
      if (b.length < 8) return null;
      // a negative length is the extended clipboard's (its magnitude is the payload's length)
      const length = Math.abs(v.getInt32(4));
      if (length > MAX_CUT_TEXT_BYTES) throw new RfbProtocolError(`cut text of ${length} bytes: at most ${MAX_CUT_TEXT_BYTES}`);
      if (b.length < 8 + length) return null;
      return { message: { type: 'cutText' }, bytes: 8 + length };
    }
    case CLIENT_MSG.QEMU:
      if (b.length < 2) return null;
      if (b[1] !== QEMU_EXTENDED_KEY_EVENT) throw new RfbProtocolError(`QEMU client message subtype ${b[1]} is not supported`);
      if (b.length < 12) return null;
      return { message: { type: 'qemuKey', down: v.getUint16(2) !== 0, keysym: v.getUint32(4), keycode: v.getUint32(8) }, bytes: 12 };
    default:
      throw new RfbProtocolError(`unknown client message type ${b[0]}`);
  }
}

/** Screen pixels to read: 4 bytes each, `stride` bytes per row; `channels` = byte offsets of red, green, blue. */
export interface PixelSource {
  pixels: Uint8Array;
  stride: number;
  channels: readonly [number, number, number, ...number[]];
  /** Origin of the screen inside `pixels` (pixels). */
  x: number;
  y: number;
}

/**
 * The rectangle `(x, y, width, height)` of the screen `src` in pixel format `pf`, row after
 * row with no padding (Raw encoding's layout, §7.7.1). The caller keeps the rectangle
 * inside the screen.
 */
export function convertRect(src: PixelSource, x: number, y: number, width: number, height: number, pf: PixelFormat): Uint8Array {
  const bpp = pf.bitsPerPixel >> 3;
  const out = new Uint8Array(width * height * bpp);
  const [ri, gi, bi] = src.channels;
  const standard = bpp === 4 && !pf.bigEndian && pf.redMax === 255 && pf.greenMax === 255 && pf.blueMax === 255;
  if (standard && pf.redShift === 16 && pf.greenShift === 8 && pf.blueShift === 0 && ri === 2 && gi === 1 && bi === 0) {
    // the common case (XRGB8888 on both sides): rows are copied as they are
    for (let row = 0; row < height; row++) {
      const from = (src.y + y + row) * src.stride + (src.x + x) * 4;
      out.set(src.pixels.subarray(from, from + width * 4), row * width * 4);
    }
    return out;
  }
  if (standard && pf.redShift % 8 === 0 && pf.greenShift % 8 === 0 && pf.blueShift % 8 === 0) {
    const ro = pf.redShift >> 3, go = pf.greenShift >> 3, bo = pf.blueShift >> 3;
    for (let row = 0; row < height; row++) {
      let s = (src.y + y + row) * src.stride + (src.x + x) * 4;
      let d = row * width * 4;
      for (let col = 0; col < width; col++, s += 4, d += 4) {
        out[d + ro] = src.pixels[s + ri]; out[d + go] = src.pixels[s + gi]; out[d + bo] = src.pixels[s + bi];
      }
    }
    return out;
  }
  const scale = (max: number, shift: number): Uint32Array => Uint32Array.from({ length: 256 }, (_, c) => (Math.round((c * max) / 255) << shift) >>> 0);
  const red = scale(pf.redMax, pf.redShift), green = scale(pf.greenMax, pf.greenShift), blue = scale(pf.blueMax, pf.blueShift);
  const ov = new DataView(out.buffer);
  for (let row = 0; row < height; row++) {
    let s = (src.y + y + row) * src.stride + (src.x + x) * 4;
    let d = row * width * bpp;
    for (let col = 0; col < width; col++, s += 4, d += bpp) {
      const p = (red[src.pixels[s + ri]] | green[src.pixels[s + gi]] | blue[src.pixels[s + bi]]) >>> 0;
      if (bpp === 4) ov.setUint32(d, p, !pf.bigEndian);
      else if (bpp === 2) ov.setUint16(d, p, !pf.bigEndian);
      else out[d] = p;
    }
  }
  return out;
}
