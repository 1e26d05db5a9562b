/**
 * Stand-alone VMM process: `node vmm-process.js run --kernel ...` (or through tsx from the
 * sources). Supervisors and benchmarks spawn this; `tvm vmm run` is the same command.
 */
import { Command } from 'commander';
import { registerVmmCommands } from './command.js';

const program = new Command().name('tvm-vmm');
registerVmmCommands(program);
await program.parseAsync(['node', 'tvm-vmm', 'vmm', ...process.argv.slice(2)]);
