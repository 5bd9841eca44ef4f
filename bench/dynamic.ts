/**
 * Bench section `dynamic`: memory that moves while a 2 GiB VM runs (default image, 1 vCPU),
 * tsvisor (a VM of the daemon, run in this process) beside `qemu-system-riscv64` with
 * `-device virtio-balloon-device,free-page-reporting=on` (its monitor's `balloon` command):
 *
 *   - host RSS of the VM process booted idle (after BENCH_SETTLE_SECONDS, default 20);
 *   - after the guest fills 1 GiB of a tmpfs, and 15 s after it deletes it (free page
 *     reporting gives the pages back);
 *   - seconds until the balloon holds 1 GiB more (shrink 2 GiB -> 1 GiB), then 1 GiB less
 *     (grow back to 2 GiB);
 *   - host RSS 10 s after the balloon reached a target of 512 MiB, then 256 MiB.
 *
 *
 * Then the automatic policy (tsvisor alone: QEMU has none of its own): four VMs on
 * `--memory-policy dynamic` (512 MiB to start, 128 MiB guaranteed, 1 GiB at most each)
 * under a host budget of 2 GiB, half the sum of their maxima; once they idle, one writes
 * 768 MiB to a tmpfs: how much memory each holds, how long the writing took, how long until
 * the busy one held it, whether any guest killed a process, and the most the budget
 * ever counted.
 *
 * Last, disk fairness: one VM appends 4 KiB to a file and `fdatasync`s it, 300 times
 * (ext4 on a raw disk), alone and while a second VM writes 1.5 GiB to its own disk as
 * fast as it can (equal weights, no limits): operations per second of the first, both ways.
 * Then both write 768 MiB flat out with `--disk-weight` 300 and 100: MiB/s of each, and
 * how often the daemon held each to a share (src/host/disk-arbiter.ts).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { tempTsvisorHome } from '../test/e2e/helpers.js';
import { runDaemon, type Daemon } from '../src/api/daemon.js';
import { hostPaths } from '../src/host/paths.js';
import { processRssBytes } from '../src/host/procfs.js';
import { initrdWithCommand } from '../src/cli/run.js';
import { QEMU, log, sleep, table, type Guests } from './common.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SETTLE_S = Number(process.env.BENCH_SETTLE_SECONDS ?? 20) || 20;
const FILL = 'mkdir -p /mnt/t && mount -t tmpfs -o size=1200m tmpfs /mnt/t && dd if=/dev/zero of=/mnt/t/f bs=1M count=1024 2>/dev/null && sync';
const FREE = 'rm /mnt/t/f && umount /mnt/t';

/** The figures of one side (bytes and seconds). */
interface Figures { idle?: number; full?: number; freed?: number; shrinkS?: number; growS?: number; at512?: number; at256?: number }

/** Poll `probe` every 200 ms for up to `ms`; seconds it took, or undefined if it never held. */
async function timeUntil(ms: number, probe: () => Promise<boolean> | boolean): Promise<number | undefined> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    if (await probe()) return (performance.now() - t0) / 1000;
    await sleep(200);
  }
  return undefined;
}

/** Run `script` in the guest through the daemon's exec; throws unless it exits 0. */
async function exec(d: Daemon, name: string, script: string): Promise<void> {
  await execOut(d, name, script);
}

async function tsvisorSide(): Promise<Figures> {
  const { root, env } = tempTsvisorHome('tsvisor-bench-dyn-');
  const d = await runDaemon({ paths: hostPaths(env), log: () => {} });
  const name = `dyn-${process.pid.toString(36)}`;
  const f: Figures = {};
  try {
    d.host.create({ name, memoryBytes: 2 * GiB, networks: ['none'] });
    await d.host.start(name);
    const pid = d.host.get(name).pid!;
    const rss = () => processRssBytes(pid);
    if (await timeUntil(240_000, () => !!d.host.get(name).guest?.agent) === undefined) throw new Error('the guest agent never answered');
    await sleep(SETTLE_S * 1000);
    f.idle = rss();
    await exec(d, name, FILL);
    f.full = rss();
    await exec(d, name, FREE);
    await sleep(15_000);
    f.freed = rss();
    const balloon = () => d.host.get(name).memory?.balloonBytes;
    await sleep(3000); // fresh balloon statistics for the shrink's check
    d.host.get(name);
    await sleep(1500);
    await d.host.update(name, { memoryBytes: GiB });
    f.shrinkS = await timeUntil(60_000, () => balloon() === GiB);
    await d.host.update(name, { memoryBytes: 2 * GiB });
    f.growS = await timeUntil(60_000, () => balloon() === 0);
    for (const [mib, key] of [[512, 'at512'], [256, 'at256']] as const) {
      await sleep(3000); // fresh statistics for the shrink's check
      d.host.get(name);
      await sleep(1500);
      await d.host.update(name, { memoryBytes: mib * MiB });
      if (await timeUntil(60_000, () => balloon() === 2 * GiB - mib * MiB) !== undefined) {
        await sleep(10_000);
        f[key] = rss();
      }
    }
  } finally {
    await d.host.kill(name).catch(() => undefined);
    await d.host.delete(name, { force: true }).catch(() => undefined);
    await d.close();
    rmSync(root, { recursive: true, force: true });
  }
  return f;
}

