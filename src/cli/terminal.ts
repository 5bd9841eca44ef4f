/**
 * The user's terminal as a VM's serial console (`tsvisor run` without a command): raw
 * mode on a TTY, every byte passed to the guest, and QEMU's escape `Ctrl-A x` to quit
 * (`Ctrl-A Ctrl-A` sends one Ctrl-A); and the signals a foreground VM answers.
 */
import type { StdioCharBackend } from '../devices/node/stdio-char.js';

/**
 * Installs the foreground VM's signal handlers: SIGINT and SIGTERM call `onStop`, SIGUSR1
 * writes `report()` (each hart's state, see Vm.hartReport) to stderr under a header.
 * @returns a function that removes them.
 */
export function handleVmSignals(onStop: () => void, report: () => string[] | null): () => void {
  const onReport = (): void => {
    const lines = report();
    if (lines) process.stderr.write(`tsvisor: hart report\n${lines.join('\n')}\n`);
  };
  process.on('SIGINT', onStop);
  process.on('SIGTERM', onStop);
  process.on('SIGUSR1', onReport);
  return () => {
    process.off('SIGINT', onStop);
    process.off('SIGTERM', onStop);
    process.off('SIGUSR1', onReport);
  };
}

/**
 * Connects stdin to `console`. `onQuit` runs on `Ctrl-A x`.
 * @returns a function that restores the terminal and detaches stdin.
 */
export function attachTerminal(console: StdioCharBackend, onQuit: () => void): () => void {
  const stdin = process.stdin;
  let rawMode = false;
  if (stdin.isTTY) { stdin.setRawMode(true); rawMode = true; }
  let escape = false;
  const onData = (d: Buffer): void => {
    const pass: number[] = [];
    for (const b of d) {
      if (escape) {
        escape = false;
        if (b === 0x78 /* x */) { process.stdout.write('\r\ntsvisor: terminated (Ctrl-A x)\r\n'); onQuit(); return; }
        if (b === 0x01) pass.push(0x01);
        continue;
      }
      if (b === 0x01) { escape = true; continue; }
      pass.push(b);
    }
    console.push(Uint8Array.from(pass));
  };
  stdin.on('data', onData);
  stdin.resume();
  return () => {
    stdin.off('data', onData);
    stdin.pause();
    if (rawMode) stdin.setRawMode(false);
  };
}
