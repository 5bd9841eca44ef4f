/**
 * Guest blocks as the JIT translates them (src/engine/jit/translate.ts): which instructions
 * it translates, how a block is cut from guest RAM, where control may go from it, and its
 * compact form for the compiler thread.
 *
 * A block is a run of instructions in one 4 KiB page, from a start address to the first
 * jump (JAL or JALR, included), untranslated instruction or page end (excluded), or at most
 * MAX_BLOCK_INSNS. A jump that does not link (JAL x0, JALR x0) does not end it when the
 * instruction after it is the target of an earlier branch or jump of the block (an else
 * part, the code after an early return). A conditional branch goes on with the next
 * instruction when not taken; taken, it is a `br` inside the function when its target is an
 * instruction of the block, forward or back (the registers stay in locals), else a side exit.
 * A 32-bit instruction that crosses the page end is the block's last (STRADDLE).
 *
 * Going on after a jump only there, rather than at the nearest target ahead of it (leaving
 * out the code before that), kept a boot's translations small: boots to `true`, ten
 * alternating, took a median 2.39 s this way, 2.56 s that way, and 2.33 s with the blocks
 * of before (which went on only after a JAL x0 forward in the page, over the code up to
 * its target); the boot bench's workloads ran no faster that way (three alternating runs).
 */
/**
 * Longest block, in instructions. A block cut at its length stores its registers back and
 * tail-calls the next, which loads them again: measured on the boot bench's workloads
 * (three rounds, alternating), 128 against 64 took sha256 2.3-2.5 s instead of 2.7-4.0,
 * gzip -9 1.7-2.1 instead of 1.9-2.6 and sort 2.9-3.1 instead of 3.2-4.7, with the boot
 * and the integer loop within noise; 256 was no better.
 */
export const MAX_BLOCK_INSNS = 128;

/** One decoded instruction of a block. */
export interface BlockInsn {
  /** Byte offset from the block start. */
  off: number;
  /** The 32-bit instruction (compressed ones expanded). */
  insn: number;
  /** Its length in bytes: 2 or 4. */
  len: number;
}

/** A block decoded from guest RAM. */
export interface Block {
  /** Linear-memory (host) address of its first instruction. */
  host: number;
  insns: BlockInsn[];
  /** Byte offset just past its last instruction (past the page's end by 2 after a STRADDLE). */
  end: number;
  /** True when the last instruction is a jump or branch (branches before it are side exits). */
  jumps: boolean;
  /**
   * True when the block stops before an instruction it does not translate (or one that
   * crosses the page end and is not STRADDLE's): the interpreter runs that one, and the
   * next starts a block.
   */
  stopsBefore: boolean;
}

/** Byte offsets into the engine's state the generated code needs. */
export interface TranslateLayout {
  /** Linear-memory offset of the RVC expansion table (65536 x u32, 0 = illegal). */
  rvcTable: number;
  /** Byte size of one TLB table (TLB_SETS sets of two 16-byte ways, see src/engine/as/layout.ts). */
  tlbTableBytes: number;
  /** Linear-memory address of the hart's x registers (32 x u64, then its f registers). */
  xBase: number;
}

/**
 * True when `insn` (32-bit form) is translated: exactly the encodings of these opcodes
 * that the interpreter executes without raising illegal-instruction.
 */
export function translatable(insn: number): boolean {
  const f3 = (insn >>> 12) & 7, f7 = insn >>> 25;
  switch (insn & 0x7f) {
    case 0x37: case 0x17: case 0x6f: return true;
    case 0x67: return f3 === 0;
    case 0x63: return f3 !== 2 && f3 !== 3;
    case 0x03: return f3 !== 7;
    case 0x23: return f3 <= 3;
    case 0x0f: return f3 === 0 && insn !== PAUSE; // FENCE (PAUSE stays with the interpreter's pause-loop exits)
    case 0x07: case 0x27: return f3 === 2 || f3 === 3; // FLW FLD FSW FSD (FS checked when they run)
    case 0x53: case 0x43: case 0x47: case 0x4b: case 0x4f: return true; // F/D through the engine (illegal ones leave the block)
    case 0x2f: return true; // A through the engine (its exceptions, illegal instruction included, leave the block)
    case 0x73: return csrReadOnly(insn) || csrWritable(insn); // CSRs through the engine (illegal ones leave the block)
    case 0x13:
      if (f3 === 1) return (insn >>> 26) === 0;
      if (f3 === 5) return (insn >>> 26) === 0 || (insn >>> 26) === 0x10;
      return true;
    case 0x1b:
      if (f3 === 0) return true;
      if (f3 === 1) return f7 === 0;
      if (f3 === 5) return f7 === 0 || f7 === 0x20;
      return false;
    case 0x33:
      if (f7 === 0 || f7 === 1) return true;
      return f7 === 0x20 && (f3 === 0 || f3 === 5);
    case 0x3b:
      if (f7 === 0) return f3 === 0 || f3 === 1 || f3 === 5;
      if (f7 === 0x20) return f3 === 0 || f3 === 5;
      return f7 === 1 && f3 !== 1 && f3 !== 2 && f3 !== 3;
    default: return false;
  }
}

