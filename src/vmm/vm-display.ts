/**
 * A VM process's display, across guest reboots: the board's virtio-gpu with its keyboard
 * and tablet (one board per boot), what `vm screenshot` and `vm send-key` do with them, and
 * the VM's VNC server (vnc/server.ts).
 *
 * The VNC server listens on loopback at the first free port from 5900 (as libvirt's
 * `autoport`), else any free port; viewers also reach it through the control socket's
 * `/vnc` upgrade (the daemon's web console). It is told of every flush and mode change the
 * guest makes, and of each new board.
 */
import { ControlHttpError } from './control.js';
import { screenPng } from './display.js';
import { VncServer } from './vnc/server.js';
import { VNC_BASE_PORT } from './vnc/rfb.js';
import type { Board, DisplayConfig } from '../machine/board.js';
import type { Duplex } from 'node:stream';

/** Ports tried from VNC_BASE_PORT before any free port is taken. */
const VNC_PORTS_TRIED = 100;

/** The display of a VM process; see the file comment. */
export class VmDisplay {
  readonly vnc: VncServer;
  /** The VNC server's loopback port, once listening. */
  vncPort: number | null = null;

  /** Resources the guest asked for past the graphics memory since the process started. */
  refusedResources = 0;

  /**
   * `config`: graphics memory (bytes) and preferred mode (pixels); `board()`: the board of
   * the current boot, or null between boots; `log`: a line for the VM's log.
   */
  constructor(private readonly config: { vramBytes: number; width: number; height: number }, name: string, private readonly board: () => Board | null, private readonly log: (line: string) => void = () => {}) {
    this.vnc = new VncServer({
      screen: () => this.board()?.gpu?.scanoutView() ?? null,
      blankSize: () => this.board()?.gpu?.preferredMode ?? { width: config.width, height: config.height },
      key: (code, down) => this.board()?.keyboard?.key(code, down),
      pointer: (events) => this.board()?.tablet?.send(events),
    }, name);
  }

  /** The board configuration of the display, with the hooks that feed the VNC server. */
  boardConfig(): DisplayConfig {
    return {
      ...this.config,
      onFlush: (rect) => this.vnc.damage(rect),
      onScanout: () => this.vnc.resized(),
      onOutOfMemory: ({ width, height, bytes, usedBytes }) => {
        // the first few are logged: a guest retrying in a loop must not flood the log
        if (++this.refusedResources <= 3) {
          const mib = (n: number) => `${(n / (1024 * 1024)).toFixed(1)} MiB`;
          this.log(`display: refused a ${width}x${height} screen buffer (${mib(bytes)}): the graphics memory has ${mib(this.config.vramBytes - usedBytes)} free of ${mib(this.config.vramBytes)} (--vram)`);
        }
      },
    };
  }

  /** A board came or went (boot, reboot): viewers see the new screen (blank until the guest sets a mode). */
  boardChanged(): void {
    this.vnc.resized();
  }

  /**
   * Start the VNC server on `host` (default 127.0.0.1) at `port`, or (none given) at the
   * first free port from VNC_BASE_PORT, else any.
   * @throws the listen error (EADDRINUSE for a given port that is taken; none left).
   */
  async listen(host = '127.0.0.1', port?: number): Promise<number> {
    if (port !== undefined) {
      this.vncPort = await this.vnc.listen(host, port);
      return this.vncPort;
    }
    for (let port = VNC_BASE_PORT; port < VNC_BASE_PORT + VNC_PORTS_TRIED; port++) {
      try {
        this.vncPort = await this.vnc.listen(host, port);
        return this.vncPort;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      }
    }
    this.vncPort = await this.vnc.listen(host, 0);
    return this.vncPort;
  }

  /** A viewer through the control socket (`GET /vnc` upgrade). */
  attachViewer(stream: Duplex): void {
    this.vnc.attach(stream);
  }

  /** What `GET /status` says of the display: the mode shown (null: blank), the VNC port and viewers. */
  status(): { mode: { width: number; height: number } | null; vncPort: number | null; viewers: number } {
    const view = this.board()?.gpu?.scanoutView();
    return { mode: view ? { width: view.width, height: view.height } : null, vncPort: this.vncPort, viewers: this.vnc.viewerCount };
  }

  /**
   * The screen as a PNG (base64).
   * @throws ControlHttpError(409) while the guest shows nothing.
   */
  screenshot(): { width: number; height: number; png: string } {
    const screen = this.board()?.gpu?.screen();
    if (!screen) throw new ControlHttpError(409, 'no_display', 'the guest shows nothing on its display (it has not set a mode yet)');
    return { width: screen.width, height: screen.height, png: screenPng(screen).toString('base64') };
  }

  /**
   * Press Linux key codes `keys` in order, then release them in reverse.
   * @throws ControlHttpError(409) between boots.
   */
  sendKeys(keys: number[]): void {
    const kb = this.board()?.keyboard;
    if (!kb) throw new ControlHttpError(409, 'no_display', 'the guest is not running');
    for (const k of keys) kb.key(k, true);
    for (const k of [...keys].reverse()) kb.key(k, false);
  }

  /** Disconnect the viewers and stop listening. */
  async close(): Promise<void> {
    await this.vnc.close();
  }
}
