/**
 * Bench section `debian`: the Debian image (`tsvisor image pull debian`).
 *
 *   (a) boot, side by side with `qemu-system-riscv64` (TCG, OpenSBI) booting the same
 *       image the same way: Debian's S-mode U-Boot as the kernel, which boots the kernel
 *       and initrd in the image's /boot, the base image through a qcow2 overlay, 1 vCPU,
 *       1 GiB. QEMU reaches the guest agent through a virtio-serial port of the same name
 *       (`org.tsvisor.agent`), so both sides are measured the same way: the host notes when
 *       the agent's first answer arrives; the guest reports its uptime then and the
 *       monotonic time `multi-user.target` was reached, which place the kernel's start
 *       and multi-user.target on the host's clock. Figures: firmware (process start to
 *       kernel start), kernel start to multi-user.target, process start to
 *       multi-user.target, process start to an answering agent.
 *   (b) the image build time (stage 1 + stage 2, from the image's manifest; with
 *       BENCH_DEBIAN_BUILD=1 a fresh build in a scratch cache that shares the `.deb` files).
 *   (c) BENCH_DEBIAN_VMS (default 10; 0 skips it) VMs from the same base, all running at
 *       once, through the daemon (`vm create --image debian --memory 512M --start`, at most
 *       BENCH_DEBIAN_PARALLEL booting at a time): boot times, an exec in all at once, the
 *       idle guests' host CPU and RSS, and the host disk bytes (allocated blocks, as `du`)
 *       of each overlay. BENCH_DEBIAN_BOOT=0 skips (a) and (b).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../src/vmm/agent.js';
import { AGENT_PORT_NAME } from '../src/images/initramfs.js';
import { ensureDebianImage } from '../src/vmm/debian-build.js';
import { cachePaths, tsvisorHome } from '../src/images/index.js';
import type { DebianImage } from '../src/images/debian-image.js';
import { Guests, QEMU, TSVISOR_CMD, log, median, sleep, table } from './common.js';
import { tsvisor } from '../test/e2e/helpers.js';

const MEMORY = '1G';
const TIMEOUT_MS = 20 * 60_000;

/** Run in the guest once the agent answers: uptime now, then multi-user.target's monotonic time (µs). */
const PROBE = [
  'read up x < /proc/uptime; echo "@@ up $up"',
  'systemctl is-system-running --wait >/dev/null',
  'echo "@@ state $(systemctl is-system-running)"',
  'echo "@@ mu $(systemctl show -p ActiveEnterTimestampMonotonic --value multi-user.target)"',
].join('; ');

/** Boot timings of one side, seconds from process start. */
interface BootTimes { kernel: number; multiUser: number; agent: number; state: string }

/** Turns the probe's output and the host time its first line arrived into {@link BootTimes}. */
function bootTimes(out: string, agentAt: number): BootTimes {
  const up = Number(/@@ up ([\d.]+)/.exec(out)?.[1]);
  const mu = Number(/@@ mu (\d+)/.exec(out)?.[1]);
  const state = /@@ state (\S+)/.exec(out)?.[1] ?? 'unknown';
  if (!Number.isFinite(up) || !Number.isFinite(mu) || mu === 0) throw new Error(`the guest did not report its boot times: ${out.slice(-500)}`);
  const kernel = agentAt - up;
  return { kernel, multiUser: kernel + mu / 1e6, agent: agentAt, state };
}

/** `tsvisor run --image debian -- sh -c PROBE`, as a user runs it. */
function bootTsvisor(): Promise<BootTimes> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [...TSVISOR_CMD, 'run', '--image', 'debian', '--memory', MEMORY, '--', 'sh', '-c', PROBE], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let agentAt: number | null = null;
    child.stdout.on('data', (b: Buffer) => {
      if (agentAt === null) agentAt = (performance.now() - t0) / 1000;
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0 || agentAt === null) reject(new Error(`tsvisor run --image debian failed (exit ${code}): ${err.slice(-1000)}`));
      else {
        try { resolve(bootTimes(out, agentAt)); } catch (e) { reject(e); }
      }
    });
  });
}

