/**
 * The display end to end, through the daemon and the guest's own `virtio_gpu` DRM driver
 * and its fbdev emulation (default image):
 *   - a VM has a display by default: `/dev/fb0` at the preferred mode (1280x800, from the
 *     device's EDID); `vm info` shows it;
 *   - a pattern the guest writes to `/dev/fb0` (every pixel different in x and y) comes
 *     back from `vm screenshot` as a PNG whose pixels are the pattern's;
 *   - `--resolution 800x600` gives the guest an 800x600 framebuffer;
 *   - the display's keyboard and tablet are the guest's evdev devices; `vm send-key KEY_A`
 *     arrives as EV_KEY 30 then SYN_REPORT;
 *   - the VNC server (`vm vnc`): a scripted RFB client gets the same pattern (zlib); a
 *     keysym and a QEMU extended key event arrive as the keyboard's EV_KEY codes, a click
 *     as the tablet's scaled ABS_X/ABS_Y and BTN_LEFT;
 *   - bad input: a resolution needing more graphics memory than `--vram`, and a screenshot
 *     of a VM without a display (`--vram 0`): one line of error, nothing changed.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PNG } from 'pngjs';
import { createServer } from 'node:net';
import { describeRun, tempTsvisorHome, tsvisor, withVmLogs, type RunResult } from './helpers.js';
import { RfbClient } from '../vmm/rfb-client.js';
import { fbPattern, guestEvdev, waitAgent } from './display-helpers.js';
import { tabletCoordinate } from '../../src/devices/virtio/input.js';

const T = 60_000;
const VM = `e2e-screen-${process.pid.toString(36)}`;
let root = '';
let env: Record<string, string> = {};

async function cli(args: string[]): Promise<RunResult> {
  const r = await tsvisor(args, { env, timeoutMs: 3 * T });
  assert.equal(r.code, 0, describeRun(`tsvisor ${args.join(' ')}`, r));
  return r;
}

before(() => {
  ({ root, env } = tempTsvisorHome('tsvisor-e2e-screen-'));
});

after(async () => {
  for (const vm of [VM, `${VM}-b`, `${VM}-n`, `${VM}-l`, `${VM}-s`]) await tsvisor(['vm', 'kill', vm], { env, timeoutMs: T }).catch(() => undefined);
  await tsvisor(['daemon', 'stop'], { env, timeoutMs: T }).catch(() => undefined);
});

test('a display: the guest\'s /dev/fb0 pattern comes back pixel for pixel from vm screenshot', { timeout: 8 * T }, async () => {
  const share = join(root, 'share');
  mkdirSync(share);
  writeFileSync(join(share, 'pattern'), fbPattern(1280, 800));
  writeFileSync(join(share, 'pattern-800'), fbPattern(800, 600));
  const tooBig = await tsvisor(['vm', 'create', 'big', '--resolution', '1920x1080', '--vram', '4M'], { env });
  assert.equal(tooBig.code, 1, describeRun('a mode past the graphics memory', tooBig));
  assert.match(tooBig.stderr, /^tsvisor: resolution 1920x1080 needs 8 MiB of graphics memory, more than the 4 MiB given \(--vram\)\n$/);
  await cli(['vm', 'create', VM, '--network', 'none', '--share', `${share}:p`]);
  await cli(['vm', 'create', `${VM}-b`, '--network', 'none', '--share', `${share}:p`, '--resolution', '800x600', '--vram', '4M']);
  await cli(['vm', 'create', `${VM}-n`, '--network', 'none', '--vram', '0']);
  assert.match((await cli(['vm', 'info', VM])).stdout, /display: +1280x800, 16 MiB of graphics memory/);
  await withVmLogs(() => join(root, 'home'), [VM, `${VM}-b`, `${VM}-n`], async () => {
    for (const vm of [VM, `${VM}-b`, `${VM}-n`]) await cli(['vm', 'start', vm]);
    for (const [vm, w, h, file] of [[VM, 1280, 800, 'pattern'], [`${VM}-b`, 800, 600, 'pattern-800']] as const) {
      await waitAgent(env, vm);
      const geometry = (await cli(['vm', 'exec', vm, '--', 'sh', '-c', 'cat /sys/class/graphics/fb0/virtual_size /sys/class/graphics/fb0/stride'])).stdout;
      assert.equal(geometry, `${w},${h}\n${w * 4}\n`, `${vm}: the framebuffer has the preferred mode`);
      // no blinking text cursor over the pattern; the fbdev helper flushes what was written
      await cli(['vm', 'exec', vm, '--', 'sh', '-c', `echo 0 > /sys/class/graphics/fbcon/cursor_blink; cat /mnt/p/${file} > /dev/fb0; sleep 1`]);
      const png = join(root, `${vm}.png`);
      await cli(['vm', 'screenshot', vm, png]);
      const img = PNG.sync.read(readFileSync(png));
      assert.deepEqual([img.width, img.height], [w, h]);
      let wrong = 0;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const o = (y * w + x) * 4;
          if (img.data[o] !== ((x ^ y) & 0xff) || img.data[o + 1] !== (y & 0xff) || img.data[o + 2] !== (x & 0xff) || img.data[o + 3] !== 255) wrong++;
        }
      }
      assert.equal(wrong, 0, `${vm}: ${wrong} of ${w * h} pixels differ from the pattern`);
    }
    // the display's keyboard: a key sent from the host is an evdev event in the guest
    const names = (await cli(['vm', 'exec', VM, '--', 'sh', '-c', 'for d in /sys/class/input/event*; do cat $d/device/name; done'])).stdout;
    assert.match(names, /tsvisor keyboard\n/);
    assert.match(names, /tsvisor tablet\n/);
    const reading = cli(['vm', 'exec', VM, '--', 'sh', '-c',
      'for d in /sys/class/input/event*; do [ "$(cat $d/device/name)" = "tsvisor keyboard" ] && e=${d##*/}; done; dd if=/dev/input/$e bs=24 count=2 2>/dev/null | od -An -tu2']);
    await new Promise((r) => setTimeout(r, 3000));
    await cli(['vm', 'send-key', VM, 'KEY_A']);
    const words = (await reading).stdout.trim().split(/\s+/).map(Number);
    assert.deepEqual(words.slice(8, 12), [1, 30, 1, 0], `EV_KEY KEY_A pressed: ${words.join(' ')}`);
    assert.deepEqual(words.slice(20, 24), [0, 0, 0, 0], 'then SYN_REPORT');
    // the VNC server: a scripted RFB client sees the same pattern and types into the guest's evdev devices
    const vnc = (await cli(['vm', 'vnc', VM])).stdout;
    const port = Number(/^vnc:\/\/127\.0\.0\.1:(\d+)\n$/.exec(vnc)?.[1]);
    assert.ok(port > 0, `vm vnc prints the address: ${vnc}`);
    const viewer = await RfbClient.connect(port);
    try {
      assert.deepEqual([viewer.width, viewer.height, viewer.name], [1280, 800, VM]);
      viewer.setEncodings([6, 0, -223, -258]);
      viewer.requestUpdate(false);
      const rects = await viewer.update();
      assert.ok(rects.some((r) => r.encoding === 6 && r.width === 1280 && r.height === 800), `a full zlib rectangle: ${JSON.stringify(rects)}`);
      let wrong = 0;
      for (let y = 0; y < 800; y++) {
        for (let x = 0; x < 1280; x++) {
          const o = (y * 1280 + x) * 4;
          if (viewer.fb[o] !== ((x ^ y) & 0xff) || viewer.fb[o + 1] !== (y & 0xff) || viewer.fb[o + 2] !== (x & 0xff)) wrong++;
        }
      }
      assert.equal(wrong, 0, `VNC: ${wrong} pixels differ from the pattern`);
      assert.match((await cli(['vm', 'info', VM])).stdout, new RegExp(`\nvnc: +vnc://127\\.0\\.0\\.1:${port} \\(\\d+ viewers?\\)\n`));
      const typed = guestEvdev(env, VM, 'tsvisor keyboard', 8);
      await new Promise((r) => setTimeout(r, 3000));
      viewer.key(true, 0x61); viewer.key(false, 0x61); // 'a' as a keysym
      viewer.qemuKey(true, 0xff0d, 0x1c); viewer.qemuKey(false, 0xff0d, 0x1c); // Enter as a scan code
      assert.deepEqual(await typed, [[1, 30, 1], [0, 0, 0], [1, 30, 0], [0, 0, 0], [1, 28, 1], [0, 0, 0], [1, 28, 0], [0, 0, 0]]);
      const clicked = guestEvdev(env, VM, 'tsvisor tablet', 4);
      await new Promise((r) => setTimeout(r, 3000));
      viewer.pointer(1, 640, 200);
      viewer.pointer(0, 640, 200);
      assert.deepEqual(await clicked, [[3, 0, tabletCoordinate(640, 1280)], [3, 1, tabletCoordinate(200, 800)], [1, 0x110, 1], [0, 0, 0]], 'ABS_X, ABS_Y scaled to the tablet, BTN_LEFT, SYN_REPORT');
    } finally {
      viewer.close();
    }
    const badKey = await tsvisor(['vm', 'send-key', VM, 'KEY_NOPE'], { env });
    assert.equal(badKey.code, 2, describeRun('an unknown key', badKey));
    const none = await tsvisor(['vm', 'screenshot', `${VM}-n`, join(root, 'none.png')], { env });
    assert.equal(none.code, 1, describeRun('screenshot without a display', none));
    assert.match(none.stderr, /^tsvisor: .*has no display \(--vram 0\)\n$/);
  });
});

