/**
 * The server side of a VM process's control channel: HTTP/1.1 over a Unix socket,
 * as specified in control-api.ts. The routes call a {@link ControlTarget} (the VM
 * process, or a fake one in tests); this file knows nothing about harts or devices.
 */
import { MAX_KEY_CODE } from '../devices/input-keys.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import type { ExecEvent, VmProcessStatus } from './control-api.js';
import { checkNetRate } from './network.js';
import { checkDiskLimit } from './vm-config.js';
import type { MemoryPolicy } from './memory-policy.js';

/** Default of `POST /stop`'s `timeoutMs`. */
export const DEFAULT_STOP_TIMEOUT_MS = 30_000;
/** Largest request body accepted (an exec's stdin is carried in it). */
const MAX_BODY_BYTES = 16 << 20;

/** An error with its HTTP status and a machine-readable code (control-api.ts error body). */
export class ControlHttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ControlHttpError';
  }
}

/** Output callbacks of an exec. */
export interface ExecOutput {
  stdout(data: Uint8Array): void;
  stderr(data: Uint8Array): void;
}

/** What the control channel drives. Methods may throw {@link ControlHttpError}. */
export interface ControlTarget {
  /** `GET /status`. */
  status(): VmProcessStatus;
  /** `POST /stop`: begin a graceful stop, forced after `timeoutMs`. Returns at once. */
  stop(timeoutMs: number): void;
  /** `POST /kill`: end the VM process now (called after the 202 was sent). */
  kill(): void;
  /** `POST /pause`: resolves once the harts are parked. */
  pause(): Promise<void>;
  /** `POST /resume`. */
  resume(): Promise<void>;
  /** `POST /net-rate`: set every card's bandwidth cap (Mbit/s each way, 0: none; already checked). */
  setNetRate(mbit: number): void;
  /**
   * `POST /memory`: move the balloon so that the guest has `bytes` of RAM (a positive safe
   * integer, otherwise unchecked). Throw ControlHttpError (400 out of range, 409 the guest
   * cannot give that much now) with the figures.
   */
  setMemory(bytes: number): Promise<void>;
  /** `POST /memory-policy`: the dynamic policy's figures (checked for type only), or null to end it; throws ControlHttpError(400). */
  setMemoryPolicy(policy: MemoryPolicy | null): void;
  /**
   * `POST /cpus`: keep `count` vCPUs online (a positive whole number, otherwise
   * unchecked). Resolves once the guest did; rejects with ControlHttpError (400 out of
   * range, 409 no agent or the guest refused).
   */
  setCpus(count: number): Promise<void>;
  /**
   * `POST /disk-resize`: grow disk `index` to `bytes` (whole numbers, otherwise unchecked)
   * and tell the guest. Throw ControlHttpError (400 bad disk or size, 409 not now).
   */
  resizeDisk(index: number, bytes: number): void;
  /**
   * `POST /disk-attach`: attach the image at `path` (absolute; otherwise unchecked) to the
   * running guest; resolves with the guest's name of the disk (`vdc`). Rejects with
   * ControlHttpError (400 cannot be opened or already attached, 409 not now).
   */
  attachDisk(path: string, readonly: boolean): Promise<string>;
  /**
   * `POST /disk-detach`: detach the disk whose image is at `path` (not the CD-ROM) from the
   * running guest, even while the guest uses it when `force`. Rejects with
   * ControlHttpError (400 no such disk, 409 not now or in use, with the guest's reason).
   */
  detachDisk(path: string, force: boolean): Promise<void>;
  /**
   * `POST /cdrom`: put the ISO image at `path` (absolute; otherwise unchecked) in the CD-ROM
   * drive, or (null) take the disc out, even from a guest that holds the tray locked when
   * `force`. Throw ControlHttpError (400 the image cannot be opened, 409 the tray is locked).
   */
  setCdrom(path: string | null, force: boolean): void;
  /** `POST /disk-rate`: the VM's disk I/O limits, per second (0: none; already checked). */
  setDiskRate(iops: number, bps: number): void;
  /** `POST /disk-share`: the VM's share of a contended host disk, per second (0: none; already checked). */
  setDiskShare(iops: number, bps: number): void;
  /**
   * `GET /screenshot`: what the display shows, as a PNG (`png`: base64) of `width` x
   * `height` pixels. Throw ControlHttpError(409) when the VM has no display or the guest
   * shows nothing on it.
   */
  screenshot(): { width: number; height: number; png: string };
  /**
   * `POST /send-key`: press key codes `keys` (Linux codes, checked) in order, then release
   * them in reverse, on the display's keyboard. Throw ControlHttpError(409) without a display.
   */
  sendKeys(keys: number[]): void;
  /** `GET /console` upgrade: attach the raw stream as a console viewer. */
  attachConsole(stream: Duplex): void;
  /** True when the VM has a display, so that `GET /vnc` can be upgraded. */
  vncAvailable(): boolean;
  /** `GET /vnc` upgrade: serve the raw stream as a VNC viewer. Throw ControlHttpError(409) without a display. */
  attachVnc(stream: Duplex): void;
  /**
   * `POST /exec`: run `argv` in the guest through its agent; resolves with the exit
   * status. Throw ControlHttpError(409, 'agent_unavailable', ...) before any output when
   * the agent cannot run it.
   */
  exec(argv: string[], stdin: Uint8Array | undefined, out: ExecOutput): Promise<number>;
}

