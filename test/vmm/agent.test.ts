/**
 * AgentClient (src/vmm/agent.ts) against a scripted agent: request framing, response
 * parsing at any split, concurrent execs, ready() retries, close(), and argv quoting
 * checked with the host's sh.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { AgentClient, AgentError, shellQuoteArgv, type ExecHandlers } from '../../src/vmm/agent.js';

/** Collects what the client writes, as lines. */
class FakePort {
  lines: string[] = [];
  private buf = '';
  onLine: ((line: string) => void) | null = null;
  write(bytes: Uint8Array): void {
    this.buf += Buffer.from(bytes).toString('latin1');
    let i;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const l = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      this.lines.push(l);
      this.onLine?.(l);
    }
  }
}

function collector() {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const h: ExecHandlers = { stdout: (b) => out.push(Buffer.from(b)), stderr: (b) => err.push(Buffer.from(b)) };
  return { h, out: () => Buffer.concat(out), err: () => Buffer.concat(err) };
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

/** Feed `text` to the client in pieces of `step` bytes. */
function feed(c: AgentClient, text: string, step = 3): void {
  const b = Buffer.from(text, 'latin1');
  for (let i = 0; i < b.length; i += step) c.receive(b.subarray(i, i + step));
}

test('exec: request line, output at any split, exit status', async () => {
  const port = new FakePort();
  const c = new AgentClient(port);
  const col = collector();
  const p = c.exec(['echo', 'a b'], col.h);
  assert.equal(port.lines.length, 1);
  const [kind, id, cmd] = port.lines[0].split(' ');
  assert.equal(kind, 'E');
  assert.equal(id, '1');
  assert.equal(Buffer.from(cmd, 'base64').toString(), "echo 'a b'");
  const bin = Buffer.from([0, 1, 2, 0xff, 0x0a, 0x0d]);
  feed(c, `O 1 ${b64('hello\n')}\nR 1 ${b64('oops')}\r\nO 1 ${b64(bin)}\nX 1 3\n`, 5);
  assert.equal(await p, 3);
  assert.deepEqual(col.out(), Buffer.concat([Buffer.from('hello\n'), bin]));
  assert.equal(col.err().toString(), 'oops');
  assert.equal(c.running, 0);
});

test('concurrent execs keep their streams apart; unknown and malformed lines are ignored', async () => {
  const port = new FakePort();
  const c = new AgentClient(port);
  const a = collector();
  const b = collector();
  const pa = c.exec(['a'], a.h);
  const pb = c.execShell('b | c', b.h);
  assert.equal(Buffer.from(port.lines[1].split(' ')[2], 'base64').toString(), 'b | c');
  feed(c, [
    `O 2 ${b64('B1')}`, `O 1 ${b64('A1')}`, 'Z what is this', 'O x !!!', `O 99 ${b64('nobody')}`, '',
    `R 2 ${b64('B2')}`, 'X 2 300', `O 1 ${b64('A2')}`, 'X 1 0', '',
  ].join('\n'), 7);
  assert.equal(await pa, 0);
  assert.equal(await pb, 255, 'an implausible status reads as 255');
  assert.equal(a.out().toString(), 'A1A2');
  assert.equal(b.out().toString(), 'B1');
  assert.equal(b.err().toString(), 'B2');
});

test('a line longer than maxLineBytes is dropped, the stream goes on', async () => {
  const c = new AgentClient(new FakePort(), { maxLineBytes: 100 });
  const col = collector();
  const p = c.exec(['x'], col.h);
  feed(c, `O 1 ${b64('x'.repeat(200))}\nO 1 ${b64('ok')}\nX 1 0\n`, 13);
  assert.equal(await p, 0);
  assert.equal(col.out().toString(), 'ok');
});

test('ready() pings until the agent answers; an unsolicited hello also counts', async () => {
  const port = new FakePort();
  const c = new AgentClient(port, { pingIntervalMs: 10 });
  let answered = false;
  port.onLine = (l) => {
    // the agent "boots" after the third ping
    if (l === 'H' && port.lines.filter((x) => x === 'H').length >= 3 && !answered) {
      answered = true;
      setImmediate(() => c.receive(Buffer.from('H ok\n')));
    }
  };
  await c.ready(5000);
  assert.ok(port.lines.length >= 3);
  assert.equal(c.isReady, true);
  await c.ready(); // resolves at once now
  const c2 = new AgentClient(new FakePort(), { pingIntervalMs: 10 });
  const r = c2.ready(5000);
  c2.receive(Buffer.from('H ok\n'));
  await r;
});

test('ready() times out; close() rejects pending calls and later ones', async () => {
  const c = new AgentClient(new FakePort(), { pingIntervalMs: 5 });
  await assert.rejects(c.ready(50), AgentError);
  const pe = c.exec(['sleep', '100'], collector().h);
  const pr = c.ready();
  c.close('vm stopped');
  await assert.rejects(pe, /vm stopped/);
  await assert.rejects(pr, /vm stopped/);
  await assert.rejects(c.exec(['true'], collector().h), AgentError);
  await assert.rejects(c.exec([], collector().h), RangeError);
});

test('poweroff sends P', () => {
  const port = new FakePort();
  new AgentClient(port).poweroff();
  assert.deepEqual(port.lines, ['P']);
});

test('shellQuoteArgv round-trips through sh -c', (t) => {
  const args = ['plain', 'a b', "it's", '$HOME', '`x`', 'two\nlines', '*', '', 'ünï', '\\', '"q"', '-n'];
  const r = spawnSync('sh', ['-c', shellQuoteArgv(['printf', '[%s]', ...args])], { encoding: 'utf8' });
  if (r.error) {
    t.skip('no host sh');
    return;
  }
  assert.equal(r.stdout, args.map((a) => `[${a}]`).join(''));
});

test('an exec the port cannot take (guest not reading) is refused, not sent in part', async () => {
  let full = false;
  const sent: string[] = [];
  const c = new AgentClient({ write: (b: Uint8Array) => { if (full) return false; sent.push(Buffer.from(b).toString()); return true; } });
  full = true;
  await assert.rejects(c.exec(['rm', '-rf', '/tmp/x/y'], collector().h), /not reading/);
  assert.equal(c.running, 0, 'nothing left pending');
  full = false;
  const p = c.exec(['true'], collector().h);
  assert.equal(sent.length, 1);
  c.receive(Buffer.from('X 2 0\n'));
  assert.equal(await p, 0);
});
