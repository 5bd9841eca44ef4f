/**
 * The daemon's ways into a running VM's process (src/host/host.ts delegates to it): the
 * keyboard (`send-key`), the screen (`screenshot`, the VNC server's address and a viewer
 * connection), `exec` and the serial console. Each checks the VM's state and turns the VM
 * process's refusal into a HostError.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { VmProcessStatus } from '../vmm/control-api.js';
import { HostError } from './errors.js';
import { ALIVE, type Entry } from './entry.js';
import type { VmChannel } from './vm-channel.js';
import { vmReason } from './vm-changes.js';
import { vncAddress } from './vm-process.js';

/** What the access needs from the daemon. */
export interface AccessHost {
  /** @throws HostError('not_found'). */
  entry(name: string): Entry;
  /** VM `name`'s control channel. */
  channel(name: string): VmChannel;
  /** A status the VM process answered. */
  noteStatus(name: string, e: Entry, st: VmProcessStatus): void;
}

/** See the file comment. */
export class VmAccess {
  constructor(private readonly host: AccessHost) {}

  /**
   * Press `keys` (Linux key codes) together on VM `name`'s keyboard, then release them, as
   * `virsh send-key`.
   * @throws HostError: not_found; conflict (not running, no display); unavailable.
   */
  async sendKeys(name: string, keys: number[]): Promise<void> {
    const e = this.host.entry(name);
    if (e.rt.state !== 'running') throw new HostError('conflict', `VM ${name} is not running (${e.rt.state})`);
    try {
      await this.host.channel(name).post('/send-key', { keys });
    } catch (err) {
      throw vmReason(err, `${name}: `);
    }
  }

  /**
   * What VM `name`'s display shows, as a PNG (base64) of `width` x `height` pixels.
   * @throws HostError: not_found; conflict (not running, no display, nothing shown); unavailable.
   */
  async screenshot(name: string): Promise<{ width: number; height: number; png: string }> {
    const e = this.host.entry(name);
    if (e.rt.state !== 'running' && e.rt.state !== 'paused') throw new HostError('conflict', `VM ${name} is not running (${e.rt.state})`);
    try {
      return await this.host.channel(name).get('/screenshot', 15_000) as { width: number; height: number; png: string };
    } catch (err) {
      throw vmReason(err, `${name}: `);
    }
  }

  /**
   * VM `name`'s VNC server, asked of its process now: `host:port` on loopback and the
   * viewers connected.
   * @throws HostError: not_found; conflict (not running, no display); unavailable.
   */
  async vnc(name: string): Promise<{ vnc: string; viewers: number }> {
    const e = this.host.entry(name);
    if (e.rt.state !== 'running' && e.rt.state !== 'paused') throw new HostError('conflict', `VM ${name} is not running (${e.rt.state})`);
    let st: VmProcessStatus;
    try {
      st = await this.host.channel(name).status(5000);
    } catch (err) {
      throw vmReason(err, `${name}: `);
    }
    this.host.noteStatus(name, e, st);
    const d = e.guest?.display;
    if (!d) throw new HostError('conflict', `${name} has no display (--vram 0)`);
    if (!d.vncPort) throw new HostError('unavailable', `${name}: the VNC server is not listening yet`);
    return { vnc: vncAddress(d.vncPort), viewers: d.viewers };
  }

  /** `POST /exec` on the VM process: the raw streamed response (status and NDJSON body). */
  async openExec(name: string, body: { argv: string[]; stdin?: string }): Promise<IncomingMessage> {
    const e = this.host.entry(name);
    if (e.rt.state !== 'running') throw new HostError('conflict', `VM ${name} is not running (${e.rt.state})`);
    try {
      return await this.host.channel(name).open('POST', '/exec', body, 30_000);
    } catch (err) {
      throw new HostError('unavailable', `VM ${name} does not answer: ${(err as Error).message}`);
    }
  }

  /** Open the VM's console (`GET /console` upgrade on the VM process). */
  openConsole(name: string): Promise<{ socket: Duplex; head: Buffer } | { response: IncomingMessage }> {
    return this.upgrade(name, (c) => c.upgradeConsole(5000));
  }

  /** Open a viewer connection to the VM's VNC server (`GET /vnc` upgrade on the VM process; RFB from the first byte). */
  openVnc(name: string): Promise<{ socket: Duplex; head: Buffer } | { response: IncomingMessage }> {
    return this.upgrade(name, (c) => c.upgradeVnc(5000));
  }

  private async upgrade(name: string, open: (c: VmChannel) => Promise<{ socket: Duplex; head: Buffer } | { response: IncomingMessage }>): Promise<{ socket: Duplex; head: Buffer } | { response: IncomingMessage }> {
    const e = this.host.entry(name);
    if (!ALIVE.includes(e.rt.state) || e.rt.state === 'stopping') throw new HostError('conflict', `VM ${name} is not running (${e.rt.state})`);
    try {
      return await open(this.host.channel(name));
    } catch (err) {
      throw new HostError('unavailable', `VM ${name} does not answer: ${(err as Error).message}`);
    }
  }
}
