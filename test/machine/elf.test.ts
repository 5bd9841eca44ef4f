import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isElf, parseElfExecutable, layoutElfBoot, BootError, FDT_MAX_BYTES, type ElfExecutable } from '../../src/machine/boot.js';
import { Board } from '../../src/machine/board.js';
import { MemChar } from '../devices/helpers.js';

interface Phdr { type?: number; flags?: number; offset: number; paddr: number; filesz: number; memsz: number }

/** An ELF64 little-endian RISC-V executable with the given program headers (after the 64-byte header). */
function fakeElf(phdrs: Phdr[], opts: { entry?: number; size?: number } = {}): Uint8Array {
  const file = new Uint8Array(opts.size ?? 0x2000);
  const dv = new DataView(file.buffer);
  file.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 243, true); // EM_RISCV
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, BigInt(opts.entry ?? 0x8020_0000), true);
  dv.setBigUint64(32, 64n, true); // e_phoff
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, phdrs.length, true);
  phdrs.forEach((p, i) => {
    const o = 64 + i * 56;
    dv.setUint32(o, p.type ?? 1, true);
    dv.setUint32(o + 4, p.flags ?? 7, true);
    dv.setBigUint64(o + 8, BigInt(p.offset), true);
    dv.setBigUint64(o + 16, BigInt(p.paddr), true); // p_vaddr
    dv.setBigUint64(o + 24, BigInt(p.paddr), true);
    dv.setBigUint64(o + 32, BigInt(p.filesz), true);
    dv.setBigUint64(o + 40, BigInt(p.memsz), true);
  });
  return file;
}

/** The shape of Debian's qemu-riscv64_smode/uboot.elf: a RISCV_ATTRIBUTES header, then one RWX PT_LOAD. */
const uboot = () => fakeElf([
  { type: 0x70000003, flags: 4, offset: 0x1f00, paddr: 0, filesz: 0x6a, memsz: 0 },
  { offset: 0x1000, paddr: 0x8020_0000, filesz: 0x800, memsz: 0x4000 },
]);

test('ELF: a U-Boot-shaped executable parses to its PT_LOAD segment and entry', () => {
  assert.ok(isElf(uboot()));
  assert.ok(!isElf(new Uint8Array(64)));
  assert.deepEqual(parseElfExecutable(uboot()), {
    entry: 0x8020_0000,
    segments: [{ paddr: 0x8020_0000, offset: 0x1000, fileSize: 0x800, memSize: 0x4000 }],
  });
});

test('ELF: every hostile header field is refused with a BootError', () => {
  const seg = { offset: 0x1000, paddr: 0x8020_0000, filesz: 0x800, memsz: 0x4000 };
  const patched = (f: (dv: DataView, b: Uint8Array) => void) => {
    const b = fakeElf([seg]);
    f(new DataView(b.buffer), b);
    return b;
  };
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['no magic', new Uint8Array(64), /not an ELF/],
    ['header cut off', fakeElf([seg]).subarray(0, 40), /truncated ELF header/],
    ['32-bit', patched((_, b) => { b[4] = 1; }), /not a 64-bit/],
    ['big-endian', patched((_, b) => { b[5] = 2; }), /little-endian/],
    ['EI_VERSION', patched((_, b) => { b[6] = 0; }), /ELF version/],
    ['shared object', patched((dv) => dv.setUint16(16, 3, true)), /not an executable/],
    ['x86-64', patched((dv) => dv.setUint16(18, 62, true)), /not RISC-V/],
    ['e_version', patched((dv) => dv.setUint32(20, 0, true)), /e_version/],
    ['e_ehsize', patched((dv) => dv.setUint16(52, 52, true)), /e_ehsize/],
    ['e_phentsize', patched((dv) => dv.setUint16(54, 32, true)), /e_phentsize/],
    ['no program headers', patched((dv) => dv.setUint16(56, 0, true)), /program headers/],
    ['too many program headers', patched((dv) => dv.setUint16(56, 0xffff, true)), /program headers/],
    ['phoff past the end', patched((dv) => dv.setBigUint64(32, 0x1ff0n, true)), /program headers at/],
    ['phoff inside the header', patched((dv) => dv.setBigUint64(32, 8n, true)), /program headers at/],
    ['phoff above 2^53', patched((dv) => dv.setBigUint64(32, 1n << 60n, true)), /e_phoff .* out of range/],
    ['entry above 2^53', patched((dv) => dv.setBigUint64(24, 1n << 63n, true)), /e_entry .* out of range/],
    ['p_offset above 2^53', patched((dv) => dv.setBigUint64(64 + 8, 1n << 62n, true)), /p_offset .* out of range/],
    ['segment beyond the file', patched((dv) => dv.setBigUint64(64 + 32, 0x1001n, true)), /truncated: ELF segment 0/],
    ['filesz > memsz', patched((dv) => dv.setBigUint64(64 + 40, 0x400n, true)), /p_filesz 2048 > p_memsz 1024/],
    ['address wraps past 2^53', patched((dv) => { dv.setBigUint64(64 + 24, 2n ** 53n - 2n, true); }), /address out of range/],
    ['entry outside every segment', patched((dv) => dv.setBigUint64(24, 0x8000_0000n, true)), /entry point 0x80000000/],
    ['entry in a non-executable segment', patched((dv) => dv.setUint32(64 + 4, 6, true)), /entry point/],
  ];
  for (const [what, file, msg] of cases) {
    assert.throws(() => parseElfExecutable(file), (e: unknown) => e instanceof BootError && msg.test(e.message), what);
  }
  assert.throws(() => parseElfExecutable(fakeElf([{ type: 4, offset: 0, paddr: 0, filesz: 0, memsz: 0 }])), /no loadable segment/);
  assert.throws(() => parseElfExecutable(fakeElf([
    { offset: 0x1000, paddr: 0x8020_0000, filesz: 0x800, memsz: 0x2000 },
    { offset: 0x1800, paddr: 0x8020_1000, filesz: 0x100, memsz: 0x100 },
  ])), /segments overlap at 0x80201000/);
});

