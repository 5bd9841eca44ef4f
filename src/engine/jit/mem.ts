/**
 * Translation of loads and stores (RV64I, and FLW/FLD/FSW/FSD's accesses) for translate.ts:
 * the TLB probed inline (src/engine/as/mmu.ts's layout: per access kind a table of 256
 * entries {vpn u64, host addend u32}, indexed by vpn mod 256), and the engine's loadSlow /
 * storeSlow on a miss, which also raise the access's exceptions as the interpreter does.
 * Accesses through one unchanged base register within a page share one probe (probe
 * groups, below).
 */
import type { BlockInsn } from './block.js';
import { type Code, Op, ValType } from './wasm.js';

const I32 = ValType.I32, I64 = ValType.I64;
/** A page number no TLB entry holds (an empty entry's is all ones; a real one is below 2^52). */
const NO_VPN = -2n;

/** The TLB tables translated code probes: loads (read) and stores (write). */
export const ACC_R = 0, ACC_W = 1;

/**
 * A load or store the block probes the TLB for inline: its table (ACC_R or ACC_W), size in
 * bytes, and offset from x[rs1]; null for any other instruction.
 */
export function memAccess(insn: number): { access: number; size: number; imm: number } | null {
  const f3 = (insn >>> 12) & 7;
  const immS = ((insn >> 20) & ~31) | ((insn >>> 7) & 31);
  switch (insn & 0x7f) {
    case 0x03: return { access: ACC_R, size: 1 << (f3 & 3), imm: insn >> 20 };
    case 0x07: return { access: ACC_R, size: f3 === 2 ? 4 : 8, imm: insn >> 20 };
    case 0x23: return { access: ACC_W, size: 1 << f3, imm: immS };
    case 0x27: return { access: ACC_W, size: f3 === 2 ? 4 : 8, imm: immS };
    default: return null;
  }
}

/**
 * Two or more loads (or stores) of a block that share one TLB probe: all through the same
 * x[rs1], which no instruction between the first and the last writes, in straight-line code
 * (no label of the block's forward branches between them, nor a CSR or AMO instruction), at
 * offsets within [lo, hiEnd) (at most a page). The first of them (the leader, an instruction
 * index) checks once that x[rs1] + lo and x[rs1] + hiEnd - 1 are in one page that the TLB
 * table `access` holds, and keeps the host address of x[rs1] + lo, or 0 when not; each of
 * them then accesses that address + (its offset - lo) when it is not 0, and takes the slow
 * path otherwise. (Host address 0 is the engine's, never guest RAM.)
 */
export interface ProbeGroup { leader: number; rs1: number; access: number; lo: number; hiEnd: number }

/**
 * The probe groups of a block's instructions `insns`, by member index (members of a group
 * share its object). `writes[k]`: the x register instruction k writes (0: none); `labels`:
 * indices where other paths join the straight-line code (forward branch targets).
 */
export function probeGroups(insns: readonly BlockInsn[], writes: readonly number[], labels: ReadonlyMap<number, unknown>): Map<number, ProbeGroup> {
  const groups = new Map<number, ProbeGroup>();
  type Open = ProbeGroup & { members: number[] };
  let open: Open[] = [];
  const close = (g: Open) => {
    if (g.members.length < 2) return;
    const group: ProbeGroup = { leader: g.members[0], rs1: g.rs1, access: g.access, lo: g.lo, hiEnd: g.hiEnd };
    for (const k of g.members) groups.set(k, group);
  };
  const closeAll = () => { open.forEach(close); open = []; };
  insns.forEach(({ insn }, k) => {
    if (labels.has(k)) closeAll();
    const op = insn & 0x7f;
    // the engine runs CSR and AMO instructions: a CSR write may drop TLB entries (sstatus.SUM, MXR)
    if (op === 0x73 || op === 0x2f) closeAll();
    const m = memAccess(insn);
    if (m) {
      const rs1 = (insn >>> 15) & 31;
      const g = open.find((o) => o.rs1 === rs1 && o.access === m.access);
      const lo = Math.min(g?.lo ?? m.imm, m.imm), hiEnd = Math.max(g?.hiEnd ?? m.imm + m.size, m.imm + m.size);
      if (g && hiEnd - lo <= 0x1000) {
        g.members.push(k);
        g.lo = lo;
        g.hiEnd = hiEnd;
      } else {
        if (g) { close(g); open = open.filter((o) => o !== g); }
        open.push({ members: [k], leader: k, rs1, access: m.access, lo: m.imm, hiEnd: m.imm + m.size });
      }
    }
    const w = writes[k];
    if (w !== 0) {
      for (const o of open) if (o.rs1 === w) close(o);
      open = open.filter((o) => o.rs1 !== w);
    }
  });
  closeAll();
  return groups;
}

