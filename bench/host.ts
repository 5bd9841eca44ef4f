/**
 * Bench section `host`: the host daemon's resource policy, measured on real VMs (each
 * its own process, booting the default image).
 *
 *   (a) four 1 GiB VMs started at once: all admitted and running; seconds to start,
 *       memory allocated, host RSS of the four processes;
 *   (b) CPU weight: two VMs with weights 200 and 100, both spinning (`while :; do :; done`
 *       in the guest), all their threads pinned to host core 0 (`taskset -a`): the CPU
 *       time the kernel charged to each over 30 s should be 2:1 (within 10%);
 *   (c) CPU cap: a VM capped at 50% of a core, spinning: it should use at most 55%;
 *   (d) metering: the CPU-seconds `tsvisor usage` reports for that VM against the
 *       kernel's figure for its process (/proc/<pid>/stat): within 5%.
 *
 * Needs a writable cgroup cpu controller (v1 or v2) and `taskset`. Runs the daemon in
 * this process (socket and home in a temporary folder; the image cache is borrowed from
 * /tmp/tsvisor-home-images/cache, $TSVISOR_HOME or ~/.local/share/tsvisor). Environment:
 * BENCH_SECONDS (measurement window of (b), default 30), BENCH_SKIP_4G=1 skips (a).
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tempTsvisorHome } from '../test/e2e/helpers.js';
import { runDaemon, type Daemon } from '../src/api/daemon.js';
import { hostPaths } from '../src/host/paths.js';
import { processCpuSeconds, processRssBytes } from '../src/host/procfs.js';
import { log as progress } from './common.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const WINDOW_S = Number(process.env.BENCH_SECONDS ?? 30);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** CPU seconds the kernel charged to VM `name` (its cgroup, else its process). */
function cpuOf(d: Daemon, name: string): number {
  const ns = d.host.cgroups.usageNs(name);
  if (ns !== undefined) return ns / 1e9;
  const pid = d.host.get(name).pid;
  return pid ? processCpuSeconds(pid) ?? 0 : 0;
}

/** Make the guest spin: through the guest agent (exec), or, if it never answers, typed on the console. */
async function spin(d: Daemon, name: string): Promise<string> {
  const deadline = Date.now() + 240_000;
  while (Date.now() < deadline) {
    if (d.host.get(name).guest?.agent) {
      const res = await d.host.access.openExec(name, { argv: ['sh', '-c', 'while :; do :; done >/dev/null 2>&1 </dev/null & echo spinning'] });
      let text = '';
      for await (const c of res) text += (c as Buffer).toString();
      if (res.statusCode === 200 && text.includes('"exit":0')) return 'exec';
    }
    await sleep(1000);
  }
  const con = await d.host.access.openConsole(name);
  if (!('socket' in con)) throw new Error(`console of ${name}: HTTP ${con.response.statusCode}`);
  let seen = con.head.toString();
  con.socket.on('data', (b: Buffer) => { seen += b.toString(); });
  const until = Date.now() + 60_000;
  // eslint-disable-next-line no-control-regex
  while (!/# $/.test(seen.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').trimEnd() + ' ') && Date.now() < until) {
    con.socket.write('\r');
    await sleep(2000);
  }
  con.socket.write('while :; do :; done >/dev/null 2>&1 &\r');
  await sleep(500);
  con.socket.destroy();
  return 'console';
}

