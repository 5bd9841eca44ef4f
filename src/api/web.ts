/**
 * The web console's side of the API server: its static files, the browser's session
 * cookie, and the WebSocket bridges to a VM's VNC server and serial console.
 *
 *  - Static files (no credentials: they hold none): `/` is `src/web/index.html`, `/web/*`
 *    the console's own files, `/web/vendor/{novnc,xterm,uplot}/*` the libraries it uses,
 *    from their npm packages. Only listed folders and file types are served, never a path
 *    outside them.
 *  - Session: `POST /v1/session {token}` checks the daemon's bearer token and sets it as an
 *    HttpOnly, SameSite=Strict cookie, so the page's requests and WebSockets carry it. A
 *    request authenticated by the cookie must come from the daemon's own origin (`Origin`),
 *    and one that changes something must carry `X-Tsvisor-Request: 1` (which a cross-origin
 *    page cannot send without a preflight the API never grants).
 *  - WebSockets (`ws`): `GET /v1/vms/{name}/vnc` carries the RFB stream of the VM's VNC
 *    server as binary messages (what noVNC speaks); `GET /v1/vms/{name}/console` the bytes
 *    of its serial console.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join, sep } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';

/** Name of the session cookie. */
export const SESSION_COOKIE = 'tsvisor_token';
/** Header a cookie-authenticated request that changes something must carry (value `1`). */
export const REQUEST_HEADER = 'x-tsvisor-request';
/** Bytes a WebSocket may have queued before the VM side is paused. */
const WS_HIGH_WATER = 4 * 1024 * 1024;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png',
};

const require = createRequire(import.meta.url);
/** URL prefix -> folder it serves. */
function staticRoots(): Array<[string, string]> {
  // dist/src/api/web.js or src/api/web.ts: the web folder is src/web of the package
  const here = dirname(fileURLToPath(import.meta.url));
  const pkg = here.includes(`${sep}dist${sep}`) ? join(here, '..', '..', '..') : join(here, '..', '..');
  return [
    ['/web/vendor/novnc/', dirname(dirname(require.resolve('@novnc/novnc')))],
    ['/web/vendor/xterm/', dirname(dirname(require.resolve('@xterm/xterm')))],
    ['/web/vendor/uplot/', dirname(require.resolve('uplot'))],
    ['/web/', join(pkg, 'src', 'web')],
  ];
}
let roots: Array<[string, string]> | null = null;

const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/**
 * Serves `pathname` if it is one of the console's static files; false when it is not one
 * (the caller goes on routing). `/` is the console's page.
 */
export function serveStatic(pathname: string, method: string, res: ServerResponse): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  roots ??= staticRoots();
  const path = pathname === '/' ? '/web/index.html' : pathname;
  const root = roots.find(([prefix]) => path.startsWith(prefix));
  if (!root) return false;
  const rel = path.slice(root[0].length);
  const type = TYPES[extname(rel)];
  let file: string;
  try {
    if (!type || rel.split('/').some((p) => p === '' || p === '.' || p === '..' || p.startsWith('.'))) throw new Error('not served');
    const base = realpathSync(root[1]);
    file = realpathSync(join(base, ...rel.split('/')));
    if (!file.startsWith(base + sep) || !statSync(file).isFile()) throw new Error('not served');
  } catch {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('not found\n');
    return true;
  }
  const body = readFileSync(file);
  res.writeHead(200, {
    'content-type': type, 'content-length': body.length, 'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff', 'content-security-policy': CSP, 'referrer-policy': 'no-referrer',
  });
  res.end(method === 'HEAD' ? undefined : body);
  return true;
}

/** The value of cookie `name` in `req`, if any. */
export function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** True when `req` comes from the server's own origin: no `Origin`, or one whose host is the `Host` it was sent to. */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    const u = new URL(origin);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.host === req.headers.host;
  } catch {
    return false;
  }
}

/** `Set-Cookie` value holding `token` for the session (null: clear it). */
export function sessionCookie(token: string | null): string {
  return token === null
    ? `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`
    : `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict`;
}

const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024, perMessageDeflate: false });

/**
 * Completes a WebSocket handshake on `socket` (an upgrade request `req` with `head`), then
 * relays `vm` (an upgraded VM-process stream, `vmHead` being what came with it) both ways:
 * the VM's bytes as binary messages, each message's bytes to the VM. Either side closing
 * closes the other.
 */
export function bridgeWebSocket(req: IncomingMessage, socket: Duplex, head: Buffer, vm: Duplex, vmHead: Buffer): void {
  wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
    const end = () => { vm.destroy(); ws.terminate(); };
    if (vmHead.length) ws.send(vmHead, { binary: true });
    let paused = false;
    vm.on('data', (chunk: Buffer) => {
      ws.send(chunk, { binary: true });
      if (!paused && ws.bufferedAmount > WS_HIGH_WATER) {
        // the browser is slow: stop reading the VM until its queue drains
        paused = true;
        vm.pause();
        const check = setInterval(() => {
          if (ws.readyState !== ws.OPEN) { clearInterval(check); return; }
          if (ws.bufferedAmount < WS_HIGH_WATER / 4) { clearInterval(check); paused = false; vm.resume(); }
        }, 20);
      }
    });
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      // binaryType 'nodebuffer' (the default): a Buffer, written as it is
      vm.write(Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data));
    });
    vm.on('close', end);
    vm.on('error', end);
    ws.on('close', end);
    ws.on('error', end);
  });
}
