/**
 * Where tsvisor keeps its files on the host.
 *
 * `TSVISOR_HOME` (default `$XDG_DATA_HOME/tsvisor`, or `~/.local/share/tsvisor` when
 * `XDG_DATA_HOME` is unset or not absolute) holds everything; downloaded and derived
 * artifacts live under `$TSVISOR_HOME/cache`, which may be deleted at any time.
 * Other layers (vmm, host) reuse these helpers so every process agrees on the layout.
 */
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

/**
 * The tsvisor home directory (absolute path), from `env.TSVISOR_HOME`, else
 * `env.XDG_DATA_HOME/tsvisor`, else `~/.local/share/tsvisor`. Pure: creates nothing.
 */
export function tsvisorHome(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.TSVISOR_HOME;
  if (explicit && explicit.trim() !== '') return resolve(explicit);
  const xdg = env.XDG_DATA_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'tsvisor');
  return join(env.HOME && isAbsolute(env.HOME) ? env.HOME : homedir(), '.local', 'share', 'tsvisor');
}

/** Layout of the cache below a tsvisor home. All paths are absolute. */
export interface CachePaths {
  /** The tsvisor home itself. */
  home: string;
  /** `<home>/cache`: everything that can be re-derived or re-downloaded. */
  cache: string;
  /** `<home>/cache/apt`: the private apt state (sources, lists, apt's own cache). */
  apt: string;
  /** `<home>/cache/debs`: downloaded `.deb` files (complete ones only; `partial/` below). */
  debs: string;
  /** `<home>/cache/extract`: `dpkg-deb -x` trees, one folder per `<package>_<version>`. */
  extract: string;
  /** `<home>/cache/images`: built guest images (kernel + initramfs), one folder per build key. */
  images: string;
}

/** The cache layout for `home` (default {@link tsvisorHome}). Pure: creates nothing. */
export function cachePaths(home: string = tsvisorHome()): CachePaths {
  const h = resolve(home);
  const cache = join(h, 'cache');
  return {
    home: h,
    cache,
    apt: join(cache, 'apt'),
    debs: join(cache, 'debs'),
    extract: join(cache, 'extract'),
    images: join(cache, 'images'),
  };
}

/** `<home>/cache` for `home` (default {@link tsvisorHome}). */
export function cacheDir(home: string = tsvisorHome()): string {
  return cachePaths(home).cache;
}
