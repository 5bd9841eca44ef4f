/**
 * One boot of the stress harness (stress/harness.ts), as its own process so that the
 * parent can pin it with `taskset` and kill it: boots the default image in a VM built
 * here (src/vmm/vm.ts), waits until the guest reaches userspace, powers it off, and
 * prints one JSON line ({@link BootOutcome}) on stdout.
 *
 * Without `agent`, the guest runs `echo MARKER` from the command archive and powers off
 * (as `tsvisor run -- echo` does). With `agent`, the VM also has the guest-agent port,
 * and the host probes it from the first millisecond (`H` every few ms while the guest
 * boots); userspace is reached when the agent answers and an exec of `uname -m` prints
 * riscv64, then the agent powers the guest off.
 *
 * When the guest has not powered off after `timeoutMs`, the outcome carries two hart
 * reports (Vm.hartReport(), 2 s apart: what moved between them tells a spinning hart from
 * a parked one) and the tail of the guest console.
 *
 * Usage: node dist/stress/boot.js '{"cpus":2,"verbose":false,"agent":true,"timeoutMs":150000}'
 */
import { readFileSync } from 'node:fs';
import { Vm } from '../src/vmm/vm.js';
import { AgentClient } from '../src/vmm/agent.js';
import { StdioCharBackend } from '../src/devices/node/stdio-char.js';
import { loadEngineModule } from '../src/engine/node/module.js';
import { ensureDefaultImage } from '../src/images/index.js';
import { initrdWithCommand, kernelBootargs } from '../src/vmm/boot-config.js';

/** What the parent asks for. */
export interface BootRequest {
  cpus: number;
  verbose: boolean;
  agent: boolean;
  /** Give up (and report the harts) after this many ms. */
  timeoutMs: number;
  /** Guest RAM in MiB (default 256). */
  memoryMiB?: number;
}

/** What one boot printed as its last stdout line. */
export interface BootOutcome {
  ok: boolean;
  /** ms from the start of the run to userspace (marker seen or agent answered); null if never. */
  userspaceMs: number | null;
  /** ms from the start of the run to power-off (or to giving up). */
  totalMs: number;
  /** Why it failed (null when ok). */
  error: string | null;
  /** Hart reports taken when it hung (two, 2 s apart), else empty. */
  reports: string[][];
  /** The last 2000 characters of the guest console when it failed. */
  consoleTail: string;
}

const MARKER = 'tsvisor-stress-userspace';

/**
 * The console text without the kernel's messages ("[   49.671520] watchdog: ...\n"), which
 * the kernel may print in the middle of a line the guest's userspace is writing.
 */
function withoutKernelLines(text: string): string {
  return text.replace(/\[\s*\d+\.\d+\][^\n]*\n/g, '');
}

async function boot(req: BootRequest): Promise<BootOutcome> {
  const img = await ensureDefaultImage({ quiet: true });
  let consoleText = '';
  let userspaceMs: number | null = null;
  const t0 = performance.now();
  const console = new StdioCharBackend((b) => {
    consoleText = (consoleText + Buffer.from(b).toString('latin1')).slice(-20_000);
    if (userspaceMs === null && !req.agent && withoutKernelLines(consoleText).includes(MARKER)) userspaceMs = performance.now() - t0;
  });
  let client: AgentClient | null = null;
  const initrd = readFileSync(img.initrd);
  const vm = await Vm.create({
    ramBytes: (req.memoryMiB ?? 256) * 1024 * 1024,
    harts: req.cpus,
    engine: loadEngineModule(),
    kernel: readFileSync(img.kernel),
    initrd: req.agent ? initrd : initrdWithCommand(initrd, ['echo', MARKER]),
    bootargs: kernelBootargs({ verbose: req.verbose, hostname: 'stress' }),
    disks: [],
    console,
    clock: { nowNs: () => BigInt(Date.now()) * 1_000_000n },
    ...(req.agent ? { agent: { onData: (b: Uint8Array) => client?.receive(b) } } : {}),
  });
  let error: string | null = null;
  let probe: ReturnType<typeof setInterval> | undefined;
  if (req.agent) {
    const port = vm.board.agent!;
    client = new AgentClient(port, { pingIntervalMs: 1 });
    // besides ready()'s own back-off, a hello every 5 ms while the guest boots
    probe = setInterval(() => port.write('H\n'), 5);
    const c = client;
    void c.ready().then(async () => {
      clearInterval(probe);
      userspaceMs = performance.now() - t0;
      let out = '';
      const status = await c.exec(['uname', '-m'], { stdout: (b) => { out += Buffer.from(b).toString(); }, stderr: () => {} });
      if (status !== 0 || out.trim() !== 'riscv64') error = `agent exec of uname -m gave status ${status}, output "${out.trim()}"`;
      c.poweroff();
    }).catch((e: unknown) => { error ??= `agent: ${(e as Error).message}`; vm.stop(); });
  }
  const reports: string[][] = [];
  let hung = false;
  const watchdog = setTimeout(() => {
    hung = true;
    reports.push(vm.hartReport());
    setTimeout(() => { reports.push(vm.hartReport()); vm.stop(); }, 2000);
  }, req.timeoutMs);
  let ev;
  try {
    ev = await vm.run();
  } catch (e) {
    error ??= (e as Error).message;
  } finally {
    clearTimeout(watchdog);
    clearInterval(probe);
    client?.close('the VM stopped');
  }
  const totalMs = performance.now() - t0;
  if (hung) error = `no power-off within ${req.timeoutMs} ms (${userspaceMs === null ? 'userspace never reached' : 'after reaching userspace'})`;
  else if (!error && userspaceMs === null) error = `the guest ${ev ? ev.kind : 'stopped'} before reaching userspace`;
  else if (!error && ev?.kind !== 'poweroff') error = `the guest ended with ${ev ? ev.kind : 'a host stop'}, not a power-off`;
  const ok = error === null;
  return { ok, userspaceMs, totalMs, error, reports, consoleTail: ok ? '' : consoleText.slice(-2000) };
}

const req = JSON.parse(process.argv[2] ?? '{}') as BootRequest;
boot(req).then((o) => {
  process.stdout.write(JSON.stringify(o) + '\n', () => process.exit(o.ok ? 0 : 1));
}, (e: unknown) => {
  const o: BootOutcome = { ok: false, userspaceMs: null, totalMs: 0, error: (e as Error).message, reports: [], consoleTail: '' };
  process.stdout.write(JSON.stringify(o) + '\n', () => process.exit(1));
});
