/**
 * User-mode networking: one `passt` process (Debian package `passt`) per VM network card,
 * started with the VM and ended with it. passt gets one end of a socket pair (with large
 * buffers: devices/node/socketpair.ts) as its `--fd`; the other end is the card's
 * {@link StreamNetBackend} (4-byte big-endian length, then an Ethernet frame). passt
 * answers DHCP, NDP and DNS itself, NATs the guest's connections through the host's own
 * sockets (no privilege needed), maps the gateway address to the host's loopback, and
 * binds the published host ports (`-t`/`-u`).
 *
 * passt exits when the socket closes (`--one-off`), so a VM process that dies, even by
 * `kill -9`, leaves no passt behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { StreamNetBackend, StreamReader } from '../devices/node/stream-net.js';
import { unixStreamPair } from '../devices/node/socketpair.js';
import { NetworkConfigError, checkPortsFree, formatPublish, type PublishedPort } from './network.js';

/** The passt binary: `TSVISOR_PASST`, else `passt` on the PATH. */
export function passtBinary(): string {
  return process.env.TSVISOR_PASST || 'passt';
}

/** How long passt may take to bind the published ports, ms. */
const START_TIMEOUT_MS = 10_000;

/** A running passt and the network backend connected to it. */
export interface PasstLink {
  backend: StreamNetBackend;
  process: ChildProcess;
  /** End passt (closing the socket makes it exit; SIGTERM if it lingers). */
  stop(): void;
}

/** Options of {@link startPasst}. */
export interface PasstOptions {
  publish: readonly PublishedPort[];
  /** passt's own messages (errors, warnings), one line each. */
  onLog?: (line: string) => void;
  /** The link died after it was up (passt exited or the socket broke). */
  onError?: (message: string) => void;
}

/**
 * Starts passt for one network card and waits until it is ready (its ports bound).
 * @throws NetworkConfigError when a published port is in use, passt is not installed, or
 *   passt refuses to start (its own message, one line).
 */
export async function startPasst(opts: PasstOptions): Promise<PasstLink> {
  await checkPortsFree(opts.publish);
  const args = ['--foreground', '--quiet', '--one-off', '--fd', '3'];
  for (const p of opts.publish) {
    const spec = `${p.hostIp !== undefined ? `${p.hostIp}/` : ''}${p.hostPort}:${p.guestPort}`;
    args.push(p.protocol === 'udp' ? '--udp-ports' : '--tcp-ports', spec);
  }
  // a socket pair with large buffers (devices/node/socketpair.ts); Node's own if koffi cannot be loaded
  let pair: [number, number] | null = null;
  try {
    pair = unixStreamPair();
  } catch (e) {
    opts.onLog?.(`network link with the kernel's default socket buffers: ${(e as Error).message}`);
  }
  let child: ChildProcess;
  try {
    child = spawn(passtBinary(), args, { stdio: ['ignore', 'ignore', 'pipe', pair ? pair[1] : 'pipe'] });
  } finally {
    if (pair) closeSync(pair[1]); // the child has its own copy
  }
  // our end reads into one reused buffer (StreamReader); Node's pipe (the fallback) gives 'data' events
  const reader = pair ? new StreamReader() : undefined;
  const link: Duplex = pair ? new Socket({ fd: pair[0], readable: true, writable: true, onread: reader!.onread }) : child.stdio[3] as Duplex;
  const lines: string[] = [];
  let partial = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    const all = (partial + d).split('\n');
    partial = all.pop() ?? '';
    for (const l of all) {
      // passt also tries syslog, which a container may not have
      if (!l.trim() || /^Failed to send \d+ bytes to syslog/.test(l)) continue;
      lines.push(l.trim());
      opts.onLog?.(l.trim());
    }
  });
  const ready = new Promise<void>((resolve, reject) => {
    // ready when every published port is bound (they were free a moment ago, so passt
    // bound them); with none, at once: frames wait in the socket until passt reads them
    const timer = setTimeout(() => fail(`passt did not bind the published ports within ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS);
    const check = () => { if (opts.publish.every(portBound)) done(); };
    const poll = setInterval(check, 20);
    const done = () => { clearTimeout(timer); clearInterval(poll); child.off('exit', onExit); resolve(); };
    const fail = (m: string) => { clearTimeout(timer); clearInterval(poll); child.kill('SIGKILL'); reject(new NetworkConfigError(m)); };
    const onExit = () => setTimeout(() => fail(passtFailure(lines, opts.publish)), 20); // let stderr drain
    child.once('exit', onExit);
    child.once('error', (e: NodeJS.ErrnoException) => fail(e.code === 'ENOENT'
      ? `user-mode networking needs passt, which is not installed: sudo apt-get install passt (or npm run deps), or run with --network none`
      : `cannot run passt: ${e.message}`));
    if (opts.publish.length === 0) setImmediate(() => { if (child.pid !== undefined && child.exitCode === null) done(); });
  });
  try {
    await ready;
  } catch (e) {
    link.destroy();
    throw e;
  }
  let stopped = false;
  const backend = new StreamNetBackend(link, {
    reader,
    onError: (m) => { if (!stopped) opts.onError?.(m); },
  });
  child.once('exit', (code, signal) => {
    if (!stopped) opts.onError?.(`passt exited (${signal ?? `status ${code}`})${lines.length ? `: ${lines[lines.length - 1]}` : ''}`);
  });
  return {
    backend,
    process: child,
    stop() {
      if (stopped) return;
      stopped = true;
      backend.close();
      const t = setTimeout(() => child.kill('SIGTERM'), 1000);
      t.unref();
      child.once('exit', () => clearTimeout(t));
    },
  };
}

/** A one-line reason from passt's messages when it exited at start. */
function passtFailure(lines: string[], publish: readonly PublishedPort[]): string {
  const bind = lines.find((l) => /Failed to bind/.test(l));
  if (bind) {
    const p = publish.find((x) => bind.includes(`${x.hostPort}:${x.guestPort}`));
    return p ? `host port ${p.hostPort}/${p.protocol} (--publish ${formatPublish(p)}) cannot be bound: it is in use or not allowed` : `passt: ${bind}`;
  }
  return `passt exited at start${lines.length ? `: ${lines[lines.length - 1]}` : ''}`;
}

/**
 * Whether some socket on this host is bound to `p`'s port with its protocol (a TCP socket
 * listening, state 0A; any UDP socket), from /proc/net/{tcp,tcp6,udp,udp6}.
 */
function portBound(p: PublishedPort): boolean {
  const hex = p.hostPort.toString(16).toUpperCase().padStart(4, '0');
  for (const f of p.protocol === 'tcp' ? ['tcp', 'tcp6'] : ['udp', 'udp6']) {
    let text: string;
    try { text = readFileSync(`/proc/net/${f}`, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      if (cols[1].endsWith(`:${hex}`) && (p.protocol === 'udp' || cols[3] === '0A')) return true;
    }
  }
  return false;
}
