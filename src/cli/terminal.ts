/**
 * The user's terminal as a VM's serial console (`tsvisor run` without a command): raw
 * mode on a TTY, every byte passed to the guest, and QEMU's escape `Ctrl-A x` to quit
 * (`Ctrl-A Ctrl-A` sends one Ctrl-A).
 */
import type { StdioCharBackend } from '../devices/node/stdio-char.js';

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
