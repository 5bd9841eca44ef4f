/**
 * SMP end to end: `tsvisor run --cpus N` with a multi-threaded guest program.
 *
 * test/e2e/guest/atomics.c is built here with Debian's cross compiler
 * (`riscv64-linux-gnu-gcc -O2 -static -pthread`) and put on a read-only ext4 disk. Its 4
 * threads each make 1,000,000 atomic increments (AMOADD) of one counter and 1,000,000
 * increments of another under a pthread mutex (LR/SC, futex); both totals must be
 * exactly 4,000,000 — a lost update means LR/SC or an AMO is not atomic across harts,
 * a hang means a lost IPI, wake-up or remote fence.
 *
 * One boot per --cpus value (1, 2, 4; a boot costs 20-35 s), running the program three
 * times in each. The --cpus 4 boot also checks /proc/cpuinfo and CPU hotplug: cpu1 goes
 * offline (SBI HSM hart_stop) and online again (hart_start), work continues on it.
 *
 * Needs the default image (`tsvisor image pull`, cache in $TSVISOR_HOME), mke2fs and
 * riscv64-linux-gnu-gcc with the riscv64 libc (apt-get install gcc-riscv64-linux-gnu
 * libc6-dev-riscv64-cross; see scripts/test-deps.sh).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildAtomicsDisk, describeRun, once, results, tsvisor } from './helpers.js';

const EXPECTED = 4 * 1_000_000;
const RUNS = 3;
/** A boot plus a few runs of the program; ~30-60 s here, more on a loaded machine. */
const BOOT_TIMEOUT_MS = 4 * 60_000;

let work = '';
let img = '';

/** The guest script: `@@ key value...` lines for the host to check. */
function guestScript(cpus: number): string {
  const lines = [
    'r() { echo "@@ $*"; }',
    'mount -o ro /dev/vda /mnt; r mount $?',
    'r nproc "$(nproc)"',
    // the program prints "atomic=N mutex=N"; its status follows
    `for i in ${Array.from({ length: RUNS }, (_, i) => i + 1).join(' ')}; do o=$(/mnt/atomics); r atomics$i "$o" $?; done`,
  ];
  if (cpus === 4) {
    lines.push(
      'grep "^processor" /proc/cpuinfo',
      'echo 0 > /sys/devices/system/cpu/cpu1/online; r offline-status $?',
      'r online-after-offline "$(cat /sys/devices/system/cpu/online)"',
      'r nproc-after-offline "$(nproc)"',
      'o=$(/mnt/atomics); r atomics-offline "$o" $?',
      'echo 1 > /sys/devices/system/cpu/cpu1/online; r online-status $?',
      'r online-after-online "$(cat /sys/devices/system/cpu/online)"',
      'r nproc-after-online "$(nproc)"',
      // field 39 of /proc/self/stat: the CPU the process last ran on (pinned to cpu1)
      'r on-cpu1 "$(taskset 2 awk \'{ print $39 }\' /proc/self/stat)"',
      'o=$(/mnt/atomics); r atomics-online "$o" $?',
    );
  }
  lines.push('r done');
  return lines.join('\n') + '\n';
}

/** Check one `@@ atomics... atomic=N mutex=N STATUS` line. */
function checkAtomics(m: Map<string, string>, key: string, what: string): void {
  const v = m.get(key);
  assert.ok(v !== undefined, `${what}: no result (the program or the guest hung?)`);
  const f = /^atomic=(\d+) mutex=(\d+) (\d+)$/.exec(v);
  assert.ok(f, `${what}: unexpected output "${v}"`);
  assert.equal(Number(f[1]), EXPECTED, `${what}: atomic counter (AMOADD) lost updates: ${v}`);
  assert.equal(Number(f[2]), EXPECTED, `${what}: mutex-protected counter lost updates: ${v}`);
  assert.equal(f[3], '0', `${what}: the program's exit status`);
}

