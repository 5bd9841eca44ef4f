/**
 * Bench section `boot`: tsvisor side by side with `qemu-system-riscv64` (TCG) on the same
 * kernel, initramfs, kernel command line, RAM (512 MiB), vCPU count (1) and disk.
 *
 *   (a) seconds to userspace: from process start to the first output of READY (BOOT_COMMAND,
 *       which also prints the guest's own clock, /proc/uptime, at that point: the part of
 *       the boot spent in the guest, from machine reset, firmware and kernel included)
 *       run by the default image's /init (the command travels in a second cpio archive
 *       appended to the initramfs, exactly as `tsvisor run` does it);
 *   (b) in-guest work, timed inside the guest with /proc/uptime (10 ms resolution), so
 *       boot time does not pollute it: all workloads in one boot, BENCH_ROUNDS boots a side,
 *       alternating, each workload's median reported;
 *   (c) (a) again with each side's whole process pinned to one host core (`taskset`).
 *
 * Environment: BENCH_BOOTS (boot samples per side, alternating, default 3: one boot moved by up to 30% between runs on a shared host),
 * BENCH_ROUNDS (runs of the workloads per side, alternating, default 3; each figure is the median).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Guests, TIMED_SHELL_FN, type Outcome, check, geomean, log, median, parseTimes, pseudoRandomBytes, shq, table } from './common.js';

const MEMORY = '512M';
const DISK_MIB = 32;
const GZIP_MIB = 8;
/** Bytes of the disk turned into text lines (four unsigned numbers each) for sort and awk. */
const TEXT_MIB = 2;

/** The boot's command: READY and the guest's uptime (s, from /proc/uptime), on one line. */
const BOOT_COMMAND = ['sh', '-c', 'read u x < /proc/uptime; echo READY $u'];

/** The guest uptime BOOT_COMMAND printed after READY, in s, or undefined. */
function guestUptime(out: string): number | undefined {
  const m = /READY ([\d.]+)/.exec(out);
  return m ? Number(m[1]) : undefined;
}

/** In-guest workloads: [key, label, shell command]. /tmp/data holds GZIP_MIB MiB from the disk, /tmp/text its first TEXT_MIB MiB as text. */
const WORKLOADS: Array<[string, string, string]> = [
  ['diskread', `read ${DISK_MIB} MiB from virtio-blk (dd)`, 'dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null'],
  ['int', 'integer: shell arithmetic loop (200k iterations)',
    'i=0; s=0; while [ $i -lt 200000 ]; do s=$(( (s * 31 + i) % 1000003 )); i=$((i + 1)); done; [ $s -ge 0 ]'],
  ['md5', 'dd if=/dev/zero bs=1M count=32 | md5sum', 'dd if=/dev/zero bs=1M count=32 2>/dev/null | md5sum >/dev/null'],
  ['gzip', `gzip -9 of ${GZIP_MIB} MiB`, 'gzip -9 -c /tmp/data > /tmp/data.gz'],
  ['gunzip', `gzip -d of the same (${GZIP_MIB} MiB out)`, 'gzip -d -c /tmp/data.gz > /tmp/data.out && cmp /tmp/data /tmp/data.out'],
  ['sort', `sort + md5sum + awk of ${TEXT_MIB} MiB as text`,
    "sort /tmp/text | md5sum >/dev/null && awk '{ s += $1 % 7; n++ } END { print s, n }' /tmp/text >/dev/null"],
  ['sha256', 'sha256sum of 64 MiB', 'dd if=/dev/zero bs=1M count=64 2>/dev/null | sha256sum >/dev/null'],
  ['fork', 'fork/exec loop (500 x /bin/true)', 'i=0; while [ $i -lt 500 ]; do /bin/true; i=$((i + 1)); done'],
  ['awk', 'FP: busybox awk loop (60k iterations)',
    "awk 'BEGIN { for (i = 0; i < 60000; i++) { s += (i * i) % 7 + i / 3; n += length(substr(\"abcdef\", i % 5 + 1, 2) i) } print s, n }' >/dev/null"],
];

