/**
 * A small writer of WebAssembly binary modules (WebAssembly Core Specification 2.0,
 * chapter 5 "Binary Format", plus the tail-call proposal's `return_call`): just what the
 * JIT emits. Imports nothing from Node.
 */

/** Value types (spec 5.3.1). */
export const enum ValType { I32 = 0x7f, I64 = 0x7e, F32 = 0x7d, F64 = 0x7c }

/** Instruction opcodes the JIT uses (spec 5.4). */
export const enum Op {
  Unreachable = 0x00, Block = 0x02, Loop = 0x03, If = 0x04, Else = 0x05, End = 0x0b,
  Br = 0x0c, BrIf = 0x0d, Return = 0x0f, Call = 0x10, ReturnCall = 0x12,
  Drop = 0x1a, Select = 0x1b,
  LocalGet = 0x20, LocalSet = 0x21, LocalTee = 0x22, GlobalGet = 0x23, GlobalSet = 0x24,
  I32Load = 0x28, I64Load = 0x29, F32Load = 0x2a, F64Load = 0x2b,
  I32Load8S = 0x2c, I32Load8U = 0x2d, I32Load16S = 0x2e, I32Load16U = 0x2f,
  I64Load8S = 0x30, I64Load8U = 0x31, I64Load16S = 0x32, I64Load16U = 0x33, I64Load32S = 0x34, I64Load32U = 0x35,
  I32Store = 0x36, I64Store = 0x37, F32Store = 0x38, F64Store = 0x39, I32Store8 = 0x3a, I32Store16 = 0x3b,
  I64Store8 = 0x3c, I64Store16 = 0x3d, I64Store32 = 0x3e,
  I32Const = 0x41, I64Const = 0x42,
  I32Eqz = 0x45, I32Eq = 0x46, I32Ne = 0x47, I32LtS = 0x48, I32LtU = 0x49, I32GtS = 0x4a, I32GtU = 0x4b,
  I32LeS = 0x4c, I32LeU = 0x4d, I32GeS = 0x4e, I32GeU = 0x4f,
  I64Eqz = 0x50, I64Eq = 0x51, I64Ne = 0x52, I64LtS = 0x53, I64LtU = 0x54, I64GtS = 0x55, I64GtU = 0x56,
  I64LeS = 0x57, I64LeU = 0x58, I64GeS = 0x59, I64GeU = 0x5a,
  F32Eq = 0x5b, F32Ne = 0x5c, F32Lt = 0x5d, F32Gt = 0x5e, F32Le = 0x5f, F32Ge = 0x60,
  F64Eq = 0x61, F64Ne = 0x62, F64Lt = 0x63, F64Gt = 0x64, F64Le = 0x65, F64Ge = 0x66,
  I32Add = 0x6a, I32Sub = 0x6b, I32Mul = 0x6c, I32DivS = 0x6d, I32DivU = 0x6e, I32RemS = 0x6f, I32RemU = 0x70,
  I32And = 0x71, I32Or = 0x72, I32Xor = 0x73, I32Shl = 0x74, I32ShrS = 0x75, I32ShrU = 0x76,
  I64Clz = 0x79, I64Ctz = 0x7a,
  I64Add = 0x7c, I64Sub = 0x7d, I64Mul = 0x7e, I64DivS = 0x7f, I64DivU = 0x80, I64RemS = 0x81, I64RemU = 0x82,
  I64And = 0x83, I64Or = 0x84, I64Xor = 0x85, I64Shl = 0x86, I64ShrS = 0x87, I64ShrU = 0x88,
  F64Abs = 0x99, F64Neg = 0x9a, F64Ceil = 0x9b, F64Floor = 0x9c, F64Trunc = 0x9d, F64Nearest = 0x9e, F64Sqrt = 0x9f,
  F64Add = 0xa0, F64Sub = 0xa1, F64Mul = 0xa2, F64Div = 0xa3, F64Min = 0xa4, F64Max = 0xa5,
  I32WrapI64 = 0xa7, I32TruncF64S = 0xaa, I32TruncF64U = 0xab, I64ExtendI32S = 0xac, I64ExtendI32U = 0xad,
  I64TruncF64S = 0xb0, I64TruncF64U = 0xb1, F32DemoteF64 = 0xb6,
  F64ConvertI32S = 0xb7, F64ConvertI32U = 0xb8, F64ConvertI64S = 0xb9, F64ConvertI64U = 0xba, F64PromoteF32 = 0xbb,
  I32ReinterpretF32 = 0xbc, I64ReinterpretF64 = 0xbd, F32ReinterpretI32 = 0xbe, F64ReinterpretI64 = 0xbf,
  I64Extend8S = 0xc2, I64Extend16S = 0xc3, I64Extend32S = 0xc4,
}

