/**
 * The boot stress harness: boots the default image many times across the variants that
 * once made a guest hang (issue: "a VM that sometimes never comes up"), each boot a child
 * process (stress/boot.ts) that must reach userspace and power off:
 *
 *   vCPUs      1, 2, 4, 8
 *   host load  none, or a CPU hog (a busy process per host core)
 *   placement  free, or `taskset -c 0` (every hart thread on one host core)
 *   console    quiet, or verbose (the kernel's boot log through the UART)
 *   agent      none (a command from the archive), or the guest agent probed from the first ms
 *
 * A boot that does not power off in time is reported with each hart's state (pc,
 * privilege, sstatus, sie/sip, parked, ...) and the console tail. Used by `npm run stress`
 * (stress/main.ts) for long runs and by test/e2e/stress.test.ts for a bounded one.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BootOutcome, BootRequest } from './boot.js';

/** One combination of the stress dimensions. */
export interface Variant {
  cpus: number;
  hog: boolean;
  pinned: boolean;
  verbose: boolean;
  agent: boolean;
}

/** Short name of a variant, e.g. `cpus=4 pinned hog verbose agent`. */
export function variantName(v: Variant): string {
  return [`cpus=${v.cpus}`, v.pinned ? 'pinned' : 'free', v.hog ? 'hog' : 'idle-host', v.verbose ? 'verbose' : 'quiet', v.agent ? 'agent' : 'command'].join(' ');
}

/**
 * Every variant (64), ordered so that the vCPU count changes every boot and the first 16
 * boots already take each flag both ways (8 times each).
 */
export function allVariants(): Variant[] {
  const out: Variant[] = [];
  for (let i = 0; i < 64; i++) {
    const f = (i + (i >> 4)) % 16; // with cpus = i % 4, all 64 pairs (cpus, f) occur once
    out.push({ cpus: [1, 2, 4, 8][i % 4], pinned: (f & 1) === 1, hog: (f & 2) === 2, verbose: (f & 4) === 4, agent: (f & 8) === 8 });
  }
  return out;
}

/** The result of one boot. */
export interface StressResult {
  variant: Variant;
  outcome: BootOutcome;
}

/** Options of {@link runStress}. */
export interface StressOptions {
  /** Number of boots (cycling through `variants`). */
  boots: number;
  variants: Variant[];
  /** Per-boot limit before the harts are reported and the boot counts as hung, in ms. */
  timeoutMs: number;
  /** Called after each boot. */
  onResult?(r: StressResult, index: number): void;
}

const BOOT_SCRIPT = fileURLToPath(new URL('./boot.js', import.meta.url));

/** True when `taskset` (util-linux) can run here. */
export function haveTaskset(): boolean {
  return spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' }).status === 0;
}

/**
 * Start one busy process per host core for at most `ms` (each ends by itself then, so none
 * outlives a harness that was killed); returns a function that stops them sooner.
 */
function startHog(ms: number): () => void {
  const hogs: ChildProcess[] = [];
  for (let i = 0; i < availableParallelism(); i++) {
    hogs.push(spawn(process.execPath, ['-e', `const end = Date.now() + ${Math.ceil(ms)}; while (Date.now() < end) {}`], { stdio: 'ignore' }));
  }
  return () => { for (const h of hogs) h.kill('SIGKILL'); };
}

/** Boot once in a child process as `v` asks. */
export function bootOnce(v: Variant, timeoutMs: number): Promise<BootOutcome> {
  const req: BootRequest = { cpus: v.cpus, verbose: v.verbose, agent: v.agent, timeoutMs };
  const argv = [BOOT_SCRIPT, JSON.stringify(req)];
  const [cmd, args] = v.pinned ? ['taskset', ['-c', '0', process.execPath, ...argv]] : [process.execPath, argv];
  const stopHog = v.hog ? startHog(timeoutMs + 60_000) : () => {};
  return new Promise<BootOutcome>((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr!.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-4000); });
    // the child reports a hang itself; this is the limit for a child that cannot even do that
    const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 60_000);
    child.on('close', (code, signal) => {
      clearTimeout(kill);
      stopHog();
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as BootOutcome);
      } catch {
        resolve({
          ok: false, userspaceMs: null, totalMs: 0, reports: [], consoleTail: '',
          error: `the boot process ended (${signal ?? `status ${code}`}) without a result: ${err.trim().split('\n').slice(-5).join(' | ')}`,
        });
      }
    });
  });
}

/** Run `opts.boots` boots one after the other; returns every result. */
export async function runStress(opts: StressOptions): Promise<StressResult[]> {
  const results: StressResult[] = [];
  for (let i = 0; i < opts.boots; i++) {
    const variant = opts.variants[i % opts.variants.length];
    const outcome = await bootOnce(variant, opts.timeoutMs);
    const r = { variant, outcome };
    results.push(r);
    opts.onResult?.(r, i);
  }
  return results;
}

/** A failed boot as text: the variant, the error, the hart reports and the console tail. */
export function describeFailure(r: StressResult): string {
  const o = r.outcome;
  const lines = [`${variantName(r.variant)}: ${o.error}`];
  o.reports.forEach((rep, i) => lines.push(`  hart report ${i + 1}:`, ...rep.map((l) => `    ${l}`)));
  if (o.consoleTail) lines.push('  console tail:', ...o.consoleTail.split('\n').slice(-20).map((l) => `    | ${l}`));
  return lines.join('\n');
}
