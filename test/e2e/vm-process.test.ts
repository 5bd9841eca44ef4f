/**
 * The VM process end to end: starts `node dist/src/vmm/main.js <vmDir>` detached, as
 * the host daemon does, with a 256 MiB 1-vCPU config (and a small read-only disk), then
 * drives it through its control channel with the client library: status, two console
 * viewers (scrollback, the shell prompt, a typed command echoed to both), pause and
 * resume (typed input waits while paused), exec through the guest agent (`uname -n` is
 * the VM's name; stdin; exit status), a viewer leaving, and a graceful stop: the guest
 * powers off, the process exits 0 and removes vm.pid and vm.sock.
 *
 * Needs the default image (`tsvisor image pull`, cache in $TSVISOR_HOME) and a built
 * engine. One boot: ~20-60 s.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import * as control from '../../src/vmm/control-client.js';
import { ensureDefaultImage } from '../../src/images/index.js';
import { REPO_ROOT } from './helpers.js';

const NAME = 'e2e-vm';
const PROMPT = `root@${NAME}:~# `;
const MAIN_JS = join(REPO_ROOT, 'dist', 'src', 'vmm', 'main.js');

let dir = '';
let child: ChildProcess | null = null;
let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

/** A console viewer and everything it has received. */
interface Viewer {
  stream: Duplex;
  text(): string;
  until(needle: string, ms: number): Promise<void>;
  ended: Promise<void>;
}

