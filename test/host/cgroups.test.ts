import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { capToCpuMax, capToQuotaUs, detectCgroups, weightToShares } from '../../src/host/cgroups.js';

const roots: string[] = [];
after(() => { for (const r of roots) rmSync(r, { recursive: true, force: true }); });

function fakeRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'tsvisor-cg-'));
  roots.push(r);
  return r;
}

const read = (p: string) => readFileSync(p, 'utf8').trim();

test('weight and cap arithmetic', () => {
  assert.equal(weightToShares(100), 1024);
  assert.equal(weightToShares(200), 2048);
  assert.equal(weightToShares(50), 512);
  assert.equal(weightToShares(1), 10);
  assert.equal(weightToShares(10000), 102400);
  assert.equal(capToQuotaUs(0), -1);
  assert.equal(capToQuotaUs(50), 50_000);
  assert.equal(capToQuotaUs(250), 250_000);
  assert.equal(capToQuotaUs(0.1), 1000); // the kernel's minimum quota is 1 ms
  assert.equal(capToCpuMax(0), 'max 100000');
  assert.equal(capToCpuMax(50), '50000 100000');
});

test('cgroup v1 with cpu and cpuacct mounted apart (as on these hosts)', () => {
  const root = fakeRoot();
  mkdirSync(join(root, 'cpu'));
  mkdirSync(join(root, 'cpuacct'));
  writeFileSync(join(root, 'cpu', 'cpu.shares'), '1024\n');
  writeFileSync(join(root, 'cpuacct', 'cpuacct.usage'), '0\n');
  const cg = detectCgroups(root);
  assert.equal(cg.version, 'v1');
  assert.equal(cg.warning, undefined);
  const dir = cg.create('web');
  assert.equal(dir, join(root, 'cpu', 'tsvisor', 'web'));
  assert.ok(existsSync(join(root, 'cpuacct', 'tsvisor', 'web')));
  cg.apply('web', 200, 50);
  assert.equal(read(join(dir, 'cpu.shares')), '2048');
  assert.equal(read(join(dir, 'cpu.cfs_period_us')), '100000');
  assert.equal(read(join(dir, 'cpu.cfs_quota_us')), '50000');
  cg.apply('web', 100, 0);
  assert.equal(read(join(dir, 'cpu.shares')), '1024');
  assert.equal(read(join(dir, 'cpu.cfs_quota_us')), '-1');
  cg.attach('web', 4242);
  assert.equal(read(join(dir, 'cgroup.procs')), '4242');
  assert.equal(read(join(root, 'cpuacct', 'tsvisor', 'web', 'cgroup.procs')), '4242');
  writeFileSync(join(root, 'cpuacct', 'tsvisor', 'web', 'cpuacct.usage'), '1500000000\n');
  assert.equal(cg.usageNs('web'), 1_500_000_000);
  assert.equal(cg.usageNs('other'), undefined);
});

test('cgroup v1 with cpu,cpuacct mounted together', () => {
  const root = fakeRoot();
  mkdirSync(join(root, 'cpu,cpuacct'));
  writeFileSync(join(root, 'cpu,cpuacct', 'cpu.shares'), '1024\n');
  writeFileSync(join(root, 'cpu,cpuacct', 'cpuacct.usage'), '0\n');
  const cg = detectCgroups(root);
  assert.equal(cg.version, 'v1');
  const dir = cg.create('db')!;
  assert.equal(dir, join(root, 'cpu,cpuacct', 'tsvisor', 'db'));
  cg.attach('db', 7);
  writeFileSync(join(dir, 'cpuacct.usage'), '42\n');
  assert.equal(cg.usageNs('db'), 42);
});

test('cgroup v2: cpu.weight, cpu.max, cpu.stat, subtree_control', () => {
  const root = fakeRoot();
  writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
  writeFileSync(join(root, 'cgroup.subtree_control'), '');
  const cg = detectCgroups(root);
  assert.equal(cg.version, 'v2');
  assert.match(read(join(root, 'cgroup.subtree_control')), /\+cpu/);
  assert.match(read(join(root, 'tsvisor', 'cgroup.subtree_control')), /\+cpu/);
  const dir = cg.create('web')!;
  assert.equal(dir, join(root, 'tsvisor', 'web'));
  cg.apply('web', 200, 50);
  assert.equal(read(join(dir, 'cpu.weight')), '200');
  assert.equal(read(join(dir, 'cpu.max')), '50000 100000');
  cg.apply('web', 100, 0);
  assert.equal(read(join(dir, 'cpu.max')), 'max 100000');
  cg.attach('web', 99);
  assert.equal(read(join(dir, 'cgroup.procs')), '99');
  writeFileSync(join(dir, 'cpu.stat'), 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n');
  assert.equal(cg.usageNs('web'), 2_500_000_000);
});

test('a v2 root without the cpu controller falls back to v1', () => {
  const root = fakeRoot();
  writeFileSync(join(root, 'cgroup.controllers'), 'memory pids\n');
  mkdirSync(join(root, 'cpu'));
  writeFileSync(join(root, 'cpu', 'cpu.shares'), '1024\n');
  assert.equal(detectCgroups(root).version, 'v1');
});

test('neither usable: version none with a one-line warning, operations are no-ops', () => {
  const root = fakeRoot();
  const cg = detectCgroups(root);
  assert.equal(cg.version, 'none');
  assert.ok(cg.warning);
  assert.doesNotMatch(cg.warning!, /\n/);
  assert.match(cg.warning!, /NOT enforced/);
  assert.equal(cg.create('x'), undefined);
  cg.apply('x', 100, 50);
  cg.attach('x', 1);
  assert.equal(cg.usageNs('x'), undefined);
});

test('an unwritable v1 hierarchy gives the warning', { skip: process.getuid?.() === 0 ? 'root can write anywhere' : false }, () => {
  const root = fakeRoot();
  mkdirSync(join(root, 'cpu'));
  writeFileSync(join(root, 'cpu', 'cpu.shares'), '1024\n');
  chmodSync(join(root, 'cpu'), 0o555);
  const cg = detectCgroups(root);
  assert.equal(cg.version, 'none');
  assert.match(cg.warning!, /not writable/);
});
