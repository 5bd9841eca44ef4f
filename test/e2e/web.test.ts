/**
 * The web console in a real browser: Debian's headless Chromium driven by puppeteer-core,
 * against a daemon opened by `tsvisor web`, with a default-image VM:
 *   - a wrong token is refused (the login form says so, and the API answers 401 to its cookie);
 *   - the link `tsvisor web` prints logs in; the page lists the VM, stopped; its Start
 *     button starts it;
 *   - the screen (noVNC over the API's WebSocket to the VM's VNC server) shows what the
 *     guest writes to /dev/fb0, pixel for pixel, in the canvas and in a saved screenshot of
 *     the page; a key typed on the page reaches the guest's keyboard as its Linux code;
 *   - a click on the screen arrives as the tablet's scaled coordinates and BTN_LEFT; Pause
 *     and Resume work;
 *   - the serial console (xterm.js over WebSocket): a command typed there runs, its output
 *     shows; the CD-ROM drive takes an ISO and gives it back; Stop stops the VM.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PNG } from 'pngjs';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { describeRun, findTool, host, tempTsvisorHome, tsvisor, withVmLogs, type RunResult } from './helpers.js';
import { fbPattern, guestEvdev, patternRgb, waitAgent } from './display-helpers.js';
import { tabletCoordinate } from '../../src/devices/virtio/input.js';

// the page's globals, in the functions puppeteer runs in the browser (the tests compile without the DOM library)
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const location: any;
type HTMLElement = any;
type HTMLCanvasElement = any;

const T = 60_000;
const VM = `e2e-web-${process.pid.toString(36)}`;
let root = '';
let env: Record<string, string> = {};
let browser: Browser | null = null;

async function cli(args: string[]): Promise<RunResult> {
  const r = await tsvisor(args, { env, timeoutMs: 3 * T });
  assert.equal(r.code, 0, describeRun(`tsvisor ${args.join(' ')}`, r));
  return r;
}

/** Polls `cond` in the page until it is true (within `ms`). */
async function until(page: Page, what: string, cond: () => boolean, ms = 2 * T): Promise<void> {
  try {
    await page.waitForFunction(cond, { timeout: ms, polling: 200 });
  } catch (e) {
    const shot = join(root, `failed-${what.replace(/\W+/g, '-')}.png`);
    await page.screenshot({ path: shot }).catch(() => undefined);
    throw new Error(`${what}: ${(e as Error).message} (page saved in ${shot})`);
  }
}

/** Pixels of the pattern that the RGBA image `data` (`width` wide) shows wrong at offset (ox, oy), sampled every 7 pixels. */
function wrongPixels(data: Uint8Array, width: number, ox: number, oy: number): number {
  let wrong = 0;
  for (let y = 0; y < 800; y += 7) {
    for (let x = 0; x < 1280; x += 7) {
      const o = ((oy + y) * width + ox + x) * 4;
      const [r, g, b] = patternRgb(x, y);
      if (data[o] !== r || data[o + 1] !== g || data[o + 2] !== b) wrong++;
    }
  }
  return wrong;
}

before(() => {
  ({ root, env } = tempTsvisorHome('tsvisor-e2e-web-'));
});

after(async () => {
  await browser?.close().catch(() => undefined);
  await tsvisor(['vm', 'kill', VM], { env, timeoutMs: T }).catch(() => undefined);
  await tsvisor(['daemon', 'stop'], { env, timeoutMs: T }).catch(() => undefined);
});

