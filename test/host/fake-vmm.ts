/**
 * A stand-in VM process for the host daemon's tests: speaks the control-channel contract
 * (src/vmm/control-api.ts) on `<vmDir>/vm.sock` without booting anything.
 *
 *   node dist/test/host/fake-vmm.js <vmDir>
 *
 * Environment: FAKE_VMM_BUSY=1 burns CPU on one worker thread per vCPU (like harts);
 * FAKE_VMM_CRASH_MS=N exits with status 3 after N ms, leaving its socket behind;
 * FAKE_VMM_DISK_RATE=N pretends the guest reads and writes N bytes/s on each disk;
 * FAKE_VMM_POWEROFF_MS=N exits with status 0 N ms after its first request (the guest powered
 * off by itself once the daemon saw it start, however loaded the host is);
 * FAKE_VMM_STOP_MS=N takes N ms (default 100) to power off after POST /stop.
 * Memory: the guest's working set is the number of MiB in `<vmDir>/fake-working-set`
 * (default 100); under POST /memory-policy the real policy (src/vmm/memory-policy.ts)
 * moves its memory every 100 ms, and GET /status reports it as the VM process does.
 * Disks: POST /disk-attach adds one (the guest's name is the next vdX); POST /disk-detach
 * refuses, as a guest with it mounted does, a disk whose path is in `<vmDir>/fake-mounted`.
 * Disk meter (disk-arbiter.ts): with FAKE_VMM_DISK_IOPS=N the guest keeps its disks busy
 * all the time asking N requests/s of 4 KiB, one at a time, held to the share POST
 * /disk-share sets; each takes the ms in `<vmDir>/fake-disk-latency` (default 1) to serve.
 * CD-ROM: GET /status reports the definition's disc, the tray locked while
 * `<vmDir>/fake-tray-locked` exists (a guest that mounted it).
 * Run without arguments (as the test runner does with every file), it does nothing.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { DEFAULT_BUFFER_PERCENT, defaultMinMemory, newPolicyState, policyTarget, type MemoryPolicy, type PolicyState } from '../../src/vmm/memory-policy.js';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

const vmDir = process.argv[2];
if (vmDir) main(vmDir);

function main(dir: string): void {
  const def = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as {
    name: string; vcpus: number; memoryBytes: number; disks: Array<{ path: string }>; maxMemoryBytes?: number; maxVcpus?: number; cdrom?: string;
    memoryPolicy?: string; minMemoryBytes?: number; memoryBufferPercent?: number;
  };
  let memoryBytes = def.memoryBytes;
  const maxBytes = def.maxMemoryBytes ?? def.memoryBytes;
  const MiB = 1024 * 1024;
  const workingSet = () => {
    try { return Number(readFileSync(join(dir, 'fake-working-set'), 'utf8')) * MiB; } catch { return 100 * MiB; }
  };
  let policy: MemoryPolicy | null = def.memoryPolicy === 'dynamic'
    ? { minBytes: def.minMemoryBytes ?? defaultMinMemory(def.memoryBytes), ceilingBytes: def.memoryBytes, bufferPercent: def.memoryBufferPercent ?? DEFAULT_BUFFER_PERCENT }
    : null;
  const policyState: PolicyState = newPolicyState();
  const guest = () => ({ totalBytes: memoryBytes, availableBytes: Math.max(0, memoryBytes - workingSet()), allocStalls: 0 });
  setInterval(() => {
    if (policy) memoryBytes = policyTarget(policy, memoryBytes, guest(), policyState, Date.now());
  }, 100).unref();
  const memoryStatus = () => ({
    currentBytes: memoryBytes, maxBytes, balloonBytes: maxBytes - memoryBytes, returnedBytes: 0, rssBytes: 0,
    guest: { ...guest(), atMs: Date.now() }, ...(policy ? { policy } : {}),
  });
  const sock = join(dir, 'vm.sock');
  const startedAt = Date.now();
  const diskRate = Number(process.env.FAKE_VMM_DISK_RATE ?? 0);
  const diskDemand = Number(process.env.FAKE_VMM_DISK_IOPS ?? 0);
  const meter = { ops: 0, bytes: 0, serviceMs: 0, waitMs: 0 };
  let share = { iops: 0, bps: 0 };
  let meteredAt = Date.now();
  const diskMeter = () => {
    const now = Date.now();
    const ms = now - meteredAt;
    meteredAt = now;
    if (diskDemand > 0) {
      let latency = 1;
      try { latency = Number(readFileSync(join(dir, 'fake-disk-latency'), 'utf8')) || 1; } catch { /* default */ }
      // one request at a time: at most 1000/latency a second
      const ops = (Math.min(diskDemand, share.iops || Infinity, 1000 / latency) * ms) / 1000;
      meter.ops += ops;
      meter.bytes += ops * 4096;
      meter.serviceMs += ops * latency;
      meter.waitMs += Math.max(0, ms - ops * latency);
    }
    return { iops: 0, bps: 0, throttled: 0, share, ...meter };
  };
  let state: 'booting' | 'running' | 'paused' | 'stopping' = 'running';
  const workers: Worker[] = [];
  if (process.env.FAKE_VMM_BUSY === '1') {
    for (let i = 0; i < Math.max(1, def.vcpus); i++) {
      workers.push(new Worker('let x = 0; for (;;) { x = (x * 1103515245 + 12345) | 0; }', { eval: true }));
    }
  }
  const exit = (code: number) => {
    rmSync(sock, { force: true });
    for (const w of workers) void w.terminate();
    process.exit(code);
  };
  const poweroff = Number(process.env.FAKE_VMM_POWEROFF_MS ?? 0);
  let poweroffArmed = false;
  const server = createServer((req, res) => {
    if (poweroff > 0 && !poweroffArmed) {
      poweroffArmed = true;
      setTimeout(() => exit(0), poweroff);
    }
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
      const t = (Date.now() - startedAt) / 1000;
      switch (`${req.method} ${req.url}`) {
        case 'GET /status':
          return json(200, {
            name: def.name, pid: process.pid, state, vcpus: def.vcpus, memoryBytes, startedAt, agent: true, memory: memoryStatus(), diskRate: diskMeter(),
            disks: def.disks.map((d) => ({ path: d.path, readBytes: Math.floor(t * diskRate), writtenBytes: Math.floor(t * diskRate / 2) })),
            cdrom: { path: def.cdrom ?? null, locked: existsSync(join(dir, 'fake-tray-locked')) },
          });
        case 'POST /stop':
          state = 'stopping';
          json(202, {});
          setTimeout(() => exit(0), Number(process.env.FAKE_VMM_STOP_MS ?? 100));
          return;
        case 'POST /kill':
          json(202, {});
          setTimeout(() => exit(0), 10);
          return;
        case 'POST /memory': // a guest that takes anything up to the RAM it booted with
          if (body.bytes > (def.maxMemoryBytes ?? def.memoryBytes)) return json(400, { error: { code: 'bad_request', message: 'above the maximum' } });
          memoryBytes = body.bytes;
          return json(200, { name: def.name, pid: process.pid, state, vcpus: def.vcpus, memoryBytes, startedAt, agent: true, disks: [] });
        case 'POST /memory-policy':
          policy = Object.keys(body).length ? { ...body, ceilingBytes: Math.min(body.ceilingBytes, maxBytes) } : null;
          return json(200, { name: def.name, pid: process.pid, state, vcpus: def.vcpus, memoryBytes, startedAt, agent: true, memory: memoryStatus(), disks: [] });
        case 'POST /disk-share':
          diskMeter();
          share = { iops: body.iops, bps: body.bps };
          return json(200, { name: def.name, pid: process.pid, state, vcpus: def.vcpus, memoryBytes, startedAt, agent: true, disks: [] });
        case 'POST /disk-attach':
          def.disks.push({ path: body.path });
          return json(200, { device: `vd${String.fromCharCode(96 + def.disks.length)}`, status: { name: def.name, pid: process.pid, state, vcpus: def.vcpus, memoryBytes, startedAt, agent: true, disks: def.disks } });
        case 'POST /disk-detach': {
          let mounted = '';
          try { mounted = readFileSync(join(dir, 'fake-mounted'), 'utf8').trim(); } catch { /* none */ }
          if (mounted === body.path && !body.force) return json(409, { error: { code: 'conflict', message: '/dev/vdb is mounted at /data in the guest: unmount it first (or detach with --force)' } });
          def.disks = def.disks.filter((d) => d.path !== body.path);
          return json(200, { name: def.name, pid: process.pid, state, vcpus: def.vcpus, memoryBytes, startedAt, agent: true, disks: def.disks });
        }
        case 'POST /cpus': // a guest whose agent refuses every change
          return json(409, { error: { code: 'conflict', message: 'the guest refused to bring its vCPUs to ' + body.count } });
        case 'POST /pause': state = 'paused'; return json(200, {});
        case 'POST /resume': state = 'running'; return json(200, {});
        case 'POST /exec': {
          const argv: string[] = body.argv ?? [];
          res.writeHead(200, { 'content-type': 'application/x-ndjson' });
          const line = (o: unknown) => res.write(JSON.stringify(o) + '\n');
          if (argv[0] === 'die') { // the VM process dies in the middle of a command (kill -9)
            line({ stream: 'stdout', data: Buffer.from('dying\n').toString('base64') });
            setTimeout(() => process.exit(9), 50);
            return;
          }
          if (argv[0] === 'uname' && argv[1] === '-n') line({ stream: 'stdout', data: Buffer.from(def.name + '\n').toString('base64') });
          else if (argv[0] === 'echo') line({ stream: 'stdout', data: Buffer.from(argv.slice(1).join(' ') + '\n').toString('base64') });
          const m = argv[0] === 'sh' && argv[1] === '-c' ? /^exit (\d+)$/.exec(argv[2] ?? '') : null;
          line({ exit: m ? Number(m[1]) : 0 });
          res.end();
          return;
        }
        default:
          return json(404, { error: { code: 'not_found', message: `no route ${req.method} ${req.url}` } });
      }
    });
  });
  server.on('upgrade', (req, socket) => {
    if (req.url === '/vnc') {
      // a VNC server that says its version, then echoes
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: rfb\r\n\r\nRFB 003.008\n');
      socket.on('data', (b: Buffer) => socket.write(b));
      return;
    }
    if (req.url !== '/console') { socket.destroy(); return; }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: tsvisor-console\r\n\r\n');
    socket.write(`${def.name} login: `);
    socket.on('data', (b: Buffer) => socket.write(b)); // echo, like a terminal
  });
  rmSync(sock, { force: true });
  server.listen(sock);
  process.on('SIGTERM', () => exit(0));
  const crash = Number(process.env.FAKE_VMM_CRASH_MS ?? 0);
  if (crash > 0) setTimeout(() => process.exit(3), crash);
}