/** True when something accepts connections on the Unix socket `path`. */
export function probeSocket(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (ok: boolean) => { clearTimeout(t); s.destroy(); resolve(ok); };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, e: unknown): void {
  const err = e instanceof ControlHttpError ? e : new ControlHttpError(500, 'internal', e instanceof Error ? e.message : String(e));
  if (res.headersSent) { res.destroy(); return; }
  sendJson(res, err.status, { error: { code: err.code, message: err.message } });
}

/** Read and parse a JSON request body; an empty body is `{}`. */
function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY_BYTES) { reject(new ControlHttpError(413, 'too_large', `request body over ${MAX_BODY_BYTES} bytes`)); req.destroy(); return; }
      parts.push(d);
    });
    req.on('error', reject);
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8').trim();
      if (!text) { resolve({}); return; }
      try {
        const v: unknown = JSON.parse(text);
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
        resolve(v as Record<string, unknown>);
      } catch (e) {
        reject(new ControlHttpError(400, 'bad_request', `request body is not a JSON object: ${(e as Error).message}`));
      }
    });
  });
}

const ROUTES: Record<string, string> = {
  '/status': 'GET', '/stop': 'POST', '/kill': 'POST', '/pause': 'POST', '/resume': 'POST', '/net-rate': 'POST', '/memory': 'POST', '/memory-policy': 'POST', '/cpus': 'POST', '/disk-resize': 'POST', '/disk-attach': 'POST', '/disk-detach': 'POST', '/cdrom': 'POST', '/disk-rate': 'POST', '/disk-share': 'POST', '/console': 'GET', '/exec': 'POST', '/screenshot': 'GET', '/send-key': 'POST',
};

/** Upgradable paths and their `Upgrade:` protocol. */
const UPGRADES: Record<string, string> = { '/console': 'tsvisor-console', '/vnc': 'rfb' };

/** The HTTP server of the control channel. */
export class ControlServer {
  private readonly server: Server;
  private path: string | null = null;

  constructor(private readonly target: ControlTarget) {
    this.server = createServer((req, res) => { void this.handle(req, res); });
    this.server.requestTimeout = 0; // exec responses stream for as long as the command runs
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
  }

