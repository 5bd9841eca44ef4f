/**
 * The daemon's side of one VM process's control channel: HTTP/1.1 over `<vmDir>/vm.sock`
 * (the contract is src/vmm/control-api.ts). Requests have short time limits: a VM
 * process that does not answer is reported, never waited on forever.
 */
import { request, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { VmProcessStatus } from '../vmm/control-api.js';
import { HostError } from './errors.js';

/** A JSON answer of the VM process. */
export interface ChannelReply<T = unknown> {
  status: number;
  body: T;
}

/** Client of one VM process's control socket. */
export class VmChannel {
  constructor(readonly socketPath: string) {}

  /** Send a request; resolves with the raw response (body not read). */
  open(method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = request({
        socketPath: this.socketPath, method, path,
        headers: { host: 'vm', ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) },
      });
      const timer = setTimeout(() => req.destroy(new Error(`no answer from ${this.socketPath} within ${timeoutMs} ms`)), timeoutMs);
      req.on('response', (res) => { clearTimeout(timer); resolve(res); });
      req.on('error', (e) => { clearTimeout(timer); reject(e); });
      req.end(data);
    });
  }

  /** Send a request and read its JSON answer (whatever the status). */
  async call<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<ChannelReply<T>> {
    const res = await this.open(method, path, body, timeoutMs);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => res.destroy(new Error('answer body timed out')), timeoutMs);
    try {
      for await (const c of res) chunks.push(c as Buffer);
    } finally {
      clearTimeout(timer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown = undefined;
    try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
    return { status: res.statusCode ?? 0, body: parsed as T };
  }

  /** `GET /status`; throws when the process does not answer with 200. */
  async status(timeoutMs = 2000): Promise<VmProcessStatus> {
    const r = await this.call<VmProcessStatus>('GET', '/status', undefined, timeoutMs);
    if (r.status !== 200) throw new Error(`GET /status: HTTP ${r.status}`);
    return r.body;
  }

  /** POST an operation; throws HostError with the VM process's message on a non-2xx answer. */
  async post(path: string, body?: unknown, timeoutMs = 5000): Promise<unknown> {
    let r: ChannelReply;
    try {
      r = await this.call('POST', path, body ?? {}, timeoutMs);
    } catch (e) {
      throw new HostError('unavailable', `VM process does not answer ${path}: ${(e as Error).message}`);
    }
    if (r.status >= 200 && r.status < 300) return r.body;
    const msg = (r.body as { error?: { message?: string } } | undefined)?.error?.message ?? `HTTP ${r.status}`;
    throw new HostError(r.status === 404 || r.status === 501 ? 'not_supported' : r.status === 409 ? 'conflict' : 'internal', `VM process refused ${path}: ${msg}`);
  }

  /**
   * `GET /console` with `Upgrade: tsvisor-console`. Resolves with the upgraded socket
   * and the bytes that came with the 101 answer, or with the plain response when the
   * VM process did not upgrade.
   */
  upgradeConsole(timeoutMs = 5000): Promise<{ socket: Duplex; head: Buffer } | { response: IncomingMessage }> {
    return new Promise((resolve, reject) => {
      const req = request({
        socketPath: this.socketPath, method: 'GET', path: '/console',
        headers: { host: 'vm', connection: 'Upgrade', upgrade: 'tsvisor-console' },
      });
      const timer = setTimeout(() => req.destroy(new Error(`no answer from ${this.socketPath} within ${timeoutMs} ms`)), timeoutMs);
      req.on('upgrade', (_res, socket, head) => { clearTimeout(timer); resolve({ socket, head }); });
      req.on('response', (response) => { clearTimeout(timer); resolve({ response }); });
      req.on('error', (e) => { clearTimeout(timer); reject(e); });
      req.end();
    });
  }
}
