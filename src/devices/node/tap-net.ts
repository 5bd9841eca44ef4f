/**
 * A {@link NetBackend} on an existing Linux tap device (`--network tap:IFNAME`), as
 * libvirt and Firecracker attach guests to a bridge the admin set up.
 *
 * The device is opened through `/dev/net/tun` with `TUNSETIFF` (IFF_TAP | IFF_NO_PI:
 * one read or write is one whole Ethernet frame, no extra header; linux
 * Documentation/networking/tuntap.rst), called through `koffi`. Only an existing tap
 * device is attached (TUNSETIFF would otherwise create one); the caller needs
 * CAP_NET_ADMIN, or the device must belong to the caller (`ip tuntap add dev IFNAME mode
 * tap user USER`).
 *
 * Frames are read on a libuv thread-pool thread (a blocking read per frame); a frame the
 * card cannot take yet is held and reading stops until `resume`. Writes go straight to the
 * device (the kernel queues or drops, it does not block).
 */
import { closeSync, existsSync, openSync, read, writeSync } from 'node:fs';
import { libcErrno, libcFunction } from './libc.js';
import type { NetBackend, NetPort } from '../bus.js';
import { ETH_HLEN, MAX_FRAME_BYTES } from '../net/frame.js';

/** `TUNSETIFF` = _IOW('T', 202, int) (linux/if_tun.h). */
const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
/** `struct ifreq` is 40 bytes on 64-bit Linux: ifr_name[IFNAMSIZ = 16], then a union (ifr_flags: short). */
const IFREQ_SIZE = 40;

/** Interface names Linux takes (IFNAMSIZ 16 with the NUL; no '/', ':' or spaces). */
export const TAP_NAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

/** The tap device cannot be used (one line, for the user). */
export class TapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TapError';
  }
}

type Ioctl = (fd: number, req: number, arg: Uint8Array) => number;
let ioctlFn: { ioctl: Ioctl; errno: () => number } | null = null;

/** libc's ioctl (devices/node/libc.ts), loaded on first use. */
function libc(): { ioctl: Ioctl; errno: () => number } {
  if (!ioctlFn) {
    const f = libcFunction('int ioctl(int fd, unsigned long req, _Inout_ uint8_t *arg)');
    ioctlFn = { ioctl: (fd, req, arg) => f(fd, req, arg) as number, errno: libcErrno };
  }
  return ioctlFn;
}

const ERRNO: Record<number, string> = { 1: 'EPERM', 13: 'EACCES', 16: 'EBUSY', 22: 'EINVAL' };

/**
 * Opens the existing tap device `name` and returns its file descriptor.
 * @throws TapError: a bad name, no such tap device, no permission, or busy.
 */
export function openTap(name: string): number {
  if (!TAP_NAME_RE.test(name)) throw new TapError(`tap:${name}: not an interface name (1-15 of A-Z a-z 0-9 _ . -)`);
  if (!existsSync(`/sys/class/net/${name}`)) throw new TapError(`tap:${name}: no such network interface (create it: ip tuntap add dev ${name} mode tap user $USER)`);
  if (!existsSync(`/sys/class/net/${name}/tun_flags`)) throw new TapError(`tap:${name}: not a tap device`);
  let fd: number;
  try {
    fd = openSync('/dev/net/tun', 'r+');
  } catch (e) {
    throw new TapError(`tap:${name}: cannot open /dev/net/tun: ${(e as Error).message}`);
  }
  const ifr = new Uint8Array(IFREQ_SIZE);
  ifr.set(Buffer.from(name, 'ascii'), 0);
  new DataView(ifr.buffer).setInt16(16, IFF_TAP | IFF_NO_PI, true);
  let rc: number;
  let err = 0;
  try {
    const c = libc();
    rc = c.ioctl(fd, TUNSETIFF, ifr);
    if (rc < 0) err = c.errno();
  } catch (e) {
    closeSync(fd);
    throw new TapError(`tap:${name}: cannot call ioctl: ${(e as Error).message}`);
  }
  if (rc < 0) {
    closeSync(fd);
    const code = ERRNO[err] ?? `errno ${err}`;
    throw new TapError(code === 'EPERM' || code === 'EACCES'
      ? `tap:${name}: permission denied (the device must belong to this user, ip tuntap add dev ${name} mode tap user $USER, or the process needs CAP_NET_ADMIN)`
      : code === 'EBUSY' ? `tap:${name}: in use by another process`
        : code === 'EINVAL' ? `tap:${name}: the device is a tun device or has other flags (multi-queue, vnet header); make it with ip tuntap add dev ${name} mode tap`
          : `tap:${name}: TUNSETIFF failed (${code})`);
  }
  return fd;
}

/** Options of {@link TapNetBackend}. */
export interface TapNetOptions {
  /** Reading or writing the device failed (the link is then down). */
  onError?: (message: string) => void;
}

/** Frames to and from a tap device. */
export class TapNetBackend implements NetBackend {
  /** Frames from the device shorter than an Ethernet header, dropped. */
  rxRunt = 0;
  private port: NetPort | null = null;
  private held: Uint8Array | null = null;
  private reading = false;
  private closed = false;
  private readonly buf = Buffer.allocUnsafe(MAX_FRAME_BYTES);

  /** Takes ownership of `fd` (from {@link openTap}). */
  constructor(private readonly fd: number, private readonly options: TapNetOptions = {}) {}

  /** Deliver frames to `port` from now on (a new card after a guest reboot replaces the old one). */
  attach(port: NetPort): void {
    this.port = port;
    this.held = null;
    this.readNext();
  }

  /** One frame to the device. A write that fails (the interface is down) drops the frame. */
  send(frame: Uint8Array): boolean {
    if (this.closed) return true;
    try {
      writeSync(this.fd, frame);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EIO' && code !== 'EAGAIN' && code !== 'ENOBUFS') this.fail(`tap: write: ${(e as Error).message}`);
    }
    return true;
  }

  /** The card has receive buffers again. */
  resume(): void {
    if (this.closed || !this.port) return;
    if (this.held) {
      if (!this.port.receive(this.held)) return;
      this.held = null;
    }
    this.readNext();
  }

  /** Close the device (a read in progress ends with the process or the next frame). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.port = null;
    try { closeSync(this.fd); } catch { /* already closed */ }
  }

  private readNext(): void {
    if (this.reading || this.closed || !this.port || this.held) return;
    this.reading = true;
    read(this.fd, this.buf, 0, this.buf.length, null, (err, n) => {
      this.reading = false;
      if (this.closed) return;
      if (err) {
        // EIO: the interface is down; try again a little later
        if (err.code === 'EIO' || err.code === 'EAGAIN') { setTimeout(() => this.readNext(), 200).unref(); return; }
        this.fail(`tap: read: ${err.message}`);
        return;
      }
      if (n < ETH_HLEN) {
        this.rxRunt++;
      } else if (this.port) {
        const frame = Uint8Array.prototype.slice.call(this.buf, 0, n);
        if (!this.port.receive(frame)) {
          this.held = frame;
          return;
        }
      }
      this.readNext();
    });
  }

  private fail(message: string): void {
    if (this.closed) return;
    this.close();
    this.options.onError?.(message);
  }
}
