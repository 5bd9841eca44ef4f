/**
 * `tsvisor disk create FILE [SIZE] [--backing BASE] [--format qcow2|raw]` and
 * `tsvisor disk info FILE [--json]`: disk images on the host, like `qemu-img create`
 * and `qemu-img info`. Errors are one line (BlockError: exit status 1; bad arguments:
 * UsageError, exit status 2).
 */
import type { Command } from 'commander';
import { DISK_FORMATS, type DiskFormat } from '../devices/block/image.js';
import { createDisk, diskInfo, type DiskImageInfo, type DiskInfo } from '../devices/node/disk.js';
import { UsageError } from './errors.js';
import { formatSize, parseSize } from './size.js';

const out = (s: string) => process.stdout.write(s);

function formatOption(text: string | undefined, what: string): DiskFormat | undefined {
  if (text === undefined) return undefined;
  if (!DISK_FORMATS.includes(text as DiskFormat)) throw new UsageError(`invalid ${what} "${text}": expected ${DISK_FORMATS.join(' or ')}`);
  return text as DiskFormat;
}

/** A size in binary units with its byte count, e.g. "10 MiB (10485760 bytes)". */
function sizeText(bytes: number): string {
  return bytes < 1024 ? `${bytes} bytes` : `${formatSize(bytes)} (${bytes} bytes)`;
}

/** `tsvisor disk info` text for one image and its chain. */
export function formatDiskInfo(info: DiskInfo): string {
  const lines: Array<[string, string]> = [
    ['image', info.path],
    ['format', info.format + (info.qcow2 ? ` (version ${info.qcow2.version})` : '')],
    ['virtual size', sizeText(info.virtualSize)],
    ['disk size', formatSize(info.actualSize)],
  ];
  if (info.clusterSize !== undefined) lines.push(['cluster size', formatSize(info.clusterSize)]);
  if (info.qcow2) {
    lines.push(['refcount bits', String(info.qcow2.refcountBits)]);
    if (info.qcow2.snapshots) lines.push(['snapshots', String(info.qcow2.snapshots)]);
    if (info.qcow2.dirty) lines.push(['dirty', 'yes (repair with: qemu-img check -r all)']);
    if (info.qcow2.corrupt) lines.push(['corrupt', 'yes']);
  }
  if (info.backingFile !== undefined) {
    const fmt = info.backingFormat ?? `${info.chain[1]?.format ?? '?'}, detected`;
    lines.push(['backing file', `${info.backingFile}${info.fullBackingFile && info.fullBackingFile !== info.backingFile ? ` (${info.fullBackingFile})` : ''}`]);
    lines.push(['backing format', fmt]);
  }
  if (info.chain.length > 1) lines.push(['chain', info.chain.map((c: DiskImageInfo) => `${c.path} (${c.format})`).join(' -> ')]);
  return lines.map(([k, v]) => `${(k + ':').padEnd(16)}${v}\n`).join('');
}

/** Register `disk create` and `disk info` on `program`. */
export function registerDiskCommands(program: Command): void {
  const disk = program.command('disk').description('create and inspect disk images (raw, qcow2)');
  disk.command('create')
    .description('create a disk image; with --backing, a qcow2 copy-on-write overlay over BASE')
    .argument('<file>', 'the new image (an existing file is never overwritten)')
    .argument('[size]', "virtual size with K, M, G, T suffixes (default with --backing: the backing image's size)")
    .option('-f, --format <format>', 'qcow2 or raw', 'qcow2')
    .option('-b, --backing <base>', "backing image, stored as given (a relative name is relative to FILE's directory)")
    .option('-F, --backing-format <format>', 'format of the backing image (default: detected)')
    .option('--cluster-size <size>', 'qcow2 cluster size, 512 to 2M (default 64K)')
    .action((file: string, sizeArg: string | undefined, o: { format: string; backing?: string; backingFormat?: string; clusterSize?: string }) => {
      const format = formatOption(o.format, '--format')!;
      const backingFormat = formatOption(o.backingFormat, '--backing-format');
      if (o.backing === undefined && sizeArg === undefined) throw new UsageError('disk create needs a SIZE (or --backing BASE to take it from)');
      if (o.backing !== undefined && format === 'raw') throw new UsageError('a raw image cannot have a backing file (use --format qcow2)');
      if (backingFormat && o.backing === undefined) throw new UsageError('--backing-format needs --backing');
      let size: number | undefined;
      if (sizeArg !== undefined) {
        size = parseSize(sizeArg, 'disk size');
        if (size % 512 !== 0) throw new UsageError(`invalid disk size "${sizeArg}": must be a multiple of 512 bytes`);
      }
      let clusterSize: number | undefined;
      if (o.clusterSize !== undefined) {
        clusterSize = parseSize(o.clusterSize, '--cluster-size');
        if (clusterSize < 512 || clusterSize > 2 << 20 || (clusterSize & (clusterSize - 1)) !== 0) {
          throw new UsageError(`invalid --cluster-size "${o.clusterSize}": expected a power of two from 512 to 2M`);
        }
        if (format === 'raw') throw new UsageError('--cluster-size applies to qcow2 images only');
      }
      const r = createDisk(file, { format, size, backing: o.backing, backingFormat, clusterSize });
      out(`created ${file}: ${format}, ${sizeText(r.size)}${o.backing !== undefined ? `, backing ${o.backing} (${r.backingFormat})` : ''}\n`);
    });
  disk.command('info')
    .description('show a disk image: format, virtual size, space used, cluster size, backing chain')
    .argument('<file>', 'the image')
    .option('-f, --format <format>', 'qcow2 or raw (default: detected)')
    .option('--json', 'as JSON')
    .action((file: string, o: { format?: string; json?: boolean }) => {
      const info = diskInfo(file, { format: formatOption(o.format, '--format') });
      out(o.json ? JSON.stringify(info, null, 2) + '\n' : formatDiskInfo(info));
    });
}
