/**
 * The VM process as an OS process, seen from the daemon: how it is spawned (detached,
 * its log as stdout and stderr), what it leaves behind when it ends (`vm.exit`, the last
 * line of its log), and the restart policy applied to its ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { readJsonFile } from '../vmm/atomic.js';
import { VM_NODE_FLAGS } from '../vmm/node-flags.js';
import type { VmProcessStatus } from '../vmm/control-api.js';
import type { VmExit } from './store.js';
import type { RestartPolicy } from './types.js';
import type { VmInfo } from './api-types.js';
import type { DiskMeter } from './disk-arbiter.js';

/**
 * Spawns `node vmmEntry vmDir` detached (it outlives the daemon), in `vmDir`, with stdout
 * and stderr appended to `logPath` (created owner-only). Resolves once it has a pid.
 * @throws Error when the log cannot be opened or the process cannot be spawned.
 */
export async function spawnVmProcess(vmmEntry: string, vmDir: string, logPath: string, env: NodeJS.ProcessEnv): Promise<ChildProcess & { pid: number }> {
  const logFd = openSync(logPath, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...VM_NODE_FLAGS, vmmEntry, vmDir], { detached: true, cwd: vmDir, stdio: ['ignore', logFd, logFd], env });
  } finally {
    closeSync(logFd);
  }
  if (child.pid === undefined) throw await new Promise<Error>((r) => child.once('error', r));
  child.unref();
  return child as ChildProcess & { pid: number };
}

/**
 * The exit status the VM process left in `vm.exit` (`{code, reason, pid, at}`, written just
 * before it exits), if that file is about process `pid`; else null (killed by a signal:
 * no file, or an older one).
 */
export function readExitFile(path: string, pid: number): { code: number; at: number | undefined } | null {
  const x = readJsonFile<{ code?: unknown; pid?: unknown; at?: unknown }>(path);
  if (!x || x.pid !== pid || typeof x.code !== 'number') return null;
  return { code: x.code, at: typeof x.at === 'number' && Number.isFinite(x.at) ? x.at : undefined };
}

/**
 * The last `bytes` bytes of file `path` (all of it if shorter), as UTF-8 text.
 * @throws the fs error when the file cannot be opened or read
 */
export function readFileTail(path: string, bytes: number): string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const b = Buffer.alloc(Math.min(size, bytes));
    readSync(fd, b, 0, b.length, size - b.length);
    return b.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The last non-empty line of a VM's log, as ": line", or "". */
export function logTail(path: string): string {
  try {
    const lines = readFileTail(path, 4096).split('\n').map((l) => l.trim()).filter(Boolean);
    return lines.length ? `: ${lines[lines.length - 1]} (see ${path})` : '';
  } catch {
    return '';
  }
}

/** "exit status 3", "signal SIGKILL", "guest powered off", ... */
export function describeExit(x: VmExit): string {
  const how = x.signal ? `signal ${x.signal}` : x.code !== null ? `exit status ${x.code}` : 'exit status unknown';
  const why = x.reason === 'poweroff' ? 'guest powered off' : x.reason === 'requested' ? 'stopped on request' : 'crashed';
  return `${why} (${how})`;
}

/** Seconds of delay before the n-th consecutive automatic restart (0.5 s doubling to 30 s). */
export function restartDelayMs(consecutive: number): number {
  return Math.min(30_000, 500 * 2 ** Math.max(0, consecutive));
}

/** Whether a VM whose process ended for `reason` is restarted under `policy`. */
export function shouldRestart(policy: RestartPolicy, reason: VmExit['reason']): boolean {
  if (reason === 'requested') return false;
  if (policy === 'always') return true;
  return policy === 'on-failure' && reason === 'crash';
}

/**
 * The `memory` of a VM process's status, reduced to its well-formed numbers (the daemon
 * shows it in `vm info`); null when missing or malformed.
 */
