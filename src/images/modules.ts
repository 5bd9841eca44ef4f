/**
 * Kernel modules: reading `.modinfo`, and computing which modules to load and in
 * which order, without `modules.dep` (Debian's kernel package does not ship it; it is
 * made by `depmod` at install time).
 *
 * A module's `.modinfo` ELF section is a sequence of NUL-terminated `key=value`
 * strings (include/linux/moduleparam.h, `MODULE_INFO`). tsvisor reads:
 *   `name=`    the module name;
 *   `depends=` comma-separated modules whose symbols it uses (hard dependencies);
 *   `softdep=` `pre: a b post: c` (modprobe.d(5) "softdep"): modules or aliases to load
 *              before (`pre:`) / after (`post:`) it, e.g. ext4's `pre: crypto-crc32c`;
 *   `alias=`   names (possibly glob patterns) under which the module can be requested.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ImageError } from './errors.js';
import { run } from './exec.js';

/** What tsvisor uses of a module's `.modinfo`. Module names are normalized (`-` -> `_`). */
export interface ModInfo {
  name: string;
  depends: string[];
  /** `softdep=pre:` names: modules or aliases (not normalized: aliases keep their dashes). */
  softdepPre: string[];
  /** `softdep=post:` names. */
  softdepPost: string[];
  aliases: string[];
  /** `vermagic=`, e.g. `6.12.107+deb13-riscv64 SMP mod_unload modversions riscv`. */
  vermagic?: string;
}

/** `ext4` from `ext4`, `virtio_rng` from `virtio-rng` (the kernel treats `-` and `_` alike in module names). */
export function normalizeModuleName(name: string): string {
  return name.replace(/-/g, '_');
}

/** Module name of a module file path: `kernel/drivers/char/hw_random/virtio-rng.ko.xz` -> `virtio_rng`. */
export function moduleNameFromPath(path: string): string {
  return normalizeModuleName(basename(path).replace(/\.ko(\.(xz|gz|zst))?$/, ''));
}

/**
 * Parses the contents of a `.modinfo` section (NUL-separated `key=value` strings;
 * empty strings from alignment padding are skipped). Unknown keys are ignored.
 */
export function parseModinfo(section: Uint8Array): ModInfo {
  const text = new TextDecoder('latin1').decode(section);
  const info: ModInfo = { name: '', depends: [], softdepPre: [], softdepPost: [], aliases: [] };
  for (const entry of text.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    const value = entry.slice(eq + 1);
    switch (key) {
      case 'name':
        info.name = normalizeModuleName(value);
        break;
      case 'depends':
        info.depends.push(...value.split(',').map((s) => s.trim()).filter((s) => s !== '').map(normalizeModuleName));
        break;
      case 'softdep': {
        const sd = parseSoftdep(value);
        info.softdepPre.push(...sd.pre);
        info.softdepPost.push(...sd.post);
        break;
      }
      case 'alias':
        info.aliases.push(value);
        break;
      case 'vermagic':
        info.vermagic = value;
        break;
    }
  }
  return info;
}

/** Parses a softdep value: `pre: a b post: c` -> `{pre: [a, b], post: [c]}`. */
export function parseSoftdep(value: string): { pre: string[]; post: string[] } {
  const out = { pre: [] as string[], post: [] as string[] };
  let target: string[] | undefined;
  for (const word of value.trim().split(/\s+/)) {
    if (word === 'pre:') target = out.pre;
    else if (word === 'post:') target = out.post;
    else if (word !== '' && target) target.push(word);
  }
  return out;
}

/**
 * The contents of section `name` of an ELF file (32- or 64-bit, either byte order),
 * or undefined when the file has no such section.
 * @throws Error when `elf` is not an ELF file or its section table is out of bounds.
 */
