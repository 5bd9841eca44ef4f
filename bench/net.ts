/**
 * Bench section `net`: user-mode networking through passt, tsvisor against
 * `qemu-system-riscv64 -netdev stream` connected to its own passt, the same guest
 * (1 vCPU; 512 MiB of RAM more than the data, which the guest serves from RAM), the same
 * command, in the same run:
 *
 *   - host -> guest: a host HTTP server on 127.0.0.1 sends BENCH_NET_BYTES (default
 *     1 GiB) of pseudo-random data; the guest writes them to a disk (`wget -O /dev/vdb
 *     http://GATEWAY:PORT/`), whose sha256 is checked after the run; MB/s from the request
 *     until the guest, wget done, connects to a marker port;
 *   - guest -> host: busybox httpd in the guest, on a published port, serves the same
 *     bytes (read from a disk into a tmpfs first); the host GETs them and checks their
 *     sha256; MB/s of that GET. (Not `nc` from the guest: busybox nc writes 1 KiB at a
 *     time, and Debian 12's passt resets such a connection after some tens of MB, under
 *     QEMU as under tsvisor.)
 *   - request latency: the guest's httpd again; the host sends
 *     BENCH_NET_REQUESTS (default 1000) small GETs one after the other (each a new
 *     connection, as busybox httpd serves one request per connection); median and p90.
 *     A GET whose connection closes before an answer is tried again (up to
 *     MAX_RETRIED_GETS a side) and counted in the report, rather than ending the bench.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { chmodSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createHttpServer, request } from 'node:http';
import { Guests, QEMU, TSVISOR_CMD, log, median, pseudoRandomBytes, runGuest, sleep, table, type Outcome } from './common.js';
import { initrdWithCommand } from '../src/cli/run.js';
import { fileHeadHash } from '../test/e2e/helpers.js';
import { freeLoopbackPort } from '../src/vmm/network.js';

const MiB = 1 << 20;

/** Start `server` (TCP or HTTP) listening on a free port of 127.0.0.1; resolves to that port. */
function listenLoopback(server: Server): Promise<number> {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)));
}

/** A TCP server on 127.0.0.1; half-open connections stay open (the guest's nc half-closes at the end of its input). */
async function listen(onConn: (s: Socket) => void, what: string): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (s) => { s.on('error', (e) => log(`${what}: ${e.message}`)); onConn(s); });
  return { server, port: await listenLoopback(server) };
}

/** The 1 MiB chunks of the test data (seeded as the e2e tests seed theirs). */
function chunk(i: number): Buffer {
  return pseudoRandomBytes(MiB, 5000 + i);
}

/** One side's figures; `retried`: GETs that failed (the connection closed or reset before an answer) and were tried again. */
interface NetFigures { upMBs: number; downMBs: number; medianMs: number; p90Ms: number; retried: number }

/** Failed GETs a side may retry before its measurement fails. */
const MAX_RETRIED_GETS = 10;

