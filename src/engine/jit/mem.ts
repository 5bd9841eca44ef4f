/**
 * Translation of loads and stores (RV64I's, and FLW/FLD/FSW/FSD's accesses) for
 * translate.ts, through the TLB (src/engine/as/layout.ts: per access kind a table of
 * TLB_SETS two-way sets of {vpn u64, host addend u32}, way 0 the set's most recently used
 * page): way 0 of the page's set is checked inline, the rest out of line in a function of
 * the module (helpers.ts probeHelper, given the address: way 0 again, way 1, then the
 * engine's loadSlow / storeSlow, which raise the access's exceptions as the interpreter
 * does).
 *
 * Accesses through one unchanged base register within a page share one inline check
 * (probe groups, below): the first of them checks way 0 once for the whole range of
 * offsets, and each then accesses memory at a constant offset from the host address it
 * found. When that check fails (the range straddles a page, or the page is in way 1 or
 * not in the TLB) each access probes on its own out of line, so a straddling group costs
 * a call per access, not a page walk.
 */
import type { BlockInsn } from './block.js';
import { tlbSetOffset } from './helpers.js';
import { type Code, Op, ValType } from './wasm.js';

const I32 = ValType.I32, I64 = ValType.I64;

/** The TLB tables translated code probes for data: loads (read) and stores (write). */
export const ACC_R = 0, ACC_W = 1;

/**
 * A load or store (opcodes LOAD, LOAD-FP, STORE, STORE-FP): its table (ACC_R or ACC_W),
 * size in bytes, and offset from x[rs1]; null for any other instruction.
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
 * Two or more loads (or stores) of a block that share one TLB check: all through the same
 * x[rs1], which no instruction between the first and the last writes, in straight-line
 * code (no forward-branch target of the block between them, nor a CSR or AMO instruction,
 * which the engine runs: a CSR write may drop TLB entries), at offsets within [lo, hiEnd)
 * (at most a page). The first of them (the leader, an instruction index) checks that way 0
 * of the set of x[rs1] + lo's page in table `access` holds the page of x[rs1] + hiEnd - 1
 * (so both are in that one page: a page's entry is only ever in its own set), and keeps
 * the host address of x[rs1] + lo, or 0 when not; each of them then accesses that address
 * + (its offset - lo) when it is not 0, and probes on its own otherwise. (Host address 0
 * is the engine's, never guest RAM.) A member may so use a translation that a TLB fill
 * between (by another access's slow path, after a page-table write without SFENCE.VMA)
 * has replaced, where the interpreter would use the new one: the privileged spec
 * (4.2.1, SFENCE.VMA) lets a hart use either until the guest fences.
 */
export interface ProbeGroup { leader: number; rs1: number; access: number; lo: number; hiEnd: number }

/**
 * The probe groups of a block's instructions `insns`, by member index (the members of a
 * group share its object). `writes[k]`: the x register instruction k writes (0: none);
 * `labels`: indices where other paths join the straight-line code (forward-branch targets).
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
   * After an out-of-line probe: leave through the block's shared fault exit if it raised
   * an exception, at instruction k; `nested`: wasm blocks opened since the instruction began.
   */
  faultExit(ins: BlockInsn, k: number, nested: number): void;
  /** Byte size of one TLB table (the tables of ACC_R, ACC_W and execute follow tlbCur in that order). */
  readonly tlbTableBytes: number;
  /** Function index of the probe helper (helpers.ts probeHelper) of a load or store of `size` bytes. */
  probe(store: boolean, size: number): number;
}

/**
 * Locals the block shares with the emitter: va (i64), ent (i32, a set's address), page
 * (i64), v (i64, a load's value) and tlb (i32, the engine's tlbCur read at entry).
 */
export interface MemLocals { va: number; ent: number; page: number; v: number; tlb: number }

/** Emits the loads and stores of one block (see the file comment). */
export class MemEmitter {
  /** The local holding each probe group's host address (i32). */
  private readonly hosts = new Map<ProbeGroup, number>();

  /** @param groups the block's probe groups, by member index (probeGroups) */
  constructor(private readonly b: MemBlock, private readonly l: MemLocals, private readonly groups: ReadonlyMap<number, ProbeGroup>) {
    for (const g of groups.values()) if (!this.hosts.has(g)) this.hosts.set(g, b.c.local(I32));
  }

  private get c(): Code { return this.b.c; }

