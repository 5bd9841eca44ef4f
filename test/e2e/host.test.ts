/**
 * The host daemon end to end, as a user drives it: `node bin/tsvisor.js vm ...` against a
 * daemon the CLI starts on first use, with real VM processes (dist/src/vmm/main.js)
 * booting the default image.
 *
 * With a temporary TSVISOR_HOME (the image cache is symlinked from
 * /tmp/tsvisor-home-images/cache, $TSVISOR_HOME/cache or ~/.local/share/tsvisor/cache
 * when one exists, so nothing is downloaded) and a temporary XDG_RUNTIME_DIR:
 *   - two 256 MiB VMs are created and started; list, info, host info agree;
 *   - a third is refused by admission control (host.json sets the overcommit ratio so
 *     that exactly two fit), with the numbers in the message;
 *   - the CPU weight and cap are in the VM's cgroup (when the host has a writable one);
 *   - `uname -n` through exec prints the VM name (skipped if the VM process has no exec);
 *   - kill -9 of one VM process: the other keeps running, the daemon records `crashed`;
 *   - metered CPU-seconds are within 5% of the kernel's figure for the VM process;
 *   - the daemon restarts (stop, then auto-start): the running VM is still listed,
 *     running, same pid; metering continues.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { describeRun, tempTsvisorHome, tsvisor, type RunResult } from './helpers.js';

const MiB = 1024 * 1024;
const T = 60_000;
const suffix = process.pid.toString(36);
const A = `e2e-a-${suffix}`;
const B = `e2e-b-${suffix}`;
const C = `e2e-c-${suffix}`;

let root = '';
let env: Record<string, string> = {};
const pids = new Set<number>();

function clkTck(): number { return 100; }

/** User + system CPU seconds of `pid` from /proc/<pid>/stat. */
function kernelCpuSeconds(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / clkTck();
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function cli(args: string[], what = args.join(' ')): Promise<RunResult> {
  const r = await tsvisor(args, { env, timeoutMs: 3 * T });
  assert.equal(r.code, 0, describeRun(`tsvisor ${what}`, r));
  return r;
}

async function json<T = any>(args: string[]): Promise<T> {
  return JSON.parse((await cli([...args, '--json'])).stdout) as T;
}

before(() => {
  ({ root, env } = tempTsvisorHome('tsvisor-e2e-host-'));
  // room for exactly two 256 MiB VMs: limit = 640 MiB
  writeFileSync(join(env.TSVISOR_HOME, 'host.json'), JSON.stringify({ overcommit: (640 * MiB) / totalmem() }));
});

after(async () => {
  await tsvisor(['daemon', 'stop'], { env, timeoutMs: T }).catch(() => undefined);
  for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
  for (const n of [A, B, C]) {
    for (const h of ['cpu', 'cpuacct']) { try { rmSync(`/sys/fs/cgroup/${h}/tsvisor/${n}`, { recursive: false }); } catch { /* not there */ } }
  }
  rmSync(root, { recursive: true, force: true });
});

test('host daemon: two VMs, admission, cgroups, exec, crash, metering, daemon restart', { timeout: 6 * T }, async (t) => {
  // first use starts the daemon
  await cli(['vm', 'create', A, '--memory', '256M']);
  assert.ok(existsSync(join(root, 'run', 'tsvisor', 'tsvisor.sock')), 'the daemon listens in the runtime folder');
  await cli(['vm', 'create', B, '--memory', '256M', '--cpu-weight', '200', '--cpu-cap', '50']);
  await cli(['vm', 'create', C, '--memory', '256M']);
  const dup = await tsvisor(['vm', 'create', A], { env });
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /^tsvisor: VM .* already exists\n$/);

  const [sa, sb] = await Promise.all([cli(['vm', 'start', A]), cli(['vm', 'start', B])]);
  assert.match(sa.stdout, /started \(running, pid \d+\)/);
  assert.match(sb.stdout, /started \(running, pid \d+\)/);
  const a = await json(['vm', 'info', A]);
  const b = await json(['vm', 'info', B]);
  pids.add(a.pid);
  pids.add(b.pid);
  assert.equal(a.state, 'running');
  assert.equal(b.state, 'running');
  assert.ok(alive(a.pid) && alive(b.pid));
  assert.equal(a.definition.memoryBytes, 256 * MiB);

  const list = (await cli(['vm', 'list'])).stdout;
  assert.match(list, new RegExp(`^${A}\\s+running\\s+1\\s+256 MiB\\s+${a.pid}`, 'm'));
  assert.match(list, new RegExp(`^${B}\\s+running`, 'm'));
  assert.match(list, new RegExp(`^${C}\\s+stopped`, 'm'));

  const h = await json(['host', 'info']);
  assert.equal(h.memory.allocatedBytes, 512 * MiB);
  assert.equal(h.vms.running, 2);
  assert.equal(h.vms.defined, 3);
  assert.ok(h.cores >= 1);

  // admission control: the third does not fit
  const refused = await tsvisor(['vm', 'start', C], { env });
  assert.equal(refused.code, 1, describeRun('start C', refused));
  assert.equal(refused.stderr.split('\n').filter(Boolean).length, 1, 'one line');
  assert.match(refused.stderr, /requested 256 MiB .*allocated 512 MiB .*limit 640 MiB .*capacity .* × overcommit/);

  // CPU weight and cap in the kernel's cgroup
  if (h.cgroup.version === 'v1') {
    const dir = `/sys/fs/cgroup/cpu/tsvisor/${B}`;
    assert.equal(readFileSync(join(dir, 'cpu.shares'), 'utf8').trim(), '2048');
    assert.equal(readFileSync(join(dir, 'cpu.cfs_quota_us'), 'utf8').trim(), '50000');
    assert.ok(readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').includes(String(b.pid)));
    await cli(['vm', 'set', B, '--cpu-weight', '300', '--cpu-cap', '75']);
    assert.equal(readFileSync(join(dir, 'cpu.shares'), 'utf8').trim(), '3072');
    assert.equal(readFileSync(join(dir, 'cpu.cfs_quota_us'), 'utf8').trim(), '75000');
  } else if (h.cgroup.version === 'v2') {
    assert.equal(readFileSync(join(h.cgroup.root, 'tsvisor', B, 'cpu.weight'), 'utf8').trim(), '200');
  } else {
    t.diagnostic(`cgroups not enforced here: ${h.cgroup.warning}`);
    assert.ok(h.warnings.length === 1);
  }

  // kill -9 one VM process: the other is untouched, the daemon notices
  process.kill(b.pid, 'SIGKILL');
  let bi: any;
  for (let i = 0; i < 50; i++) {
    bi = await json(['vm', 'info', B]);
    if (bi.state === 'crashed') break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(bi.state, 'crashed');
  assert.equal(bi.lastExit.signal, 'SIGKILL');
  const a2 = await json(['vm', 'info', A]);
  assert.equal(a2.state, 'running');
  assert.equal(a2.pid, a.pid);
  assert.ok(alive(a.pid));

  // exec: uname -n = the VM name (once the guest agent answers)
  let execNote = '';
  const deadline = Date.now() + 2 * T;
  for (;;) {
    const r = await tsvisor(['vm', 'exec', A, '--', 'uname', '-n'], { env, timeoutMs: T });
    if (r.code === 0) { assert.equal(r.stdout.trim(), A); break; }
    if (/HTTP 40[4]|HTTP 501|not_supported|no route|does not support/i.test(r.stderr)) { execNote = `exec not available in this VM process: ${r.stderr.trim()}`; break; }
    if (Date.now() > deadline) assert.fail(describeRun('exec uname -n (agent never answered)', r));
    await new Promise((res) => setTimeout(res, 2000));
  }
  if (execNote) t.diagnostic(`skipped the exec assertion: ${execNote}`);

  // metering: CPU-seconds within 5% of the kernel's own figure for the process
  const k0 = kernelCpuSeconds(a.pid);
  const usage = await json(['usage']);
  const k1 = kernelCpuSeconds(a.pid);
  const ua = usage.vms.find((v: { name: string }) => v.name === A);
  assert.ok(k0 > 0.5, `VM process used ${k0} CPU-seconds`);
  assert.ok(ua.cpuSeconds >= k0 * 0.95 && ua.cpuSeconds <= k1 * 1.05, `metered ${ua.cpuSeconds} s vs kernel ${k0}..${k1} s`);
  assert.ok(ua.memoryGiBSeconds > 0);
  const ub = usage.vms.find((v: { name: string }) => v.name === B);
  assert.ok(ub.cpuSeconds > 0);
  assert.match((await cli(['usage'])).stdout, new RegExp(`^${A}\\s+\\d+\\.\\d+`, 'm'));
  const top = (await cli(['top', '--once'])).stdout;
  assert.match(top, new RegExp(`^${A}\\s+running\\s+${a.pid}\\s+1\\s+\\d+\\.\\d`, 'm'));

  // daemon restart: the running VM is re-adopted
  const oldDaemon = h.daemon.pid;
  await cli(['daemon', 'stop']);
  assert.ok(!alive(oldDaemon), 'old daemon gone');
  assert.ok(alive(a.pid), 'the VM outlives the daemon');
  const a3 = await json(['vm', 'info', A]); // starts a new daemon
  assert.equal(a3.state, 'running');
  assert.equal(a3.pid, a.pid);
  const h2 = await json(['host', 'info']);
  assert.notEqual(h2.daemon.pid, oldDaemon);
  assert.equal(h2.memory.allocatedBytes, 256 * MiB);
  assert.equal((await json(['vm', 'info', B])).state, 'crashed');
  const k2 = kernelCpuSeconds(a.pid);
  const u2 = (await json(['usage'])).vms.find((v: { name: string }) => v.name === A);
  const k3 = kernelCpuSeconds(a.pid);
  assert.ok(u2.cpuSeconds >= k2 * 0.95 && u2.cpuSeconds <= k3 * 1.05, `after the daemon restart: metered ${u2.cpuSeconds} s vs kernel ${k2}..${k3} s`);

  // graceful stop
  const stopped = await json(['vm', 'stop', A, '--timeout', '20']);
  assert.equal(stopped.state, 'stopped');
  assert.ok(!alive(a.pid));
});
