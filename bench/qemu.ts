/**
 * Bench section `boot`: tsvisor side by side with `qemu-system-riscv64` (TCG) on the same
 * kernel, initramfs, kernel command line, RAM (512 MiB), vCPU count (1) and disk.
 *
 *   (a) seconds to userspace: from process start to the first output of `echo READY`
 *       run by the default image's /init (the command travels in a second cpio archive
 *       appended to the initramfs, exactly as `tsvisor run` does it);
 *   (b) in-guest work, timed inside the guest with /proc/uptime (10 ms resolution), so
 *       boot time does not pollute it.
 *
 * Environment: BENCH_BOOTS (boot samples per side, default 1).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Guests, TIMED_SHELL_FN, check, log, median, parseTimes, pseudoRandomBytes, shq, table } from './common.js';

const MEMORY = '512M';
const DISK_MIB = 32;
const GZIP_MIB = 4;

/** In-guest workloads: [key, label, shell command]. /tmp/data holds GZIP_MIB MiB from the disk. */
const WORKLOADS: Array<[string, string, string]> = [
  ['diskread', `read ${DISK_MIB} MiB from virtio-blk (dd)`, 'dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null'],
  ['md5', 'dd if=/dev/zero bs=1M count=32 | md5sum', 'dd if=/dev/zero bs=1M count=32 2>/dev/null | md5sum >/dev/null'],
  ['gzip', `gzip -9 of ${GZIP_MIB} MiB`, 'gzip -9 -c /tmp/data > /tmp/data.gz'],
  ['gunzip', `gzip -d of the same (${GZIP_MIB} MiB out)`, 'gzip -d -c /tmp/data.gz > /tmp/data.out && cmp /tmp/data /tmp/data.out'],
  ['sha256', `sha256sum of ${GZIP_MIB} MiB`, 'sha256sum /tmp/data >/dev/null'],
  ['awk', 'busybox awk loop (60k iterations)',
    "awk 'BEGIN { for (i = 0; i < 60000; i++) { s += (i * i) % 7 + i / 3; n += length(substr(\"abcdef\", i % 5 + 1, 2) i) } print s, n }' >/dev/null"],
];

function workloadScript(): string {
  const lines = [
    'echo READY',
    TIMED_SHELL_FN,
    `dd if=/dev/vda of=/tmp/data bs=1M count=${GZIP_MIB} 2>/dev/null`,
    'echo 3 > /proc/sys/vm/drop_caches',
  ];
  for (const [key, , cmd] of WORKLOADS) lines.push(`w ${key} ${shq(cmd)}`);
  lines.push('echo "@@ done"');
  return lines.join('\n') + '\n';
}

interface Stats { instructions: number; seconds: number; mips: number }
function parseStats(stderr: string): Stats | null {
  const f = /tsvisor: (\d+) instructions in ([\d.]+) s \(([\d.]+) MIPS\)/.exec(stderr);
  return f ? { instructions: Number(f[1]), seconds: Number(f[2]), mips: Number(f[3]) } : null;
}

/** Run the section; returns the report lines. */
export async function benchBoot(g: Guests, work: string): Promise<string[]> {
  const boots = Math.max(1, Number(process.env.BENCH_BOOTS ?? 1) || 1);
  const disk = join(work, 'data.img');
  writeFileSync(disk, pseudoRandomBytes(DISK_MIB * 1024 * 1024, 0x2545f491));
  const script = workloadScript();

  const tBoot: number[] = [];
  const qBoot: number[] = [];
  for (let i = 0; i < boots; i++) {
    log(`boot ${i + 1}/${boots}: tsvisor run -- echo READY`);
    const t = await g.tsvisor({ cpus: 1, memory: MEMORY, command: ['echo', 'READY'] });
    check('tsvisor boot', t);
    if (t.ready === null) throw new Error('tsvisor: READY not seen');
    tBoot.push(t.ready);
    if (g.haveQemu) {
      log(`boot ${i + 1}/${boots}: qemu-system-riscv64 ... echo READY`);
      const q = await g.qemu({ cpus: 1, memory: MEMORY, command: ['echo', 'READY'] });
      check('QEMU boot', q);
      if (q.ready === null) throw new Error('QEMU: READY not seen');
      qBoot.push(q.ready);
    }
  }

  log(`workloads: tsvisor (${WORKLOADS.length} in one boot)`);
  const tw = await g.tsvisor({ cpus: 1, memory: MEMORY, disks: [disk], command: ['sh', '-c', script] });
  check('tsvisor workloads', tw);
  const tTimes = parseTimes(tw.out);
  const stats = parseStats(tw.stderr);
  let qTimes = new Map<string, number>();
  if (g.haveQemu) {
    log('workloads: QEMU');
    const qw = await g.qemu({ cpus: 1, memory: MEMORY, disks: [disk], command: ['sh', '-c', script] });
    check('QEMU workloads', qw);
    qTimes = parseTimes(qw.out);
  }

  const lines = [
    '== boot and single-vCPU work',
    ...g.header(`${MEMORY} RAM, 1 vCPU`),
    `in-guest times from /proc/uptime (10 ms resolution); boot: ${boots} sample(s), median`,
    '',
    ...table([
      ['seconds to userspace (spawn -> "READY")', median(tBoot), g.haveQemu ? median(qBoot) : undefined],
      ...WORKLOADS.map(([key, label]): [string, number | undefined, number | undefined] => [label, tTimes.get(key), qTimes.get(key)]),
    ]),
    '',
  ];
  if (stats) {
    lines.push(`tsvisor guest instruction rate (workload run, boot included): ${stats.mips.toFixed(1)} MIPS`
      + ` (${(stats.instructions / 1e9).toFixed(2)} G instructions in ${stats.seconds.toFixed(1)} s)`);
  } else {
    lines.push('tsvisor guest instruction rate: n/a (TSVISOR_STATS=1 printed nothing)');
  }
  return lines;
}
