/**
 * Finding the Debian mirror that the host's own apt sources name.
 *
 * tsvisor never hard-codes a mirror: it reads `/etc/apt/sources.list` and
 * `/etc/apt/sources.list.d/` (one-line `*.list` files, see sources.list(5)
 * "ONE-LINE-STYLE FORMAT", and deb822 `*.sources` files, "DEB822-STYLE FORMAT")
 * and takes the first `deb` URI that serves a main-archive suite (not `-security`,
 * `-updates`, `-backports`). `TSVISOR_DEBIAN_MIRROR` overrides the choice.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ImageError } from './errors.js';

/** One source entry: one line of a `.list` file, or one stanza of a `.sources` file. */
export interface AptSource {
  /** `deb` or `deb-src` (one entry per type). */
  type: string;
  /** Repository URIs, without trailing slash. A one-line entry has exactly one. */
  uris: string[];
  /** Suites (distributions), e.g. `bookworm`, `bookworm-updates`. */
  suites: string[];
  components: string[];
  /** Options (`[arch=amd64 signed-by=...]` or deb822 fields other than the above), lower-case keys. */
  options: Record<string, string>;
  /** File it came from, for messages. */
  file: string;
}

/** The mirror chosen for downloading Debian packages. */
export interface MirrorChoice {
  /** Archive root URI, e.g. `http://<host>/debian` (no trailing slash). */
  uri: string;
  /** Where it came from: a sources file path, or `TSVISOR_DEBIAN_MIRROR`. */
  origin: string;
}

function stripSlash(uri: string): string {
  return uri.replace(/\/+$/, '');
}

/**
 * Parses a one-line-style sources.list text (sources.list(5)). Comments (`#` to end of
 * line) and blank lines are ignored; malformed lines are skipped.
 */
export function parseOneLineSources(text: string, file = '<string>'): AptSource[] {
  const result: AptSource[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    const hash = rawLine.indexOf('#');
    const line = (hash >= 0 ? rawLine.slice(0, hash) : rawLine).trim();
    if (line === '') continue;
    // Make "[opts]" separate tokens even when written "[arch=x]" or "deb [ a=b ] ...".
    const m = /^(\S+)\s+(?:\[([^\]]*)\]\s*)?(.*)$/.exec(line);
    if (!m) continue;
    const type = m[1]!;
    if (type !== 'deb' && type !== 'deb-src') continue;
    const options: Record<string, string> = {};
    for (const opt of (m[2] ?? '').trim().split(/\s+/)) {
      if (opt === '') continue;
      const eq = opt.indexOf('=');
      if (eq > 0) options[opt.slice(0, eq).toLowerCase()] = opt.slice(eq + 1);
    }
    const rest = m[3]!.trim().split(/\s+/).filter((t) => t !== '');
    if (rest.length < 2) continue;
    result.push({ type, uris: [stripSlash(rest[0]!)], suites: [rest[1]!], components: rest.slice(2), options, file });
  }
  return result;
}

/**
 * Parses a deb822-style `.sources` text (sources.list(5)): stanzas separated by blank
 * lines, `Field: value` lines, continuation lines starting with whitespace, `#` comment
 * lines. Stanzas with `Enabled: no` are dropped; each stanza yields one entry per Type.
 */
