/**
 * virtio-gpu 2D (src/devices/virtio/gpu.ts), driven as Linux's virtio_gpu drives it: the
 * display info and EDID, a framebuffer resource with scattered backing, transfers (whole
 * and partial, with the offset Linux computes), the scanout, flushes, the cursor; the
 * graphics memory budget; and hostile commands, answered with the spec's errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioMmio } from '../../src/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1 } from '../../src/devices/virtio/device.js';
import { GPU_CMD, GPU_RESP, VIRTIO_GPU_F_EDID, VIRTIO_GPU_FLAG_FENCE, VIRTIO_ID_GPU, VirtioGpu, buildEdid, type GpuRect } from '../../src/devices/virtio/gpu.js';
import { FakeIrq, MultiQueueDriver, RAM_BASE, makeRam } from './helpers.js';

const B8G8R8X8 = 2;
const R8G8B8A8 = 67;

function setup(opts: { vramBytes?: number; width?: number; height?: number } = {}) {
  const mem = makeRam(8 << 20);
  const flushes: GpuRect[] = [];
  const modes: Array<{ width: number; height: number } | null> = [];
  const gpu = new VirtioGpu({ vramBytes: opts.vramBytes ?? 16 << 20, width: opts.width ?? 1280, height: opts.height ?? 800, onFlush: (r) => flushes.push(r), onScanout: (m) => modes.push(m) });
  const reasons: string[] = [];
  const dev = new VirtioMmio(gpu, mem, new FakeIrq(), { onNeedsReset: (r) => reasons.push(r) });
  const drv = new MultiQueueDriver(dev, mem, 64);
  drv.negotiate(VIRTIO_F_VERSION_1 | VIRTIO_GPU_F_EDID);
  drv.setupQueues(2);
  return { mem, gpu, dev, drv, flushes, modes, reasons };
}
type Env = ReturnType<typeof setup>;

/** One controlq command: 24-byte header (type, flags, fence) then `body` words; the response type and bytes. */
function cmd(env: Env, type: number, body: Array<[number, 'u32' | 'u64']> = [], opts: { extra?: Uint8Array; respBytes?: number; fence?: bigint } = {}) {
  const bodyBytes = body.reduce((n, [, w]) => n + (w === 'u32' ? 4 : 8), 0) + (opts.extra?.length ?? 0);
  const req = env.drv.alloc(24 + bodyBytes);
  const v = new DataView(env.mem.slice(req, 24 + bodyBytes).buffer, env.mem.slice(req, 1).byteOffset, 24 + bodyBytes);
  v.setUint32(0, type, true);
  if (opts.fence !== undefined) { v.setUint32(4, VIRTIO_GPU_FLAG_FENCE, true); v.setBigUint64(8, opts.fence, true); }
  let at = 24;
  for (const [x, w] of body) {
    if (w === 'u32') { v.setUint32(at, x, true); at += 4; } else { v.setBigUint64(at, BigInt(x), true); at += 8; }
  }
  if (opts.extra) env.mem.slice(req + at, opts.extra.length).set(opts.extra);
  const respBytes = opts.respBytes ?? 2048;
  const resp = env.drv.alloc(respBytes);
  env.drv.rings[0].add([{ addr: req, len: 24 + bodyBytes }, { addr: resp, len: respBytes, write: true } as never]);
  env.drv.kick(0);
  const used = env.drv.rings[0].takeUsed();
  const out = Uint8Array.from(env.mem.slice(resp, respBytes));
  const rv = new DataView(out.buffer);
  return { type: rv.getUint32(0, true), used: used[0]?.len ?? -1, bytes: out, view: rv };
}

const create = (env: Env, id: number, w: number, h: number, format = B8G8R8X8) =>
  cmd(env, GPU_CMD.RESOURCE_CREATE_2D, [[id, 'u32'], [format, 'u32'], [w, 'u32'], [h, 'u32']]).type;

/** Attach backing from `parts` guest buffers of the given sizes; returns their addresses. */
function attach(env: Env, id: number, sizes: number[]): number[] {
  const addrs = sizes.map((s) => env.drv.alloc(s));
  const entries = new Uint8Array(16 * sizes.length);
  const ev = new DataView(entries.buffer);
  sizes.forEach((s, i) => { ev.setBigUint64(16 * i, BigInt(addrs[i]), true); ev.setUint32(16 * i + 8, s, true); });
  assert.equal(cmd(env, GPU_CMD.RESOURCE_ATTACH_BACKING, [[id, 'u32'], [sizes.length, 'u32']], { extra: entries }).type, GPU_RESP.OK_NODATA);
  return addrs;
}