test('the web console in Chromium: login, list, start, screen, keyboard, serial console, CD-ROM, stop', { timeout: 10 * T }, async (t) => {
  const chromium = findTool('chromium');
  if (!chromium) { t.skip('chromium is not installed (npm run test:deps)'); return; }
  const share = join(root, 'share');
  mkdirSync(share);
  writeFileSync(join(share, 'pattern'), fbPattern(1280, 800));
  const iso = join(root, 'tools.iso');
  host('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'TOOLS', '-o', iso, share]);
  await cli(['vm', 'create', VM, '--network', 'none', '--share', `${share}:p`]);
  const link = (await cli(['web'])).stdout.trim();
  const m = /^(http:\/\/127\.0\.0\.1:\d+\/)#token=([0-9a-f]{64})$/.exec(link);
  assert.ok(m, `tsvisor web prints the page with its token: ${link}`);
  const [, base, token] = m;
  assert.equal(token, readFileSync(join(env.TSVISOR_HOME, 'token'), 'utf8').trim());
  assert.equal((await cli(['web'])).stdout.trim(), link, 'a second tsvisor web gives the same address');

  browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ['--no-sandbox', '--disable-gpu', '--force-color-profile=srgb'] });
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 1500 });
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  // a wrong token: the login form says so, and nothing else is shown
  await page.goto(`${base}#token=${'0'.repeat(64)}`);
  await until(page, 'the login form refuses a wrong token', () => !document.getElementById('login')!.hidden && /wrong token/.test(document.getElementById('login-error')!.textContent ?? ''));
  assert.equal(await page.$eval('#main', (e) => (e as HTMLElement).hidden), true);
  const refused = await page.evaluate(async () => (await fetch('/v1/vms')).status);
  assert.equal(refused, 401, 'the API refuses the page without a session');
  await page.screenshot({ path: join(root, 'login.png') });

  await withVmLogs(() => join(root, 'home'), [VM], async () => {
    // the printed link logs in; the VM is listed, stopped; Start starts it
    await page.goto(link);
    await until(page, 'the VM is listed', () => !!document.querySelector(`#vms tr[data-vm] .state`));
    assert.equal(await page.evaluate(() => location.hash), '', 'the token is dropped from the address');
    const row = `#vms tr[data-vm="${VM}"]`;
    assert.equal(await page.$eval(`${row} .state`, (e) => e.textContent), 'stopped');
    await page.click(`${row} button[data-action=start]`);
    await until(page, 'the VM runs', () => document.querySelector('#vms tr[data-vm] .state')?.textContent === 'running');
    assert.equal((JSON.parse((await cli(['vm', 'info', VM, '--json'])).stdout) as { state: string }).state, 'running');

    // the screen: noVNC shows the guest's framebuffer
    await page.click(`${row} button.name`);
    await waitAgent(env, VM);
    await cli(['vm', 'exec', VM, '--', 'sh', '-c', 'echo 0 > /sys/class/graphics/fbcon/cursor_blink; cat /mnt/p/pattern > /dev/fb0']);
    // the guest's fbdev flushes what was written in a few steps: wait for all of it
    await until(page, 'the screen shows the pattern', () => {
      const c = document.querySelector('#screen canvas');
      if (!c || c.width !== 1280 || c.height !== 800) return false;
      const d = c.getContext('2d').getImageData(0, 0, 1280, 800).data;
      for (let y = 0; y < 800; y += 7) {
        for (let x = 0; x < 1280; x += 7) {
          const o = (y * 1280 + x) * 4;
          if (d[o] !== ((x ^ y) & 0xff) || d[o + 1] !== (y & 0xff) || d[o + 2] !== (x & 0xff)) return false;
        }
      }
      return true;
    });
    const canvasPixels = await page.$eval('#screen canvas', (c) => Array.from((c as HTMLCanvasElement).getContext('2d')!.getImageData(0, 0, 1280, 800).data) as number[]);
    assert.equal(wrongPixels(Uint8Array.from(canvasPixels), 1280, 0, 0), 0, 'the canvas holds the pattern');
    const box = (await (await page.$('#screen canvas'))!.boundingBox())!;
    const shotPath = join(root, 'screen.png');
    await page.screenshot({ path: shotPath });
    const shot = PNG.sync.read(readFileSync(shotPath));
    assert.equal(wrongPixels(shot.data, shot.width, Math.round(box.x), Math.round(box.y)), 0, `the saved screenshot (${shotPath}) shows the pattern where the canvas is`);

    // a key typed on the page reaches the guest's keyboard (noVNC sends QEMU extended key events)
    const typed = guestEvdev(env, VM, 'tsvisor keyboard', 4);
    await new Promise((r) => setTimeout(r, 3000));
    await page.focus('#screen canvas');
    await page.keyboard.press('KeyZ');
    assert.deepEqual(await typed, [[1, 44, 1], [0, 0, 0], [1, 44, 0], [0, 0, 0]], 'KEY_Z pressed and released');

    // a click on the screen reaches the tablet, scaled to its axes
    const clicked = guestEvdev(env, VM, 'tsvisor tablet', 6);
    await new Promise((r) => setTimeout(r, 3000));
    // Chrome gives whole-pixel client coordinates and the canvas may sit at a fraction: the first whole one inside pixel (640, 200)
    await page.mouse.click(Math.ceil(box.x + 640), Math.ceil(box.y + 200));
    const events = await clicked;
    assert.ok(events.some(([type, code, value]) => type === 3 && code === 0 && value === tabletCoordinate(640, 1280)), `ABS_X: ${JSON.stringify(events)}`);
    assert.ok(events.some(([type, code, value]) => type === 3 && code === 1 && value === tabletCoordinate(200, 800)), `ABS_Y: ${JSON.stringify(events)}`);
    assert.ok(events.some(([type, code, value]) => type === 1 && code === 0x110 && value === 1), `BTN_LEFT pressed: ${JSON.stringify(events)}`);

    // Pause and Resume
    await page.click(`${row} button[data-action=pause]`);
    await until(page, 'the VM is paused', () => document.querySelector('#vms tr[data-vm] .state')?.textContent === 'paused');
    await page.click(`${row} button[data-action=resume]`);
    await until(page, 'the VM runs again', () => document.querySelector('#vms tr[data-vm] .state')?.textContent === 'running');

    // the serial console: a command typed in xterm.js runs in the guest
    await page.click('.tabs button[data-tab=console]');
    await until(page, 'the serial console shows the scrollback', () => (document.querySelector('#console .xterm-rows')?.textContent ?? '').includes('#'));
    await page.click('#console .xterm');
    await page.keyboard.type('echo web-$((6*7))\n');
    await until(page, 'the command ran', () => (document.querySelector('#console .xterm-rows')?.textContent ?? '').includes('web-42'));
    await page.screenshot({ path: join(root, 'console.png') });

    // the CD-ROM drive: insert, then eject
    await page.type('#cdrom-path', iso);
    await page.click('#cdrom-insert');
    await until(page, 'the disc is in the drive', () => (document.getElementById('cdrom-state')!.textContent ?? '').endsWith('tools.iso'));
    assert.match((await cli(['vm', 'exec', VM, '--', 'sh', '-c', 'blkid -o value -s LABEL /dev/sr0 || cat /sys/block/sr0/size'])).stdout, /TOOLS|^[1-9]/);
    await page.click('#cdrom-eject');
    await until(page, 'the drive is empty', () => document.getElementById('cdrom-state')!.textContent === 'empty');

    // Stop
    await page.click(`${row} button[data-action=stop]`);
    await until(page, 'the VM stops', () => document.querySelector('#vms tr[data-vm] .state')?.textContent === 'stopped', 3 * T);
  });
  assert.deepEqual(pageErrors, [], 'no script errors in the page');
});
