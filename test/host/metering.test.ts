import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCpuSeconds, UsageLedger, type RunMeter } from '../../src/host/metering.js';

const dir = mkdtempSync(join(tmpdir(), 'tsvisor-meter-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const GiB = 1024 ** 3;

test('CPU, memory and disk accumulate across runs; counters that restart are not subtracted', () => {
  let now = 1_000_000;
  const path = join(dir, 'a.json');
  const l = new UsageLedger(path, () => now);
  // run 1, accounted by /proc only
  l.beginRun('vm', { pid: 10, starttime: 100, memoryBytes: 2 * GiB, cpuBaseSeconds: 0, cgroupBaseNs: null });
  l.sampleCpu('vm', 1.5);
  l.sampleCpu('vm', 1.2); // never goes backwards
  l.sampleCpu('vm', 4);
  l.sampleDisk('vm', 1000, 10);
  l.sampleDisk('vm', 3000, 30);
  now += 10_000;
  l.tickMemory('vm');
  assert.equal(l.get('vm').cpuSeconds, 4);
  assert.equal(l.get('vm').memoryGiBSeconds, 20); // 2 GiB × 10 s
  assert.equal(l.get('vm').diskReadBytes, 3000);
  assert.equal(l.get('vm').diskWrittenBytes, 30);
  now += 5_000;
  l.endRun('vm');
  assert.equal(l.get('vm').memoryGiBSeconds, 30);
  // run 2: new process, counters from 0 again; 0.25 s of CPU before the cgroup move
  l.beginRun('vm', { pid: 11, starttime: 200, memoryBytes: GiB, cpuBaseSeconds: 0.25, cgroupBaseNs: 5e9 });
  assert.equal(l.get('vm').cpuSeconds, 4.25);
  const run = l.run('vm')!;
  l.sampleCpu('vm', runCpuSeconds(run, 7e9, undefined)); // 0.25 + 2
  l.sampleDisk('vm', 500, 5);
  assert.equal(l.get('vm').cpuSeconds, 6.25);
  assert.equal(l.get('vm').diskReadBytes, 3500);
  assert.equal(l.get('vm').diskWrittenBytes, 35);
  l.flush();
  const saved = JSON.parse(readFileSync(path, 'utf8'));
  assert.equal(saved.version, 1);
  assert.equal(saved.vms.vm.cpuSeconds, 6.25);
  assert.equal(saved.vms.vm.run.pid, 11);
});

test('a restarted daemon continues the same run without counting twice', () => {
  let now = 5_000_000;
  const path = join(dir, 'b.json');
  const l1 = new UsageLedger(path, () => now);
  l1.beginRun('vm', { pid: 20, starttime: 300, memoryBytes: GiB, cpuBaseSeconds: 0, cgroupBaseNs: null });
  l1.sampleCpu('vm', 10);
  l1.sampleDisk('vm', 100, 100);
  now += 4000;
  l1.tickMemory('vm');
  l1.flush();
  // daemon down for 6 s; the VM keeps running
  now += 6000;
  const l2 = new UsageLedger(path, () => now);
  const again = l2.beginRun('vm', { pid: 20, starttime: 300, memoryBytes: GiB, cpuBaseSeconds: 0, cgroupBaseNs: null });
  assert.equal(again.lastCpuSeconds, 10);
  l2.sampleCpu('vm', 12);
  l2.sampleDisk('vm', 150, 100);
  l2.tickMemory('vm');
  assert.equal(l2.get('vm').cpuSeconds, 12);
  assert.equal(l2.get('vm').diskReadBytes, 150);
  assert.equal(l2.get('vm').memoryGiBSeconds, 10); // 4 s + the 6 s the daemon was away
  // same pid, another process (pid reuse): a new run
  l2.beginRun('vm', { pid: 20, starttime: 999, memoryBytes: GiB, cpuBaseSeconds: 0, cgroupBaseNs: null });
  l2.sampleCpu('vm', 1);
  assert.equal(l2.get('vm').cpuSeconds, 13);
});

test('runCpuSeconds: cgroup when known, /proc without cgroup, else the last value', () => {
  const run: RunMeter = {
    pid: 1, starttime: 1, memoryBytes: 0, cpuBaseSeconds: 0.5, cgroupBaseNs: 1e9,
    lastCpuSeconds: 0.7, lastDiskReadBytes: 0, lastDiskWrittenBytes: 0, lastMemoryAt: 0,
  };
  assert.equal(runCpuSeconds(run, 3e9, 99), 2.5);
  assert.equal(runCpuSeconds(run, undefined, 99), 0.7);
  assert.equal(runCpuSeconds({ ...run, cgroupBaseNs: null }, undefined, 3), 3);
});

test('deleted VMs keep their totals, flagged', () => {
  const l = new UsageLedger(join(dir, 'c.json'));
  l.beginRun('gone', { pid: 30, starttime: 1, memoryBytes: GiB, cpuBaseSeconds: 0, cgroupBaseNs: null });
  l.sampleCpu('gone', 2);
  l.markDeleted('gone');
  assert.equal(l.get('gone').deleted, true);
  assert.equal(l.get('gone').cpuSeconds, 2);
  assert.equal(l.run('gone'), undefined);
});
