/**
 * The MMIO a hart's own thread serves, without a round trip to the VM's device
 * thread (which costs tens of microseconds: the device thread wakes through its event
 * loop). An interrupt taken by Linux reads the PLIC claim register twice, reads and
 * acknowledges the virtio-mmio InterruptStatus and completes at the PLIC; a transmit
 * writes QueueNotify. Served here:
 *
 *   - every PLIC register: its state is shared by all threads (devices/plic.ts);
 *   - virtio-mmio InterruptStatus (read) and InterruptACK (write), 4 bytes wide: the
 *     word is shared with the transport (VirtioMmioOptions.interruptStatus);
 *   - every other write to a device window (virtio QueueNotify, the UART's transmit
 *     register, ...) is *posted*: the hart queues it for the device thread and goes on,
 *     as a PCI posted write does. A write has no answer, and one inside a device window
 *     cannot fault, so the guest cannot tell, except by timing: the device thread applies
 *     the posted writes of all harts in the order they were posted, and before any later
 *     request of any hart (src/vmm/smp.ts), so a read that follows a write sees its effect.
 *
 * Reads of other registers go to the device thread and the hart waits for the answer;
 * so do writes outside every device window (they fault).
 */
import { type HartSignals, SIP_SEIP } from '../engine/hart-state.js';
import { Plic } from '../devices/plic.js';
import type { IrqLine } from '../devices/bus.js';
import { VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INTERRUPT_STATUS } from '../devices/virtio/mmio.js';

/** The shared MMIO state of a board, for its harts' threads (structured-clonable). */
export interface HartMmioLayout {
  /** Guest physical base and size of the PLIC window, in bytes. */
  plicBase: number;
  plicSize: number;
  /** PLIC shape (source IDs including 0, contexts) and its shared state (Plic.buffer). */
  plicSources: number;
  plicContexts: number;
  plicBuffer: SharedArrayBuffer;
  /** The virtio-mmio windows in use: base and size in bytes, PLIC source, index of its InterruptStatus word. */
  virtio: { base: number; size: number; irq: number; isr: number }[];
  /** The InterruptStatus words (Int32), one per virtio-mmio slot. */
  isrBuffer: SharedArrayBuffer;
  /** Every device window (base and size in bytes): writes there are posted. */
  windows: { base: number; size: number }[];
}

/** How a write was routed by {@link HartMmio.write}. */
export enum WriteRoute {
  /** Served on this thread. */
  Done = 0,
  /** Send it to the device thread; no answer is needed (it cannot fault). */
  Post = 1,
  /** Send it to the device thread and wait for the answer. */
  Remote = 2,
}

/**
 * The PLIC callback of the `virt` board: context 2*hart+1 (S-mode) drives the hart's
 * `sip.SEIP`; the M-mode contexts drive nothing (the hypervisor is the M-mode).
 */
export function sExternalInterrupts(signals: HartSignals[]): (ctx: number, level: boolean) => void {
  return (ctx, level) => {
    if (ctx % 2 === 1) signals[(ctx - 1) / 2]?.setPending(SIP_SEIP, level);
  };
}

/** The hart-thread side of {@link HartMmioLayout}: see the module comment. */
export class HartMmio {
  private readonly plic: Plic;
  private readonly plicBase: number;
  private readonly plicEnd: number;
  private readonly isr: Int32Array;
  private readonly virtio: { base: number; end: number; isr: number; line: IrqLine }[];
  private readonly windows: { base: number; end: number }[];

  /**
   * @param layout from Board.hartMmioLayout().
   * @param signals every hart's signals (the PLIC raises `sip.SEIP` from this thread too).
   * @throws RangeError if the layout's buffers do not fit its shapes.
   */
  constructor(layout: HartMmioLayout, signals: HartSignals[]) {
    this.plic = Plic.attach(layout.plicSources, layout.plicContexts, layout.plicBuffer, sExternalInterrupts(signals));
    this.plicBase = layout.plicBase;
    this.plicEnd = layout.plicBase + layout.plicSize;
    this.isr = new Int32Array(layout.isrBuffer);
    this.virtio = layout.virtio.map((v) => {
      if (v.isr < 0 || v.isr >= this.isr.length) throw new RangeError(`virtio interrupt status word ${v.isr} out of range`);
      return { base: v.base, end: v.base + v.size, isr: v.isr, line: this.plic.wordLine(v.irq, this.isr, v.isr) };
    });
    this.windows = layout.windows.map((w) => ({ base: w.base, end: w.base + w.size }));
  }

  /** A read served here (the value), or undefined when the device thread must serve it. */
  read(pa: number, size: number): number | undefined {
    if (pa >= this.plicBase && pa + size <= this.plicEnd) return this.plic.read(pa - this.plicBase, size as 1 | 2 | 4);
    if (size !== 4) return undefined;
    for (const v of this.virtio) {
      if (pa - v.base === VIRTIO_MMIO_INTERRUPT_STATUS) return Atomics.load(this.isr, v.isr) >>> 0;
    }
    return undefined;
  }

  /** Serve a write here, or say where it must go (see {@link WriteRoute}). */
  write(pa: number, size: number, value: number): WriteRoute {
    if (pa >= this.plicBase && pa + size <= this.plicEnd) {
      this.plic.write(pa - this.plicBase, size as 1 | 2 | 4, value);
      return WriteRoute.Done;
    }
    if (size === 4) {
      for (const v of this.virtio) {
        if (pa - v.base === VIRTIO_MMIO_INTERRUPT_ACK) {
          Atomics.and(this.isr, v.isr, ~value);
          v.line.set(false); // the line reads the word under the PLIC's lock
          return WriteRoute.Done;
        }
      }
    }
    for (const w of this.windows) if (pa >= w.base && pa + size <= w.end) return WriteRoute.Post;
    return WriteRoute.Remote;
  }
}
