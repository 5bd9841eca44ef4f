/**
 * NS16550A UART, as QEMU's `virt` board exposes it (`compatible = "ns16550a"`,
 * `reg-shift = <0>`, one byte per register, window 0x100 bytes).
 *
 * References: TI/National "PC16550D UART with FIFOs" datasheet (register
 * summary, table 9 "Interrupt Control Functions"); Linux
 * `drivers/tty/serial/8250/8250_port.c` (what the 8250 driver expects, e.g. the
 * THRE re-assertion test in `serial8250_do_startup`).
 *
 * Transmission is instantaneous: a THR write goes straight to the backend, so
 * THR and the transmitter are always empty again by the time the guest looks
 * (LSR.THRE = LSR.TEMT = 1). Reception comes from a {@link CharBackend} through
 * {@link Uart16550.poll}, which the board calls periodically.
 */
import type { CharBackend, IrqLine, MmioDevice, MmioWidth, Persistable } from './bus.js';

/** Register offsets (reg-shift 0). */
export const UART_RBR_THR_DLL = 0;
export const UART_IER_DLM = 1;
export const UART_IIR_FCR = 2;
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;

// IER bits
const IER_ERBFI = 0x01; // received data available
const IER_ETBEI = 0x02; // transmitter holding register empty
const IER_ELSI = 0x04; // receiver line status
const IER_EDSSI = 0x08; // modem status

// IIR values
const IIR_NO_INT = 0x01;
const IIR_MSI = 0x00;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_RLSI = 0x06;
const IIR_CTI = 0x0c; // character timeout
const IIR_FIFO_ENABLED = 0xc0;

// FCR bits
const FCR_FE = 0x01;
const FCR_RFR = 0x02;
const FCR_STORED = 0xc9; // FE, DMA mode select, trigger level

// LCR
const LCR_DLAB = 0x80;

// MCR bits
const MCR_DTR = 0x01;
const MCR_RTS = 0x02;
const MCR_OUT1 = 0x04;
const MCR_OUT2 = 0x08;
const MCR_LOOP = 0x10;

// LSR bits
const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const LSR_ERRORS = 0x1e; // OE, PE, FE, BI

// MSR bits
const MSR_DCTS = 0x01;
const MSR_DDSR = 0x02;
const MSR_TERI = 0x04;
const MSR_DDCD = 0x08;
const MSR_CTS = 0x10;
const MSR_DSR = 0x20;
const MSR_RI = 0x40;
const MSR_DCD = 0x80;

/** Receive trigger levels selected by FCR bits 7:6 (datasheet, FCR description). */
const RX_TRIGGER = [1, 4, 8, 14];

/** Saved state of a {@link Uart16550} (plain JSON). */
export interface Uart16550State {
  ier: number;
  lcr: number;
  mcr: number;
  fcr: number;
  scr: number;
  dll: number;
  dlm: number;
  /** LSR error bits (OE, PE, FE, BI) waiting to be read. */
  lsrErrors: number;
  /** MSR delta bits (3:0) waiting to be read. */
  msrDelta: number;
  /** Upper MSR bits as last computed (to derive deltas in loopback mode). */
  msrLines: number;
  /** THRE interrupt pending (cleared by reading IIR or writing THR). */
  thrIpending: boolean;
  /** Receive FIFO contents, oldest first. */
  rx: number[];
}

/** Options for {@link Uart16550}. */
export interface Uart16550Options {
  /** Receive FIFO capacity in bytes when FIFOs are enabled (default 16, as on a real 16550A; at least 16). */
  rxFifoSize?: number;
}

/**
 * NS16550A UART (PC16550D datasheet register set).
 *
 * Board duties: map it at 0x1000_0000 with `size` 0x100, wire `irq` to a PLIC
 * source (QEMU virt uses source 10), and call {@link poll} periodically (and
 * whenever the CharBackend gets input) to move host input into the receive FIFO.
 */
export class Uart16550 implements MmioDevice, Persistable<Uart16550State> {
  readonly size = 0x100;

  private ier = 0;
  private lcr = 0;
  private mcr = MCR_OUT2;
  private fcr = 0;
  private scr = 0;
  private dll = 0x0c; // 9600 baud at 1.8432 MHz, a conventional reset value
  private dlm = 0;
  private lsrErrors = 0;
  private msrDelta = 0;
  private msrLines = MSR_DCD | MSR_DSR | MSR_CTS;
  private thrIpending = false;
  private readonly rxFifo: Uint8Array;
  private rxHead = 0;
  private rxCount = 0;
  private irqLevel = false;

  /**
   * @param backend host side of the serial line: THR writes go to `backend.write`,
   *   input is taken with `backend.read` by {@link poll}.
   * @param irq level-triggered interrupt output (high while IIR reports an interrupt).
   * @param options FIFO size; throws RangeError if `rxFifoSize` < 16.
   */
  constructor(private readonly backend: CharBackend, private readonly irq: IrqLine, options: Uart16550Options = {}) {
    const n = options.rxFifoSize ?? 16;
    if (!Number.isInteger(n) || n < 16) throw new RangeError(`rxFifoSize must be an integer >= 16, got ${n}`);
    this.rxFifo = new Uint8Array(n);
  }

