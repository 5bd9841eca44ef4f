/**
 * Client of a VM process's control channel (control-api.ts): HTTP/1.1 over the Unix
 * socket `<vmDir>/vm.sock`, with node:http. The host daemon's VmChannel is built on it.
 *
 * Every function rejects with {@link ControlError}: `code` is the server's error code,
 * or `not_running` when nothing listens on the socket (no socket file, connection
 * refused), or `protocol` for an answer that does not follow the contract.
 */
import { request as httpRequest, type IncomingMessage, type ClientRequest } from 'node:http';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ExecEvent, VmProcessStatus } from './control-api.js';

/** The control socket of the VM whose folder is `vmDir`. */
export function socketPath(vmDir: string): string {
  return join(vmDir, 'vm.sock');
}

/** A failed control request. */
export class ControlError extends Error {
  constructor(
    /** Error code: the server's (`bad_request`, `agent_unavailable`, ...), or `not_running`, `protocol`. */
    readonly code: string,
    message: string,
    /** HTTP status when the server answered. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

/** Options of the request functions. */
export interface RequestOptions {
  /** Give up after this many ms without an answer (default 15000; exec and console: none). */
  timeoutMs?: number;
}

function connectionError(vmDir: string, e: NodeJS.ErrnoException): ControlError {
  if (e instanceof ControlError) return e;
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
    return new ControlError('not_running', `no VM process serves ${socketPath(vmDir)} (${e.code})`);
  }
  return new ControlError(e.code ?? 'io', `control channel ${socketPath(vmDir)}: ${e.message}`);
}

function startRequest(vmDir: string, method: string, path: string, body: unknown, timeoutMs: number | undefined,
  headers: Record<string, string> = {}): ClientRequest {
  const text = body === undefined ? '' : JSON.stringify(body);
  const req = httpRequest({
    socketPath: socketPath(vmDir), method, path, agent: false,
    headers: { host: 'vm', ...(text ? { 'content-type': 'application/json' } : {}), 'content-length': Buffer.byteLength(text), ...headers },
  });
  if (timeoutMs) req.setTimeout(timeoutMs, () => req.destroy(new ControlError('timeout', `${method} ${path}: no answer within ${timeoutMs} ms`)));
  req.end(text);
  return req;
}

/** Read a whole response body. */
function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    res.on('data', (d: Buffer) => parts.push(d));
    res.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    res.on('error', reject);
  });
}

function errorFromBody(status: number, text: string): ControlError {
  try {
    const v = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (v.error?.code) return new ControlError(v.error.code, v.error.message ?? v.error.code, status);
  } catch { /* not JSON */ }
  return new ControlError('protocol', `HTTP ${status}: ${text.slice(0, 200)}`, status);
}

/**
 * Send a request and resolve with the raw response once its head arrives (the body is
 * not read: the caller streams it). `opts.timeoutMs` (default 15000) limits the wait for
 * the head only. Rejects with ControlError (`not_running`, `timeout`, ...) when there is
 * no answer.
 */
export function request(vmDir: string, method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = startRequest(vmDir, method, path, body, opts.timeoutMs ?? 15_000);
    req.on('error', (e) => reject(connectionError(vmDir, e)));
    req.on('response', (res) => {
      req.setTimeout(0); // the answer came: a long, quiet body (exec) is not a timeout
      resolve(res);
    });
  });
}

/**
 * One JSON request/response exchange; resolves with the parsed body of a 2xx answer.
 * Rejects with ControlError: with `status` set when the VM process answered otherwise.
 */
export async function call(vmDir: string, method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<unknown> {
  const res = await request(vmDir, method, path, body, opts);
  const timeoutMs = opts.timeoutMs ?? 15_000;
  res.setTimeout(timeoutMs, () => res.destroy(new ControlError('timeout', `${method} ${path}: the answer stalled for ${timeoutMs} ms`)));
  let text: string;
  try {
    text = await readBody(res);
  } catch (e) {
    throw connectionError(vmDir, e as NodeJS.ErrnoException);
  }
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) throw errorFromBody(status, text);
  try {
    return text.trim() ? JSON.parse(text) : {};
  } catch {
    throw new ControlError('protocol', `${method} ${path}: answer is not JSON`, status);
  }
}

/** `GET /status`: the VM process's state, sizes and counters. */
export async function status(vmDir: string, opts?: RequestOptions): Promise<VmProcessStatus> {
  return await call(vmDir, 'GET', '/status', undefined, opts) as VmProcessStatus;
}

