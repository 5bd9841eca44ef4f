/**
 * The REST API over HTTP/1.1 (node:http): routes each request to the host layer,
 * validates bodies with zod, answers JSON, and proxies exec (streamed NDJSON) and the
 * console (HTTP upgrade) to the VM process. The same handler serves the owner-only Unix
 * socket (no credentials) and the optional TCP listener (bearer token required).
 */
import { linuxKeyCode } from '../devices/input-keys.js';
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { z } from 'zod';
import { HOST_ERROR_STATUS, HostError } from '../host/errors.js';
import type { Host } from '../host/host.js';
import { parseListen } from './client.js';
import { openApiDocument } from './openapi.js';
import { bridgeWebSocket, cookie, REQUEST_HEADER, sameOrigin, serveStatic, sessionCookie, SESSION_COOKIE } from './web.js';
import { DiskResizeBody, DiskAttachBody, CdromInsertBody, Share, SendKeyBody, ExecBody, NetworkCreateBody, SessionBody, WebBody, StopBody, VmCreateBody, VmPatchBody, describeZodError } from './schemas.js';

/** An error answer: HTTP status, code, message. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: Record<string, unknown>) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Options of {@link createApiServer}. */
export interface ApiServerOptions {
  /** Required bearer token (TCP listener); undefined: none (Unix socket). */
  token?: string;
  /** Called for `POST /v1/daemon/shutdown` after the answer is sent. */
  onShutdown?: () => void;
  /**
   * `POST /v1/daemon/web {listen?}`: make sure the daemon listens on TCP (the web console's
   * address, `HOST:PORT`, default 127.0.0.1:8006) and give its URL.
   */
  onWeb?: (listen?: string) => Promise<{ url: string }>;
  /** Log sink. */
  log?: (line: string) => void;
}

const MAX_BODY = 1024 * 1024;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body) + '\n');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length, 'cache-control': 'no-store' });
  res.end(data);
}

/** The JSON error body and status for any thrown value. */
export function errorAnswer(e: unknown): { status: number; body: { error: { code: string; message: string; details?: Record<string, unknown> } } } {
  if (e instanceof ApiError) return { status: e.status, body: { error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } } };
  if (e instanceof HostError) {
    return { status: HOST_ERROR_STATUS[e.code], body: { error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } } };
  }
  return { status: 500, body: { error: { code: 'internal', message: (e as Error)?.message?.split('\n')[0] || String(e) } } };
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new ApiError(413, 'payload_too_large', `request body larger than ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, 'invalid_json', `malformed JSON body: ${(e as Error).message}`);
  }
}

function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ApiError(400, 'invalid_argument', describeZodError(r.error));
  return r.data;
}

/** Whether `given` is `token`, in constant time. */
function sameToken(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Whether `req` may use the API: it carries `Authorization: Bearer <token>`, or the web
 * console's session cookie holding it, sent from the daemon's own origin and, for a
 * request that changes something, with `X-Tsvisor-Request: 1` (web.ts).
 */
export function authorized(req: IncomingMessage, token: string | undefined): boolean {
  if (token === undefined) return true;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (m) return sameToken(m[1], token);
  const c = cookie(req, SESSION_COOKIE);
  if (c === undefined || !sameToken(c, token) || !sameOrigin(req)) return false;
  const reads = req.method === 'GET' || req.method === 'HEAD';
  return reads || req.headers[REQUEST_HEADER] === '1';
}

const VM_ACTIONS = new Set(['start', 'stop', 'kill', 'pause', 'resume', 'restart', 'exec', 'console']);

/** The API's HTTP server, plus a way to end the console sessions it upgraded. */
export interface ApiServer extends Server {
  /** Destroy every upgraded (console) connection: `closeAllConnections()` does not see them. */
  destroyUpgraded(): void;
}

/** Create the API server for `host` (not listening yet). */
export function createApiServer(host: Host, opts: ApiServerOptions = {}): ApiServer {
  const log = opts.log ?? (() => {});
  const consoles = new Set<Duplex>();
  const server = createServer((req, res) => {
    handle(host, opts, req, res).catch((e) => {
      const { status, body } = errorAnswer(e);
      if (status >= 500) log(`${req.method} ${req.url}: ${status} ${body.error.message}`);
      if (res.headersSent) { res.destroy(); return; }
      sendJson(res, status, body);
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // before anything can fail: a client resetting the connection must not take the daemon down
    socket.on('error', () => socket.destroy());
    consoles.add(socket);
    socket.on('close', () => consoles.delete(socket));
    upgrade(host, opts, req, socket, head).catch((e) => {
      const { status, body } = errorAnswer(e);
      rawAnswer(socket, status, body);
    });
  });
  server.on('clientError', (_e, socket) => {
    if (socket.writable) rawAnswer(socket, 400, { error: { code: 'bad_request', message: 'malformed HTTP request' } });
    else socket.destroy();
  });
  return Object.assign(server, {
    destroyUpgraded(): void {
      for (const c of consoles) c.destroy();
      consoles.clear();
    },
  });
}

/** The decoded segments of the URL's path; malformed percent-encoding is a 400. */
function pathParts(url: URL): string[] {
  try {
    return url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new ApiError(400, 'bad_request', `malformed percent-encoding in ${url.pathname}`);
  }
}

function rawAnswer(socket: Duplex, status: number, body: unknown): void {
  const data = JSON.stringify(body) + '\n';
  socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(data)}\r\nconnection: close\r\n\r\n${data}`);
}

