/**
 * `npm run bench`: tsvisor side by side with `qemu-system-riscv64` (TCG) on the same
 * kernel, initramfs, kernel command line, RAM (512 MiB), vCPU count (1) and disk.
 *
 *   (a) seconds to userspace: from process start to the first output of `echo READY`
 *       run by the default image's /init (the command travels in a second cpio archive
 *       appended to the initramfs, exactly as `tsvisor run` does it);
 *   (b) in-guest work, timed inside the guest with /proc/uptime (10 ms resolution), so
 *       boot time does not pollute it.
 *
 * Prints a table (tsvisor s, QEMU s, tsvisor/QEMU) and the guest instruction rate that
 * TSVISOR_STATS=1 reports. Environment: TSVISOR_HOME (image cache), BENCH_QEMU (the QEMU
 * binary, default qemu-system-riscv64), BENCH_BOOTS (boot samples per side, default 1).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDefaultImage } from '../src/images/index.js';
import { initrdWithCommand, kernelBootargs } from '../src/cli/run.js';
import { ExitMarkerFilter } from '../src/vmm/console.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/index.js
const TSVISOR_BIN = join(REPO_ROOT, 'bin', 'tsvisor.js');
const QEMU = process.env.BENCH_QEMU ?? 'qemu-system-riscv64';
const MEMORY = '512M';
/** QEMU's `rv64` minus the extensions tsvisor's hart lacks (H, Zb*, Sstc), so both guests run the same code paths. */
const QEMU_CPU = 'rv64,h=false,zba=false,zbb=false,zbc=false,zbs=false,sstc=false';
const DISK_MIB = 32;
const GZIP_MIB = 4;
const TIMEOUT_MS = 10 * 60_000;

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
    'w() { n=$1; shift; read a x < /proc/uptime; eval "$*"; s=$?; read b x < /proc/uptime; echo "@@ $n $a $b $s"; }',
    `dd if=/dev/vda of=/tmp/data bs=1M count=${GZIP_MIB} 2>/dev/null`,
    'echo 3 > /proc/sys/vm/drop_caches',
  ];
  for (const [key, , cmd] of WORKLOADS) lines.push(`w ${key} ${shq(cmd)}`);
  lines.push('echo "@@ done"');
  return lines.join('\n') + '\n';
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Deterministic data: 4 KiB blocks of either random bytes or random text (as the e2e tests). */
function pseudoRandomBytes(size: number, seed: number): Buffer {
  let s = seed >>> 0;
  const r = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
  const alphabet = Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789 \n');
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4096) {
    const end = Math.min(size, i + 4096);
    const text = (r() & 1) === 0;
    for (let j = i; j < end; j++) b[j] = text ? alphabet[r() % alphabet.length] : r() & 0xff;
  }
  return b;
}

interface Outcome {
  /** Seconds from spawn to the first "READY" on the console (null if never seen). */
  ready: number | null;
  /** Seconds from spawn to exit. */
  total: number;
  exitCode: number | null;
  /** Guest console output (exit marker removed). */
  out: string;
  stderr: string;
}

/** Spawn `cmd args`, watch its (guest console) stdout for READY and the exit marker. */
function runGuest(cmd: string, args: string[], opts: { env?: Record<string, string>; filterMarker: boolean }): Promise<Outcome> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const filter = opts.filterMarker ? new ExitMarkerFilter() : null;
    let out = '';
    let stderr = '';
    let ready: number | null = null;
    let reaper = false;
    const dec = new TextDecoder();
    child.stdout.on('data', (b: Buffer) => {
      out += dec.decode(filter ? filter.push(b) : b, { stream: true });
      if (ready === null && out.includes('READY')) ready = (performance.now() - t0) / 1000;
      // QEMU powers off by itself after the marker; give it a moment, then make sure
      if (filter?.exitCode != null && !reaper) {
        reaper = true;
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }
    });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        ready, total: (performance.now() - t0) / 1000, out, stderr,
        exitCode: filter ? filter.exitCode : code,
      });
    });
  });
}

/** `@@ key start end status` lines -> key -> seconds (in-guest). */
function parseTimes(out: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of out.split('\n')) {
    const f = /@@ (\S+) ([\d.]+) ([\d.]+) (\d+)/.exec(line);
    if (!f) continue;
    if (f[4] !== '0') throw new Error(`guest workload ${f[1]} failed with status ${f[4]}`);
    m.set(f[1], Number(f[3]) - Number(f[2]));
  }
  return m;
}

interface Stats { instructions: number; seconds: number; mips: number }
function parseStats(stderr: string): Stats | null {
  const f = /tsvisor: (\d+) instructions in ([\d.]+) s \(([\d.]+) MIPS\)/.exec(stderr);
  return f ? { instructions: Number(f[1]), seconds: Number(f[2]), mips: Number(f[3]) } : null;
}

