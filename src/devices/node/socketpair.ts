/**
 * A connected pair of Unix stream sockets with large buffers, for a network link to a
 * child process (passt's `--fd`).
 *
 * Why not Node's own `stdio: 'pipe'` socket pair: its sockets keep the kernel's default
 * buffer (`net.core.wmem_default`, 208 KiB), and passt, which sends up to a guest's TCP
 * window (megabytes) in one burst and drops the frames its socket refuses, then loses
 * TCP segments whenever the VM process reads a moment late. passt enlarges the buffers of
 * the sockets it makes itself (`--socket`, as under QEMU), not of one it is given; this
 * does the same for the pair we give it: SO_SNDBUF and SO_RCVBUF as large as
 * `net.core.wmem_max` / `rmem_max` allow (socket(7)).
 *
 * libc's socketpair(2), setsockopt(2) and getsockopt(2) are called through `koffi`
 * (libc.ts). The constants are Linux's generic ones (x86-64, arm64, riscv64).
 */
import { libcErrno, libcFunction } from './libc.js';

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;

interface Libc {
  socketpair(domain: number, type: number, protocol: number, sv: Int32Array): number;
  setsockopt(fd: number, level: number, name: number, value: Int32Array, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Int32Array, len: Uint32Array): number;
  errno(): number;
}

let libcFns: Libc | null = null;

/** libc's socketpair, setsockopt and getsockopt (devices/node/libc.ts), loaded on first use. */
function libc(): Libc {
  if (!libcFns) {
    const sp = libcFunction('int socketpair(int domain, int type, int protocol, _Out_ int32_t *sv)');
    const so = libcFunction('int setsockopt(int fd, int level, int optname, const int32_t *optval, uint32_t optlen)');
    const go = libcFunction('int getsockopt(int fd, int level, int optname, _Out_ int32_t *optval, _Inout_ uint32_t *optlen)');
    libcFns = {
      socketpair: (d, t, p, sv) => sp(d, t, p, sv) as number,
      setsockopt: (fd, l, n, v, len) => so(fd, l, n, v, len) as number,
      getsockopt: (fd, l, n, v, len) => go(fd, l, n, v, len) as number,
      errno: libcErrno,
    };
  }
  return libcFns;
}

/**
 * Make a connected AF_UNIX stream socket pair (both ends close-on-exec; a child gets one
 * through `spawn`'s stdio, which dup2s it) and ask for `bufferBytes` of send and receive
 * buffer on both ends; the kernel grants at most `net.core.wmem_max` / `rmem_max`
 * (doubled, for its bookkeeping).
 * @param bufferBytes the buffer asked for (bytes, positive; default 2^31 - 1: the most allowed)
 * @returns the two file descriptors, owned by the caller.
 * @throws Error when koffi cannot be loaded or socketpair(2) fails (with its errno).
 */
export function unixStreamPair(bufferBytes = 0x7fffffff): [number, number] {
  const c = libc();
  const sv = new Int32Array(2);
  if (c.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) !== 0) {
    throw new Error(`socketpair failed (errno ${c.errno()})`);
  }
  const size = new Int32Array([Math.max(1, Math.min(bufferBytes, 0x7fffffff))]);
  for (const fd of sv) {
    // a smaller buffer than asked is no error: the kernel caps it at the sysctl maximum
    c.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, size, 4);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size, 4);
  }
  return [sv[0], sv[1]];
}

/**
 * The send and receive buffer sizes the kernel gave socket `fd` (bytes, SO_SNDBUF and
 * SO_RCVBUF as getsockopt(2) reports them).
 * @throws Error when koffi cannot be loaded or getsockopt(2) fails (with its errno).
 */
export function socketBufferBytes(fd: number): { send: number; receive: number } {
  const c = libc();
  const read = (name: number) => {
    const v = new Int32Array(1);
    if (c.getsockopt(fd, SOL_SOCKET, name, v, new Uint32Array([4])) !== 0) throw new Error(`getsockopt failed (errno ${c.errno()})`);
    return v[0];
  };
  return { send: read(SO_SNDBUF), receive: read(SO_RCVBUF) };
}