function workloadScript(): string {
  const lines = [
    'echo READY',
    TIMED_SHELL_FN,
    `dd if=/dev/vda of=/tmp/data bs=1M count=${GZIP_MIB} 2>/dev/null`,
    `head -c ${TEXT_MIB * 1024 * 1024} /tmp/data | od -An -tu4 -w16 -v > /tmp/text`,
    'echo 3 > /proc/sys/vm/drop_caches',
  ];
  for (const [key, , cmd] of WORKLOADS) lines.push(`w ${key} ${shq(cmd)}`);
  lines.push('echo "@@ done"');
  return lines.join('\n') + '\n';
}

interface Stats { instructions: number; seconds: number; mips: number; jit: string | null }
function parseStats(stderr: string): Stats | null {
  const f = /tsvisor: (\d+) instructions in ([\d.]+) s \(([\d.]+) MIPS\)/.exec(stderr);
  const j = /; JIT: (.*)/.exec(stderr);
  return f ? { instructions: Number(f[1]), seconds: Number(f[2]), mips: Number(f[3]), jit: j ? j[1] : null } : null;
}

/** Each workload's median over runs (a workload missing from a run is left out of its median). */
function medians(runs: Array<Map<string, number>>): Map<string, number> {
  const m = new Map<string, number>();
  for (const [key] of WORKLOADS) {
    const xs = runs.map((r) => r.get(key)).filter((x): x is number => x !== undefined);
    if (xs.length) m.set(key, median(xs));
  }
  return m;
}

/** Round i's geometric mean of tsvisor/QEMU over the workloads and `bootRatio`, formatted: the spread between rounds. */
function roundMeans(t: Array<Map<string, number>>, q: Array<Map<string, number>>, bootRatio: number): string {
  return t.map((tr, i) => {
    const gm = geomean([bootRatio, ...WORKLOADS.map(([key]) => {
      const a = tr.get(key);
      const b = q[i]?.get(key);
      return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
    })]);
    return gm === undefined ? 'n/a' : `${gm.toFixed(2)}x`;
  }).join(', ');
}

/** The host core the one-core boots are pinned to. */
const ONE_CORE = '0';

/**
 * Boot to READY `boots` times a side, alternating tsvisor and QEMU (when there is one),
 * pinned to host CPUs `pin` (taskset -c) when given; returns the seconds of each boot, and
 * the guest uptimes at READY (tu, qu). Throws when a boot fails or prints no READY.
 */
async function bootBoth(g: Guests, boots: number, pin?: string): Promise<{ t: number[]; q: number[]; tu: number[]; qu: number[] }> {
  const t: number[] = [];
  const q: number[] = [];
  const tu: number[] = [];
  const qu: number[] = [];
  const where = pin === undefined ? '' : `, on host core ${pin}`;
  /** Check boot `o` of `who` and add its seconds to READY and its guest uptime to `seconds` and `uptimes`. */
  const record = (who: string, o: Outcome, seconds: number[], uptimes: number[]) => {
    check(`${who} boot`, o);
    if (o.ready === null) throw new Error(`${who}: READY not seen`);
    seconds.push(o.ready);
    const u = guestUptime(o.out);
    if (u !== undefined) uptimes.push(u);
  };
  for (let i = 0; i < boots; i++) {
    log(`boot ${i + 1}/${boots}${where}: tsvisor run -- ${BOOT_COMMAND.join(' ')}`);
    record('tsvisor', await g.tsvisor({ cpus: 1, memory: MEMORY, command: BOOT_COMMAND, pin }), t, tu);
    if (g.haveQemu) {
      log(`boot ${i + 1}/${boots}${where}: qemu-system-riscv64 ... ${BOOT_COMMAND.join(' ')}`);
      record('QEMU', await g.qemu({ cpus: 1, memory: MEMORY, command: BOOT_COMMAND, pin }), q, qu);
    }
  }
  return { t, q, tu, qu };
}

