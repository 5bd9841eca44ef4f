/**
 * The `tsvisor` command line.
 */
import { Command, CommanderError, Option } from 'commander';
import { describeError } from './errors.js';
import { runCommand, type RunOptions } from './run.js';
import { ensureDefaultImage } from '../images/index.js';
import { registerHostCommands } from './host-commands.js';
import { registerDiskCommands } from './disk.js';

function buildProgram(): Command {
  const program = new Command();
  program.name('tsvisor').description('A hypervisor for RISC-V Linux guests, written in TypeScript')
    .version('0.1.0').exitOverride().showHelpAfterError(false);
  program.command('run')
    .description('boot a VM in the foreground; with a COMMAND, run it in the guest and exit with its status')
    .usage('[options] [-- COMMAND [ARG...]]')
    .addOption(new Option('-m, --memory <size>', 'guest RAM (K, M, G suffixes)').default('512M'))
    .addOption(new Option('--cpus <n>', 'number of vCPUs').default('1'))
    .option('--disk <path[,readonly]>', 'attach a disk image, raw or qcow2 (detected; repeatable: /dev/vda, /dev/vdb, ...)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--kernel <file>', 'Linux RISC-V Image to boot instead of the default image')
    .option('--initrd <file>', 'initramfs to use with --kernel')
    .option('--append <args>', 'extra kernel command-line arguments')
    .option('-v, --verbose', 'show boot messages')
    .argument('[command...]', 'command to run in the guest')
    .action(async (command: string[], opts: RunOptions) => {
      process.exitCode = await runCommand(opts, command);
    });
  const image = program.command('image').description('manage guest images');
  image.command('pull')
    .description('download the default image (Debian trixie riscv64 kernel + busybox) and build its initramfs')
    .option('--refresh', 'download again even if cached')
    .action(async (opts: { refresh?: boolean }) => {
      const img = await ensureDefaultImage({ refresh: !!opts.refresh });
      process.stdout.write(`kernel ${img.kernelVersion}\n  ${img.kernel}\n  ${img.initrd}\n`);
    });
  registerDiskCommands(program);
  registerHostCommands(program);
  return program;
}

/** Entry point: returns the process exit status. Errors are printed as one line. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
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
