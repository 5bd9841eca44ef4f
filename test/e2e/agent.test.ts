/**
 * The guest agent end to end, without the daemon: builds a VM directly (src/vmm/vm.ts)
 * from the default image with the agent channel (a virtio-console port named
 * org.tsvisor.agent), boots it once into its interactive shell (no command archive),
 * and drives /bin/tsvisor-agent through AgentClient (src/vmm/agent.ts): hostname,
 * both output streams and the exit status, binary output, streaming, concurrent execs,
 * argv quoting, then power-off through the agent.
 *
 * Needs the default image (`tsvisor image pull`, cache in $TSVISOR_HOME) and a built
 * engine (`npm run build`). One boot: ~15-40 s.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Vm } from '../../src/vmm/vm.js';
import { AgentClient, type ExecHandlers } from '../../src/vmm/agent.js';
import { StdioCharBackend } from '../../src/devices/node/stdio-char.js';
import { loadEngineModule } from '../../src/engine/node/module.js';
import { ensureDefaultImage } from '../../src/images/index.js';
import type { PowerEvent } from '../../src/devices/syscon.js';

const HOSTNAME = 'agent-e2e';
const BOOTARGS = `console=ttyS0 panic=-1 no4lvl cryptomgr.notests quiet loglevel=1 tsvisor.hostname=${HOSTNAME}`;

/** Output of one exec, with when each chunk arrived (ms since the exec started). */
interface Collected {
  status: number;
  stdout: Buffer;
  stderr: Buffer;
  chunks: { stream: 'out' | 'err'; at: number; bytes: number }[];
  ms: number;
}

let vm: Vm | null = null;
let client: AgentClient;
let runDone: Promise<PowerEvent | null> | null = null;
let consoleText = '';

function consoleTail(): string {
  return `\n--- guest console (last 3000 chars) ---\n${consoleText.slice(-3000)}`;
}

async function run(argv: string[]): Promise<Collected> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const chunks: Collected['chunks'] = [];
  const t0 = performance.now();
  const handlers: ExecHandlers = {
    stdout: (b) => { out.push(Buffer.from(b)); chunks.push({ stream: 'out', at: performance.now() - t0, bytes: b.length }); },
    stderr: (b) => { err.push(Buffer.from(b)); chunks.push({ stream: 'err', at: performance.now() - t0, bytes: b.length }); },
  };
  const status = await client.exec(argv, handlers);
  return { status, stdout: Buffer.concat(out), stderr: Buffer.concat(err), chunks, ms: performance.now() - t0 };
}

