/**
 * Client of the REST API, as the CLI uses it: over the daemon's Unix socket, or over
 * TCP with a bearer token (`TSVISOR_URL=http://HOST:PORT`, token from `TSVISOR_TOKEN`
 * or `$TSVISOR_HOME/token`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { request, type IncomingMessage, type RequestOptions } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HostPaths } from '../host/paths.js';

/** An error answer of the API (or a failure to reach it). */
export class ApiClientError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: Record<string, unknown>) {
    super(message);
    this.name = 'ApiClientError';
  }
}

/** Where the API is. */
export type ApiTarget = { socket: string } | { url: string; token?: string };

/** The target for `env`: `TSVISOR_URL` (+ token) if set, else the daemon's Unix socket. */
export function apiTarget(paths: HostPaths, env: NodeJS.ProcessEnv = process.env): ApiTarget {
  const url = env.TSVISOR_URL;
  if (url) {
    let token = env.TSVISOR_TOKEN;
    if (!token) { try { token = readFileSync(paths.token, 'utf8').trim(); } catch { /* none */ } }
    return { url, token };
  }
  return { socket: paths.socket };
}

/** A JSON API client. */
export class ApiClient {
  constructor(readonly target: ApiTarget) {}

  private options(method: string, path: string, headers: Record<string, string | number> = {}): RequestOptions {
    const h: Record<string, string | number> = { host: 'tsvisor', ...headers };
    if ('socket' in this.target) return { socketPath: this.target.socket, method, path, headers: h };
    const u = new URL(path, this.target.url);
    if (this.target.token) h.authorization = `Bearer ${this.target.token}`;
    return { hostname: u.hostname.replace(/^\[|\]$/g, ''), port: u.port || 80, method, path: u.pathname + u.search, headers: h };
  }

  /** Send a request; resolves with the response (body unread). */
  open(method: string, path: string, body?: unknown): Promise<IncomingMessage> {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(this.options(method, path, data ? { 'content-type': 'application/json', 'content-length': data.length } : {}));
      req.on('response', resolve);
      req.on('error', reject);
      req.end(data);
    });
  }

  /** Send a request and parse its JSON answer; throws ApiClientError on a non-2xx answer. */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.open(method, path, body);
    return readJsonAnswer<T>(res);
  }

  /** Upgrade `path` to a raw stream (the console). */
  upgrade(path: string, protocol: string): Promise<{ socket: Duplex; head: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = request(this.options('GET', path, { connection: 'Upgrade', upgrade: protocol }));
      req.on('upgrade', (_res, socket, head) => resolve({ socket, head }));
      req.on('response', (res) => { readJsonAnswer(res).then(() => reject(new ApiClientError(res.statusCode ?? 0, 'no_upgrade', 'the server did not upgrade the connection')), reject); });
      req.on('error', reject);
      req.end();
    });
  }
}

/** Read a JSON answer; throws ApiClientError with the API's message when it is an error. */
export async function readJsonAnswer<T>(res: IncomingMessage): Promise<T> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  let body: unknown;
  try { body = text ? JSON.parse(text) : undefined; } catch { body = undefined; }
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) {
    const err = (body as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined)?.error;
    throw new ApiClientError(status, err?.code ?? 'http_error', err?.message ?? `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`, err?.details);
  }
  return body as T;
}

/** Parse `HOST:PORT` (`[::1]:8080`, `127.0.0.1:8080`, `:8080` = 127.0.0.1). */
export function parseListen(spec: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(spec.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`invalid --listen ${JSON.stringify(spec)}: expected HOST:PORT`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/** Whether a daemon answers on Unix socket `socket`. */
export function pingSocket(socket: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(socket)) { resolve(false); return; }
    const req = request({ socketPath: socket, path: '/v1/host', method: 'GET', headers: { host: 'tsvisor' } });
    const t = setTimeout(() => { req.destroy(); resolve(false); }, timeoutMs);
    req.on('response', (res) => { clearTimeout(t); res.resume(); resolve(res.statusCode === 200); });
    req.on('error', () => { clearTimeout(t); resolve(false); });
    req.end();
  });
}
