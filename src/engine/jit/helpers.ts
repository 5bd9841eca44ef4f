/**
 * Functions every translation module defines: for the M-extension operations wasm has no
 * single instruction for with RISC-V's results (unprivileged spec 20191213 chapter 7: the
 * high halves of products, division by zero and overflow), and for the loads and stores
 * whose page is not in way 0 of its TLB set.
 */
import { Code, Op, ValType } from './wasm.js';

const I64 = ValType.I64, I32 = ValType.I32;

/** The helpers, in the order of their function indices in a module. */
export const HELPER_NAMES = ['mulh', 'mulhsu', 'mulhu', 'div', 'divu', 'rem', 'remu', 'divw', 'divuw', 'remw', 'remuw'] as const;

/** Helper bodies already built, by name and base: every module defines them, mostly at the same base. */
const built = new Map<string, Code>();

/**
 * The body of helper `name`: (a i64, b i64) -> i64, as the interpreter computes it; the
 * helpers start at function index `base`. The same Code for the same arguments: it is
 * not to be written to.
 */
export function helper(name: (typeof HELPER_NAMES)[number], base: number): Code {
  const key = `${name}:${base}`;
  let c = built.get(key);
  if (!c) built.set(key, c = buildHelper(name, base));
  return c;
}

function buildHelper(name: (typeof HELPER_NAMES)[number], base: number): Code {
  const c = new Code([I64, I64]);
  const A = 0, B = 1;
  const MIN = -0x8000000000000000n;
  switch (name) {
    case 'mulhu': {
      // 64x64 -> high 64 bits from 32-bit halves
      const p00 = c.local(I64), p01 = c.local(I64), p10 = c.local(I64), p11 = c.local(I64);
      const lo = (r: number) => c.get(r).i64Const(0xffffffffn).op(Op.I64And);
      const hi = (r: number) => c.get(r).i64Const(32n).op(Op.I64ShrU);
      lo(A); lo(B); c.op(Op.I64Mul).set(p00);
      lo(A); hi(B); c.op(Op.I64Mul).set(p01);
      hi(A); lo(B); c.op(Op.I64Mul).set(p10);
      hi(A); hi(B); c.op(Op.I64Mul).set(p11);
      c.get(p11);
      c.get(p01).i64Const(32n).op(Op.I64ShrU).op(Op.I64Add);
      c.get(p10).i64Const(32n).op(Op.I64ShrU).op(Op.I64Add);
      // mid = (p00 >> 32) + lo(p01) + lo(p10); add mid >> 32
      c.get(p00).i64Const(32n).op(Op.I64ShrU);
      c.get(p01).i64Const(0xffffffffn).op(Op.I64And).op(Op.I64Add);
      c.get(p10).i64Const(0xffffffffn).op(Op.I64And).op(Op.I64Add);
      c.i64Const(32n).op(Op.I64ShrU).op(Op.I64Add);
      return c;
    }
    case 'mulh': case 'mulhsu': {
      const mulhu = base + HELPER_NAMES.indexOf('mulhu');
      c.get(A).get(B).call(mulhu);
      c.get(B).i64Const(0n).get(A).i64Const(0n).op(Op.I64LtS).op(Op.Select).op(Op.I64Sub);
      if (name === 'mulh') c.get(A).i64Const(0n).get(B).i64Const(0n).op(Op.I64LtS).op(Op.Select).op(Op.I64Sub);
      return c;
    }
    case 'div': case 'rem': {
      c.get(B).op(Op.I64Eqz).ifHinted(false);
      if (name === 'div') c.i64Const(-1n); else c.get(A);
      c.op(Op.Return).end();
      c.get(A).i64Const(MIN).op(Op.I64Eq).get(B).i64Const(-1n).op(Op.I64Eq).op(Op.I32And).ifHinted(false);
      if (name === 'div') c.get(A); else c.i64Const(0n);
      c.op(Op.Return).end();
      c.get(A).get(B).op(name === 'div' ? Op.I64DivS : Op.I64RemS);
      return c;
    }
    case 'divu': case 'remu': {
      c.get(B).op(Op.I64Eqz).ifHinted(false);
      if (name === 'divu') c.i64Const(-1n); else c.get(A);
      c.op(Op.Return).end();
      c.get(A).get(B).op(name === 'divu' ? Op.I64DivU : Op.I64RemU);
      return c;
    }
    default: { // divw divuw remw remuw: 32-bit operands, sign-extended 32-bit result
      const a = c.local(I32), b = c.local(I32);
      c.get(A).op(Op.I32WrapI64).set(a).get(B).op(Op.I32WrapI64).set(b);
      const isDiv = name === 'divw' || name === 'divuw';
      c.get(b).op(Op.I32Eqz).ifHinted(false);
      if (isDiv) c.i64Const(-1n); else c.get(a).op(Op.I64ExtendI32S);
      c.op(Op.Return).end();
      if (name === 'divw' || name === 'remw') {
        c.get(a).i32Const(-0x80000000).op(Op.I32Eq).get(b).i32Const(-1).op(Op.I32Eq).op(Op.I32And).ifHinted(false);
        if (name === 'divw') c.get(a).op(Op.I64ExtendI32S); else c.i64Const(0n);
        c.op(Op.Return).end();
      }
      c.get(a).get(b).op(name === 'divw' ? Op.I32DivS : name === 'divuw' ? Op.I32DivU : name === 'remw' ? Op.I32RemS : Op.I32RemU);
      c.op(Op.I64ExtendI32S);
      return c;
    }
  }
}

