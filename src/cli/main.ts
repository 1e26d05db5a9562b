import { Command } from 'commander';
import { registerDaemonCommand } from './commands/daemon.js';
import { registerContainerCommands } from './commands/containers.js';
import { registerImageCommands } from './commands/images.js';
import { registerSystemCommands } from './commands/system.js';
import { registerKernelCommands } from './commands/kernel.js';
import { registerVmmCommands } from '../vmm/command.js';
import { registerRestartCommand } from './commands/restart.js';
import { registerUpdateCommand } from './commands/update.js';
import { registerDiffCommand } from './commands/diff.js';
import { isTvmError } from '../errors.js';

const program = new Command();
program.name('tvm').description('A container engine: each container a KVM microVM or a shared-kernel container').version('0.1.0');
// `tvm run IMAGE sh -c ...`: options after the image are the container's, not ours.
program.enablePositionalOptions();

registerDaemonCommand(program);
registerContainerCommands(program);
registerImageCommands(program);
registerSystemCommands(program);
registerKernelCommands(program);
registerVmmCommands(program);
registerRestartCommand(program);
registerUpdateCommand(program);
registerDiffCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const msg =
    isTvmError(e) && e.code.startsWith('HTTP_') ? `Error response from daemon: ${e.message}` : e instanceof Error ? e.message : String(e);
  process.stderr.write(`${msg}\n`);
  process.exitCode = process.exitCode || 1;
}