  /** Current level of the interrupt output. */
  get irqAsserted(): boolean {
    return this.irqLevel;
  }

  /**
   * Pull pending host input into the receive FIFO while it has room, then update
   * the interrupt line. Non-blocking; cheap when there is no input. In loopback
   * mode (MCR.LOOP) the serial input is disconnected and nothing is pulled.
   */
  poll(): void {
    this.refill();
    this.updateIrq();
  }

  /** MMIO read (datasheet table 2, register summary). Any width reads the byte register at `offset`. */
  read(offset: number, _width: MmioWidth): number {
    switch (offset) {
      case UART_RBR_THR_DLL:
        if (this.lcr & LCR_DLAB) return this.dll;
        return this.readRbr();
      case UART_IER_DLM:
        if (this.lcr & LCR_DLAB) return this.dlm;
        return this.ier;
      case UART_IIR_FCR: {
        const iir = this.iir();
        // Reading IIR while it reports THRE clears that source (datasheet table 9).
        if ((iir & 0x0f) === IIR_THRI) {
          this.thrIpending = false;
          this.updateIrq();
        }
        return iir;
      }
      case UART_LCR:
        return this.lcr;
      case UART_MCR:
        return this.mcr;
      case UART_LSR: {
        const v = this.lsr();
        if (this.lsrErrors) {
          this.lsrErrors = 0; // error bits clear on read
          this.updateIrq();
        }
        return v;
      }
      case UART_MSR: {
        const v = this.msrLines | this.msrDelta;
        if (this.msrDelta) {
          this.msrDelta = 0;
          this.updateIrq();
        }
        return v;
      }
      case UART_SCR:
        return this.scr;
      default:
        return 0;
    }
  }

  /** MMIO write (datasheet table 2). Any width writes the low byte to the byte register at `offset`. */
  write(offset: number, _width: MmioWidth, value: number): void {
    const v = value & 0xff;
    switch (offset) {
      case UART_RBR_THR_DLL:
        if (this.lcr & LCR_DLAB) {
          this.dll = v;
        } else {
          this.writeThr(v);
        }
        break;
      case UART_IER_DLM:
        if (this.lcr & LCR_DLAB) {
          this.dlm = v;
        } else {
          const old = this.ier;
          this.ier = v & 0x0f;
          // Enabling ETBEI while THR is empty (re-)raises the THRE interrupt, as on
          // real 16550s; Linux's serial8250_do_startup tests exactly this.
          if ((old ^ this.ier) & IER_ETBEI) this.thrIpending = (this.ier & IER_ETBEI) !== 0;
          this.updateIrq();
        }
        break;
      case UART_IIR_FCR: {
        // Changing the FIFO enable bit resets both FIFOs.
        let f = v;
        if ((f ^ this.fcr) & FCR_FE) f |= FCR_RFR;
        if (f & FCR_RFR) {
          this.rxHead = 0;
          this.rxCount = 0;
        }
        this.fcr = f & FCR_STORED;
        if (!(this.fcr & FCR_FE)) this.fcr = 0;
        this.refill();
        this.updateIrq();
        break;
      }
      case UART_LCR:
        this.lcr = v;
        break;
      case UART_MCR: {
        const wasLoop = (this.mcr & MCR_LOOP) !== 0;
        this.mcr = v & 0x1f;
        this.updateModemLines();
        if (wasLoop && !(this.mcr & MCR_LOOP)) this.refill();
        this.updateIrq();
        break;
      }
      case UART_SCR:
        this.scr = v;
        break;
      default:
        // LSR and MSR are read-only (factory test writes ignored); others unimplemented.
        break;
    }
  }

  /** Serializable state (see {@link Uart16550State}). */
  save(): Uart16550State {
    const rx: number[] = [];
    for (let i = 0; i < this.rxCount; i++) rx.push(this.rxFifo[(this.rxHead + i) % this.rxFifo.length]);
    return {
      ier: this.ier, lcr: this.lcr, mcr: this.mcr, fcr: this.fcr, scr: this.scr,
      dll: this.dll, dlm: this.dlm, lsrErrors: this.lsrErrors, msrDelta: this.msrDelta,
      msrLines: this.msrLines, thrIpending: this.thrIpending, rx,
    };
  }