/** Run the section; returns the report lines. */
export async function benchBoot(g: Guests, work: string): Promise<string[]> {
  const boots = Math.max(1, Number(process.env.BENCH_BOOTS ?? 3) || 1);
  const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3) || 1);
  const disk = join(work, 'data.img');
  writeFileSync(disk, pseudoRandomBytes(DISK_MIB * 1024 * 1024, 0x2545f491));
  const script = workloadScript();

  const both = await bootBoth(g, boots);
  // the same boots with the whole process on one host core: tsvisor's JIT compiles on
  // threads beside the hart's, QEMU's TCG translates on its vCPU's, so a host without a
  // spare core (many VMs on few cores) slows tsvisor's boot more
  const pinned = await bootBoth(g, boots, ONE_CORE);

  // the workloads, alternating the two sides round by round: one run of each moved a ratio
  // by 30% or more on a shared host, so each figure is the median of `rounds` runs
  const tRuns: Array<Map<string, number>> = [];
  const qRuns: Array<Map<string, number>> = [];
  let stats: Stats | null = null;
  for (let r = 0; r < rounds; r++) {
    log(`workloads, round ${r + 1}/${rounds}: tsvisor (${WORKLOADS.length} in one boot)`);
    const tw = await g.tsvisor({ cpus: 1, memory: MEMORY, disks: [disk], command: ['sh', '-c', script] });
    check('tsvisor workloads', tw);
    tRuns.push(parseTimes(tw.out));
    stats ??= parseStats(tw.stderr);
    if (g.haveQemu) {
      log(`workloads, round ${r + 1}/${rounds}: QEMU`);
      const qw = await g.qemu({ cpus: 1, memory: MEMORY, disks: [disk], command: ['sh', '-c', script] });
      check('QEMU workloads', qw);
      qRuns.push(parseTimes(qw.out));
    }
  }
  log(`workloads: tsvisor --engine interp (${WORKLOADS.length} in one boot)`);
  const iw = await g.tsvisor({ cpus: 1, memory: MEMORY, disks: [disk], command: ['sh', '-c', script], engine: 'interp' });
  check('tsvisor --engine interp workloads', iw);
  const iTimes = parseTimes(iw.out);
  const tTimes = medians(tRuns);
  const qTimes = medians(qRuns);

  const rows: Array<[string, number | undefined, number | undefined]> = [
    ['seconds to userspace (spawn -> "READY")', median(both.t), g.haveQemu ? median(both.q) : undefined],
    ...WORKLOADS.map(([key, label]): [string, number | undefined, number | undefined] => [label, tTimes.get(key), qTimes.get(key)]),
  ];
  const ratio = (t: number | undefined, q: number | undefined) => (t !== undefined && q !== undefined && q > 0 ? t / q : undefined);
  const gm = geomean(rows.map(([, t, q]) => ratio(t, q)));
  const lines = [
    '== boot and single-vCPU work',
    ...g.header(`${MEMORY} RAM, 1 vCPU`),
    `in-guest times from /proc/uptime (10 ms resolution); boot: ${boots} sample(s) a side, workloads: ${rounds} round(s) a side,`
      + ' alternating; each figure the median; tsvisor: --engine jit (the default)',
    '',
    ...table(rows),
    `geometric mean of the ratios: ${gm === undefined ? 'n/a' : `${gm.toFixed(2)}x`}`,
    ...(g.haveQemu && rounds > 1 ? [`each round's own geometric mean (its boot median included): ${roundMeans(tRuns, qRuns, median(both.t) / median(both.q))}`] : []),
    '',
    'the boot\'s part in the guest: its own clock (/proc/uptime, from machine reset) at READY, not in the mean:',
    ...table([['guest seconds to userspace', both.tu.length ? median(both.tu) : undefined, g.haveQemu && both.qu.length ? median(both.qu) : undefined]]),
    '',
    `the boot with the whole VM process on one host core (taskset -c ${ONE_CORE}), not in the mean:`,
    ...table([['seconds to userspace (spawn -> "READY")', median(pinned.t), g.haveQemu ? median(pinned.q) : undefined]]),
    '',
    'the interpreter alone (--engine interp), same workloads:',
    ...table(WORKLOADS.map(([key, label]): [string, number | undefined, number | undefined] => [label, iTimes.get(key), qTimes.get(key)])),
    '',
  ];
  if (stats) {
    lines.push(`tsvisor guest instruction rate (workload run, boot included): ${stats.mips.toFixed(1)} MIPS`
      + ` (${(stats.instructions / 1e9).toFixed(2)} G instructions in ${stats.seconds.toFixed(1)} s)`);
    if (stats.jit) lines.push(`JIT (workload run): ${stats.jit}`);
  } else {
    lines.push('tsvisor guest instruction rate: n/a (TSVISOR_STATS=1 printed nothing)');
  }
  return lines;
}