/** Kinds of imports and exports (spec 5.5.5, 5.5.10). */
export const enum ExternKind { Func = 0, Table = 1, Memory = 2, Global = 3 }

const F64_BYTES = new Uint8Array(8);
const F64_VIEW = new DataView(F64_BYTES.buffer);

/** A growable byte buffer with the binary format's integer encodings. */
export class Bytes {
  private buf: Uint8Array;
  length = 0;
  /** @param capacity bytes allocated at first (it grows as needed). */
  constructor(capacity = 256) { this.buf = new Uint8Array(capacity); }
  private grow(need: number): void {
    const n = new Uint8Array(Math.max(this.buf.length * 2, need));
    n.set(this.buf.subarray(0, this.length));
    this.buf = n;
  }
  /** Append one byte (0..255). */
  byte(b: number): this {
    if (this.length === this.buf.length) this.grow(this.length + 1);
    this.buf[this.length++] = b;
    return this;
  }
  /** Append raw bytes: an array's, or what another Bytes holds. */
  bytes(src: ArrayLike<number> | Bytes): this {
    const data = src instanceof Bytes ? src.view() : src;
    if (this.length + data.length > this.buf.length) this.grow(this.length + data.length);
    if (data instanceof Uint8Array) this.buf.set(data, this.length);
    else for (let i = 0; i < data.length; i++) this.buf[this.length + i] = data[i];
    this.length += data.length;
    return this;
  }
  /** Unsigned LEB128 of a non-negative integer below 2^53 (spec 5.2.2). */
  u32(v: number): this {
    if (v < 0x80) return this.byte(v);
    do {
      let b = v % 128;
      v = Math.floor(v / 128);
      if (v !== 0) b |= 0x80;
      this.byte(b);
    } while (v !== 0);
    return this;
  }
  /** Signed LEB128 of an integer that fits in 32 bits. */
  s32(v: number): this { return this.s64(v | 0); }
  /**
   * Signed LEB128 of a 64-bit integer: a bigint (taken modulo 2^64 as signed) or a safe
   * integer (a number, encoded without bigint arithmetic).
   */
  s64(v: bigint | number): this {
    if (typeof v === 'number') {
      if (v >= -64 && v < 64 && Number.isInteger(v)) return this.byte(v & 0x7f);
      if (!Number.isSafeInteger(v)) throw new RangeError(`s64: ${v} is not a safe integer`);
      for (;;) {
        const b = ((v % 128) + 128) % 128;
        v = Math.floor(v / 128);
        const done = (v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0);
        this.byte(done ? b : b | 0x80);
        if (done) return this;
      }
    }
    v = BigInt.asIntN(64, v);
    for (;;) {
      const b = Number(v & 0x7fn);
      v >>= 7n;
      const done = (v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0);
      this.byte(done ? b : b | 0x80);
      if (done) return this;
    }
  }
  /** A name: length-prefixed UTF-8 (ASCII here). */
  name(s: string): this {
    this.u32(s.length);
    for (let i = 0; i < s.length; i++) this.byte(s.charCodeAt(i));
    return this;
  }
  /** The bytes written so far, without a copy: valid until the next write. */
  view(): Uint8Array { return this.buf.subarray(0, this.length); }
  /** A copy of the bytes written so far. */
  toBytes(): Uint8Array { return this.buf.slice(0, this.length); }
}

