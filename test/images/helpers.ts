/** Shared helpers of the images tests. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** True when `cmd` can be run on this host. */
export function hasCommand(cmd: string, args: string[] = ['--version']): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined;
}

/** A fresh temporary directory, removed by the returned cleanup function. */
export function tempDir(prefix = 'tsvisor-images-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A minimal ELF64 little-endian relocatable file whose only real section is
 * `.modinfo` holding `modinfo` (NUL-separated key=value strings).
 */
export function syntheticModule(modinfo: string[]): Uint8Array {
  const enc = new TextEncoder();
  const info = enc.encode(modinfo.map((s) => `${s}\0`).join(''));
  const shstr = enc.encode('\0.modinfo\0.shstrtab\0');
  const infoOff = 64;
  const shstrOff = infoOff + info.length;
  const shoff = (shstrOff + shstr.length + 7) & ~7;
  const shnum = 3;
  const buf = new Uint8Array(shoff + shnum * 64);
  const dv = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0); // ELF, 64-bit, little-endian, version 1
  dv.setUint16(0x10, 1, true); // ET_REL
  dv.setUint16(0x12, 243, true); // EM_RISCV
  dv.setUint32(0x14, 1, true);
  dv.setBigUint64(0x28, BigInt(shoff), true);
  dv.setUint16(0x34, 64, true); // e_ehsize
  dv.setUint16(0x3a, 64, true); // e_shentsize
  dv.setUint16(0x3c, shnum, true);
  dv.setUint16(0x3e, 2, true); // e_shstrndx
  buf.set(info, infoOff);
  buf.set(shstr, shstrOff);
  const sh = (i: number, name: number, type: number, off: number, size: number): void => {
    const b = shoff + i * 64;
    dv.setUint32(b, name, true);
    dv.setUint32(b + 4, type, true);
    dv.setBigUint64(b + 0x18, BigInt(off), true);
    dv.setBigUint64(b + 0x20, BigInt(size), true);
  };
  sh(1, 1, 1 /* PROGBITS */, infoOff, info.length);
  sh(2, 10, 3 /* STRTAB */, shstrOff, shstr.length);
  return buf;
}
