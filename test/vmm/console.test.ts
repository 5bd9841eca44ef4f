import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitMarkerFilter } from '../../src/vmm/console.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

test('exit marker: stripped, status kept, split across chunks, later output dropped', () => {
  const f = new ExitMarkerFilter();
  let out = dec(f.push(enc('hello\n\x1fTSVISOR-EX')));
  out += dec(f.push(enc('IT 42\x1f[  1.0] reboot: Power down\n')));
  assert.equal(out, 'hello\n');
  assert.equal(f.exitCode, 42);
});

test('exit marker: a lone unit separator and look-alikes pass through unchanged', () => {
  const f = new ExitMarkerFilter();
  const text = 'a\x1fb \x1fTSVISOR-EXIT x\x1f \x1fTSV';
  assert.equal(dec(f.push(enc(text))) + dec(f.push(enc('!'))), text + '!');
  assert.equal(f.exitCode, null);
});