export function elfSection(elf: Uint8Array, name: string): Uint8Array | undefined {
  if (elf.length < 52 || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[2] !== 0x4c || elf[3] !== 0x46) {
    throw new Error('not an ELF file');
  }
  const is64 = elf[4] === 2;
  const le = elf[5] === 1;
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const u16 = (o: number): number => dv.getUint16(o, le);
  const u32 = (o: number): number => dv.getUint32(o, le);
  const uN = (o: number): number => (is64 ? Number(dv.getBigUint64(o, le)) : u32(o));
  const shoff = uN(is64 ? 0x28 : 0x20);
  const shentsize = u16(is64 ? 0x3a : 0x2e);
  const shnum = u16(is64 ? 0x3c : 0x30);
  const shstrndx = u16(is64 ? 0x3e : 0x32);
  if (shoff === 0 || shnum === 0) return undefined;
  if (shoff + shnum * shentsize > elf.length || shstrndx >= shnum) throw new Error('ELF section table out of bounds');
  const sec = (i: number): { name: number; offset: number; size: number } => {
    const b = shoff + i * shentsize;
    return is64
      ? { name: u32(b), offset: uN(b + 0x18), size: uN(b + 0x20) }
      : { name: u32(b), offset: u32(b + 0x10), size: u32(b + 0x14) };
  };
  const strtab = sec(shstrndx);
  const wanted = new TextEncoder().encode(name);
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    const at = strtab.offset + s.name;
    let match = at + wanted.length < elf.length && elf[at + wanted.length] === 0;
    for (let j = 0; match && j < wanted.length; j++) match = elf[at + j] === wanted[j];
    if (!match) continue;
    if (s.offset + s.size > elf.length) throw new Error(`ELF section ${name} out of bounds`);
    return elf.subarray(s.offset, s.offset + s.size);
  }
  return undefined;
}

/**
 * The `.modinfo` of a (decompressed) module file.
 * @throws Error when the file is not ELF or has no `.modinfo`.
 */
export function modinfoFromElf(elf: Uint8Array): ModInfo {
  const sec = elfSection(elf, '.modinfo');
  if (!sec) throw new Error('no .modinfo section');
  return parseModinfo(sec);
}