const rect = (r: GpuRect): Array<[number, 'u32']> => [[r.x, 'u32'], [r.y, 'u32'], [r.width, 'u32'], [r.height, 'u32']];

test('virtio-gpu: device ID 16, EDID feature, one scanout; display info and an EDID 1.4 block naming the mode', () => {
  const env = setup({ width: 1024, height: 768 });
  assert.equal(env.dev.read(8, 4), VIRTIO_ID_GPU);
  assert.equal(env.drv.deviceFeatures() & VIRTIO_GPU_F_EDID, VIRTIO_GPU_F_EDID);
  assert.equal(env.dev.read(0x100 + 8, 4), 1, 'num_scanouts');
  const di = cmd(env, GPU_CMD.GET_DISPLAY_INFO);
  assert.equal(di.type, GPU_RESP.OK_DISPLAY_INFO);
  assert.equal(di.used, 24 + 16 * 24);
  assert.deepEqual([di.view.getUint32(24 + 8, true), di.view.getUint32(24 + 12, true), di.view.getUint32(24 + 16, true)], [1024, 768, 1]);
  const ed = cmd(env, GPU_CMD.GET_EDID, [[0, 'u32'], [0, 'u32']]);
  assert.equal(ed.type, GPU_RESP.OK_EDID);
  assert.equal(ed.view.getUint32(24, true), 128);
  const edid = ed.bytes.subarray(32, 160);
  assert.deepEqual([...edid.subarray(0, 8)], [0, 255, 255, 255, 255, 255, 255, 0]);
  assert.equal(edid.reduce((a, b) => a + b, 0) % 256, 0, 'checksum');
  assert.deepEqual([edid[18], edid[19]], [1, 4]);
  const dtdW = edid[56] | ((edid[58] >> 4) << 8);
  const dtdH = edid[59] | ((edid[61] >> 4) << 8);
  assert.deepEqual([dtdW, dtdH], [1024, 768], 'the preferred detailed timing');
  assert.ok(buildEdid(1920, 1080).subarray(38, 54).some((b, i) => i % 2 === 0 && b === 1280 / 8 - 31), '1280-wide standard timings below 1920x1080');
  // the modes offered are those whose framebuffer fits in the graphics memory
  const standard = (e: Uint8Array) => Array.from({ length: 8 }, (_, i) => [e[38 + 2 * i], e[39 + 2 * i]]).filter(([a]) => a !== 1)
    .map(([a, b]) => { const w = (a + 31) * 8; const r = b >> 6; return `${w}x${r === 0 ? w * 10 / 16 : r === 1 ? w * 3 / 4 : r === 2 ? w * 4 / 5 : w * 9 / 16}`; });
  const dtd2 = (e: Uint8Array) => e[108] === 0 && e[109] === 0 ? null : `${e[110] | ((e[112] >> 4) << 8)}x${e[113] | ((e[115] >> 4) << 8)}`;
  assert.deepEqual(standard(buildEdid(1280, 800, 8 * 1024 * 1024)), ['1280x720', '1280x1024', '1440x900', '1600x900', '1680x1050', '1920x1080']);
  assert.equal(dtd2(buildEdid(1280, 800, 8 * 1024 * 1024)), null, 'no 2560x1600 in 8 MiB');
  assert.deepEqual(standard(buildEdid(1280, 800, 64 * 1024 * 1024)), ['1280x720', '1280x1024', '1440x900', '1600x900', '1680x1050', '1920x1080', '1920x1200']);
  assert.equal(dtd2(buildEdid(1280, 800, 64 * 1024 * 1024)), '2560x1600');
  assert.deepEqual(standard(buildEdid(800, 600, 2 * 1024 * 1024)), [], 'only the preferred mode and the established ones that fit');
  assert.deepEqual([buildEdid(800, 600, 2 * 1024 * 1024)[35], buildEdid(800, 600, 2 * 1024 * 1024)[36]], [0x21, 0], '640x480 and 800x600, not 1024x768 (3 MiB)');
  assert.equal(cmd(env, GPU_CMD.GET_EDID, [[3, 'u32'], [0, 'u32']]).type, GPU_RESP.ERR_INVALID_PARAMETER, 'no scanout 3');
  // the host changes the mode: a display event
  env.gpu.setPreferredMode(800, 600);
  assert.equal(env.dev.read(0x100, 4) & 1, 1, 'events_read has VIRTIO_GPU_EVENT_DISPLAY');
  env.dev.write(0x100 + 4, 4, 1);
  assert.equal(env.dev.read(0x100, 4), 0, 'events_clear');
  assert.throws(() => env.gpu.setPreferredMode(8, 8));
});

