/**
 * A private apt: apt-get/apt-cache run against a state directory of our own, so that
 * tsvisor can fetch Debian trixie riscv64 packages on any Debian host without touching
 * the host's apt state (its lists, caches, status, preferences and architectures).
 *
 * Layout below `dir` (normally `$TSVISOR_HOME/cache/apt`):
 *   etc/sources.list      generated: `deb [arch=riscv64 signed-by=<keyring>] <mirror> trixie main`
 *   etc/preferences.d/    empty
 *   state/                Dir::State (lists/, an empty `status`)
 *   cache/                Dir::Cache (pkgcache.bin, archives/)
 *   update-stamp.json     when the lists were last updated successfully, and from which sources
 */
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ImageError } from './errors.js';
import { lastErrorLine, run } from './exec.js';
import type { MirrorChoice } from './sources.js';
import type { ProgressListener } from './progress.js';
import { formatBytes } from './progress.js';

/** The keyring of Debian's archive keys shipped by the host's `debian-archive-keyring` package. */
export const DEBIAN_ARCHIVE_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/** Options of {@link PrivateApt}. */
export interface PrivateAptOptions {
  /** The private apt directory (created if missing). */
  dir: string;
  /** Mirror to fetch from (see `findDebianMirror`). */
  mirror: MirrorChoice;
  /** Debian suite, default `trixie`. */
  suite?: string;
  /** Debian architecture, default `riscv64`. */
  arch?: string;
  /** Archive components, default `['main']`. */
  components?: string[];
  /** OpenPGP keyring for `signed-by`, default {@link DEBIAN_ARCHIVE_KEYRING}. */
  keyring?: string;
  /** Receives progress and warnings. */
  onProgress?: ProgressListener;
}

/** A package record (one stanza of `apt-cache show`), field names as in Debian control files. */
export interface PackageRecord {
  Package: string;
  Version: string;
  [field: string]: string;
}

/** One package of an installation plan ({@link PrivateApt.resolveInstall}). */
export interface ResolvedPackage {
  name: string;
  /** Debian version, with its epoch (`1:2.0-1`). */
  version: string;
  /** `riscv64` or `all`. */
  arch: string;
}

/** One file `apt-get download --print-uris` would fetch. */
export interface DownloadTarget {
  /** Full URI (never stored in a file by tsvisor). */
  uri: string;
  /** Local file name apt gives it, e.g. `busybox-static_1%3a1.37.0-6+b9_riscv64.deb`. */
  fileName: string;
  /** Size in bytes. */
  size: number;
  /** `SHA256:<hex>` (or another `Algo:hash`) as apt prints it. */
  hash: string;
}

interface UpdateStamp {
  time: number;
  sourcesList: string;
}

/** Parses RFC 822-style stanzas (`apt-cache show`, `Packages` files). Continuation lines are joined with `\n`. */
export function parseControlStanzas(text: string): PackageRecord[] {
  const out: PackageRecord[] = [];
  let cur: Record<string, string> = {};
  let last: string | undefined;
  const flush = (): void => {
    if (cur.Package !== undefined && cur.Version !== undefined) out.push(cur as PackageRecord);
    cur = {};
    last = undefined;
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (/^\s/.test(line)) {
      if (last) cur[last] += `\n${line.trim()}`;
      continue;
    }
    const c = line.indexOf(':');
    if (c <= 0) continue;
    last = line.slice(0, c);
    cur[last] = line.slice(c + 1).trim();
  }
  flush();
  return out;
}

/**
 * Splits a Depends-style field into package names of the first alternative of each
 * clause, without version constraints or architecture qualifiers:
 * `"a (= 1), b | c, d:any"` -> `["a", "b", "d"]`.
 */
