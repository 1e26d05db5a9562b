/**
 * `tvm kernel build` and `tvm kernel path`: build (or reuse) the guest kernel and show where its
 * artifacts are. The lead wires registerKernelCommands into src/cli/main.ts.
 */
import { InvalidArgumentError, type Command } from 'commander';
import type { KernelArtifacts } from '../../vmm/kernel-artifacts.js';

// Loaded on use, so `tvm` starts without execa and the kernel build machinery.
const artifacts = () => import('../../vmm/kernel-artifacts.js');

function print(a: KernelArtifacts, json: boolean): void {
  if (json) process.stdout.write(JSON.stringify(a, null, 2) + '\n');
  else process.stdout.write(a.vmlinux + '\n');
}

export function registerKernelCommands(program: Command): void {
  const kernel = program.command('kernel').description('The guest kernel for --isolation=vm');

  kernel
    .command('build')
    .description('Build the guest kernel from linux-source-6.1 (cached: instant when nothing changed)')
    .option('-j, --jobs <n>', 'parallel make jobs (default: number of CPUs)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`must be a positive integer, not "${v}"`);
      return n;
    })
    .option('--json', 'print all artifact paths as JSON')
    .action(async (opts: { jobs?: number; json?: boolean }) => {
      const a = await (await artifacts()).buildKernel({ ...(opts.jobs !== undefined && { jobs: opts.jobs }) });
      print(a, opts.json ?? false);
    });

  kernel
    .command('path')
    .description('Print the path of the built vmlinux (fails if it is not built)')
    .option('--json', 'print all artifact paths as JSON')
    .option('--key', 'print only the cache key of the current kernel inputs')
    .action(async (opts: { json?: boolean; key?: boolean }) => {
      if (opts.key) {
        process.stdout.write((await (await artifacts()).kernelKey()) + '\n');
        return;
      }
      print(await (await artifacts()).findKernel(), opts.json ?? false);
    });
}
