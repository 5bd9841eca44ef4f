// The "C" standard extension (RVC), unprivileged spec chapter 16 (RV64C):
// every 16-bit instruction is expanded to its 32-bit equivalent, which the
// interpreter then executes. Returns 0 for an illegal or reserved encoding.

@inline function encI(imm: i32, rs1: u32, f3: u32, rd: u32, op: u32): u32 {
  return (<u32>(imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
@inline function encS(imm: i32, rs2: u32, rs1: u32, f3: u32, op: u32): u32 {
  const u = <u32>imm;
  return (((u >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((u & 0x1f) << 7) | op;
}
@inline function encR(f7: u32, rs2: u32, rs1: u32, f3: u32, rd: u32, op: u32): u32 {
  return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
@inline function encB(imm: i32, rs2: u32, rs1: u32, f3: u32): u32 {
  const u = <u32>imm;
  return (((u >> 12) & 1) << 31) | (((u >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12)
    | (((u >> 1) & 0xf) << 8) | (((u >> 11) & 1) << 7) | 0x63;
}
@inline function encJ(imm: i32, rd: u32): u32 {
  const u = <u32>imm;
  return (((u >> 20) & 1) << 31) | (((u >> 1) & 0x3ff) << 21) | (((u >> 11) & 1) << 20)
    | (((u >> 12) & 0xff) << 12) | (rd << 7) | 0x6f;
}
@inline function bits(x: u32, hi: u32, lo: u32): u32 {
  return (x >> lo) & ((1 << (hi - lo + 1)) - 1);
}
@inline function sext(x: u32, width: u32): i32 {
  return (<i32>(x << (32 - width))) >> (32 - width);
}

/** Expand the 16-bit instruction `c` to a 32-bit instruction, or 0 if illegal/reserved. */
export function expandRvc(c: u32): u32 {
  const op = c & 3;
  const f3 = c >> 13;
  const rdp = 8 + bits(c, 4, 2);   // rd' / rs2'
  const rs1p = 8 + bits(c, 9, 7);  // rs1' / rd'
  const rd = bits(c, 11, 7);
  const rs2 = bits(c, 6, 2);
  if (op == 0) {
    switch (f3) {
      case 0: { // C.ADDI4SPN
        const imm = (bits(c, 12, 11) << 4) | (bits(c, 10, 7) << 6) | (bits(c, 6, 6) << 2) | (bits(c, 5, 5) << 3);
        if (imm == 0) return 0;
        return encI(<i32>imm, 2, 0, rdp, 0x13);
      }
      case 1: { // C.FLD
        const imm = (bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6);
        return encI(<i32>imm, rs1p, 3, rdp, 0x07);
      }
      case 2: { // C.LW
        const imm = (bits(c, 12, 10) << 3) | (bits(c, 6, 6) << 2) | (bits(c, 5, 5) << 6);
        return encI(<i32>imm, rs1p, 2, rdp, 0x03);
      }
      case 3: { // C.LD
        const imm = (bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6);
        return encI(<i32>imm, rs1p, 3, rdp, 0x03);
      }
      case 5: { // C.FSD
        const imm = (bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6);
        return encS(<i32>imm, rdp, rs1p, 3, 0x27);
      }
      case 6: { // C.SW
        const imm = (bits(c, 12, 10) << 3) | (bits(c, 6, 6) << 2) | (bits(c, 5, 5) << 6);
        return encS(<i32>imm, rdp, rs1p, 2, 0x23);
      }
      case 7: { // C.SD
        const imm = (bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6);
        return encS(<i32>imm, rdp, rs1p, 3, 0x23);
      }
      default: return 0;
    }
  }
  if (op == 1) {
    const imm6 = sext((bits(c, 12, 12) << 5) | rs2, 6);
    switch (f3) {
      case 0: return encI(imm6, rd, 0, rd, 0x13); // C.ADDI / C.NOP
      case 1: // C.ADDIW
        if (rd == 0) return 0;
        return encI(imm6, rd, 0, rd, 0x1b);
      case 2: return encI(imm6, 0, 0, rd, 0x13); // C.LI
      case 3: {
        if (rd == 2) { // C.ADDI16SP
          const imm = sext((bits(c, 12, 12) << 9) | (bits(c, 6, 6) << 4) | (bits(c, 5, 5) << 6)
            | (bits(c, 4, 3) << 7) | (bits(c, 2, 2) << 5), 10);
          if (imm == 0) return 0;
          return encI(imm, 2, 0, 2, 0x13);
        }
        // C.LUI
        if (imm6 == 0) return 0;
        return (<u32>(imm6 << 12) & 0xfffff000) | (rd << 7) | 0x37;
      }
      case 4: {
        const f2 = bits(c, 11, 10);
        const shamt = (bits(c, 12, 12) << 5) | rs2;
        if (f2 == 0) return encI(<i32>shamt, rs1p, 5, rs1p, 0x13);              // C.SRLI
        if (f2 == 1) return encI(<i32>(shamt | 0x400), rs1p, 5, rs1p, 0x13);    // C.SRAI
        if (f2 == 2) return encI(imm6, rs1p, 7, rs1p, 0x13);                    // C.ANDI
        const f = bits(c, 6, 5);
        if (bits(c, 12, 12) == 0) {
          if (f == 0) return encR(0x20, rdp, rs1p, 0, rs1p, 0x33); // C.SUB
          if (f == 1) return encR(0, rdp, rs1p, 4, rs1p, 0x33);    // C.XOR
          if (f == 2) return encR(0, rdp, rs1p, 6, rs1p, 0x33);    // C.OR
          return encR(0, rdp, rs1p, 7, rs1p, 0x33);                // C.AND
        }
        if (f == 0) return encR(0x20, rdp, rs1p, 0, rs1p, 0x3b);   // C.SUBW
        if (f == 1) return encR(0, rdp, rs1p, 0, rs1p, 0x3b);      // C.ADDW
        return 0;
      }
      case 5: { // C.J
        const imm = sext((bits(c, 12, 12) << 11) | (bits(c, 11, 11) << 4) | (bits(c, 10, 9) << 8)
          | (bits(c, 8, 8) << 10) | (bits(c, 7, 7) << 6) | (bits(c, 6, 6) << 7) | (bits(c, 5, 3) << 1)
          | (bits(c, 2, 2) << 5), 12);
        return encJ(imm, 0);
      }
      default: { // C.BEQZ (6), C.BNEZ (7)
        const imm = sext((bits(c, 12, 12) << 8) | (bits(c, 11, 10) << 3) | (bits(c, 6, 5) << 6)
          | (bits(c, 4, 3) << 1) | (bits(c, 2, 2) << 5), 9);
        return encB(imm, 0, rs1p, f3 == 6 ? 0 : 1);
      }
    }
  }
  if (op == 2) {
    switch (f3) {
      case 0: { // C.SLLI
        const shamt = (bits(c, 12, 12) << 5) | rs2;
        return encI(<i32>shamt, rd, 1, rd, 0x13);
      }
      case 1: { // C.FLDSP
        const imm = (bits(c, 12, 12) << 5) | (bits(c, 6, 5) << 3) | (bits(c, 4, 2) << 6);
        return encI(<i32>imm, 2, 3, rd, 0x07);
      }
      case 2: { // C.LWSP
        if (rd == 0) return 0;
        const imm = (bits(c, 12, 12) << 5) | (bits(c, 6, 4) << 2) | (bits(c, 3, 2) << 6);
        return encI(<i32>imm, 2, 2, rd, 0x03);
      }
      case 3: { // C.LDSP
        if (rd == 0) return 0;
        const imm = (bits(c, 12, 12) << 5) | (bits(c, 6, 5) << 3) | (bits(c, 4, 2) << 6);
        return encI(<i32>imm, 2, 3, rd, 0x03);
      }
      case 4: {
        if (bits(c, 12, 12) == 0) {
          if (rs2 == 0) { // C.JR
            if (rd == 0) return 0;
            return encI(0, rd, 0, 0, 0x67);
          }
          return encR(0, rs2, 0, 0, rd, 0x33); // C.MV
        }
        if (rs2 == 0) {
          if (rd == 0) return 0x00100073; // C.EBREAK
          return encI(0, rd, 0, 1, 0x67); // C.JALR
        }
        return encR(0, rs2, rd, 0, rd, 0x33); // C.ADD
      }
      case 5: { // C.FSDSP
        const imm = (bits(c, 12, 10) << 3) | (bits(c, 9, 7) << 6);
        return encS(<i32>imm, rs2, 2, 3, 0x27);
      }
      case 6: { // C.SWSP
        const imm = (bits(c, 12, 9) << 2) | (bits(c, 8, 7) << 6);
        return encS(<i32>imm, rs2, 2, 2, 0x23);
      }
      default: { // C.SDSP
        const imm = (bits(c, 12, 10) << 3) | (bits(c, 9, 7) << 6);
        return encS(<i32>imm, rs2, 2, 3, 0x23);
      }
    }
  }
  return 0;
}
