/**
 * The host daemon process: one {@link Host} behind the REST API, on the owner-only Unix
 * socket (`$XDG_RUNTIME_DIR/tsvisor/tsvisor.sock`, else `$TSVISOR_HOME/run/tsvisor.sock`)
 * and optionally on TCP with a bearer token. Only one daemon runs per socket: a lock
 * file guards the check-then-listen step. SIGTERM/SIGINT (or `POST /v1/daemon/shutdown`)
 * stop the daemon; the VMs keep running and the next daemon re-adopts them.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { writeFileAtomic } from '../vmm/atomic.js';
import { Host, type HostOptions } from '../host/host.js';
import { hostPaths, type HostPaths } from '../host/paths.js';
import { withFileLock } from '../images/lock.js';
import { createApiServer, type ApiServer } from './server.js';
import { parseListen, pingSocket } from './client.js';

/** Options of {@link runDaemon}. */
export interface DaemonOptions {
  paths?: HostPaths;
  /** `HOST:PORT` for the TCP listener (bearer token required there). */
  listen?: string;
  overcommit?: number;
  /** Passed to the host (tests: fake cgroup root, fake VM process, ...). */
  host?: Partial<HostOptions>;
  /** Log sink (default: stdout with a timestamp). */
  log?: (line: string) => void;
}

/** A running daemon. */
export interface Daemon {
  host: Host;
  paths: HostPaths;
  /** The TCP address actually bound (port 0 picks one), if listening on TCP. */
  tcp?: { host: string; port: number };
  /** Resolves when the daemon has shut down. */
  closed: Promise<void>;
  /** Shut down (the VMs keep running). */
  close(): Promise<void>;
}

/** Where `tsvisor web` opens the daemon's TCP listener unless told (Proxmox's port). */
export const DEFAULT_WEB_HOST = '127.0.0.1';
export const DEFAULT_WEB_PORT = 8006;


/** The bearer token of the TCP listener: read from `$TSVISOR_HOME/token`, created (0600) if missing. */
export function ensureToken(paths: HostPaths): string {
  try {
    const t = readFileSync(paths.token, 'utf8').trim();
    if (t.length >= 16) return t;
  } catch { /* create it */ }
  mkdirSync(paths.home, { recursive: true, mode: 0o700 });
  const t = randomBytes(32).toString('hex');
  writeFileAtomic(paths.token, `${t}\n`, 0o600);
  return t;
}

function listen(server: Server, target: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = () => { server.off('error', reject); resolve(); };
    if ('path' in target) server.listen(target.path, done);
    else server.listen(target.port, target.host, done);
  });
}

function stamp(line: string): string {
  return `${new Date().toISOString()} ${line}`;
}

/** Start the daemon: host, Unix socket, optional TCP listener. Throws if one already runs. */
export async function runDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const paths = opts.paths ?? hostPaths();
  const log = opts.log ?? ((l: string) => process.stdout.write(stamp(l) + '\n'));
  mkdirSync(paths.home, { recursive: true, mode: 0o700 });
  mkdirSync(paths.runDir, { recursive: true, mode: 0o700 });
  chmodSync(paths.runDir, 0o700);

  let host: Host | undefined;
  const servers: ApiServer[] = [];
  let tcp: { host: string; port: number } | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => { resolveClosed = r; });
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      log('shutting down (VMs keep running)');
      for (const s of servers) { s.close(); s.closeAllConnections?.(); s.destroyUpgraded(); }
      await host?.close();
      rmSync(paths.socket, { force: true });
      try {
        if (readFileSync(paths.daemonPid, 'utf8').trim() === String(process.pid)) rmSync(paths.daemonPid, { force: true });
      } catch { /* gone */ }
      resolveClosed();
    })();
    return closing;
  };

  await withFileLock(join(paths.runDir, 'daemon.lock'), async () => {
    if (await pingSocket(paths.socket)) {
      let pid = '?';
      try { pid = readFileSync(paths.daemonPid, 'utf8').trim(); } catch { /* unknown */ }
      throw new Error(`a tsvisor daemon is already running (pid ${pid}, socket ${paths.socket})`);
    }
    rmSync(paths.socket, { force: true });
    host = await Host.open({ paths, overcommit: opts.overcommit, log, ...opts.host });
    const unix = createApiServer(host, { onShutdown: () => void close(), onWeb: (spec) => openTcp(spec), log });
    const mask = process.umask(0o177);
    try {
      await listen(unix, { path: paths.socket });
    } finally {
      process.umask(mask);
    }
    chmodSync(paths.socket, 0o600);
    servers.push(unix);
    writeFileAtomic(paths.daemonPid, `${process.pid}\n`, 0o644);
  }, { timeoutMs: 30_000 });
  log(`listening on ${paths.socket} (pid ${process.pid}, home ${paths.home})`);
  const url = (t: { host: string; port: number }) => `http://${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}/`;
  /** Listen on TCP (`spec`; default 127.0.0.1:8006, or any free loopback port when that one is taken), once. */
  let opening: Promise<{ url: string }> | undefined;
  const openTcp = (spec?: string): Promise<{ url: string }> => {
    if (tcp) return Promise.resolve({ url: url(tcp) });
    opening ??= (async () => {
      const where = parseListen(spec ?? `${DEFAULT_WEB_HOST}:${DEFAULT_WEB_PORT}`);
      const token = ensureToken(paths);
      const make = () => createApiServer(host!, { token, onShutdown: () => void close(), onWeb: (s) => openTcp(s), log });
      let srv = make();
      try {
        await listen(srv, where);
      } catch (e) {
        if (spec !== undefined || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
        srv = make();
        await listen(srv, { host: where.host, port: 0 });
      }
      const addr = srv.address();
      tcp = addr && typeof addr === 'object' ? { host: addr.address, port: addr.port } : where;
      servers.push(srv);
      log(`listening on ${url(tcp)} (bearer token in ${paths.token}; web console at /)`);
      return { url: url(tcp) };
    })().finally(() => { opening = undefined; });
    return opening;
  };
  if (opts.listen) {
    try {
      await openTcp(opts.listen);
    } catch (e) {
      await close();
      throw e;
    }
  }
  return { host: host!, paths, get tcp() { return tcp; }, closed, close };
}
