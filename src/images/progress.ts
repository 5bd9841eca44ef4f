/**
 * Progress reporting for long image operations (apt update, downloads, extraction).
 */

/** One progress event. Byte counts are in bytes. */
export type ProgressEvent =
  /** A step starts (e.g. "updating package lists"). */
  | { kind: 'step'; message: string }
  /** A download advanced: `done` of `total` bytes of `label` (total 0 when unknown). */
  | { kind: 'bytes'; label: string; done: number; total: number; items?: false }
  /** A step over countable things advanced: `done` of `total` items (e.g. packages unpacked). */
  | { kind: 'bytes'; label: string; done: number; total: number; items: true }
  /** A step finished. */
  | { kind: 'done'; message: string }
  /** Something the user should know (e.g. package signatures could not be verified). */
  | { kind: 'warning'; message: string };

/** Receives {@link ProgressEvent}s. */
export type ProgressListener = (event: ProgressEvent) => void;

/** Formats a byte count for humans: `941.5 kB`, `112.0 MB` (SI units). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/**
 * A listener that writes to `stream` (default stderr): on a terminal, a single progress
 * line rewritten in place; otherwise one line when a download starts and one when it ends.
 * `quiet` drops everything but warnings.
 */
export function stderrProgress(opts: { quiet?: boolean; stream?: NodeJS.WriteStream } = {}): ProgressListener {
  const stream = opts.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  let lineOpen = false;
  let current: { label: string; start: number; last: number; finished: boolean } | undefined;
  const endLine = (): void => {
    if (lineOpen) {
      stream.write('\n');
      lineOpen = false;
    }
  };
  return (ev) => {
    if (ev.kind === 'warning') {
      endLine();
      stream.write(`tsvisor: warning: ${ev.message}\n`);
      return;
    }
    if (opts.quiet) return;
    if (ev.kind === 'step' || ev.kind === 'done') {
      endLine();
      stream.write(`tsvisor: ${ev.message}\n`);
      return;
    }
    const now = Date.now();
    if (current?.label === ev.label && current.finished) return;
    if (!current || current.label !== ev.label) {
      endLine();
      current = { label: ev.label, start: now, last: 0, finished: false };
      if (!tty && ev.items) stream.write(`tsvisor: ${ev.label} (${ev.total})\n`);
      else if (!tty) stream.write(`tsvisor: downloading ${ev.label}${ev.total ? ` (${formatBytes(ev.total)})` : ''}\n`);
    }
    const finished = ev.total > 0 && ev.done >= ev.total;
    if (finished) current.finished = true;
    const secs = Math.max((now - current.start) / 1000, 0.001);
    const fmt = ev.items ? (n: number) => String(n) : formatBytes;
    const rate = ev.items ? `${(ev.done / secs).toFixed(1)}/s` : `${formatBytes(Math.round(ev.done / secs))}/s`;
    if (tty) {
      if (!finished && now - current.last < 100) return;
      current.last = now;
      const pct = ev.total ? `${Math.floor((100 * ev.done) / ev.total).toString().padStart(3)}% ` : '';
      const width = 24;
      const filled = ev.total ? Math.round((width * Math.min(ev.done, ev.total)) / ev.total) : 0;
      const bar = ev.total ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
      const of = ev.total ? ` / ${fmt(ev.total)}` : '';
      stream.write(`\r\x1b[K${ev.label} ${bar}${pct}${fmt(ev.done)}${of}  ${rate}`);
      lineOpen = true;
      if (finished) endLine();
    } else if (finished) {
      if (ev.items) stream.write(`tsvisor: ${ev.label}: ${ev.done} in ${secs.toFixed(1)} s\n`);
      else stream.write(`tsvisor: downloaded ${ev.label} (${formatBytes(ev.done)} in ${secs.toFixed(1)} s, ${rate})\n`);
    }
  };
}
