/**
 * `npm run bench [-- SECTION...]`: tsvisor's speed and resource figures, side by side with
 * `qemu-system-riscv64` (TCG) in the same run, printed as tables with ratios.
 *
 *   boot   seconds to userspace (also on one host core) and single-vCPU in-guest work (qemu.ts)
 *   smp    speed-up of a 2-process CPU-bound workload at 2 vCPUs over 1 (smp.ts)
 *   overcommit  4 vCPUs on one host core against 1 vCPU, a lock-heavy program (overcommit.ts)
 *   idle   host CPU used by an idle 4-vCPU VM (idle.ts)
 *   net    user-mode networking through passt: TCP each way and HTTP request latency (net.ts)
 *   host   the daemon: four 1 GiB VMs, CPU weight 2:1, CPU cap 50%, metering (host.ts)
 *   dynamic  a 2 GiB VM's RSS idle, after freeing 1 GiB, at a 512 MiB balloon target, and
 *          balloon shrink/grow times, against QEMU's virtio-balloon; four VMs on the dynamic
 *          memory policy under a budget of half their maxima; an fdatasync loop's rate alone
 *          and beside a VM writing flat out, and two writers with disk weights 300 and 100 (dynamic.ts)
 *   media  the CD-ROM drive and a shared folder: a 512 MiB file read from an ISO and through
 *          9p, 10,000 small files copied each way, against QEMU's scsi-cd and 9p (media.ts)
 *   screen the display through VNC: host CPU of an idle VM without and with a viewer, and a
 *          guest redrawing 1280x800 frames (frames/s, updates/s, host CPU), against QEMU's
 *          virtio-gpu-device and -vnc (screen.ts)
 *   debian the Debian image: boot to multi-user.target and to the agent against QEMU, build
 *          time, ten VMs from one base and their overlays' bytes (debian.ts; not in the
 *          default set: ~30 minutes)
 *
 * Without arguments every section but debian runs, one after the other (~8 minutes on the 2-core
 * development machine). Environment: TSVISOR_HOME (image cache), BENCH_QEMU (the QEMU
 * binary), BENCH_BOOTS, BENCH_ROUNDS, BENCH_IDLE_SECONDS, BENCH_SECONDS, BENCH_NET_BYTES, BENCH_NET_REQUESTS (see each section).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Guests } from './common.js';
import { benchBoot } from './qemu.js';
import { benchSmp } from './smp.js';
import { benchIdle } from './idle.js';
import { benchOvercommit } from './overcommit.js';
import { benchHost, cleanupHostBench } from './host.js';
import { benchDebian } from './debian.js';
import { benchNet } from './net.js';
import { benchDynamic } from './dynamic.js';
import { benchMedia } from './media.js';
import { benchScreen } from './screen.js';

const SECTIONS = ['boot', 'smp', 'overcommit', 'idle', 'net', 'host', 'dynamic', 'media', 'screen', 'debian'] as const;
/** Sections run when none is named (debian takes half an hour). */
const DEFAULT_SECTIONS: readonly Section[] = ['boot', 'smp', 'overcommit', 'idle', 'net', 'host', 'dynamic', 'media', 'screen'];
type Section = (typeof SECTIONS)[number];

async function main(argv: string[]): Promise<number> {
  const bad = argv.filter((a) => !(SECTIONS as readonly string[]).includes(a));
  if (bad.length) {
    process.stderr.write(`bench: unknown section ${bad.map((b) => `"${b}"`).join(', ')} (sections: ${SECTIONS.join(', ')})\n`);
    return 2;
  }
  const chosen: Section[] = argv.length ? SECTIONS.filter((s) => argv.includes(s)) : [...DEFAULT_SECTIONS];
  const work = mkdtempSync(join(tmpdir(), 'tsvisor-bench-'));
  try {
    const guests = chosen.some((s) => s !== 'host') ? await Guests.open(work) : null;
    for (const s of chosen) {
      const lines = s === 'boot' ? await benchBoot(guests!, work)
        : s === 'smp' ? await benchSmp(guests!)
          : s === 'overcommit' ? await benchOvercommit(guests!, work)
          : s === 'idle' ? await benchIdle(guests!)
            : s === 'debian' ? await benchDebian(guests!, work)
              : s === 'net' ? await benchNet(guests!, work)
              : s === 'dynamic' ? await benchDynamic(guests!, work)
              : s === 'media' ? await benchMedia(guests!, work)
              : s === 'screen' ? await benchScreen(guests!, work)
              : await benchHost();
      process.stdout.write(lines.join('\n') + '\n\n');
    }
    return 0;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => { cleanupHostBench().finally(() => process.exit(130)); });
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