/** QEMU booting the same firmware, on a qcow2 overlay of the same base, with the agent on virtio-serial. */
async function bootQemu(g: Guests, img: DebianImage, work: string): Promise<BootTimes> {
  const overlay = join(work, 'qemu-overlay.qcow2');
  const mk = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', img.disk, '-F', 'raw', overlay], { encoding: 'utf8' });
  if (mk.status !== 0) throw new Error(`qemu-img create: ${mk.stderr || mk.error?.message}`);
  const sock = join(work, 'qemu-agent.sock');
  const args = [
    '-machine', 'virt', '-cpu', g.qemuCpu, '-nographic', '-m', MEMORY, '-smp', '1', '-bios', 'default', '-no-reboot',
    '-kernel', img.firmware,
    '-drive', `file=${overlay},format=qcow2,if=none,id=vd0`, '-device', 'virtio-blk-device,drive=vd0',
    '-device', 'virtio-serial-device',
    '-chardev', `socket,id=agent,path=${sock},server=on,wait=off`,
    '-device', `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
  ];
  const t0 = performance.now();
  const child = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
  const exited = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  let socket: Socket | null = null;
  try {
    for (let i = 0; i < 100 && !socket; i++) {
      socket = await new Promise<Socket | null>((res) => {
        const s = connect(sock);
        s.once('connect', () => res(s));
        s.once('error', () => res(null));
      });
      if (!socket) await sleep(100);
    }
    if (!socket) throw new Error(`QEMU's agent socket never opened: ${err.slice(-500)}`);
    const s = socket;
    const agent = new AgentClient({ write: (b) => s.write(b) });
    s.on('data', (b: Buffer) => agent.receive(b));
    await Promise.race([agent.ready(TIMEOUT_MS), exited.then((c) => { throw new Error(`QEMU exited (${c}): ${err.slice(-500)}`); })]);
    let out = '';
    let agentAt: number | null = null;
    await agent.execShell(PROBE, {
      stdout: (b) => {
        if (agentAt === null) agentAt = (performance.now() - t0) / 1000;
        out += Buffer.from(b).toString();
      },
      stderr: () => {},
    });
    agent.poweroff();
    const kill = setTimeout(() => child.kill('SIGKILL'), 120_000);
    await exited;
    clearTimeout(kill);
    return bootTimes(out, agentAt ?? (performance.now() - t0) / 1000);
  } finally {
    clearTimeout(timer);
    socket?.destroy();
    child.kill('SIGKILL');
  }
}

