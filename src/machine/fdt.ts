/**
 * Flattened device tree (DTB) writer, Devicetree Specification v0.4 chapter 5.
 * Blocks are emitted in the standard order: header, memory reservation map,
 * structure block, strings block.
 */

/** A property value: a string, a list of strings, u32 cells, raw bytes, or empty (boolean property). */
export type FdtValue = string | string[] | number[] | Uint8Array | null;

/** A node of the tree under construction. */
export class FdtNode {
  readonly name: string;
  readonly props: Array<[string, FdtValue]> = [];
  readonly children: FdtNode[] = [];
  constructor(name: string) { this.name = name; }
  /** Set a property; numbers are 32-bit big-endian cells. Returns this for chaining. */
  prop(name: string, value: FdtValue): this {
    this.props.push([name, value]);
    return this;
  }
  /** Add and return a child node. */
  child(name: string): FdtNode {
    const n = new FdtNode(name);
    this.children.push(n);
    return n;
  }
}

/** Split a 64-bit quantity (number < 2^53) into two u32 cells (high, low). */
export function cells64(v: number): number[] {
  return [Math.floor(v / 0x1_0000_0000) >>> 0, v >>> 0];
}

const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_END = 9;

function encodeValue(v: FdtValue): Uint8Array {
  const te = new TextEncoder();
  if (v === null) return new Uint8Array(0);
  if (typeof v === 'string') return te.encode(v + '\0');
  if (v instanceof Uint8Array) return v;
  if (v.length > 0 && typeof v[0] === 'string') return te.encode((v as string[]).join('\0') + '\0');
  const cells = v as number[];
  const out = new Uint8Array(cells.length * 4);
  const dv = new DataView(out.buffer);
  cells.forEach((c, i) => dv.setUint32(i * 4, c >>> 0));
  return out;
}

/**
 * Serialise `root` into a DTB (version 17, last compatible 16). `bootCpu` is the boot
 * hart id. `freeBytes` of zeroes follow the strings block inside `totalsize` (as
 * `dtc -p`): room for a boot loader to add properties in place (§5.1: the blob may have
 * free space after its blocks).
 */
export function buildFdt(root: FdtNode, bootCpu = 0, freeBytes = 0): Uint8Array {
  const struct: number[] = [];
  const strings: number[] = [];
  const stringOffsets = new Map<string, number>();
  const te = new TextEncoder();
  const u32 = (v: number) => { struct.push((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255); };
  const bytes = (b: Uint8Array) => { for (const x of b) struct.push(x); while (struct.length % 4) struct.push(0); };
  const strOff = (s: string): number => {
    let off = stringOffsets.get(s);
    if (off === undefined) {
      off = strings.length;
      stringOffsets.set(s, off);
      for (const x of te.encode(s)) strings.push(x);
      strings.push(0);
    }
    return off;
  };
  const emit = (n: FdtNode) => {
    u32(FDT_BEGIN_NODE);
    bytes(te.encode(n.name + '\0'));
    for (const [name, value] of n.props) {
      const data = encodeValue(value);
      u32(FDT_PROP);
      u32(data.length);
      u32(strOff(name));
      bytes(data);
    }
    for (const c of n.children) emit(c);
    u32(FDT_END_NODE);
  };
  emit(root);
  u32(FDT_END);

  const headerSize = 40;
  const rsvmapOff = headerSize;
  const rsvmapSize = 16; // one terminating entry
  const structOff = rsvmapOff + rsvmapSize;
  const stringsOff = structOff + struct.length;
  const total = stringsOff + strings.length;
  const out = new Uint8Array((total + freeBytes + 7) & ~7);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, FDT_MAGIC);
  dv.setUint32(4, out.length);
  dv.setUint32(8, structOff);
  dv.setUint32(12, stringsOff);
  dv.setUint32(16, rsvmapOff);
  dv.setUint32(20, 17);
  dv.setUint32(24, 16);
  dv.setUint32(28, bootCpu);
  dv.setUint32(32, strings.length);
  dv.setUint32(36, struct.length);
  out.set(struct, structOff);
  out.set(strings, stringsOff);
  return out;
}