function check(what: string, o: Outcome): void {
  if (o.exitCode !== 0) {
    throw new Error(`${what} failed (exit ${o.exitCode}) after ${o.total.toFixed(1)} s\n${o.out.slice(-2000)}\n${o.stderr.slice(-2000)}`);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function main(): Promise<void> {
  const log = (s: string) => process.stderr.write(`bench: ${s}\n`);
  const img = await ensureDefaultImage({ quiet: true });
  const bootargs = kernelBootargs();
  const boots = Math.max(1, Number(process.env.BENCH_BOOTS ?? 1) || 1);

  const work = mkdtempSync(join(tmpdir(), 'tsvisor-bench-'));
  try {
    const disk = join(work, 'data.img');
    writeFileSync(disk, pseudoRandomBytes(DISK_MIB * 1024 * 1024, 0x2545f491));
    const script = workloadScript();
    const baseInitrd = readFileSync(img.initrd);

    const qv = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
    const haveQemu = !qv.error && qv.status === 0;
    const qemuVersion = haveQemu ? qv.stdout.split('\n')[0] : `${QEMU} not found (apt-get install qemu-system-misc opensbi)`;

    // ---- tsvisor: the CLI as a user runs it
    const tsv = (command: string[], disks: string[]) => runGuest(process.execPath,
      [TSVISOR_BIN, 'run', '--memory', MEMORY, ...disks.flatMap((d) => ['--disk', `${d},readonly`]), '--', ...command],
      { env: { TSVISOR_STATS: '1' }, filterMarker: false });
    // ---- QEMU: same kernel, initramfs + the same command archive, same command line
    let qemuCpu = QEMU_CPU;
    const qemu = async (command: string[], disks: string[]): Promise<Outcome> => {
      const initrd = join(work, `qemu-initrd-${Math.random().toString(36).slice(2)}`);
      writeFileSync(initrd, initrdWithCommand(baseInitrd, command));
      const args = (cpu: string) => [
        '-machine', 'virt', '-cpu', cpu, '-nographic', '-m', MEMORY, '-smp', '1', '-bios', 'default', '-no-reboot',
        '-kernel', img.kernel, '-initrd', initrd, '-append', bootargs,
        ...disks.flatMap((d, i) => ['-drive', `file=${d},format=raw,if=none,id=vd${i},readonly=on`, '-device', `virtio-blk-device,drive=vd${i}`]),
      ];
      let o = await runGuest(QEMU, args(qemuCpu), { filterMarker: true });
      if (o.exitCode === null && /property|not found|unsupported/i.test(o.stderr) && qemuCpu !== 'rv64') {
        log(`QEMU rejected -cpu ${qemuCpu} (${o.stderr.trim().split('\n')[0]}); using -cpu rv64`);
        qemuCpu = 'rv64';
        o = await runGuest(QEMU, args(qemuCpu), { filterMarker: true });
      }
      rmSync(initrd, { force: true });
      return o;
    };

    const tBoot: number[] = [];
    const qBoot: number[] = [];
    for (let i = 0; i < boots; i++) {
      log(`boot ${i + 1}/${boots}: tsvisor run -- echo READY`);
      const t = await tsv(['echo', 'READY'], []);
      check('tsvisor boot', t);
      if (t.ready === null) throw new Error('tsvisor: READY not seen');
      tBoot.push(t.ready);
      if (haveQemu) {
        log(`boot ${i + 1}/${boots}: qemu-system-riscv64 ... echo READY`);
        const q = await qemu(['echo', 'READY'], []);
        check('QEMU boot', q);
        if (q.ready === null) throw new Error('QEMU: READY not seen');
        qBoot.push(q.ready);
      }
    }

    log(`workloads: tsvisor (${WORKLOADS.length} in one boot)`);
    const tw = await tsv(['sh', '-c', script], [disk]);
    check('tsvisor workloads', tw);
    const tTimes = parseTimes(tw.out);
    const stats = parseStats(tw.stderr);
    let qTimes = new Map<string, number>();
    if (haveQemu) {
      log('workloads: QEMU');
      const qw = await qemu(['sh', '-c', script], [disk]);
      check('QEMU workloads', qw);
      qTimes = parseTimes(qw.out);
    }

    // ---- report
    const rows: Array<[string, number | undefined, number | undefined]> = [
      ['seconds to userspace (spawn -> "READY")', median(tBoot), haveQemu ? median(qBoot) : undefined],
      ...WORKLOADS.map(([key, label]): [string, number | undefined, number | undefined] => [label, tTimes.get(key), qTimes.get(key)]),
    ];
    const w0 = Math.max(...rows.map((r) => r[0].length));
    const num = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(2));
    const lines: string[] = [];
    lines.push(`tsvisor vs ${qemuVersion}`);
    lines.push(`guest: Linux ${img.kernelVersion}, default initramfs, ${MEMORY} RAM, 1 vCPU; QEMU: -machine virt -cpu ${qemuCpu} -bios default (OpenSBI), TCG`);
    lines.push(`kernel command line (both): ${bootargs}`);
    lines.push(`in-guest times from /proc/uptime (10 ms resolution); boot: ${boots} sample(s), median`);
    lines.push('');
    lines.push(`${'measure'.padEnd(w0)}  ${'tsvisor s'.padStart(10)}  ${'QEMU s'.padStart(10)}  ${'tsvisor/QEMU'.padStart(12)}`);
    lines.push(`${'-'.repeat(w0)}  ${'-'.repeat(10)}  ${'-'.repeat(10)}  ${'-'.repeat(12)}`);
    for (const [label, t, q] of rows) {
      const ratio = t !== undefined && q !== undefined && q > 0 ? `${(t / q).toFixed(1)}x` : 'n/a';
      lines.push(`${label.padEnd(w0)}  ${num(t).padStart(10)}  ${num(q).padStart(10)}  ${ratio.padStart(12)}`);
    }
    lines.push('');
    if (stats) {
      lines.push(`tsvisor guest instruction rate (workload run, boot included): ${stats.mips.toFixed(1)} MIPS`
        + ` (${(stats.instructions / 1e9).toFixed(2)} G instructions in ${stats.seconds.toFixed(1)} s)`);
    } else {
      lines.push('tsvisor guest instruction rate: n/a (TSVISOR_STATS=1 printed nothing)');
    }
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