/** An AMO (jitAmo) or a CSR instruction (jitCsr): the engine writes their x register. */
export function runByEngine(insn: number): boolean {
  const op = insn & 0x7f;
  return op === 0x2f || op === 0x73;
}

/** True when `insn` leaves through the block's shared fault exit when it raises an exception (loads, stores, AMOs). */
export function mayFault(insn: number): boolean {
  const op = insn & 0x7f;
  return op === 0x03 || op === 0x23 || op === 0x07 || op === 0x27 || op === 0x2f;
}

/** True when the block stores every dirty x register back before `insn` (the engine reads them; for STRADDLE, writes any). */
export function storesBackAll(insn: number): boolean {
  const op = insn & 0x7f;
  return op === 0x2f || (op === 0x73 && !csrReadOnly(insn)) || insn === STRADDLE;
}

/** The x registers a translated instruction reads, and the one it writes (0: none). */
export function xUse(insn: number): { reads: number[]; writes: number } {
  const op = insn & 0x7f, rd = (insn >>> 7) & 31, rs1 = (insn >>> 15) & 31, rs2 = (insn >>> 20) & 31;
  switch (op) {
    case 0x37: case 0x17: case 0x6f: case 0x73: return { reads: [], writes: rd };
    case 0x0f: case 0x43: case 0x47: case 0x4b: case 0x4f: case STRADDLE: return { reads: [], writes: 0 };
    case 0x03: case 0x13: case 0x1b: case 0x67: return { reads: [rs1], writes: rd };
    case 0x07: case 0x27: return { reads: [rs1], writes: 0 }; // the data register is an f register
    case 0x23: case 0x63: return { reads: [rs1, rs2], writes: 0 };
    case 0x53: {
      const k = insn >>> 27; // funct5
      // FCVT.S/D.W[U]/L[U] and FMV.W/D.X read x[rs1]; compares, FCVT.W[U]/L[U] and FMV.X/FCLASS write x[rd]
      return { reads: k === 0x1a || k === 0x1e ? [rs1] : [], writes: k === 0x14 || k === 0x18 || k === 0x1c ? rd : 0 };
    }
    default: return { reads: [rs1, rs2], writes: rd };
  }
}

/** Offset from its block's start of the target of `ins`, a JAL or a taken branch; null otherwise. */
export function staticTarget(ins: BlockInsn): number | null {
  const i = ins.insn;
  switch (i & 0x7f) {
    case 0x6f: return ins.off + (((i & 0x80000000) >> 11) | (i & 0xff000) | ((i >>> 9) & 0x800) | ((i >>> 20) & 0x7fe));
    case 0x63: return ins.off + (((i & 0x80000000) >> 19) | ((i & 0x80) << 4) | ((i >>> 20) & 0x7e0) | ((i >>> 7) & 0x1e));
    default: return null;
  }
}

/**
 * Host addresses, in the block's page, where control may go next from `b` and that are
 * likely block starts: its jump or branch target, the instruction after it (a branch not
 * taken, the return from a call, a block cut at its length limit).
 */
export function successors(b: Block): number[] {
  const out: number[] = [];
  const page = b.host & ~0xfff;
  const add = (off: number) => { const h = b.host + off; if ((h & ~0xfff) === page && !out.includes(h)) out.push(h); };
  // branch targets, but not the later instructions of the block itself (a br inside its function)
  const offs = new Set(b.insns.map((ins) => ins.off));
  for (const ins of b.insns) {
    const t = staticTarget(ins);
    if (t !== null && !offs.has(t)) add(t);
  }
  const last = b.insns[b.insns.length - 1];
  if (!b.jumps) { if (!b.stopsBefore) add(b.end); return out; }
  const op = last.insn & 0x7f, rd = (last.insn >>> 7) & 31;
  if (op === 0x63 || rd !== 0) add(b.end); // not taken, or where a call returns
  return out;
}