/** The body of one function: locals and an instruction stream (spec 5.5.13). */
export class Code extends Bytes {
  private readonly locals: ValType[] = [];
  /** Branch hints (branch-hinting proposal): [offset in the instruction stream, 1 likely taken / 0 not]. */
  private readonly hintsAt: Array<[number, number]> = [];
  /** The local declarations, encoded (declarations()); null until asked for, or after a new local. */
  private decl: Uint8Array | null = null;
  /** @param params the function's parameter types (locals 0..n-1). */
  constructor(private readonly params: readonly ValType[]) { super(2048); }
  /** Declare a new local of type `t`; returns its index. */
  local(t: ValType): number {
    this.locals.push(t);
    this.decl = null;
    return this.params.length + this.locals.length - 1;
  }
  op(o: Op): this { return this.byte(o); }
  i32Const(v: number): this { return this.byte(Op.I32Const).s32(v); }
  /** `i64.const` of a bigint (modulo 2^64) or a safe integer. */
  i64Const(v: bigint | number): this { return this.byte(Op.I64Const).s64(v); }
  /** `f64.const` of `v` (its IEEE 754 binary64 bits, little-endian). */
  f64Const(v: number): this {
    F64_VIEW.setFloat64(0, v, true);
    return this.byte(0x44).bytes(F64_BYTES);
  }
  get(i: number): this { return this.byte(Op.LocalGet).u32(i); }
  set(i: number): this { return this.byte(Op.LocalSet).u32(i); }
  tee(i: number): this { return this.byte(Op.LocalTee).u32(i); }
  globalGet(i: number): this { return this.byte(Op.GlobalGet).u32(i); }
  globalSet(i: number): this { return this.byte(Op.GlobalSet).u32(i); }
  /** A load or store with alignment hint log2(`align`) and constant `offset` (bytes, < 2^32). */
  mem(o: Op, offset: number, align = 0): this { return this.byte(o).u32(align).u32(offset); }
  call(f: number): this { return this.byte(Op.Call).u32(f); }
  /** `atomic.fence` (threads proposal): a sequentially consistent fence. */
  atomicFence(): this { return this.byte(0xfe).byte(0x03).byte(0x00); }
  returnCall(f: number): this { return this.byte(Op.ReturnCall).u32(f); }
  /** `call_indirect` of function type `type` through table `table` (the i32 index on the stack). */
  callIndirect(type: number, table = 0): this { return this.byte(0x11).u32(type).u32(table); }
  /** `return_call_indirect` (tail-call proposal, opcode 0x13) of function type `type` through table `table`. */
  returnCallIndirect(type: number, table = 0): this { return this.byte(0x13).u32(type).u32(table); }
  /** `i32.atomic.load` (threads proposal) with constant `offset`. */
  i32AtomicLoad(offset: number): this { return this.byte(0xfe).byte(0x10).u32(2).u32(offset); }

