/**
 * A VM card's link to a virtual network: a Unix-socket stream to the host daemon's switch
 * for that network (`<TSVISOR_SWITCH_DIR>/<network>.sock`, host/network-manager.ts), with
 * passt's framing. The first message says who is connecting: a length-prefixed JSON
 * `{"vm": NAME, "mac": MAC}` that the daemon checks against the VM's definition.
 *
 * VMs outlive their daemon: when the daemon goes away the link is down (frames are
 * dropped, as on an unplugged cable) and it reconnects every second until the daemon's
 * switch is back.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import type { NetBackend, NetPort } from '../devices/bus.js';
import { StreamNetBackend, StreamReader } from '../devices/node/stream-net.js';

/** Delay between reconnection attempts, ms. */
const RETRY_MS = 1000;

/** Options of {@link SwitchLink}. */
export interface SwitchLinkOptions {
  /** Folder of the switch sockets (the daemon passes it as TSVISOR_SWITCH_DIR). */
  dir: string;
  network: string;
  vm: string;
  mac: string;
  log: (line: string) => void;
}

/** A {@link NetBackend} on a virtual network, reconnecting as needed. */
export class SwitchLink implements NetBackend {
  private port: NetPort | null = null;
  private inner: StreamNetBackend | null = null;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private wasUp = false;
  private lastError = '';

  constructor(private readonly opts: SwitchLinkOptions) {
    this.connect();
  }

  /** The switch socket. */
  get path(): string {
    return join(this.opts.dir, `${this.opts.network}.sock`);
  }

  attach(port: NetPort): void {
    this.port = port;
    this.inner?.attach(port);
  }

  send(frame: Uint8Array): boolean {
    return this.inner ? this.inner.send(frame) : true; // link down: dropped
  }

  resume(): void {
    this.inner?.resume();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.inner?.close();
    this.inner = null;
  }

  private connect(): void {
    if (this.closed) return;
    const reader = new StreamReader(); // reads into one reused buffer
    const sock = connect({ path: this.path, onread: reader.onread });
    sock.once('connect', () => {
      const hello = Buffer.from(JSON.stringify({ vm: this.opts.vm, mac: this.opts.mac }));
      const head = Buffer.alloc(4);
      head.writeUInt32BE(hello.length);
      sock.write(Buffer.concat([head, hello]));
      const inner = new StreamNetBackend(sock, { reader, onError: (m) => this.down(inner, m) });
      this.inner = inner;
      if (this.port) inner.attach(this.port);
      this.wasUp = true;
      this.lastError = '';
      this.opts.log(`network ${this.opts.network}: connected`);
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      if (this.inner) return; // handled by the backend
      const m = e.code ?? e.message;
      if (m !== this.lastError) this.opts.log(`network ${this.opts.network}: cannot reach the switch at ${this.path} (${m}); retrying`);
      this.lastError = m;
      sock.destroy();
      this.retry();
    });
  }

  private down(inner: StreamNetBackend, why: string): void {
    if (this.inner !== inner) return;
    this.inner = null;
    if (this.wasUp) this.opts.log(`network ${this.opts.network}: link down (${why}); reconnecting`);
    this.wasUp = false;
    this.retry();
  }

  private retry(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => { this.timer = null; this.connect(); }, RETRY_MS);
    this.timer.unref();
  }
}
