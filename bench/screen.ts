/**
 * Bench section `screen`: the display seen through VNC, tsvisor (`tsvisor run --vnc`)
 * against `qemu-system-riscv64` (`-device virtio-gpu-device -vnc`), the same default guest
 * (1 vCPU, 512 MiB, Linux's virtio_gpu and its fbdev at 1280x800), the same command, in the
 * same run, watched by the same scripted VNC viewer (test/vmm/rfb-client.ts: zlib, one
 * incremental request after each update, as real viewers do):
 *
 *   - idle: host CPU of the VM process over BENCH_SCREEN_IDLE_SECONDS (default 15) with no
 *     viewer, then as long with a viewer connected (the goal: no more than without);
 *   - redraw: the guest writes BENCH_SCREEN_FRAMES (default 60) full 1280x800 frames to
 *     /dev/fb0 (two 4 MB images in turn, one random, one white); frames per second as the
 *     guest wrote them, updates per second and MB/s as the viewer received them, and the
 *     host CPU of the VM process while they flowed.
 */
import { createServer } from 'node:net';
import { QEMU, TSVISOR_CMD, check, log, parseTimes, runGuest, sleep, table, TIMED_SHELL_FN, type Guests, type Outcome } from './common.js';
import { processCpuSeconds } from '../src/host/procfs.js';
import { initrdWithCommand } from '../src/cli/run.js';
import { RfbClient } from '../test/vmm/rfb-client.js';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const IDLE_S = Number(process.env.BENCH_SCREEN_IDLE_SECONDS ?? 15);
const FRAMES = Number(process.env.BENCH_SCREEN_FRAMES ?? 60);
const FRAME_BYTES = 1280 * 800 * 4;

/** The guest's script: make two frames, wait while the host measures idle, then draw. */
function script(): string {
  return [
    TIMED_SHELL_FN,
    'echo 0 > /sys/class/graphics/fbcon/cursor_blink',
    `head -c ${FRAME_BYTES} /dev/urandom > /tmp/a`,
    `tr '\\0' '\\377' < /dev/zero | head -c ${FRAME_BYTES} > /tmp/b`,
    'echo READY',
    // the host measures idle without a viewer, then with one, then the viewer watches the redraw
    `sleep ${2 * IDLE_S + 6}`,
    `w draw 'i=0; while [ $i -lt ${FRAMES} ]; do cat /tmp/a > /dev/fb0; cat /tmp/b > /dev/fb0; i=$((i+2)); done'`,
    'sleep 2',
  ].join('\n');
}

/** A free VNC display number (port 5900 + N free on loopback), from 50 up. */
async function freeDisplay(): Promise<number> {
  for (let n = 50; n < 100; n++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(5900 + n, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) return n;
  }
  throw new Error('no free VNC display from :50 to :99');
}

interface ScreenFigures {
  idleCpu?: number;
  idleViewerCpu?: number;
  guestFps?: number;
  viewerUps?: number;
  viewerMBs?: number;
  drawCpu?: number;
}

