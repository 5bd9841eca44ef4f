/**
 * The Node flags of a process that runs a VM (a VM process under the daemon, `tsvisor run`,
 * the VM that builds the Debian image). Imports nothing: `bin/tsvisor.js` reads it before
 * anything else is loaded.
 */

/**
 * - `--max-semi-space-size=2`: young generations of 2 MiB semi-spaces in each of the
 *   process's isolates (main thread, harts, JIT compilers) instead of up to 16 MiB, which
 *   their short-lived garbage does not need; about 30 MiB less resident memory per VM.
 * - `--v8-pool-size=1`: one V8 background thread instead of four. Those threads run
 *   TurboFan's compiles of the JIT's hot translations (about 2.3 s of CPU in a 3.4 s boot
 *   to a shell, measured with `perf`), and four of them took the host's cores from the
 *   harts: a boot to `true` took 3.45-3.67 s with four and 2.90-3.20 s with one (two:
 *   3.18-3.27 s), and a two-hart boot 4.57-4.64 s against 3.84-3.94 s. The workloads of
 *   `npm run bench -- boot` ran as fast or faster.
 * - `--wasm-tiering-budget=8000000`: a wasm function is handed to TurboFan after about
 *   8,000,000 bytes of its code ran in Liftoff instead of 1,800,000, so that translations
 *   run a few thousand times and then no more (most of a boot's) stay in Liftoff and
 *   TurboFan compiles the hot ones only. Boots to `true`, five alternating a side, medians:
 *   on two host cores 4.96 s against 5.19 s, with 7.9 s of user CPU against 9.4 s; pinned
 *   to one host core (`taskset -c 0`) 6.39 s against 9.45 s. Guest-timed workloads, medians
 *   of four alternating runs: gzip -9 4.40 s against 4.61 s, sha256 2.78 against 2.95, sort
 *   3.22 against 3.01, FP awk 2.13 against 2.30, shell arithmetic 2.43 against 3.21 (each
 *   within the spread of its runs). 36,000,000 saved more boot CPU but made the shell
 *   arithmetic loop 18% slower.
 * - `--no-wasm-lazy-compilation`: `new WebAssembly.Module` compiles all the functions of a
 *   module with Liftoff at once, on the thread that builds it (the JIT's compiler thread),
 *   instead of each function at its first call, on the thread that calls it (the hart's).
 *   V8 11.3 compiles lazily by default: the compiler thread only validated a module, and
 *   the hart then decoded and compiled each translation it entered. Boots to a command,
 *   ten alternating a side, medians: the guest's clock at the command 1.58 s against
 *   1.68 s, the hart thread's CPU 2.03 s against 2.12 s (another ten: 1.78 against 1.88,
 *   2.19 against 2.39); the compiler thread spends about 40 ms more a boot.
 */
export const VM_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--v8-pool-size=1', '--wasm-tiering-budget=8000000', '--no-wasm-lazy-compilation'];

/**
 * The flags of VM_NODE_FLAGS that the current process was started without (in its command
 * line or NODE_OPTIONS), compared by name: a `--v8-pool-size=4` given by the user is kept.
 */
export function missingVmNodeFlags(): string[] {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].map((f) => f.split('=')[0]);
  return VM_NODE_FLAGS.filter((f) => !given.includes(f.split('=')[0]));
}