/** One GET of `path` on 127.0.0.1:`port`: ms taken and the body's sha256 (`hash`) or length. */
function httpGet(port: number, path: string, hash = false): Promise<{ ms: number; bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const h = hash ? createHash('sha256') : null;
    let n = 0;
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.on('data', (d: Buffer) => { n += d.length; h?.update(d); });
      res.on('end', () => (res.statusCode === 200
        ? resolve({ ms: performance.now() - t0, bytes: n, sha256: h ? h.digest('hex') : '' })
        : reject(new Error(`HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Runs the three measurements against one guest started by `start(guest command, host port published to its port 80)`. */
async function measure(side: string, bytes: number, requests: number, sink: string, expect: string,
  start: (guestCmd: string[], httpPort: number) => Promise<Outcome>): Promise<NetFigures> {
  truncateSync(sink, 0);
  truncateSync(sink, bytes);
  let downSeconds = 0;
  let downStart = 0;
  const downServer = createHttpServer((req, res) => {
    downStart = performance.now();
    res.writeHead(200, { 'content-length': String(bytes), 'content-type': 'application/octet-stream' });
    let i = 0;
    const more = () => {
      while (i < bytes / MiB) {
        if (!res.write(chunk(i++))) { res.once('drain', more); return; }
      }
      res.end();
    };
    res.on('error', (e) => log(`host -> guest: ${e.message}`));
    more();
  });
  const downPort = await listenLoopback(downServer);
  // the guest connects here once wget has taken the last byte (the host's end() only means
  // the bytes left for passt's socket)
  const mark = await listen((s) => { if (downStart) downSeconds = (performance.now() - downStart) / 1000; s.end(); s.resume(); }, 'mark');
  // the guest asks here every second whether it may stop (503: not yet, 200: yes); not one
  // long-lived connection: passt resets a half-closed one after 60 s (its FIN_TIMEOUT),
  // which ended a guest while its GETs were being measured
  let done = false;
  const release = () => { done = true; };
  const hold = createHttpServer((req, res) => { res.writeHead(done ? 200 : 503, { 'content-length': '0' }).end(); });
  const holdPort = await listenLoopback(hold);
  const servers = [downServer, mark.server, hold];
  const httpPort = await freeLoopbackPort();
  const script = [
    'gw=$(ip route | awk \'/^default/ {print $3; exit}\')',
    `wget -q -O /dev/vdb http://$gw:${downPort}/`,
    `nc $gw ${mark.port} < /dev/null; sync`,
    // the data for the host, in RAM (tmpfs), served by httpd; then wait for the host
    `mkdir -p /www; mount -t tmpfs -o size=${bytes / MiB + 16}m www /www; cat /dev/vda > /www/blob; echo ok > /www/index.html; httpd -p 80 -h /www`,
    `until wget -q -O /dev/null http://$gw:${holdPort}/; do sleep 1; done`,
  ].join('; ');
  const latencies: number[] = [];
  let up = { ms: 0, bytes: 0, sha256: '' };
  let retried = 0;
  const get = async (what: string, path: string, hash = false) => {
    for (;;) {
      try {
        return await httpGet(httpPort, path, hash);
      } catch (e) {
        if (++retried > MAX_RETRIED_GETS) throw new Error(`${side}: ${what}: ${(e as Error).message} (${retried} failed GETs)`);
        log(`${side}: ${what}: ${(e as Error).message}; trying again`);
      }
    }
  };
  const run = start(['sh', '-c', script], httpPort);
  let ended: Outcome | null = null;
  let failed: Error | null = null;
  void run.then((o) => { ended = o; }, (e: Error) => { failed = e; });
  try {
    const deadline = performance.now() + 60 * 60_000;
    for (;;) {
      try { await httpGet(httpPort, '/index.html'); break; } catch { /* not yet */ }
      const o = ended as Outcome | null;
      if (failed) throw failed;
      if (o) throw new Error(`${side}: the guest run ended before its httpd answered (exit ${o.exitCode}): ${o.out.slice(-500)} ${o.stderr.slice(-500)}`);
      if (performance.now() > deadline) throw new Error(`${side}: the guest's httpd never answered`);
      await sleep(500);
    }
    up = await get('GET /blob', '/blob', true);
    for (let i = 0; i < requests; i++) latencies.push((await get(`GET /index.html (${i + 1} of ${requests})`, '/index.html')).ms);
  } catch (e) {
    // the guest keeps running until it is released: release it, then report with its output
    release();
    const o = await run.catch(() => undefined);
    for (const s of servers) s.close();
    const tail = o ? ` (the guest run: exit ${o.exitCode}; output: ${o.out.slice(-800)}; stderr: ${o.stderr.slice(-800)})` : '';
    throw new Error(`${(e as Error).message}${tail}`);
  } finally {
    release();
  }
  const o = await run.finally(() => { for (const s of servers) s.close(); });
  if (o.exitCode !== 0) throw new Error(`${side}: the guest run failed (exit ${o.exitCode}): ${o.stderr.slice(-500)}`);
  if (up.bytes !== bytes || up.sha256 !== expect) throw new Error(`${side}: guest -> host data differ (${up.bytes} bytes)`);
  if (fileHeadHash(sink, bytes) !== expect) throw new Error(`${side}: host -> guest data differ`);
  latencies.sort((a, b) => a - b);
  return {
    upMBs: bytes / 1e6 / (up.ms / 1000),
    downMBs: bytes / 1e6 / downSeconds,
    medianMs: median(latencies),
    p90Ms: latencies[Math.floor(latencies.length * 0.9)],
    retried,
  };
}

/** passt for QEMU: a Unix socket QEMU connects to, the published port. */
async function passtForQemu(httpPort: number): Promise<{ sock: string; dir: string; child: ChildProcess }> {
  // passt started as root binds its socket after switching to nobody: a folder it can reach and write
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-bench-passt-'));
  chmodSync(dir, 0o777);
  const sock = join(dir, 'sock');
  const child = spawn('passt', ['--foreground', '--quiet', '--one-off', '--socket', sock, '--tcp-ports', `127.0.0.1/${httpPort}:80`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  for (let i = 0; ; i++) {
    try { closeSync(openSync(sock, 'r')); break; } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') break; }
    if (i === 200 || child.exitCode !== null) throw new Error(`passt for QEMU did not make its socket ${sock}: ${err.trim()}`);
    await sleep(25);
  }
  return { sock, dir, child };
}

/** Run the section; returns the report lines. */
export async function benchNet(g: Guests, work: string): Promise<string[]> {
  const bytes = Math.max(1, Math.floor(Number(process.env.BENCH_NET_BYTES ?? 1024 * MiB) / MiB)) * MiB;
  const memory = `${bytes / MiB + 512}M`;
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
    ...TSVISOR_CMD, 'run', '--memory', memory, '--disk', `${source},readonly`, '--disk', sink, '-p', `127.0.0.1:${port}:80`, '--', ...cmd,
  ], { filterMarker: false }));
  let q: NetFigures | undefined;
  if (g.haveQemu) {
    log(`net: ${QEMU} -netdev stream to passt`);
    q = await measure('QEMU', bytes, requests, sink, expect, async (cmd, port) => {
      const p = await passtForQemu(port);
      const initrd = join(work, 'net-qemu-initrd');
      writeFileSync(initrd, initrdWithCommand(readFileSync(g.img.initrd), cmd));
      try {
        return await runGuest(QEMU, [
          '-machine', 'virt', '-cpu', g.qemuCpu, '-nographic', '-m', memory, '-smp', '1', '-bios', 'default', '-no-reboot',
          '-kernel', g.img.kernel, '-initrd', initrd, '-append', g.bootargs,
          '-drive', `file=${source},format=raw,if=none,id=vd0,readonly=on`, '-device', 'virtio-blk-device,drive=vd0',
          '-drive', `file=${sink},format=raw,if=none,id=vd1`, '-device', 'virtio-blk-device,drive=vd1',
          '-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${p.sock}`, '-device', 'virtio-net-device,netdev=n0',
        ], { filterMarker: true });
      } finally {
        p.child.kill('SIGTERM');
        rmSync(p.dir, { recursive: true, force: true });
        rmSync(initrd, { force: true });
      }
    });
  }
  rmSync(source, { force: true });
  rmSync(sink, { force: true });
  return [
    ...g.header(`user-mode networking through passt, 1 vCPU, ${memory}iB; ${bytes / MiB} MiB each way, sha256 checked; ${requests} GETs`),
    ...table([
      ['guest -> host TCP, MB/s (higher is better)', t.upMBs, q?.upMBs],
      ['host -> guest TCP, MB/s (higher is better)', t.downMBs, q?.downMBs],
    ], 'MB/s', 1),
    ...table([
      ['HTTP GET to the guest, median', t.medianMs, q?.medianMs],
      ['HTTP GET to the guest, 90th percentile', t.p90Ms, q?.p90Ms],
    ], 'ms', 2),
    `GETs that failed (closed before an answer) and were tried again: tsvisor ${t.retried}${q ? `, QEMU ${q.retried}` : ''}`,
  ];
}