/** A tsvisor CLI call against the scratch daemon; rejects with its last stderr line unless it exits 0. */
async function cli(env: Record<string, string>, args: string[], timeoutMs = 10 * 60_000): Promise<string> {
  const r = await tsvisor(args, { env, timeoutMs });
  if (r.code !== 0) throw new Error(`tsvisor ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
  return r.stdout;
}

/** A scratch TSVISOR_HOME whose cache is the user's (or only its downloads, with `shareDownloads`). */
function scratchHome(work: string, name: string, opts: { shareDownloads?: boolean } = {}): Record<string, string> {
  const root = join(work, name);
  const home = join(root, 'home');
  mkdirSync(home, { recursive: true });
  mkdirSync(join(root, 'run'), { mode: 0o700 });
  const cache = cachePaths(tsvisorHome()).cache;
  if (opts.shareDownloads) {
    mkdirSync(join(home, 'cache'));
    for (const d of readdirSync(cache)) if (d === 'debs' || d === 'apt') symlinkSync(join(cache, d), join(home, 'cache', d));
  } else {
    symlinkSync(cache, join(home, 'cache'));
  }
  return { TSVISOR_HOME: home, XDG_RUNTIME_DIR: join(root, 'run') };
}

/**
 * Part (c): `count` VMs from one base, all running at once. At most `parallel` boot at the
 * same moment (BENCH_DEBIAN_PARALLEL, default the host's cores): a boot storm of ten
 * interpreted guests on two cores stretches every guest's boot past systemd's job timeouts,
 * which no user of two cores would ask of QEMU either. Once all answer: an exec in every
 * guest at once, the host CPU the ten idle guests take over a minute, their RSS, and each
 * overlay's allocated bytes.
 */
async function manyVms(work: string, count: number, baseBytes: number): Promise<string[]> {
  const env = scratchHome(work, 'many');
  const names = Array.from({ length: count }, (_, i) => `deb${i}`);
  const parallel = Math.max(1, Math.floor(Number(process.env.BENCH_DEBIAN_PARALLEL ?? availableParallelism())));
  type Row = { name: string; pid: number | null; state: string; guest: { agent: boolean } | null; usage: { cpuSeconds: number } };
  const list = async () => JSON.parse(await cli(env, ['vm', 'list', '--json'])) as Row[];
  const t0 = performance.now();
  const since = () => (performance.now() - t0) / 1000;
  const started = new Map<string, number>();
  const ready = new Map<string, number>();
  try {
    let next = 0;
    while (ready.size < count) {
      if (since() * 1000 > count * TIMEOUT_MS / parallel) throw new Error(`only ${ready.size} of ${count} agents answered in ${since().toFixed(0)} s`);
      while (next < count && started.size - ready.size < parallel) {
        const n = names[next++]!;
        await cli(env, ['vm', 'create', n, '--image', 'debian', '--memory', '512M', '--start']);
        started.set(n, since());
        log(`${n} started at ${since().toFixed(0)} s`);
      }
      await sleep(5_000); // one light `vm list` per poll: the CLI's own CPU slows the guests
      for (const v of await list()) {
        if (v.guest?.agent && !ready.has(v.name)) { ready.set(v.name, since()); log(`${v.name} answered at ${since().toFixed(0)} s`); }
        if (started.has(v.name) && v.state !== 'running') throw new Error(`${v.name} is ${v.state}`);
      }
    }
    const allAt = since();
    const states = await Promise.all(names.map((n) => cli(env, ['vm', 'exec', n, '--', 'systemctl', 'is-system-running', '--wait'], TIMEOUT_MS)));
    const running = states.filter((s) => s.trim() === 'running').length;
    const before = await list();
    await sleep(60_000);
    const after = await list();
    const cpu = (rows: Row[]) => rows.reduce((a, v) => a + v.usage.cpuSeconds, 0);
    const idlePercent = (cpu(after) - cpu(before)) / 60 * 100;
    const rss = after.map((v) => (v.pid ? Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${v.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024 : 0));
    const du = names.map((n) => statSync(join(env.TSVISOR_HOME!, 'vms', n, 'system.qcow2')).blocks * 512);
    const mib = (b: number) => (b / 1024 / 1024).toFixed(1);
    const boots = names.map((n) => ready.get(n)! - started.get(n)!);
    return [
      `${count} VMs from one base (vm create --image debian --memory 512M --start, 1 vCPU each; at most ${parallel} booting at once):`,
      `  boot to an answering agent, each: min ${Math.min(...boots).toFixed(0)} s, median ${median(boots).toFixed(0)} s, max ${Math.max(...boots).toFixed(0)} s; all ${count} answering after ${allAt.toFixed(0)} s`,
      `  all ${count} at once: systemctl is-system-running --wait in every guest together printed running in ${running} of ${count}`,
      `  ${count} idle guests: ${idlePercent.toFixed(1)} % of one host core together over 60 s; RSS per VM process median ${mib(median(rss))} MiB, max ${mib(Math.max(...rss))} MiB`,
      `  host disk bytes per overlay (du): min ${mib(Math.min(...du))} MiB, median ${mib(median(du))} MiB, max ${mib(Math.max(...du))} MiB; all ${count}: ${mib(du.reduce((a, b) => a + b, 0))} MiB (the base: ${mib(baseBytes)} MiB)`,
    ];
  } finally {
    await Promise.all(names.filter((n) => started.has(n)).map((n) => cli(env, ['vm', 'stop', n, '--timeout', '120'], 5 * 60_000).catch(() => undefined)));
    await cli(env, ['daemon', 'stop'], 60_000).catch(() => undefined);
  }
}

/** Run the section; returns the report lines. */
export async function benchDebian(g: Guests, work: string): Promise<string[]> {
  const lines: string[] = [];
  let img = await ensureDebianImage({ quiet: false });
  if (process.env.BENCH_DEBIAN_BUILD === '1') {
    log('building the Debian image in a scratch cache (shares the .deb downloads)');
    const env = scratchHome(work, 'build', { shareDownloads: true });
    await cli(env, ['image', 'pull', 'debian'], 60 * 60_000);
    const fresh = JSON.parse(readFileSync(join(cachePaths(env.TSVISOR_HOME!).images, 'debian.json'), 'utf8')) as { dir: string };
    img = { ...img, buildSeconds: (JSON.parse(readFileSync(join(fresh.dir, 'manifest.json'), 'utf8')) as DebianImage).buildSeconds };
  }
  if (process.env.BENCH_DEBIAN_BOOT !== '0') {
    log('boot: tsvisor run --image debian');
    const t = await bootTsvisor();
    let q: BootTimes | undefined;
    if (g.haveQemu) {
      log(`boot: ${QEMU} with U-Boot on a qcow2 overlay`);
      q = await bootQemu(g, img, work);
    }
    lines.push(
      `tsvisor vs ${g.qemuVersion}`,
      `guest: Debian image ${img.key} (${Object.keys(img.packages).length} packages, Linux ${img.kernelVersion}), booted by ${img.firmware.split('/').slice(-3).join('/')} from its /boot; 1 vCPU, ${MEMORY}; QEMU: -machine virt -cpu ${g.qemuCpu} -bios default, qcow2 overlay`,
      `system state at the probe: tsvisor ${t.state}, QEMU ${q?.state ?? 'n/a'}`,
      ...table([
        ['firmware (process start to kernel start)', t.kernel, q?.kernel],
        ['kernel start to multi-user.target', t.multiUser - t.kernel, q ? q.multiUser - q.kernel : undefined],
        ['process start to multi-user.target', t.multiUser, q?.multiUser],
        ['process start to an answering agent', t.agent, q?.agent],
      ], 's', 1),
      '',
      `image build (stage 1 + stage 2, downloads excluded): ${img.buildSeconds !== undefined ? `${img.buildSeconds} s` : 'n/a (built before build times were recorded; BENCH_DEBIAN_BUILD=1 builds one)'}`,
      `base image: ${(statSync(img.disk).blocks * 512 / 1024 / 1024).toFixed(0)} MiB on the host (${(img.diskSize / 1024 / 1024).toFixed(0)} MiB disk)`,
      '',
    );
    process.stdout.write(lines.join('\n') + '\n'); // the boot figures now: part (c) takes long
  }
  const count = Math.max(0, Math.floor(Number(process.env.BENCH_DEBIAN_VMS ?? 10)));
  if (!Number.isFinite(count) || count === 0) return [];
  return manyVms(work, count, statSync(img.disk).blocks * 512);
}
