/**
 * Bench section `overcommit`: vCPUs outnumbering host cores. The whole VM process is
 * pinned to one host core (`taskset -c 0`) and runs test/e2e/guest/atomics.c (4 threads,
 * each 1,000,000 AMO increments and 1,000,000 increments under a pthread mutex) at
 * `--cpus 1` and at `--cpus 4`; the same under `qemu-system-riscv64 -smp 1` / `-smp 4`,
 * also pinned. The figure is time(4 vCPUs) / time(1 vCPU) on one core: what running more
 * vCPUs than cores costs when their threads contend for a lock (goal for tsvisor: at most
 * 1.5x). Pause-loop exiting keeps it low: a vCPU spinning on a lock whose holder the host
 * has descheduled gives up the core (src/vmm/hart-worker.ts, HartExit.Pause).
 *
 * Needs riscv64-linux-gnu-gcc with the riscv64 libc, mke2fs and taskset.
 */
import { join } from 'node:path';
import { buildAtomicsDisk, findTool } from '../test/e2e/helpers.js';
import { Guests, TIMED_SHELL_FN, check, log, median, parseTimes, table } from './common.js';

const MEMORY = '512M';
/** Runs of the program per boot; the median is reported (host speed drifts on shared machines). */
const ROUNDS = 3;

function script(): string {
  const lines = ['mount -o ro /dev/vda /mnt || exit 1', TIMED_SHELL_FN];
  for (let r = 0; r < ROUNDS; r++) lines.push(`w atomics${r} '/mnt/atomics >/dev/null'`);
  return lines.join('\n') + '\n';
}

/** Run the section; returns the report lines. */
export async function benchOvercommit(g: Guests, work: string): Promise<string[]> {
  if (!findTool('taskset')) throw new Error('the overcommit section needs taskset (util-linux)');
  const img = buildAtomicsDisk(join(work, 'overcommit'), 'the overcommit section');
  const times = new Map<string, number | undefined>();
  const medianOf = (t: Map<string, number>) => {
    const xs = Array.from({ length: ROUNDS }, (_, r) => t.get(`atomics${r}`)).filter((x): x is number => x !== undefined);
    return xs.length === ROUNDS ? median(xs) : undefined;
  };
  for (const cpus of [1, 4]) {
    const spec = { cpus, memory: MEMORY, disks: [img], command: ['sh', '-c', script()], pin: '0' };
    log(`overcommit: tsvisor --cpus ${cpus}, pinned to host core 0`);
    const t = await g.tsvisor(spec);
    check(`tsvisor --cpus ${cpus}`, t);
    times.set(`t${cpus}`, medianOf(parseTimes(t.out)));
    if (g.haveQemu) {
      log(`overcommit: qemu -smp ${cpus}, pinned to host core 0`);
      const q = await g.qemu(spec);
      check(`QEMU -smp ${cpus}`, q);
      times.set(`q${cpus}`, medianOf(parseTimes(q.out)));
    }
  }
  const cost = (side: string) => {
    const one = times.get(`${side}1`);
    const four = times.get(`${side}4`);
    return one !== undefined && four !== undefined && one > 0 ? four / one : undefined;
  };
  const fmt = (x: number | undefined) => (x === undefined ? 'n/a' : `${x.toFixed(2)}x`);
  const tc = cost('t');
  return [
    '== Overcommit: 4 threads x (1,000,000 AMO + 1,000,000 mutex increments), whole VM pinned to one host core',
    ...g.header(`${MEMORY} RAM, read-only ext4 disk with the program`),
    `in-guest times from /proc/uptime, median of ${ROUNDS} runs per boot`,
    '',
    ...table([
      ['1 vCPU', times.get('t1'), times.get('q1')],
      ['4 vCPUs on one host core', times.get('t4'), times.get('q4')],
    ]),
    '',
    `cost of 4 vCPUs on one core, time(4) / time(1): tsvisor ${fmt(tc)}, QEMU ${fmt(cost('q'))}` +
      ` (goal for tsvisor: <= 1.50x${tc === undefined ? '' : tc <= 1.5 ? ': met' : ': NOT met'})`,
  ];
}