async function handle(host: Host, opts: ApiServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://tsvisor');
  const method = req.method ?? 'GET';
  const parts = pathParts(url);
  if (url.pathname === '/openapi.json' && method === 'GET') { sendJson(res, 200, openApiDocument()); return; }
  if (parts[0] !== 'v1') {
    if (serveStatic(url.pathname, method, res)) return;
    throw new ApiError(404, 'not_found', `no route ${url.pathname}`);
  }
  if (parts.length === 2 && parts[0] === 'v1' && parts[1] === 'session') {
    // the web console's login: the token becomes a cookie (web.ts)
    if (method === 'DELETE') { res.setHeader('set-cookie', sessionCookie(null)); res.writeHead(204).end(); return; }
    if (method !== 'POST') throw new ApiError(405, 'method_not_allowed', `${method} is not allowed on ${url.pathname}`);
    const { token } = parse(SessionBody, await readBody(req));
    if (!sameOrigin(req)) throw new ApiError(403, 'forbidden', 'a session is only opened from the daemon\'s own page');
    if (opts.token !== undefined && !sameToken(token, opts.token)) throw new ApiError(401, 'unauthorized', 'wrong token (see $TSVISOR_HOME/token)');
    if (opts.token !== undefined) res.setHeader('set-cookie', sessionCookie(opts.token));
    res.writeHead(204).end();
    return;
  }
  if (!authorized(req, opts.token)) {
    res.setHeader('www-authenticate', 'Bearer realm="tsvisor"');
    throw new ApiError(401, 'unauthorized', 'missing or wrong bearer token (see $TSVISOR_HOME/token)');
  }
  const notAllowed = () => new ApiError(405, 'method_not_allowed', `${method} is not allowed on ${url.pathname}`);
  if (parts[0] !== 'v1') throw new ApiError(404, 'not_found', `no route ${url.pathname}`);

  if (parts.length === 2 && parts[1] === 'host') {
    if (method !== 'GET') throw notAllowed();
    sendJson(res, 200, host.info());
    return;
  }
  if (parts.length === 2 && parts[1] === 'usage') {
    if (method !== 'GET') throw notAllowed();
    sendJson(res, 200, host.usage());
    return;
  }
  if (parts.length === 2 && parts[1] === 'top') {
    if (method !== 'GET') throw notAllowed();
    sendJson(res, 200, { at: Date.now(), vms: host.top() });
    return;
  }
  if (parts.length === 3 && parts[1] === 'daemon' && parts[2] === 'web') {
    if (method !== 'POST') throw notAllowed();
    const body = parse(WebBody, (await readBody(req)) ?? {});
    if (!opts.onWeb) throw new ApiError(501, 'not_supported', 'this server has no web console');
    if (body.listen !== undefined) {
      try { parseListen(body.listen); } catch (e) { throw new ApiError(400, 'invalid_argument', (e as Error).message); }
    }
    try {
      sendJson(res, 200, await opts.onWeb(body.listen));
    } catch (e) {
      throw new ApiError(409, 'conflict', `cannot listen on ${body.listen ?? 'the web console\'s port'}: ${(e as Error).message}`);
    }
    return;
  }
  if (parts.length === 3 && parts[1] === 'daemon' && parts[2] === 'shutdown') {
    if (method !== 'POST') throw notAllowed();
    sendJson(res, 202, { shuttingDown: true, pid: process.pid });
    res.on('finish', () => opts.onShutdown?.());
    return;
  }
  if (parts[1] === 'networks' && parts.length <= 3) {
    if (parts.length === 2) {
      if (method === 'GET') { sendJson(res, 200, { networks: host.networks.list() }); return; }
      if (method === 'POST') {
        const body = parse(NetworkCreateBody, await readBody(req));
        sendJson(res, 201, await host.networks.create(body.name, body.subnet));
        return;
      }
      throw notAllowed();
    }
    if (method === 'GET') { sendJson(res, 200, host.networks.get(parts[2])); return; }
    if (method === 'DELETE') { host.deleteNetwork(parts[2]); sendJson(res, 200, { deleted: parts[2] }); return; }
    throw notAllowed();
  }
  if (parts[1] !== 'vms' || (parts.length > 4 && !(((parts.length === 5 || parts.length === 6) && parts[3] === 'disks') || (parts.length === 5 && parts[3] === 'shares')))) throw new ApiError(404, 'not_found', `no route ${url.pathname}`);

  if (parts.length === 2) {
    if (method === 'GET') { sendJson(res, 200, { vms: host.list() }); return; }
    if (method === 'POST') {
      const body = parse(VmCreateBody, await readBody(req));
      if (body.image !== undefined && body.bootDisk !== undefined) throw new ApiError(400, 'invalid_argument', 'image and bootDisk are two system disks: give one');
      if (body.image === undefined && body.diskSizeBytes !== undefined) throw new ApiError(400, 'invalid_argument', 'diskSizeBytes needs image');
      sendJson(res, 201, await host.withCloudInit(body, async (input) => {
        if (input.image !== undefined) return await host.createFromImage({ ...input, image: input.image });
        if (input.bootDisk !== undefined) return await host.createFromBootDisk({ ...input, bootDisk: input.bootDisk });
        return host.create(input);
      }));
      return;
    }
    throw notAllowed();
  }
  const name = parts[2];
  if (parts.length === 3) {
    if (method === 'GET') { sendJson(res, 200, await host.current(name)); return; }
    if (method === 'PATCH') {
      const body = parse(VmPatchBody, await readBody(req) ?? {});
      host.get(name); // 404 before anything else
      sendJson(res, 200, await host.update(name, body));
      return;
    }
    if (method === 'DELETE') {
      const force = ['1', 'true', 'yes'].includes(url.searchParams.get('force') ?? '');
      await host.delete(name, { force });
      sendJson(res, 200, { deleted: name });
      return;
    }
    throw notAllowed();
  }
  const action = parts[3];
  if (action === 'disks' && parts.length === 6 && parts[5] === 'resize') {
    if (method !== 'POST') throw notAllowed();
    const body = parse(DiskResizeBody, await readBody(req));
    sendJson(res, 200, await host.resizeDisk(name, parts[4], body.sizeBytes));
    return;
  }
  if (action === 'send-key' && parts.length === 4) {
    if (method !== 'POST') throw notAllowed();
    const body = parse(SendKeyBody, await readBody(req));
    let codes: number[];
    try { codes = body.keys.map(linuxKeyCode); } catch (e) { throw new ApiError(400, 'invalid_argument', (e as Error).message); }
    await host.access.sendKeys(name, codes);
    sendJson(res, 200, host.get(name));
    return;
  }
  if (action === 'vnc' && parts.length === 4) {
    if (method !== 'GET') throw notAllowed();
    sendJson(res, 200, await host.access.vnc(name));
    return;
  }
  if (action === 'screenshot' && parts.length === 4) {
    if (method !== 'GET') throw notAllowed();
    sendJson(res, 200, await host.access.screenshot(name));
    return;
  }
  if (action === 'shares' && parts.length === 4) {
    if (method !== 'POST') throw notAllowed();
    const body = parse(Share, await readBody(req));
    sendJson(res, 200, await host.setShare(name, body.tag, { path: body.path, readonly: body.readonly }));
    return;
  }
  if (action === 'shares' && parts.length === 5) {
    if (method !== 'DELETE') throw notAllowed();
    sendJson(res, 200, await host.setShare(name, parts[4], null));
    return;
  }
  if (action === 'cdrom' && parts.length === 4) {
    if (method === 'POST') {
      const body = parse(CdromInsertBody, await readBody(req));
      sendJson(res, 200, await host.setCdrom(name, body.path));
      return;
    }
    if (method === 'DELETE') {
      const force = ['1', 'true', 'yes'].includes(url.searchParams.get('force') ?? '');
      sendJson(res, 200, await host.setCdrom(name, null, { force }));
      return;
    }
    throw notAllowed();
  }
  if (action === 'disks' && parts.length === 4) {
    if (method !== 'POST') throw notAllowed();
    const body = parse(DiskAttachBody, await readBody(req));
    sendJson(res, 200, await host.attachDisk(name, body.path, { readonly: body.readonly }));
    return;
  }
  if (action === 'disks' && parts.length === 5) {
    if (method !== 'DELETE') throw notAllowed();
    const force = ['1', 'true', 'yes'].includes(url.searchParams.get('force') ?? '');
    sendJson(res, 200, await host.detachDisk(name, parts[4], { force }));
    return;
  }
  if (!VM_ACTIONS.has(action)) throw new ApiError(404, 'not_found', `no route ${url.pathname}`);
  if (action === 'console') {
    host.get(name);
    throw new ApiError(426, 'upgrade_required', 'the console needs an HTTP upgrade: "Connection: Upgrade", "Upgrade: tsvisor-console"');
  }
  if (method !== 'POST') throw notAllowed();
  switch (action) {
    case 'start': await readBody(req); sendJson(res, 200, await host.start(name)); return;
    case 'stop': {
      const body = parse(StopBody, await readBody(req) ?? {});
      sendJson(res, 200, await host.stop(name, body));
      return;
    }
    case 'restart': {
      const body = parse(StopBody, await readBody(req) ?? {});
      sendJson(res, 200, await host.restart(name, body));
      return;
    }
    case 'kill': await readBody(req); sendJson(res, 200, await host.kill(name)); return;
    case 'pause': await readBody(req); sendJson(res, 200, await host.pause(name)); return;
    case 'resume': await readBody(req); sendJson(res, 200, await host.resume(name)); return;
    case 'exec': {
      const body = parse(ExecBody, await readBody(req));
      const vmRes = await host.access.openExec(name, body);
      const status = vmRes.statusCode ?? 502;
      res.writeHead(status, {
        'content-type': vmRes.headers['content-type'] ?? (status === 200 ? 'application/x-ndjson' : 'application/json'),
        'cache-control': 'no-store',
      });
      res.flushHeaders();
      vmRes.pipe(res, { end: false });
      vmRes.on('error', () => { /* reported at close */ });
      vmRes.on('close', () => {
        if (res.writableEnded) return;
        // a VM process that dies mid-command (crash, kill -9) cuts the stream: say so, then end it
        if (!vmRes.complete) res.write(`${JSON.stringify({ error: `the VM process of ${name} ended during the command` })}\n`);
        res.end();
      });
      res.on('close', () => { if (!vmRes.complete) vmRes.destroy(); });
      return;
    }
  }
}

