/**
 * Bench section `idle`: the host CPU an idle VM costs. A 4-vCPU guest boots, prints
 * READY and sleeps; after a settling pause the VM process's CPU time (utime + stime from
 * /proc/<pid>/stat, every thread) is sampled over a window (default 30 s,
 * BENCH_IDLE_SECONDS), then the VM is killed. Same under `qemu-system-riscv64 -smp 4`.
 * Goal for tsvisor: under 2 % of one host core, because idle harts park in WFI.
 */
import { processCpuSeconds } from '../src/host/procfs.js';
import { Guests, log, sleep, table, type Outcome } from './common.js';

const MEMORY = '512M';
const CPUS = 4;
const SETTLE_S = 5;

/** Boot with `launch`, measure from READY + SETTLE_S over `windowS`; returns % of one core. */
async function idlePercent(launch: (hooks: { onReady(pid: number): void }) => Promise<Outcome>, windowS: number): Promise<number | undefined> {
  let measured: Promise<number | undefined> | undefined;
  const run = launch({
    onReady(pid: number) {
      measured = (async () => {
        await sleep(SETTLE_S * 1000);
        const c0 = processCpuSeconds(pid);
        const t0 = performance.now();
        await sleep(windowS * 1000);
        const c1 = processCpuSeconds(pid);
        const dt = (performance.now() - t0) / 1000;
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
        return c0 === undefined || c1 === undefined ? undefined : ((c1 - c0) / dt) * 100;
      })();
    },
  });
  const o = await run;
  if (!measured) throw new Error(`idle guest never printed READY (exit ${o.exitCode})\n${o.out.slice(-1000)}\n${o.stderr.slice(-1000)}`);
  return measured;
}

/** Run the section; returns the report lines. */
export async function benchIdle(g: Guests): Promise<string[]> {
  const windowS = Number(process.env.BENCH_IDLE_SECONDS ?? 30) || 30;
  const command = ['sh', '-c', `echo READY; sleep ${SETTLE_S + windowS + 60}`];
  log(`idle: tsvisor --cpus ${CPUS}, ${windowS} s`);
  const t = await idlePercent((hooks) => g.tsvisor({ cpus: CPUS, memory: MEMORY, command, hooks }), windowS);
  let q: number | undefined;
  if (g.haveQemu) {
    log(`idle: qemu -smp ${CPUS}, ${windowS} s`);
    q = await idlePercent((hooks) => g.qemu({ cpus: CPUS, memory: MEMORY, command, hooks }), windowS);
  }
  return [
    `== idle VM: ${CPUS} vCPUs, ${MEMORY}, guest asleep; host CPU over ${windowS} s from /proc/<pid>/stat`,
    '',
    ...table([[`host CPU, % of one core`, t, q]], '%'),
    '',
    `tsvisor idle cost: ${t === undefined ? 'n/a' : `${t.toFixed(2)} % of one core`} (goal: under 2 %${t === undefined ? '' : t < 2 ? ': met' : ': NOT met'})`,
  ];
}
