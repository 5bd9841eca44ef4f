/**
 * Bench section `net`: user-mode networking through passt, tsvisor against
 * `qemu-system-riscv64 -netdev stream` connected to its own passt, the same default
 * guest (1 vCPU, 512 MiB), the same command, in the same run:
 *
 *   - guest -> host: the guest sends BENCH_NET_BYTES (default 128 MiB) of pseudo-random
 *     data from a disk (`nc GATEWAY PORT < /dev/vda`) to a host server on 127.0.0.1,
 *     which checks its sha256; MB/s from the first byte to the end of the stream;
 *   - host -> guest: a host HTTP server sends as many bytes; the guest writes them to a
 *     disk (`wget -O /dev/vdb http://GATEWAY:PORT/`), whose sha256 is checked after the
 *     run; MB/s from the request to the last byte taken;
 *   - request latency: busybox httpd in the guest on a published port; the host sends
 *     BENCH_NET_REQUESTS (default 1000) small GETs one after the other (each a new
 *     connection, as busybox httpd serves one request per connection); median and p90.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createHttpServer, request } from 'node:http';
import { Guests, QEMU, TSVISOR_BIN, log, median, pseudoRandomBytes, runGuest, sleep, table, type Outcome } from './common.js';
import { initrdWithCommand } from '../src/cli/run.js';

const MiB = 1 << 20;

/** A TCP port on 127.0.0.1 that was free a moment ago. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

function listen(onConn: (s: Socket) => void, what: string): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => { s.on('error', (e) => log(`${what}: ${e.message}`)); onConn(s); });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, port: (server.address() as { port: number }).port })));
}

/** The 1 MiB chunks of the test data (seeded as the e2e tests seed theirs). */
function chunk(i: number): Buffer {
  return pseudoRandomBytes(MiB, 5000 + i);
}

