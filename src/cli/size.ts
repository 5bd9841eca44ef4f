import { UsageError } from './errors.js';

/**
 * Parse a memory size such as `512M`, `1G`, `65536K` or `1073741824` (bytes).
 * Suffixes K, M, G, T are binary (KiB, MiB, ...), case-insensitive, optional `B`/`iB`.
 * Throws UsageError naming `what` for anything else.
 */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`invalid ${what} "${text}": expected a number with an optional K, M or G suffix (e.g. 512M)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const bytes = Math.round(parseFloat(m[1]) * mult);
  if (!Number.isFinite(bytes) || bytes <= 0) throw new UsageError(`invalid ${what} "${text}": must be positive`);
  return bytes;
}

/**
 * `--vram SIZE`: graphics memory in bytes, where `0` (no display) is allowed.
 * @throws UsageError for anything else that is not a size.
 */
export function parseVram(text: string): number {
  return text.trim() === '0' ? 0 : parseSize(text, '--vram');
}

/** Human-readable size in binary units (e.g. "512 MiB"). */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}
