/**
 * Host-side handling of a VM's console output.
 */

/** The byte sequence the default image's /init prints after the command: US "TSVISOR-EXIT <n>" US. */
const MARK = new TextEncoder().encode('\x1fTSVISOR-EXIT ');

/**
 * Streams guest console output through, removing the exit-status marker that
 * the default image's init prints and remembering the status.
 */
export class ExitMarkerFilter {
  /** The command's exit status once the marker was seen. */
  exitCode: number | null = null;
  private held: number[] = [];

  /** Feed output bytes; returns the bytes to show. */
  push(bytes: Uint8Array): Uint8Array {
    const out: number[] = [];
    for (const b of bytes) {
      if (this.exitCode !== null) break; // what follows the marker is the kernel powering off
      if (this.held.length === 0) {
        if (b === 0x1f) this.held.push(b); else out.push(b);
        continue;
      }
      this.held.push(b);
      const i = this.held.length - 1;
      if (i < MARK.length) {
        if (b !== MARK[i]) { out.push(...this.flushHeld()); }
        continue;
      }
      if (b >= 0x30 && b <= 0x39 && i < MARK.length + 4) continue;
      if (b === 0x1f && i > MARK.length) {
        this.exitCode = parseInt(String.fromCharCode(...this.held.slice(MARK.length, i)), 10);
        this.held = [];
        continue;
      }
      out.push(...this.flushHeld());
    }
    return Uint8Array.from(out);
  }

  private flushHeld(): number[] {
    const h = this.held;
    this.held = [];
    // the first byte was a lone 0x1f: pass it and re-scan the rest
    const rest = this.push(Uint8Array.from(h.slice(1)));
    return [h[0], ...rest];
  }
}
