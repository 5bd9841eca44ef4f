/**
 * The chain trampoline of one hart: a function translated code tail-calls where it leaves
 * for a target it cannot reach directly (a JALR, or a jump or branch to another page, or to
 * a block translated in no module it imports). It looks the target up in the hart's
 * current jump cache (src/engine/as/jit.ts) and, when a translation is there and the cache
 * is valid, tail-calls it through the hart's function table; otherwise it sets the engine's
 * pc and returns the budget to the dispatcher, which counts the target or fills the cache.
 *
 * It is a module of its own, instantiated once per hart, because only instances that
 * import the function table can call through it, and V8 updates every importing instance on
 * each table write: translation modules do not import the table.
 *
 * The cache is valid when the dispatcher entered translated code with the current jump
 * cache and its generation (HS_CHAIN_JC, HS_CHAIN_GEN, written then) and the code epoch
 * has not moved since the hart caught up with it (HS_JIT_SEEN). Imports nothing from Node.
 */
import { CODE_EPOCH, HS_CHAIN_GEN, HS_CHAIN_JC, HS_JIT_SEEN, HS_RELINK, JC_COUNTING, JC_ENTRIES, RELINK_SLOTS } from '../layout.js';
import { Code, ModuleBuilder, Op, ValType } from './wasm.js';

/**
 * The trampoline module of the hart whose state block is at linear address `hartBase`:
 * imports "env" "pc" (the engine's pc, mutable i64), "env" "memory" (shared) and "env"
 * "table" (the hart's function table); exports "chain": (budget i32, target pc i64) -> i32,
 * of the translated blocks' type, and "chainStatic": (budget i32, target pc i64, entry pc
 * i64, host i32) -> i32, the same for a jump whose target the block knew when it was
 * translated (translate.ts), which also records, when the target has a translation, the
 * jumping block's host address and the pc it was entered at in the hart's relink ring
 * (HS_RELINK: the code cache translates that block's page again, linked to the target).
 */
export function chainModule(hartBase: number): Uint8Array {
  const I32 = ValType.I32, I64 = ValType.I64;
  const m = new ModuleBuilder();
  const G_PC = m.importGlobal('env', 'pc', I64, true);
  m.importMemory('env', 'memory', 1, 65536, true);
  m.importTable('env', 'table', 1);
  const blockType = m.type([I32, I64], [I32]);
  const chain = m.declareFunction([I32, I64], [I32]);
  m.setBody(chain, trampoline(hartBase, [I32, I64], blockType, G_PC, false));
  m.exportFunction('chain', chain);
  const chainStatic = m.declareFunction([I32, I64, I64, I32], [I32]);
  m.setBody(chainStatic, trampoline(hartBase, [I32, I64, I64, I32], blockType, G_PC, true));
  m.exportFunction('chainStatic', chainStatic);
  return m.toBytes();
}

/** The body of "chain" (params budget, target pc) or, if `record`, of "chainStatic" (params budget, target pc, entry pc, host). */
function trampoline(hartBase: number, params: ValType[], blockType: number, G_PC: number, record: boolean): Code {
  const c = new Code(params);
  const N = 0, PC = 1, ENTRY = 2, HOST = 3;
  const e = c.local(ValType.I32);
  c.begin(Op.Block);
  // the dispatcher left the jump cache to use (0: none), and the code epoch has not moved
  c.i32Const(0).mem(Op.I32Load, hartBase + HS_CHAIN_JC, 2).tee(e).op(Op.I32Eqz).brIf(0);
  c.i32Const(0).i32AtomicLoad(CODE_EPOCH).i32Const(0).mem(Op.I32Load, hartBase + HS_JIT_SEEN, 2).op(Op.I32Ne).brIf(0);
  // the entry of the target: ((pc >> 1) ^ (pc >> 13)) mod JC_ENTRIES, 16 bytes each
  c.get(e);
  c.get(PC).i64Const(1n).op(Op.I64ShrU).op(Op.I32WrapI64);
  c.get(PC).i64Const(13n).op(Op.I64ShrU).op(Op.I32WrapI64).op(Op.I32Xor);
  c.i32Const(JC_ENTRIES - 1).op(Op.I32And).i32Const(4).op(Op.I32Shl).op(Op.I32Add).set(e);
  c.get(e).mem(Op.I64Load, 0, 3).get(PC).op(Op.I64Ne).brIf(0);
  c.get(e).mem(Op.I32Load, 12, 2).i32Const(0).mem(Op.I32Load, hartBase + HS_CHAIN_GEN, 2).op(Op.I32Ne).brIf(0);
  c.get(e).mem(Op.I32Load, 8, 2).tee(e).i32Const(JC_COUNTING | 0).op(Op.I32And).brIf(0);
  if (record) {
    // slot (count mod RELINK_SLOTS) of the ring gets {entry pc, host}; the count goes on
    const n = c.local(ValType.I32), slot = c.local(ValType.I32);
    c.i32Const(0).mem(Op.I32Load, hartBase + HS_RELINK, 2).tee(n);
    c.i32Const(RELINK_SLOTS - 1).op(Op.I32And).i32Const(4).op(Op.I32Shl).tee(slot).get(ENTRY).mem(Op.I64Store, hartBase + HS_RELINK + 16, 3);
    c.get(slot).get(HOST).mem(Op.I32Store, hartBase + HS_RELINK + 24, 2);
    c.i32Const(0).get(n).i32Const(1).op(Op.I32Add).mem(Op.I32Store, hartBase + HS_RELINK, 2);
  }
  c.get(N).get(PC).get(e).returnCallIndirect(blockType);
  c.end();
  c.get(PC).globalSet(G_PC).get(N);
  return c;
}
