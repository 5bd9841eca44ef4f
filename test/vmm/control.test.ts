/**
 * The VM process's control channel (control-api.ts) against a fake VM: the HTTP routes
 * of ControlServer, the client library, the console hub (scrollback, several viewers,
 * input, log rotation) and the configuration reader.
 */
import type { MemoryPolicy } from '../../src/vmm/memory-policy.js';
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { ControlServer, ControlHttpError, type ControlTarget, type ExecOutput } from '../../src/vmm/control.js';
import { ConsoleHub } from '../../src/vmm/console-hub.js';
import * as client from '../../src/vmm/control-client.js';
import type { VmProcessStatus } from '../../src/vmm/control-api.js';
import { checkVmConfig, VmConfigError } from '../../src/vmm/vm-config.js';
import { VmMemory, MemoryChangeError } from '../../src/vmm/memory.js';

/** A VM that only records what it was asked. */
class FakeVm implements ControlTarget {
  state: VmProcessStatus['state'] = 'running';
  agent = true;
  stops: number[] = [];
  kills = 0;
  netRate = 0;
  /** 1 GiB of RAM, 256 MiB given; no balloon driver (shrinking is refused). */
  memory = new VmMemory(1 << 30, 256 << 20);
  input: string[] = [];
  /** What a `silent` exec waits for before it ends (no output meanwhile). */
  silence: Promise<void> = Promise.resolve();
  readonly hub: ConsoleHub;
  constructor(logPath?: string) {
    this.hub = new ConsoleHub({ logPath, onInput: (b) => this.input.push(Buffer.from(b).toString()) });
  }
  status(): VmProcessStatus {
    return {
      name: 'fake', pid: process.pid, state: this.state, vcpus: 1, maxVcpus: 4, memoryBytes: this.memory.currentBytes, memory: this.memory.status(0), startedAt: 1,
      agent: this.agent, disks: [{ path: '/x.img', sizeBytes: this.diskSize, readBytes: 512, writtenBytes: 0 }],
      nics: [], netRateMbit: this.netRate, diskRate: { ...this.diskRate, throttled: 0, share: this.diskShare, ops: 0, bytes: 0, serviceMs: 0, waitMs: 0 }, ssh: null, display: null,
    };
  }
  stop(timeoutMs: number): void { this.stops.push(timeoutMs); this.state = 'stopping'; }
  kill(): void { this.kills++; }
  async pause(): Promise<void> {
    if (this.state !== 'running' && this.state !== 'paused') throw new ControlHttpError(409, 'invalid_state', 'no');
    this.state = 'paused';
  }
  async resume(): Promise<void> { if (this.state === 'paused') this.state = 'running'; }
  setNetRate(mbit: number): void { this.netRate = mbit; }
  diskRate = { iops: 0, bps: 0 };
  setDiskRate(iops: number, bps: number): void { this.diskRate = { iops, bps }; }
  diskShare = { iops: 0, bps: 0 };
  setDiskShare(iops: number, bps: number): void { this.diskShare = { iops, bps }; }
  cpus: number[] = [];
  diskSize = 1 << 20;
  resizeDisk(index: number, bytes: number): void {
    if (index !== 0 || bytes < this.diskSize) throw new ControlHttpError(400, 'bad_request', 'no');
    this.diskSize = bytes;
  }
  screen: { width: number; height: number; png: string } | null = { width: 2, height: 1, png: 'iVBOR' };
  screenshot(): { width: number; height: number; png: string } {
    if (!this.screen) throw new ControlHttpError(409, 'no_display', 'nothing shown');
    return this.screen;
  }
  display = true;
  vncAvailable(): boolean { return this.display; }
  attachVnc(stream: Duplex): void { stream.end('RFB 003.008\n'); }
  keys: number[][] = [];
  sendKeys(keys: number[]): void { this.keys.push(keys); }
  cdrom: Array<[string | null, boolean]> = [];
  setCdrom(path: string | null, force: boolean): void {
    if (path === '/locked.iso') throw new ControlHttpError(409, 'conflict', 'locked');
    this.cdrom.push([path, force]);
  }
  attached: Array<[string, boolean]> = [];
  detached: Array<[string, boolean]> = [];
  async attachDisk(path: string, readonly: boolean): Promise<string> {
    if (path === '/in/use') throw new ControlHttpError(409, 'conflict', 'busy');
    this.attached.push([path, readonly]);
    return 'vdb';
  }
  async detachDisk(path: string, force: boolean): Promise<void> {
    if (path !== '/images/data.qcow2') throw new ControlHttpError(400, 'bad_request', 'no such disk');
    this.detached.push([path, force]);
  }
  async setCpus(count: number): Promise<void> {
    if (count > 4) throw new ControlHttpError(400, 'bad_request', 'vcpus: at most 4');
    this.cpus.push(count);
  }
  async setMemory(bytes: number): Promise<void> {
    try { this.memory.set(bytes); } catch (e) { throw e instanceof MemoryChangeError ? new ControlHttpError(e.status, 'x', e.message) : e; }
  }
  setMemoryPolicy(policy: MemoryPolicy | null): void {
    try { this.memory.setPolicy(policy); } catch (e) { throw e instanceof MemoryChangeError ? new ControlHttpError(e.status, 'x', e.message) : e; }
  }
  attachConsole(stream: Duplex): void { this.hub.attach(stream); }
  async exec(argv: string[], stdin: Uint8Array | undefined, out: ExecOutput): Promise<number> {
    if (!this.agent) throw new ControlHttpError(409, 'agent_unavailable', 'no agent');
    if (argv[0] === 'boom') throw new Error('agent lost');
    if (argv[0] === 'silent') { await this.silence; return 0; }
    out.stdout(Buffer.from(`ran ${argv.join(' ')}\n`));
    if (stdin) out.stdout(stdin);
    out.stderr(Buffer.from('warn\n'));
    if (argv[0] === 'late-boom') throw new Error('agent lost late');
    return 3;
  }
}

