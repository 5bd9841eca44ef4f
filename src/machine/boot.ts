/**
 * Loading what the boot hart starts in S-mode: a Linux RISC-V kernel `Image`
 * (Documentation/arch/riscv/boot-image-header.rst) or an ELF64 RISC-V executable such as
 * Debian's S-mode U-Boot (`u-boot-qemu`: qemu-riscv64_smode/uboot.elf), plus an
 * initramfs, and where the device tree goes.
 */

/** A problem with the kernel, initrd or memory size that the user must fix. */
export class BootError extends Error {
  constructor(message: string) { super(message); this.name = 'BootError'; }
}

/** Fields of the RISC-V Image header. Sizes in bytes. */
export interface KernelImageInfo {
  /** Offset from the start of RAM where the image must be loaded (text_offset). */
  textOffset: number;
  /** Memory the image occupies once loaded, including .bss (image_size). */
  imageSize: number;
}

const RISCV_MAGIC2 = 0x05435352; // "RSC\x05" (little-endian)

/**
 * Bytes the board places in guest RAM (a kernel, an initrd): held in memory
 * (memoryBlob), or a file's, read straight into guest RAM when the board loads them
 * (src/vmm/boot-files.ts), with no copy on the heap.
 */
export interface BootBlob {
  /** Size in bytes. */
  readonly length: number;
  /** A copy of the bytes [offset, offset + n), cut at the end. */
  read(offset: number, n: number): Uint8Array;
  /** Write all `length` bytes to the start of `dst` (a view of guest RAM at least that long). */
  copyTo(dst: Uint8Array): void;
}

/** `bytes` as a BootBlob (no copy). */
export function memoryBlob(bytes: Uint8Array): BootBlob {
  return {
    length: bytes.length,
    read: (offset, n) => bytes.slice(offset, offset + Math.max(0, n)),
    copyTo: (dst) => dst.set(bytes),
  };
}

/** `x` as a BootBlob: itself, or bytes in memory wrapped by memoryBlob. */
export function toBootBlob(x: Uint8Array | BootBlob): BootBlob {
  return x instanceof Uint8Array ? memoryBlob(x) : x;
}

/**
 * Parse and validate a RISC-V Linux `Image` (with or without an EFI/PE header), reading
 * only its headers. Throws BootError when it is not an Image or when it is truncated (the
 * PE section table names bytes beyond the end of the file).
 */
export function parseKernelImage(file: Uint8Array | BootBlob, name = 'kernel'): KernelImageInfo {
  const image = toBootBlob(file);
  const length = image.length;
  if (length < 64) throw new BootError(`${name}: file too small to be a RISC-V Linux Image (${length} bytes)`);
  const at = (offset: number, n: number) => {
    const b = image.read(offset, n);
    return new DataView(b.buffer, b.byteOffset, b.byteLength);
  };
  const dv = at(0, 64);
  if (dv.getUint32(56, true) !== RISCV_MAGIC2) {
    throw new BootError(`${name}: not a RISC-V Linux Image (no "RSC\\x05" magic at offset 0x38)`);
  }
  const textOffset = Number(dv.getBigUint64(8, true));
  const imageSize = Number(dv.getBigUint64(16, true));
  if (imageSize === 0 || imageSize > 1 << 30 || imageSize < length - 4096) {
    throw new BootError(`${name}: implausible image_size ${imageSize} in the Image header`);
  }
  // an EFI stub kernel carries a PE header: its sections tell how long the file must be
  if (dv.getUint16(0, true) === 0x5a4d) {
    const peOff = dv.getUint32(0x3c, true);
    if (peOff + 24 > length) throw new BootError(`${name}: truncated or corrupt (bad PE header)`);
    const pe = at(peOff, 24);
    if (pe.getUint32(0, true) !== 0x00004550) throw new BootError(`${name}: truncated or corrupt (bad PE header)`);
    const nSections = pe.getUint16(6, true);
    const optSize = pe.getUint16(20, true);
    const secTable = peOff + 24 + optSize;
    if (secTable + nSections * 40 > length) throw new BootError(`${name}: truncated (section table cut off)`);
    const sections = at(secTable, nSections * 40);
    let end = 0;
    for (let i = 0; i < nSections; i++) {
      end = Math.max(end, sections.getUint32(i * 40 + 20, true) + sections.getUint32(i * 40 + 16, true));
    }
    if (end > length) {
      throw new BootError(`${name}: truncated: ${length} bytes, its header says at least ${end}`);
    }
  }
  return { textOffset: textOffset || 0x200000, imageSize };
}

/** Where each boot blob lives in guest physical memory (bytes). */
export interface BootLayout {
  kernelAddr: number;
  initrdAddr: number;
  initrdEnd: number;
  fdtAddr: number;
}

