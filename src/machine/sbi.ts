/**
 * The Supervisor Binary Interface served by the hypervisor (RISC-V SBI
 * specification v2.0): Base, TIME, IPI, RFENCE, HSM, SRST, DBCN and the
 * legacy console/timer/IPI calls (chapter 5).
 *
 * Calling convention (chapter 3): a7 = extension ID, a6 = function ID,
 * a0..a5 arguments; returns error in a0 and value in a1.
 */
import type { GuestMemory } from '../devices/guest-memory.js';

/** SBI error codes (3). */
export const SBI_SUCCESS = 0;
export const SBI_ERR_FAILED = -1;
export const SBI_ERR_NOT_SUPPORTED = -2;
export const SBI_ERR_INVALID_PARAM = -3;
export const SBI_ERR_DENIED = -4;
export const SBI_ERR_INVALID_ADDRESS = -5;
export const SBI_ERR_ALREADY_AVAILABLE = -6;
export const SBI_ERR_ALREADY_STARTED = -7;
export const SBI_ERR_ALREADY_STOPPED = -8;

/** Extension IDs. */
export const EID_BASE = 0x10;
export const EID_TIME = 0x54494d45;
export const EID_IPI = 0x735049;
export const EID_RFENCE = 0x52464e43;
export const EID_HSM = 0x48534d;
export const EID_SRST = 0x53525354;
export const EID_DBCN = 0x4442434e;

/** Most bytes one DBCN console_write/console_read moves (a guest cannot make the host copy its whole RAM per call). */
export const DBCN_MAX_BYTES = 4096;

/** The SBI implementation ID we report (not a registered one: an experimental value). */
export const SBI_IMPL_ID = 0x7473;
export const SBI_IMPL_VERSION = 1;

/** HSM hart states (9.1). */
export const enum HartState { Started = 0, Stopped = 1, StartPending = 2, StopPending = 3, Suspended = 4 }

/** The calling hart, as the SBI sees it. */
export interface SbiHart {
  readonly id: number;
  getX(i: number): bigint;
  setX(i: number, v: bigint): void;
  /** Program the supervisor timer (ticks of the timebase). */
  set timecmp(v: bigint);
  /** Step past the ecall. */
  skipEcall(): void;
}

/** What the SBI needs from the board. */
export interface SbiPlatform {
  readonly memory: GuestMemory;
  /** Number of harts (ids 0..hartCount-1). */
  readonly hartCount: number;
  /** Raise (or, with `false`, clear) the supervisor software interrupt of hart `id`. */
  setSoftwareInterrupt(id: number, level: boolean): void;
  /**
   * Write bytes to the debug console (the same stream as the UART). `bytes` may be a
   * view of guest RAM, valid only during the call: copy it to keep it. At most
   * {@link DBCN_MAX_BYTES} per call.
   * @returns false when the console cannot take more now (output backs up on the host):
   *   nothing was written and DBCN reports a write of 0 bytes, which the guest retries.
   */
  consoleWrite(bytes: Uint8Array): boolean;
  /** Read one console byte, or -1 when none is waiting. */
  consoleRead(): number;
  /** Power the machine off (`reset`: reboot instead). */
  systemReset(kind: 'shutdown' | 'reboot', reason: number): void;
  /** HSM: start hart `id` at `start` with a1 = `opaque`. Returns an SBI error code. */
  hartStart(id: number, start: bigint, opaque: bigint): number;
  /** HSM: stop the calling hart. */
  hartStop(id: number): number;
  /** HSM: state of hart `id` (HartState), or -1 for an invalid id. */
  hartStatus(id: number): number;
  /**
   * RFENCE: harts `ids` leave the code they run and, when `tlb`, flush their TLBs, before
   * this returns. `tlb` false is REMOTE_FENCE_I: the calling hart need do nothing (every
   * write to translated code retired it already), the others must not go on running a
   * translation they entered before the write.
   */
  remoteFence(ids: number[], tlb: boolean): void;
}

const M64 = (1n << 64n) - 1n;
const toU64 = (v: number): bigint => BigInt.asUintN(64, BigInt(v));

/** Harts selected by an SBI hart mask (hart_mask, hart_mask_base; base = -1 means all). */
function maskedHarts(mask: bigint, base: bigint, count: number): number[] | null {
  if (base === M64) return Array.from({ length: count }, (_, i) => i);
  const out: number[] = [];
  for (let i = 0; i < 64; i++) {
    if ((mask >> BigInt(i)) & 1n) {
      const id = base + BigInt(i);
      if (id >= BigInt(count)) return null;
      out.push(Number(id));
    }
  }
  return out;
}

/**
 * Serve the SBI call made by `hart` (which just executed `ecall` in S-mode),
 * write the result registers and step past the ecall. Unknown extensions
 * return SBI_ERR_NOT_SUPPORTED.
 */