test('virtio-gpu: a framebuffer over scattered backing: full and partial transfers, the scanout, flushes, the screen in RGBA', () => {
  const env = setup();
  const W = 64;
  const H = 32;
  assert.equal(create(env, 7, W, H), GPU_RESP.OK_NODATA);
  const bytes = W * H * 4;
  const parts = [3000, 4096, bytes - 7096]; // not page-aligned on purpose
  const addrs = attach(env, 7, parts);
  // the guest's framebuffer (B8G8R8X8): pixel (x, y) has blue x*4, green y*8, red 200
  const fb = new Uint8Array(bytes);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) fb.set([x * 4, y * 8, 200, 0], (y * W + x) * 4);
  let at = 0;
  parts.forEach((s, i) => { env.mem.slice(addrs[i], s).set(fb.subarray(at, at + s)); at += s; });
  assert.equal(cmd(env, GPU_CMD.TRANSFER_TO_HOST_2D, [...rect({ x: 0, y: 0, width: W, height: H }), [0, 'u64'], [7, 'u32'], [0, 'u32']]).type, GPU_RESP.OK_NODATA);
  assert.equal(env.gpu.screen(), null, 'nothing shown before SET_SCANOUT');
  assert.equal(cmd(env, GPU_CMD.SET_SCANOUT, [...rect({ x: 0, y: 0, width: W, height: H }), [0, 'u32'], [7, 'u32']]).type, GPU_RESP.OK_NODATA);
  assert.deepEqual(env.modes, [{ width: W, height: H }]);
  assert.equal(cmd(env, GPU_CMD.RESOURCE_FLUSH, [...rect({ x: 4, y: 2, width: 10, height: 5 }), [7, 'u32'], [0, 'u32']]).type, GPU_RESP.OK_NODATA);
  assert.deepEqual(env.flushes, [{ x: 4, y: 2, width: 10, height: 5 }]);
  const s = env.gpu.screen()!;
  assert.equal(s.width, W);
  const px = (x: number, y: number) => [...s.rgba.subarray((y * W + x) * 4, (y * W + x) * 4 + 4)];
  assert.deepEqual(px(0, 0), [200, 0, 0, 255]);
  assert.deepEqual(px(10, 3), [200, 24, 40, 255]);
  assert.deepEqual(px(63, 31), [200, 248, 252, 255]);
  // a partial transfer (x 8, y 4, 16x8), offset as Linux computes it: y * stride + x * 4
  const stride = W * 4;
  const off = 4 * stride + 8 * 4;
  for (let y = 4; y < 12; y++) for (let x = 8; x < 24; x++) fb.set([1, 2, 3, 0], (y * W + x) * 4);
  at = 0;
  parts.forEach((sz, i) => { env.mem.slice(addrs[i], sz).set(fb.subarray(at, at + sz)); at += sz; });
  assert.equal(cmd(env, GPU_CMD.TRANSFER_TO_HOST_2D, [...rect({ x: 8, y: 4, width: 16, height: 8 }), [off, 'u64'], [7, 'u32'], [0, 'u32']]).type, GPU_RESP.OK_NODATA);
  const s2 = env.gpu.screen()!;
  const px2 = (x: number, y: number) => [...s2.rgba.subarray((y * W + x) * 4, (y * W + x) * 4 + 3)];
  assert.deepEqual(px2(8, 4), [3, 2, 1]);
  assert.deepEqual(px2(23, 11), [3, 2, 1]);
  assert.deepEqual(px2(24, 11), [200, 88, 96], 'outside the rectangle: unchanged');
  assert.deepEqual(px2(7, 4), [200, 32, 28]);
  // a fenced flush is answered with its fence
  const f = cmd(env, GPU_CMD.RESOURCE_FLUSH, [...rect({ x: 0, y: 0, width: W, height: H }), [7, 'u32'], [0, 'u32']], { fence: 99n });
  assert.equal(f.view.getUint32(4, true), VIRTIO_GPU_FLAG_FENCE);
  assert.equal(f.view.getBigUint64(8, true), 99n);
  // unref of the scanned-out resource: the screen goes blank
  assert.equal(cmd(env, GPU_CMD.RESOURCE_UNREF, [[7, 'u32'], [0, 'u32']]).type, GPU_RESP.OK_NODATA);
  assert.equal(env.gpu.screen(), null);
  assert.deepEqual(env.modes.at(-1), null);
  assert.equal(env.gpu.vramUsedBytes, 0);
});

