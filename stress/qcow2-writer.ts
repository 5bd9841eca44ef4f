/**
 * `node dist/stress/qcow2-writer.js IMAGE SEED COUNT FLUSH_EVERY`: write COUNT seeded
 * pseudo-random guest writes ({@link writerOp}) into the disk image IMAGE through
 * tsvisor's own disk layer (openDisk: raw or qcow2), calling flush() after every
 * FLUSH_EVERY writes and then printing `ack N` (N writes are durable) on stdout; `done`
 * at the end. The kill -9 test (test/devices/qcow2-kill.test.ts) SIGKILLs it mid-way and
 * checks the image with qemu-img. Outside test/ because node --test would run it.
 */
import { writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openDisk } from '../src/devices/node/disk.js';

import { xorshift32 as rng } from '../test/e2e/helpers.js';

/**
 * Guest write number `i` of seed `seed` on a disk of `size` bytes: 1 byte to `maxLen`
 * bytes at an unaligned offset, filled with its own pseudo-random bytes. Each write is
 * computed alone, so a checker can rebuild any prefix of the sequence.
 */
export function writerOp(seed: number, i: number, size: number, maxLen = 256 * 1024): { offset: number; data: Uint8Array } {
  const r = rng((seed * 7919 + i * 104729 + 1) >>> 0);
  r(); r();
  const len = 1 + (r() % maxLen);
  const offset = r() % (size - len + 1);
  const data = new Uint8Array(len + 3);
  for (let j = 0; j < len; j += 4) {
    const x = r();
    data[j] = x; data[j + 1] = x >>> 8; data[j + 2] = x >>> 16; data[j + 3] = x >>> 24;
  }
  return { offset, data: data.subarray(0, len) };
}

function main(argv: string[]): number {
  const [image, seedText, countText, flushText] = argv;
  const seed = Number(seedText), count = Number(countText), every = Number(flushText);
  if (!image || !Number.isInteger(seed) || !Number.isInteger(count) || !(every >= 1)) {
    process.stderr.write('usage: qcow2-writer IMAGE SEED COUNT FLUSH_EVERY\n');
    return 2;
  }
  const disk = openDisk(image);
  for (let i = 0; i < count; i++) {
    const op = writerOp(seed, i, disk.size);
    disk.write(op.data, op.offset);
    if ((i + 1) % every === 0) {
      disk.flush();
      writeSync(1, `ack ${i + 1}\n`);
    }
  }
  disk.flush();
  disk.close();
  writeSync(1, 'done\n');
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
