/**
 * Errors of the disk-format layer (`devices/block/`, `devices/node/` disks).
 *
 * Every problem a user can act on (a missing file, a bad or hostile image header, an
 * unsupported qcow2 feature, a backing-file loop, a refused write) is thrown as a
 * {@link BlockError} whose `message` is one line naming the image and the problem, e.g.
 * `qcow2 image vm.qcow2: L1 table past the end of the file`. The CLI prints the message
 * alone, without a stack trace (src/cli/errors.ts lists the name `BlockError`).
 */
export class BlockError extends Error {
  override readonly name = 'BlockError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Check a disk's new size for {@link DiskImage.resize}: a whole number of 512-byte
 * sectors, not below `current`, at most `max` bytes.
 * @throws BlockError naming the image and both sizes.
 */
export function checkNewSize(name: string, current: number, bytes: number, max: number): void {
  if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % 512 !== 0) throw new BlockError(`disk image ${name}: new size ${bytes} is not a whole number of 512-byte sectors`);
  if (bytes < current) throw new BlockError(`disk image ${name}: new size ${bytes} bytes is smaller than its ${current} bytes (shrinking would lose data; only growing is supported)`);
  if (bytes > max) throw new BlockError(`disk image ${name}: new size ${bytes} bytes is too large (at most ${max} bytes)`);
}
