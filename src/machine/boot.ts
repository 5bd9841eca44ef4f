/**
 * Loading a Linux RISC-V kernel `Image` (Documentation/arch/riscv/boot-image-header.rst)
 * and an initramfs into guest RAM, and where the device tree goes.
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
 * Parse and validate a RISC-V Linux `Image` (with or without an EFI/PE header).
 * Throws BootError when it is not an Image or when it is truncated (the PE
 * section table names bytes beyond the end of the file).
 */
export function parseKernelImage(image: Uint8Array, name = 'kernel'): KernelImageInfo {
  if (image.length < 64) throw new BootError(`${name}: file too small to be a RISC-V Linux Image (${image.length} bytes)`);
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (dv.getUint32(56, true) !== RISCV_MAGIC2) {
    throw new BootError(`${name}: not a RISC-V Linux Image (no "RSC\\x05" magic at offset 0x38)`);
  }
  const textOffset = Number(dv.getBigUint64(8, true));
  const imageSize = Number(dv.getBigUint64(16, true));
  if (imageSize === 0 || imageSize > 1 << 30 || imageSize < image.length - 4096) {
    throw new BootError(`${name}: implausible image_size ${imageSize} in the Image header`);
  }
  // an EFI stub kernel carries a PE header: its sections tell how long the file must be
  if (dv.getUint16(0, true) === 0x5a4d) {
    const peOff = dv.getUint32(0x3c, true);
    if (peOff + 24 > image.length || dv.getUint32(peOff, true) !== 0x00004550) {
      throw new BootError(`${name}: truncated or corrupt (bad PE header)`);
    }
    const nSections = dv.getUint16(peOff + 6, true);
    const optSize = dv.getUint16(peOff + 20, true);
    const secTable = peOff + 24 + optSize;
    if (secTable + nSections * 40 > image.length) throw new BootError(`${name}: truncated (section table cut off)`);
    let end = 0;
    for (let i = 0; i < nSections; i++) {
      const s = secTable + i * 40;
      end = Math.max(end, dv.getUint32(s + 20, true) + dv.getUint32(s + 16, true));
    }
    if (end > image.length) {
      throw new BootError(`${name}: truncated: ${image.length} bytes, its header says at least ${end}`);
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