async function upgrade(host: Host, opts: ApiServerOptions, req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://tsvisor');
  const parts = pathParts(url);
  if (!authorized(req, opts.token)) throw new ApiError(401, 'unauthorized', 'missing or wrong bearer token (see $TSVISOR_HOME/token)');
  const websocket = (req.headers.upgrade ?? '').toLowerCase() === 'websocket';
  const kind = parts.length === 4 && parts[0] === 'v1' && parts[1] === 'vms' && req.method === 'GET' ? parts[3] : '';
  if (!(kind === 'console' || (kind === 'vnc' && websocket))) throw new ApiError(404, 'not_found', `no upgrade route ${url.pathname}`);
  if (websocket && !sameOrigin(req)) throw new ApiError(403, 'forbidden', 'WebSocket from another origin');
  const vm = kind === 'vnc' ? await host.access.openVnc(parts[2]) : await host.access.openConsole(parts[2]);
  if ('response' in vm) {
    // the VM process answered without upgrading: relay its answer
    const chunks: Buffer[] = [];
    for await (const c of vm.response) chunks.push(c as Buffer);
    let body: unknown;
    try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { body = { error: { code: 'not_supported', message: `VM process answered HTTP ${vm.response.statusCode} to GET /console` } }; }
    rawAnswer(client, vm.response.statusCode === 200 ? 502 : vm.response.statusCode ?? 502, body);
    return;
  }
  if (websocket) { bridgeWebSocket(req, client, head, vm.socket, vm.head); return; }
  client.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: tsvisor-console\r\n\r\n');
  if (vm.head.length) client.write(vm.head);
  if (head.length) vm.socket.write(head);
  vm.socket.pipe(client);
  client.pipe(vm.socket);
  const end = () => { vm.socket.destroy(); client.destroy(); };
  vm.socket.on('close', end);
  client.on('close', end);
  vm.socket.on('error', end);
  client.on('error', end);
}