/** Collects a stream's bytes; `until(s)` resolves once the text contains `s`. */
function collect(s: Duplex): { text: () => string; until: (needle: string, ms?: number) => Promise<void> } {
  let buf = '';
  const waiters: Array<() => void> = [];
  s.on('data', (d: Buffer) => { buf += d.toString('latin1'); waiters.forEach((w) => w()); });
  return {
    text: () => buf,
    until: (needle, ms = 3000) => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${JSON.stringify(needle)}; got ${JSON.stringify(buf.slice(-300))}`)), ms);
      const check = () => { if (buf.includes(needle)) { clearTimeout(t); resolve(); } };
      waiters.push(check);
      check();
    }),
  };
}

/** A raw request on the socket (for what the client library never sends). */
function raw(sock: string, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, method, path, headers }, (res) => {
      let b = '';
      res.on('data', (d) => { b += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('control channel', () => {
  let dir = '';
  let sock = '';
  let vm: FakeVm;
  let server: ControlServer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsvisor-control-'));
    sock = join(dir, 'vm.sock');
    vm = new FakeVm(join(dir, 'console.log'));
    server = new ControlServer(vm);
    await server.listen(sock);
  });
  after(async () => {
    await server.close();
    await vm.hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the socket is owner-only', () => {
    assert.equal(statSync(sock).mode & 0o777, 0o600);
  });

  test('GET /status', async () => {
    const s = await client.status(dir);
    assert.equal(s.name, 'fake');
    assert.equal(s.state, 'running');
    assert.deepEqual(s.disks, [{ path: '/x.img', sizeBytes: 1 << 20, readBytes: 512, writtenBytes: 0 }]);
  });

  test('pause and resume', async () => {
    assert.equal((await client.pause(dir)).state, 'paused');
    assert.equal((await client.status(dir)).state, 'paused');
    assert.equal((await client.resume(dir)).state, 'running');
  });

  test('POST /memory grows up to the RAM booted with; the rest is refused with the figures', async () => {
    const st = await client.setMemory(dir, 512 << 20);
    assert.equal(st.memoryBytes, 512 << 20);
    assert.deepEqual([st.memory.currentBytes, st.memory.maxBytes], [512 << 20, 1 << 30]);
    for (const [body, status, re] of [
      ['{"bytes": 2147483648}', 400, /above this VM's maximum of 1024 MiB/],
      ['{"bytes": 1000}', 400, /whole number of MiB/],
      ['{"bytes": -5}', 400, /positive/],
      ['{"bytes": 134217728}', 409, /balloon driver is not running/],
    ] as const) {
      const r = await raw(sock, 'POST', '/memory', body);
      assert.equal(r.status, status, body);
      assert.match(JSON.parse(r.body).error.message, re);
    }
    assert.equal(vm.memory.currentBytes, 512 << 20, 'nothing changed');
  });

  test('POST /disk-resize passes index and size on; malformed bodies are refused', async () => {
    assert.equal((await client.resizeDisk(dir, 0, 4 << 20)).disks[0].sizeBytes, 4 << 20);
    for (const body of ['{"index": -1, "bytes": 1}', '{"index": 0}', '{"index": 0, "bytes": 1.5}', '{"index": 1, "bytes": 8388608}']) {
      assert.equal((await raw(sock, 'POST', '/disk-resize', body)).status, 400, body);
    }
    assert.equal(vm.diskSize, 4 << 20);
  });

  test('POST /disk-attach and /disk-detach pass their bodies on; malformed ones are refused', async () => {
    assert.equal((await client.attachDisk(dir, '/images/data.qcow2', true)).device, 'vdb');
    for (const [body, status] of [['{"path": "rel/x"}', 400], ['{}', 400], ['{"path": "/x", "readonly": 1}', 400], ['{"path": "/in/use"}', 409]] as const) {
      assert.equal((await raw(sock, 'POST', '/disk-attach', body)).status, status, body);
    }
    assert.deepEqual(vm.attached, [['/images/data.qcow2', true]]);
    await client.detachDisk(dir, '/images/data.qcow2', true);
    for (const body of ['{"index": 0}', '{"path": ""}', '{"path": "/images/data.qcow2", "force": "yes"}', '{"path": "/other"}']) {
      assert.equal((await raw(sock, 'POST', '/disk-detach', body)).status, 400, body);
    }
    assert.deepEqual(vm.detached, [['/images/data.qcow2', true]]);
  });

  test('POST /cdrom passes an insert or an eject on; malformed bodies are refused', async () => {
    await client.setCdrom(dir, '/iso/b.iso', false);
    await client.setCdrom(dir, null, true);
    for (const [body, status] of [['{"path": "b.iso"}', 400], ['{}', 400], ['{"path": null, "force": 1}', 400], ['{"path": "/locked.iso"}', 409]] as const) {
      assert.equal((await raw(sock, 'POST', '/cdrom', body)).status, status, body);
    }
    assert.deepEqual(vm.cdrom, [['/iso/b.iso', false], [null, true]]);
  });

  test('GET /screenshot answers what the display shows, 409 without one', async () => {
    assert.deepEqual(await client.screenshot(dir), { width: 2, height: 1, png: 'iVBOR' });
    assert.equal((await raw(sock, 'POST', '/screenshot', '{}')).status, 405);
    vm.screen = null;
    assert.equal((await raw(sock, 'GET', '/screenshot')).status, 409);
  });

  test('POST /send-key passes key codes on; bad ones are refused', async () => {
    assert.equal((await raw(sock, 'POST', '/send-key', '{"keys": [29, 46]}')).status, 200);
    for (const body of ['{"keys": []}', '{"keys": [0]}', '{"keys": [300]}', '{"keys": "a"}', '{}']) {
      assert.equal((await raw(sock, 'POST', '/send-key', body)).status, 400, body);
    }
    assert.deepEqual(vm.keys, [[29, 46]]);
  });

  test('POST /cpus passes a positive count on; the rest is refused', async () => {
    await client.setCpus(dir, 3);
    assert.deepEqual(vm.cpus, [3]);
    for (const [body, status] of [['{"count": 0}', 400], ['{"count": 1.5}', 400], ['{"count": 9}', 400]] as const) {
      assert.equal((await raw(sock, 'POST', '/cpus', body)).status, status, body);
    }
    assert.deepEqual(vm.cpus, [3]);
  });

  test('POST /disk-rate sets the limits; bad ones are refused', async () => {
    assert.deepEqual((await client.setDiskRate(dir, 100, 1 << 20)).diskRate, { iops: 100, bps: 1 << 20, throttled: 0, share: { iops: 0, bps: 0 }, ops: 0, bytes: 0, serviceMs: 0, waitMs: 0 });
    for (const body of ['{"iops": -1}', '{"iops": 1.5}', '{"bps": "x"}']) assert.equal((await raw(sock, 'POST', '/disk-rate', body)).status, 400, body);
    assert.deepEqual(vm.diskRate, { iops: 100, bps: 1 << 20 });
    assert.equal((await raw(sock, 'POST', '/disk-share', '{"iops": 40, "bps": 0}')).status, 200);
    assert.deepEqual(vm.diskShare, { iops: 40, bps: 0 });
    assert.equal((await raw(sock, 'POST', '/disk-share', '{"iops": -4}')).status, 400);
  });

  test('POST /net-rate sets the cap; a bad rate is refused', async () => {
    assert.equal((await client.setNetRate(dir, 2.5)).netRateMbit, 2.5);
    assert.equal(vm.netRate, 2.5);
    const r = await raw(sock, 'POST', '/net-rate', '{"mbit": -1}');
    assert.equal(r.status, 400);
    assert.match(JSON.parse(r.body).error.message, /Mbit/);
    assert.equal(vm.netRate, 2.5);
  });

  test('errors: unknown route, wrong method, bad JSON, bad timeout, target errors', async () => {
    let r = await raw(sock, 'GET', '/nope');
    assert.equal(r.status, 404);
    assert.equal(JSON.parse(r.body).error.code, 'not_found');
    r = await raw(sock, 'POST', '/status');
    assert.equal(r.status, 405);
    r = await raw(sock, 'POST', '/exec', '{not json');
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).error.code, 'bad_request');
    r = await raw(sock, 'POST', '/stop', '{"timeoutMs": -1}');
    assert.equal(r.status, 400);
    r = await raw(sock, 'GET', '/console');
    assert.equal(r.status, 426);
    await assert.rejects(client.exec(dir, []), (e: client.ControlError) => e.code === 'bad_request' && e.status === 400);
    vm.state = 'booting';
    await assert.rejects(client.pause(dir), (e: client.ControlError) => e.code === 'invalid_state' && e.status === 409);
    vm.state = 'running';
  });

  test('GET /vnc upgrades to the VM\'s VNC server; 409 without a display; 400 for another protocol', async () => {
    const up = await client.upgradeVnc(dir);
    assert.ok('socket' in up, 'upgraded');
    const banner = await new Promise<string>((resolve) => {
      let got = up.head.toString('latin1');
      up.socket.on('data', (d: Buffer) => { got += d.toString('latin1'); });
      up.socket.on('end', () => resolve(got));
    });
    assert.equal(banner, 'RFB 003.008\n');
    vm.display = false;
    const none = await client.upgradeVnc(dir);
    assert.ok('response' in none && none.response.statusCode === 409, 'no display: 409');
    if ('response' in none) none.response.resume();
    vm.display = true;
    const r = await raw(sock, 'GET', '/vnc', undefined, { connection: 'Upgrade', upgrade: 'websocket' });
    assert.equal(r.status, 400);
    assert.match(JSON.parse(r.body).error.message, /Upgrade: rfb/);
  });

  test('POST /exec streams output and the exit status', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await client.exec(dir, ['echo', 'a b'], {
      stdout: (d) => out.push(Buffer.from(d).toString()),
      stderr: (d) => err.push(Buffer.from(d).toString()),
      stdin: Buffer.from('input\n'),
    });
    assert.equal(code, 3);
    assert.equal(out.join(''), 'ran echo a b\ninput\n');
    assert.equal(err.join(''), 'warn\n');
    // the wire format: one JSON event a line
    const r = await raw(sock, 'POST', '/exec', JSON.stringify({ argv: ['x'] }));
    const lines = r.body.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.at(-1), { exit: 3 });
    assert.deepEqual(lines[0], { stream: 'stdout', data: Buffer.from('ran x\n').toString('base64') });
  });

  test('POST /exec errors: agent unavailable (409), agent failing before or after output', async () => {
    vm.agent = false;
    await assert.rejects(client.exec(dir, ['true']), (e: client.ControlError) => e.code === 'agent_unavailable' && e.status === 409);
    vm.agent = true;
    await assert.rejects(client.exec(dir, ['boom']), (e: client.ControlError) => e.status === 500 && /agent lost/.test(e.message));
    const out: string[] = [];
    await assert.rejects(client.exec(dir, ['late-boom'], { stdout: (d) => out.push(Buffer.from(d).toString()) }),
      (e: client.ControlError) => e.code === 'exec_failed' && /late/.test(e.message));
    assert.equal(out.join(''), 'ran late-boom\n');
  });

  test('POST /exec of a silent command answers 200 at once, the exit status when it ends', async () => {
    let end!: () => void;
    vm.silence = new Promise((r) => { end = r; });
    const t0 = Date.now();
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = request({ socketPath: sock, method: 'POST', path: '/exec', headers: { 'content-type': 'application/json' } }, resolve);
      req.on('error', reject);
      req.end(JSON.stringify({ argv: ['silent'] }));
    });
    assert.equal(res.statusCode, 200, 'headers come while the command still runs');
    assert.ok(Date.now() - t0 < 2000);
    let body = '';
    res.on('data', (d) => { body += d; });
    const ended = new Promise((r) => res.on('end', r));
    end();
    await ended;
    assert.deepEqual(JSON.parse(body.trim()), { exit: 0 });
  });

  test('console: scrollback, then live output to several viewers; their input reaches the guest', async () => {
    vm.hub.output(Buffer.from('boot messages\r\nroot@fake:~# '));
    const a = await client.attachConsole(dir);
    const ca = collect(a);
    await ca.until('root@fake:~# ');
    const b = await client.attachConsole(dir);
    const cb = collect(b);
    await cb.until('boot messages\r\nroot@fake:~# ');
    a.write('echo hi\r');
    for (let i = 0; i < 100 && vm.input.join('') !== 'echo hi\r'; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(vm.input.join(''), 'echo hi\r');
    vm.hub.output(Buffer.from('echo hi\r\nhi\r\n'));
    await Promise.all([ca.until('hi\r\nhi\r\n'), cb.until('hi\r\nhi\r\n')]);
    // a viewer leaving does not disturb the others
    a.destroy();
    await new Promise((r) => setTimeout(r, 50));
    vm.hub.output(Buffer.from('more\r\n'));
    await cb.until('more\r\n');
    assert.equal(vm.hub.viewers, 1);
    b.end();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(vm.hub.viewers, 0);
    assert.match(readFileSync(join(dir, 'console.log'), 'utf8'), /boot messages[\s\S]*hi\r\nmore/);
  });

  test('POST /stop and POST /kill', async () => {
    await client.stop(dir, 1234);
    await client.stop(dir);
    assert.deepEqual(vm.stops, [1234, 30000]);
    await client.kill(dir);
    for (let i = 0; i < 100 && vm.kills === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(vm.kills, 1);
  });

  test('a second server on the same socket refuses to start', async () => {
    const other = new ControlServer(new FakeVm());
    await assert.rejects(other.listen(sock), (e: ControlHttpError) => e.code === 'already_running');
    assert.ok(existsSync(sock), 'the live socket stays');
  });
});

test('a stale socket is replaced; a missing one means not_running', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-control-'));
  try {
    await assert.rejects(client.status(dir), (e: client.ControlError) => e.code === 'not_running');
    const sock = join(dir, 'vm.sock');
    // a process that dies by SIGKILL leaves its socket file behind
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    assert.ok(statSync(sock).isSocket());
    await assert.rejects(client.status(dir), (e: client.ControlError) => e.code === 'not_running');
    const server = new ControlServer(new FakeVm());
    await server.listen(sock);
    assert.equal((await client.status(dir)).name, 'fake');
    await server.close();
    assert.ok(!existsSync(sock), 'close() removes the socket');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('console hub: scrollback keeps the last 64 KiB; the log rotates at its limit; floods are capped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-hub-'));
  try {
    const log = join(dir, 'console.log');
    writeFileSync(log, 'x'.repeat(900));
    const hub = new ConsoleHub({ logPath: log, maxLogBytes: 1000, scrollbackBytes: 64 << 10 });
    hub.output(Buffer.from('a'.repeat(200)));
    hub.flush();
    assert.equal(readFileSync(log, 'utf8'), 'a'.repeat(200));
    assert.equal(readFileSync(log + '.1', 'utf8'), 'x'.repeat(900));
    for (let i = 0; i < 100; i++) hub.output(Buffer.from(String(i % 10).repeat(1024)));
    const sb = hub.scrollback();
    assert.equal(sb.length, 64 << 10);
    assert.equal(sb.subarray(-1024).toString(), '9'.repeat(1024));
    assert.equal(statSync(log).size, 1000, 'a batch larger than the log keeps only its end');
    assert.equal(readFileSync(log, 'utf8'), '9'.repeat(1000));
    await hub.close();
    // a flood within one event-loop turn is capped, the overflow counted
    const small = new ConsoleHub({ maxPendingBytes: 4096, scrollbackBytes: 1 << 20 });
    for (let i = 0; i < 10; i++) small.output(Buffer.alloc(1000, 0x41 + i));
    assert.equal(small.droppedBytes, 10_000 - 4096);
    const kept = small.scrollback();
    assert.equal(kept.length, 4096);
    assert.equal(kept.subarray(0, 1000).toString(), 'A'.repeat(1000), 'the oldest output is kept, the overflow dropped');
    small.output(Buffer.from('after'));
    assert.equal(small.scrollback().subarray(-5).toString(), 'after', 'the next turn has room again');
    await small.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('VM configuration: a VmDefinition is accepted; bad ones are refused with a reason', () => {
  const good = {
    name: 'web-1', vcpus: 2, memoryBytes: 256 << 20, disks: [{ path: 'd.img', readonly: false }], cdrom: '/iso/x.iso',
    cpuWeight: 100, cpuCap: 0, restart: 'no', createdAt: 1,
  };
  const c = checkVmConfig(good, '/vms/web-1');
  assert.equal(c.name, 'web-1');
  assert.deepEqual(c.disks, [{ path: '/vms/web-1/d.img', readonly: false }]);
  assert.equal(c.cdrom, '/iso/x.iso');
  assert.equal(c.kernel, undefined);
  for (const [bad, why] of [
    [{ ...good, name: 'Web' }, /name/],
    [{ ...good, vcpus: 0 }, /vcpus/],
    [{ ...good, memoryBytes: 1000 }, /memoryBytes/],
    [{ ...good, disks: [{ path: 3 }] }, /disks\[0\]/],
    [{ ...good, initrd: '/i' }, /initrd needs kernel/],
  ] as const) {
    assert.throws(() => checkVmConfig(bad, '/'), (e: Error) => e instanceof VmConfigError && why.test(e.message));
  }
});