test('graphics memory bounds the modes: with 64M the guest sets 1920x1080; with 8M none larger is offered and a forced one is refused', { timeout: 8 * T }, async () => {
  const [large, small] = [`${VM}-l`, `${VM}-s`];
  const modes = 'cat /sys/class/graphics/fb0/virtual_size; cat /sys/class/drm/card0-Virtual-1/modes | sort -u | tr "\\n" " "';
  await cli(['vm', 'create', large, '--network', 'none', '--vram', '64M', '--append', 'video=Virtual-1:1920x1080']);
  await cli(['vm', 'create', small, '--network', 'none', '--vram', '8M', '--append', 'video=Virtual-1:1920x1200']);
  await withVmLogs(() => join(root, 'home'), [large, small], async () => {
    for (const vm of [large, small]) await cli(['vm', 'start', vm]);
    await waitAgent(env, large);
    // 64 MiB: the EDID offers up to 2560x1600, and the mode the guest asks for is set
    const [size, offered] = (await cli(['vm', 'exec', large, '--', 'sh', '-c', modes])).stdout.split('\n');
    assert.equal(size, '1920,1080', 'the guest set 1920x1080');
    assert.match(offered, /\b2560x1600\b/);
    const png = join(root, 'large.png');
    await cli(['vm', 'screenshot', large, png]);
    const shot = PNG.sync.read(readFileSync(png));
    assert.deepEqual([shot.width, shot.height], [1920, 1080]);
    // 8 MiB: no mode past it is offered; forcing 1920x1200 (8.8 MiB) anyway, the device refuses the buffer
    await waitAgent(env, small);
    const out = (await cli(['vm', 'exec', small, '--', 'sh', '-c', `${modes}; echo; dmesg | grep -c 'response 0x1201 (command 0x101)'`])).stdout.split('\n');
    const offeredSmall = out[1].trim().split(' ').filter((m) => m !== '1920x1200'); // the forced mode is the guest's own (video=)
    for (const m of offeredSmall) {
      const [w, h] = m.split('x').map(Number);
      assert.ok(w * h * 4 <= 8 * 1024 * 1024, `${m} is offered in 8 MiB`);
    }
    assert.ok(offeredSmall.includes('1920x1080') && offeredSmall.includes('1280x800'), out[1]);
    assert.ok(Number(out.at(-2)) >= 1, `the guest saw ERR_OUT_OF_MEMORY for RESOURCE_CREATE_2D: ${out.join('|')}`);
    assert.match(readFileSync(join(root, 'home', 'vms', small, 'vm.log'), 'utf8'), /display: refused a 1920x1200 screen buffer \(8\.8 MiB\): the graphics memory has 8\.0 MiB free of 8\.0 MiB \(--vram\)/);
    const blank = await tsvisor(['vm', 'screenshot', small, join(root, 'small.png')], { env });
    assert.equal(blank.code, 1, describeRun('nothing shown', blank));
    assert.match(blank.stderr, /shows nothing/);
    assert.equal((JSON.parse((await cli(['vm', 'info', small, '--json'])).stdout) as { state: string }).state, 'running', 'the VM keeps running');
  });
});

