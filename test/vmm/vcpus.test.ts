/** The guest-side script that brings vCPUs online and offline (src/vmm/vcpus.ts), run by the host's `sh` against a fake sysfs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VcpuChangeError, cpuOnlineScript } from '../../src/vmm/vcpus.js';

function fakeSysfs(online: number[]): string {
  const root = mkdtempSync(join(tmpdir(), 'tsvisor-cpus-'));
  online.forEach((on, c) => {
    mkdirSync(join(root, `cpu${c}`));
    writeFileSync(join(root, `cpu${c}`, 'online'), `${on}\n`);
  });
  return root;
}

function states(root: string, n: number): number[] {
  return Array.from({ length: n }, (_, c) => Number(readFileSync(join(root, `cpu${c}`, 'online'), 'utf8').trim()));
}

test('cpuOnlineScript: brings CPUs 1..count-1 online and the rest offline, CPU 0 untouched', () => {
  const root = fakeSysfs([1, 0, 0, 1]);
  try {
    execFileSync('sh', ['-c', cpuOnlineScript(3, 4, root)]);
    assert.deepEqual(states(root, 4), [1, 1, 1, 0]);
    execFileSync('sh', ['-c', cpuOnlineScript(1, 4, root)]);
    assert.deepEqual(states(root, 4), [1, 0, 0, 0]);
    execFileSync('sh', ['-c', cpuOnlineScript(4, 4, root)]);
    assert.deepEqual(states(root, 4), [1, 1, 1, 1]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('cpuOnlineScript: a CPU the guest refuses makes the script fail; counts outside 1..max are refused', () => {
  const root = fakeSysfs([1, 0]);
  try {
    rmSync(join(root, 'cpu1'), { recursive: true }); // no such CPU: the write fails
    assert.throws(() => execFileSync('sh', ['-c', cpuOnlineScript(2, 2, root)], { stdio: 'pipe' }));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  for (const n of [0, 5, 1.5]) assert.throws(() => cpuOnlineScript(n, 4), (e: unknown) => e instanceof VcpuChangeError && e.status === 400);
});