/** The figures of the policy run (bytes and seconds). */
interface PolicyFigures {
  idle: number[]; idleRss: number[]; busy: number[]; busyRss: number[];
  writeS: number; holdS?: number; worstAllocated: number; limit: number; oomKills: number;
}

async function policySide(): Promise<PolicyFigures> {
  const { root, env } = tempTsvisorHome('tsvisor-bench-pol-');
  const limit = 2 * GiB;
  const total = Number(/MemTotal:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
  const d = await runDaemon({ paths: hostPaths(env), log: () => {}, overcommit: limit / total });
  const names = [0, 1, 2, 3].map((i) => `pol${i}-${process.pid.toString(36)}`);
  let worst = 0;
  const watch = setInterval(() => { worst = Math.max(worst, d.host.info().memory.allocatedBytes); }, 100);
  try {
    for (const name of names) {
      d.host.create({ name, memoryBytes: 512 * MiB, maxMemoryBytes: GiB, minMemoryBytes: 128 * MiB, memoryPolicy: 'dynamic', networks: ['none'] });
      await d.host.start(name);
    }
    for (const name of names) {
      if (await timeUntil(400_000, () => !!d.host.get(name).guest?.agent) === undefined) throw new Error(`the guest agent of ${name} never answered`);
    }
    await sleep(SETTLE_S * 1000);
    const mem = () => names.map((n) => d.host.get(n).memory?.currentBytes ?? 0);
    const rss = () => names.map((n) => processRssBytes(d.host.get(n).pid!) ?? 0);
    const idle = mem();
    const idleRss = rss();
    const t0 = performance.now();
    await exec(d, names[0], 'mkdir -p /mnt/t && mount -t tmpfs -o size=900m tmpfs /mnt/t && dd if=/dev/zero of=/mnt/t/f bs=1M count=768 2>/dev/null && sync');
    const writeS = (performance.now() - t0) / 1000;
    const holdS = await timeUntil(60_000, () => mem()[0] >= 768 * MiB);
    const busy = mem();
    const busyRss = rss();
    const oomKills = names.reduce((s, n) => s + (d.host.get(n).memory?.guest?.oomKills ?? 0), 0);
    return { idle, idleRss, busy, busyRss, writeS, holdS: holdS === undefined ? undefined : writeS + holdS, worstAllocated: worst, limit, oomKills };
  } finally {
    clearInterval(watch);
    for (const name of names) {
      await d.host.kill(name).catch(() => undefined);
      await d.host.delete(name, { force: true }).catch(() => undefined);
    }
    await d.close();
    rmSync(root, { recursive: true, force: true });
  }
}

/** Run `script` in the guest through the daemon's exec; its standard output. Throws unless it exits 0. */
async function execOut(d: Daemon, name: string, script: string): Promise<string> {
  const res = await d.host.access.openExec(name, { argv: ['sh', '-c', script] });
  let text = '';
  for await (const c of res) text += (c as Buffer).toString();
  if (res.statusCode !== 200 || !text.includes('"exit":0')) throw new Error(`exec in ${name} failed: ${text.slice(-300)}`);
  let out = '';
  for (const line of text.split('\n')) {
    if (!line) continue;
    const ev = JSON.parse(line) as { stream?: string; data?: string };
    if (ev.stream === 'stdout' && ev.data) out += Buffer.from(ev.data, 'base64').toString();
  }
  return out;
}

/**
 * fdatasync'ed 4 KiB appends per second, alone and beside a VM that writes flat out; then
 * both VMs writing flat out, with disk weights 300 and 100: MiB/s of each, and the share of
 * the samples (every 500 ms) in which the daemon held each to a share.
 */
interface FairnessFigures {
  alone: number; contended: number; writerMiBs?: number;
  weighted: { heavyMiBs: number; lightMiBs: number; heavyHeld: number; lightHeld: number };
}

/** Write `mib` MiB of zeros to the guest's /dev/vda with fsync at the end; MiB/s. */
async function flatOut(d: Daemon, name: string, mib: number): Promise<number> {
  const [a, b] = (await execOut(d, name, `read a x < /proc/uptime; dd if=/dev/zero of=/dev/vda bs=1M count=${mib} conv=fsync 2>/dev/null; read b x < /proc/uptime; echo $a $b`)).trim().split(' ').map(Number);
  return mib / (b - a);
}

const SYNC_LOOP = 'read a x < /proc/uptime; i=0; while [ $i -lt 300 ]; do printf "%4095s\\n" $i >> /mnt/f; sync -d /mnt/f; i=$((i+1)); done; read b x < /proc/uptime; echo $a $b';

async function fairnessSide(): Promise<FairnessFigures> {
  const { root, env } = tempTsvisorHome('tsvisor-bench-io-');
  const d = await runDaemon({ paths: hostPaths(env), log: () => {} });
  const [syncer, writer] = ['sync', 'flood'].map((n) => `${n}-${process.pid.toString(36)}`);
  try {
    for (const [name, size] of [[syncer, GiB], [writer, 2 * GiB]] as const) {
      const disk = join(root, `${name}.img`);
      writeFileSync(disk, '');
      truncateSync(disk, size);
      d.host.create({ name, memoryBytes: 512 * MiB, networks: ['none'], disks: [{ path: disk }] });
      await d.host.start(name);
    }
    for (const name of [syncer, writer]) {
      if (await timeUntil(400_000, () => !!d.host.get(name).guest?.agent) === undefined) throw new Error(`the guest agent of ${name} never answered`);
    }
    await execOut(d, syncer, 'mke2fs -q -F /dev/vda && mount /dev/vda /mnt');
    const rate = (out: string) => { const [a, b] = out.trim().split(' ').map(Number); return 300 / (b - a); };
    const alone = rate(await execOut(d, syncer, `rm -f /mnt/f; ${SYNC_LOOP}`));
    const flood = flatOut(d, writer, 1536);
    await sleep(3000);
    const contended = rate(await execOut(d, syncer, `rm -f /mnt/f; ${SYNC_LOOP}`));
    const writerMiBs = await flood;
    // both flat out, weights 300 (the first) and 100
    await execOut(d, syncer, 'umount /mnt');
    await d.host.update(syncer, { diskWeight: 300 });
    const held = { heavy: 0, light: 0, samples: 0 };
    let running = true;
    const sampler = (async () => {
      while (running) {
        held.samples++;
        if (d.host.get(syncer).diskShare) held.heavy++;
        if (d.host.get(writer).diskShare) held.light++;
        await sleep(500);
      }
    })();
    const [heavyMiBs, lightMiBs] = await Promise.all([flatOut(d, syncer, 768), flatOut(d, writer, 768)]);
    running = false;
    await sampler;
    const pct = (n: number) => (held.samples ? (100 * n) / held.samples : 0);
    return { alone, contended, writerMiBs, weighted: { heavyMiBs, lightMiBs, heavyHeld: pct(held.heavy), lightHeld: pct(held.light) } };
  } finally {
    for (const name of [syncer, writer]) {
      await d.host.kill(name).catch(() => undefined);
      await d.host.delete(name, { force: true }).catch(() => undefined);
    }
    await d.close();
    rmSync(root, { recursive: true, force: true });
  }
}

/** QEMU's human monitor on a Unix socket: send a command, collect what it answers within 500 ms. */
async function hmp(sock: string, command: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const s = connect(sock);
    let text = '';
    s.on('data', (b) => { text += b.toString(); });
    s.on('error', reject);
    s.on('connect', () => {
      s.write(`${command}\n`);
      setTimeout(() => { s.destroy(); resolve(text); }, 500);
    });
  });
}