export function parseDeb822Sources(text: string, file = '<string>'): AptSource[] {
  const result: AptSource[] = [];
  const stanzas: Array<Record<string, string>> = [];
  let cur: Record<string, string> = {};
  let lastKey: string | undefined;
  const flush = (): void => {
    if (Object.keys(cur).length > 0) stanzas.push(cur);
    cur = {};
    lastKey = undefined;
  };
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (line.startsWith('#')) continue;
    if (/^\s/.test(line)) {
      if (lastKey !== undefined) cur[lastKey] = `${cur[lastKey]} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    lastKey = line.slice(0, colon).trim().toLowerCase();
    cur[lastKey] = line.slice(colon + 1).trim();
  }
  flush();
  const words = (s: string | undefined): string[] => (s ?? '').split(/\s+/).filter((w) => w !== '');
  for (const st of stanzas) {
    if (/^(no|false|0)$/i.test(st.enabled ?? '')) continue;
    const uris = words(st.uris).map(stripSlash);
    const suites = words(st.suites);
    if (uris.length === 0 || suites.length === 0) continue;
    const options: Record<string, string> = {};
    for (const [k, v] of Object.entries(st)) {
      if (!['types', 'uris', 'suites', 'components'].includes(k)) options[k] = v;
    }
    for (const type of words(st.types)) {
      if (type !== 'deb' && type !== 'deb-src') continue;
      result.push({ type, uris, suites, components: words(st.components), options, file });
    }
  }
  return result;
}

/** Reads the host's apt sources below `etcApt` (default `/etc/apt`), in apt's order. Missing files are fine. */
export function readAptSources(etcApt = '/etc/apt'): AptSource[] {
  const out: AptSource[] = [];
  const main = join(etcApt, 'sources.list');
  const text = readIfFile(main);
  if (text !== undefined) out.push(...parseOneLineSources(text, main));
  const partsDir = join(etcApt, 'sources.list.d');
  let names: string[] = [];
  try {
    names = readdirSync(partsDir).sort();
  } catch {
    names = [];
  }
  for (const name of names) {
    // apt ignores files with other extensions (e.g. "x.list.disabled").
    if (!/^[A-Za-z0-9_.-]+\.(list|sources)$/.test(name)) continue;
    const path = join(partsDir, name);
    const body = readIfFile(path);
    if (body === undefined) continue;
    out.push(...(name.endsWith('.list') ? parseOneLineSources(body, path) : parseDeb822Sources(body, path)));
  }
  return out;
}

function readIfFile(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return undefined;
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** True for a suite of a main archive (not `-security`, `-updates`, `-backports`, `-proposed-updates`, old `x/updates`). */
export function isMainArchiveSuite(suite: string): boolean {
  const s = suite.toLowerCase();
  return !/-(security|updates|backports|backports-sloppy|proposed-updates)$/.test(s) && !s.includes('/');
}

/** Suite names Debian itself uses (release codenames and aliases); used to prefer Debian's own archive. */
const DEBIAN_SUITES = new Set([
  'stable', 'oldstable', 'oldoldstable', 'testing', 'unstable', 'sid', 'experimental',
  'jessie', 'stretch', 'buster', 'bullseye', 'bookworm', 'trixie', 'forky', 'duke',
]);

/**
 * Picks the archive mirror from parsed sources: the first `deb` entry with a main-archive
 * suite, preferring entries whose suite is a Debian release name (so a third-party
 * repository listed first is not taken for Debian's archive). `cdrom:` URIs are skipped.
 * Returns undefined when there is none.
 */
export function chooseMirror(sources: readonly AptSource[]): MirrorChoice | undefined {
  const candidates: Array<{ uri: string; origin: string; debian: boolean }> = [];
  for (const src of sources) {
    if (src.type !== 'deb') continue;
    const mainSuites = src.suites.filter(isMainArchiveSuite);
    if (mainSuites.length === 0) continue;
    const debian = mainSuites.some((s) => DEBIAN_SUITES.has(s.toLowerCase()));
    for (const uri of src.uris) {
      if (/^cdrom:/i.test(uri)) continue;
      candidates.push({ uri, origin: src.file, debian });
    }
  }
  const pick = candidates.find((c) => c.debian) ?? candidates[0];
  return pick ? { uri: pick.uri, origin: pick.origin } : undefined;
}

/**
 * The Debian mirror to use: `env.TSVISOR_DEBIAN_MIRROR` if set, else the one the host's
 * apt sources name (see {@link chooseMirror}).
 * @throws ImageError when the override is not a URL or no suitable source exists.
 */
export function findDebianMirror(opts: { env?: NodeJS.ProcessEnv; etcApt?: string } = {}): MirrorChoice {
  const env = opts.env ?? process.env;
  const override = env.TSVISOR_DEBIAN_MIRROR?.trim();
  if (override) {
    if (!/^[a-z][a-z0-9+.-]*:/i.test(override)) {
      throw new ImageError(`TSVISOR_DEBIAN_MIRROR is not a URL: ${override}`);
    }
    return { uri: stripSlash(override), origin: 'TSVISOR_DEBIAN_MIRROR' };
  }
  const etcApt = opts.etcApt ?? '/etc/apt';
  const choice = chooseMirror(readAptSources(etcApt));
  if (!choice) {
    throw new ImageError(
      `no Debian archive found in the host's apt sources (${etcApt}/sources.list, ${etcApt}/sources.list.d/); set TSVISOR_DEBIAN_MIRROR to a Debian mirror URL`,
    );
  }
  return choice;
}