/** Runs one side: spawns it, measures idle CPU, connects a viewer, watches the redraw. */
async function measure(what: string, cmd: string, args: string[], port: number): Promise<{ out: Outcome; fig: ScreenFigures }> {
  const fig: ScreenFigures = {};
  let watching: Promise<void> = Promise.resolve();
  const out = await runGuest(cmd, args, {
    filterMarker: cmd === QEMU,
    hooks: {
      onReady: (pid) => {
        watching = (async () => {
          const cpu = () => processCpuSeconds(pid) ?? NaN;
          await sleep(2000);
          let c0 = cpu();
          let t0 = performance.now();
          await sleep(IDLE_S * 1000);
          fig.idleCpu = ((cpu() - c0) / ((performance.now() - t0) / 1000)) * 100;
          const viewer = await RfbClient.connect(port, '003.008', { paint: false });
          viewer.setEncodings([6, 0, -223]);
          viewer.requestUpdate(false);
          await viewer.update();
          viewer.requestUpdate(true);
          // idle with the viewer: it keeps an incremental request outstanding, as viewers do
          const updates: Array<{ at: number; bytes: number; cpu: number }> = [];
          let seen = 0;
          const loop = (async () => {
            for (;;) {
              const before = viewer.bytesReceived;
              await viewer.update(120_000);
              updates.push({ at: performance.now(), bytes: viewer.bytesReceived - before, cpu: cpu() });
              viewer.requestUpdate(true);
            }
          })().catch(() => undefined);
          await sleep(1000);
          seen = updates.length;
          c0 = cpu();
          t0 = performance.now();
          await sleep(IDLE_S * 1000);
          fig.idleViewerCpu = ((cpu() - c0) / ((performance.now() - t0) / 1000)) * 100;
          const idleUpdates = updates.length - seen;
          if (idleUpdates > 2) log(`screen: ${what}: ${idleUpdates} updates reached the viewer of an idle screen`);
          await loop; // ends when the guest exits and the connection closes
          viewer.close();
          // the redraw: from the first update after the idle windows to the last
          const draw = updates.filter((u) => u.at > t0 + IDLE_S * 1000);
          if (draw.length >= 3) {
            const secs = (draw[draw.length - 1].at - draw[0].at) / 1000;
            fig.viewerUps = (draw.length - 1) / secs;
            fig.viewerMBs = draw.slice(1).reduce((a, u) => a + u.bytes, 0) / 1e6 / secs;
            fig.drawCpu = ((draw[draw.length - 1].cpu - draw[0].cpu) / secs) * 100;
          }
        })().catch((e) => log(`screen: ${what}: the viewer failed: ${(e as Error).message}`));
      },
    },
  });
  await watching;
  return { out, fig };
}

/** Runs the bench section; its lines. */
export async function benchScreen(g: Guests, work: string): Promise<string[]> {
  const cmd = ['sh', '-c', script()];
  log('screen: tsvisor run --vnc');
  const td = await freeDisplay();
  const t = await measure('tsvisor', process.execPath, [...TSVISOR_CMD, 'run', '--memory', '512M', '--network', 'none', '--vnc', `127.0.0.1:${td}`, '--', ...cmd], 5900 + td);
  check('tsvisor screen', t.out);
  const tFps = parseTimes(t.out.out).get('draw');
  let q: { out: Outcome; fig: ScreenFigures } | undefined;
  let qFps: number | undefined;
  if (g.haveQemu) {
    log(`screen: ${QEMU} -device virtio-gpu-device -vnc`);
    const qd = await freeDisplay();
    const initrd = join(work, 'screen-initrd');
    writeFileSync(initrd, initrdWithCommand(readFileSync(g.img.initrd), cmd));
    try {
      q = await measure('QEMU', QEMU, [
        '-machine', 'virt', '-cpu', g.qemuCpu, '-m', '512M', '-smp', '1', '-bios', 'default', '-no-reboot',
        '-kernel', g.img.kernel, '-initrd', initrd, '-append', g.bootargs,
        '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-vnc', `127.0.0.1:${qd}`,
        '-global', 'virtio-mmio.force-legacy=false', '-device', 'virtio-gpu-device', // Linux's virtio_gpu drives modern (virtio 1.x) devices only
      ], 5900 + qd);
      check('QEMU screen', q.out);
      qFps = parseTimes(q.out.out).get('draw');
    } finally {
      rmSync(initrd, { force: true });
    }
  }
  const fps = (secs: number | undefined) => (secs ? FRAMES / secs : undefined);
  return [
    ...g.header(`1 vCPU, 512 MiB, virtio-gpu at 1280x800 watched through VNC (zlib)`),
    '',
    ...table([
      ['idle: host CPU, no viewer', t.fig.idleCpu, q?.fig.idleCpu],
      ['idle: host CPU, a viewer connected', t.fig.idleViewerCpu, q?.fig.idleViewerCpu],
      ['redraw: host CPU', t.fig.drawCpu, q?.fig.drawCpu],
    ], '%', 1),
    '',
    ...table([
      ['redraw: full frames/s the guest wrote', fps(tFps), fps(qFps)],
      ['redraw: updates/s the viewer got', t.fig.viewerUps, q?.fig.viewerUps],
      ['redraw: MB/s the viewer got', t.fig.viewerMBs, q?.fig.viewerMBs],
    ], '/s', 1),
    '(CPU: % of one host core, lower is better; frames and updates per second: higher is better)',
  ];
}