async function qemuSide(g: Guests, work: string): Promise<Figures> {
  const initrd = join(work, 'dyn-initrd');
  const sock = join(work, 'qemu-monitor.sock');
  const script = `echo READY; sleep ${SETTLE_S}; echo @@IDLE; ${FILL} && echo @@FULL; sleep 3; ${FREE} && echo @@FREED; sleep 600`;
  writeFileSync(initrd, initrdWithCommand(readFileSync(g.img.initrd), ['sh', '-c', script]));
  const child = spawn(QEMU, [
    '-machine', 'virt', '-cpu', g.qemuCpu, '-nographic', '-m', '2G', '-smp', '1', '-bios', 'default', '-no-reboot',
    '-kernel', g.img.kernel, '-initrd', initrd, '-append', g.bootargs,
    '-device', 'virtio-balloon-device,free-page-reporting=on', '-monitor', `unix:${sock},server,nowait`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const seen = (m: string) => out.includes(m);
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  const f: Figures = {};
  const rss = () => processRssBytes(child.pid!);
  const actual = async () => Number(/actual=(\d+)/.exec(await hmp(sock, 'info balloon'))?.[1] ?? NaN);
  try {
    if (await timeUntil(300_000, () => seen('@@IDLE')) === undefined) throw new Error(`QEMU guest never got idle: ${out.slice(-500)}`);
    f.idle = rss();
    if (await timeUntil(300_000, () => seen('@@FULL')) === undefined) throw new Error('QEMU guest never filled its tmpfs');
    f.full = rss();
    if (await timeUntil(120_000, () => seen('@@FREED')) === undefined) throw new Error('QEMU guest never freed its tmpfs');
    await sleep(15_000);
    f.freed = rss();
    await hmp(sock, 'balloon 1024');
    f.shrinkS = await timeUntil(60_000, async () => (await actual()) === 1024);
    await hmp(sock, 'balloon 2048');
    f.growS = await timeUntil(60_000, async () => (await actual()) === 2048);
    for (const [mib, key] of [[512, 'at512'], [256, 'at256']] as const) {
      await hmp(sock, `balloon ${mib}`);
      if (await timeUntil(60_000, async () => (await actual()) === mib) !== undefined) {
        await sleep(10_000);
        f[key] = rss();
      }
    }
  } finally {
    child.kill('SIGKILL');
    rmSync(initrd, { force: true });
  }
  return f;
}

/** Run the section; returns the report lines. */
export async function benchDynamic(g: Guests, work: string): Promise<string[]> {
  log('dynamic: tsvisor, a 2 GiB VM of the daemon');
  const t = await tsvisorSide();
  let q: Figures = {};
  if (g.haveQemu) {
    log('dynamic: qemu -m 2G with virtio-balloon (free-page-reporting=on)');
    q = await qemuSide(g, work);
  }
  log('dynamic: four VMs on the dynamic policy under a 2 GiB budget');
  const p = await policySide();
  log('dynamic: disk fairness, an fdatasync loop beside a VM writing flat out, then two writers with weights 300 and 100');
  const io = await fairnessSide();
  const m = (x: number | undefined) => (x === undefined ? undefined : x / MiB);
  const list = (xs: number[]) => xs.map((x) => Math.round(x / MiB)).join(' / ');
  return [
    `== dynamic memory: a 2 GiB guest (1 vCPU, default image); host RSS of the VM process (MiB) and balloon times (s)`,
    `QEMU: ${g.qemuVersion}, -device virtio-balloon-device,free-page-reporting=on, monitor "balloon N"`,
    '',
    ...table([
      ['RSS booted idle', m(t.idle), m(q.idle)],
      ['RSS with 1 GiB in a tmpfs', m(t.full), m(q.full)],
      ['RSS 15 s after deleting it', m(t.freed), m(q.freed)],
      ['RSS at a 512 MiB target', m(t.at512), m(q.at512)],
      ['RSS at a 256 MiB target', m(t.at256), m(q.at256)],
    ], 'MiB', 0),
    '',
    ...table([
      ['shrink 2 GiB -> 1 GiB', t.shrinkS, q.shrinkS],
      ['grow 1 GiB -> 2 GiB', t.growS, q.growS],
    ], 's'),
    '',
    `== dynamic policy: 4 VMs (start 512 MiB, min 128 MiB, max 1 GiB each) under a ${p.limit / MiB} MiB budget; VM 1 then writes 768 MiB to a tmpfs`,
    `memory idle (MiB):           ${list(p.idle)}   (host RSS ${list(p.idleRss)})`,
    `memory with VM 1 busy (MiB): ${list(p.busy)}   (host RSS ${list(p.busyRss)})`,
    `VM 1 wrote 768 MiB in ${p.writeS.toFixed(1)} s; it held 768 MiB or more ${p.holdS === undefined ? 'never (within 60 s)' : `${p.holdS.toFixed(1)} s after the writing began`}`,
    `OOM kills in the guests: ${p.oomKills}; most memory the budget counted: ${Math.round(p.worstAllocated / MiB)} MiB of ${p.limit / MiB} MiB`,
    '',
    '== disk fairness: 300 fdatasync\'ed 4 KiB appends (ext4 on a raw disk), alone and while another VM writes 1.5 GiB flat out (equal weights, no limits)',
    `operations/s alone ${io.alone.toFixed(1)}, beside the writer ${io.contended.toFixed(1)} (${((io.contended / io.alone) * 100).toFixed(0)} % of alone; the writer: ${io.writerMiBs?.toFixed(1) ?? 'n/a'} MiB/s)`,
    `both writing 768 MiB flat out, --disk-weight 300 and 100: ${io.weighted.heavyMiBs.toFixed(1)} and ${io.weighted.lightMiBs.toFixed(1)} MiB/s `
      + `(ratio ${(io.weighted.heavyMiBs / io.weighted.lightMiBs).toFixed(2)}); held to a share in ${io.weighted.heavyHeld.toFixed(0)} % and ${io.weighted.lightHeld.toFixed(0)} % of the samples`,
  ];
}
