/** `tvm diff` (docker diff): what a container changed in its filesystem, against its image. */
import type { Command } from 'commander';
import { withClient } from '../client.js';

export interface ChangeJson {
  Path: string;
  Kind: number;
}

/** Docker's letters: C modified, A added, D deleted; one change a line, in the daemon's order. */
export function formatChanges(changes: ChangeJson[] | null): string {
  return (changes ?? []).map((c) => `${'CAD'[c.Kind] ?? '?'} ${c.Path}\n`).join('');
}

export function registerDiffCommand(program: Command): void {
  program
    .command('diff')
    .description("Inspect changes to files or directories on a container's filesystem")
    .argument('<container>')
    .action(async (container: string) => {
      await withClient(async (c) => {
        const changes = await c.json<ChangeJson[] | null>('GET', `/containers/${encodeURIComponent(container)}/changes`);
        process.stdout.write(formatChanges(changes));
      });
    });
}
