/**
 * `tvm vmm run`: boot a kernel in a microVM with the console on stdio. Defined here, not in
 * src/cli, because the stand-alone VMM process (vmm-process.ts) runs the same command and the
 * VMM layer must not import the CLI above it.
 */
import type { Command } from 'commander';
import { isTvmError } from '../errors.js';

export function registerVmmCommands(program: Command): void {
  const vmm = program.command('vmm').description('the microVM monitor');
  vmm
    .command('run')
    .description('boot a Linux kernel (ELF vmlinux or bzImage) with the console on stdio; exit status = how the guest ended')
    .requiredOption('--kernel <path>', 'kernel: ELF vmlinux or bzImage')
    .option('--initrd <path>', 'initramfs (uncompressed cpio is fastest on PVM)')
    .option('--append <args>', 'kernel command line (console, reboot=k, panic=1 are added unless given)', '')
    .option('--mem <MiB>', 'guest memory in MiB', '256')
    .option('--cpus <n>', 'number of vCPUs', '1')
    .option('--boot <protocol>', 'linux64 (enter startup_64) or pvh (ELF PVH note)', 'linux64')
    .option('-v, --verbose', 'report refused MSRs, exit counts')
    .action(async (o: { kernel: string; initrd?: string; append: string; mem: string; cpus: string; boot: string; verbose?: boolean }) => {
      try {
        if (o.boot !== 'linux64' && o.boot !== 'pvh') throw new Error(`--boot ${o.boot}: linux64 or pvh`);
        // Loaded on use: koffi and the VMM are not needed by other commands.
        const { runVmm, parsePositiveInt } = await import('./main.js');
        process.exitCode = await runVmm({
          kernel: o.kernel,
          initrd: o.initrd,
          append: o.append,
          memMiB: parsePositiveInt(o.mem, '--mem'),
          cpus: parsePositiveInt(o.cpus, '--cpus'),
          boot: o.boot,
          verbose: o.verbose,
        });
      } catch (e) {
        process.stderr.write(`tvm vmm: ${isTvmError(e) ? `${e.message} (${e.code})` : (e as Error).message}\n`);
        process.exitCode = 125;
      }
    });
}
