/**
 * Networking end to end, as a user drives it, with the guest's own Linux virtio_net
 * driver and a real passt on the host:
 *
 *   - `tsvisor run -p 127.0.0.1:P:80 -- ...`: busybox httpd in the guest answers on the
 *     host's port P; the guest fetches 1 MiB from a host server on 127.0.0.1 through its
 *     gateway address (sha256 compared) and resolves the Debian mirror's host name (a name
 *     the host resolves through DNS); it got its address, route and MTU by DHCP at boot;
 *   - bad input: a published port already in use, a malformed `--publish`, `--network none`;
 *   - the daemon: `vm create -p` with a port in use fails to start with one line naming the
 *     port and leaves the VM stopped; with a free port the guest's server answers;
 *   - virtual networks: on `network create lan`, VM b fetches 100 MiB from VM a by name
 *     (sha256 of what b wrote to its disk) while VM d, a hostile guest, sends frames with a
 *     forged source MAC, a broadcast flood and 65000-byte frames; the drops are counted and
 *     the transfer completes; VM c on another network reaches neither, even with an address
 *     in lan's subnet; after a daemon restart the VMs reconnect and reach each other again;
 *     the metering ledger counts the 100 MiB at both ends, and a bandwidth cap set on the
 *     running VM holds a download to its rate;
 *   - tap (as root): `--network tap:IFNAME` on a tap device with an address on the host;
 *     the guest pings the host through it; a missing device is one line of error.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { buildGuestProgramDisk, bytesHash, fileHeadHash, describeRun, pseudoRandomBytes, results, tsvisor, withVmLogs, type RunResult } from './helpers.js';
import { findDebianMirror } from '../../src/images/sources.js';
import { freeLoopbackPort } from '../../src/vmm/network.js';

const T = 5 * 60_000;
let root = '';
let env: Record<string, string> = {};
const BLOB = pseudoRandomBytes(1 << 20, 7);

/** GET http://127.0.0.1:port/ until it answers `want` (passt accepts before the guest listens). */
async function pollPage(port: number, want: RegExp, ms: number, stop?: AbortSignal): Promise<string> {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline && !stop?.aborted) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) });
      last = await r.text();
      if (want.test(last)) return last;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`http://127.0.0.1:${port}/ did not answer ${want} in ${ms} ms (last: ${last})`);
}

before(() => {
  root = mkdtempSync(join(tmpdir(), 'tsvisor-e2e-net-'));
  const home = join(root, 'home');
  mkdirSync(home);
  mkdirSync(join(root, 'run'), { mode: 0o700 });
  const cache = [process.env.TSVISOR_HOME ? join(process.env.TSVISOR_HOME, 'cache') : '', join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'tsvisor', 'cache')]
    .find((c) => c && existsSync(join(c, 'images')));
  if (cache) symlinkSync(cache, join(home, 'cache'));
  env = { TSVISOR_HOME: home, XDG_RUNTIME_DIR: join(root, 'run') };
});