  /** Restore a state from {@link save}; drives the IRQ line to the restored level. Throws RangeError if the saved FIFO does not fit. */
  restore(s: Uart16550State): void {
    if (s.rx.length > this.rxFifo.length) throw new RangeError('saved receive FIFO larger than this UART\'s FIFO');
    this.ier = s.ier & 0x0f;
    this.lcr = s.lcr & 0xff;
    this.mcr = s.mcr & 0x1f;
    this.fcr = s.fcr & FCR_STORED;
    this.scr = s.scr & 0xff;
    this.dll = s.dll & 0xff;
    this.dlm = s.dlm & 0xff;
    this.lsrErrors = s.lsrErrors & LSR_ERRORS;
    this.msrDelta = s.msrDelta & 0x0f;
    this.msrLines = s.msrLines & 0xf0;
    this.thrIpending = !!s.thrIpending;
    this.rxHead = 0;
    this.rxCount = s.rx.length;
    for (let i = 0; i < s.rx.length; i++) this.rxFifo[i] = s.rx[i] & 0xff;
    this.irqLevel = this.computeIrq();
    this.irq.set(this.irqLevel);
  }

  // ---- internals ----

  private get fifoEnabled(): boolean {
    return (this.fcr & FCR_FE) !== 0;
  }

  /** Effective receive capacity: the whole FIFO in FIFO mode, one holding register in 16450 mode. */
  private get rxCapacity(): number {
    return this.fifoEnabled ? this.rxFifo.length : 1;
  }

  private get loopback(): boolean {
    return (this.mcr & MCR_LOOP) !== 0;
  }

  private refill(): void {
    if (this.loopback) return;
    let room = this.rxCapacity - this.rxCount;
    while (room > 0 && this.backend.pending() > 0) {
      const bytes = this.backend.read(room);
      if (bytes.length === 0) break;
      for (let i = 0; i < bytes.length && room > 0; i++, room--) this.pushRx(bytes[i]);
    }
  }

  private pushRx(b: number): boolean {
    if (this.rxCount >= this.rxCapacity) {
      this.lsrErrors |= LSR_OE;
      return false;
    }
    this.rxFifo[(this.rxHead + this.rxCount) % this.rxFifo.length] = b;
    this.rxCount++;
    return true;
  }

  private readRbr(): number {
    if (this.rxCount === 0) {
      return 0;
    }
    const b = this.rxFifo[this.rxHead];
    this.rxHead = (this.rxHead + 1) % this.rxFifo.length;
    this.rxCount--;
    this.refill();
    this.updateIrq();
    return b;
  }

  private writeThr(v: number): void {
    this.thrIpending = false;
    if (this.loopback) {
      this.pushRx(v);
    } else {
      this.backend.write(Uint8Array.of(v));
    }
    // Transmission is instantaneous: THR is empty again, which raises THRE.
    this.thrIpending = true;
    this.updateIrq();
  }

  private lsr(): number {
    let v = LSR_THRE | LSR_TEMT | this.lsrErrors;
    if (this.rxCount > 0) v |= LSR_DR;
    return v;
  }

  private iir(): number {
    const fifo = this.fifoEnabled ? IIR_FIFO_ENABLED : 0;
    return fifo | this.interruptId();
  }

  /** Highest-priority pending interrupt (datasheet table 9): RLS > RDA/timeout > THRE > modem status. */
  private interruptId(): number {
    if ((this.ier & IER_ELSI) && (this.lsrErrors & LSR_ERRORS)) return IIR_RLSI;
    if ((this.ier & IER_ERBFI) && this.rxCount > 0) {
      if (!this.fifoEnabled) return IIR_RDI;
      // Below the trigger level the real chip raises a character timeout after
      // 4 character times; with no notion of character time we raise it at once.
      return this.rxCount >= RX_TRIGGER[this.fcr >> 6] ? IIR_RDI : IIR_CTI;
    }
    if ((this.ier & IER_ETBEI) && this.thrIpending) return IIR_THRI;
    if ((this.ier & IER_EDSSI) && this.msrDelta) return IIR_MSI;
    return IIR_NO_INT;
  }

  private computeIrq(): boolean {
    return this.interruptId() !== IIR_NO_INT;
  }

  private updateIrq(): void {
    const level = this.computeIrq();
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }

  /** Recompute MSR bits 7:4; in loopback they mirror MCR (CTS=RTS, DSR=DTR, RI=OUT1, DCD=OUT2). */
  private updateModemLines(): void {
    let lines: number;
    if (this.loopback) {
      lines = 0;
      if (this.mcr & MCR_RTS) lines |= MSR_CTS;
      if (this.mcr & MCR_DTR) lines |= MSR_DSR;
      if (this.mcr & MCR_OUT1) lines |= MSR_RI;
      if (this.mcr & MCR_OUT2) lines |= MSR_DCD;
    } else {
      lines = MSR_DCD | MSR_DSR | MSR_CTS; // a connected, ready line
    }
    const changed = lines ^ this.msrLines;
    if (changed & MSR_CTS) this.msrDelta |= MSR_DCTS;
    if (changed & MSR_DSR) this.msrDelta |= MSR_DDSR;
    if (changed & MSR_DCD) this.msrDelta |= MSR_DDCD;
    if ((changed & MSR_RI) && !(lines & MSR_RI)) this.msrDelta |= MSR_TERI; // trailing edge
    this.msrLines = lines;
  }
}