function pin(pid: number): void {
  const r = spawnSync('taskset', ['-a', '-cp', '0', String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`taskset -a -cp 0 ${pid}: ${r.stderr || r.error}`);
}

/** Run the section; returns the report lines. */
export async function benchHost(): Promise<string[]> {
  const out: string[] = ['== host daemon: admission, CPU weight and cap (cgroups), metering'];
  const log = (s: string) => { out.push(s); progress(s); };
  const { root, env } = tempTsvisorHome('tsvisor-bench-host-');
  const paths = hostPaths(env);
  const d = await runDaemon({ paths, log: () => {} });
  const tag = process.pid.toString(36);
  const names: string[] = [];
  cleanup = async () => {
    for (const n of names) { const v = d.host.get(n); if (v.pid) { try { process.kill(v.pid, 'SIGKILL'); } catch { /* gone */ } } }
    await sleep(300);
    for (const n of names) await d.host.delete(n, { force: true }).catch(() => undefined);
    await d.close();
    rmSync(root, { recursive: true, force: true });
  };
  const create = (base: string, memoryBytes: number, extra: { cpuWeight?: number; cpuCap?: number } = {}) => {
    const name = `${base}-${tag}`;
    d.host.create({ name, memoryBytes, ...extra });
    names.push(name);
    return name;
  };
  try {
    const info = d.host.info();
    log(`host: ${info.cores} cores, ${(info.memoryBytes / GiB).toFixed(1)} GiB; cgroup ${info.cgroup.version}${info.cgroup.warning ? ` (${info.cgroup.warning})` : ''}`);

    if (process.env.BENCH_SKIP_4G !== '1') {
      const four = [0, 1, 2, 3].map((i) => create(`big${i}`, GiB));
      const t0 = performance.now();
      await Promise.all(four.map((n) => d.host.start(n)));
      const startS = (performance.now() - t0) / 1000;
      await sleep(5000);
      const h = d.host.info();
      const rss = four.reduce((s, n) => s + (processRssBytes(d.host.get(n).pid!) ?? 0), 0);
      const running = four.filter((n) => d.host.get(n).state === 'running').length;
      log(`(a) 4 × 1 GiB VMs: ${running}/4 running, started in ${startS.toFixed(2)} s; allocated ${(h.memory.allocatedBytes / GiB).toFixed(1)} GiB `
        + `of ${(h.memory.limitBytes / GiB).toFixed(1)} GiB; RSS of the 4 processes after 5 s: ${(rss / MiB).toFixed(0)} MiB`);
      for (const n of four) await d.host.kill(n);
    }

    if (info.cgroup.version === 'none') {
      log('(b), (c) skipped: no writable cgroup cpu controller');
      return out;
    }

    // (b) weights 200:100 on one core
    const heavy = create('w200', 256 * MiB, { cpuWeight: 200 });
    const light = create('w100', 256 * MiB, { cpuWeight: 100 });
    await Promise.all([d.host.start(heavy), d.host.start(light)]);
    const how = await Promise.all([spin(d, heavy), spin(d, light)]);
    pin(d.host.get(heavy).pid!);
    pin(d.host.get(light).pid!);
    await sleep(3000);
    const h0 = cpuOf(d, heavy);
    const l0 = cpuOf(d, light);
    const t0 = performance.now();
    await sleep(WINDOW_S * 1000);
    const dt = (performance.now() - t0) / 1000;
    const dh = cpuOf(d, heavy) - h0;
    const dl = cpuOf(d, light) - l0;
    const ratio = dh / dl;
    const okB = Math.abs(ratio / 2 - 1) <= 0.10;
    log(`(b) weights 200 vs 100 on core 0 (busy via ${how.join('/')}), ${dt.toFixed(1)} s: ${dh.toFixed(2)} vs ${dl.toFixed(2)} CPU-s `
      + `(${((dh / dt) * 100).toFixed(0)}% vs ${((dl / dt) * 100).toFixed(0)}% of the core), ratio ${ratio.toFixed(3)} (target 2.000 ± 10%): ${okB ? 'PASS' : 'FAIL'}`);
    await d.host.kill(heavy);
    await d.host.kill(light);

    // (c) cap 50%
    const capped = create('cap50', 256 * MiB, { cpuCap: 50 });
    await d.host.start(capped);
    const howC = await spin(d, capped);
    await sleep(3000);
    const c0 = cpuOf(d, capped);
    const tc = performance.now();
    await sleep(15_000);
    const dtc = (performance.now() - tc) / 1000;
    const pct = ((cpuOf(d, capped) - c0) / dtc) * 100;
    log(`(c) cap 50% (busy via ${howC}), ${dtc.toFixed(1)} s: used ${pct.toFixed(1)}% of a core (limit 55%): ${pct <= 55 ? 'PASS' : 'FAIL'}`);
    const pid = d.host.get(capped).pid!;
    const kernel = processCpuSeconds(pid) ?? NaN;
    const metered = d.host.usage().vms.find((v) => v.name === capped)?.cpuSeconds ?? NaN;
    const diff = Math.abs(metered / kernel - 1) * 100;
    log(`(d) metering of ${capped}: tsvisor usage ${metered.toFixed(2)} CPU-s, kernel (/proc/${pid}/stat) ${kernel.toFixed(2)} CPU-s, `
      + `difference ${diff.toFixed(2)}% (limit 5%): ${diff <= 5 ? 'PASS' : 'FAIL'}`);
    await d.host.kill(capped);
    return out;
  } finally {
    await cleanup();
    cleanup = undefined;
  }
}

let cleanup: (() => Promise<void>) | undefined;

/** Remove the section's VMs and temporary home (on SIGINT/SIGTERM). */
export async function cleanupHostBench(): Promise<void> {
  await cleanup?.();
}
