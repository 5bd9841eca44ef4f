/**
 * Interfaces between device models and the board.
 *
 * Device models import nothing from Node: host I/O goes through the backend
 * interfaces below. Node implementations live in `src/devices/node/`.
 */

/** Width of one MMIO access in bytes. 8-byte guest accesses are split by the engine into two 4-byte accesses (low word first). */
export type MmioWidth = 1 | 2 | 4;

/**
 * A device that occupies a window of guest physical address space.
 * `offset` is relative to the window base (bytes). Values are unsigned and
 * little-endian, at most 32 bits. A read of an unimplemented register returns 0;
 * a write to one is ignored (never throws for guest-chosen offsets).
 */
export interface MmioDevice {
  /** Size of the MMIO window in bytes. */
  readonly size: number;
  /** Read `width` bytes at `offset`; returns the value zero-extended to a non-negative number. */
  read(offset: number, width: MmioWidth): number;
  /** Write the low `width` bytes of `value` at `offset`. */
  write(offset: number, width: MmioWidth, value: number): void;
}

/** A level-triggered interrupt line into the interrupt controller (PLIC source). */
export interface IrqLine {
  /** Drive the line high (`true`) or low (`false`). */
  set(level: boolean): void;
}

/**
 * Something that can save and restore its state (Firecracker's `persist`).
 * The state is plain JSON-serializable data.
 */
export interface Persistable<S> {
  save(): S;
  restore(state: S): void;
}

/** Byte stream to and from the host (console). */
export interface CharBackend {
  /** Send guest output bytes to the host. */
  write(bytes: Uint8Array): void;
  /** Take up to `max` pending input bytes from the host (empty array when none). Non-blocking. */
  read(max: number): Uint8Array;
  /** Number of input bytes waiting. */
  pending(): number;
}

/**
 * A synchronous random-access block store (a raw disk image).
 * Offsets and lengths are in bytes. Errors are thrown as `Error` and are
 * reported to the guest as an I/O error, never crash the VM.
 */
export interface BlockBackend {
  /** Capacity in bytes (a multiple of 512). */
  readonly size: number;
  /** True when the guest must not write. */
  readonly readonly: boolean;
  /** Fill `buf` from byte `offset`. */
  read(buf: Uint8Array, offset: number): void;
  /** Write `buf` at byte `offset`. Throws when readonly. */
  write(buf: Uint8Array, offset: number): void;
  /** `read` into `bufs` one after the other from byte `offset`, in one host call. Optional. */
  readv?(bufs: readonly Uint8Array[], offset: number): void;
  /** `write` of `bufs` one after the other at byte `offset`, in one host call. Optional. Throws when readonly. */
  writev?(bufs: readonly Uint8Array[], offset: number): void;
  /** Make previous writes durable (fsync). */
  flush(): void;
}

/**
 * The device side of a network link, handed to {@link NetBackend.attach} by a NIC model.
 */
export interface NetPort {
  /**
   * One frame from the network (whole Ethernet frame, no FCS). The array is the callee's
   * only during the call (a backend reuses it): a port that keeps the frame, or a view of
   * it, past the call keeps a copy.
   * Returns false when the guest has no room for it now: the backend keeps this frame,
   * delivers nothing more and stops reading its source until {@link NetBackend.resume}.
   */
  receive(frame: Uint8Array): boolean;
  /** The link takes frames again after {@link NetBackend.send} returned false. */
  writable(): void;
}

/**
 * A host network link (a `passt` socket, the host's virtual switch, a tap device):
 * whole Ethernet frames each way, destination MAC first, no FCS, no virtio header.
 * Flow control both ways: the backend stops reading from the network while the guest
 * has no receive buffers, and the device stops taking frames from the guest while the
 * link is congested.
 */
export interface NetBackend {
  /** Start delivering frames to `port` (one port per backend). */
  attach(port: NetPort): void;
  /**
   * Send one frame. The array is the caller's again once this returns (a device reuses
   * it for the next frame): a backend that keeps the frame keeps a copy. Returns false when the link is
   * congested: the frame was taken, but the device should send nothing more until
   * {@link NetPort.writable}.
   */
  send(frame: Uint8Array): boolean;
  /** The guest posted receive buffers: deliver the held frame, then read on. */
  resume(): void;
  /** Close the link (no more calls to the port). */
  close(): void;
}

/** Wall-clock source, in nanoseconds since the Unix epoch (goldfish RTC). */
export interface WallClock {
  nowNs(): bigint;
}
