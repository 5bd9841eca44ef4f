/**
 * Where the host daemon keeps its files.
 *
 * Durable state lives under the tsvisor home (see src/images/paths.ts):
 *
 *   $TSVISOR_HOME/host.json          host policy (overcommit ratio), optional
 *   $TSVISOR_HOME/token              bearer token of the TCP listener (0600)
 *   $TSVISOR_HOME/usage.json         metering ledger
 *   $TSVISOR_HOME/daemon.log         the daemon's log
 *   $TSVISOR_HOME/vms/<name>/        one folder per VM ("vmDir"):
 *       config.json   VmDefinition           state.json  the daemon's runtime record
 *       vm.pid        pid of the VM process  vm.sock     its control channel
 *       vm.log        its log and stdout/stderr   vm.exit  its exit status
 *
 * The daemon's socket lives in the user's runtime directory:
 * `$XDG_RUNTIME_DIR/tsvisor/tsvisor.sock`, else `$TSVISOR_HOME/run/tsvisor.sock`
 * (folder 0700, socket 0600), with `daemon.pid` beside it.
 */
import { isAbsolute, join } from 'node:path';
import { tsvisorHome } from '../images/paths.js';

/** Paths of one tsvisor home, as the daemon and the CLI use them. All absolute. */
export interface HostPaths {
  home: string;
  vms: string;
  hostConfig: string;
  token: string;
  usage: string;
  daemonLog: string;
  /** Folder of the daemon's Unix socket and pid file (0700). */
  runDir: string;
  socket: string;
  daemonPid: string;
}

/** Paths for `env` (TSVISOR_HOME, XDG_DATA_HOME, XDG_RUNTIME_DIR, HOME). Pure: creates nothing. */
export function hostPaths(env: NodeJS.ProcessEnv = process.env): HostPaths {
  const home = tsvisorHome(env);
  const xdgRun = env.XDG_RUNTIME_DIR;
  const runDir = xdgRun && isAbsolute(xdgRun) ? join(xdgRun, 'tsvisor') : join(home, 'run');
  return {
    home,
    vms: join(home, 'vms'),
    hostConfig: join(home, 'host.json'),
    token: join(home, 'token'),
    usage: join(home, 'usage.json'),
    daemonLog: join(home, 'daemon.log'),
    runDir,
    socket: join(runDir, 'tsvisor.sock'),
    daemonPid: join(runDir, 'daemon.pid'),
  };
}

/** Files of one VM's folder. */
export interface VmPaths {
  dir: string;
  config: string;
  state: string;
  pid: string;
  sock: string;
  log: string;
  /** Written by the VM process as it exits: `{code, reason, pid, at}`. */
  exit: string;
}

/** The folder of VM `name` below `vmsDir` and its files. */
export function vmPaths(vmsDir: string, name: string): VmPaths {
  const dir = join(vmsDir, name);
  return {
    dir,
    config: join(dir, 'config.json'),
    state: join(dir, 'state.json'),
    pid: join(dir, 'vm.pid'),
    sock: join(dir, 'vm.sock'),
    log: join(dir, 'vm.log'),
    exit: join(dir, 'vm.exit'),
  };
}