/** Maximum size we reserve for the device tree blob. */
export const FDT_MAX_BYTES = 64 * 1024;

/**
 * Place kernel, initrd and device tree in RAM [ramBase, ramBase + ramBytes):
 * the kernel at ramBase + text_offset, the device tree at the last 2 MiB
 * aligned address that fits it, the initrd just below it (page aligned).
 * Throws BootError when they do not fit.
 */
export function layoutBoot(ramBase: number, ramBytes: number, kernel: KernelImageInfo, initrdBytes: number): BootLayout {
  const kernelAddr = ramBase + kernel.textOffset;
  const kernelEnd = kernelAddr + kernel.imageSize;
  const ramEnd = ramBase + ramBytes;
  const fdtAddr = Math.floor((ramEnd - FDT_MAX_BYTES) / 0x200000) * 0x200000; // as QEMU virt: 2 MiB aligned
  const initrdAddr = Math.floor((fdtAddr - initrdBytes) / 4096) * 4096;
  // leave the kernel room to unpack and run: at least 64 MiB above its end
  const needed = kernelEnd + 64 * 1024 * 1024;
  if (initrdAddr < needed) {
    const needMiB = Math.ceil((needed - initrdAddr + ramBytes) / (1024 * 1024));
    throw new BootError(`memory too small: kernel and initrd need about ${needMiB} MiB of RAM`);
  }
  return { kernelAddr, initrdAddr, initrdEnd: initrdAddr + initrdBytes, fdtAddr };
}

// ------------------------------------------------------------------ ELF executables

/** One PT_LOAD segment of an ELF executable. Addresses are guest physical, sizes in bytes. */
export interface ElfSegment {
  /** Where the segment goes (p_paddr). */
  paddr: number;
  /** Where its bytes start in the file (p_offset). */
  offset: number;
  /** Bytes copied from the file (p_filesz); the rest up to memSize is zeroed (.bss). */
  fileSize: number;
  /** Bytes the segment occupies in memory (p_memsz), >= fileSize. */
  memSize: number;
}

/** A validated ELF64 RISC-V executable: where to start and what to load. */
export interface ElfExecutable {
  /** Entry point (e_entry), a guest physical address inside an executable segment. */
  entry: number;
  /** PT_LOAD segments with a non-zero p_memsz, sorted by paddr, not overlapping. */
  segments: ElfSegment[];
}

const ELF_HEADER_BYTES = 64;
const ELF_PHDR_BYTES = 56;
const ELF_MAX_PHDRS = 64;
const EM_RISCV = 243;
const ET_EXEC = 2;
const PT_LOAD = 1;
const PF_X = 1;

/** True when `file` starts with the ELF magic (0x7f 'E' 'L' 'F'). */
export function isElf(file: Uint8Array): boolean {
  return file.length >= 4 && file[0] === 0x7f && file[1] === 0x45 && file[2] === 0x4c && file[3] === 0x46;
}

/**
 * Parse and validate an ELF64 little-endian RISC-V executable (System V gABI, "ELF
 * Header" and "Program Header"; RISC-V ELF psABI for e_machine 243). Only PT_LOAD
 * segments are used, loaded at their physical addresses (p_paddr), as QEMU's `-kernel`
 * does; the hart starts at e_entry with the MMU off, so e_entry must lie inside an
 * executable (PF_X) segment's physical range. The file is untrusted: every offset and
 * size is checked against the file and against 2^53, segments must not overlap.
 * Whether the segments fit in guest RAM is checked by {@link layoutElfBoot}.
 * @throws BootError naming the first problem found.
 */
