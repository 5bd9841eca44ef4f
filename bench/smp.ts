/**
 * Bench section `smp`: a CPU-bound guest workload of two parallel processes (each a
 * busybox awk loop; no I/O, no shared data), timed in the guest with /proc/uptime, at
 * `--cpus 1` and `--cpus 2`, and the same under `qemu-system-riscv64 -smp 1` / `-smp 2`.
 * The speed-up is time(1 vCPU) / time(2 vCPUs); on a 2-core host the goal is >= 1.7x.
 * One process alone is also timed in each boot, so the cost of running two at once shows,
 * and within the 2-vCPU boot 2 x time(one) / time(two) gives the parallel speed-up free of
 * the drift between boots that shared machines show.
 */
import { Guests, TIMED_SHELL_FN, check, log, median, parseTimes, shq, table } from './common.js';

const MEMORY = '512M';
const ITERATIONS = 40_000;
const AWK = `awk 'BEGIN { for (i = 0; i < ${ITERATIONS}; i++) { s += (i * i) % 7 + i / 3; n += length(substr("abcdef", i % 5 + 1, 2) i) } print s, n }' >/dev/null`;

/** Rounds of (one, two) per boot; the median of each is reported (host speed drifts on shared machines). */
const ROUNDS = 3;

function script(): string {
  const lines = ['echo READY', TIMED_SHELL_FN];
  for (let r = 0; r < ROUNDS; r++) lines.push(`w one${r} ${shq(AWK)}`, `w two${r} ${shq(`${AWK} & ${AWK} & wait`)}`);
  lines.push('echo "@@ done"');
  return lines.join('\n') + '\n';
}

/** Median over the rounds of workload `key` (one/two). */
function medianOf(times: Map<string, number>, key: string): number | undefined {
  const xs = Array.from({ length: ROUNDS }, (_, r) => times.get(`${key}${r}`)).filter((x): x is number => x !== undefined);
  return xs.length ? median(xs) : undefined;
}

/** Run the section; returns the report lines. */
export async function benchSmp(g: Guests): Promise<string[]> {
  const times = new Map<string, Map<string, number>>();
  for (const cpus of [1, 2]) {
    log(`smp: tsvisor --cpus ${cpus}`);
    const t = await g.tsvisor({ cpus, memory: MEMORY, command: ['sh', '-c', script()] });
    check(`tsvisor --cpus ${cpus}`, t);
    times.set(`t${cpus}`, parseTimes(t.out));
    if (g.haveQemu) {
      log(`smp: qemu -smp ${cpus}`);
      const q = await g.qemu({ cpus, memory: MEMORY, command: ['sh', '-c', script()] });
      check(`QEMU -smp ${cpus}`, q);
      times.set(`q${cpus}`, parseTimes(q.out));
    }
  }
  const get = (side: string, key: string) => { const t = times.get(side); return t ? medianOf(t, key) : undefined; };
  const speedup = (side: string) => {
    const a = get(`${side}1`, 'two');
    const b = get(`${side}2`, 'two');
    return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
  };
  const ts = speedup('t');
  const qs = speedup('q');
  // within the 2-vCPU boot: two processes at once against one process twice (no drift between boots)
  const parallel = (side: string) => {
    const one = get(`${side}2`, 'one');
    const two = get(`${side}2`, 'two');
    return one !== undefined && two !== undefined && two > 0 ? (2 * one) / two : undefined;
  };
  const fmt = (x: number | undefined) => (x === undefined ? 'n/a' : `${x.toFixed(2)}x`);
  return [
    '== SMP: two CPU-bound processes (busybox awk loops) at 1 and 2 vCPUs',
    ...g.header(`${MEMORY} RAM`),
    `in-guest times from /proc/uptime, median of ${ROUNDS} rounds per boot`,
    '',
    ...table([
      ['1 vCPU: one process', get('t1', 'one'), get('q1', 'one')],
      ['1 vCPU: two processes at once', get('t1', 'two'), get('q1', 'two')],
      ['2 vCPUs: one process', get('t2', 'one'), get('q2', 'one')],
      ['2 vCPUs: two processes at once', get('t2', 'two'), get('q2', 'two')],
    ]),
    '',
    `speed-up of two processes, 2 vCPUs over 1: tsvisor ${fmt(ts)}, QEMU ${fmt(qs)} (goal for tsvisor on a 2-core host: >= 1.70x${ts === undefined ? '' : ts >= 1.7 ? ': met' : ': NOT met'})`,
    `same boot, 2 vCPUs: two processes at once vs one after the other: tsvisor ${fmt(parallel('t'))}, QEMU ${fmt(parallel('q'))}`,
  ];
}
