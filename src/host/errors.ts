/**
 * Errors of the host layer. Each carries a machine-readable `code`; the API layer maps
 * codes to HTTP status codes (see {@link HOST_ERROR_STATUS}), the CLI prints the message.
 */

/** Why an operation was refused. */
export type HostErrorCode =
  | 'invalid_argument'      // bad input (400)
  | 'not_found'             // no such VM (404)
  | 'already_exists'        // duplicate name (409)
  | 'conflict'              // wrong state for the operation, e.g. start of a running VM (409)
  | 'insufficient_resources'// admission control refused (409)
  | 'not_supported'         // the VM process does not offer it (501)
  | 'unavailable'           // the VM process does not answer (503)
  | 'internal';             // anything else (500)

/** HTTP status for each {@link HostErrorCode}. */
export const HOST_ERROR_STATUS: Record<HostErrorCode, number> = {
  invalid_argument: 400,
  not_found: 404,
  already_exists: 409,
  conflict: 409,
  insufficient_resources: 409,
  not_supported: 501,
  unavailable: 503,
  internal: 500,
};

/** An error of the host layer, with a one-line message meant for people. */
export class HostError extends Error {
  readonly code: HostErrorCode;
  /** Optional structured details (e.g. the numbers of an admission refusal). */
  readonly details?: Record<string, unknown>;
  constructor(code: HostErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'HostError';
    this.code = code;
    this.details = details;
  }
}
