/**
 * The daemon's side of one VM process's control channel (the contract is
 * src/vmm/control-api.ts), on top of the client in src/vmm/control-client.ts: its
 * errors become HostErrors. Requests have short time limits: a VM process that does not
 * answer is reported, never waited on forever.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { VmProcessStatus } from '../vmm/control-api.js';
import * as control from '../vmm/control-client.js';
import { HostError } from './errors.js';

/** Client of the control socket of the VM process whose folder is `vmDir`. */
export class VmChannel {
  constructor(readonly vmDir: string) {}

  /** Send a request; resolves with the raw response once its head arrives (body not read). */
  open(method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<IncomingMessage> {
    return control.request(this.vmDir, method, path, body, { timeoutMs });
  }

  /** `GET /status`; throws when the process does not answer with 200. */
  status(timeoutMs = 2000): Promise<VmProcessStatus> {
    return control.status(this.vmDir, { timeoutMs });
  }

  /**
   * POST an operation. Throws HostError: `unavailable` when the VM process does not
   * answer; with its message on a non-2xx answer (`invalid_argument` for 400,
   * `not_supported` for 404/501, `conflict` for 409, else `internal`; its own message
   * alone in `details.reason`).
   */
  post(path: string, body?: unknown, timeoutMs = 5000): Promise<unknown> {
    return this.call('POST', path, body ?? {}, timeoutMs);
  }

  /** GET a resource; throws as {@link post}. */
  get(path: string, timeoutMs = 5000): Promise<unknown> {
    return this.call('GET', path, undefined, timeoutMs);
  }

  private async call(method: string, path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    try {
      return await control.call(this.vmDir, method, path, body, { timeoutMs });
    } catch (e) {
      const err = e as control.ControlError;
      if (err.status === undefined) throw new HostError('unavailable', `VM process does not answer ${path}: ${err.message}`);
      const code = err.status === 400 ? 'invalid_argument' : err.status === 404 || err.status === 501 ? 'not_supported' : err.status === 409 ? 'conflict' : 'internal';
      throw new HostError(code, `VM process refused ${path}: ${err.message}`, { reason: err.message });
    }
  }

  /**
   * `GET /console` with `Upgrade: tsvisor-console`. Resolves with the upgraded socket
   * and the bytes that came with the 101 answer, or with the plain response when the
   * VM process did not upgrade.
   */
  upgradeConsole(timeoutMs = 5000): Promise<{ socket: Duplex; head: Buffer } | { response: IncomingMessage }> {
    return control.upgradeConsole(this.vmDir, { timeoutMs });
  }

  /** `GET /vnc` upgrade (control-client.ts upgradeVnc). */
  upgradeVnc(timeoutMs = 5000): Promise<{ socket: Duplex; head: Buffer } | { response: IncomingMessage }> {
    return control.upgradeVnc(this.vmDir, { timeoutMs });
  }
}