export function dependsNames(field: string | undefined): string[] {
  if (!field) return [];
  return field
    .split(',')
    .map((clause) => clause.split('|')[0]!.trim().split(/[\s(:[]/)[0]!)
    .filter((n) => n !== '');
}

const SIGNATURE_TROUBLE = /NO_PUBKEY|EXPKEYSIG|KEYEXPIRED|signatures couldn't be verified|is not signed|OpenPGP signature verification failed|Missing key|GPG error|Signed-By/i;

/**
 * apt-get and apt-cache confined to a private directory, for one suite and architecture.
 * Methods throw {@link ImageError} with one-line messages.
 */
export class PrivateApt {
  readonly dir: string;
  readonly mirror: MirrorChoice;
  readonly suite: string;
  readonly arch: string;
  readonly components: string[];
  readonly keyring: string;
  private readonly onProgress: ProgressListener;

  constructor(opts: PrivateAptOptions) {
    this.dir = opts.dir;
    this.mirror = opts.mirror;
    this.suite = opts.suite ?? 'trixie';
    this.arch = opts.arch ?? 'riscv64';
    this.components = opts.components ?? ['main'];
    this.keyring = opts.keyring ?? DEBIAN_ARCHIVE_KEYRING;
    this.onProgress = opts.onProgress ?? (() => {});
  }

  private get sourcesPath(): string {
    return join(this.dir, 'etc', 'sources.list');
  }
  private get stampPath(): string {
    return join(this.dir, 'update-stamp.json');
  }

  /** The sources.list line for `trusted` (no signature check) or signed mode. */
  sourcesLine(trusted: boolean): string {
    const opt = trusted ? 'trusted=yes' : `signed-by=${this.keyring}`;
    return `deb [arch=${this.arch} ${opt}] ${this.mirror.uri} ${this.suite} ${this.components.join(' ')}\n`;
  }

  /** Creates the directory tree, an empty dpkg status file and (if absent or for another mirror) sources.list. */
  prepare(): void {
    for (const d of ['etc/preferences.d', 'state/lists/partial', 'cache/archives/partial']) {
      mkdirSync(join(this.dir, d), { recursive: true });
    }
    const status = join(this.dir, 'state', 'status');
    if (!existsSync(status)) writeFileSync(status, '');
    const current = existsSync(this.sourcesPath) ? readFileSync(this.sourcesPath, 'utf8') : '';
    if (current !== this.sourcesLine(false) && current !== this.sourcesLine(true)) {
      writeFileSync(this.sourcesPath, this.sourcesLine(false));
    }
  }

  /** The `-o` options that confine apt to {@link dir}. */
  aptOptions(): string[] {
    const d = this.dir;
    const o = (k: string, v: string): string[] => ['-o', `${k}=${v}`];
    return [
      ...o('Dir::State', join(d, 'state')),
      ...o('Dir::State::status', join(d, 'state', 'status')),
      ...o('Dir::Cache', join(d, 'cache')),
      ...o('Dir::Etc::SourceList', this.sourcesPath),
      ...o('Dir::Etc::SourceParts', '/dev/null'),
      ...o('Dir::Etc::Preferences', '/dev/null'),
      ...o('Dir::Etc::PreferencesParts', join(d, 'etc', 'preferences.d')),
      ...o('APT::Architecture', this.arch),
      ...o('APT::Architectures', this.arch),
      ...o('Acquire::Languages', 'none'),
      ...o('APT::Sandbox::User', 'root'),
      // Never consult or write the host's dpkg database or logs.
      ...o('Dir::Log', join(d, 'log')),
    ];
  }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' };
  }

  /**
   * Age of the package lists in milliseconds, or undefined when they were never
   * updated (for the current sources) or are missing.
   */
  listsAge(now = Date.now()): number | undefined {
    try {
      const stamp = JSON.parse(readFileSync(this.stampPath, 'utf8')) as UpdateStamp;
      const sources = existsSync(this.sourcesPath) ? readFileSync(this.sourcesPath, 'utf8') : '';
      if (stamp.sourcesList !== sources) return undefined;
      const lists = readdirSync(join(this.dir, 'state', 'lists'));
      if (!lists.some((n) => n.includes('_Packages'))) return undefined;
      return Math.max(0, now - stamp.time);
    } catch {
      return undefined;
    }
  }

  /**
   * `apt-get update` for the private sources. Verifies the archive signature with the
   * host's keyring; if that is impossible (keyring missing or too old for the suite's
   * keys), retries with `trusted=yes` and emits a warning.
   * @throws ImageError when the lists cannot be fetched.
   */
  async update(): Promise<void> {
    this.prepare();
    const where = `${this.suite}/${this.arch} from ${this.mirror.uri} (${this.mirror.origin})`;
    this.onProgress({ kind: 'step', message: `updating package lists: ${where}` });
    let trusted = !existsSync(this.keyring);
    if (trusted) {
      this.onProgress({
        kind: 'warning',
        message: `keyring ${this.keyring} not found (install debian-archive-keyring): package signatures will NOT be verified`,
      });
    }
    writeFileSync(this.sourcesPath, this.sourcesLine(trusted));
    let r = await this.aptUpdate();
    if (r.code !== 0 && !trusted && SIGNATURE_TROUBLE.test(r.stdout.toString() + r.stderr.toString())) {
      this.onProgress({
        kind: 'warning',
        message: `the host's keyring cannot verify ${this.suite}'s signature (${lastErrorLine(r)}); falling back to trusted=yes: package signatures will NOT be verified`,
      });
      trusted = true;
      writeFileSync(this.sourcesPath, this.sourcesLine(true));
      r = await this.aptUpdate();
    }
    if (r.code !== 0) {
      throw new ImageError(`apt-get update failed for ${where}: ${lastErrorLine(r)}`);
    }
    const fetched = /Fetched (\S+ \S+)/.exec(r.stdout.toString())?.[1];
    const stamp: UpdateStamp = { time: Date.now(), sourcesList: this.sourcesLine(trusted) };
    writeFileSync(this.stampPath, JSON.stringify(stamp));
    this.onProgress({ kind: 'done', message: `package lists updated${fetched ? ` (fetched ${fetched})` : ''}` });
  }

  /**
   * `apt-get update` that fails on any fetch error: plain `apt-get update` exits 0 when
   * the mirror is unreachable ("W: Failed to fetch"), leaving us without lists.
   */
  private async aptUpdate() {
    let r = await this.aptGet(['update', '--error-on=any']);
    if (r.code !== 0 && /--error-on/.test(r.stderr.toString())) r = await this.aptGet(['update']); // apt < 2.1.16
    if (r.code === 0) {
      const text = `${r.stdout.toString()}\n${r.stderr.toString()}`;
      const err = /^(?:Err:.*|W: Failed to fetch.*)$/m.exec(text);
      const lists = readdirSync(join(this.dir, 'state', 'lists')).some((n) => n.includes('_Packages'));
      if (err || !lists) return { ...r, code: 100, stderr: Buffer.from(`E: ${err ? err[0] : 'no package lists were fetched'}\n`) };
    }
    return r;
  }

  private aptGet(args: string[], cwd?: string) {
    return run('apt-get', ['-q', ...this.aptOptions(), ...args], {
      env: this.env(),
      cwd,
      purpose: 'download Debian packages',
      providedBy: 'apt',
    });
  }

  /**
   * The candidate record of package `name` (what `apt-get download name` would fetch).
   * @throws ImageError when the package is unknown in the private lists.
   */
  async show(name: string): Promise<PackageRecord> {
    const r = await run('apt-cache', [...this.aptOptions(), 'show', '--no-all-versions', name], {
      env: this.env(),
      purpose: 'resolve Debian packages',
      providedBy: 'apt',
    });
    const recs = r.code === 0 ? parseControlStanzas(r.stdout.toString('utf8')) : [];
    const rec = recs.find((x) => x.Package === name);
    if (!rec) {
      throw new ImageError(`package ${name} not found in ${this.suite}/${this.arch} at ${this.mirror.uri}: ${r.code === 0 ? 'no candidate' : lastErrorLine(r)}`);
    }
    return rec;
  }

  /**
   * Names of the packages of `Priority: required` in the private lists (what debootstrap's
   * `--variant=minbase` starts from), sorted.
   * @throws ImageError when apt-cache fails.
   */
  async requiredPackages(): Promise<string[]> {
    const r = await run('apt-cache', [...this.aptOptions(), 'dumpavail'], {
      env: this.env(), purpose: 'resolve Debian packages', providedBy: 'apt',
    });
    if (r.code !== 0) throw new ImageError(`apt-cache dumpavail failed: ${lastErrorLine(r)}`);
    const names = new Set<string>();
    for (const rec of parseControlStanzas(r.stdout.toString('utf8'))) {
      if (rec.Priority === 'required') names.add(rec.Package);
    }
    if (names.size === 0) throw new ImageError(`no package of priority required in ${this.suite}/${this.arch}: are the package lists complete?`);
    return [...names].sort();
  }

  /**
   * The whole set of packages an installation of `names` (and their dependencies, without
   * Recommends) needs on an empty system, in apt's installation order (Pre-Depends first),
   * from `apt-get --simulate install`.
   * @throws ImageError naming the package when one is unknown or cannot be installed.
   */
  async resolveInstall(names: readonly string[]): Promise<ResolvedPackage[]> {
    const r = await this.aptGet(['--simulate', '--no-install-recommends', 'install', ...names]);
    const text = r.stdout.toString('utf8') + r.stderr.toString('utf8');
    if (r.code !== 0) {
      const unknown = /Unable to locate package (\S+)/.exec(text) ?? /Package '?([^' ]+)'? has no installation candidate/.exec(text);
      if (unknown) throw new ImageError(`unknown package in the image recipe: ${unknown[1]} (not in ${this.suite}/${this.arch})`);
      throw new ImageError(`cannot resolve the packages ${names.join(' ')}: ${lastErrorLine(r)}`);
    }
    const out: ResolvedPackage[] = [];
    for (const line of text.split('\n')) {
      const m = /^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*\[([a-z0-9-]+)\]\)/.exec(line);
      if (m) out.push({ name: m[1]!, version: m[2]!, arch: m[3]! });
    }
    if (out.length === 0) throw new ImageError(`apt-get --simulate install ${names.join(' ')} listed no package to install`);
    return out;
  }

  /**
   * What `apt-get download` would fetch for `specs` (`name` or `name=version`).
   * @throws ImageError when a spec cannot be resolved.
   */
  async downloadTargets(specs: readonly string[]): Promise<DownloadTarget[]> {
    const r = await this.aptGet(['download', '--print-uris', ...specs]);
    if (r.code !== 0) throw new ImageError(`cannot resolve ${specs.join(' ')}: ${lastErrorLine(r)}`);
    const out: DownloadTarget[] = [];
    for (const line of r.stdout.toString('utf8').split('\n')) {
      const m = /^'([^']+)'\s+(\S+)\s+(\d+)\s+(\S+)/.exec(line.trim());
      if (m) out.push({ uri: m[1]!, fileName: m[2]!, size: Number(m[3]), hash: m[4]! });
    }
    // apt prints them in its own order: match them back to the specs by package name.
    return specs.map((spec) => {
      const name = spec.split('=')[0]!;
      const t = out.find((x) => x.fileName.startsWith(`${name}_`));
      if (!t) throw new ImageError(`apt-get download --print-uris gave no file for ${spec}`);
      return t;
    });
  }

  /**
   * Ensures the `.deb` files of `specs` are in `destDir`, downloading the missing ones
   * (into `destDir/partial`, moved into place only once apt has verified them), with
   * progress events. Files already present with the expected size are not fetched again.
   * @returns absolute paths of the `.deb` files, in the order of `specs`.
   * @throws ImageError when a download fails.
   */
  async download(specs: readonly string[], destDir: string): Promise<string[]> {
    const targets = await this.downloadTargets(specs);
    const paths = targets.map((t) => join(destDir, t.fileName));
    const missing = targets.filter((t, i) => fileSize(paths[i]!) !== t.size);
    if (missing.length === 0) return paths;
    const partial = join(destDir, 'partial');
    mkdirSync(partial, { recursive: true });
    for (const t of missing) rmSync(join(partial, t.fileName), { force: true });
    const total = missing.reduce((s, t) => s + t.size, 0);
    const names = missing.map((t) => t.fileName.split('_')[0]).join(', ');
    const label = missing.length > 3 ? `${missing.length} packages` : names;
    const missingSpecs = missing.map((t) => specs[targets.indexOf(t)]!);
    const poll = (): number => missing.reduce((s, t) => s + (fileSize(join(partial, t.fileName)) ?? 0), 0);
    this.onProgress({ kind: 'bytes', label, done: 0, total });
    const timer = setInterval(() => this.onProgress({ kind: 'bytes', label, done: poll(), total }), 200);
    let r;
    try {
      r = await this.aptGet(['download', ...missingSpecs], partial);
    } finally {
      clearInterval(timer);
    }
    if (r.code !== 0) {
      throw new ImageError(`download of ${names} (${formatBytes(total)}) from ${this.mirror.uri} failed: ${lastErrorLine(r)}`);
    }
    for (const t of missing) {
      const got = fileSize(join(partial, t.fileName));
      if (got !== t.size) {
        throw new ImageError(`download of ${t.fileName} is incomplete: ${got ?? 0} of ${t.size} bytes`);
      }
      renameSync(join(partial, t.fileName), join(destDir, t.fileName));
    }
    this.onProgress({ kind: 'bytes', label, done: total, total });
    return paths;
  }
}

function fileSize(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}
