/**
 * The VM process's malloc tuning (src/vmm/host-malloc.ts): after tuneMalloc(), memory freed
 * at the top of the main arena stays with the process (the heap's end does not move back),
 * where glibc's defaults return it to the kernel. Each case runs in a fresh Node process,
 * which calls malloc and free through koffi.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const HOST_MALLOC = fileURLToPath(new URL('../../src/vmm/host-malloc.js', import.meta.url));

/**
 * In a child process: tuneMalloc() when `tune`, then 40 blocks of 96 KiB (below glibc's
 * mmap threshold: from the main arena's heap) allocated and freed; returns the bytes the
 * heap's end (sbrk(0)) moved down across the frees, and tuneMalloc's result.
 */
function heapShrinkAfterFree(tune: boolean): { shrink: number; tuned: boolean | null } {
  const script = `
    import { createRequire } from 'node:module';
    import { tuneMalloc } from ${JSON.stringify(HOST_MALLOC)};
    const tuned = ${tune} ? tuneMalloc() : null;
    const libc = createRequire(import.meta.url)('koffi').load('libc.so.6');
    const malloc = libc.func('void *malloc(size_t size)');
    const free = libc.func('void free(void *p)');
    const sbrk = libc.func('intptr_t sbrk(intptr_t increment)');
    const blocks = [];
    for (let i = 0; i < 40; i++) blocks.push(malloc(96 * 1024));
    const before = Number(sbrk(0));
    for (const b of blocks.reverse()) free(b);
    const after = Number(sbrk(0));
    console.log(JSON.stringify({ shrink: before - after, tuned }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('../../..', import.meta.url)) });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as { shrink: number; tuned: boolean | null };
}

test('untuned, glibc returns the freed top of the heap to the kernel', () => {
  const { shrink } = heapShrinkAfterFree(false);
  assert.ok(shrink >= 2 * 1024 * 1024, `the heap's end moved down by ${shrink} bytes`);
});

test('after tuneMalloc(), the freed top of the heap stays with the process', () => {
  const { shrink, tuned } = heapShrinkAfterFree(true);
  assert.equal(tuned, true);
  assert.equal(shrink, 0);
});
