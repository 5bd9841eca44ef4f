/**
 * Functions a translation module defines beside its blocks, those of them that its blocks
 * call: for the M-extension operations wasm has no single instruction for with RISC-V's
 * results (unprivileged spec 20191213 chapter 7: the high halves of products, division by
 * zero and overflow), and for the loads and stores whose page is not in way 0 of its TLB
 * set.
 */
import { Code, ModuleBuilder, Op, ValType } from './wasm.js';

const I64 = ValType.I64, I32 = ValType.I32;

/** The M-extension helpers: OP's funct3 1-7 (MULH to REMU) at f3 - 1, OP-32's funct3 4-7 (DIVW to REMUW) at 7 + f3 - 4. */
export const HELPER_NAMES = ['mulh', 'mulhsu', 'mulhu', 'div', 'divu', 'rem', 'remu', 'divw', 'divuw', 'remw', 'remuw'] as const;
export type HelperName = (typeof HELPER_NAMES)[number];

/** Helper bodies already built, by name and the function indices they call: modules define them again and again. */
const built = new Map<string, Code>();

/**
 * The body of helper `name`: (a i64, b i64) -> i64, as the interpreter computes it;
 * `mulhu`: the function index of helper mulhu (which mulh and mulhsu call; ignored by the
 * others). The same Code for the same arguments: it is not to be written to.
 */
export function helper(name: HelperName, mulhu: number): Code {
  const key = name === 'mulh' || name === 'mulhsu' ? `${name}:${mulhu}` : name;
  let c = built.get(key);
  if (!c) built.set(key, c = buildHelper(name, mulhu));
  return c;
}

/**
 * An engine function that translated code calls through a table (a translation module's
 * table 0, "env" "envTable", see translate.ts ENV_TABLE_FUNCTIONS) rather than as an
 * import of its own: V8 11 compiles, with every module, a JS-call wrapper for each distinct
 * signature among the module's imported functions (whatever they are bound to at
 * instantiation), about 40 µs a signature. Calling the six signatures that were imported
 * besides the blocks' own through the table made the compiler thread's time in a boot
 * 0.89x and 0.93x (paired medians of 10 and 12 alternating boots, less in 15 of 22), the
 * guest's clock 1.03x and 0.98x and the process's CPU 0.99x and 0.98x (no change beyond
 * the noise). `slot`: its index in the table; `type`: the index of its signature among
 * the module's types.
 */
export interface EnvCall { readonly slot: number; readonly type: number }

/** Emit a call of `f`, its arguments on the stack: `call_indirect`, or with `tail` `return_call_indirect`. */
export function callEnv(c: Code, f: EnvCall, tail = false): void {
  c.i32Const(f.slot);
  if (tail) c.returnCallIndirect(f.type);
  else c.callIndirect(f.type);
}

/**
 * The probe helpers' arguments that are the same for every probe of a module (see
 * probeHelper): the byte size of a TLB table, the global index of `tlbCur`, and how to call
 * `loadSlow` and `storeSlow`.
 */
export interface ProbeSetup { tlbTableBytes: number; tlbCur: number; loadSlow: EnvCall; storeSlow: EnvCall }

/**
 * The helpers of one module: a helper gets a function index the first time a block asks for
 * it, after the blocks' and every earlier helper's (so `first` is the index just after the
 * module's last block), and `define` declares and defines those asked for, in that order,
 * once the blocks are written. A module defines only the helpers its blocks call: most
 * call none, and a module is validated and compiled function by function.
 */
export class ModuleHelpers {
  private readonly order: Array<() => Code> = [];
  private readonly types: Array<[readonly ValType[], readonly ValType[]]> = [];
  private readonly byKey = new Map<string, number>();

  constructor(private readonly first: number, private readonly probes: ProbeSetup) {}

  /** Function index of M-extension helper `name`: (a i64, b i64) -> i64. */
  m(name: HelperName): number {
    return this.ask(name, [I64, I64], [I64], () => helper(name, name === 'mulh' || name === 'mulhsu' ? this.m('mulhu') : 0));
  }

  /** Function index of the probe helper (probeHelper; the write TLB table follows the read one, mem.ts ACC_R and ACC_W) of a load ((va i64) -> i64) or store ((va i64, value i64) -> ()) of `size` (1, 2, 4 or 8) bytes. */
  probe(store: boolean, size: number): number {
    const p = this.probes;
    return this.ask(`probe:${+store}:${size}`, store ? [I64, I64] : [I64], store ? [] : [I64],
      () => probeHelper(store, size, (store ? 1 : 0) * p.tlbTableBytes, p.tlbCur, p.tlbTableBytes / 32, p.loadSlow, p.storeSlow));
  }

  /** Declare and define the helpers asked for in `m`, whose next declared function must get index `first`. Throws when it does not. */
  define(m: ModuleBuilder): void {
    // a body may ask for another helper (mulh: mulhu), which joins the end of the list
    for (let i = 0; i < this.order.length; i++) {
      const [params, results] = this.types[i];
      const f = m.declareFunction(params, results);
      if (f !== this.first + i) throw new Error(`helper declared at function ${f}, not ${this.first + i}`);
      m.setBody(f, this.order[i]());
    }
  }

  private ask(key: string, params: readonly ValType[], results: readonly ValType[], body: () => Code): number {
    let k = this.byKey.get(key);
    if (k === undefined) {
      k = this.order.length;
      this.byKey.set(key, k);
      this.order.push(body);
      this.types.push([params, results]);
    }
    return this.first + k;
  }
}

function buildHelper(name: HelperName, mulhu: number): Code {
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
 * storeSlow (through the table, see EnvCall), whose exception the caller checks.
 * Translated code checks way 0 inline first, except for a probe group's member whose
 * group check failed (its own page may be in way 0). The same Code for the same
 * arguments: it is not to be written to.
 */
export function probeHelper(store: boolean, size: number, table: number, tlbCur: number, tlbSets: number, loadSlow: EnvCall, storeSlow: EnvCall): Code {
  const key = `probe:${+store}:${size}:${table}:${tlbCur}:${tlbSets}:${loadSlow.slot}:${loadSlow.type}:${storeSlow.slot}:${storeSlow.type}`;
  let c = built.get(key);
  if (!c) built.set(key, c = buildProbeHelper(store, size, table, tlbCur, tlbSets, loadSlow, storeSlow));
  return c;
}

function buildProbeHelper(store: boolean, size: number, table: number, tlbCur: number, tlbSets: number, loadSlow: EnvCall, storeSlow: EnvCall): Code {
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
  if (!store) callEnv(c, loadSlow);
  else callEnv(c.get(VALUE), storeSlow);
  return c;
}
