/**
 * The `tsvisor` command line.
 */
import { Command, CommanderError, Option } from 'commander';
import { describeError } from './errors.js';
import { runCommand, type RunOptions } from './run.js';
import { DEBIAN_IMAGE_NAME, cachePaths, ensureDefaultImage, listImages } from '../images/index.js';
import { UsageError } from './errors.js';
import { formatSize } from './size.js';
import { ENGINE_KINDS } from '../engine/hart-state.js';

/**
 * The command line's commands. `tsvisor run` (`first`) leaves out the disk and host
 * (daemon, VM, network) commands, whose modules it never uses; it loads those of a display,
 * a system disk's boot and network cards only when the VM has them (src/cli/run.ts). With
 * all of them loaded, the guest's first instruction came about 45 ms later.
 */
async function buildProgram(first: string | undefined): Promise<Command> {
  const program = new Command();
  program.name('tsvisor').description('A hypervisor for RISC-V Linux guests, written in TypeScript')
    .version('0.1.0').exitOverride().showHelpAfterError(false);
  program.command('run')
    .description('boot a VM in the foreground; with a COMMAND, run it in the guest and exit with its status')
    .usage('[options] [-- COMMAND [ARG...]]')
    .addOption(new Option('-m, --memory <size>', 'guest RAM (K, M, G suffixes)').default('512M'))
    .addOption(new Option('--cpus <n>', 'number of vCPUs').default('1'))
    .addOption(new Option('--engine <kind>', 'how guest code runs: jit (hot code translated to wasm) or interp (the interpreter alone)').choices(ENGINE_KINDS).default('jit'))
    .option('--disk <path[,readonly]>', 'attach a disk image, raw or qcow2 (detected; repeatable: /dev/vda, /dev/vdb, ...)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--kernel <file>', 'Linux RISC-V Image to boot instead of the default image')
    .option('--initrd <file>', 'initramfs to use with --kernel')
    .option('--append <args>', 'extra kernel command-line arguments')
    .option('-v, --verbose', 'show boot messages')
    .option('--stats', 'at the end, print instructions retired, MIPS and the JIT\'s figures to stderr')
    .option('--image <name>', 'boot a whole system image from its own disk (debian), on a throwaway copy-on-write overlay')
    .option('--disk-size <size>', 'with --image: size of the system disk (default: the image\'s)')
    .option('--boot-disk <file>', 'boot this system disk (raw or qcow2, written in place) through the firmware, from the kernel in its /boot')
    .option('--network <net>', 'network card: user (NAT through passt, the default), tap:IFNAME (an existing tap device) or none (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('-p, --publish <[ip:]hostport:guestport[/udp]>', 'forward a host port into the guest (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--net-rate <mbit>', 'bandwidth cap of each network card in Mbit/s, each way')
    .option('--cdrom <iso>', 'put an ISO 9660 image in the CD-ROM drive (the guest\'s /dev/sr0; read-only)')
    .option('--share <hostdir:tag[,readonly]>', 'share a host folder with the guest (virtio-9p; mounted on /mnt/TAG; repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--vnc <[host:]display>', 'a display (virtio-gpu, keyboard, tablet) served by a VNC server on HOST (default 127.0.0.1), port 5900 + DISPLAY, as QEMU\'s -vnc')
    .option('--vram <size>', 'with --vnc: graphics memory of the display (default 16M)')
    .option('--resolution <WxH>', 'with --vnc: the display\'s preferred mode (default 1280x800)')
    .argument('[command...]', 'command to run in the guest')
    .action(async (command: string[], opts: RunOptions) => {
      process.exitCode = await runCommand(opts, command);
    });
  const image = program.command('image').description('manage guest images');
  image.command('pull')
    .description('download and build an image: "default" (kernel + busybox initramfs) or "debian" (a whole Debian system disk)')
    .argument('[name]', 'default or debian', 'default')
    .option('--packages <a,b,c>', 'debian: extra packages to install')
    .option('--refresh', 'update the package lists now (and rebuild if versions changed)')
    .option('-v, --verbose', 'debian: show the console of the VM that configures the packages')
    .action(async (name: string, opts: { refresh?: boolean; packages?: string; verbose?: boolean }) => {
      if (name === 'default') {
        if (opts.packages) throw new UsageError('--packages applies to the debian image only');
        const img = await ensureDefaultImage({ refresh: !!opts.refresh });
        process.stdout.write(`kernel ${img.kernelVersion}\n  ${img.kernel}\n  ${img.initrd}\n`);
        return;
      }
      if (name !== DEBIAN_IMAGE_NAME) throw new UsageError(`unknown image "${name}" (known: default, ${DEBIAN_IMAGE_NAME})`);
      const packages = opts.packages ? opts.packages.split(',').map((p) => p.trim()).filter((p) => p !== '') : undefined;
      const { ensureDebianImage } = await import('../vmm/debian-build.js');
      const img = await ensureDebianImage({
        refresh: !!opts.refresh, packages,
        onConsole: opts.verbose ? (b) => process.stderr.write(b) : undefined,
      });
      process.stdout.write(`${img.name} (kernel ${img.kernelVersion}, ${Object.keys(img.packages).length} packages)\n  ${img.disk}\n`);
    });
  image.command('list')
    .description('list the images built in the cache')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const list = listImages(cachePaths());
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(list.map((i) => ({ name: i.name, path: i.path, size: i.size, created: i.created, current: i.current })), null, 2)}\n`);
        return;
      }
      const rows = [['NAME', 'SIZE', 'CREATED', 'PATH'], ...list.map((i) => [
        i.current ? i.name : `${i.name} (old)`, formatSize(i.size), i.created.replace(/\.\d+Z$/, 'Z'), i.path,
      ])];
      const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
      for (const r of rows) process.stdout.write(`${r.map((x, c) => (c === r.length - 1 ? x : x.padEnd(w[c]!))).join('  ')}\n`);
    });
  if (first !== 'run') {
    (await import('./disk.js')).registerDiskCommands(program);
    (await import('./host-commands.js')).registerHostCommands(program);
  }
  return program;
}

/** Entry point: returns the process exit status. Errors are printed as one line. */
export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(argv[0]);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return e.exitCode || 2;
    }
    process.stderr.write(`tsvisor: ${describeError(e)}\n`);
    if (process.env.TSVISOR_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return e && (e as Error).name === 'UsageError' ? 2 : 1;
  }
}