/**
 * Push the byte offset (i32) in a TLB table of the set of the page of local `va` (i64):
 * vpn mod `tlbSets`, 32 bytes a set (src/engine/as/layout.ts HS_TLB).
 */
export function tlbSetOffset(c: Code, va: number, tlbSets: number): void {
  c.get(va).i64Const(12).op(Op.I64ShrU).op(Op.I32WrapI64).i32Const(tlbSets - 1).op(Op.I32And).i32Const(5).op(Op.I32Shl);
}

/**
 * The body of a TLB probe out of line (mem.ts): (va i64) -> the value (a load of `size`
 * bytes at va, zero-extended), or (va, value i64) -> () for a `store`: the access through
 * way 0 or way 1 of the set of va's page in the table at `table` from the current TLB
 * (global `tlbCur`; src/engine/as/layout.ts HS_TLB) when that way holds the page of the
 * access's last byte, way 1 then swapping with way 0, else through the engine's loadSlow /
 * storeSlow (functions `loadSlow`, `storeSlow`), whose exception the caller checks.
 * Translated code checks way 0 inline first, except for a probe group's member whose
 * group check failed (its own page may be in way 0). The same Code for the same
 * arguments: it is not to be written to.
 */
export function probeHelper(store: boolean, size: number, table: number, tlbCur: number, tlbSets: number, loadSlow: number, storeSlow: number): Code {
  const key = `probe:${+store}:${size}:${table}:${tlbCur}:${tlbSets}:${loadSlow}:${storeSlow}`;
  let c = built.get(key);
  if (!c) built.set(key, c = buildProbeHelper(store, size, table, tlbCur, tlbSets, loadSlow, storeSlow));
  return c;
}

function buildProbeHelper(store: boolean, size: number, table: number, tlbCur: number, tlbSets: number, loadSlow: number, storeSlow: number): Code {
  const VA = 0, VALUE = 1;
  const c = new Code(store ? [I64, I64] : [I64]);
  const SET = c.local(I32), PAGE = c.local(I64), ADDEND = c.local(I32);
  const access = () => {
    c.get(VA).op(Op.I32WrapI64).get(ADDEND).op(Op.I32Add);
    if (!store) {
      c.mem([Op.I64Load8U, Op.I64Load16U, Op.I64Load32U, Op.I64Load][Math.log2(size)], 0, 0).op(Op.Return);
    } else {
      c.get(VALUE).mem([Op.I64Store8, Op.I64Store16, Op.I64Store32, Op.I64Store][Math.log2(size)], 0, 0).op(Op.Return);
    }
  };
  c.globalGet(tlbCur);
  tlbSetOffset(c, VA, tlbSets);
  c.op(Op.I32Add).set(SET);
  // an access that crosses into the next page matches neither way (that page is in the next set)
  c.get(VA).i64Const(size - 1).op(Op.I64Add).i64Const(12).op(Op.I64ShrU).set(PAGE);
  c.get(SET).mem(Op.I64Load, table, 3).get(PAGE).op(Op.I64Eq).ifHinted(true);
  c.get(SET).mem(Op.I32Load, table + 8, 2).set(ADDEND);
  access();
  c.end();
  c.get(SET).mem(Op.I64Load, table + 16, 3).get(PAGE).op(Op.I64Eq).ifHinted(true);
  // the most recently used page goes to way 0 (src/engine/as/layout.ts HS_TLB)
  c.get(SET).mem(Op.I32Load, table + 24, 2).set(ADDEND);
  c.get(SET).get(SET).mem(Op.I64Load, table, 3).mem(Op.I64Store, table + 16, 3);
  c.get(SET).get(SET).mem(Op.I32Load, table + 8, 2).mem(Op.I32Store, table + 24, 2);
  c.get(SET).get(PAGE).mem(Op.I64Store, table, 3);
  c.get(SET).get(ADDEND).mem(Op.I32Store, table + 8, 2);
  access();
  c.end();
  c.get(VA).i32Const(size);
  if (!store) c.call(loadSlow);
  else c.get(VALUE).call(storeSlow);
  return c;
}
