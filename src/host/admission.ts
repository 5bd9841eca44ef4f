/**
 * Admission control: a VM starts only if the memory it was promised can be guaranteed.
 *
 * The host's memory capacity is `os.totalmem()`; the policy allows committing up to
 * `capacity × overcommit` bytes of guest RAM (ratio 1.0 by default: no overcommit).
 * "Allocated" is the sum of the RAM of every VM whose process is alive (starting,
 * running, paused, stopping): that memory is promised whether or not the guest touches it.
 */
import { availableParallelism, totalmem } from 'node:os';
import { HostError } from './errors.js';

/** What the host has. */
export interface HostCapacity {
  /** Host CPU cores (`os.availableParallelism()`). */
  cores: number;
  /** Host RAM in bytes (`os.totalmem()`). */
  memoryBytes: number;
}

/** The host's capacity as Node sees it. */
export function hostCapacity(): HostCapacity {
  return { cores: availableParallelism(), memoryBytes: totalmem() };
}

/** Memory accounting of the host at one moment. Bytes. */
export interface MemoryBudget {
  capacityBytes: number;
  overcommit: number;
  /** floor(capacity × overcommit): the most guest RAM that may be promised. */
  limitBytes: number;
  allocatedBytes: number;
  /** limit − allocated, never negative. */
  freeBytes: number;
}

/** The budget for `capacityBytes` under `overcommit`, with `allocatedBytes` promised already. */
export function memoryBudget(capacityBytes: number, overcommit: number, allocatedBytes: number): MemoryBudget {
  const limitBytes = Math.floor(capacityBytes * overcommit);
  return {
    capacityBytes, overcommit, limitBytes, allocatedBytes,
    freeBytes: Math.max(0, limitBytes - allocatedBytes),
  };
}

/** "1.5 GiB" style, for messages. */
export function humanBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}

/**
 * Admit a VM asking for `requestedBytes`, or throw HostError('insufficient_resources')
 * whose message names the numbers: requested, allocated, and capacity × ratio. `action`
 * names what is refused (default `start NAME`).
 */
export function admitMemory(vmName: string, requestedBytes: number, budget: MemoryBudget, action = `start ${vmName}`): void {
  if (budget.allocatedBytes + requestedBytes <= budget.limitBytes) return;
  const ratio = Number(budget.overcommit.toFixed(4));
  throw new HostError(
    'insufficient_resources',
    `cannot ${action}: not enough memory: requested ${humanBytes(requestedBytes)} (${requestedBytes} bytes), `
      + `allocated ${humanBytes(budget.allocatedBytes)} (${budget.allocatedBytes} bytes), `
      + `limit ${humanBytes(budget.limitBytes)} (${budget.limitBytes} bytes = capacity ${humanBytes(budget.capacityBytes)} × overcommit ${ratio})`,
    {
      requestedBytes, allocatedBytes: budget.allocatedBytes, limitBytes: budget.limitBytes,
      capacityBytes: budget.capacityBytes, overcommit: budget.overcommit,
    },
  );
}