/** What the emitter needs from the block being translated (translate.ts's BlockWriter). */
export interface MemBlock {
  readonly c: Code;
  /** Push x[r] (an i64; 0 for x0). */
  getX(r: number): void;
  /**
   * After a slow path: leave through the block's shared fault exit if it raised an
   * exception, at instruction k; `nested`: wasm blocks opened since the instruction began.
   */
  faultExit(ins: BlockInsn, k: number, nested: number): void;
  /** Function indices of the engine's `loadSlow` and `storeSlow` imports. */
  readonly loadSlow: number;
  readonly storeSlow: number;
}

/** Scratch locals the block shares with the emitter: va (i64), ent (i32), v (i64, a load's value) and tlb (i32, tlbCur read at entry). */
export interface MemLocals { va: number; ent: number; v: number; tlb: number }

/** A probe group with its host address local. */
type HostGroup = ProbeGroup & { host: number };

/** Emits the loads and stores of one block (see the file comment). */
export class MemEmitter {
  /** The page a probe group's leader expects in its TLB entry (see groupCheck). */
  private readonly groupVpn: number;
  /** The probe group of each grouped load or store, by instruction index. */
  private readonly groups = new Map<number, HostGroup>();

  /**
   * @param tableBytes bytes of one TLB table (the tables of ACC_R and ACC_W follow tlbCur in that order)
   * @param groups the block's probe groups (probeGroups)
   */
  constructor(private readonly b: MemBlock, private readonly tableBytes: number, private readonly l: MemLocals, groups: ReadonlyMap<number, ProbeGroup>) {
    this.groupVpn = b.c.local(I64);
    const hosts = new Map<ProbeGroup, number>();
    for (const [k, g] of groups) {
      let host = hosts.get(g);
      if (host === undefined) hosts.set(g, host = b.c.local(I32));
      this.groups.set(k, { ...g, host });
    }
  }

  private get c(): Code { return this.b.c; }