/**
 * `blocks` as one Int32Array, for a thread to receive without cloning an object per
 * instruction: the count, then per block its host address, end, flags (1 jumps, 2 stops
 * before) and instruction count, then per instruction its offset, word and length.
 */
export function packBlocks(blocks: readonly Block[]): Int32Array {
  const out = new Int32Array(1 + blocks.reduce((n, b) => n + 4 + 3 * b.insns.length, 0));
  let p = 0;
  out[p++] = blocks.length;
  for (const b of blocks) {
    out[p++] = b.host;
    out[p++] = b.end;
    out[p++] = (b.jumps ? 1 : 0) | (b.stopsBefore ? 2 : 0);
    out[p++] = b.insns.length;
    for (const ins of b.insns) { out[p++] = ins.off; out[p++] = ins.insn | 0; out[p++] = ins.len; }
  }
  return out;
}

/** The blocks packBlocks packed. */
export function unpackBlocks(a: Int32Array): Block[] {
  const blocks: Block[] = [];
  let p = 1;
  for (let k = 0; k < a[0]; k++) {
    const host = a[p++] >>> 0, end = a[p++], flags = a[p++], n = a[p++];
    const insns: BlockInsn[] = [];
    for (let i = 0; i < n; i++, p += 3) insns.push({ off: a[p], insn: a[p + 1] >>> 0, len: a[p + 2] });
    blocks.push({ host, insns, end, jumps: (flags & 1) !== 0, stopsBefore: (flags & 2) !== 0 });
  }
  return blocks;
}

/**
 * Offsets from the block's start of the targets of its jumps and branches (and of the
 * instruction after it, when it runs on to the page end) that lie outside its page.
 */
export function crossTargets(b: Block): number[] {
  const out: number[] = [];
  const pageOff = b.host & 0xfff;
  const add = (off: number) => { if ((pageOff + off < 0 || pageOff + off >= 0x1000) && !out.includes(off)) out.push(off); };
  for (const ins of b.insns) {
    const t = staticTarget(ins);
    if (t !== null) add(t);
  }
  if (!b.stopsBefore) add(b.end);
  return out;
}

/**
 * A jump of block `from` to offset `off`, in another page, that the hart's execute TLB
 * mapped, when the module was made, to the block at host address `host`, translated from
 * code generation `gen` of its page, in the same module or an earlier one (which the module
 * imports with the linked ones): the module tail-calls it directly while the execute TLB of
 * the current privilege still maps the target there and the page still has that
 * generation, else it goes through the trampoline.
 */
export interface CrossLink { from: number; off: number; host: number; gen: number }

/**
 * CSRs whose read has no side effect and does not depend on where in a block it happens,
 * beyond what the engine's jitCsr is told (the instructions retired before it): the
 * counters (Zicntr) and the S-mode trap and translation registers.
 */
const READABLE_CSRS = new Set([0xc00, 0xc01, 0xc02, 0x100, 0x104, 0x105, 0x106, 0x140, 0x141, 0x142, 0x143, 0x180]);

/**
 * CSRs whose write the engine's jitCsr does in the middle of a block: the floating-point
 * ones (F/D instructions read frm and FS from the engine when they run), sstatus (SUM and
 * MXR drop TLB entries in place, which the inline TLB probes then miss; FS is read per
 * F/D instruction; SIE set makes the block leave after it, as do writes of sie, sip and
 * stimecmp, so that an interrupt they enable is taken at once) and the S-mode trap
 * registers. satp (which remaps the code being run) and senvcfg stay with the interpreter.
 */
const WRITABLE_CSRS = new Set([0x001, 0x002, 0x003, 0x100, 0x104, 0x105, 0x106, 0x140, 0x141, 0x142, 0x143, 0x144, 0x14d]);

