import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Syscon, type PowerEvent } from '../../src/devices/syscon.js';

test('syscon-poweroff, syscon-reboot and fail-with-code', () => {
  const events: PowerEvent[] = [];
  const s = new Syscon((e) => events.push(e));
  s.write(0, 4, 0x5555);
  s.write(0, 4, 0x7777);
  s.write(0, 4, 0x3333 | (42 << 16));
  s.write(0, 2, 0x5555);
  assert.deepEqual(events, [{ kind: 'poweroff' }, { kind: 'reset' }, { kind: 'fail', code: 42 }, { kind: 'poweroff' }]);
});

test('other values, offsets and byte writes do nothing; reads are 0', () => {
  const events: PowerEvent[] = [];
  const s = new Syscon((e) => events.push(e));
  s.write(0, 4, 0x1234);
  s.write(4, 4, 0x5555);
  s.write(0, 1, 0x55);
  assert.deepEqual(events, []);
  assert.equal(s.read(0, 4), 0);
  assert.deepEqual(s.save(), {});
});
