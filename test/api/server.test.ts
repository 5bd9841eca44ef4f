/**
 * The REST API: routes, validation and error answers, the bearer token on TCP, the
 * OpenAPI document, exec and console proxying (against the fake VM process). A refused
 * request must leave the tsvisor home exactly as it was.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { statSync, readFileSync, rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { runDaemon, type Daemon } from '../../src/api/daemon.js';
import { ApiClient, parseListen } from '../../src/api/client.js';
import { noCgroups } from '../../src/host/cgroups.js';
import { FAKE_VMM, tempHome, treeFingerprint } from '../host/helpers.js';
import { tsvisor } from '../e2e/helpers.js';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { isoVolumeId, readSeedIso } from '../../src/vmm/cloud-init.js';

const MiB = 1024 * 1024;
const { root, paths } = tempHome('tsvisor-api-');
let daemon: Daemon;
let token = '';

interface Answer { status: number; body: any; headers: Record<string, unknown>; text: string }

function call(method: string, path: string, body?: string | object, opts: { tcp?: boolean; auth?: string } = {}): Promise<Answer> {
  const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const headers: Record<string, string | number> = { host: 'x' };
  if (data) { headers['content-type'] = 'application/json'; headers['content-length'] = data.length; }
  if (opts.auth) headers.authorization = opts.auth;
  const target = opts.tcp ? { host: daemon.tcp!.host, port: daemon.tcp!.port } : { socketPath: paths.socket };
  return new Promise((resolve, reject) => {
    const req = request({ ...target, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try { parsed = JSON.parse(text); } catch { parsed = undefined; }
        resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers, text });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

function assertError(a: Answer, status: number, code: string, message?: RegExp): void {
  assert.equal(a.status, status, a.text);
  assert.equal(typeof a.body?.error?.message, 'string', a.text);
  assert.equal(a.body.error.code, code, a.text);
  if (message) assert.match(a.body.error.message, message);
}

before(async () => {
  daemon = await runDaemon({
    paths, listen: '127.0.0.1:0', log: () => {},
    host: { vmmEntry: FAKE_VMM, cgroups: noCgroups('/none', 'test: cgroups off'), ensureImage: false, pollMs: 100, capacity: { cores: 2, memoryBytes: 1024 * MiB } },
  });
  token = readFileSync(paths.token, 'utf8').trim();
});

after(async () => {
  for (const v of daemon.host.list()) if (v.pid) { try { process.kill(v.pid, 'SIGKILL'); } catch { /* gone */ } }
  await daemon.close();
  rmSync(root, { recursive: true, force: true });
});

test('parseListen', () => {
  assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListen('[::1]:9'), { host: '::1', port: 9 });
  assert.deepEqual(parseListen(':7'), { host: '127.0.0.1', port: 7 });
  assert.throws(() => parseListen('nope'));
});

test('socket and token files are owner-only', () => {
  assert.equal(statSync(paths.socket).mode & 0o777, 0o600);
  assert.equal(statSync(paths.runDir).mode & 0o777, 0o700);
  assert.equal(statSync(paths.token).mode & 0o777, 0o600);
  assert.ok(token.length >= 32);
});

test('GET /openapi.json is an OpenAPI 3.1 document covering the API', async () => {
  const a = await call('GET', '/openapi.json');
  assert.equal(a.status, 200);
  assert.equal(a.body.openapi, '3.1.0');
  for (const p of ['/v1/host', '/v1/vms', '/v1/vms/{name}', '/v1/vms/{name}/start', '/v1/vms/{name}/stop', '/v1/vms/{name}/kill',
    '/v1/vms/{name}/pause', '/v1/vms/{name}/resume', '/v1/vms/{name}/restart', '/v1/vms/{name}/exec', '/v1/vms/{name}/console', '/v1/usage']) {
    assert.ok(a.body.paths[p], `path ${p} documented`);
  }
  const create = a.body.components.schemas.VmCreate;
  assert.equal(create.type, 'object');
  assert.deepEqual(create.required, ['name']);
  assert.equal(create.properties.memoryBytes.minimum, 64 * MiB);
  assert.ok(a.body.components.schemas.Error);
  assert.equal(a.body.paths['/v1/vms'].post.requestBody.content['application/json'].schema.$ref, '#/components/schemas/VmCreate');
  // served on TCP without a token too (it is public)
  assert.equal((await call('GET', '/openapi.json', undefined, { tcp: true })).status, 200);
});