describe('guest agent over virtio-console (end to end)', { timeout: 4 * 60_000 }, () => {
  before(async () => {
    const img = await ensureDefaultImage({ quiet: true });
    const console = new StdioCharBackend((b) => { consoleText += Buffer.from(b).toString('latin1'); });
    vm = await Vm.create({
      ramBytes: 256 * 1024 * 1024,
      harts: 2,
      engine: loadEngineModule(),
      kernel: readFileSync(img.kernel),
      initrd: readFileSync(img.initrd),
      bootargs: BOOTARGS,
      disks: [],
      agent: { onData: (b) => client.receive(b) },
      console,
      clock: { nowNs: () => BigInt(Date.now()) * 1_000_000n },
    });
    assert.ok(vm.board.agent, 'the board has an agent port');
    client = new AgentClient(vm.board.agent);
    runDone = vm.run();
    runDone.catch(() => {});
    const t0 = performance.now();
    try {
      await client.ready(120_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}${consoleTail()}`);
    }
    process.stderr.write(`# agent ready ${((performance.now() - t0) / 1000).toFixed(1)} s after boot start\n`);
  });

  after(async () => {
    client?.close('test finished');
    if (vm && runDone) {
      const timer = setTimeout(() => vm?.stop(), 30_000);
      await runDone.catch(() => null);
      clearTimeout(timer);
    }
  });

  test('uname -n is the hostname from the kernel command line', async () => {
    const r = await run(['uname', '-n']);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.toString(), `${HOSTNAME}\n`);
    assert.equal(r.stderr.length, 0);
  });

  test('stdout, stderr and the exit status are kept apart', async () => {
    const r = await run(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(r.status, 3);
    assert.equal(r.stdout.toString(), 'out\n');
    assert.equal(r.stderr.toString(), 'err\n');
  });

  test('argv is passed exactly (spaces, quotes, $, newlines, UTF-8)', async () => {
    const args = ['a b', "it's", '$HOME', 'two\nlines', 'ünï', '*', ''];
    const r = await run(['printf', '[%s]', ...args]);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.toString('utf8'), args.map((a) => `[${a}]`).join(''));
    const nf = await run(['no-such-command-xyz']);
    assert.equal(nf.status, 127);
    assert.match(nf.stderr.toString(), /not found/);
  });

  test('200 KB of binary output arrives intact (md5 computed in the guest)', async () => {
    const r = await run(['sh', '-c', 'head -c 200000 /dev/urandom > /tmp/r && md5sum /tmp/r >&2 && cat /tmp/r && rm /tmp/r']);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.length, 200000);
    const guestMd5 = r.stderr.toString().split(/\s+/)[0];
    assert.equal(createHash('md5').update(r.stdout).digest('hex'), guestMd5);
    process.stderr.write(`# 200 KB in ${r.chunks.length} chunks, ${(r.ms / 1000).toFixed(2)} s\n`);
  });

  test('dd output streams in several chunks, exact length', async () => {
    const r = await run(['sh', '-c', 'dd if=/dev/urandom bs=1k count=64 2>/dev/null']);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.length, 64 * 1024);
    assert.ok(r.chunks.length >= 3, `64 KiB came in ${r.chunks.length} chunks (each at most 22 KiB)`);
  });

  test('output arrives while the command runs', async () => {
    const r = await run(['sh', '-c', 'echo first; sleep 2; echo second']);
    assert.equal(r.status, 0);
    assert.equal(r.stdout.toString(), 'first\nsecond\n');
    const first = r.chunks[0];
    assert.ok(first && r.ms - first.at >= 1500, `first chunk at ${first?.at.toFixed(0)} ms, exec ended at ${r.ms.toFixed(0)} ms`);
  });

  test('two execs run concurrently and their streams stay apart', async () => {
    const t0 = performance.now();
    const [a, b] = await Promise.all([
      run(['sh', '-c', 'for i in 1 2 3; do echo A$i; sleep 1; done']),
      run(['sh', '-c', 'for i in 1 2 3; do echo B$i >&2; sleep 1; done; exit 5']),
    ]);
    const ms = performance.now() - t0;
    assert.equal(a.status, 0);
    assert.equal(a.stdout.toString(), 'A1\nA2\nA3\n');
    assert.equal(a.stderr.length, 0);
    assert.equal(b.status, 5);
    assert.equal(b.stderr.toString(), 'B1\nB2\nB3\n');
    assert.equal(b.stdout.length, 0);
    // they overlapped: each one's first output came before the other one ended
    assert.ok(a.chunks[0].at < b.ms && b.chunks[0].at < a.ms, `A: first output ${a.chunks[0].at.toFixed(0)} ms, end ${a.ms.toFixed(0)} ms; B: ${b.chunks[0].at.toFixed(0)}, ${b.ms.toFixed(0)} ms`);
    assert.ok(ms < Math.max(a.ms, b.ms) + 500, `both took ${ms.toFixed(0)} ms`);
    assert.equal(client.running, 0);
  });

  test('poweroff through the agent ends the VM run', async () => {
    client.poweroff();
    const timer = setTimeout(() => vm?.stop(), 60_000);
    const ev = await runDone!;
    clearTimeout(timer);
    assert.deepEqual(ev, { kind: 'poweroff' }, `power event ${JSON.stringify(ev)}${consoleTail()}`);
  });
});