  /**
   * Listen on the Unix socket `path` with mode 0600. A socket file left by a dead
   * process is removed first; if a live server answers there, this throws
   * ControlHttpError(409, 'already_running').
   */
  async listen(path: string): Promise<void> {
    let exists = false;
    try { exists = lstatSync(path).isSocket(); } catch { /* none */ }
    if (exists) {
      if (await probeSocket(path)) throw new ControlHttpError(409, 'already_running', `${path}: another process is serving this VM`);
      unlinkSync(path);
    }
    const oldMask = process.umask(0o177); // the socket is created 0600: no window where others may connect
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(path, () => { this.server.off('error', reject); resolve(); });
      });
    } finally {
      process.umask(oldMask);
    }
    chmodSync(path, 0o600);
    this.path = path;
  }

  /** Stop accepting connections, drop open ones and remove the socket file. */
  async close(): Promise<void> {
    if (this.path) { try { unlinkSync(this.path); } catch { /* gone */ } this.path = null; }
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://vm');
      const route = url.pathname;
      const method = ROUTES[route];
      if (!method) throw new ControlHttpError(404, 'not_found', `no route ${route}`);
      if (req.method !== method) {
        res.setHeader('allow', method);
        throw new ControlHttpError(405, 'method_not_allowed', `${route} takes ${method}`);
      }
      switch (route) {
        case '/status':
          sendJson(res, 200, this.target.status());
          return;
        case '/screenshot':
          sendJson(res, 200, this.target.screenshot());
          return;
        case '/send-key': {
          const { keys } = await readJson(req);
          if (!Array.isArray(keys) || keys.length === 0 || keys.length > 16 || !keys.every((k) => Number.isInteger(k) && k >= 1 && k <= MAX_KEY_CODE)) {
            throw new ControlHttpError(400, 'bad_request', `keys must be 1 to 16 key codes from 1 to ${MAX_KEY_CODE}`);
          }
          this.target.sendKeys(keys as number[]);
          sendJson(res, 200, {});
          return;
        }
        case '/stop': {
          const body = await readJson(req);
          const t = body.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
          if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw new ControlHttpError(400, 'bad_request', 'timeoutMs must be a number >= 0');
          this.target.stop(t);
          sendJson(res, 202, this.target.status());
          return;
        }
        case '/kill':
          await readJson(req).catch(() => ({}));
          res.on('finish', () => this.target.kill());
          sendJson(res, 202, {});
          return;
        case '/pause':
          await readJson(req);
          await this.target.pause();
          sendJson(res, 200, this.target.status());
          return;
        case '/resume':
          await readJson(req);
          await this.target.resume();
          sendJson(res, 200, this.target.status());
          return;
        case '/net-rate': {
          const body = await readJson(req);
          let mbit: number;
          try { mbit = checkNetRate(body.mbit); } catch (e) { throw new ControlHttpError(400, 'bad_request', (e as Error).message); }
          this.target.setNetRate(mbit);
          sendJson(res, 200, this.target.status());
          return;
        }
        case '/memory': {
          const body = await readJson(req);
          const bytes = body.bytes;
          if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes <= 0) throw new ControlHttpError(400, 'bad_request', 'bytes must be a positive whole number');
          await this.target.setMemory(bytes);
          sendJson(res, 200, this.target.status());
          return;
        }
        case '/memory-policy': {
          const body = await readJson(req);
          if (Object.keys(body).length === 0) {
            this.target.setMemoryPolicy(null);
          } else {
            const { minBytes, ceilingBytes, bufferPercent } = body;
            for (const [k, v] of Object.entries({ minBytes, ceilingBytes, bufferPercent })) {
              if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new ControlHttpError(400, 'bad_request', `${k} must be a positive whole number`);
            }
            this.target.setMemoryPolicy({ minBytes: minBytes as number, ceilingBytes: ceilingBytes as number, bufferPercent: bufferPercent as number });
          }
          sendJson(res, 200, this.target.status());
          return;
        }
        case '/cpus': {
          const body = await readJson(req);
          const count = body.count;
          if (typeof count !== 'number' || !Number.isInteger(count) || count <= 0) throw new ControlHttpError(400, 'bad_request', 'count must be a positive whole number');
          await this.target.setCpus(count);
          sendJson(res, 200, this.target.status());
          return;
        }
        case '/disk-resize': {
          const body = await readJson(req);
          const { index, bytes } = body;
          if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) throw new ControlHttpError(400, 'bad_request', 'index must be a disk number (0, 1, ...)');
          if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes <= 0) throw new ControlHttpError(400, 'bad_request', 'bytes must be a positive whole number');
          this.target.resizeDisk(index, bytes);
          sendJson(res, 200, this.target.status());
          return;
        }
        case '/disk-attach': {
          const body = await readJson(req);
          const { path, readonly } = body;
          if (typeof path !== 'string' || !path.startsWith('/') || path.includes('\0')) throw new ControlHttpError(400, 'bad_request', 'path must be an absolute file path');
          if (readonly !== undefined && typeof readonly !== 'boolean') throw new ControlHttpError(400, 'bad_request', 'readonly must be true or false');
          const device = await this.target.attachDisk(path, !!readonly);
          sendJson(res, 200, { device, status: this.target.status() });
          return;
        }
        case '/cdrom': {
          const body = await readJson(req);
          const { path, force } = body;
          if (path !== null && (typeof path !== 'string' || !path.startsWith('/') || path.includes('\0'))) throw new ControlHttpError(400, 'bad_request', 'path must be an absolute file path, or null to eject');
          if (force !== undefined && typeof force !== 'boolean') throw new ControlHttpError(400, 'bad_request', 'force must be true or false');
          this.target.setCdrom(path as string | null, !!force);
          sendJson(res, 200, this.target.status());
          return;
        }
        case '/disk-detach': {
          const body = await readJson(req);
          const { path, force } = body;
          if (typeof path !== 'string' || !path) throw new ControlHttpError(400, 'bad_request', 'path must be the path of one of the disks');
          if (force !== undefined && typeof force !== 'boolean') throw new ControlHttpError(400, 'bad_request', 'force must be true or false');
          await this.target.detachDisk(path, !!force);
          sendJson(res, 200, this.target.status());
          return;
        }
        case '/disk-rate':
        case '/disk-share': {
          const body = await readJson(req);
          let iops: number, bps: number;
          try {
            iops = checkDiskLimit(body.iops, 'iops');
            bps = checkDiskLimit(body.bps, 'bps');
          } catch (e) { throw new ControlHttpError(400, 'bad_request', (e as Error).message); }
          if (route === '/disk-rate') this.target.setDiskRate(iops, bps);
          else this.target.setDiskShare(iops, bps);
          sendJson(res, 200, this.target.status());
          return;
        }
        case '/console':
          throw new ControlHttpError(426, 'upgrade_required', 'GET /console needs "Connection: Upgrade" and "Upgrade: tsvisor-console"');
        case '/exec':
          await this.exec(await readJson(req), res);
          return;
      }
    } catch (e) {
      sendError(res, e);
    }
  }

  private async exec(body: Record<string, unknown>, res: ServerResponse): Promise<void> {
    const argv = body.argv;
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
      throw new ControlHttpError(400, 'bad_request', 'argv must be a non-empty array of strings');
    }
    let stdin: Uint8Array | undefined;
    if (body.stdin !== undefined) {
      if (typeof body.stdin !== 'string') throw new ControlHttpError(400, 'bad_request', 'stdin must be a base64 string');
      stdin = Buffer.from(body.stdin, 'base64');
    }
    let started = false;
    const emit = (ev: ExecEvent) => {
      if (!started) {
        started = true;
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      }
      if (!res.destroyed) res.write(JSON.stringify(ev) + '\n');
    };
    const b64 = (d: Uint8Array) => Buffer.from(d.buffer, d.byteOffset, d.length).toString('base64');
    try {
      const run = this.target.exec(argv as string[], stdin, {
        stdout: (d) => { if (d.length) emit({ stream: 'stdout', data: b64(d) }); },
        stderr: (d) => { if (d.length) emit({ stream: 'stderr', data: b64(d) }); },
      });
      // A refusal (agent not answering, VM paused, ...) comes at once and still gets its
      // own HTTP status; otherwise the 200 goes out now, so a caller waiting for headers
      // does not mistake a silent command (`sleep 60`) for a VM that does not answer.
      let settled = false;
      run.then(() => { settled = true; }, () => { settled = true; });
      await new Promise<void>((r) => setImmediate(r));
      if (!settled && !started) {
        started = true;
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
        res.flushHeaders();
      }
      const code = await run;
      emit({ exit: code });
    } catch (e) {
      if (!started) throw e; // still time for a proper error status
      emit({ error: e instanceof Error ? e.message : String(e) });
    }
    res.end();
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const reject = (status: number, code: string, message: string) => {
      const text = JSON.stringify({ error: { code, message } }) + '\n';
      socket.end(`HTTP/1.1 ${status} ${code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
    };
    socket.on('error', () => socket.destroy());
    const path = new URL(req.url ?? '/', 'http://vm').pathname;
    const protocol = UPGRADES[path];
    if (!protocol || req.method !== 'GET') { reject(404, 'not_found', `no upgrade on ${req.method} ${path}`); return; }
    if ((req.headers.upgrade ?? '').toLowerCase() !== protocol) {
      reject(400, 'bad_request', `expected "Upgrade: ${protocol}"`);
      return;
    }
    if (path === '/vnc' && !this.target.vncAvailable()) { reject(409, 'no_display', 'the VM has no display (--vram 0)'); return; }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${protocol}\r\nConnection: Upgrade\r\n\r\n`);
    if (head.length) socket.unshift(head); // input that came with the request
    try {
      if (path === '/vnc') this.target.attachVnc(socket);
      else this.target.attachConsole(socket);
    } catch (e) {
      socket.destroy(e as Error);
    }
  }
}