  /** `block`/`loop`/`if` with an empty result type, or one result of type `result`. */
  begin(o: Op.Block | Op.Loop | Op.If, result?: ValType): this { return this.byte(o).byte(result ?? 0x40); }
  /** `if` whose condition is likely true (`likely`) or likely false, as a branch hint for the engine's optimizing compiler. */
  ifHinted(likely: boolean, result?: ValType): this {
    this.hintsAt.push([this.length, likely ? 1 : 0]);
    return this.begin(Op.If, result);
  }
  end(): this { return this.byte(Op.End); }
  br(depth: number): this { return this.byte(Op.Br).u32(depth); }
  brIf(depth: number): this { return this.byte(Op.BrIf).u32(depth); }
  /** `br_table` (spec 5.4.1): branch to `labels[i]` for the i32 i on the stack, to `otherwise` when it is out of range. */
  brTable(labels: readonly number[], otherwise: number): this {
    this.byte(0x0e).u32(labels.length);
    for (const l of labels) this.u32(l);
    return this.u32(otherwise);
  }
  /** `br_if` likely taken (`likely`) or not, as a branch hint. */
  brIfHinted(depth: number, likely: boolean): this {
    this.hintsAt.push([this.length, likely ? 1 : 0]);
    return this.brIf(depth);
  }
  /** The branch hints as [offset from the start of the function body (its local declarations), value]. */
  hints(): Array<[number, number]> {
    const declBytes = this.declarations().length;
    // built by push: a packed array, as toBytes' optimized code expects (map's may be holey)
    const out: Array<[number, number]> = [];
    for (const [at, v] of this.hintsAt) out.push([declBytes + at, v]);
    return out;
  }
  /** The local declarations (run-length encoded, spec 5.5.13), encoded once for bodyBytes(), writeBody() and hints(). */
  private declarations(): Uint8Array {
    if (this.decl) return this.decl;
    const runs: number[] = []; // count, type, count, type...
    for (const t of this.locals) {
      if (runs.length && runs[runs.length - 1] === t) runs[runs.length - 2]++;
      else runs.push(1, t);
    }
    const d = new Bytes(4 + 3 * runs.length).u32(runs.length / 2);
    for (let i = 0; i < runs.length; i += 2) d.u32(runs[i]).byte(runs[i + 1]);
    return this.decl = d.view();
  }
  /** Write the encoded body to `out`, size-prefixed: local declarations, then the code and a final `end`. */
  writeBody(out: Bytes): void {
    const decl = this.declarations();
    out.u32(decl.length + this.length + 1).bytes(decl).bytes(this).byte(Op.End);
  }
  /** Bytes writeBody() writes. */
  bodyBytes(): number {
    const size = this.declarations().length + this.length + 1;
    return leb128Bytes(size) + size;
  }
}

/** Bytes of the unsigned LEB128 encoding of `v` (a non-negative integer). */
function leb128Bytes(v: number): number {
  let n = 1;
  while (v >= 0x80) { v = Math.floor(v / 128); n++; }
  return n;
}

interface FuncType { params: readonly ValType[]; results: readonly ValType[] }

type Import =
  | { module: string; name: string; kind: ExternKind.Func; type: number }
  | { module: string; name: string; kind: ExternKind.Global; type: ValType; mutable: boolean }
  | { module: string; name: string; kind: ExternKind.Memory; min: number; max: number; shared: boolean }
  | { module: string; name: string; kind: ExternKind.Table; min: number };

/**
 * Builds one module. Function indices count imported functions first, then the functions
 * added with `addFunction`, in order (spec 2.5.1); global indices count imported globals.
 */
export class ModuleBuilder {
  private readonly types: FuncType[] = [];
  private readonly imports: Import[] = [];
  private readonly funcs: Array<{ type: number; code: Code | null }> = [];
  private readonly exports: Array<{ name: string; kind: ExternKind; index: number }> = [];
  private importedFuncs = 0;
  private importedGlobals = 0;