export function handleSbiCall(hart: SbiHart, p: SbiPlatform): void {
  const all = () => Array.from({ length: p.hartCount }, (_, i) => i);
  const eid = Number(hart.getX(17));
  const fid = Number(hart.getX(16));
  const a0 = hart.getX(10), a1 = hart.getX(11), a2 = hart.getX(12);
  let err = SBI_SUCCESS;
  let value = 0n;
  let legacy = false;
  switch (eid) {
    case 0x00: // legacy set_timer
      hart.timecmp = a0; legacy = true; err = 0; break;
    case 0x01: // legacy console_putchar
      p.consoleWrite(Uint8Array.of(Number(a0 & 0xffn))); legacy = true; break;
    case 0x02: // legacy console_getchar
      err = p.consoleRead(); legacy = true; break;
    case 0x03: // legacy clear_ipi
      p.setSoftwareInterrupt(hart.id, false); legacy = true; break;
    case 0x04: { // legacy send_ipi(const unsigned long *hart_mask)
      legacy = true;
      try {
        const mask = BigInt(p.memory.readU32(Number(a0))) | (BigInt(p.memory.readU32(Number(a0) + 4)) << 32n);
        for (const id of maskedHarts(mask, 0n, p.hartCount) ?? []) p.setSoftwareInterrupt(id, true);
      } catch { err = SBI_ERR_INVALID_ADDRESS; }
      break;
    }
    case 0x05: case 0x06: case 0x07: legacy = true; p.remoteFence(all(), eid !== 0x05); break;
    case 0x08: legacy = true; p.systemReset('shutdown', 0); break;
    case EID_BASE:
      switch (fid) {
        case 0: value = (2n << 24n) | 0n; break; // spec version 2.0
        case 1: value = BigInt(SBI_IMPL_ID); break;
        case 2: value = BigInt(SBI_IMPL_VERSION); break;
        case 3: {
          const probe = Number(a0);
          value = [0, 1, 2, 3, 4, 5, 6, 7, 8, EID_BASE, EID_TIME, EID_IPI, EID_RFENCE, EID_HSM, EID_SRST, EID_DBCN].includes(probe) ? 1n : 0n;
          break;
        }
        case 4: case 5: case 6: value = 0n; break; // mvendorid, marchid, mimpid
        default: err = SBI_ERR_NOT_SUPPORTED;
      }
      break;
    case EID_TIME:
      if (fid === 0) hart.timecmp = a0; else err = SBI_ERR_NOT_SUPPORTED;
      break;
    case EID_IPI:
      if (fid === 0) {
        const ids = maskedHarts(a0, a1, p.hartCount);
        if (ids === null) err = SBI_ERR_INVALID_PARAM;
        else for (const id of ids) p.setSoftwareInterrupt(id, true);
      } else err = SBI_ERR_NOT_SUPPORTED;
      break;
    case EID_RFENCE: {
      if (fid > 6) { err = SBI_ERR_NOT_SUPPORTED; break; }
      if (fid >= 3) { err = SBI_ERR_NOT_SUPPORTED; break; } // hypervisor fences: no H extension
      const ids = maskedHarts(a0, a1, p.hartCount);
      if (ids === null) err = SBI_ERR_INVALID_PARAM;
      else p.remoteFence(ids, fid !== 0);
      break;
    }
    case EID_HSM:
      switch (fid) {
        case 0: err = p.hartStart(Number(a0), a1, a2); break;
        case 1: err = p.hartStop(hart.id); break;
        case 2: {
          const s = p.hartStatus(Number(a0));
          if (s < 0) err = SBI_ERR_INVALID_PARAM; else value = BigInt(s);
          break;
        }
        case 3: err = SBI_SUCCESS; break; // hart_suspend: a retentive suspend returns at once (like WFI)
        default: err = SBI_ERR_NOT_SUPPORTED;
      }
      break;
    case EID_SRST:
      if (fid !== 0) { err = SBI_ERR_NOT_SUPPORTED; break; }
      if (a0 === 0n) p.systemReset('shutdown', Number(a1));
      else if (a0 === 1n || a0 === 2n) p.systemReset('reboot', Number(a1));
      else err = SBI_ERR_INVALID_PARAM;
      break;
    case EID_DBCN: {
      // §12: base_addr_hi holds the upper XLEN bits of the physical address, so on RV64
      // it must be 0 here; each call moves at most DBCN_MAX_BYTES (a short write or read
      // is allowed: the return value says how many bytes were moved)
      const n = Number(a0 > BigInt(DBCN_MAX_BYTES) ? BigInt(DBCN_MAX_BYTES) : a0);
      const addr = Number(a1);
      if ((fid === 0 || fid === 1) && a2 !== 0n) { err = SBI_ERR_INVALID_PARAM; break; }
      if (fid === 0) { // console_write(num_bytes, base_lo, base_hi)
        try { value = p.consoleWrite(p.memory.slice(addr, n)) ? BigInt(n) : 0n; }
        catch { err = SBI_ERR_INVALID_PARAM; }
      } else if (fid === 1) { // console_read
        try {
          const buf = p.memory.slice(addr, n);
          let i = 0;
          for (; i < n; i++) { const c = p.consoleRead(); if (c < 0) break; buf[i] = c; }
          if (i > 0) p.memory.written(addr, i);
          value = BigInt(i);
        } catch { err = SBI_ERR_INVALID_PARAM; }
      } else if (fid === 2) {
        p.consoleWrite(Uint8Array.of(Number(a0 & 0xffn)));
      } else err = SBI_ERR_NOT_SUPPORTED;
      break;
    }
    default:
      err = SBI_ERR_NOT_SUPPORTED;
  }
  hart.setX(10, toU64(err));
  if (!legacy) hart.setX(11, value);
  hart.skipEcall();
}