describe('errors: JSON {error:{code,message}}, proper status, nothing written', () => {
  let fp = '';
  before(async () => {
    const a = await call('POST', '/v1/vms', { name: 'web', memoryBytes: 256 * MiB });
    assert.equal(a.status, 201, a.text);
    fp = treeFingerprint(paths.home);
  });
  const unchanged = () => assert.equal(treeFingerprint(paths.home), fp, 'the tsvisor home changed');

  test('unknown VM: 404 on every route', async () => {
    assertError(await call('GET', '/v1/vms/nosuch'), 404, 'not_found', /no VM named nosuch/);
    assertError(await call('POST', '/v1/vms/nosuch/start'), 404, 'not_found');
    assertError(await call('POST', '/v1/vms/nosuch/stop'), 404, 'not_found');
    assertError(await call('PATCH', '/v1/vms/nosuch', { cpuWeight: 5 }), 404, 'not_found');
    assertError(await call('DELETE', '/v1/vms/nosuch'), 404, 'not_found');
    assertError(await call('GET', '/v1/nothing'), 404, 'not_found');
    unchanged();
  });

  test('duplicate name: 409', async () => {
    assertError(await call('POST', '/v1/vms', { name: 'web' }), 409, 'already_exists', /already exists/);
    unchanged();
  });

  test('negative or odd memory, bad fields: 400', async () => {
    assertError(await call('POST', '/v1/vms', { name: 'neg', memoryBytes: -1 }), 400, 'invalid_argument', /memoryBytes/);
    assertError(await call('POST', '/v1/vms', { name: 'odd', memoryBytes: 100 * MiB + 1 }), 400, 'invalid_argument', /MiB/);
    assertError(await call('POST', '/v1/vms', { name: 'Bad Name' }), 400, 'invalid_argument', /name/);
    assertError(await call('POST', '/v1/vms', { name: 'x', memory: '1G' }), 400, 'invalid_argument', /unknown field "memory"/);
    assertError(await call('POST', '/v1/vms', { name: 'x', cpuWeight: 0 }), 400, 'invalid_argument', /cpuWeight/);
    assertError(await call('POST', '/v1/vms', { name: 'x', restart: 'sometimes' }), 400, 'invalid_argument', /restart/);
    assertError(await call('POST', '/v1/vms', { name: 'x', disks: [{ path: '/nonexistent.img' }] }), 400, 'invalid_argument', /no such file/);
    assertError(await call('POST', '/v1/vms'), 400, 'invalid_argument');
    assertError(await call('POST', '/v1/vms', { name: 'bd', bootDisk: 'relative.qcow2' }), 400, 'invalid_argument', /absolute/);
    assertError(await call('POST', '/v1/vms', { name: 'bd', bootDisk: '/nonexistent-boot.qcow2' }), 400, 'invalid_argument', /nonexistent-boot\.qcow2/);
    assertError(await call('POST', '/v1/vms', { name: 'bd', bootDisk: '/x.qcow2', image: 'debian' }), 400, 'invalid_argument', /image and bootDisk/);
    assertError(await call('POST', '/v1/vms', { name: 'bd', bootDisk: '/x.qcow2', kernel: '/k' }), 400, 'invalid_argument', /boot disk/);
    assertError(await call('PATCH', '/v1/vms/web', { memoryBytes: -5 }), 400, 'invalid_argument', /memoryBytes/);
    assertError(await call('PATCH', '/v1/vms/web', { cpuCap: 100_000 }), 400, 'invalid_argument', /cpuCap/);
    assertError(await call('POST', '/v1/vms/web/stop', { timeoutMs: 'soon' }), 400, 'invalid_argument', /timeoutMs/);
    // shared folders and cloud-init seeds
    assertError(await call('POST', '/v1/vms', { name: 'sh', shares: [{ path: root, tag: 'a,b' }] }), 400, 'invalid_argument', /tag/);
    assertError(await call('POST', '/v1/vms', { name: 'sh', shares: [{ path: '/nonexistent-dir', tag: 'data' }] }), 400, 'invalid_argument', /no such directory/);
    assertError(await call('POST', '/v1/vms', { name: 'sh', shares: [{ path: root, tag: 'd' }, { path: root, tag: 'd' }] }), 400, 'invalid_argument', /two shared folders/);
    assertError(await call('POST', '/v1/vms/web/shares', { path: root, tag: 'bad tag' }), 400, 'invalid_argument', /tag/);
    assertError(await call('DELETE', '/v1/vms/web/shares/nope'), 400, 'invalid_argument', /no shared folder tagged nope/);
    assertError(await call('POST', '/v1/vms', { name: 'ci', cloudInit: { userData: '#cloud-config\nusers: [\n' } }), 400, 'invalid_argument', /^cloud-init: user-data is not valid YAML/);
    assertError(await call('POST', '/v1/vms', { name: 'ci', cloudInit: { userData: 'echo hi' } }), 400, 'invalid_argument', /#cloud-config/);
    assertError(await call('POST', '/v1/vms', { name: 'ci', cloudInit: { userData: '#cloud-config\n', metaData: 'local-hostname: x' } }), 400, 'invalid_argument', /instance-id/);
    assertError(await call('POST', '/v1/vms', { name: 'ci', cdrom: '/x.iso', cloudInit: { userData: '#cloud-config\n' } }), 400, 'invalid_argument', /--cdrom or --cloud-init/);
    unchanged();
  });

  test('malformed percent-encoding in the path: 400', async () => {
    assertError(await call('GET', '/v1/vms/%E0'), 400, 'bad_request', /percent-encoding/);
    unchanged();
  });

  test('a client resetting an unauthorized upgrade does not take the daemon down', async () => {
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve) => {
        const s = connect(daemon.tcp!.port, daemon.tcp!.host, () => {
          s.write('GET /v1/vms/web/console HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tsvisor-console\r\n\r\n');
          setTimeout(() => { s.resetAndDestroy(); resolve(); }, 20 * i);
        });
        s.on('error', () => resolve());
      });
    }
    await new Promise((r) => setTimeout(r, 200));
    const ok = await call('GET', '/v1/host');
    assert.equal(ok.status, 200, 'the daemon still answers');
    unchanged();
  });

  test('malformed JSON: 400', async () => {
    assertError(await call('POST', '/v1/vms', '{"name": "x", '), 400, 'invalid_json', /malformed JSON/);
    assertError(await call('PATCH', '/v1/vms/web', 'not json'), 400, 'invalid_json');
    unchanged();
  });

  test('TCP without (or with a wrong) token: 401, and nothing happens', async () => {
    const a = await call('GET', '/v1/vms', undefined, { tcp: true });
    assertError(a, 401, 'unauthorized');
    assert.match(String(a.headers['www-authenticate']), /Bearer/);
    assertError(await call('POST', '/v1/vms', { name: 'sneaky' }, { tcp: true }), 401, 'unauthorized');
    assertError(await call('DELETE', '/v1/vms/web', undefined, { tcp: true, auth: 'Bearer wrong' }), 401, 'unauthorized');
    unchanged();
    const ok = await call('GET', '/v1/vms', undefined, { tcp: true, auth: `Bearer ${token}` });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.vms[0].name, 'web');
  });

  test('wrong state: 409; admission refusal: 409 with the numbers', async () => {
    assertError(await call('POST', '/v1/vms/web/stop'), 409, 'conflict', /not running/);
    unchanged();
    const big = await call('POST', '/v1/vms', { name: 'big', memoryBytes: 1024 * MiB });
    assert.equal(big.status, 201);
    assert.equal((await call('POST', '/v1/vms/web/start')).status, 200);
    const r = await call('POST', '/v1/vms/big/start');
    assertError(r, 409, 'insufficient_resources', /requested 1 GiB.*allocated 256 MiB.*limit 1 GiB/);
    assert.equal(r.body.error.details.requestedBytes, 1024 * MiB);
    assert.equal(r.body.error.details.allocatedBytes, 256 * MiB);
    assert.equal(r.body.error.details.limitBytes, 1024 * MiB);
    assert.equal((await call('GET', '/v1/vms/big')).body.state, 'stopped');
  });
});