test('virtio-gpu: graphics memory bounds the resources (ERR_OUT_OF_MEMORY), unref gives it back', () => {
  const env = setup({ vramBytes: 64 * 1024, width: 64, height: 64 });
  for (let id = 1; id <= 4; id++) assert.equal(create(env, id, 64, 64), GPU_RESP.OK_NODATA);
  assert.equal(create(env, 5, 64, 64), GPU_RESP.ERR_OUT_OF_MEMORY);
  assert.equal(create(env, 5, 16, 16), GPU_RESP.ERR_OUT_OF_MEMORY, 'nothing left');
  assert.equal(cmd(env, GPU_CMD.RESOURCE_UNREF, [[2, 'u32'], [0, 'u32']]).type, GPU_RESP.OK_NODATA);
  assert.equal(create(env, 5, 64, 64), GPU_RESP.OK_NODATA);
  assert.throws(() => new VirtioGpu({ vramBytes: 1 << 20, width: 1920, height: 1080 }), /graphics memory/);
});

test('virtio-gpu: hostile commands get the spec\'s errors and change nothing', () => {
  const env = setup();
  assert.equal(create(env, 0, 16, 16), GPU_RESP.ERR_INVALID_RESOURCE_ID, 'id 0');
  assert.equal(create(env, 1, 16, 16), GPU_RESP.OK_NODATA);
  assert.equal(create(env, 1, 16, 16), GPU_RESP.ERR_INVALID_RESOURCE_ID, 'taken');
  assert.equal(create(env, 2, 16, 16, 999), GPU_RESP.ERR_INVALID_PARAMETER, 'format');
  assert.equal(create(env, 2, 0, 16), GPU_RESP.ERR_INVALID_PARAMETER, 'width 0');
  assert.equal(create(env, 2, 100_000, 16), GPU_RESP.ERR_INVALID_PARAMETER, 'too wide');
  assert.equal(create(env, 3, 16, 16, R8G8B8A8), GPU_RESP.OK_NODATA);
  // backing outside RAM, too many entries, entries missing from the chain
  const bad = new Uint8Array(16);
  new DataView(bad.buffer).setBigUint64(0, BigInt(RAM_BASE + (8 << 20) - 100), true);
  new DataView(bad.buffer).setUint32(8, 4096, true);
  assert.equal(cmd(env, GPU_CMD.RESOURCE_ATTACH_BACKING, [[1, 'u32'], [1, 'u32']], { extra: bad }).type, GPU_RESP.ERR_UNSPEC);
  assert.equal(cmd(env, GPU_CMD.RESOURCE_ATTACH_BACKING, [[1, 'u32'], [100_000, 'u32']]).type, GPU_RESP.ERR_UNSPEC);
  assert.equal(cmd(env, GPU_CMD.RESOURCE_ATTACH_BACKING, [[1, 'u32'], [4, 'u32']], { extra: new Uint8Array(16) }).type, GPU_RESP.ERR_UNSPEC);
  assert.equal(cmd(env, GPU_CMD.RESOURCE_ATTACH_BACKING, [[9, 'u32'], [1, 'u32']], { extra: new Uint8Array(16) }).type, GPU_RESP.ERR_INVALID_RESOURCE_ID);
  // transfers: no backing, outside the resource, past the backing
  const t = (r: GpuRect, off: number, id = 1) => cmd(env, GPU_CMD.TRANSFER_TO_HOST_2D, [...rect(r), [off, 'u64'], [id, 'u32'], [0, 'u32']]).type;
  assert.equal(t({ x: 0, y: 0, width: 16, height: 16 }, 0), GPU_RESP.ERR_UNSPEC, 'no backing');
  attach(env, 1, [512]); // a quarter of the 1 KiB it needs
  assert.equal(t({ x: 0, y: 0, width: 16, height: 16 }, 0), GPU_RESP.ERR_INVALID_PARAMETER, 'past the backing');
  assert.equal(t({ x: 0, y: 0, width: 16, height: 2 }, 0), GPU_RESP.OK_NODATA, 'what the backing holds');
  assert.equal(t({ x: 10, y: 0, width: 8, height: 1 }, 0), GPU_RESP.ERR_INVALID_PARAMETER, 'x + width past the resource');
  assert.equal(t({ x: 0xffffffff, y: 0, width: 2, height: 1 }, 0), GPU_RESP.ERR_INVALID_PARAMETER, 'wrapping x');
  assert.equal(t({ x: 0, y: 0, width: 1, height: 1 }, 2 ** 52), GPU_RESP.ERR_INVALID_PARAMETER, 'huge offset');
  // scanouts
  const so = (r: GpuRect, scanout: number, id: number) => cmd(env, GPU_CMD.SET_SCANOUT, [...rect(r), [scanout, 'u32'], [id, 'u32']]).type;
  assert.equal(so({ x: 0, y: 0, width: 16, height: 16 }, 1, 1), GPU_RESP.ERR_INVALID_SCANOUT_ID);
  assert.equal(so({ x: 0, y: 0, width: 16, height: 16 }, 0, 42), GPU_RESP.ERR_INVALID_RESOURCE_ID);
  assert.equal(so({ x: 0, y: 0, width: 8, height: 8 }, 0, 1), GPU_RESP.ERR_INVALID_PARAMETER, 'smaller than 16x16');
  assert.equal(so({ x: 4, y: 0, width: 16, height: 16 }, 0, 1), GPU_RESP.ERR_INVALID_PARAMETER, 'past the resource');
  assert.equal(cmd(env, GPU_CMD.RESOURCE_FLUSH, [...rect({ x: 0, y: 0, width: 17, height: 1 }), [1, 'u32'], [0, 'u32']]).type, GPU_RESP.ERR_INVALID_PARAMETER);
  assert.equal(cmd(env, GPU_CMD.RESOURCE_DETACH_BACKING, [[3, 'u32'], [0, 'u32']]).type, GPU_RESP.ERR_UNSPEC, 'nothing to detach');
  // unknown and 3D commands, a command shorter than its body
  assert.equal(cmd(env, 0x0200).type, GPU_RESP.ERR_UNSPEC);
  assert.equal(cmd(env, 0x9999).type, GPU_RESP.ERR_UNSPEC);
  assert.equal(cmd(env, GPU_CMD.RESOURCE_CREATE_2D, [[5, 'u32']]).type, GPU_RESP.ERR_UNSPEC);
  assert.equal(env.gpu.metrics.errors >= 20, true);
  assert.equal(env.gpu.vramUsedBytes, 2 * 16 * 16 * 4, 'only the two good resources');
  // a response buffer too small for even a header: DEVICE_NEEDS_RESET, nothing thrown
  cmd(env, GPU_CMD.GET_DISPLAY_INFO, [], { respBytes: 8 });
  assert.equal(env.reasons.length, 1);
});