/** True when `insn` is a read-only CSR instruction (CSRRS/CSRRC rs1 = x0, CSRRSI/CSRRCI uimm = 0) of a READABLE_CSRS one. */
export function csrReadOnly(insn: number): boolean {
  const f3 = (insn >>> 12) & 7;
  return (f3 === 2 || f3 === 3 || f3 === 6 || f3 === 7) && ((insn >>> 15) & 31) === 0 && READABLE_CSRS.has(insn >>> 20);
}

/** True when `insn` is a Zicsr instruction (funct3 1-3, 5-7) of a WRITABLE_CSRS one. */
function csrWritable(insn: number): boolean {
  const f3 = (insn >>> 12) & 7;
  return f3 !== 0 && f3 !== 4 && WRITABLE_CSRS.has(insn >>> 20);
}

/**
 * The pseudo-instruction a block holds for a 32-bit instruction that crosses the end of its
 * page (at offset 0xffe): opcode 0x7f (no 32-bit instruction has it), no registers. The
 * translation calls the engine's `jitStep`, which fetches and runs the instruction as the
 * interpreter does (its second half may be in any page, and change without this page's
 * code being retired); the block ends after it.
 */
export const STRADDLE = 0x7f;
/**
 * Major opcodes (in the half in the page) of the instructions that cross a page end and are
 * run through jitStep: loads, stores, integer and F/D arithmetic, jumps and branches; not
 * SYSTEM, MISC-MEM or AMO (the interpreter runs those, after the block stops before them).
 */
const STRADDLE_OPCODES = new Set([0x03, 0x07, 0x13, 0x17, 0x1b, 0x23, 0x27, 0x33, 0x37, 0x3b, 0x43, 0x47, 0x4b, 0x4f, 0x53, 0x63, 0x67, 0x6f]);

/** PAUSE (Zihintpause): FENCE with pred = W, succ = 0. */
const PAUSE = 0x0100000f;

/** The target offset of `ins`, a branch or a JAL x0, when it lies ahead of it in the page (else -1). */
function forwardTarget(ins: BlockInsn, pageOff: number): number {
  const op = ins.insn & 0x7f;
  if (op !== 0x63 && !(op === 0x6f && ((ins.insn >>> 7) & 31) === 0)) return -1;
  const t = staticTarget(ins)!;
  return t > ins.off && pageOff + t < 0x1000 ? t : -1;
}

/**
 * Decode the block starting at linear-memory address `host` (guest RAM) from `mem`, the
 * whole linear memory. Returns null when its first instruction is not translated.
 */
export function decodeBlock(mem: DataView, host: number, layout: TranslateLayout, maxInsns = MAX_BLOCK_INSNS): Block | null {
  const pageEnd = (host & ~0xfff) + 0x1000;
  const insns: BlockInsn[] = [];
  let at = host;
  let jumps = false;
  let stopsBefore = false;
  // the forward targets in the page of the block's branches and JAL x0s so far (offsets from host)
  const ahead = new Set<number>();
  while (insns.length < maxInsns && at + 2 <= pageEnd) {
    let insn = mem.getUint16(at, true);
    let len = 4;
    if ((insn & 3) !== 3) {
      insn = mem.getUint32(layout.rvcTable + insn * 4, true);
      if (insn === 0) { stopsBefore = true; break; }
      len = 2;
    } else {
      if (at + 4 > pageEnd) {
        // its second half is in the next page: the engine runs it (STRADDLE), or the interpreter
        if (!STRADDLE_OPCODES.has(insn & 0x7f)) { stopsBefore = true; break; }
        insns.push({ off: at - host, insn: STRADDLE, len: 4 });
        at += 4;
        break;
      }
      insn = (insn | (mem.getUint16(at + 2, true) << 16)) >>> 0;
    }
    if (!translatable(insn)) { stopsBefore = true; break; }
    const ins = { off: at - host, insn, len };
    insns.push(ins);
    at += len;
    const t = forwardTarget(ins, host & 0xfff);
    if (t >= 0) ahead.add(t);
    // a call ends the block, and so does a jump that does not link unless an earlier branch or
    // jump of the block leads to the instruction after it
    const op = insn & 0x7f;
    if ((op === 0x6f || op === 0x67) && (((insn >>> 7) & 31) !== 0 || !ahead.has(at - host))) { jumps = true; break; }
  }
  if (insns.length && !stopsBefore && (insns[insns.length - 1].insn & 0x7f) === 0x63) jumps = true;
  if (!insns.length) return null;
  return { host, insns, end: at - host, jumps, stopsBefore };
}
