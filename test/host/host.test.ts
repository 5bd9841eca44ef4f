/**
 * The supervisor against the fake VM process: lifecycle, admission, crash detection and
 * restart policy, re-adoption by a new Host, metering from /proc, CPU policy through a
 * fake cgroup root.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { detectCgroups, noCgroups } from '../../src/host/cgroups.js';
import { HostError } from '../../src/host/errors.js';
import { Host, type HostOptions } from '../../src/host/host.js';
import { restartDelayMs, shouldRestart } from '../../src/host/vm-process.js';
import { processCpuSeconds } from '../../src/host/procfs.js';
import { FAKE_VMM, tempHome, waitFor } from './helpers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const { root, paths } = tempHome();
const hosts: Host[] = [];
const pids: number[] = [];

after(async () => {
  for (const h of hosts) await h.close();
  for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
  rmSync(root, { recursive: true, force: true });
});

async function open(extra: Partial<HostOptions> = {}): Promise<Host> {
  const h = await Host.open({
    paths, vmmEntry: FAKE_VMM, cgroups: noCgroups('/nonexistent', 'test: no cgroups'), ensureImage: false,
    pollMs: 100, flushMs: 500, capacity: { cores: 2, memoryBytes: 4 * GiB }, ...extra,
  });
  hosts.push(h);
  return h;
}

async function closeHost(h: Host): Promise<void> {
  await h.close();
  hosts.splice(hosts.indexOf(h), 1);
}

test('restart policy decisions and backoff', () => {
  assert.equal(shouldRestart('no', 'crash'), false);
  assert.equal(shouldRestart('on-failure', 'crash'), true);
  assert.equal(shouldRestart('on-failure', 'poweroff'), false);
  assert.equal(shouldRestart('always', 'poweroff'), true);
  assert.equal(shouldRestart('always', 'requested'), false);
  assert.equal(restartDelayMs(0), 500);
  assert.equal(restartDelayMs(3), 4000);
  assert.equal(restartDelayMs(20), 30_000);
});

describe('Host with the fake VM process', () => {
  let h: Host;

  test('create validates and persists; duplicates and bad values are refused', async () => {
    h = await open();
    const v = h.create({ name: 'alpha', memoryBytes: 1 * GiB, cpuWeight: 200 });
    assert.equal(v.state, 'stopped');
    assert.equal(v.definition.vcpus, 1);
    assert.equal(v.definition.restart, 'no');
    const onDisk = JSON.parse(readFileSync(join(paths.vms, 'alpha', 'config.json'), 'utf8'));
    assert.equal(onDisk.memoryBytes, GiB);
    assert.equal(onDisk.cpuWeight, 200);
    assert.throws(() => h.create({ name: 'alpha' }), (e: unknown) => e instanceof HostError && e.code === 'already_exists');
    assert.throws(() => h.create({ name: 'Bad_Name' }), (e: unknown) => e instanceof HostError && e.code === 'invalid_argument');
    assert.throws(() => h.create({ name: 'neg', memoryBytes: -1 }), (e: unknown) => e instanceof HostError && e.code === 'invalid_argument');
    assert.throws(() => h.create({ name: 'nodisk', disks: [{ path: '/nonexistent/disk.img' }] }), /no such file/);
    assert.ok(!existsSync(join(paths.vms, 'neg')));
    assert.ok(!existsSync(join(paths.vms, 'nodisk')));
  });

  test('start, status, pause/resume, stop', async () => {
    const v = await h.start('alpha');
    assert.equal(v.state, 'running');
    assert.ok(v.pid && v.pid > 0);
    pids.push(v.pid!);
    assert.equal(readFileSync(join(paths.vms, 'alpha', 'vm.pid'), 'utf8').trim(), String(v.pid));
    assert.equal(h.info().memory.allocatedBytes, GiB);
    await assert.rejects(h.start('alpha'), (e: unknown) => e instanceof HostError && e.code === 'conflict');
    assert.equal((await h.pause('alpha')).state, 'paused');
    assert.equal((await h.resume('alpha')).state, 'running');
    const s = await h.stop('alpha', { timeoutMs: 5000 });
    assert.equal(s.state, 'stopped');
    assert.equal(s.lastExit?.reason, 'requested');
    assert.equal(h.info().memory.allocatedBytes, 0);
    await assert.rejects(h.stop('alpha'), (e: unknown) => e instanceof HostError && e.code === 'conflict');
  });

  test('info of a running VM is what its process says now, not the last poll', async () => {
    const slow = await open({ pollMs: 60_000 }); // the next status poll is minutes away
    writeFileSync(join(root, 'disc.iso'), Buffer.alloc(2048));
    slow.create({ name: 'disc', memoryBytes: 256 * MiB, cdrom: join(root, 'disc.iso') });
    pids.push((await slow.start('disc')).pid!);
    assert.deepEqual(slow.get('disc').cdrom, { path: join(root, 'disc.iso'), locked: false });
    writeFileSync(join(paths.vms, 'disc', 'fake-tray-locked'), ''); // the guest mounts the disc
    assert.deepEqual(slow.get('disc').cdrom?.locked, false, 'the last poll');
    assert.deepEqual((await slow.current('disc')).cdrom, { path: join(root, 'disc.iso'), locked: true });
    await slow.kill('disc');
    await closeHost(slow);
  });

  test('admission control refuses what the overcommit ratio cannot guarantee', async () => {
    h.create({ name: 'big', memoryBytes: 3 * GiB });
    await h.start('alpha'); // 1 GiB
    pids.push(h.get('alpha').pid!);
    await h.start('big'); // 4 GiB of 4 GiB
    pids.push(h.get('big').pid!);
    h.create({ name: 'extra', memoryBytes: 64 * MiB });
    await assert.rejects(h.start('extra'), (e: unknown) => {
      assert.ok(e instanceof HostError);
      assert.equal(e.code, 'insufficient_resources');
      assert.match(e.message, /requested 64 MiB.*allocated 4 GiB.*limit 4 GiB.*capacity 4 GiB × overcommit 1/);
      return true;
    });
    assert.equal(h.get('extra').state, 'stopped');
    await h.kill('big');
    assert.equal(h.get('big').state, 'stopped');
    await h.start('extra');
    pids.push(h.get('extra').pid!);
    await h.kill('extra');
  });

  test('kill -9 of one VM process: the other keeps running, this one is recorded crashed', async () => {
    h.create({ name: 'beta', memoryBytes: 128 * MiB });
    const b = await h.start('beta');
    pids.push(b.pid!);
    process.kill(b.pid!, 'SIGKILL');
    await waitFor(() => h.get('beta').state === 'crashed', 5000, 'beta crashed');
    const info = h.get('beta');
    assert.equal(info.lastExit?.reason, 'crash');
    assert.equal(info.lastExit?.signal, 'SIGKILL');
    assert.equal(h.get('alpha').state, 'running');
    assert.ok(!existsSync(join(paths.vms, 'beta', 'vm.pid')));
  });

  test('restart policy on-failure restarts a crashed VM process', async () => {
    h.create({ name: 'flaky', memoryBytes: 64 * MiB, restart: 'on-failure' });
    const env = { ...process.env, FAKE_VMM_CRASH_MS: '300' };
    await closeHost(h);
    h = await open({ env });
    const first = await h.start('flaky');
    pids.push(first.pid!);
    await waitFor(() => h.get('flaky').restarts >= 1 && h.get('flaky').state === 'running', 8000, 'automatic restart');
    pids.push(h.get('flaky').pid!);
    assert.notEqual(h.get('flaky').pid, first.pid);
    assert.equal(h.get('flaky').lastExit?.code, 3);
    // stop it for good (a requested stop is never restarted)
    await waitFor(() => h.get('flaky').state === 'running', 8000, 'running again');
    await h.kill('flaky').catch(() => undefined);
    await h.update('flaky', { restart: 'no' });
    await waitFor(() => h.get('flaky').state !== 'running' && h.get('flaky').state !== 'starting', 8000, 'flaky down');
  });

  test('a new Host re-adopts running VM processes and notices those that died meanwhile', async () => {
    const pid = h.get('alpha').pid!;
    assert.equal(h.get('alpha').state, 'running');
    await closeHost(h);
    h = await open();
    assert.equal(h.get('alpha').state, 'running');
    assert.equal(h.get('alpha').pid, pid);
    // gone while no daemon watched: crashed
    await closeHost(h);
    process.kill(pid, 'SIGKILL');
    await waitFor(() => { try { process.kill(pid, 0); return false; } catch { return true; } }, 5000, 'process gone');
    h = await open();
    assert.equal(h.get('alpha').state, 'crashed');
  });

  test('CPU metering follows the kernel\'s accounting of the process', async () => {
    await closeHost(h);
    h = await open({ env: { ...process.env, FAKE_VMM_BUSY: '1', FAKE_VMM_DISK_RATE: '100000' } });
    h.create({ name: 'busy', memoryBytes: 256 * MiB, disks: [{ path: FAKE_VMM }] });
    const v = await h.start('busy');
    pids.push(v.pid!);
    await new Promise((r) => setTimeout(r, 2500));
    const before = processCpuSeconds(v.pid!)!;
    const u = h.usage().vms.find((x) => x.name === 'busy')!;
    const afterK = processCpuSeconds(v.pid!)!;
    assert.ok(before > 1, `busy process used ${before} s`);
    assert.ok(u.cpuSeconds >= before * 0.95 && u.cpuSeconds <= afterK * 1.05, `metered ${u.cpuSeconds} s, kernel ${before}..${afterK} s`);
    assert.ok(u.memoryGiBSeconds > 0.5 && u.memoryGiBSeconds < 1, `memory GiB·s ${u.memoryGiBSeconds}`);
    await waitFor(() => h.usage().vms.find((x) => x.name === 'busy')!.diskReadBytes > 0, 5000, 'disk bytes');
    const top = h.top().find((r) => r.name === 'busy')!;
    assert.ok(top.cpuPercent > 5, `top cpu ${top.cpuPercent}%`);
    assert.ok(top.rssBytes && top.rssBytes > 0);
    await h.kill('busy');
    const total = h.usage().vms.find((x) => x.name === 'busy')!.cpuSeconds;
    assert.ok(total >= u.cpuSeconds);
    // persisted
    h.flush(true);
    const ledger = JSON.parse(readFileSync(paths.usage, 'utf8'));
    assert.equal(ledger.vms.busy.cpuSeconds, total);
  });

  test('a stop asked before the daemon restarted stays a stop (no restart under restart=always)', async () => {
    await closeHost(h);
    h = await open({ env: { ...process.env, FAKE_VMM_STOP_MS: '1500' } });
    h.create({ name: 'gamma', memoryBytes: 64 * MiB, restart: 'always' });
    const v = await h.start('gamma');
    pids.push(v.pid!);
    const stopping = h.stop('gamma', { timeoutMs: 10_000 }).catch(() => undefined);
    await waitFor(() => h.get('gamma').state === 'stopping', 5000, 'stopping');
    await closeHost(h);
    h = await open();
    assert.equal(h.get('gamma').state, 'stopping', 'the new daemon knows the stop is under way');
    await waitFor(() => h.get('gamma').state === 'stopped', 8000, 'stopped');
    assert.equal(h.get('gamma').lastExit?.reason, 'requested');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(h.get('gamma').state, 'stopped', 'not restarted');
    assert.equal(h.get('gamma').restarts, 0);
    await stopping;
  });

  test('an automatic restart waiting out its backoff is done by the next daemon', async () => {
    await closeHost(h);
    h = await open({ env: { ...process.env, FAKE_VMM_CRASH_MS: '200' } });
    h.create({ name: 'delta', memoryBytes: 64 * MiB, restart: 'on-failure' });
    pids.push((await h.start('delta')).pid!);
    await waitFor(() => h.get('delta').state === 'crashed', 5000, 'crashed');
    await closeHost(h); // before the 0.5 s backoff ends
    h = await open();
    await waitFor(() => h.get('delta').state === 'running', 8000, 'restarted by the new daemon');
    pids.push(h.get('delta').pid!);
    assert.equal(h.get('delta').restarts, 1);
    await h.update('delta', { restart: 'no' });
    await h.kill('delta');
  });

  test('restart=always backs off for a guest that keeps powering off at once', async () => {
    await closeHost(h);
    const lines: string[] = [];
    h = await open({ env: { ...process.env, FAKE_VMM_POWEROFF_MS: '100' }, log: (l) => lines.push(l) });
    h.create({ name: 'eps', memoryBytes: 64 * MiB, restart: 'always' });
    pids.push((await h.start('eps')).pid!);
    await waitFor(() => h.get('eps').restarts >= 2 && h.get('eps').state === 'stopped', 10_000, 'two automatic restarts');
    const delays = lines.map((l) => /^eps: restart policy always: restarting in (\d+) ms$/.exec(l)).filter((m) => m).map((m) => Number(m![1]));
    assert.deepEqual(delays.slice(0, 3), [500, 1000, 2000]);
    assert.equal(h.get('eps').lastExit?.reason, 'poweroff');
    await h.update('eps', { restart: 'no' });
  });

  test('a VM that ended while no daemon ran is metered up to the time it ended', async () => {
    await closeHost(h);
    h = await open();
    h.create({ name: 'zeta', memoryBytes: 1 * GiB });
    const v = await h.start('zeta');
    pids.push(v.pid!);
    await closeHost(h);
    const before = JSON.parse(readFileSync(paths.usage, 'utf8')).vms.zeta.memoryGiBSeconds as number;
    process.kill(v.pid!, 'SIGKILL');
    await waitFor(() => { try { process.kill(v.pid!, 0); return false; } catch { return true; } }, 5000, 'process gone');
    const at = Date.now();
    writeFileSync(join(paths.vms, 'zeta', 'vm.exit'), JSON.stringify({ code: 0, reason: 'guest powered off', pid: v.pid, at }) + '\n');
    await new Promise((r) => setTimeout(r, 2000)); // no daemon: not the VM's time
    h = await open();
    const info = h.get('zeta');
    assert.equal(info.state, 'stopped');
    assert.equal(info.lastExit?.reason, 'poweroff');
    assert.equal(info.lastExit?.at, at);
    const after = h.usage().vms.find((x) => x.name === 'zeta')!.memoryGiBSeconds;
    assert.ok(after - before < 1, `charged ${after - before} GiB·s for a VM that had ended (2 s of 1 GiB would be 2)`);
  });

  test('delete needs the VM stopped unless forced; usage totals are kept', async () => {
    const v = await h.start('beta');
    pids.push(v.pid!);
    await assert.rejects(h.delete('beta'), (e: unknown) => e instanceof HostError && e.code === 'conflict');
    await h.delete('beta', { force: true });
    assert.throws(() => h.get('beta'), (e: unknown) => e instanceof HostError && e.code === 'not_found');
    assert.ok(!existsSync(join(paths.vms, 'beta')));
    assert.equal(h.usage().vms.find((x) => x.name === 'beta')?.deleted, true);
  });
});

describe('Host with a fake cgroup v1 root', () => {
  test('the VM process is put in tsvisor/<name> with its weight and cap; vm set changes them live', async () => {
    const cgRoot = join(root, 'cgroup');
    mkdirSync(join(cgRoot, 'cpu'), { recursive: true });
    mkdirSync(join(cgRoot, 'cpuacct'), { recursive: true });
    writeFileSync(join(cgRoot, 'cpu', 'cpu.shares'), '1024\n');
    writeFileSync(join(cgRoot, 'cpuacct', 'cpuacct.usage'), '0\n');
    const h = await open({ cgroups: detectCgroups(cgRoot) });
    h.create({ name: 'capped', memoryBytes: 64 * MiB, cpuWeight: 200, cpuCap: 50 });
    const v = await h.start('capped');
    pids.push(v.pid!);
    const dir = join(cgRoot, 'cpu', 'tsvisor', 'capped');
    assert.equal(v.cgroup, dir);
    assert.equal(readFileSync(join(dir, 'cpu.shares'), 'utf8').trim(), '2048');
    assert.equal(readFileSync(join(dir, 'cpu.cfs_quota_us'), 'utf8').trim(), '50000');
    assert.equal(readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim(), String(v.pid));
    assert.equal(readFileSync(join(cgRoot, 'cpuacct', 'tsvisor', 'capped', 'cgroup.procs'), 'utf8').trim(), String(v.pid));
    await h.update('capped', { cpuWeight: 300, cpuCap: 0 });
    assert.equal(readFileSync(join(dir, 'cpu.shares'), 'utf8').trim(), '3072');
    assert.equal(readFileSync(join(dir, 'cpu.cfs_quota_us'), 'utf8').trim(), '-1');
    assert.equal(h.info().cgroup.version, 'v1');
    await h.kill('capped');
    await closeHost(h);
  });
  test('vm set on a running VM: growth is admitted first; what the VM took is kept when a later change is refused', async () => {
    const h = await open();
    h.create({ name: 'elastic', memoryBytes: 1 * GiB, maxMemoryBytes: 3 * GiB, vcpus: 1, maxVcpus: 2 });
    h.create({ name: 'other', memoryBytes: 2 * GiB });
    pids.push((await h.start('elastic')).pid!, (await h.start('other')).pid!);
    assert.equal(h.info().memory.allocatedBytes, 3 * GiB);
    // 1 GiB more would pass the 4 GiB budget
    await assert.rejects(h.update('elastic', { memoryBytes: 2 * GiB + 512 * MiB }), (e: unknown) => e instanceof HostError && e.code === 'insufficient_resources' && /cannot grow elastic/.test(e.message));
    assert.equal(h.get('elastic').definition.memoryBytes, GiB);
    assert.equal(h.info().memory.allocatedBytes, 3 * GiB, 'the reservation is unchanged');
    // memory taken, vCPUs refused by the guest: the definition keeps the memory
    await assert.rejects(h.update('elastic', { memoryBytes: 2 * GiB, vcpus: 2 }), (e: unknown) => e instanceof HostError && e.code === 'conflict' && /cannot change the vCPUs of elastic: the guest refused/.test(e.message));
    const v = h.get('elastic');
    assert.equal(v.definition.memoryBytes, 2 * GiB);
    assert.equal(v.definition.vcpus, 1);
    assert.equal(v.allocatedMemoryBytes, 2 * GiB);
    assert.equal(h.info().memory.allocatedBytes, 4 * GiB);
    assert.equal(JSON.parse(readFileSync(join(paths.vms, 'elastic', 'config.json'), 'utf8')).memoryBytes, 2 * GiB, 'on disk too');
    // above the RAM it booted with: the VM process's reason, one line
    await h.update('elastic', { memoryBytes: GiB });
    await assert.rejects(h.update('other', { memoryBytes: 3 * GiB }), (e: unknown) => e instanceof HostError && e.code === 'invalid_argument' && /other: above the maximum/.test(e.message));
    await h.kill('elastic');
    await h.kill('other');
    await closeHost(h);
  });

  test('vm disk attach/detach: a running VM takes the change and its definition keeps it; a refusal changes nothing', async () => {
    const h = await open();
    const a = join(root, 'hot-a.raw');
    const b = join(root, 'hot-b.raw');
    writeFileSync(a, Buffer.alloc(MiB));
    writeFileSync(b, Buffer.alloc(MiB));
    h.create({ name: 'hot', memoryBytes: 256 * MiB, disks: [{ path: a }] });
    // stopped: the definition only, after the image was checked
    await assert.rejects(h.attachDisk('hot', join(root, 'missing.raw')), (e: unknown) => e instanceof HostError && e.code === 'invalid_argument');
    await assert.rejects(h.attachDisk('hot', a), (e: unknown) => e instanceof HostError && /already attached to hot/.test(e.message));
    assert.equal((await h.attachDisk('hot', b, { readonly: true })).device, null);
    assert.deepEqual(h.get('hot').definition.disks, [{ path: a, readonly: false }, { path: b, readonly: true }]);
    await h.detachDisk('hot', 'vdb');
    assert.deepEqual(h.get('hot').definition.disks, [{ path: a, readonly: false }]);
    // running: through the VM process, which names the guest's device
    pids.push((await h.start('hot')).pid!);
    const r = await h.attachDisk('hot', b);
    assert.equal(r.device, 'vdb');
    assert.deepEqual(r.vm.definition.disks.map((d) => d.path), [a, b]);
    assert.deepEqual(JSON.parse(readFileSync(join(paths.vms, 'hot', 'config.json'), 'utf8')).disks.map((d: { path: string }) => d.path), [a, b], 'on disk too');
    // the guest has it mounted: refused with its reason, nothing changed; forced, it goes
    writeFileSync(join(paths.vms, 'hot', 'fake-mounted'), b);
    await assert.rejects(h.detachDisk('hot', b), (e: unknown) => e instanceof HostError && e.code === 'conflict' && /^cannot detach .*hot-b\.raw from hot: \/dev\/vdb is mounted at \/data/.test(e.message));
    assert.equal(h.get('hot').definition.disks.length, 2);
    await assert.rejects(h.detachDisk('hot', 'vdc'), (e: unknown) => e instanceof HostError && e.code === 'invalid_argument' && /hot has no disk vdc/.test(e.message));
    await h.detachDisk('hot', 'vdb', { force: true });
    assert.deepEqual(h.get('hot').definition.disks.map((d) => d.path), [a]);
    await h.kill('hot');
    await closeHost(h);
  });

  test('disk weights: while two VMs keep the disk busy and one is slowed, the one above its weighted part is held to it; let go when that brings no relief', async () => {
    const h = await open({ env: { ...process.env, FAKE_VMM_DISK_IOPS: '1000' } });
    h.create({ name: 'dw-a', memoryBytes: 256 * MiB });
    h.create({ name: 'dw-b', memoryBytes: 256 * MiB, diskWeight: 300 });
    pids.push((await h.start('dw-a')).pid!, (await h.start('dw-b')).pid!);
    assert.equal(h.get('dw-b').definition.diskWeight, 300);
    await new Promise((r) => setTimeout(r, 3000)); // the baselines: 1 ms a request
    assert.deepEqual([h.get('dw-a').diskShare, h.get('dw-b').diskShare], [null, null], 'both busy, nobody slowed');
    writeFileSync(join(paths.vms, 'dw-b', 'fake-disk-latency'), '5');
    // 1000 + 200 requests/s between them, 1:3: a's part is 300
    await waitFor(() => h.get('dw-a').diskShare !== null, 15_000, 'dw-a gets a share');
    const share = h.get('dw-a').diskShare!;
    assert.ok(share.iops >= 300 && share.iops <= 300 * 1.2, `dw-a held to ${share.iops} requests/s`);
    assert.equal(h.get('dw-b').diskShare, null);
    // dw-b stays as slow (on its own, in this fake): dw-a is let go again
    await waitFor(() => h.get('dw-a').diskShare === null, 20_000, 'dw-a let go');
    await h.kill('dw-a');
    await h.kill('dw-b');
    await closeHost(h);
  });

  test('dynamic memory: the budget follows the guests\' needs, is never exceeded, and a start makes room or is refused with the figures', async () => {
    const h = await open({ roomWaitMs: 3000 });
    const dyn = { memoryBytes: GiB, maxMemoryBytes: 3 * GiB, memoryPolicy: 'dynamic' as const, minMemoryBytes: 256 * MiB };
    h.create({ name: 'mbusy', ...dyn, memoryPriority: 80 });
    h.create({ name: 'midle1', ...dyn });
    h.create({ name: 'midle2', ...dyn });
    h.create({ name: 'mfixed', memoryBytes: GiB });
    assert.throws(() => h.create({ name: 'bad1', ...dyn, minMemoryBytes: 2 * GiB }), /minimum memory 2048 MiB: expected whole MiB from 64 MiB to the memory \(1024 MiB\)/);
    assert.throws(() => h.create({ name: 'bad2', memoryBytes: GiB, minMemoryBytes: 512 * MiB }), /need the dynamic memory policy/);
    assert.throws(() => h.create({ name: 'bad3', ...dyn, memoryPriority: 101 }), /memory priority 101/);
    let worst = 0;
    const watch = setInterval(() => { worst = Math.max(worst, h.info().memory.allocatedBytes); }, 20);
    try {
      for (const n of ['mbusy', 'midle1', 'midle2']) pids.push((await h.start(n)).pid!);
      const now = (n: string) => h.get(n).memory?.currentBytes ?? 0;
      // idle guests (working set 100 MiB) shrink to their minimum; their ceilings still share the rest
      await waitFor(() => now('midle1') === 256 * MiB && now('midle2') === 256 * MiB && now('mbusy') === 256 * MiB, 30_000, 'idle VMs to shrink');
      // the busy one's working set grows to 2800 MiB: it gets working set + 20 %, capped at its 3 GiB
      writeFileSync(join(paths.vms, 'mbusy', 'fake-working-set'), '2800');
      await waitFor(() => now('mbusy') === 3 * GiB, 10_000, 'the busy VM to grow');
      assert.equal(h.get('mbusy').memory?.policy?.minBytes, 256 * MiB);
      // a static 1 GiB VM: 4 GiB - 3 GiB - 2 x 256 MiB leaves 512 MiB, and mbusy can give only 240 MiB more
      await assert.rejects(h.start('mfixed'), (e: unknown) => e instanceof HostError && e.code === 'insufficient_resources' && /cannot start mfixed: not enough memory: requested 1 GiB/.test(e.message));
      // once it needs less, the start makes room by cutting its ceiling
      writeFileSync(join(paths.vms, 'mbusy', 'fake-working-set'), '1500');
      pids.push((await h.start('mfixed')).pid!);
      assert.ok(now('mbusy') <= 2 * GiB + 512 * MiB, `mbusy gave back: ${now('mbusy') / MiB} MiB`);
      // guarantees: a fourth dynamic VM whose minimum does not fit is refused at once
      // (guaranteed now: 3 x 256 MiB + 1 GiB)
      h.create({ name: 'mgreedy', memoryBytes: 2560 * MiB, memoryPolicy: 'dynamic', minMemoryBytes: 2560 * MiB });
      await assert.rejects(h.start('mgreedy'), /cannot start mgreedy \(guaranteed memory\): not enough memory: requested 2.5 GiB .*allocated 1.8 GiB/);
      // back to static: the memory stays where it is and moves only when asked
      await h.update('midle1', { memoryPolicy: 'static' });
      await waitFor(() => h.get('midle1').memory?.policy === undefined, 5000, 'the policy to end');
      assert.equal(h.get('midle1').definition.minMemoryBytes, undefined);
    } finally {
      clearInterval(watch);
      // also after a failure: VMs left running would skew the next test's budget
      for (const n of ['mbusy', 'midle1', 'midle2', 'mfixed']) await h.kill(n).catch(() => undefined);
      await closeHost(h);
    }
    assert.ok(worst <= 4 * GiB, `the budget was exceeded: ${worst / MiB} MiB`);
  });

  test('dynamic memory: when the host runs short, the lower priority gives back first', async () => {
    let short = false;
    const G = 24 * GiB;
    const h = await open({ hostMemory: () => ({ totalBytes: G, availableBytes: short ? G * 0.05 - 128 * MiB : G / 2, stallPercent: 0 }) });
    const dyn = { memoryBytes: GiB, maxMemoryBytes: 2 * GiB, memoryPolicy: 'dynamic' as const, minMemoryBytes: 256 * MiB };
    h.create({ name: 'plow', ...dyn, memoryPriority: 10 });
    h.create({ name: 'phigh', ...dyn, memoryPriority: 90 });
    for (const n of ['plow', 'phigh']) {
      writeFileSync(join(paths.vms, n, 'fake-working-set'), '600');
      pids.push((await h.start(n)).pid!);
    }
    const now = (n: string) => h.get(n).memory?.currentBytes ?? 0;
    try {
      // working set 600 + 120 buffer + the 32 MiB a shrink leaves: both come down from 1 GiB to 752 MiB after the calm spell
      await waitFor(() => now('plow') === 752 * MiB && now('phigh') === 752 * MiB, 30_000, 'both at working set + buffer');
      short = true; // MemAvailable 128 MiB under the host's 5 % reserve
      await waitFor(() => now('plow') < 752 * MiB, 10_000, 'the low priority to give back');
      await new Promise((r) => setTimeout(r, 2000));
      // the high priority keeps its working set + buffer; the low one gives what it can beyond its working set
      assert.ok(now('phigh') >= 720 * MiB, `phigh: ${now('phigh') / MiB} MiB`);
      assert.ok(now('plow') >= 600 * MiB && now('plow') < 720 * MiB, `plow: ${now('plow') / MiB} MiB`);
    } finally {
      for (const n of ['plow', 'phigh']) await h.kill(n).catch(() => undefined);
      await closeHost(h);
    }
  });
});