/**
 * `POST /stop`: ask the guest to power off (through its agent), forcing the stop after
 * `timeoutMs` (server default 30 s). Resolves when the request was accepted, not when the
 * process has exited (watch `vm.pid`/the process for that).
 */
export async function stop(vmDir: string, timeoutMs?: number, opts?: RequestOptions): Promise<void> {
  await call(vmDir, 'POST', '/stop', timeoutMs === undefined ? {} : { timeoutMs }, opts);
}

/** `POST /kill`: the VM process exits at once (disks are flushed, the guest is not asked). */
export async function kill(vmDir: string, opts?: RequestOptions): Promise<void> {
  try {
    await call(vmDir, 'POST', '/kill', {}, opts);
  } catch (e) {
    // the process may be gone before the answer is read: that is success
    if (e instanceof ControlError && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) return;
    throw e;
  }
}

/** `POST /net-rate`: every network card's bandwidth cap, Mbit/s each way (0: none). */
export async function setNetRate(vmDir: string, mbit: number, opts?: RequestOptions): Promise<VmProcessStatus> {
  return await call(vmDir, 'POST', '/net-rate', { mbit }, opts) as VmProcessStatus;
}

/** `POST /memory`: the guest's memory becomes `bytes` (the balloon moves); see control-api.ts. */
export async function setMemory(vmDir: string, bytes: number, opts?: RequestOptions): Promise<VmProcessStatus> {
  return await call(vmDir, 'POST', '/memory', { bytes }, opts) as VmProcessStatus;
}

/** `POST /cpus`: the guest keeps `count` vCPUs online; see control-api.ts. */
export async function setCpus(vmDir: string, count: number, opts?: RequestOptions): Promise<VmProcessStatus> {
  return await call(vmDir, 'POST', '/cpus', { count }, opts) as VmProcessStatus;
}

/** `POST /disk-resize`: disk `index` grows to `bytes` and the guest is told; see control-api.ts. */
export async function resizeDisk(vmDir: string, index: number, bytes: number, opts?: RequestOptions): Promise<VmProcessStatus> {
  return await call(vmDir, 'POST', '/disk-resize', { index, bytes }, opts) as VmProcessStatus;
}

/** `POST /disk-attach`: the image at `path` is attached to the running guest; `device` is the guest's name of it. */
export async function attachDisk(vmDir: string, path: string, readonly: boolean, opts?: RequestOptions): Promise<{ device: string; status: VmProcessStatus }> {
  return await call(vmDir, 'POST', '/disk-attach', { path, readonly }, opts) as { device: string; status: VmProcessStatus };
}

/** `POST /disk-detach`: the disk of image `path` is detached from the running guest once it let go (or at once with `force`). */
export async function detachDisk(vmDir: string, path: string, force: boolean, opts?: RequestOptions): Promise<VmProcessStatus> {
  return await call(vmDir, 'POST', '/disk-detach', { path, force }, opts) as VmProcessStatus;
}

/** `GET /screenshot`: the display's screen as a PNG (base64). */
export async function screenshot(vmDir: string, opts?: RequestOptions): Promise<{ width: number; height: number; png: string }> {
  return await call(vmDir, 'GET', '/screenshot', undefined, opts) as { width: number; height: number; png: string };
}

/** `POST /cdrom`: the ISO image at `path` goes in the CD-ROM drive, or (null) the disc comes out. */
export async function setCdrom(vmDir: string, path: string | null, force: boolean, opts?: RequestOptions): Promise<VmProcessStatus> {
  return await call(vmDir, 'POST', '/cdrom', { path, force }, opts) as VmProcessStatus;
}

/** `POST /disk-rate`: the VM's disk I/O limits (requests/s and bytes/s, 0: none). */
export async function setDiskRate(vmDir: string, iops: number, bps: number, opts?: RequestOptions): Promise<VmProcessStatus> {
  return await call(vmDir, 'POST', '/disk-rate', { iops, bps }, opts) as VmProcessStatus;
}

/** `POST /pause`: resolves once every vCPU is parked; guest time stands still until resume. */
export async function pause(vmDir: string, opts?: RequestOptions): Promise<VmProcessStatus> {
  return await call(vmDir, 'POST', '/pause', {}, opts) as VmProcessStatus;
}

/** `POST /resume`: the vCPUs run again. */
export async function resume(vmDir: string, opts?: RequestOptions): Promise<VmProcessStatus> {
  return await call(vmDir, 'POST', '/resume', {}, opts) as VmProcessStatus;
}

