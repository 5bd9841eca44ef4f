/**
 * Kernels and initrds read from files straight into guest RAM when the board loads them
 * (src/machine/board.ts), so that a boot holds no copy of them on the heap.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { BootBlob } from '../machine/boot.js';

/**
 * The file at `path` as a BootBlob: its size is taken now, its bytes are read when the
 * board asks for them.
 * @throws Error from the file system (ENOENT, EACCES, EISDIR) now; one that names the
 *   file when it is shorter than it was (changed while being read) later.
 */
export function fileBlob(path: string): BootBlob {
  const st = statSync(path);
  if (!st.isFile()) throw new Error(`${path}: not a regular file`);
  const size = st.size;
  const readAt = (dst: Uint8Array, position: number) => {
    const fd = openSync(path, 'r');
    try {
      for (let done = 0; done < dst.length;) {
        const n = readSync(fd, dst, done, dst.length - done, position + done);
        if (n === 0) throw new Error(`${path}: shorter than its ${size} bytes (changed while being read)`);
        done += n;
      }
    } finally {
      closeSync(fd);
    }
  };
  return {
    length: size,
    read(offset, n) {
      const b = new Uint8Array(Math.max(0, Math.min(n, size - offset)));
      readAt(b, offset);
      return b;
    },
    copyTo(dst) { readAt(dst.subarray(0, size), 0); },
  };
}

/**
 * `parts` one after the other, each starting at a multiple of `align` bytes from the first
 * (zeros between), as one BootBlob.
 */
export function concatBlobs(parts: readonly BootBlob[], align = 1): BootBlob {
  const starts: number[] = [];
  let length = 0;
  for (const p of parts) {
    length = Math.ceil(length / align) * align;
    starts.push(length);
    length += p.length;
  }
  return {
    length,
    read(offset, n) {
      const out = new Uint8Array(Math.max(0, Math.min(n, length - offset)));
      parts.forEach((p, i) => {
        const from = Math.max(offset, starts[i]), to = Math.min(offset + out.length, starts[i] + p.length);
        if (from < to) out.set(p.read(from - starts[i], to - from), from - offset);
      });
      return out;
    },
    copyTo(dst) {
      let at = 0;
      parts.forEach((p, i) => {
        dst.fill(0, at, starts[i]); // the alignment gap
        p.copyTo(dst.subarray(starts[i]));
        at = starts[i] + p.length;
      });
    },
  };
}
