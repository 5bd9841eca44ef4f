/**
 * `npm run stress [-- --boots N] [--timeout SECONDS] [--cpus 1,2,4,8]`: boot the default
 * image N times (default 200) across the stress variants (stress/harness.ts), one
 * line per boot, then a summary; any boot that does not reach userspace and power off is
 * printed with its hart reports, and the exit status is 1.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ensureDefaultImage } from '../src/images/index.js';
import { allVariants, describeFailure, haveTaskset, runStress, variantName, type StressResult } from './harness.js';

function positiveInt(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError('expected a whole number >= 1');
  return Number(v);
}

async function main(): Promise<number> {
  const cmd = new Command('stress')
    .option('--boots <n>', 'number of boots', positiveInt, 200)
    .option('--timeout <seconds>', 'per-boot limit before the harts are reported', positiveInt, 150)
    .option('--cpus <list>', 'vCPU counts to use (comma-separated)', '1,2,4,8')
    .exitOverride()
    .configureOutput({ writeErr: () => {} }) // errors are printed once, below
    .parse(process.argv);
  const o = cmd.opts<{ boots: number; timeout: number; cpus: string }>();
  const cpus = o.cpus.split(',').map(Number);
  if (cpus.some((n) => !Number.isInteger(n) || n < 1 || n > 64)) throw new InvalidArgumentError(`--cpus ${o.cpus}: expected numbers from 1 to 64`);
  let variants = allVariants().filter((v) => cpus.includes(v.cpus));
  if (!haveTaskset()) {
    process.stderr.write('stress: taskset not found (util-linux): the pinned variants are skipped\n');
    variants = variants.filter((v) => !v.pinned);
  }
  await ensureDefaultImage({ quiet: false });
  const t0 = performance.now();
  const results = await runStress({
    boots: o.boots, variants, timeoutMs: o.timeout * 1000,
    onResult: (r: StressResult, i: number) => {
      const u = r.outcome.userspaceMs;
      process.stdout.write(`${String(i + 1).padStart(4)}/${o.boots} ${r.outcome.ok ? 'ok  ' : 'FAIL'} ${variantName(r.variant).padEnd(48)}` +
        ` userspace ${u === null ? '-' : (u / 1000).toFixed(1) + ' s'}, total ${(r.outcome.totalMs / 1000).toFixed(1)} s\n`);
      if (!r.outcome.ok) process.stdout.write(describeFailure(r) + '\n');
    },
  });
  const failed = results.filter((r) => !r.outcome.ok);
  const minutes = (performance.now() - t0) / 60_000;
  const us = results.map((r) => r.outcome.userspaceMs).filter((x): x is number => x !== null).sort((a, b) => a - b);
  const pct = (p: number) => (us.length ? (us[Math.min(us.length - 1, Math.floor(p * us.length))] / 1000).toFixed(1) : '-');
  process.stdout.write(`\nstress: ${results.length} boots, ${failed.length} failed, ${new Set(results.map((r) => variantName(r.variant))).size} variants, ${minutes.toFixed(1)} min;` +
    ` time to userspace median ${pct(0.5)} s, 95th percentile ${pct(0.95)} s, max ${pct(1)} s\n`);
  for (const f of failed) process.stdout.write(describeFailure(f) + '\n');
  return failed.length ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => {
  const err = e as { code?: string; message?: string };
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') { process.exitCode = 0; return; }
  process.stderr.write(`stress: ${(err.message ?? String(e)).replace(/^error: /, '')}\n`);
  process.exitCode = 2;
});