  /**
   * Compute va = x[rs1] + imm and the address of its TLB slot (local ent; the table of
   * `access` is at a constant offset from it), then push the fast-path condition (i32):
   * the page is in the TLB and `size` bytes fit in it.
   */
  private tlbProbe(rs1: number, imm: number, access: number, size: number): void {
    const c = this.c;
    this.b.getX(rs1);
    if (imm !== 0) c.i64Const(imm).op(Op.I64Add);
    c.set(this.l.va);
    c.get(this.l.tlb);
    this.tlbSlot();
    // the entry's page is that of the access's last byte too: an access that crosses into
    // the next page never matches (that page's entry is at the next index)
    c.get(this.l.ent).mem(Op.I64Load, access * this.tableBytes, 3).get(this.l.va);
    if (size > 1) c.i64Const(size - 1).op(Op.I64Add);
    c.i64Const(12).op(Op.I64ShrU).op(Op.I64Eq);
  }
  /** Local ent = the TLB base on the stack + the slot of local va's page (mmu.ts: vpn mod 256, 16 bytes each). */
  tlbSlot(): void {
    this.c.get(this.l.va).i64Const(12).op(Op.I64ShrU).op(Op.I32WrapI64).i32Const(255).op(Op.I32And)
      .i32Const(4).op(Op.I32Shl).op(Op.I32Add).set(this.l.ent);
  }
  /**
   * Push the fast-path condition (i32) of the access at instruction k (x[rs1] + imm, `size`
   * bytes, table `access`): its probe group's local `host` (nonzero), which the group's
   * leader sets first; else a probe of its own (tlbProbe, which sets local va).
   */
  private probe(k: number, rs1: number, imm: number, access: number, size: number): void {
    const g = this.groups.get(k);
    if (!g) { this.tlbProbe(rs1, imm, access, size); return; }
    if (g.leader === k) this.groupCheck(g);
    this.c.get(g.host);
  }
  /**
   * Local `host` of probe group g, and ent and groupVpn for groupRecheck (clobbers va): the
   * host address of x[rs1] + lo when its page is in the table and x[rs1] + hiEnd - 1 in that
   * page, else 0.
   */
  private groupCheck(g: HostGroup): void {
    const c = this.c;
    this.b.getX(g.rs1);
    if (g.lo !== 0) c.i64Const(g.lo).op(Op.I64Add);
    c.set(this.l.va);
    c.get(this.l.tlb);
    this.tlbSlot();
    // the page expected in the entry: x[rs1] + lo's, or NO_VPN when the range crosses a page
    c.get(this.l.va).i64Const(12).op(Op.I64ShrU).i64Const(NO_VPN);
    c.get(this.l.va).i64Const(g.hiEnd - g.lo - 1).op(Op.I64Add).get(this.l.va).op(Op.I64Xor).i64Const(12).op(Op.I64ShrU).op(Op.I64Eqz);
    c.op(Op.Select).set(this.groupVpn);
    this.groupRecheck(g);
  }
  /** Local `host` of probe group g from the TLB entry at ent, when it holds page groupVpn (else 0). */
  private groupRecheck(g: HostGroup): void {
    const c = this.c;
    this.b.getX(g.rs1);
    c.op(Op.I32WrapI64);
    if (g.lo !== 0) c.i32Const(g.lo).op(Op.I32Add);
    c.get(this.l.ent).mem(Op.I32Load, g.access * this.tableBytes + 8, 2).op(Op.I32Add);
    c.i32Const(0);
    c.get(this.l.ent).mem(Op.I64Load, g.access * this.tableBytes, 3).get(this.groupVpn).op(Op.I64Eq);
    c.op(Op.Select).set(g.host);
  }
  /**
   * After the slow path of the access at instruction k, when it leads a probe group: check
   * the entry again, so that a TLB miss the slow path filled sends the others down the fast
   * path (the slow path keeps ent and groupVpn).
   */
  private afterSlow(k: number): void {
    const g = this.groups.get(k);
    if (g?.leader === k) this.groupRecheck(g);
  }
  /**
   * Push the host address of the access at instruction k on its fast path, and return the
   * offset the memory instruction adds to it: x[rs1] + imm's through the TLB entry at ent
   * (tlbProbe), or its probe group's `host` and imm - lo.
   */
  private fastAddr(k: number, imm: number, access: number): number {
    const g = this.groups.get(k);
    if (!g) { this.hostAddr(access); return 0; }
    this.c.get(g.host);
    return imm - g.lo;
  }
  /** Local va = x[rs1] + imm on the slow path of a grouped access (tlbProbe has set it for the others). */
  private slowVa(k: number, rs1: number, imm: number): void {
    if (!this.groups.has(k)) return;
    this.b.getX(rs1);
    if (imm !== 0) this.c.i64Const(imm).op(Op.I64Add);
    this.c.set(this.l.va);
  }
  /** Push the host address of va (fast path), for an entry of table `access`. */
  private hostAddr(access: number): void {
    this.c.get(this.l.va).op(Op.I32WrapI64).get(this.l.ent).mem(Op.I32Load, access * this.tableBytes + 8, 2).op(Op.I32Add);
  }

  /** Load `size` bytes at x[rs1] + imm into local v (`fast` on a TLB hit; `ext` sign-extends the slow path's result). */
  loadToV(ins: BlockInsn, k: number, rs1: number, imm: number, size: number, fast: Op, ext: Op | null): void {
    const c = this.c;
    this.probe(k, rs1, imm, ACC_R, size);
    c.ifHinted(true, I64);
    const offset = this.fastAddr(k, imm, ACC_R);
    c.mem(fast, offset, 0);
    c.op(Op.Else);
    this.slowVa(k, rs1, imm);
    c.get(this.l.va).i32Const(size).call(this.b.loadSlow).set(this.l.v);
    this.b.faultExit(ins, k, 1);
    this.afterSlow(k);
    c.get(this.l.v);
    if (ext !== null) c.op(ext);
    c.end();
    c.set(this.l.v);
  }

  /** Store the low `size` bytes of the i64 that `value` pushes at x[rs1] + imm. */
  store(ins: BlockInsn, k: number, rs1: number, imm: number, size: number, value: () => void): void {
    const c = this.c;
    const fast = size === 1 ? Op.I64Store8 : size === 2 ? Op.I64Store16 : size === 4 ? Op.I64Store32 : Op.I64Store;
    this.probe(k, rs1, imm, ACC_W, size);
    c.ifHinted(true);
    const offset = this.fastAddr(k, imm, ACC_W);
    value();
    c.mem(fast, offset, 0);
    c.op(Op.Else);
    this.slowVa(k, rs1, imm);
    c.get(this.l.va).i32Const(size);
    value();
    c.call(this.b.storeSlow);
    this.b.faultExit(ins, k, 1);
    this.afterSlow(k);
    c.end();
  }
}
