/**
 * The daemon's virtual networks: their definitions (networks.ts), one switch each
 * (switch.ts), and the Unix socket each switch listens on, `<runDir>/net/<name>.sock`
 * (folder 0700, sockets 0600), which VM processes find through TSVISOR_SWITCH_DIR.
 *
 * A VM process connects once per card and first sends a length-prefixed JSON hello
 * `{"vm", "mac"}`; the connection is accepted only if that VM's definition has a card
 * with that MAC on this network (`allowed`), so one VM cannot take another's port.
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { HostError } from './errors.js';
import { NetworkStore, formatIpv4, parseSubnet, type NetworkDefinition } from './networks.js';
import { serviceAddress } from './net-services.js';
import { VirtualSwitch, type SwitchPortStats } from './switch.js';

/** Longest hello accepted, bytes. */
const MAX_HELLO = 1024;

/** A network as `network list` shows it. */
export interface NetworkInfo {
  name: string;
  subnet: string;
  createdAt: number;
  /** The network's own address (gateway of its services: DHCP, DNS). */
  address: string;
  /** Connected cards and their counters. */
  ports: SwitchPortStats[];
}

/** Options of {@link NetworkManager}. */
export interface NetworkManagerOptions {
  /** `$TSVISOR_HOME/networks`. */
  dir: string;
  /** Folder of the switch sockets. */
  socketDir: string;
  /** Whether VM `vm` has a card with `mac` on `network`. */
  allowed: (vm: string, mac: string, network: string) => boolean;
  log: (line: string) => void;
}

/** Owns every network's switch and socket. */
export class NetworkManager {
  readonly store: NetworkStore;
  private readonly running = new Map<string, { sw: VirtualSwitch; server: Server; sockets: Set<Socket> }>();

  constructor(private readonly opts: NetworkManagerOptions) {
    this.store = new NetworkStore(opts.dir);
  }

  /** Starts the switch of every defined network. */
  async open(): Promise<void> {
    mkdirSync(this.opts.socketDir, { recursive: true, mode: 0o700 });
    chmodSync(this.opts.socketDir, 0o700);
    for (const d of this.store.list()) await this.startSwitch(d);
  }

  /** All networks with their connected cards. */
  list(): NetworkInfo[] {
    return this.store.list().map((d) => this.info(d));
  }

  /** One network. @throws HostError('not_found'). */
  get(name: string): NetworkInfo {
    const d = this.store.get(name);
    if (!d) throw new HostError('not_found', `no network ${name}`);
    return this.info(d);
  }

  /** Whether network `name` exists. */
  has(name: string): boolean {
    return this.store.get(name) !== undefined;
  }

  /** Defines and starts a network. @throws HostError as {@link NetworkStore.create}. */
  async create(name: string, subnet?: string): Promise<NetworkInfo> {
    const d = this.store.create(name, subnet);
    try {
      await this.startSwitch(d);
    } catch (e) {
      this.store.delete(name);
      throw new HostError('internal', `cannot start the switch of ${name}: ${(e as Error).message}`);
    }
    this.opts.log(`created network ${name} (${d.subnet})`);
    return this.info(d);
  }

  /** Stops and removes a network (the caller checked that no VM uses it). @throws HostError('not_found'). */
  delete(name: string): void {
    this.store.delete(name);
    this.stopSwitch(name);
    this.opts.log(`deleted network ${name}`);
  }

  /** Stops every switch. */
  close(): void {
    for (const name of [...this.running.keys()]) this.stopSwitch(name);
  }

  private info(d: NetworkDefinition): NetworkInfo {
    const r = this.running.get(d.name);
    const address = formatIpv4(serviceAddress(parseSubnet(d.subnet)));
    return { name: d.name, subnet: d.subnet, createdAt: d.createdAt, address, ports: r ? r.sw.stats() : [] };
  }

  private socketPath(name: string): string {
    return join(this.opts.socketDir, `${name}.sock`);
  }

  private async startSwitch(d: NetworkDefinition): Promise<void> {
    const sw = new VirtualSwitch(d, { saveLeases: (l) => this.store.saveLeases(d.name, l), log: this.opts.log });
    const sockets = new Set<Socket>();
    const server = createServer((s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); this.handshake(d.name, sw, s); });
    const path = this.socketPath(d.name);
    rmSync(path, { force: true });
    const mask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(path, () => { server.off('error', reject); resolve(); }); });
    } finally {
      process.umask(mask);
    }
    this.running.set(d.name, { sw, server, sockets });
  }

  private stopSwitch(name: string): void {
    const r = this.running.get(name);
    if (!r) return;
    this.running.delete(name);
    r.sw.close();
    r.server.close();
    for (const s of r.sockets) s.destroy();
    rmSync(this.socketPath(name), { force: true });
  }

  /** Reads the hello, checks it, then hands the socket to the switch. */
  private handshake(network: string, sw: VirtualSwitch, s: Socket): void {
    let buf = Buffer.alloc(0);
    const refuse = (why: string) => { this.opts.log(`network ${network}: refused a connection: ${why}`); s.destroy(); };
    const timer = setTimeout(() => refuse('no hello within 10 s'), 10_000);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 4) return;
      const len = buf.readUInt32BE(0);
      if (len > MAX_HELLO) { clearTimeout(timer); s.off('data', onData); refuse(`hello of ${len} bytes`); return; }
      if (buf.length < 4 + len) return;
      clearTimeout(timer);
      s.off('data', onData);
      s.pause();
      let hello: { vm?: unknown; mac?: unknown };
      try { hello = JSON.parse(buf.subarray(4, 4 + len).toString('utf8')) as typeof hello; } catch { refuse('hello is not JSON'); return; }
      if (typeof hello.vm !== 'string' || typeof hello.mac !== 'string' || !this.opts.allowed(hello.vm, hello.mac, network)) {
        refuse(`${JSON.stringify(hello.vm)} has no card ${JSON.stringify(hello.mac)} on this network`);
        return;
      }
      const rest = buf.subarray(4 + len);
      if (rest.length) s.unshift(rest);
      sw.attach(s, hello.vm, hello.mac);
      s.resume();
    };
    s.on('data', onData);
    s.on('error', () => undefined);
  }
}
