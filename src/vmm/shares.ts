/**
 * Shared folders of a VM: host directories the guest mounts over virtio-9p
 * (src/devices/virtio/9p.ts, served by src/devices/node/host-share.ts). Given as
 * `--share HOSTDIR:TAG[,readonly]` (as QEMU's `-virtfs local,path=HOSTDIR,mount_tag=TAG`),
 * kept in a definition as {@link ShareDefinition}s. Both images mount every share at boot
 * on `/mnt/TAG`; by hand: `mount -t 9p -o trans=virtio,version=9p2000.L TAG DIR`.
 */
import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { HostShare } from '../devices/node/host-share.js';
import { isValidMountTag } from '../devices/virtio/9p.js';
import type { ShareConfig } from '../machine/board.js';
import { mountSharesScript } from '../images/initramfs.js';

/**
 * Most shared folders per VM (each takes a virtio slot: with 7 disks and cards, the CD-ROM,
 * the agent, the balloon and a display's three, the board's 16 are full).
 */
export const MAX_SHARES = 3;

/** One shared folder: the host directory (absolute), its mount tag, and whether the guest may change it. */
export interface ShareDefinition {
  path: string;
  tag: string;
  readonly?: boolean;
}

/** A share that cannot be used (the message is one line for the user). */
export class ShareConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShareConfigError';
  }
}

const TAG_RULE = 'a tag is 1 to 31 letters, digits, "_", "-" or "."';

/**
 * Parses `HOSTDIR:TAG[,readonly|,ro]` (the directory may itself hold `:`; the tag is
 * after the last one). Relative directories are resolved against `cwd`. The directory is
 * not checked here (see {@link checkShareDirs}).
 * @throws ShareConfigError for a missing part, a bad tag or an unknown option.
 */
export function parseShareSpec(spec: string, cwd = process.cwd()): ShareDefinition {
  const comma = spec.indexOf(',');
  const head = comma < 0 ? spec : spec.slice(0, comma);
  const opts = comma < 0 ? [] : spec.slice(comma + 1).split(',');
  const colon = head.lastIndexOf(':');
  if (colon <= 0 || colon === head.length - 1) throw new ShareConfigError(`invalid --share "${spec}": expected HOSTDIR:TAG[,readonly]`);
  const tag = head.slice(colon + 1);
  if (!isValidMountTag(tag)) throw new ShareConfigError(`invalid --share "${spec}": tag "${tag}": ${TAG_RULE}`);
  let readonly = false;
  for (const o of opts) {
    if (o === 'readonly' || o === 'ro') readonly = true;
    else throw new ShareConfigError(`invalid --share "${spec}": "${o}" after a comma: ${TAG_RULE}, and the only option is "readonly"`);
  }
  const dir = head.slice(0, colon);
  return { path: isAbsolute(dir) ? dir : resolve(cwd, dir), tag, ...(readonly ? { readonly } : {}) };
}

/** `HOSTDIR:TAG[,readonly]`, as {@link parseShareSpec} reads it. */
export function formatShareSpec(s: ShareDefinition): string {
  return `${s.path}:${s.tag}${s.readonly ? ',readonly' : ''}`;
}

/**
 * Checks a list of shares: at most {@link MAX_SHARES}, valid tags, no tag twice, absolute
 * paths (relative ones resolved against `baseDir`).
 * @throws ShareConfigError
 */
export function checkShareList(v: unknown, baseDir: string): ShareDefinition[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ShareConfigError('shares must be an array');
  if (v.length > MAX_SHARES) throw new ShareConfigError(`at most ${MAX_SHARES} shared folders per VM (${v.length} given)`);
  const seen = new Set<string>();
  return v.map((x: unknown, i) => {
    const s = x as { path?: unknown; tag?: unknown; readonly?: unknown } | null;
    if (!s || typeof s.path !== 'string' || !s.path) throw new ShareConfigError(`shares[${i}].path must be a non-empty string`);
    if (typeof s.tag !== 'string' || !isValidMountTag(s.tag)) throw new ShareConfigError(`shares[${i}].tag ${JSON.stringify(s.tag)}: ${TAG_RULE}`);
    if (s.readonly !== undefined && typeof s.readonly !== 'boolean') throw new ShareConfigError(`shares[${i}].readonly must be a boolean`);
    if (seen.has(s.tag)) throw new ShareConfigError(`two shared folders are tagged "${s.tag}"`);
    seen.add(s.tag);
    return { path: isAbsolute(s.path) ? s.path : resolve(baseDir, s.path), tag: s.tag, ...(s.readonly ? { readonly: true } : {}) };
  });
}

/**
 * Checks that every share's directory exists and is a directory.
 * @throws ShareConfigError naming the first that is not.
 */
export function checkShareDirs(shares: readonly ShareDefinition[]): void {
  for (const s of shares) {
    let ok = false;
    try { ok = statSync(s.path).isDirectory(); } catch { /* missing */ }
    if (!ok) throw new ShareConfigError(`shared folder ${s.path} (tag ${s.tag}): no such directory`);
  }
}

/**
 * What the guest agent runs to mount every share on /mnt/TAG (a system image's udev may not
 * have loaded the 9p modules yet); shares already mounted are left alone.
 */
export function mountSharesAgentScript(): string {
  return `modprobe 9pnet_virtio 2>/dev/null; modprobe 9p 2>/dev/null\n${mountSharesScript()}`;
}

/** The open servers of a VM's shares, for every board it boots. */
export class VmShares {
  private readonly servers: { def: ShareDefinition; server: HostShare }[] = [];

  /**
   * Opens every share's directory (held open until {@link close}).
   * @throws ShareConfigError for a directory that cannot be opened (those opened are closed).
   */
  constructor(shares: readonly ShareDefinition[]) {
    try {
      for (const def of shares) {
        try {
          this.servers.push({ def, server: new HostShare(def.path, { readonly: def.readonly }) });
        } catch (e) {
          throw new ShareConfigError(`shared folder ${(e as Error).message}`);
        }
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** The board's shares. */
  boardConfig(): ShareConfig[] {
    return this.servers.map(({ def, server }) => ({ tag: def.tag, server }));
  }

  get count(): number {
    return this.servers.length;
  }

  /** Close every directory and open file. */
  close(): void {
    for (const s of this.servers) s.server.close();
  }
}
