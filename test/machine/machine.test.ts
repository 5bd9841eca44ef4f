import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FdtNode, buildFdt, cells64 } from '../../src/machine/fdt.js';
import { parseKernelImage, layoutBoot, BootError } from '../../src/machine/boot.js';
import { handleSbiCall, EID_BASE, EID_TIME, EID_IPI, EID_RFENCE, EID_HSM, EID_SRST, EID_DBCN, SBI_ERR_NOT_SUPPORTED, SBI_ERR_INVALID_PARAM, DBCN_MAX_BYTES, type SbiHart, type SbiPlatform } from '../../src/machine/sbi.js';
import { GuestMemory } from '../../src/devices/guest-memory.js';
import { fakeImage } from './helpers.js';

/** Minimal flattened-device-tree reader, enough to check what buildFdt wrote. */
function readFdt(b: Uint8Array): Map<string, Uint8Array> {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  assert.equal(dv.getUint32(0), 0xd00dfeed);
  assert.equal(dv.getUint32(4), b.length);
  const structOff = dv.getUint32(8), stringsOff = dv.getUint32(12), rsvOff = dv.getUint32(16);
  assert.ok(rsvOff < structOff && structOff < stringsOff, 'blocks in standard order');
  const props = new Map<string, Uint8Array>();
  const path: string[] = [];
  let p = structOff;
  const cstr = (off: number) => { let e = off; while (b[e]) e++; return new TextDecoder().decode(b.subarray(off, e)); };
  for (;;) {
    const tok = dv.getUint32(p); p += 4;
    if (tok === 1) { const name = cstr(p); path.push(name); p += (name.length + 4) & ~3; }
    else if (tok === 2) path.pop();
    else if (tok === 3) {
      const len = dv.getUint32(p), nameOff = dv.getUint32(p + 4); p += 8;
      props.set(path.join('/') + ':' + cstr(stringsOff + nameOff), b.subarray(p, p + len));
      p += (len + 3) & ~3;
    } else if (tok === 9) break;
    else if (tok !== 4) assert.fail(`bad token ${tok}`);
  }
  return props;
}

test('FDT: properties, cells and strings round-trip', () => {
  const root = new FdtNode('');
  root.prop('#address-cells', [2]).prop('compatible', ['a', 'b']).prop('empty', null);
  root.child('memory@80000000').prop('reg', [...cells64(0x8000_0000), ...cells64(0x2000_0000)]);
  const props = readFdt(buildFdt(root));
  assert.deepEqual([...props.get(':#address-cells')!], [0, 0, 0, 2]);
  assert.equal(new TextDecoder().decode(props.get(':compatible')!), 'a\0b\0');
  assert.equal(props.get(':empty')!.length, 0);
  assert.deepEqual([...props.get('/memory@80000000:reg')!], [0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0]);
});


test('kernel Image: header parsed, non-Image and truncated PE rejected', () => {
  assert.deepEqual(parseKernelImage(fakeImage(8192, 1 << 20)), { textOffset: 0x200000, imageSize: 1 << 20 });
  assert.throws(() => parseKernelImage(new Uint8Array(100)), BootError);
  assert.throws(() => parseKernelImage(new Uint8Array(10)), /too small/);
  // a PE header whose section ends past the end of the file
  const img = fakeImage(4096, 1 << 20);
  const dv = new DataView(img.buffer);
  dv.setUint16(0, 0x5a4d, true);
  dv.setUint32(0x3c, 0x40, true);
  dv.setUint32(0x40, 0x4550, true);
  dv.setUint16(0x40 + 6, 1, true);
  dv.setUint16(0x40 + 20, 0, true);
  const sec = 0x40 + 24;
  dv.setUint32(sec + 16, 8192, true); // SizeOfRawData
  dv.setUint32(sec + 20, 4096, true); // PointerToRawData
  assert.throws(() => parseKernelImage(img), /truncated/);
});

test('boot layout: initrd and device tree below the end of RAM, too-small RAM refused', () => {
  const l = layoutBoot(0x8000_0000, 512 << 20, { textOffset: 0x200000, imageSize: 32 << 20 }, 16 << 20);
  assert.equal(l.kernelAddr, 0x8020_0000);
  assert.ok(l.fdtAddr + 64 * 1024 <= 0x8000_0000 + (512 << 20));
  assert.equal(l.fdtAddr % 0x200000, 0);
  assert.ok(l.initrdEnd <= l.fdtAddr && l.initrdAddr % 4096 === 0);
  assert.throws(() => layoutBoot(0x8000_0000, 64 << 20, { textOffset: 0x200000, imageSize: 32 << 20 }, 16 << 20), /memory too small/);
});

class FakeHart implements SbiHart {
  regs = new Array<bigint>(32).fill(0n);
  cmp = -1n;
  skipped = 0;
  constructor(readonly id: number) {}
  getX(i: number) { return this.regs[i]; }
  setX(i: number, v: bigint) { this.regs[i] = BigInt.asUintN(64, v); }
  set timecmp(v: bigint) { this.cmp = v; }
  skipEcall() { this.skipped++; }
  call(eid: number, fid: number, ...args: bigint[]) {
    this.regs[17] = BigInt(eid); this.regs[16] = BigInt(fid);
    args.forEach((a, i) => { this.regs[10 + i] = BigInt.asUintN(64, a); });
    return this;
  }
  get err() { return BigInt.asIntN(64, this.regs[10]); }
  get value() { return this.regs[11]; }
}