export function checkedMemory(v: unknown): VmInfo['memory'] {
  const m = v as Record<string, unknown> | null | undefined;
  const n = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  if (!m || typeof m !== 'object' || !n(m.currentBytes) || !n(m.maxBytes) || !n(m.balloonBytes) || !n(m.returnedBytes) || !n(m.rssBytes)) return null;
  const g = m.guest as Record<string, unknown> | null | undefined;
  const opt = (x: unknown) => (n(x) ? x : undefined);
  const p = m.policy as Record<string, unknown> | null | undefined;
  return {
    currentBytes: m.currentBytes, maxBytes: m.maxBytes, balloonBytes: m.balloonBytes, returnedBytes: m.returnedBytes, rssBytes: m.rssBytes,
    guest: g && typeof g === 'object' && n(g.atMs)
      ? { totalBytes: opt(g.totalBytes), freeBytes: opt(g.freeBytes), availableBytes: opt(g.availableBytes), allocStalls: opt(g.allocStalls), oomKills: opt(g.oomKills), atMs: g.atMs }
      : null,
    ...(p && typeof p === 'object' && n(p.minBytes) && n(p.ceilingBytes) && n(p.bufferPercent)
      ? { policy: { minBytes: p.minBytes, ceilingBytes: p.ceilingBytes, bufferPercent: p.bufferPercent } } : {}),
  };
}

/** The disk meter in the `diskRate` of a VM process's status (src/host/disk-arbiter.ts), or undefined when malformed. */
export function checkedDiskMeter(v: unknown): DiskMeter | undefined {
  const d = v as Record<string, unknown> | null | undefined;
  const n = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  const share = d?.share as Record<string, unknown> | null | undefined;
  if (!d || typeof d !== 'object' || !n(d.ops) || !n(d.bytes) || !n(d.serviceMs) || !n(d.waitMs)) return undefined;
  return {
    ops: d.ops, bytes: d.bytes, serviceMs: d.serviceMs, waitMs: d.waitMs,
    share: share && typeof share === 'object' && n(share.iops) && n(share.bps) ? { iops: share.iops, bps: share.bps } : { iops: 0, bps: 0 },
  };
}

/** The `cdrom` of a VM process's status (the disc in the drive, the tray lock), or undefined when malformed. */
export function checkedCdrom(v: unknown): { path: string | null; locked: boolean } | undefined {
  const c = v as { path?: unknown; locked?: unknown } | null | undefined;
  if (!c || typeof c !== 'object' || (c.path !== null && typeof c.path !== 'string')) return undefined;
  return { path: typeof c.path === 'string' ? c.path.slice(0, 4096) : null, locked: c.locked === true };
}

/** The `display` of a VM process's status, if well formed (else null). */
export function checkedDisplay(v: unknown): VmProcessStatus['display'] {
  const d = v as { mode?: unknown; vncPort?: unknown; viewers?: unknown } | null | undefined;
  if (!d || typeof d !== 'object') return null;
  const dim = (n: unknown): n is number => Number.isInteger(n) && (n as number) > 0 && (n as number) <= 16384;
  const m = d.mode as { width?: unknown; height?: unknown } | null;
  return {
    mode: m && typeof m === 'object' && dim(m.width) && dim(m.height) ? { width: m.width, height: m.height } : null,
    vncPort: Number.isInteger(d.vncPort) && (d.vncPort as number) > 0 && (d.vncPort as number) < 65536 ? d.vncPort as number : null,
    viewers: Number.isInteger(d.viewers) && (d.viewers as number) >= 0 ? d.viewers as number : 0,
  };
}

/** The address of a VM's VNC server at loopback port `port` (`host:port`). */
export function vncAddress(port: number): string {
  return `127.0.0.1:${port}`;
}

/** The `ssh` of a VM process's status, if well formed. */
export function checkedSsh(v: unknown): VmProcessStatus['ssh'] {
  const s = v as { port?: unknown; ready?: unknown; error?: unknown } | null | undefined;
  if (!s || typeof s !== 'object' || !Number.isInteger(s.port)) return null;
  return { port: s.port as number, ready: s.ready === true, ...(typeof s.error === 'string' ? { error: s.error.slice(0, 300) } : {}) };
}
