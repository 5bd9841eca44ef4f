/**
 * What the kernel says about a process, from /proc (proc(5)).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Fields of `/proc/<pid>/stat` the daemon uses. */
export interface ProcStat {
  /** One-letter state (R, S, D, Z, T, ...). */
  state: string;
  /** User and system CPU time of the whole process (all threads, live and exited), in clock ticks. */
  utimeTicks: number;
  stimeTicks: number;
  /** Start time after boot, in clock ticks: with the pid, identifies a process across pid reuse. */
  starttime: number;
}

let clkTck: number | undefined;

/** `sysconf(_SC_CLK_TCK)` (from `getconf CLK_TCK`; 100 if that fails). */
export function clockTicksPerSecond(): number {
  if (clkTck === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    clkTck = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clkTck;
}

/** Parse the text of `/proc/<pid>/stat` (the command name may hold spaces and parentheses). */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = text.slice(close + 2).trim().split(/\s+/); // f[0] is field 3 (state)
  if (f.length < 20) return undefined;
  return { state: f[0], utimeTicks: Number(f[11]), stimeTicks: Number(f[12]), starttime: Number(f[19]) };
}

/** `/proc/<pid>/stat` of `pid`, or undefined when there is no such process. */
export function readProcStat(pid: number, procRoot = '/proc'): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`${procRoot}/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) the kernel has charged to process `pid`, or undefined. */
export function processCpuSeconds(pid: number): number | undefined {
  const s = readProcStat(pid);
  return s ? (s.utimeTicks + s.stimeTicks) / clockTicksPerSecond() : undefined;
}

/**
 * Whether process `pid` exists and is not a zombie; with `starttime`, also that it is the
 * same process (not a new one that reused the pid).
 */
export function processAlive(pid: number, starttime?: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const s = readProcStat(pid);
  if (!s) return false;
  if (s.state === 'Z' || s.state === 'X') return false;
  return starttime === undefined || s.starttime === starttime;
}

/** Resident set size of process `pid` in bytes (`VmRSS` of /proc/<pid>/status), or undefined. */
export function processRssBytes(pid: number, procRoot = '/proc'): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s*kB/m.exec(readFileSync(`${procRoot}/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