after(async () => {
  // VMs outlive the daemon: kill what a failed test left running
  const list = await tsvisor(['vm', 'list', '--json'], { env, timeoutMs: T }).catch(() => undefined);
  for (const v of list?.code === 0 ? JSON.parse(list.stdout) as Array<{ name: string; pid: number | null }> : []) {
    if (v.pid) await tsvisor(['vm', 'kill', v.name], { env, timeoutMs: T }).catch(() => undefined);
  }
  await tsvisor(['daemon', 'stop'], { env, timeoutMs: T }).catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

test('run -p: the guest serves the host, fetches from the host through its gateway, resolves names', { timeout: 2 * T }, async () => {
  let pageSeen: () => void = () => {};
  const seen = new Promise<void>((r) => { pageSeen = r; });
  const server: Server = createServer((req, res) => {
    if (req.url === '/blob') { res.end(BLOB); return; }
    if (req.url === '/go') {
      // long poll: answers once the host has read the guest's page through the published port
      void Promise.race([seen.then(() => 'go'), new Promise((r) => setTimeout(() => r('timeout'), 240_000).unref())]).then((v) => res.end(String(v)));
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const hostPort = (server.address() as { port: number }).port;
  const published = await freeLoopbackPort();
  const name = new URL(findDebianMirror().uri).hostname;
  const script = [
    'mkdir -p /www; echo "page-from-$(hostname)" > /www/index.html; httpd -p 80 -h /www',
    'gw=$(ip route | awk \'/^default/ {print $3; exit}\')',
    'echo "@@ gw $gw"',
    'echo "@@ addr $(ip -4 -o addr show dev eth0 | awk \'{print $4}\')"',
    'echo "@@ mtu $(cat /sys/class/net/eth0/mtu)"',
    `wget -q -O /tmp/blob http://$gw:${hostPort}/blob && echo "@@ blob $(sha256sum /tmp/blob | cut -d' ' -f1)"`,
    `if nslookup ${name} > /tmp/ns 2>&1; then echo "@@ dns ok"; else echo "@@ dns fail $(tr '\\n' ' ' < /tmp/ns)"; fi`,
    `echo "@@ go $(wget -q -O - http://$gw:${hostPort}/go)"`,
  ].join('\n');
  try {
    const run = tsvisor(['run', '-p', `127.0.0.1:${published}:80`, '--', 'sh', '-c', script], { timeoutMs: 2 * T });
    const ended = new AbortController();
    const page = await Promise.race([
      pollPage(published, /^page-from-/, 2 * T - 30_000, ended.signal),
      run.then((r) => { ended.abort(); throw new Error(describeRun('run ended before the page was served', r)); }),
    ]);
    assert.equal(page.trim(), 'page-from-tsvisor');
    pageSeen();
    const r: RunResult = await run;
    assert.equal(r.code, 0, describeRun('run', r));
    const m = results(r);
    assert.match(m.get('gw') ?? '', /^\d+\.\d+\.\d+\.\d+$/, describeRun('gateway by DHCP', r));
    assert.match(m.get('addr') ?? '', /^\d+\.\d+\.\d+\.\d+\/\d+$/, 'address by DHCP');
    assert.equal(m.get('mtu'), '65520', 'MTU from passt\'s DHCP answer');
    assert.equal(m.get('blob'), bytesHash(BLOB), 'the bytes the host served');
    if (isIP(name) === 0) assert.equal(m.get('dns'), 'ok', `${name} resolves in the guest`);
    assert.equal(m.get('go'), 'go');
  } finally {
    server.close();
  }
});

test('run: a published port in use, a bad --publish, --network none', { timeout: T }, async () => {
  const busy = createTcpServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  const port = (busy.address() as { port: number }).port;
  try {
    const r = await tsvisor(['run', '-p', `127.0.0.1:${port}:80`, '--', 'true'], { timeoutMs: T });
    assert.equal(r.code, 1, describeRun('run with a busy port', r));
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    assert.match(r.stderr, new RegExp(`port 127.0.0.1:${port}/tcp is already in use`));
  } finally {
    busy.close();
  }
  const bad = await tsvisor(['run', '-p', '80', '--', 'true'], { timeoutMs: T });
  assert.equal(bad.code, 2, describeRun('bad --publish', bad));
  assert.match(bad.stderr, /expected \[HOST_IP:\]HOST_PORT:GUEST_PORT/);
  const none = await tsvisor(['run', '--network', 'none', '--', 'sh', '-c',
    'echo "@@ ifs $(ls /sys/class/net | tr \'\\n\' \' \')"; echo "@@ modules $(cut -d \' \' -f 1 /proc/modules | sort | tr \'\\n\' \' \')"'], { timeoutMs: T });
  assert.equal(none.code, 0, describeRun('--network none', none));
  assert.equal(results(none).get('ifs')?.trim(), 'lo');
  // /init loads the drivers of the devices the board has: a balloon, no network card, disk, drive or display
  const modules = results(none).get('modules')?.trim().split(' ') ?? [];
  assert.ok(modules.includes('virtio_balloon'), `virtio_balloon loaded: ${modules.join(' ')}`);
  for (const m of ['virtio_net', 'virtio_blk', 'ext4', 'virtio_scsi', 'sr_mod', 'drm', 'virtio_gpu', '9p']) assert.ok(!modules.includes(m), `${m} not loaded: ${modules.join(' ')}`);
});

test('run --network tap:IFNAME: the guest reaches the host through an existing tap device', { timeout: T }, async (t) => {
  const missing = await tsvisor(['run', '--network', 'tap:tsvnone0', '--', 'true'], { timeoutMs: T });
  assert.equal(missing.code, 1, describeRun('a missing tap device', missing));
  assert.match(missing.stderr.trim(), /^tsvisor: cannot start networking: tap:tsvnone0: no such network interface \(create it: ip tuntap add dev tsvnone0 mode tap user \$USER\)$/);
  if (process.getuid?.() !== 0 || !existsSync('/dev/net/tun')) {
    t.skip('making a tap device needs root and /dev/net/tun');
    return;
  }
  const ifname = `tsvt${process.pid % 100000}`;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
  ip('tuntap', 'add', 'dev', ifname, 'mode', 'tap');
  try {
    ip('addr', 'add', '10.99.7.1/24', 'dev', ifname);
    ip('link', 'set', ifname, 'up');
    const r = await tsvisor(['run', '--network', `tap:${ifname}`, '--', 'sh', '-c',
      'ip addr add 10.99.7.2/24 dev eth0; ip link set eth0 up; if ping -c 3 -W 5 10.99.7.1 >/dev/null; then echo "@@ ping ok"; else echo "@@ ping fail"; fi'], { timeoutMs: T });
    assert.equal(r.code, 0, describeRun('run --network tap', r));
    assert.equal(results(r).get('ping'), 'ok', describeRun('ping through the tap device', r));
  } finally {
    ip('tuntap', 'del', 'dev', ifname, 'mode', 'tap');
  }
});

test('daemon: vm create -p with a port in use fails to start and stays stopped; a free port serves the guest', { timeout: 3 * T }, async () => {
  const busy = createTcpServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  const port = (busy.address() as { port: number }).port;
  try {
    const r = await tsvisor(['vm', 'create', 'web', '--memory', '256M', '-p', `127.0.0.1:${port}:80`, '--start'], { env, timeoutMs: T });
    assert.equal(r.code, 1, describeRun('create --start with a busy port', r));
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    assert.match(r.stderr, new RegExp(`port 127.0.0.1:${port}/tcp is already in use`));
    const info = JSON.parse((await tsvisor(['vm', 'info', 'web', '--json'], { env })).stdout);
    assert.equal(info.state, 'stopped');
    assert.equal(info.pid, null);
  } finally {
    busy.close();
  }
  const free = await freeLoopbackPort();
  const set = await tsvisor(['vm', 'set', 'web', '-p', `127.0.0.1:${free}:80`], { env });
  assert.equal(set.code, 0, describeRun('vm set -p', set));
  const st = await tsvisor(['vm', 'start', 'web'], { env, timeoutMs: T });
  assert.equal(st.code, 0, describeRun('vm start', st));
  const info = (await tsvisor(['vm', 'info', 'web'], { env })).stdout;
  assert.match(info, /network 0:\s+user \(eth0, 52:54:00:/);
  assert.match(info, new RegExp(`published:\\s+127\\.0\\.0\\.1:${free}:80`));
  let ex: RunResult | undefined;
  const deadline = Date.now() + 2 * T;
  while (Date.now() < deadline) {
    ex = await tsvisor(['vm', 'exec', 'web', '--', 'sh', '-c', 'mkdir -p /www; echo "page-from-$(hostname)" > /www/index.html; httpd -p 80 -h /www'], { env, timeoutMs: T });
    if (ex.code === 0 || !/agent/.test(ex.stderr)) break;
    await new Promise((r) => setTimeout(r, 2000));
  }
  assert.equal(ex?.code, 0, describeRun('vm exec httpd', ex!));
  assert.equal((await pollPage(free, /^page-from-/, T)).trim(), 'page-from-web');
  const stop = await tsvisor(['vm', 'stop', 'web'], { env, timeoutMs: T });
  assert.equal(stop.code, 0, describeRun('vm stop', stop));
});

/** Runs `sh -c script` in VM `vm` through the daemon, retrying while its agent is not up yet. */
async function execIn(vm: string, script: string, timeoutMs = T): Promise<RunResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await tsvisor(['vm', 'exec', vm, '--', 'sh', '-c', script], { env, timeoutMs });
    if (r.code === 0 || !/agent is not answering/.test(r.stderr) || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 2000));
  }
}

test('virtual networks: transfer by name under a hostile neighbour, isolation, daemon restart', { timeout: 6 * T }, () => withVmLogs(() => join(root, 'home'), ['a', 'b', 'c', 'd'], async () => {
  const ok = (what: string, r: RunResult) => { assert.equal(r.code, 0, describeRun(what, r)); return r; };
  const SIZE = 100 << 20;
  const blob = join(root, 'blob.img');
  const sink = join(root, 'sink.img');
  const h = createHash('sha256');
  const fd = openSync(blob, 'w');
  for (let i = 0; i < SIZE / (1 << 20); i++) {
    const chunk = pseudoRandomBytes(1 << 20, 1000 + i);
    h.update(chunk);
    writeFileSync(fd, chunk);
  }
  closeSync(fd);
  const blobHash = h.digest('hex');
  writeFileSync(sink, '');
  truncateSync(sink, SIZE);
  const flood = buildGuestProgramDisk(root, 'netflood', 'the network e2e test');

  ok('network create lan', await tsvisor(['network', 'create', 'lan'], { env }));
  ok('network create other', await tsvisor(['network', 'create', 'other', '--subnet', '10.98.0.0/24'], { env }));
  const dup = await tsvisor(['network', 'create', 'lan'], { env });
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /network lan already exists/);
  const overlap = await tsvisor(['network', 'create', 'x', '--subnet', '10.98.0.0/16'], { env });
  assert.match(overlap.stderr, /overlaps network other/);
  const missing = await tsvisor(['vm', 'create', 'z', '--network', 'nowhere'], { env });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no network nowhere/);

  await Promise.all([
    tsvisor(['vm', 'create', 'a', '--memory', '384M', '--network', 'lan', '--disk', `${blob},readonly`, '--start'], { env, timeoutMs: T }).then((r) => ok('create a', r)),
    tsvisor(['vm', 'create', 'b', '--memory', '256M', '--network', 'lan', '--disk', sink, '--start'], { env, timeoutMs: T }).then((r) => ok('create b', r)),
    tsvisor(['vm', 'create', 'd', '--memory', '256M', '--network', 'lan', '--disk', `${flood},readonly`, '--start'], { env, timeoutMs: T }).then((r) => ok('create d', r)),
    tsvisor(['vm', 'create', 'c', '--memory', '256M', '--network', 'other', '--start'], { env, timeoutMs: T }).then((r) => ok('create c', r)),
  ]);
  ok('a serves the blob', await execIn('a', 'mkdir -p /www && cat /dev/vda > /www/blob && httpd -p 80 -h /www'));
  ok('d mounts its tools', await execIn('d', 'mkdir -p /mnt/t && mount -o ro /dev/vda /mnt/t'));
  const named = ok('b resolves a', await execIn('b', 'nslookup a; ping -c 1 -W 5 a >/dev/null && echo "@@ ping ok"'));
  const aAddr = /^Address:\s+(10\.97\.0\.\d+)\s*$/m.exec(named.stdout)?.[1];
  assert.ok(aAddr && aAddr !== '10.97.0.1', describeRun('a has an address in lan', named));
  assert.equal(results(named).get('ping'), 'ok');

  // b fetches 100 MiB from a by name while d attacks the network
  const transfer = execIn('b', 'wget -q -O /dev/vda http://a/blob && sync && echo "@@ fetched"', 3 * T);
  const attack = execIn('d', 'for m in spoof bcast big bcast; do /mnt/t/netflood eth0 $m 3000; done', 3 * T);
  const [tr, at] = await Promise.all([transfer, attack]);
  ok('the hostile guest', at);
  ok('the transfer under attack', tr);
  assert.equal(results(tr).get('fetched'), '', describeRun('fetched', tr));
  const lan = JSON.parse(ok('network info', await tsvisor(['network', 'info', 'lan', '--json'], { env })).stdout) as { ports: Array<{ vm: string; droppedSpoofed: number; droppedFlood: number }> };
  const d = lan.ports.find((p) => p.vm === 'd')!;
  assert.ok(d.droppedSpoofed >= 3000, `spoofed frames dropped and counted: ${JSON.stringify(d)}`);
  assert.ok(d.droppedFlood > 0, `broadcast flood limited: ${JSON.stringify(d)}`);

  // metering: every byte of the transfer is in the ledger, both ends
  type Usage = { vms: Array<{ name: string; netRxBytes: number; netTxBytes: number; netRxPackets: number }> };
  let ua: Usage['vms'][0] | undefined;
  let ub: Usage['vms'][0] | undefined;
  for (let i = 0; i < 20; i++) { // the daemon samples the VM processes every few seconds
    const usage = JSON.parse(ok('usage', await tsvisor(['usage', '--json'], { env })).stdout) as Usage;
    ua = usage.vms.find((v) => v.name === 'a')!;
    ub = usage.vms.find((v) => v.name === 'b')!;
    if (ub.netRxBytes > SIZE && ua.netTxBytes > SIZE) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.ok(ua && ub && ub.netRxBytes > SIZE && ua.netTxBytes > SIZE, `usage counts the 100 MiB: ${JSON.stringify([ua, ub])}`);
  assert.ok(ub.netRxPackets > SIZE / 65536, JSON.stringify(ub));
  const top = JSON.parse(ok('top', await tsvisor(['top', '--once', '--json'], { env })).stdout);
  assert.equal(typeof top.vms[0].netRxBytesPerSec, 'number');

  // a bandwidth cap set on the running VM holds its downloads to the rate
  ok('vm set --net-rate', await tsvisor(['vm', 'set', 'b', '--net-rate', '8'], { env }));
  assert.match(ok('vm info', await tsvisor(['vm', 'info', 'b'], { env })).stdout, /net rate:\s+8 Mbit\/s each way/);
  const capped = ok('capped fetch', await execIn('b', 's=$(date +%s); wget -q -O - http://a/blob | head -c 4194304 | wc -c; echo "@@ secs $(( $(date +%s) - s ))"'));
  assert.match(capped.stdout, /^4194304$/m);
  assert.ok(Number(results(capped).get('secs')) >= 3, `4 MiB at 8 Mbit/s takes at least 3 s: ${describeRun('capped', capped)}`);
  ok('vm set --net-rate none', await tsvisor(['vm', 'set', 'b', '--net-rate', 'none'], { env }));
  assert.match(ok('vm info', await tsvisor(['vm', 'info', 'b'], { env })).stdout, /net rate:\s+no cap/);

  // another network: no way to lan, even from inside its subnet
  const iso = await execIn('c', `ip addr add 10.97.0.250/24 dev eth0; if ping -c 2 -W 1 ${aAddr} >/dev/null 2>&1; then echo "@@ reach yes"; else echo "@@ reach no"; fi; if nslookup a >/dev/null 2>&1; then echo "@@ name yes"; else echo "@@ name no"; fi`);
  assert.equal(results(iso).get('reach'), 'no', describeRun('isolation', iso));
  assert.equal(results(iso).get('name'), 'no');
  const del = await tsvisor(['network', 'delete', 'lan'], { env });
  assert.equal(del.code, 1);
  assert.match(del.stderr, /network lan is used by a, b, d/);

  // the daemon restarts: the VMs keep running and their cards reconnect
  ok('daemon stop', await tsvisor(['daemon', 'stop'], { env, timeoutMs: T }));
  const again = await execIn('b', 'for i in 1 2 3 4 5 6 7 8 9 10; do ping -c 1 -W 2 a >/dev/null 2>&1 && { echo "@@ ping ok"; break; }; sleep 1; done');
  assert.equal(results(again).get('ping'), 'ok', describeRun('after the daemon restart', again));

  await Promise.all(['a', 'b', 'c', 'd'].map((n) => tsvisor(['vm', 'stop', n], { env, timeoutMs: T })));
  assert.equal(fileHeadHash(sink, SIZE), blobHash, 'b wrote the 100 MiB it fetched from a');
}));