async function viewer(): Promise<Viewer> {
  const stream = await control.attachConsole(dir);
  let buf = '';
  let wake: (() => void)[] = [];
  stream.on('data', (d: Buffer) => { buf += d.toString('latin1'); const w = wake; wake = []; w.forEach((f) => f()); });
  const ended = new Promise<void>((resolve) => { stream.on('end', resolve); stream.on('close', resolve); });
  return {
    stream,
    text: () => buf,
    until: (needle, ms) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${JSON.stringify(needle)} on the console within ${ms} ms; got:\n${buf.slice(-2000)}\n--- vm.log ---\n${vmLog()}`)), ms);
      const check = () => { if (buf.includes(needle)) { clearTimeout(timer); resolve(); } else wake.push(check); };
      check();
    }),
    ended,
  };
}

function vmLog(): string {
  try { return readFileSync(join(dir, 'vm.log'), 'utf8'); } catch { return '(none)'; }
}

async function poll<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms (${last instanceof Error ? last.message : 'no'})\n--- vm.log ---\n${vmLog()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('VM process (main.js) end to end', { timeout: 4 * 60_000 }, () => {
  let a: Viewer;
  let b: Viewer;

  before(async () => {
    await ensureDefaultImage({ quiet: true }); // build or find it here, not inside the timed boot
    dir = mkdtempSync(join(tmpdir(), 'tsvisor-vmproc-'));
    writeFileSync(join(dir, 'data.img'), Buffer.alloc(1 << 20));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({
      name: NAME, vcpus: 1, memoryBytes: 256 * 1024 * 1024, disks: [{ path: 'data.img', readonly: true }],
      cpuWeight: 100, cpuCap: 0, restart: 'no', createdAt: Date.now(),
    }));
    child = spawn(process.execPath, [MAIN_JS, dir], { detached: true, stdio: 'ignore' });
    exited = new Promise((resolve) => child!.on('exit', (code, signal) => resolve({ code, signal })));
  });

  after(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('starts: vm.pid, an owner-only socket, status running', async () => {
    const st = await poll('status running', 30_000, async () => {
      const s = await control.status(dir);
      return s.state === 'running' ? s : undefined;
    });
    assert.equal(st.name, NAME);
    assert.equal(st.pid, child!.pid);
    assert.equal(st.vcpus, 1);
    assert.equal(st.memoryBytes, 256 * 1024 * 1024);
    assert.deepEqual(st.disks.map((d) => d.path), [join(dir, 'data.img')]);
    assert.equal(readFileSync(join(dir, 'vm.pid'), 'utf8').trim(), String(child!.pid));
    assert.equal(statSync(join(dir, 'vm.sock')).mode & 0o777, 0o600);
  });

  test('a second VM process for the same folder refuses to start and leaves the first alone', async () => {
    const second = spawn(process.execPath, [MAIN_JS, dir], { stdio: 'ignore' });
    const code = await new Promise<number | null>((resolve) => second.on('exit', (c) => resolve(c)));
    assert.equal(code, 1);
    assert.match(vmLog(), /exit 1: another VM process is already running/);
    assert.equal(readFileSync(join(dir, 'vm.pid'), 'utf8').trim(), String(child!.pid));
    assert.ok(!existsSync(join(dir, 'vm.exit')));
    assert.equal((await control.status(dir)).pid, child!.pid);
  });

  test('two console viewers see the shell prompt and a typed command', async () => {
    a = await viewer();
    await a.until(PROMPT, 150_000);
    b = await viewer();
    await b.until(PROMPT, 5_000); // from the scrollback
    a.stream.write('echo tsv-$((6*7))\r');
    await Promise.all([a.until('tsv-42', 20_000), b.until('tsv-42', 20_000)]);
  });

  test('pause holds the guest; resume lets it go on', async () => {
    const p = await control.pause(dir);
    assert.equal(p.state, 'paused');
    assert.equal((await control.status(dir)).state, 'paused');
    b.stream.write('echo paused-$((2*3))\r');
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(!a.text().includes('paused-6') && !b.text().includes('paused-6'), 'the guest ran while paused');
    assert.equal((await control.resume(dir)).state, 'running');
    await Promise.all([a.until('paused-6', 20_000), b.until('paused-6', 20_000)]);
  });

  test('exec through the guest agent', async () => {
    await poll('guest agent ready', 60_000, async () => ((await control.status(dir)).agent ? true : undefined));
    let out = '';
    const code = await control.exec(dir, ['uname', '-n'], { stdout: (d) => { out += Buffer.from(d).toString(); } });
    assert.equal(code, 0);
    assert.equal(out.trim(), NAME);
    out = '';
    let err = '';
    const code2 = await control.exec(dir, ['sh', '-c', 'tr a-z A-Z; echo oops >&2; exit 3'], {
      stdin: Buffer.from('piped in\n'),
      stdout: (d) => { out += Buffer.from(d).toString(); },
      stderr: (d) => { err += Buffer.from(d).toString(); },
    });
    assert.equal(code2, 3);
    assert.equal(out, 'PIPED IN\n');
    assert.equal(err, 'oops\n');
  });

  test('a viewer leaving does not disturb the VM', async () => {
    a.stream.destroy();
    await new Promise((r) => setTimeout(r, 200));
    b.stream.write('echo still-$((1+1))\r');
    await b.until('still-2', 20_000);
    assert.equal((await control.status(dir)).state, 'running');
  });

  test('a graceful stop powers the guest off; the process exits 0 and cleans up', async () => {
    await control.stop(dir, 30_000);
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([exited, new Promise<null>((r) => { timer = setTimeout(() => r(null), 40_000); })]);
    clearTimeout(timer);
    assert.ok(r, `the VM process did not exit\n--- vm.log ---\n${vmLog()}`);
    assert.deepEqual(r, { code: 0, signal: null }, vmLog());
    await b.ended; // the viewer's stream ends with the process
    assert.ok(!existsSync(join(dir, 'vm.pid')), 'vm.pid removed');
    assert.ok(!existsSync(join(dir, 'vm.sock')), 'vm.sock removed');
    assert.equal(JSON.parse(readFileSync(join(dir, 'vm.exit'), 'utf8')).reason, 'guest powered off');
    // the agent may come up before or after the pause (the shell prompt, which the pause test waits for, can come first)
    assert.match(vmLog(), /guest agent ready/);
    assert.match(vmLog(), /paused[\s\S]*resumed[\s\S]*exit 0: guest powered off/);
    assert.match(readFileSync(join(dir, 'console.log'), 'latin1'), /tsv-42[\s\S]*paused-6/);
    await assert.rejects(control.status(dir), (e: control.ControlError) => e.code === 'not_running');
  });
});

/** Start main.js on a fresh folder holding `config`; resolves with the folder and the exit. */
function startVmProcess(config: unknown): { dir: string; proc: ChildProcess; exit: Promise<number | null> } {
  const d = mkdtempSync(join(tmpdir(), 'tsvisor-vmproc-'));
  writeFileSync(join(d, 'config.json'), JSON.stringify(config));
  const proc = spawn(process.execPath, [MAIN_JS, d], { detached: true, stdio: 'ignore' });
  return { dir: d, proc, exit: new Promise((resolve) => proc.on('exit', (c) => resolve(c))) };
}

test('VM process: a bad configuration exits 1 with the reason in vm.log', async () => {
  const r = startVmProcess({ name: 'Bad Name', vcpus: 1, memoryBytes: 256 << 20, disks: [] });
  try {
    assert.equal(await r.exit, 1);
    const log = readFileSync(join(r.dir, 'vm.log'), 'utf8');
    assert.match(log.trim().split('\n').at(-1)!, /exit 1: bad configuration: name/);
    assert.equal(JSON.parse(readFileSync(join(r.dir, 'vm.exit'), 'utf8')).code, 1);
    assert.ok(!existsSync(join(r.dir, 'vm.pid')) && !existsSync(join(r.dir, 'vm.sock')));
  } finally {
    rmSync(r.dir, { recursive: true, force: true });
  }
});

test('VM process: POST /kill ends it at once, exit 0', { timeout: 60_000 }, async () => {
  const r = startVmProcess({ name: 'killme', vcpus: 1, memoryBytes: 128 << 20, disks: [] });
  try {
    const saved = dir;
    dir = r.dir; // for poll()'s vm.log excerpt
    try {
      await poll('status running', 30_000, async () => ((await control.status(r.dir)).state === 'running' ? true : undefined));
    } finally {
      dir = saved;
    }
    await control.kill(r.dir);
    assert.equal(await r.exit, 0);
    assert.match(readFileSync(join(r.dir, 'vm.log'), 'utf8'), /exit 0: killed/);
    assert.ok(!existsSync(join(r.dir, 'vm.pid')) && !existsSync(join(r.dir, 'vm.sock')));
  } finally {
    if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill('SIGKILL');
    rmSync(r.dir, { recursive: true, force: true });
  }
});
