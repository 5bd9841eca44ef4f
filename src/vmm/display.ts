/**
 * A VM's display (virtio-gpu, src/devices/virtio/gpu.ts): its graphics memory
 * (`--vram SIZE`, default 16 MiB; 0: no display) and preferred mode (`--resolution WxH`,
 * default 1280x800), and the screen as a PNG (`vm screenshot`, through `pngjs`).
 */
import { PNG } from 'pngjs';

/** Default graphics memory (bytes). */
export const DEFAULT_VRAM_BYTES = 16 * 1024 * 1024;
/** Largest graphics memory (bytes). */
export const MAX_VRAM_BYTES = 1024 * 1024 * 1024;
/** Default preferred mode. */
export const DEFAULT_RESOLUTION = { width: 1280, height: 800 } as const;

/** A display setting that cannot work (one line). */
export class DisplayConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DisplayConfigError';
  }
}

/**
 * Parses `WxH` (16..16384 each).
 * @throws DisplayConfigError
 */
export function parseResolution(text: string): { width: number; height: number } {
  const m = /^(\d{2,5})x(\d{2,5})$/.exec(text);
  const width = m ? Number(m[1]) : 0;
  const height = m ? Number(m[2]) : 0;
  if (!m || width < 16 || height < 16 || width > 16384 || height > 16384) throw new DisplayConfigError(`resolution "${text}": expected WIDTHxHEIGHT, 16 to 16384 each (e.g. 1280x800)`);
  return { width, height };
}

/**
 * The display of a configuration: null for none (`vramBytes` 0), else its graphics memory
 * and mode (defaults filled in).
 * @throws DisplayConfigError for graphics memory out of range or too small for the mode.
 */
export function displayOf(vramBytes: number | undefined, resolution: string | undefined): { vramBytes: number; width: number; height: number } | null {
  const vram = vramBytes ?? DEFAULT_VRAM_BYTES;
  if (vram === 0) return null;
  if (!Number.isInteger(vram) || vram < 1024 * 1024 || vram > MAX_VRAM_BYTES) throw new DisplayConfigError(`graphics memory ${vram} bytes: expected 0 (no display) or 1 MiB to 1 GiB`);
  const { width, height } = resolution === undefined ? DEFAULT_RESOLUTION : parseResolution(resolution);
  if (width * height * 4 > vram) throw new DisplayConfigError(`resolution ${width}x${height} needs ${Math.ceil((width * height * 4) / (1024 * 1024))} MiB of graphics memory, more than the ${Math.floor(vram / (1024 * 1024))} MiB given (--vram)`);
  return { vramBytes: vram, width, height };
}

/** The screen (RGBA, 4 bytes per pixel) as a PNG file's bytes. */
export function screenPng(screen: { width: number; height: number; rgba: Uint8Array }): Buffer {
  const png = new PNG({ width: screen.width, height: screen.height });
  png.data = Buffer.from(screen.rgba.buffer, screen.rgba.byteOffset, screen.rgba.byteLength);
  return PNG.sync.write(png);
}