/** sha256 of the first `bytes` bytes of a file. */
function fileHead(path: string, bytes: number): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(MiB);
  try {
    for (let at = 0; at < bytes;) {
      const n = readSync(fd, buf, 0, Math.min(MiB, bytes - at), at);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
      at += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** One side's figures. */
interface NetFigures { upMBs: number; downMBs: number; medianMs: number; p90Ms: number }

/** Runs the three measurements against one guest started by `start(port for the guest's httpd)`. */
async function measure(side: string, bytes: number, requests: number, sink: string, expect: string,
  start: (guestCmd: string[], httpPort: number) => Promise<Outcome>): Promise<NetFigures> {
  truncateSync(sink, 0);
  truncateSync(sink, bytes);
  let upSeconds = 0;
  let upHash = '';
  const up = await listen((s) => {
    const h = createHash('sha256');
    let t0 = 0;
    let n = 0;
    s.on('data', (d: Buffer) => { if (!t0) t0 = performance.now(); n += d.length; h.update(d); });
    s.on('end', () => { upSeconds = (performance.now() - t0) / 1000; upHash = n === bytes ? h.digest('hex') : `short: ${n} bytes`; s.end(); });
  }, 'guest -> host');
  let downSeconds = 0;
  const downServer = createHttpServer((req, res) => {
    const t0 = performance.now();
    res.writeHead(200, { 'content-length': String(bytes), 'content-type': 'application/octet-stream' });
    let i = 0;
    const more = () => {
      while (i < bytes / MiB) {
        if (!res.write(chunk(i++))) { res.once('drain', more); return; }
      }
      res.end(() => { downSeconds = (performance.now() - t0) / 1000; });
    };
    res.on('error', (e) => log(`host -> guest: ${e.message}`));
    more();
  });
  await new Promise<void>((r) => downServer.listen(0, '127.0.0.1', () => r()));
  const down = { server: downServer, port: (downServer.address() as { port: number }).port };
  let release: () => void = () => {};
  const released = new Promise<void>((r) => { release = r; });
  const hold = await listen((s) => { void released.then(() => s.end()); s.resume(); }, 'hold');
  const httpPort = await freePort();
  const script = [
    'gw=$(ip route | awk \'/^default/ {print $3; exit}\')',
    `nc $gw ${up.port} < /dev/vda`,
    `wget -q -O /dev/vdb http://$gw:${down.port}/; sync`,
    'mkdir -p /www; echo ok > /www/index.html; httpd -p 80 -h /www',
    `nc $gw ${hold.port} < /dev/null > /dev/null`,
  ].join('; ');
  const latencies: number[] = [];
  const run = start(['sh', '-c', script], httpPort);
  try {
    // the guest's httpd comes up after both transfers
    const get = () => new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      const req = request({ host: '127.0.0.1', port: httpPort, path: '/', agent: false }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
    const deadline = performance.now() + 60 * 60_000;
    for (;;) {
      try { await get(); break; } catch { /* not yet */ }
      if (performance.now() > deadline) throw new Error(`${side}: the guest's httpd never answered`);
      await sleep(500);
    }
    for (let i = 0; i < requests; i++) latencies.push(await get());
  } finally {
    release();
  }
  const o = await run;
  up.server.close();
  down.server.close();
  hold.server.close();
  if (o.exitCode !== 0) throw new Error(`${side}: the guest run failed (exit ${o.exitCode}): ${o.stderr.slice(-500)}`);
  if (upHash !== expect) throw new Error(`${side}: guest -> host data differ (${upHash})`);
  if (fileHead(sink, bytes) !== expect) throw new Error(`${side}: host -> guest data differ`);
  latencies.sort((a, b) => a - b);
  return {
    upMBs: bytes / 1e6 / upSeconds,
    downMBs: bytes / 1e6 / downSeconds,
    medianMs: median(latencies),
    p90Ms: latencies[Math.floor(latencies.length * 0.9)],
  };
}

/** passt for QEMU: a Unix socket QEMU connects to, the published port. */
async function passtForQemu(work: string, httpPort: number): Promise<{ sock: string; child: ChildProcess }> {
  const sock = join(work, `passt-${httpPort}.sock`);
  rmSync(sock, { force: true });
  const child = spawn('passt', ['--foreground', '--quiet', '--one-off', '--socket', sock, '--tcp-ports', `127.0.0.1/${httpPort}:80`], { stdio: ['ignore', 'ignore', 'ignore'] });
  for (let i = 0; i < 200; i++) {
    try { closeSync(openSync(sock, 'r')); break; } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') break; }
    await sleep(25);
  }
  return { sock, child };
}

/** Run the section; returns the report lines. */
export async function benchNet(g: Guests, work: string): Promise<string[]> {
  const bytes = Math.max(1, Math.floor(Number(process.env.BENCH_NET_BYTES ?? 128 * MiB) / MiB)) * MiB;
  const requests = Math.max(1, Math.floor(Number(process.env.BENCH_NET_REQUESTS ?? 1000)));
  const source = join(work, 'net-source.img');
  const sink = join(work, 'net-sink.img');
  log(`writing ${bytes / MiB} MiB of test data`);
  const h = createHash('sha256');
  const fd = openSync(source, 'w');
  for (let i = 0; i < bytes / MiB; i++) {
    const c = chunk(i);
    h.update(c);
    writeSync(fd, c);
  }
  closeSync(fd);
  writeFileSync(sink, '');
  const expect = h.digest('hex');

  log('net: tsvisor (passt through --fd)');
  const t = await measure('tsvisor', bytes, requests, sink, expect, (cmd, port) => runGuest(process.execPath, [
    TSVISOR_BIN, 'run', '--memory', '512M', '--disk', `${source},readonly`, '--disk', sink, '-p', `127.0.0.1:${port}:80`, '--', ...cmd,
  ], { filterMarker: false }));
  let q: NetFigures | undefined;
  if (g.haveQemu) {
    log(`net: ${QEMU} -netdev stream to passt`);
    q = await measure('QEMU', bytes, requests, sink, expect, async (cmd, port) => {
      const p = await passtForQemu(work, port);
      const initrd = join(work, 'net-qemu-initrd');
      writeFileSync(initrd, initrdWithCommand(readFileSync(g.img.initrd), cmd));
      try {
        return await runGuest(QEMU, [
          '-machine', 'virt', '-cpu', g.qemuCpu, '-nographic', '-m', '512M', '-smp', '1', '-bios', 'default', '-no-reboot',
          '-kernel', g.img.kernel, '-initrd', initrd, '-append', g.bootargs,
          '-drive', `file=${source},format=raw,if=none,id=vd0,readonly=on`, '-device', 'virtio-blk-device,drive=vd0',
          '-drive', `file=${sink},format=raw,if=none,id=vd1`, '-device', 'virtio-blk-device,drive=vd1',
          '-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${p.sock}`, '-device', 'virtio-net-device,netdev=n0',
        ], { filterMarker: true });
      } finally {
        p.child.kill('SIGTERM');
        rmSync(initrd, { force: true });
      }
    });
  }
  rmSync(source, { force: true });
  rmSync(sink, { force: true });
  return [
    ...g.header(`user-mode networking through passt, 1 vCPU, 512 MiB; ${bytes / MiB} MiB each way, sha256 checked; ${requests} GETs`),
    ...table([
      ['guest -> host TCP, MB/s (higher is better)', t.upMBs, q?.upMBs],
      ['host -> guest TCP, MB/s (higher is better)', t.downMBs, q?.downMBs],
    ], 'MB/s', 1),
    ...table([
      ['HTTP GET to the guest, median', t.medianMs, q?.medianMs],
      ['HTTP GET to the guest, 90th percentile', t.p90Ms, q?.p90Ms],
    ], 'ms', 2),
  ];
}