describe('operations through the API', () => {
  test('host, list, info, patch, pause/resume, usage, top', async () => {
    const h = await call('GET', '/v1/host');
    assert.equal(h.status, 200);
    assert.equal(h.body.cores, 2);
    assert.equal(h.body.memory.allocatedBytes, 256 * MiB);
    assert.equal(h.body.cgroup.version, 'none');
    assert.deepEqual(h.body.warnings, ['test: cgroups off']);
    const l = await call('GET', '/v1/vms');
    assert.deepEqual(l.body.vms.map((v: { name: string }) => v.name), ['big', 'web']);
    const p = await call('PATCH', '/v1/vms/web', { cpuWeight: 300, cpuCap: 50, append: 'quiet' });
    assert.equal(p.status, 200, p.text);
    assert.equal(p.body.definition.cpuWeight, 300);
    assert.equal(JSON.parse(readFileSync(`${paths.vms}/web/config.json`, 'utf8')).cpuCap, 50);
    assert.equal((await call('POST', '/v1/vms/web/pause')).body.state, 'paused');
    assert.equal((await call('POST', '/v1/vms/web/resume')).body.state, 'running');
    const u = await call('GET', '/v1/usage');
    assert.equal(u.status, 200);
    assert.ok(u.body.vms.find((v: { name: string }) => v.name === 'web'));
    const t = await call('GET', '/v1/top');
    assert.equal(t.body.vms.find((v: { name: string }) => v.name === 'web').state, 'running');
  });

  test('shared folders of a stopped VM; a cloud-init seed disc in the drive', async () => {
    const a = await call('POST', '/v1/vms/big/shares', { path: root, tag: 'data', readonly: true });
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(a.body.definition.shares, [{ path: root, tag: 'data', readonly: true }]);
    assert.deepEqual(JSON.parse(readFileSync(`${paths.vms}/big/config.json`, 'utf8')).shares, [{ path: root, tag: 'data', readonly: true }]);
    assertError(await call('POST', '/v1/vms/big/shares', { path: root, tag: 'data' }), 400, 'invalid_argument', /already has a shared folder tagged data/);
    assert.equal((await call('DELETE', '/v1/vms/big/shares/data')).body.definition.shares, undefined);
    assertError(await call('POST', '/v1/vms/web/shares', { path: root, tag: 'data' }), 409, 'conflict', /is running: shared folders change while it is stopped/);
    const xorriso = spawnSync('xorriso', ['-version']).status === 0;
    if (!xorriso) return; // npm run test:deps installs it
    const c = await call('POST', '/v1/vms', { name: 'seeded', cloudInit: { userData: '#cloud-config\nruncmd: [date]\n' } });
    assert.equal(c.status, 201, c.text);
    const iso = `${paths.vms}/seeded/seed.iso`;
    assert.equal(c.body.definition.cdrom, iso);
    assert.equal(isoVolumeId(iso), 'cidata');
    assert.match(readSeedIso(iso)!.metaData, /^instance-id: iid-seeded-[0-9a-f]{8}\nlocal-hostname: seeded\n$/);
    assert.equal((await call('DELETE', '/v1/vms/seeded')).status, 200);
  });

  test('exec streams NDJSON from the VM process', async () => {
    const a = await call('POST', '/v1/vms/web/exec', { argv: ['uname', '-n'] });
    assert.equal(a.status, 200);
    assert.match(String(a.headers['content-type']), /ndjson/);
    const events = a.text.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(Buffer.from(events[0].data, 'base64').toString(), 'web\n');
    assert.deepEqual(events[events.length - 1], { exit: 0 });
    assertError(await call('POST', '/v1/vms/web/exec', { argv: [] }), 400, 'invalid_argument', /argv/);
    assertError(await call('POST', '/v1/vms/big/exec', { argv: ['true'] }), 409, 'conflict');
  });

  test('console upgrade is proxied both ways (and needs the token on TCP)', async () => {
    const c = new ApiClient({ socket: paths.socket });
    const { socket, head } = await c.upgrade('/v1/vms/web/console', 'tsvisor-console');
    let got = head.toString();
    socket.on('data', (b: Buffer) => { got += b.toString(); });
    socket.write('hello\n');
    const deadline = Date.now() + 3000;
    while (!got.includes('hello') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.match(got, /web login: hello/);
    socket.destroy();
    // TCP without token
    const raw = connect(daemon.tcp!.port, daemon.tcp!.host);
    let text = '';
    raw.on('data', (b: Buffer) => { text += b.toString(); });
    raw.write('GET /v1/vms/web/console HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tsvisor-console\r\n\r\n');
    await new Promise((r) => raw.on('close', r));
    assert.match(text, /^HTTP\/1\.1 401/);
    assert.match(text, /"code":"unauthorized"/);
  });

  test('web console: static files without credentials, never outside their folders', async () => {
    const page = await call('GET', '/', undefined, { tcp: true });
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
    assert.match(page.text, /<script type="module" src="\/web\/app\.js">/);
    for (const [path, type] of [['/web/app.js', /javascript/], ['/web/style.css', /css/], ['/web/vendor/novnc/core/rfb.js', /javascript/],
      ['/web/vendor/novnc/core/util/logging.js', /javascript/], ['/web/vendor/xterm/lib/xterm.mjs', /javascript/], ['/web/vendor/xterm/css/xterm.css', /css/],
      ['/web/vendor/uplot/uPlot.esm.js', /javascript/], ['/web/vendor/uplot/uPlot.min.css', /css/]] as const) {
      const a = await call('GET', path, undefined, { tcp: true });
      assert.equal(a.status, 200, path);
      assert.match(String(a.headers['content-type']), type, path);
    }
    for (const path of ['/web/../package.json', '/web/%2e%2e/package.json', '/web/vendor/novnc/..%2fpackage.json', '/web/vendor/novnc/package.json',
      '/web/vendor/xterm/../../../package.json', '/web/.hidden.js', '/web/nope.js', '/favicon.ico', '/etc/passwd']) {
      const a = await call('GET', path, undefined, { tcp: true });
      assert.equal(a.status, 404, `${path}: ${a.status} ${a.text.slice(0, 80)}`);
    }
  });

  test('web console session: the token as a SameSite cookie, accepted from the daemon\'s own origin only', async () => {
    const origin = `http://${daemon.tcp!.host}:${daemon.tcp!.port}`;
    const raw = (method: string, path: string, headers: Record<string, string>, body?: object): Promise<Answer> => new Promise((resolve, reject) => {
      const data = body ? Buffer.from(JSON.stringify(body)) : undefined;
      const req = request({ host: daemon.tcp!.host, port: daemon.tcp!.port, method, path, headers: { host: `${daemon.tcp!.host}:${daemon.tcp!.port}`, ...(data ? { 'content-type': 'application/json' } : {}), ...headers } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => { text += c; });
        res.on('end', () => { let b: unknown; try { b = JSON.parse(text); } catch { b = undefined; } resolve({ status: res.statusCode ?? 0, body: b, headers: res.headers, text }); });
      });
      req.on('error', reject);
      req.end(data);
    });
    assertError(await raw('POST', '/v1/session', { origin }, { token: 'nope' }), 401, 'unauthorized', /wrong token/);
    assertError(await raw('POST', '/v1/session', { origin: 'http://evil.example' }, { token }), 403, 'forbidden');
    assertError(await raw('POST', '/v1/session', { origin }, { token, extra: 1 }), 400, 'invalid_argument');
    const ok = await raw('POST', '/v1/session', { origin }, { token });
    assert.equal(ok.status, 204, ok.text);
    const setCookie = String(ok.headers['set-cookie']);
    assert.match(setCookie, new RegExp(`^tsvisor_token=${token}; Path=/; HttpOnly; SameSite=Strict`));
    const cookie = `tsvisor_token=${token}`;
    assert.equal((await raw('GET', '/v1/vms', { cookie })).status, 200, 'a read with the cookie');
    assert.equal((await raw('GET', '/v1/vms', { cookie, origin })).status, 200, 'from the own origin');
    assertError(await raw('GET', '/v1/vms', { cookie, origin: 'http://127.0.0.1:1' }), 401, 'unauthorized');
    assertError(await raw('GET', '/v1/vms', { cookie: 'tsvisor_token=wrong' }), 401, 'unauthorized');
    // a change needs X-Tsvisor-Request (a cross-origin page cannot send it without a preflight)
    assertError(await raw('POST', '/v1/vms/nope/start', { cookie, origin }, {}), 401, 'unauthorized');
    assertError(await raw('POST', '/v1/vms/nope/start', { cookie, origin, 'x-tsvisor-request': '1' }, {}), 404, 'not_found');
    const out = await raw('DELETE', '/v1/session', {});
    assert.equal(out.status, 204);
    assert.match(String(out.headers['set-cookie']), /^tsvisor_token=; .*Max-Age=0/);
  });

  test('web console WebSockets: the serial console and the VNC stream, with the cookie from the own origin only', async () => {
    const { WebSocket } = await import('ws');
    const base = `ws://${daemon.tcp!.host}:${daemon.tcp!.port}`;
    const origin = `http://${daemon.tcp!.host}:${daemon.tcp!.port}`;
    const open = (path: string, headers: Record<string, string>): Promise<{ ws: InstanceType<typeof WebSocket>; got: () => string } | { status: number }> => new Promise((resolve) => {
      const ws = new WebSocket(`${base}${path}`, { headers });
      let text = '';
      ws.on('message', (d: Buffer) => { text += d.toString('latin1'); });
      ws.on('open', () => resolve({ ws, got: () => text }));
      ws.on('unexpected-response', (_req, res) => { res.resume(); resolve({ status: res.statusCode ?? 0 }); });
      ws.on('error', () => { /* seen as unexpected-response */ });
    });
    const waitFor = async (got: () => string, want: RegExp) => {
      const deadline = Date.now() + 3000;
      while (!want.test(got()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.match(got(), want);
    };
    const cookie = `tsvisor_token=${token}`;
    const con = await open('/v1/vms/web/console', { cookie, origin });
    assert.ok('ws' in con, `console WebSocket opens: ${JSON.stringify(con)}`);
    con.ws.send(Buffer.from('typed\n'));
    await waitFor(con.got, /web login: typed\n/);
    con.ws.close();
    const vnc = await open('/v1/vms/web/vnc', { cookie, origin });
    assert.ok('ws' in vnc, 'VNC WebSocket opens');
    await waitFor(vnc.got, /^RFB 003\.008\n$/);
    vnc.ws.send(Buffer.from('RFB 003.008\n'));
    await waitFor(vnc.got, /^RFB 003\.008\nRFB 003\.008\n$/);
    vnc.ws.close();
    assert.deepEqual(await open('/v1/vms/web/vnc', { cookie, origin: 'http://evil.example' }), { status: 401 });
    assert.deepEqual(await open('/v1/vms/web/vnc', { origin }), { status: 401 });
    assert.deepEqual(await open('/v1/vms/web/vnc', { authorization: `Bearer ${token}`, origin: 'http://evil.example' }), { status: 403 });
    assert.deepEqual(await open('/v1/vms/nope/vnc', { cookie, origin }), { status: 404 });
    assert.deepEqual(await open('/v1/vms/web/screen', { cookie, origin }), { status: 404 });
    // tsvisor web: the daemon already listens on TCP, so its address is given
    const web = await call('POST', '/v1/daemon/web', {});
    assert.equal(web.status, 200, web.text);
    assert.equal(web.body.url, `${origin}/`);
    assertError(await call('POST', '/v1/daemon/web', { listen: 'nowhere' }), 400, 'invalid_argument');
  });

  test('stop, restart, kill, delete', async () => {
    const s = await call('POST', '/v1/vms/web/stop', { timeoutMs: 2000 });
    assert.equal(s.status, 200, s.text);
    assert.equal(s.body.state, 'stopped');
    assert.equal((await call('POST', '/v1/vms/web/restart', {})).body.state, 'running');
    assert.equal((await call('POST', '/v1/vms/web/kill')).body.state, 'stopped');
    assert.equal((await call('DELETE', '/v1/vms/web')).status, 200);
    assertError(await call('GET', '/v1/vms/web'), 404, 'not_found');
  });

  test('exec ends with an error event when the VM process dies during the command', async () => {
    assert.equal((await call('POST', '/v1/vms', { name: 'dying', memoryBytes: 128 * MiB })).status, 201);
    assert.equal((await call('POST', '/v1/vms/dying/start')).status, 200);
    const a = await call('POST', '/v1/vms/dying/exec', { argv: ['die'] }); // the fake VM process exits mid-stream
    assert.equal(a.status, 200);
    const events = a.text.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(Buffer.from(events[0].data, 'base64').toString(), 'dying\n');
    assert.match(events[events.length - 1].error, /VM process .*ended/);
  });
});

describe('the CLI against this daemon over TCP (TSVISOR_URL + token)', () => {
  const cliEnv = () => ({ TSVISOR_HOME: paths.home, XDG_RUNTIME_DIR: join(root, 'no-run'), TSVISOR_URL: `http://${daemon.tcp!.host}:${daemon.tcp!.port}` });

  test('errors are one line and a non-zero exit; success prints the VM', async () => {
    const miss = await tsvisor(['vm', 'info', 'nosuch'], { env: cliEnv() });
    assert.equal(miss.code, 1);
    assert.equal(miss.stderr, 'tsvisor: no VM named nosuch\n');
    const bad = await tsvisor(['vm', 'create', 'x', '--cpu-weight', 'lots'], { env: cliEnv() });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^tsvisor: invalid --cpu-weight "lots"/);
    const ok = await tsvisor(['vm', 'create', 'cli-made', '--memory', '128M', '--cpu-cap', '25', '--restart', 'always'], { env: cliEnv() });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'cli-made created (stopped)\n');
    const info = await tsvisor(['vm', 'info', 'cli-made', '--json'], { env: cliEnv() });
    const v = JSON.parse(info.stdout);
    assert.equal(v.definition.memoryBytes, 128 * MiB);
    assert.equal(v.definition.cpuCap, 25);
    assert.equal(v.definition.restart, 'always');
    const noToken = await tsvisor(['vm', 'list'], { env: { ...cliEnv(), TSVISOR_TOKEN: 'wrong' } });
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /^tsvisor: missing or wrong bearer token/);
    const list = await tsvisor(['vm', 'list'], { env: cliEnv() });
    assert.match(list.stdout, /^cli-made\s+stopped\s+1\s+128 MiB/m);
    assert.equal((await tsvisor(['vm', 'delete', 'cli-made'], { env: cliEnv() })).code, 0);
  });
});
