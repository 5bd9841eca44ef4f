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
