/**
 * SiFive test finisher ("sifive,test1", "sifive,test0", "syscon"), the device
 * QEMU `virt` places at 0x10_0000 (window 0x1000). Linux reaches it through the
 * `syscon-poweroff` (writes 0x5555 to offset 0) and `syscon-reboot` (writes
 * 0x7777) device-tree nodes (Documentation/devicetree/bindings/power/reset/
 * syscon-poweroff.yaml, syscon-reboot.yaml); test programs write
 * `0x3333 | (code << 16)` to fail with an exit code.
 *
 * Register at offset 0 (write-only, reads 0): bits 15:0 = command, bits 31:16 =
 * exit code for FAIL. Unknown commands are ignored.
 */
import type { MmioDevice, MmioWidth, Persistable } from './bus.js';

export const SYSCON_FAIL = 0x3333;
export const SYSCON_PASS = 0x5555;
export const SYSCON_RESET = 0x7777;

/** What the guest asked the board to do. `fail.code` is the 16-bit code the guest gave. */
export type PowerEvent = { kind: 'poweroff' } | { kind: 'reset' } | { kind: 'fail'; code: number };

/** The test/poweroff/reboot device. Stateless: save() returns `{}`. */
export class Syscon implements MmioDevice, Persistable<Record<string, never>> {
  readonly size = 0x1000;

  /** @param onPower called synchronously from the MMIO write that requested the event. */
  constructor(private readonly onPower: (event: PowerEvent) => void) {}

  /** All registers read as 0. */
  read(_offset: number, _width: MmioWidth): number {
    return 0;
  }

  /** A 2- or 4-byte write at offset 0 issues a command (see above); other writes are ignored. */
  write(offset: number, width: MmioWidth, value: number): void {
    if (offset !== 0 || width === 1) return;
    const v = value >>> 0;
    switch (v & 0xffff) {
      case SYSCON_PASS:
        this.onPower({ kind: 'poweroff' });
        break;
      case SYSCON_RESET:
        this.onPower({ kind: 'reset' });
        break;
      case SYSCON_FAIL:
        this.onPower({ kind: 'fail', code: width === 4 ? v >>> 16 : 0 });
        break;
    }
  }

  /** No state: returns `{}`. */
  save(): Record<string, never> {
    return {};
  }

  /** No state to restore. */
  restore(_state: Record<string, never>): void {}
}