test('ELF layout: segments must lie in RAM, below the device tree and initrd', () => {
  const ram = 0x8000_0000, size = 64 << 20;
  const elf = (paddr: number, memSize: number): ElfExecutable => ({ entry: paddr, segments: [{ paddr, offset: 0, fileSize: 0, memSize }] });
  const l = layoutElfBoot(ram, size, elf(0x8020_0000, 0x10_0000), 1 << 20);
  assert.equal(l.kernelAddr, 0x8020_0000);
  assert.equal(l.fdtAddr % 0x20_0000, 0);
  assert.ok(l.fdtAddr + FDT_MAX_BYTES <= ram + size);
  assert.ok(l.initrdEnd <= l.fdtAddr && l.initrdAddr % 4096 === 0);
  assert.throws(() => layoutElfBoot(ram, size, elf(0x7000_0000, 0x1000), 0), /outside guest RAM/);
  assert.throws(() => layoutElfBoot(ram, size, elf(ram + size - 0x1000, 0x2000), 0), /outside guest RAM/);
  assert.throws(() => layoutElfBoot(ram, size, elf(l.fdtAddr, 0x1000), 0), /overlaps the device tree/);
  assert.throws(() => layoutElfBoot(ram, size, elf(l.fdtAddr - 0x10_0000, 0x1000), 2 << 20), /overlaps the initrd or device tree/);
  assert.throws(() => layoutElfBoot(ram, size, elf(0x8020_0000, 0x1000), size), /too small for an initrd/);
});

test('board: no /config node for a Linux Image; a bad bootDelay is refused', () => {
  const img = new Uint8Array(8192);
  const dv = new DataView(img.buffer);
  dv.setBigUint64(16, BigInt(1 << 20), true);
  dv.setUint32(56, 0x05435352, true);
  const cfg = {
    ramBytes: 128 << 20, harts: 1, kernel: img, bootargs: '', disks: [],
    console: new MemChar(), clock: { nowNs: () => 0n }, monotonicNs: () => 0, onPower() {},
  };
  const board = Board.create(cfg);
  assert.ok(!Buffer.from(board.deviceTree(null)).includes(Buffer.from('bootdelay')));
  assert.throws(() => Board.create({ ...cfg, bootDelay: -2 }), /bootDelay -2/);
  assert.throws(() => Board.create({ ...cfg, bootDelay: 0.5 }), /bootDelay 0.5/);
});

test('board: an ELF is loaded at its physical address with .bss zeroed; /config/bootdelay 0 and free space in the DTB', () => {
  const file = uboot();
  file.fill(0xab, 0x1000, 0x1800);
  const board = Board.create({
    ramBytes: 64 << 20, harts: 1, kernel: file, bootargs: '', disks: [],
    console: new MemChar(),
    clock: { nowNs: () => 0n }, monotonicNs: () => 0, onPower() {},
  });
  assert.deepEqual(board.boot, { entry: 0x8020_0000, fdt: board.boot.fdt });
  const seg = board.memory.slice(0x8020_0000, 0x4000);
  assert.ok(seg.subarray(0, 0x800).every((b) => b === 0xab));
  assert.ok(seg.subarray(0x800).every((b) => b === 0));
  const dtb = board.memory.slice(board.boot.fdt, 64);
  const dv = new DataView(dtb.buffer, dtb.byteOffset);
  const total = dv.getUint32(4), stringsEnd = dv.getUint32(12) + dv.getUint32(32);
  assert.ok(total - stringsEnd >= 8192, 'room for a boot loader to edit the blob in place');
  const text = new TextDecoder('latin1').decode(board.memory.slice(board.boot.fdt, total));
  assert.match(text, /config\0/);
  assert.match(text, /bootdelay\0/);
});