test('tsvisor run --vnc: a VNC viewer sees the guest\'s screen while the command runs; bad --vnc, a taken port: one line, exit 2', { timeout: 6 * T }, async () => {
  const share = join(root, 'run-share');
  mkdirSync(share);
  writeFileSync(join(share, 'pattern'), fbPattern(800, 600));
  const display = 40 + (process.pid % 40);
  const running = tsvisor(['run', '--network', 'none', '--vnc', `127.0.0.1:${display}`, '--resolution', '800x600', '--vram', '4M', '--share', `${share}:p`, '--',
    'sh', '-c', 'echo 0 > /sys/class/graphics/fbcon/cursor_blink; cat /mnt/p/pattern > /dev/fb0; sleep 25; echo done'], { env, timeoutMs: 4 * T });
  let viewer: RfbClient | null = null;
  for (let i = 0; i < 100 && !viewer; i++) {
    viewer = await RfbClient.connect(5900 + display).catch(() => null);
    if (!viewer) await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(viewer, `a VNC server on port ${5900 + display}`);
  try {
    viewer.setEncodings([0, -223]);
    let wrong = -1;
    for (let i = 0; i < 60 && wrong !== 0; i++) {
      viewer.requestUpdate(false);
      await viewer.update();
      if (viewer.width !== 800 || viewer.height !== 600) { await new Promise((r) => setTimeout(r, 500)); continue; }
      wrong = 0;
      for (let y = 0; y < 600; y += 3) {
        for (let x = 0; x < 800; x += 3) {
          const o = (y * 800 + x) * 4;
          if (viewer.fb[o] !== ((x ^ y) & 0xff) || viewer.fb[o + 1] !== (y & 0xff) || viewer.fb[o + 2] !== (x & 0xff)) wrong++;
        }
      }
      if (wrong !== 0) await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(wrong, 0, 'the viewer sees the 800x600 pattern');
  } finally {
    viewer.close();
  }
  const r = await running;
  assert.equal(r.code, 0, describeRun('run --vnc', r));
  assert.equal(r.stdout, 'done\n');
  assert.match(r.stderr, new RegExp(`tsvisor: VNC server on vnc://127\\.0\\.0\\.1:${5900 + display}\\n`));
  for (const [args, message] of [
    [['--vnc', 'nope'], /^tsvisor: --vnc nope: expected \[HOST:\]DISPLAY, as QEMU's -vnc/],
    [['--vram', '8M'], /^tsvisor: --vram and --resolution set up the display of --vnc: give --vnc too\n$/],
    [['--vnc', '1', '--vram', '0'], /^tsvisor: --vnc needs a display: --vram 0 gives none\n$/],
    [['--vnc', '1', '--resolution', '1920x1080', '--vram', '4M'], /^tsvisor: resolution 1920x1080 needs 8 MiB of graphics memory, more than the 4 MiB given \(--vram\)\n$/],
  ] as const) {
    const bad = await tsvisor(['run', '--network', 'none', ...args, '--', 'true'], { env, timeoutMs: T });
    assert.equal(bad.code, 2, describeRun(`run ${args.join(' ')}`, bad));
    assert.match(bad.stderr, message);
  }
  // a display whose port another program holds
  const taken = createServer();
  let held = -1;
  for (let n = 99; n >= 60 && held < 0; n--) {
    if (await new Promise<boolean>((resolve) => { taken.once('error', () => resolve(false)); taken.listen(5900 + n, '127.0.0.1', () => resolve(true)); })) held = n;
  }
  assert.ok(held >= 0, 'a VNC port to hold');
  try {
    const busy = await tsvisor(['run', '--network', 'none', '--vnc', `127.0.0.1:${held}`, '--', 'true'], { env, timeoutMs: T });
    assert.equal(busy.code, 2, describeRun('a taken port', busy));
    assert.match(busy.stderr, new RegExp(`^tsvisor: --vnc 127\\.0\\.0\\.1:${held}: cannot listen on 127\\.0\\.0\\.1 port ${5900 + held}: the port is in use\n$`));
  } finally {
    taken.close();
  }
});
