/** ByteQueue (src/devices/byte-queue.ts): order across chunks, partial takes, peek, clear. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteQueue } from '../../src/devices/byte-queue.js';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

test('bytes come out in order across chunk boundaries; takes are clamped', () => {
  const q = new ByteQueue();
  q.push(bytes('abc'));
  q.push(bytes(''));
  q.push(bytes('defgh'));
  assert.equal(q.length, 8);
  assert.equal(text(q.take(2)), 'ab');
  assert.equal(text(q.peekAll()), 'cdefgh', 'peek sees the rest of a half-taken chunk');
  assert.equal(text(q.take(4.9)), 'cdef');
  assert.equal(q.take(-1).length, 0);
  assert.equal(text(q.take(100)), 'gh');
  assert.equal(q.length, 0);
  assert.equal(q.take(5).length, 0);
  q.push(bytes('xyz'));
  q.clear();
  assert.equal(q.length, 0);
  assert.equal(q.peekAll().length, 0);
});