function platform() {
  const log: string[] = [];
  const out: number[] = [];
  const mem = new GuestMemory(new Uint8Array(4096), 0x8000_0000);
  const p: SbiPlatform = {
    memory: mem, hartCount: 2,
    setSoftwareInterrupt: (id, l) => log.push(`ssip ${id} ${l}`),
    consoleWrite: (b) => { out.push(...b); return true; },
    consoleRead: () => -1,
    systemReset: (k) => log.push(`reset ${k}`),
    hartStart: (id, s, o) => { log.push(`start ${id} ${s.toString(16)} ${o}`); return 0; },
    hartStop: (id) => { log.push(`stop ${id}`); return 0; },
    hartStatus: (id) => (id < 2 ? 1 : -1),
    remoteFence: (ids, tlb) => log.push(`fence ${ids.join(',')}${tlb ? ' tlb' : ''}`),
  };
  return { p, log, out, mem };
}

test('SBI: base, time, IPI masks, HSM, SRST, DBCN and unknown extensions', () => {
  const { p, log, out, mem } = platform();
  const h = new FakeHart(0);
  handleSbiCall(h.call(EID_BASE, 0), p);
  assert.equal(h.err, 0n); assert.equal(h.value, 2n << 24n);
  handleSbiCall(h.call(EID_BASE, 3, BigInt(EID_HSM)), p);
  assert.equal(h.value, 1n);
  handleSbiCall(h.call(EID_BASE, 3, 0x12345n), p);
  assert.equal(h.value, 0n);
  handleSbiCall(h.call(EID_TIME, 0, 12345n), p);
  assert.equal(h.cmp, 12345n);
  handleSbiCall(h.call(EID_IPI, 0, 0b10n, 0n), p);
  assert.deepEqual(log.splice(0), ['ssip 1 true']);
  handleSbiCall(h.call(EID_IPI, 0, 0n, -1n), p); // hart_mask_base = -1: all harts
  assert.deepEqual(log.splice(0), ['ssip 0 true', 'ssip 1 true']);
  handleSbiCall(h.call(EID_IPI, 0, 0b100n, 0n), p); // hart 2 does not exist
  assert.equal(h.err, BigInt(SBI_ERR_INVALID_PARAM));
  // RFENCE: REMOTE_FENCE_I leaves the TLBs alone, REMOTE_SFENCE_VMA[_ASID] flush them; hypervisor fences are not supported
  handleSbiCall(h.call(EID_RFENCE, 0, 0n, -1n), p);
  handleSbiCall(h.call(EID_RFENCE, 1, 0b10n, 0n, 0n, 4096n), p);
  handleSbiCall(h.call(EID_RFENCE, 2, 0b1n, 0n, 0n, 4096n, 1n), p);
  assert.deepEqual(log.splice(0), ['fence 0,1', 'fence 1 tlb', 'fence 0 tlb']);
  handleSbiCall(h.call(EID_RFENCE, 3, 0b1n, 0n), p);
  assert.equal(h.err, BigInt(SBI_ERR_NOT_SUPPORTED));
  handleSbiCall(h.call(EID_HSM, 0, 1n, 0x80200000n, 7n), p);
  assert.deepEqual(log.splice(0), ['start 1 80200000 7']);
  handleSbiCall(h.call(EID_HSM, 2, 5n), p);
  assert.equal(h.err, BigInt(SBI_ERR_INVALID_PARAM));
  mem.bytes.set(new TextEncoder().encode('hello'), 16);
  handleSbiCall(h.call(EID_DBCN, 0, 5n, 0x8000_0010n, 0n), p);
  assert.equal(h.value, 5n); assert.equal(new TextDecoder().decode(Uint8Array.from(out)), 'hello');
  handleSbiCall(h.call(EID_DBCN, 0, 100n, 0x8000_0ff0n, 0n), p); // runs past the end of RAM
  assert.equal(h.err, BigInt(SBI_ERR_INVALID_PARAM));
  handleSbiCall(h.call(EID_DBCN, 0, 5n, 0x8000_0010n, 1n), p); // base_addr_hi: bits 64 and up
  assert.equal(h.err, BigInt(SBI_ERR_INVALID_PARAM), 'an address above 2^64 is refused');
  out.length = 0;
  handleSbiCall(h.call(EID_DBCN, 0, -1n, 0x8000_0000n, 0n), p); // num_bytes 2^64-1
  assert.equal(h.err, 0n);
  assert.equal(h.value, BigInt(DBCN_MAX_BYTES), 'a short write: at most DBCN_MAX_BYTES per call');
  assert.equal(out.length, DBCN_MAX_BYTES);
  handleSbiCall(h.call(0x0a000000, 0), p);
  assert.equal(h.err, BigInt(SBI_ERR_NOT_SUPPORTED));
  handleSbiCall(h.call(EID_SRST, 0, 0n, 0n), p);
  assert.deepEqual(log.splice(0), ['reset shutdown']);
  assert.equal(h.skipped, 19);
});
