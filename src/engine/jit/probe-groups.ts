/**
 * Probe groups: the loads and stores of a translated block (translate.ts) that share one
 * inline TLB probe. The TLB's layout (per access kind a table of 256 entries {vpn u64,
 * host addend u32}) is src/engine/as/mmu.ts's.
 */
import type { BlockInsn } from './block.js';

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
