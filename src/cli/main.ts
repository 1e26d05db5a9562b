import { Command } from 'commander';

const program = new Command();
program.name('tvm').description('A container engine: each container a KVM microVM or a shared-kernel container').version('0.1.0');

await program.parseAsync(process.argv);
