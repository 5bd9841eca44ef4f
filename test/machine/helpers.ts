/** Shared pieces of the board tests. */

/**
 * A minimal RISC-V Linux `Image` (Documentation/arch/riscv/boot-image-header.rst): text
 * offset 2 MiB, `imageSize` bytes when loaded, the "RSC\x05" magic, `fileBytes` long.
 */
export function fakeImage(fileBytes = 8192, imageSize = 1 << 20): Uint8Array {
  const img = new Uint8Array(fileBytes);
  const dv = new DataView(img.buffer);
  dv.setBigUint64(8, 0x200000n, true);
  dv.setBigUint64(16, BigInt(imageSize), true);
  dv.setUint32(56, 0x05435352, true);
  return img;
}