/** Matches `text` against a modprobe-style glob (`*`, `?`, `[...]`). */
export function globMatch(pattern: string, text: string): boolean {
  if (!/[*?[]/.test(pattern)) return pattern === text;
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 1);
      if (close < 0) re += '\\[';
      else {
        re += `[${pattern.slice(i + 1, close).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = close;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`${re}$`).test(text);
}

/** What {@link resolveModuleOrder} needs to know about a kernel's modules. */
export interface ModuleSource {
  /** True when module `name` (normalized) is built into the kernel image. */
  isBuiltin(name: string): boolean;
  /** True when a loadable module file for `name` (normalized) exists. */
  has(name: string): boolean;
  /** The `.modinfo` of loadable module `name`. */
  info(name: string): Promise<ModInfo>;
  /** The module (loadable or built-in) providing `alias`, or undefined. */
  resolveAlias(alias: string): Promise<string | undefined>;
}

/** Result of {@link resolveModuleOrder}. */
export interface ModuleOrder {
  /** Loadable modules to insert, dependencies (and `softdep pre`) before dependents. */
  order: string[];
  /** Requested or depended-on modules that are built in (nothing to load). */
  builtin: string[];
  /** Soft dependencies (or optional requests) that no module provides; informational. */
  unresolved: string[];
}

/**
 * Computes the load order of `wanted` modules and everything they need: hard
 * `depends=`, `softdep pre:` (loaded before) and `softdep post:` (loaded after), aliases
 * resolved through `source`. Built-in modules are skipped. The order is a depth-first
 * post-order, so it is stable for a given input; cycles through soft dependencies are
 * broken where they close.
 * @param optional names that may be absent (neither loadable nor built in) without error.
 * @throws ImageError when a wanted (non-optional) module or a hard dependency is missing.
 */
export async function resolveModuleOrder(
  wanted: readonly string[],
  source: ModuleSource,
  optional: readonly string[] = [],
): Promise<ModuleOrder> {
  const order: string[] = [];
  const builtin = new Set<string>();
  const unresolved = new Set<string>();
  const state = new Map<string, 'visiting' | 'done'>();
  const optionalSet = new Set(optional.map(normalizeModuleName));

  const softTarget = async (nameOrAlias: string): Promise<string | undefined> => {
    const n = normalizeModuleName(nameOrAlias);
    if (source.has(n) || source.isBuiltin(n)) return n;
    const provider = await source.resolveAlias(nameOrAlias);
    if (provider === undefined) unresolved.add(nameOrAlias);
    return provider;
  };

  const visit = async (name: string, neededBy: string | undefined): Promise<void> => {
    if (state.has(name)) return; // done, or a cycle closing: already on the stack
    if (source.isBuiltin(name)) {
      builtin.add(name);
      state.set(name, 'done');
      return;
    }
    if (!source.has(name)) {
      if (neededBy === undefined && optionalSet.has(name)) {
        unresolved.add(name);
        return;
      }
      throw new ImageError(`kernel module ${name}${neededBy ? ` (needed by ${neededBy})` : ''} is neither built in nor in the kernel package`);
    }
    state.set(name, 'visiting');
    const info = await source.info(name);
    for (const pre of info.softdepPre) {
      const t = await softTarget(pre);
      if (t !== undefined) await visit(t, name);
    }
    for (const dep of info.depends) await visit(dep, name);
    order.push(name);
    state.set(name, 'done');
    for (const post of info.softdepPost) {
      const t = await softTarget(post);
      if (t !== undefined) await visit(t, name);
    }
  };

  for (const w of wanted) {
    const n = normalizeModuleName(w);
    if (!source.has(n) && !source.isBuiltin(n)) {
      const viaAlias = await source.resolveAlias(w);
      if (viaAlias !== undefined) {
        await visit(viaAlias, undefined);
        continue;
      }
    }
    await visit(n, undefined);
  }
  return { order, builtin: [...builtin].sort(), unresolved: [...unresolved].sort() };
}

/**
 * The modules of one kernel as laid out by its Debian package:
 * `<root>/usr/lib/modules/<version>/` with `kernel/**` module files (`.ko`, `.ko.xz`,
 * `.ko.gz`, `.ko.zst`), `modules.builtin` and `modules.builtin.modinfo`.
 * Decompresses with the host's `xz` (and `zstd` for `.zst`).
 */
export class KernelModuleTree implements ModuleSource {
  /** Absolute path of `.../modules/<version>`. */
  readonly dir: string;
  private readonly files = new Map<string, string>(); // name -> path relative to dir
  private readonly builtins = new Set<string>();
  private readonly builtinAliases: Array<{ alias: string; module: string }> = [];
  private readonly data = new Map<string, Promise<Uint8Array>>();
  private readonly infos = new Map<string, Promise<ModInfo>>();
  private aliasIndex: Promise<Array<{ alias: string; module: string }>> | undefined;

  /** @throws ImageError when `dir` has no `kernel/` folder. */
  constructor(dir: string) {
    this.dir = dir;
    const kernelDir = join(dir, 'kernel');
    try {
      if (!statSync(kernelDir).isDirectory()) throw new Error('not a directory');
    } catch {
      throw new ImageError(`no kernel modules at ${kernelDir}`);
    }
    const walk = (d: string): void => {
      for (const ent of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, ent.name);
        if (ent.isDirectory()) walk(p);
        else if (/\.ko(\.(xz|gz|zst))?$/.test(ent.name)) {
          const name = moduleNameFromPath(ent.name);
          if (!this.files.has(name)) this.files.set(name, relative(dir, p));
        }
      }
    };
    walk(kernelDir);
    try {
      for (const line of readFileSync(join(dir, 'modules.builtin'), 'utf8').split('\n')) {
        if (line.trim() !== '') this.builtins.add(moduleNameFromPath(line.trim()));
      }
    } catch {
      /* no modules.builtin: assume nothing is built in */
    }
    try {
      const text = readFileSync(join(dir, 'modules.builtin.modinfo'), 'latin1');
      for (const entry of text.split('\0')) {
        const m = /^([^.=]+)\.alias=(.+)$/.exec(entry);
        if (m) this.builtinAliases.push({ module: normalizeModuleName(m[1]!), alias: m[2]! });
      }
    } catch {
      /* optional */
    }
  }

  /** Names of all loadable modules. */
  names(): string[] {
    return [...this.files.keys()];
  }
  isBuiltin(name: string): boolean {
    return this.builtins.has(normalizeModuleName(name));
  }
  has(name: string): boolean {
    return this.files.has(normalizeModuleName(name));
  }
  /** Path of module `name` relative to {@link dir} (e.g. `kernel/fs/ext4/ext4.ko.xz`). */
  relPath(name: string): string {
    const p = this.files.get(normalizeModuleName(name));
    if (p === undefined) throw new ImageError(`kernel module ${name} not found in ${this.dir}`);
    return p;
  }

  /**
   * The decompressed module file (an ELF relocatable object).
   * @throws ImageError when it is missing or cannot be decompressed.
   */
  load(name: string): Promise<Uint8Array> {
    const n = normalizeModuleName(name);
    let p = this.data.get(n);
    if (!p) {
      p = this.decompress(this.relPath(n));
      this.data.set(n, p);
    }
    return p;
  }

  private async decompress(rel: string): Promise<Uint8Array> {
    const path = join(this.dir, rel);
    if (rel.endsWith('.ko')) return readFileSync(path);
    if (rel.endsWith('.gz')) return gunzipSync(readFileSync(path));
    const [tool, pkg] = rel.endsWith('.zst') ? ['zstd', 'zstd'] : ['xz', 'xz-utils'];
    const r = await run(tool, ['-dc', path], { purpose: 'decompress kernel modules', providedBy: pkg });
    if (r.code !== 0) throw new ImageError(`cannot decompress ${rel}: ${r.stderr.toString().trim()}`);
    return r.stdout;
  }

  info(name: string): Promise<ModInfo> {
    const n = normalizeModuleName(name);
    let p = this.infos.get(n);
    if (!p) {
      p = this.load(n).then((elf) => {
        try {
          const info = modinfoFromElf(elf);
          if (info.name === '') info.name = n;
          return info;
        } catch (e) {
          throw new ImageError(`cannot read .modinfo of ${this.relPath(n)}: ${(e as Error).message}`);
        }
      });
      this.infos.set(n, p);
    }
    return p;
  }

  /**
   * The module providing `alias`: a built-in one (from `modules.builtin.modinfo`), a
   * likely-named loadable one (`crypto-X` -> `X`, `X_generic`) whose aliases match, or
   * otherwise one found by scanning the modules under `kernel/crypto`, `kernel/lib` and
   * `kernel/arch` (where crypto and library providers live).
   */
  async resolveAlias(alias: string): Promise<string | undefined> {
    const builtin = this.builtinAliases.find((a) => globMatch(a.alias, alias));
    if (builtin) return builtin.module;
    const base = normalizeModuleName(alias.replace(/^crypto-/, ''));
    for (const cand of [base, `${base}_generic`]) {
      if (this.has(cand) && (await this.info(cand)).aliases.some((a) => globMatch(a, alias))) return cand;
    }
    this.aliasIndex ??= (async () => {
      const index: Array<{ alias: string; module: string }> = [];
      for (const [name, rel] of this.files) {
        if (!/^kernel\/(crypto|lib|arch)\//.test(rel)) continue;
        for (const a of (await this.info(name)).aliases) index.push({ alias: a, module: name });
      }
      return index;
    })();
    return (await this.aliasIndex).find((a) => globMatch(a.alias, alias))?.module;
  }
}

const MODULE_SIG_MAGIC = '~Module signature appended~\n';

/**
 * Remove an appended module signature (scripts/sign-file format: module bytes,
 * signature, 12-byte `struct module_signature` whose last field is the
 * big-endian signature length, then the magic string). Returns `ko` itself
 * when it carries no signature.
 *
 * The default image loads its modules unsigned: the kernel then skips hashing
 * and RSA-verifying megabytes of modules at every boot, which in a software
 * CPU costs tens of seconds. Such modules taint the kernel ("E" flag) unless
 * the kernel enforces signatures, which Debian's does not without Secure Boot.
 */
export function stripModuleSignature(ko: Uint8Array): Uint8Array {
  const magic = new TextEncoder().encode(MODULE_SIG_MAGIC);
  if (ko.length < magic.length + 12) return ko;
  const tail = ko.length - magic.length;
  for (let i = 0; i < magic.length; i++) if (ko[tail + i] !== magic[i]) return ko;
  const info = tail - 12;
  const sigLen = new DataView(ko.buffer, ko.byteOffset + info + 8, 4).getUint32(0, false);
  const end = info - sigLen;
  if (end <= 0) return ko;
  return ko.subarray(0, end);
}