/**
 * `GET /console` with `Upgrade: tsvisor-console`, as it comes: the upgraded socket and
 * the bytes that arrived with the 101 answer, or the plain response when the VM process
 * did not upgrade. Rejects with ControlError when there is no answer.
 */
export function upgradeConsole(vmDir: string, opts: RequestOptions = {}): Promise<{ socket: Socket; head: Buffer } | { response: IncomingMessage }> {
  return upgrade(vmDir, '/console', 'tsvisor-console', opts);
}

/**
 * `GET /vnc` with `Upgrade: rfb`, as it comes: the upgraded socket (an RFB connection to
 * the VM's VNC server, which speaks first) and the bytes that arrived with the 101 answer,
 * or the plain response (409 without a display). Rejects with ControlError when there is
 * no answer.
 */
export function upgradeVnc(vmDir: string, opts: RequestOptions = {}): Promise<{ socket: Socket; head: Buffer } | { response: IncomingMessage }> {
  return upgrade(vmDir, '/vnc', 'rfb', opts);
}

function upgrade(vmDir: string, path: string, protocol: string, opts: RequestOptions): Promise<{ socket: Socket; head: Buffer } | { response: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = startRequest(vmDir, 'GET', path, undefined, opts.timeoutMs ?? 15_000,
      { connection: 'Upgrade', upgrade: protocol });
    req.on('error', (e) => reject(connectionError(vmDir, e)));
    req.on('upgrade', (_res: IncomingMessage, socket: Socket, head: Buffer) => {
      socket.setTimeout(0);
      resolve({ socket, head });
    });
    req.on('response', (response) => {
      req.setTimeout(0);
      resolve({ response });
    });
  });
}

/**
 * `GET /console` with `Upgrade: tsvisor-console`: a raw byte stream to the VM's serial
 * console. Reading gives the scrollback (up to 64 KiB) and then live output; writing
 * types into the console. Ending or destroying the stream detaches (the VM keeps running);
 * it ends when the VM process exits.
 */
export async function attachConsole(vmDir: string, opts: RequestOptions = {}): Promise<Duplex> {
  const r = await upgradeConsole(vmDir, opts);
  if ('response' in r) throw errorFromBody(r.response.statusCode ?? 0, await readBody(r.response));
  if (r.head.length) r.socket.unshift(r.head);
  return r.socket;
}

/** Callbacks and input of {@link exec}. */
export interface ExecHandlers {
  stdout?: (data: Uint8Array) => void;
  stderr?: (data: Uint8Array) => void;
  /** Bytes for the command's standard input (sent with the request). */
  stdin?: Uint8Array;
}

/**
 * `POST /exec`: run `argv` in the guest through its agent, streaming its output to the
 * handlers; resolves with its exit status. Rejects with ControlError (`agent_unavailable`
 * when the guest agent does not answer, `exec_failed` when the agent reported an error).
 */
export function exec(vmDir: string, argv: readonly string[], handlers: ExecHandlers = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const body: { argv: string[]; stdin?: string } = { argv: [...argv] };
    if (handlers.stdin) body.stdin = Buffer.from(handlers.stdin).toString('base64');
    const req = startRequest(vmDir, 'POST', '/exec', body, undefined);
    let settled = false;
    const settle = (f: () => void) => { if (!settled) { settled = true; f(); } };
    req.on('error', (e) => settle(() => reject(connectionError(vmDir, e))));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        readBody(res).then((text) => settle(() => reject(errorFromBody(status, text))), (e) => settle(() => reject(e)));
        return;
      }
      let buf = '';
      const line = (l: string) => {
        if (!l.trim()) return;
        let ev: ExecEvent;
        try { ev = JSON.parse(l) as ExecEvent; } catch { settle(() => reject(new ControlError('protocol', `exec: bad event line: ${l.slice(0, 100)}`))); return; }
        if ('stream' in ev) {
          const data = Buffer.from(ev.data, 'base64');
          (ev.stream === 'stdout' ? handlers.stdout : handlers.stderr)?.(new Uint8Array(data.buffer, data.byteOffset, data.length));
        } else if ('exit' in ev) settle(() => resolve(ev.exit));
        else if ('error' in ev) settle(() => reject(new ControlError('exec_failed', ev.error)));
      };
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) { line(buf.slice(0, i)); buf = buf.slice(i + 1); }
      });
      res.on('end', () => {
        line(buf);
        settle(() => reject(new ControlError('protocol', 'exec: the answer ended without an exit status')));
      });
      res.on('error', (e: NodeJS.ErrnoException) => settle(() => reject(connectionError(vmDir, e))));
    });
  });
}