test('virtio-gpu: the cursor queue sets and moves a 64x64 cursor, without responses', () => {
  const env = setup();
  assert.equal(create(env, 9, 64, 64, R8G8B8A8), GPU_RESP.OK_NODATA);
  const addrs = attach(env, 9, [64 * 64 * 4]);
  env.mem.slice(addrs[0], 64 * 64 * 4).fill(0x80);
  cmd(env, GPU_CMD.TRANSFER_TO_HOST_2D, [...rect({ x: 0, y: 0, width: 64, height: 64 }), [0, 'u64'], [9, 'u32'], [0, 'u32']]);
  const cursor = (type: number, x: number, y: number, id: number) => {
    const req = env.drv.alloc(56);
    const v = new DataView(new ArrayBuffer(56));
    v.setUint32(0, type, true);
    v.setUint32(28, x, true); v.setUint32(32, y, true);
    v.setUint32(40, id, true); v.setUint32(44, 3, true); v.setUint32(48, 4, true);
    env.mem.slice(req, 56).set(new Uint8Array(v.buffer));
    env.drv.rings[1].add([{ addr: req, len: 56 }]);
    env.drv.kick(1);
    return env.drv.rings[1].takeUsed();
  };
  assert.deepEqual(cursor(GPU_CMD.UPDATE_CURSOR, 100, 50, 9).map((u) => u.len), [0]);
  assert.deepEqual([env.gpu.cursor?.x, env.gpu.cursor?.y, env.gpu.cursor?.hotX, env.gpu.cursor?.hotY], [100, 50, 3, 4]);
  assert.deepEqual([...env.gpu.cursor!.rgba.subarray(0, 4)], [0x80, 0x80, 0x80, 0x80]);
  cursor(GPU_CMD.MOVE_CURSOR, 7, 8, 0);
  assert.deepEqual([env.gpu.cursor?.x, env.gpu.cursor?.y], [7, 8]);
  cursor(GPU_CMD.UPDATE_CURSOR, 0, 0, 0);
  assert.equal(env.gpu.cursor, null, 'resource 0 hides it');
});