describe('tsvisor run --cpus N (SMP end to end)', { timeout: 15 * 60_000 }, () => {
  before(async () => {
    const pull = await tsvisor(['image', 'pull'], { timeoutMs: 20 * 60_000 });
    if (pull.code !== 0) {
      throw new Error(`the SMP e2e test needs the default image; \`tsvisor image pull\` failed.\n${describeRun('tsvisor image pull', pull)}`);
    }
    work = mkdtempSync(join(tmpdir(), 'tsvisor-smp-'));
    img = buildAtomicsDisk(work, 'the SMP e2e test');
  }, { timeout: 25 * 60_000 });

  after(() => {
    if (work && !process.env.TSVISOR_E2E_KEEP) rmSync(work, { recursive: true, force: true });
  });

  // one boot per vCPU count, one after the other (each --cpus N VM wants N host cores)
  let chain: Promise<unknown> = Promise.resolve();
  const boot = (cpus: number) => once(() => {
    const p = chain.then(() => tsvisor(
      ['run', '--cpus', String(cpus), '--disk', `${img},readonly`, '--', 'sh', '-c', guestScript(cpus)],
      { timeoutMs: BOOT_TIMEOUT_MS, env: { TSVISOR_STATS: '1' } },
    ));
    chain = p.catch(() => undefined);
    return p;
  });
  const boots = new Map([1, 2, 4].map((n) => [n, boot(n)]));

  for (const cpus of [1, 2, 4]) {
    test(`--cpus ${cpus}: 4 threads x 1,000,000 atomic and mutex increments, ${RUNS} runs, exact totals`, async () => {
      const r = await boots.get(cpus)!();
      const what = `tsvisor run --cpus ${cpus}`;
      assert.equal(r.code, 0, describeRun(`${what} should exit 0`, r));
      const m = results(r);
      assert.equal(m.get('mount'), '0', describeRun(`${what}: mounting the disk`, r));
      assert.equal(m.get('nproc'), String(cpus), describeRun(`${what}: nproc`, r));
      for (let i = 1; i <= RUNS; i++) checkAtomics(m, `atomics${i}`, `${what}, run ${i}\n${describeRun(what, r)}`);
      assert.ok(m.has('done'), describeRun(`${what}: the script did not finish`, r));
    });
  }

  test('--cpus 4: /proc/cpuinfo lists harts 0-3', async () => {
    const r = await boots.get(4)!();
    const procs = r.stdout.split('\n').map((l) => /^processor\t: (\d+)\r?$/.exec(l)).filter((f) => f !== null).map((f) => Number(f![1]));
    assert.deepEqual(procs, [0, 1, 2, 3], describeRun('processor lines of /proc/cpuinfo', r));
  });

  test('--cpus 4: cpu1 goes offline and online again (SBI HSM hart_stop/hart_start), work continues', async () => {
    const r = await boots.get(4)!();
    const m = results(r);
    const what = (s: string) => describeRun(`CPU hotplug: ${s}`, r);
    assert.equal(m.get('offline-status'), '0', what('echo 0 > cpu1/online'));
    assert.equal(m.get('online-after-offline'), '0,2-3', what('/sys/devices/system/cpu/online after offlining cpu1'));
    assert.equal(m.get('nproc-after-offline'), '3', what('nproc with cpu1 offline'));
    checkAtomics(m, 'atomics-offline', what('atomics with cpu1 offline'));
    assert.equal(m.get('online-status'), '0', what('echo 1 > cpu1/online'));
    assert.equal(m.get('online-after-online'), '0-3', what('/sys/devices/system/cpu/online after onlining cpu1'));
    assert.equal(m.get('nproc-after-online'), '4', what('nproc with cpu1 back'));
    assert.equal(m.get('on-cpu1'), '1', what('a process pinned to cpu1 runs there'));
    checkAtomics(m, 'atomics-online', what('atomics after cpu1 came back'));
  });
});
