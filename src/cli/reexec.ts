/**
 * `tsvisor run` and `tsvisor image pull` run a VM in the CLI's own process, which Node started
 * without the flags a VM process needs (src/vmm/node-flags.ts), and `--v8-pool-size` can
 * only be given at Node's start. So such a command replaces its process, before it loads
 * anything else, with the same command under those flags: `execve`, so that the pid, the
 * terminal, the signals and the exit status stay the process's own.
 */
import { missingVmNodeFlags } from '../vmm/node-flags.js';
import { libcFunction } from '../devices/node/libc.js';

/** The commands that run a VM in the CLI's process: `run`, and `image pull` (the Debian image is configured in a VM). */
function runsVm(args: readonly string[]): boolean {
  const [cmd, sub] = args.filter((a) => !a.startsWith('-'));
  return cmd === 'run' || (cmd === 'image' && sub === 'pull');
}
/** fcntl(2) commands. */
const F_SETFD = 2;

/**
 * When `args` (the command line after the script) is a command that runs a VM and the
 * process lacks some of the VM flags, re-execute Node with them; does not return then.
 * Returns (and the command runs without them) when nothing is missing, or when the exec
 * cannot be done (no `process.execve`, and no koffi or libc).
 */
export function reexecForVm(args: readonly string[]): void {
  if (!runsVm(args) || !process.argv[1]) return;
  const missing = missingVmNodeFlags();
  if (!missing.length) return;
  const argv = [process.execPath, ...missing, ...process.execArgv, process.argv[1], ...args];
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
  try {
    if (execve) execve(process.execPath, argv, process.env); // Node 22.15 and later
    // Node marks its stdio close-on-exec at start: the new image must keep them
    const fcntl = libcFunction('int fcntl(int fd, int cmd, ...)');
    for (const fd of [0, 1, 2]) fcntl(fd, F_SETFD, 'int', 0);
    libcFunction('int execv(const char *path, const char **argv)')(process.execPath, [...argv, null]);
  } catch {
    // no koffi or no libc: no exec
  }
  // the exec failed: the command runs in this process as it is
}
