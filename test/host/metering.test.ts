import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  l.sampleIo('vm', { diskReadBytes: 1000, diskWrittenBytes: 10 });
  l.sampleIo('vm', { diskReadBytes: 3000, diskWrittenBytes: 30 });
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
  l.sampleIo('vm', { diskReadBytes: 500, diskWrittenBytes: 5 });
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
  l1.sampleIo('vm', { diskReadBytes: 100, diskWrittenBytes: 100 });
  now += 4000;
  l1.tickMemory('vm');
  l1.flush();
  // daemon down for 6 s; the VM keeps running
  now += 6000;
  const l2 = new UsageLedger(path, () => now);
  const again = l2.beginRun('vm', { pid: 20, starttime: 300, memoryBytes: GiB, cpuBaseSeconds: 0, cgroupBaseNs: null });
  assert.equal(again.lastCpuSeconds, 10);
  l2.sampleCpu('vm', 12);
  l2.sampleIo('vm', { diskReadBytes: 150, diskWrittenBytes: 100 });
  l2.tickMemory('vm');
  assert.equal(l2.get('vm').cpuSeconds, 12);
  assert.equal(l2.get('vm').diskReadBytes, 150);
  assert.equal(l2.get('vm').memoryGiBSeconds, 10); // 4 s + the 6 s the daemon was away
  // same pid, another process (pid reuse): a new run
  l2.beginRun('vm', { pid: 20, starttime: 999, memoryBytes: GiB, cpuBaseSeconds: 0, cgroupBaseNs: null });
  l2.sampleCpu('vm', 1);
  assert.equal(l2.get('vm').cpuSeconds, 13);
});

test('network counters accumulate like disk ones; a ledger written before them reads them as 0', () => {
  let now = 7_000_000;
  const path = join(dir, 'net.json');
  // the format of the previous version: disk counters only, a run in progress
  writeFileSync(path, JSON.stringify({ version: 1, vms: { old: {
    cpuSeconds: 1, memoryGiBSeconds: 2, diskReadBytes: 300, diskWrittenBytes: 40, since: 1, updatedAt: 2,
    run: { pid: 5, starttime: 6, memoryBytes: GiB, cpuBaseSeconds: 0, cgroupBaseNs: null, lastCpuSeconds: 1, lastDiskReadBytes: 300, lastDiskWrittenBytes: 40, lastMemoryAt: now },
  } } }));
  const l = new UsageLedger(path, () => now);
  assert.equal(l.get('old').netRxBytes, 0);
  l.beginRun('old', { pid: 5, starttime: 6, memoryBytes: GiB, cpuBaseSeconds: 0, cgroupBaseNs: null });
  l.sampleIo('old', { diskReadBytes: 350, netRxBytes: 1500, netRxPackets: 1, netTxBytes: 60, netTxPackets: 1 });
  assert.equal(l.get('old').diskReadBytes, 350); // only the 50 new bytes were added
  assert.equal(l.get('old').diskWrittenBytes, 40);
  assert.equal(l.get('old').netRxBytes, 1500);
  l.sampleIo('old', { netRxBytes: 1000 }); // a counter never goes backwards
  assert.equal(l.get('old').netRxBytes, 1500);
  l.endRun('old');
  l.beginRun('old', { pid: 9, starttime: 10, memoryBytes: GiB, cpuBaseSeconds: 0, cgroupBaseNs: null });
  l.sampleIo('old', { netRxBytes: 100, netTxPackets: 2 }); // the new process counts from 0
  assert.equal(l.get('old').netRxBytes, 1600);
  assert.equal(l.get('old').netTxPackets, 3);
});

test('runCpuSeconds: cgroup when known, /proc without cgroup, else the last value', () => {
  const run: RunMeter = {
    pid: 1, starttime: 1, memoryBytes: 0, cpuBaseSeconds: 0.5, cgroupBaseNs: 1e9,
    lastCpuSeconds: 0.7, lastIo: { diskReadBytes: 0, diskWrittenBytes: 0, netRxBytes: 0, netTxBytes: 0, netRxPackets: 0, netTxPackets: 0 }, lastMemoryAt: 0,
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