  /** Local ent = the TLB base on the stack + the set of local va's page (vpn mod TLB_SETS, 32 bytes each). */
  tlbSlot(): void {
    tlbSetOffset(this.c, this.l.va, this.b.tlbTableBytes / 32);
    this.c.op(Op.I32Add).set(this.l.ent);
  }
  /**
   * Push whether a way of the set at local ent, in table `access`, holds the page of local
   * va (i32), leaving ent at that way (at way 1 when none does).
   */
  tlbMatch(access: number): void {
    const c = this.c;
    const off = access * this.b.tlbTableBytes;
    c.get(this.l.ent).mem(Op.I64Load, off, 3);
    this.lastPage(1);
    c.op(Op.I64Eq).ifHinted(true, I32);
    c.i32Const(1);
    c.op(Op.Else);
    c.get(this.l.ent).i32Const(16).op(Op.I32Add).tee(this.l.ent).mem(Op.I64Load, off, 3);
    this.lastPage(1);
    c.op(Op.I64Eq);
    c.end();
  }
  /** Push the host address of local va through the way at local ent in table `access` (i32). */
  hostAddr(access: number): void {
    this.c.get(this.l.va).op(Op.I32WrapI64).get(this.l.ent).mem(Op.I32Load, access * this.b.tlbTableBytes + 8, 2).op(Op.I32Add);
  }
  /**
   * Push the page number (i64) of the last of `size` bytes at local va: an access that
   * crosses into the next page never matches a way of va's set (that page's are in the next).
   */
  private lastPage(size: number): void {
    const c = this.c;
    c.get(this.l.va);
    if (size > 1) c.i64Const(size - 1).op(Op.I64Add);
    c.i64Const(12).op(Op.I64ShrU);
  }
  /** Local va = x[rs1] + imm, local ent = its set, and local page = the page of its `size`th byte. */
  private locate(rs1: number, imm: number, size: number): void {
    const c = this.c;
    this.b.getX(rs1);
    if (imm !== 0) c.i64Const(imm).op(Op.I64Add);
    c.set(this.l.va);
    c.get(this.l.tlb);
    this.tlbSlot();
    this.lastPage(size);
    c.set(this.l.page);
  }
  /** Push whether way 0 of the set at local ent in table `access` holds local page (i32). */
  private matchWay0(access: number): void {
    this.c.get(this.l.ent).mem(Op.I64Load, access * this.b.tlbTableBytes, 3).get(this.l.page).op(Op.I64Eq);
  }
  /** Local `host` of probe group g: the host address of x[rs1] + lo when way 0 holds all of [lo, hiEnd), else 0 (clobbers va, ent, page). */
  private groupCheck(g: ProbeGroup): void {
    const c = this.c;
    this.locate(g.rs1, g.lo, g.hiEnd - g.lo);
    // select's operands are both computed: way 0's addend is read whether it matched or not
    this.hostAddr(g.access);
    c.i32Const(0);
    this.matchWay0(g.access);
    c.op(Op.Select).set(this.hosts.get(g)!);
  }

  /**
   * The access of instruction k (x[rs1] + imm, `size` bytes, table `access`): `fast`, given
   * the memory instruction's offset, pushes its operands past the address on the stack,
   * and runs it (leaving a value of type `result`, none when undefined); `slow` pushes the
   * probeHelper's first argument, the address, with `va`, and leaves the same. A probe
   * group's leader checks the group first, and again after its own slow path (which may
   * have brought the page to way 0), so that the others then take the fast path.
   */
  private access(ins: BlockInsn, k: number, rs1: number, imm: number, access: number, size: number, result: ValType | undefined,
    fast: (offset: number) => void, slow: (va: () => void) => void): void {
    const c = this.c;
    const g = this.groups.get(k);
    if (!g) {
      this.locate(rs1, imm, size);
      this.matchWay0(access);
      c.ifHinted(true, result);
      this.hostAddr(access);
      fast(0);
      c.op(Op.Else);
      slow(() => c.get(this.l.va));
      c.end();
      return;
    }
    if (g.leader === k) this.groupCheck(g);
    const host = this.hosts.get(g)!;
    c.get(host).ifHinted(true, result);
    c.get(host);
    fast(imm - g.lo);
    c.op(Op.Else);
    slow(() => {
      this.b.getX(rs1);
      if (imm !== 0) c.i64Const(imm).op(Op.I64Add);
    });
    if (g.leader === k) {
      const v = result === undefined ? undefined : this.l.v;
      if (v !== undefined) c.set(v);
      this.groupCheck(g);
      if (v !== undefined) c.get(v);
    }
    c.end();
  }

  /** Load `size` bytes at x[rs1] + imm into local v (`fast` on a TLB hit; `ext` sign-extends the slow path's result). */
  loadToV(ins: BlockInsn, k: number, rs1: number, imm: number, size: number, fast: Op, ext: Op | null): void {
    const c = this.c;
    this.access(ins, k, rs1, imm, ACC_R, size, I64, (offset) => c.mem(fast, offset, 0), (va) => {
      va();
      c.call(this.b.probe(false, size)).set(this.l.v);
      this.b.faultExit(ins, k, 1);
      c.get(this.l.v);
      if (ext !== null) c.op(ext);
    });
    c.set(this.l.v);
  }

  /** Store the low `size` bytes of the i64 that `value` pushes at x[rs1] + imm. */
  store(ins: BlockInsn, k: number, rs1: number, imm: number, size: number, value: () => void): void {
    const c = this.c;
    const op = size === 1 ? Op.I64Store8 : size === 2 ? Op.I64Store16 : size === 4 ? Op.I64Store32 : Op.I64Store;
    this.access(ins, k, rs1, imm, ACC_W, size, undefined, (offset) => {
      value();
      c.mem(op, offset, 0);
    }, (va) => {
      va();
      value();
      c.call(this.b.probe(true, size));
      this.b.faultExit(ins, k, 1);
    });
  }
}
