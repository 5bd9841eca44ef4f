/** An error caused by the user's input: printed as one line, exit status 2 (usage) or 1. */
export class UsageError extends Error {
  constructor(message: string) { super(message); this.name = 'UsageError'; }
}

/** Error types whose message is meant for the user as is (no stack trace). */
const USER_ERRORS = new Set(['UsageError', 'BootError', 'ImageError', 'BlockError', 'CommanderError']);

/** Format any thrown value as a one-line message for the terminal. */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    if (USER_ERRORS.has(e.name) || (e as NodeJS.ErrnoException).code) return e.message.split('\n')[0];
    return e.message.split('\n')[0] || e.name;
  }
  return String(e);
}
