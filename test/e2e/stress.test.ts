/**
 * A bounded run of the boot stress harness (stress/harness.ts; `npm run stress` is the
 * long one): six boots of the default image that together take every value of every
 * stress dimension — 1, 2, 4 and 8 vCPUs, free or all harts on one host core (`taskset
 * -c 0`), with or without a CPU hog, quiet or verbose console, a command or the guest
 * agent probed from the first millisecond. Each must reach userspace and power off; a hang
 * fails with every hart's state and the console tail.
 *
 * Needs the default image (`tsvisor image pull`) and taskset (util-linux). ~2-3 min.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { ensureDefaultImage } from '../../src/images/index.js';
import { bootOnce, describeFailure, haveTaskset, variantName, type Variant } from '../../stress/harness.js';

const VARIANTS: Variant[] = [
  { cpus: 1, pinned: false, hog: false, verbose: false, agent: true },
  { cpus: 2, pinned: true, hog: false, verbose: false, agent: false },
  { cpus: 2, pinned: true, hog: true, verbose: false, agent: true },
  { cpus: 4, pinned: false, hog: true, verbose: true, agent: false },
  { cpus: 4, pinned: true, hog: false, verbose: true, agent: true },
  { cpus: 8, pinned: true, hog: false, verbose: false, agent: false },
];
/** Per-boot limit; an 8-vCPU boot on one loaded core takes ~20-60 s here. */
const TIMEOUT_MS = 180_000;

describe('boot stress (bounded): every boot reaches userspace and powers off', { timeout: 30 * 60_000 }, () => {
  before(async () => {
    await ensureDefaultImage({ quiet: true });
    assert.ok(haveTaskset(), 'the stress test needs taskset (apt-get install util-linux)');
  }, { timeout: 20 * 60_000 });

  for (const v of VARIANTS) {
    test(variantName(v), async () => {
      const outcome = await bootOnce(v, TIMEOUT_MS);
      assert.ok(outcome.ok, describeFailure({ variant: v, outcome }));
      assert.ok(outcome.userspaceMs !== null && outcome.userspaceMs <= outcome.totalMs, 'userspace was reached before power-off');
    });
  }
});
