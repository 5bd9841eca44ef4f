/**
 * Errors of the guest-image layer.
 *
 * Every failure the user can act on (no apt sources, a failed download, a missing
 * host tool, a package without the expected files) is thrown as an {@link ImageError}
 * whose `message` is one line naming the problem. Callers print `message` alone,
 * without a stack trace.
 */
export class ImageError extends Error {
  override readonly name = 'ImageError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
