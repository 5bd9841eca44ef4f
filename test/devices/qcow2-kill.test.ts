/**
 * kill -9 consistency: a child process (stress/qcow2-writer.ts) writes seeded random
 * data through tsvisor's qcow2 backend, flushing every few writes and acknowledging
 * them; it is SIGKILLed at a random moment, several times over the same image. After
 * each kill `qemu-img check` finds no corruption (exit status 0, or 3 for leaked clusters
 * only), every acknowledged write reads back, and the image holds exactly the writes
 * that completed (the one in progress partly).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDisk, openDisk } from '../../src/devices/node/disk.js';
import { writerOp } from '../../stress/qcow2-writer.js';
import { findTool, mustRun, qemuCheck, rng, sha256 } from './qcow2-helpers.js';

const WRITER = fileURLToPath(new URL('../../stress/qcow2-writer.js', import.meta.url));
const MiB = 1024 * 1024;
const OPS = 4000;
const FLUSH_EVERY = 8;
let dir = '';

before(() => {
  assert.ok(findTool('qemu-img'), 'qemu-img is missing: this test needs Debian\'s qemu-utils (npm run test:deps)');
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-kill-'));
});
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

function readDisk(path: string): Uint8Array {
  const d = openDisk(path, { readonly: true });
  const b = new Uint8Array(d.size);
  d.read(b, 0);
  d.close();
  return b;
}

/** Run the writer on `img` with `seed`; SIGKILL it `delayMs` after its first ack. Returns the last ack. */
function runAndKill(img: string, seed: number, delayMs: number): Promise<{ acked: number; finished: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, img, String(seed), String(OPS), String(FLUSH_EVERY)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '', timer: NodeJS.Timeout | null = null;
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (!timer && out.includes('ack ')) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL' && code !== 0) { reject(new Error(`writer exited ${code}: ${err}`)); return; }
      const acks = [...out.matchAll(/ack (\d+)\n/g)].map((m) => Number(m[1]));
      resolve({ acked: acks.length ? acks[acks.length - 1] : 0, finished: out.includes('done\n') });
    });
  });
}

/**
 * The image must be `base` with writes 0..k-1 of `seed` applied and write k partly
 * applied, for some k >= acked. Returns k, or -1.
 */
function matchPrefix(img: Uint8Array, base: Uint8Array, seed: number, acked: number): number {
  const m = Buffer.from(base);
  const got = Buffer.from(img.buffer, img.byteOffset, img.byteLength);
  for (let i = 0; i < acked; i++) { const op = writerOp(seed, i, m.length); m.set(op.data, op.offset); }
  for (let k = acked; k <= OPS; k++) {
    const op = k < OPS ? writerOp(seed, k, m.length) : null;
    const lo = op ? op.offset : m.length, hi = op ? op.offset + op.data.length : m.length;
    if (got.compare(m, 0, lo, 0, lo) === 0 && got.compare(m, hi, m.length, hi, m.length) === 0) {
      let ok = true;
      for (let b = lo; b < hi && ok; b++) ok = got[b] === m[b] || got[b] === op!.data[b - lo];
      if (ok) return k;
    }
    if (op) m.set(op.data, op.offset);
  }
  return -1;
}

describe('kill -9 while writing a qcow2 image', { timeout: 10 * 60_000 }, () => {
  const kinds = [
    { name: '64 KiB clusters over a raw base', setup: (img: string) => {
      writeFileSync(join(dir, 'base.raw'), Buffer.alloc(24 * MiB, 0x42));
      createDisk(img, { format: 'qcow2', backing: 'base.raw', size: 32 * MiB });
    } },
    { name: '512-byte clusters made by qemu-img (refcount table grows)', setup: (img: string) => {
      mustRun('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', img, '32M']);
    } },
  ];
  for (const kind of kinds) {
    test(kind.name, async (t) => {
      const img = join(dir, `kill-${kind.name.length}.qcow2`);
      kind.setup(img);
      const baseHash = kind.name.includes('raw base') ? sha256(readFileSync(join(dir, 'base.raw'))) : '';
      const r = rng(kind.name.length);
      const lines: string[] = [];
      for (let round = 0; round < 8; round++) {
        const before = readDisk(img);
        const seed = 1000 * kind.name.length + round;
        const delay = 50 + (r() % 700);
        const { acked, finished } = await runAndKill(img, seed, delay);
        const check = qemuCheck(img);
        assert.ok(check.status === 0 || check.status === 3, `round ${round}: qemu-img check exit ${check.status}\n${check.text}`);
        assert.equal(check.report.corruptions ?? 0, 0, check.text);
        assert.equal(check.report['check-errors'] ?? 0, 0, check.text);
        const k = matchPrefix(readDisk(img), before, seed, acked);
        assert.ok(k >= acked, `round ${round}: the image is not the base plus a prefix of the writes from ${acked} (acknowledged) on`);
        lines.push(`round ${round}: killed ${delay} ms after the first ack${finished ? ' (finished first)' : ''}, ${acked} writes acknowledged, ${k} complete, qemu-img check exit ${check.status}, ${check.report.leaks ?? 0} leaked clusters`);
      }
      for (const l of lines) t.diagnostic(l);
      if (baseHash) assert.equal(sha256(readFileSync(join(dir, 'base.raw'))), baseHash, 'the base was written');
    });
  }
});
