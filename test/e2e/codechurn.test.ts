/**
 * End to end: guest code that keeps changing under the JIT (issue "Speed: a JIT ...", done
 * when "a guest that rewrites its own code in a loop, or maps and unmaps executable pages
 * millions of times, keeps running correctly and the host RSS stays bounded").
 *
 * test/e2e/guest/codechurn.c, built with Debian's cross compiler, runs on the default image
 * with 2 vCPUs: a function rewritten in place and called after each rewrite, fresh pages
 * mapped, filled with code, run and unmapped, and a function two threads (two harts)
 * take turns rewriting and calling. Every call must return what the code it ran
 * computes. The VM process's peak RSS (`--stats`) after a long churn must stay within a
 * margin of a run a fifth as long: translations of retired code do not pile up.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGuestProgramDisk, describeRun, results, tsvisor, type RunResult } from './helpers.js';

/**
 * Iterations of each mode: a short run, then a long one. The short one runs each mode's
 * kernel paths (page faults, munmap, the remote fences) well past the JIT's hot threshold
 * (CodeCacheOptions.hotThreshold, 4000), so that both runs translate the same code and the
 * long one's extra RSS is what retired translations may leave. It is two fifths of the long
 * one, twice the threshold's executions of a path run once per mapping: the kernel's rarer
 * paths (timers, RCU, reclaim) keep becoming hot for several seconds, and with a threshold of
 * 2000 a run of 10,000 rewrites had 35-69 MiB less RSS than the long one from that alone,
 * against 11-13 MiB at a fifth.
 */
const SHORT = { smc: 400_000, map: 8000, threads: 80_000 };
const LONG = { smc: 1_000_000, map: 20_000, threads: 200_000 };
/** How much more the long run's peak RSS may be than the short one's. */
const RSS_MARGIN_MIB = 64;

let work = '';
let img = '';

function churn(counts: typeof SHORT): Promise<RunResult> {
  const script = ['mount -o ro /dev/vda /mnt', ...(['smc', 'map', 'threads'] as const).map((m) => `/mnt/codechurn ${m} ${counts[m]}`), 'echo "@@ done"'].join('; ');
  return tsvisor(['run', '--stats', '--cpus', '2', '--disk', `${img},readonly`, '--', 'sh', '-c', script], { timeoutMs: 15 * 60_000 });
}

/** The `peak RSS N MiB` of a run's --stats line. */
function peakRss(r: RunResult): number {
  const m = /peak RSS (\d+) MiB/.exec(r.stderr);
  assert.ok(m, describeRun('no peak RSS in the --stats output', r));
  return Number(m[1]);
}

function checkResults(r: RunResult, counts: typeof SHORT, what: string): void {
  assert.equal(r.code, 0, describeRun(what, r));
  const m = results(r);
  for (const mode of ['smc', 'map', 'threads'] as const) assert.equal(m.get(mode), `ok ${counts[mode]}`, describeRun(`${what}: codechurn ${mode}`, r));
  assert.ok(m.has('done'), describeRun(`${what}: the script did not finish`, r));
}

describe('JIT under code churn (end to end)', { timeout: 40 * 60_000 }, () => {
  before(async () => {
    const pull = await tsvisor(['image', 'pull'], { timeoutMs: 20 * 60_000 });
    assert.equal(pull.code, 0, describeRun('tsvisor image pull', pull));
    work = mkdtempSync(join(tmpdir(), 'tsvisor-churn-'));
    img = buildGuestProgramDisk(work, 'codechurn', 'the code churn e2e test');
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test(`rewritten, remapped and cross-hart rewritten code gives the right results; peak RSS after ${LONG.smc} rewrites and ${LONG.map} mappings within ${RSS_MARGIN_MIB} MiB of a short run`, async () => {
    const short = await churn(SHORT);
    checkResults(short, SHORT, 'short churn');
    const long = await churn(LONG);
    checkResults(long, LONG, 'long churn');
    const [a, b] = [peakRss(short), peakRss(long)];
    assert.ok(b <= a + RSS_MARGIN_MIB, `peak RSS grew from ${a} MiB to ${b} MiB\nshort run:\n${short.stderr}\nlong run:\n${long.stderr}`);
    assert.match(long.stderr, /JIT: \d+ blocks/, 'the JIT ran');
  });
});