  /** Index of the function type (params) -> (results), added when new. */
  type(params: readonly ValType[], results: readonly ValType[]): number {
    const i = this.types.findIndex((t) => same(t.params, params) && same(t.results, results));
    if (i >= 0) return i;
    this.types.push({ params, results });
    return this.types.length - 1;
  }
  /** Import a function; returns its function index. Must precede `addFunction`. */
  importFunction(module: string, name: string, params: readonly ValType[], results: readonly ValType[]): number {
    if (this.funcs.length) throw new Error('imports must precede defined functions');
    this.imports.push({ module, name, kind: ExternKind.Func, type: this.type(params, results) });
    return this.importedFuncs++;
  }
  /** Import a global; returns its global index. */
  importGlobal(module: string, name: string, type: ValType, mutable: boolean): number {
    this.imports.push({ module, name, kind: ExternKind.Global, type, mutable });
    return this.importedGlobals++;
  }
  /** Import a table of funcref with at least `min` elements (and no maximum). */
  importTable(module: string, name: string, min: number): void {
    this.imports.push({ module, name, kind: ExternKind.Table, min });
  }
  /** Import a memory of `min`..`max` 64 KiB pages. */
  importMemory(module: string, name: string, min: number, max: number, shared: boolean): void {
    this.imports.push({ module, name, kind: ExternKind.Memory, min, max, shared });
  }
  /**
   * Declare a function of type (params) -> (results); returns its index. Its body may be
   * given later with `setBody`, so that functions can call each other in any order.
   */
  declareFunction(params: readonly ValType[], results: readonly ValType[]): number {
    this.funcs.push({ type: this.type(params, results), code: null });
    return this.importedFuncs + this.funcs.length - 1;
  }
  /** Give declared function `index` its body. */
  setBody(index: number, code: Code): void { this.funcs[index - this.importedFuncs].code = code; }
  /** Export function `index` as `name`. */
  exportFunction(name: string, index: number): void { this.exports.push({ name, kind: ExternKind.Func, index }); }

  /** The module's bytes. Throws if a declared function has no body. */
  toBytes(): Uint8Array {
    const codes = this.funcs.map((f, i) => {
      if (!f.code) throw new Error(`function ${this.importedFuncs + i} has no body`);
      return f.code;
    });
    const codeBytes = leb128Bytes(codes.length) + codes.reduce((n, c) => n + c.bodyBytes(), 0);
    // the other sections are a few KiB at most
    const out = new Bytes(codeBytes + 8192).bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    const section = (id: number, fill: (b: Bytes) => void) => {
      const b = new Bytes();
      fill(b);
      out.byte(id).u32(b.length).bytes(b);
    };
    section(1, (b) => {
      b.u32(this.types.length);
      for (const t of this.types) {
        b.byte(0x60).u32(t.params.length).bytes(t.params).u32(t.results.length).bytes(t.results);
      }
    });
    if (this.imports.length) {
      section(2, (b) => {
        b.u32(this.imports.length);
        for (const im of this.imports) {
          b.name(im.module).name(im.name).byte(im.kind);
          if (im.kind === ExternKind.Func) b.u32(im.type);
          else if (im.kind === ExternKind.Global) b.byte(im.type).byte(im.mutable ? 1 : 0);
          else if (im.kind === ExternKind.Table) b.byte(0x70).byte(0).u32(im.min);
          else b.byte(im.shared ? 3 : 1).u32(im.min).u32(im.max);
        }
      });
    }
    section(3, (b) => {
      b.u32(this.funcs.length);
      for (const f of this.funcs) b.u32(f.type);
    });
    if (this.exports.length) {
      section(7, (b) => {
        b.u32(this.exports.length);
        for (const e of this.exports) b.name(e.name).byte(e.kind).u32(e.index);
      });
    }
    // branch hints (custom section "metadata.code.branch_hint", before the code section)
    const hinted: Array<[number, Array<[number, number]>]> = [];
    codes.forEach((c, i) => { const h = c.hints(); if (h.length) hinted.push([this.importedFuncs + i, h]); });
    if (hinted.length) {
      section(0, (b) => {
        b.name('metadata.code.branch_hint').u32(hinted.length);
        for (const [idx, hs] of hinted) {
          b.u32(idx).u32(hs.length);
          for (const [at, v] of hs) b.u32(at).u32(1).byte(v);
        }
      });
    }
    // the code section, written in place: its size is known
    out.byte(10).u32(codeBytes).u32(codes.length);
    for (const c of codes) c.writeBody(out);
    return out.toBytes();
  }
}

function same(a: readonly ValType[], b: readonly ValType[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}
