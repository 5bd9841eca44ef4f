/**
 * The daemon's record of one VM (src/host/host.ts keeps one per defined VM): its
 * definition, its runtime record, and what the daemon knows of its VM process.
 */
import type { ChildProcess } from 'node:child_process';
import type { VmProcessStatus } from '../vmm/control-api.js';
import type { VmRuntime } from './store.js';
import type { VmDefinition, VmState } from './types.js';
import type { VmInfo } from './api-types.js';
import type { DiskMeter } from './disk-arbiter.js';

/** States in which a VM's process is alive (and holds its memory reservation). */
export const ALIVE: readonly VmState[] = ['starting', 'running', 'paused', 'stopping'];

/** One VM as the daemon tracks it. */
export interface Entry {
  def: VmDefinition;
  rt: VmRuntime;
  child?: ChildProcess;
  /** What the user asked of the current process. */
  intent?: 'stop' | 'kill';
  lock: Promise<unknown>;
  /** What its VM process last answered, and when (ms since the epoch); `disk` is its disk meter (disk-arbiter.ts). */
  guest?: { state: string; agent: boolean; at: number; ssh: VmProcessStatus['ssh']; memory: VmInfo['memory']; disk?: DiskMeter; cdrom?: { path: string | null; locked: boolean }; display?: VmProcessStatus['display'] };
  statusBusy: boolean;
  restartTimer?: NodeJS.Timeout;
  waiters: Array<() => void>;
  /** Poll ticks the pid of an own child has looked dead (the exit event normally comes first). */
  deadTicks: number;
}
