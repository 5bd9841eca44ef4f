/**
 * Helpers of the display tests (screen.test.ts, web.test.ts): the framebuffer test pattern,
 * waiting for a daemon VM's guest agent, and reading the guest's evdev events.
 */
import assert from 'node:assert/strict';
import { describeRun, tsvisor } from './helpers.js';

/** The test pattern in the framebuffer's format (XRGB8888: bytes B, G, R, X); RGB at (x, y) is (x ^ y, y, x) & 0xff. */
export function fbPattern(width: number, height: number): Buffer {
  const b = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      b[o] = x & 0xff; b[o + 1] = y & 0xff; b[o + 2] = (x ^ y) & 0xff;
    }
  }
  return b;
}

/** The pattern's red, green and blue at (x, y). */
export function patternRgb(x: number, y: number): [number, number, number] {
  return [(x ^ y) & 0xff, y & 0xff, x & 0xff];
}

/** Resolves once daemon VM `vm`'s guest agent runs commands (within `timeoutMs`). */
export async function waitAgent(env: Record<string, string>, vm: string, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await tsvisor(['vm', 'exec', vm, '--', 'true'], { env })).code !== 0) {
    assert.ok(Date.now() < deadline, `the guest agent of ${vm} answers`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * Reads `count` events (type, code, value) from the guest's evdev device named `device`,
 * started now (the caller waits for the reader to open it before making events).
 */
export async function guestEvdev(env: Record<string, string>, vm: string, device: string, count: number): Promise<Array<[number, number, number]>> {
  const r = await tsvisor(['vm', 'exec', vm, '--', 'sh', '-c',
    `for d in /sys/class/input/event*; do [ "$(cat $d/device/name)" = "${device}" ] && e=\${d##*/}; done; dd if=/dev/input/$e bs=24 count=${count} 2>/dev/null | od -An -tu2`], { env, timeoutMs: 180_000 });
  assert.equal(r.code, 0, describeRun(`reading ${device} events`, r));
  const w = r.stdout.trim().split(/\s+/).map(Number);
  return Array.from({ length: w.length / 12 }, (_, i): [number, number, number] => [w[i * 12 + 8], w[i * 12 + 9], (w[i * 12 + 10] | (w[i * 12 + 11] << 16))]);
}