export function parseElfExecutable(file: Uint8Array, name = 'kernel'): ElfExecutable {
  if (!isElf(file)) throw new BootError(`${name}: not an ELF file`);
  if (file.length < ELF_HEADER_BYTES) throw new BootError(`${name}: truncated ELF header (${file.length} bytes)`);
  if (file[4] !== 2) throw new BootError(`${name}: not a 64-bit ELF file (EI_CLASS ${file[4]})`);
  if (file[5] !== 1) throw new BootError(`${name}: not a little-endian ELF file (EI_DATA ${file[5]})`);
  if (file[6] !== 1) throw new BootError(`${name}: unknown ELF version ${file[6]}`);
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const u64 = (off: number, what: string): number => {
    const v = dv.getBigUint64(off, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BootError(`${name}: ELF ${what} 0x${v.toString(16)} out of range`);
    return Number(v);
  };
  const type = dv.getUint16(16, true);
  if (type !== ET_EXEC) throw new BootError(`${name}: ELF type ${type} is not an executable (ET_EXEC)`);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_RISCV) throw new BootError(`${name}: ELF machine ${machine} is not RISC-V (243)`);
  if (dv.getUint32(20, true) !== 1) throw new BootError(`${name}: unknown ELF e_version ${dv.getUint32(20, true)}`);
  const entry = u64(24, 'e_entry');
  const phoff = u64(32, 'e_phoff');
  const ehsize = dv.getUint16(52, true);
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  if (ehsize < ELF_HEADER_BYTES) throw new BootError(`${name}: ELF e_ehsize ${ehsize} too small`);
  if (phentsize !== ELF_PHDR_BYTES) throw new BootError(`${name}: ELF e_phentsize ${phentsize}, expected ${ELF_PHDR_BYTES}`);
  if (phnum === 0 || phnum > ELF_MAX_PHDRS) throw new BootError(`${name}: ELF has ${phnum} program headers (1..${ELF_MAX_PHDRS} supported)`);
  if (phoff < ELF_HEADER_BYTES || phoff + phnum * ELF_PHDR_BYTES > file.length) {
    throw new BootError(`${name}: truncated (program headers at ${phoff} beyond the end of the file)`);
  }
  const segments: ElfSegment[] = [];
  let entryOk = false;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * ELF_PHDR_BYTES;
    if (dv.getUint32(ph, true) !== PT_LOAD) continue;
    const flags = dv.getUint32(ph + 4, true);
    const offset = u64(ph + 8, 'p_offset');
    const paddr = u64(ph + 24, 'p_paddr');
    const fileSize = u64(ph + 32, 'p_filesz');
    const memSize = u64(ph + 40, 'p_memsz');
    if (fileSize > memSize) throw new BootError(`${name}: ELF segment ${i} has p_filesz ${fileSize} > p_memsz ${memSize}`);
    if (offset + fileSize > file.length) throw new BootError(`${name}: truncated: ELF segment ${i} ends at ${offset + fileSize}, the file has ${file.length} bytes`);
    if (paddr + memSize > Number.MAX_SAFE_INTEGER) throw new BootError(`${name}: ELF segment ${i} address out of range`);
    if (memSize === 0) continue;
    segments.push({ paddr, offset, fileSize, memSize });
    if ((flags & PF_X) && entry >= paddr && entry < paddr + memSize) entryOk = true;
  }
  if (segments.length === 0) throw new BootError(`${name}: ELF has no loadable segment`);
  segments.sort((a, b) => a.paddr - b.paddr);
  for (let i = 1; i < segments.length; i++) {
    const prev = segments[i - 1];
    if (prev.paddr + prev.memSize > segments[i].paddr) throw new BootError(`${name}: ELF segments overlap at 0x${segments[i].paddr.toString(16)}`);
  }
  if (!entryOk) throw new BootError(`${name}: ELF entry point 0x${entry.toString(16)} is not inside an executable segment`);
  return { entry, segments };
}

/**
 * Place an ELF executable's segments (at their own addresses), the device tree and an
 * optional initrd in RAM [ramBase, ramBase + ramBytes): the device tree as for a Linux
 * Image (last 2 MiB aligned address that fits it), the initrd just below it. `kernelAddr`
 * of the result is the entry point. Sizes in bytes.
 * @throws BootError when a segment lies outside RAM or overlaps the device tree or initrd.
 */
export function layoutElfBoot(ramBase: number, ramBytes: number, elf: ElfExecutable, initrdBytes: number): BootLayout {
  const ramEnd = ramBase + ramBytes;
  const fdtAddr = Math.floor((ramEnd - FDT_MAX_BYTES) / 0x200000) * 0x200000;
  const initrdAddr = Math.floor((fdtAddr - initrdBytes) / 4096) * 4096;
  const reservedFrom = initrdBytes > 0 ? initrdAddr : fdtAddr;
  if (initrdAddr < ramBase) throw new BootError(`memory too small for an initrd of ${initrdBytes} bytes`);
  for (const s of elf.segments) {
    const end = s.paddr + s.memSize;
    if (s.paddr < ramBase || end > ramEnd) {
      throw new BootError(`kernel: ELF segment 0x${s.paddr.toString(16)}..0x${end.toString(16)} is outside guest RAM 0x${ramBase.toString(16)}..0x${ramEnd.toString(16)}`);
    }
    if (end > reservedFrom && s.paddr < fdtAddr + FDT_MAX_BYTES) {
      throw new BootError(`memory too small: the ELF segment at 0x${s.paddr.toString(16)} overlaps the ${initrdBytes > 0 ? 'initrd or ' : ''}device tree at the end of RAM`);
    }
  }
  return { kernelAddr: elf.entry, initrdAddr, initrdEnd: initrdAddr + initrdBytes, fdtAddr };
}
