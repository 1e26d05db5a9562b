/** `tvm images`, `pull`, `load`, `import`. */
import type { Command } from 'commander';
import { createReadStream } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { InvalidParameterError } from '../../errors.js';
import { ApiError, TvmClient, withClient } from '../client.js';
import { table } from '../output.js';
import { humanSize } from '../units.js';
import { humanDuration } from '../../api/human-duration.js';
import { pullImage } from './containers.js';
import { collect } from '../options.js';

export function registerImageCommands(program: Command): void {
  program
    .command('images')
    .description('List images')
    .option('-q, --quiet', 'only show image IDs')
    .option('--no-trunc', 'do not truncate output')
    .action(async (o: { quiet?: boolean; trunc: boolean }) => {
      await withClient(async (c) => {
        const list = await c.json<{ Id: string; RepoTags: string[]; Created: number; Size: number }[]>('GET', '/images/json');
        const short = (id: string) => (o.trunc ? id.replace(/^sha256:/, '').slice(0, 12) : id);
        if (o.quiet) {
          for (const i of list) process.stdout.write(`${short(i.Id)}\n`);
          return;
        }
        const rows = [['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE']];
        for (const i of list) {
          const tags = i.RepoTags.length > 0 ? i.RepoTags : ['<none>:<none>'];
          for (const t of tags) {
            const colon = t.lastIndexOf(':');
            rows.push([
              t.slice(0, colon),
              t.slice(colon + 1),
              short(i.Id),
              `${humanDuration(Date.now() - i.Created * 1000)} ago`,
              humanSize(i.Size),
            ]);
          }
        }
        table(rows);
      });
    });

  program
    .command('pull')
    .description('Pull an image from a registry')
    .argument('<image>')
    .action(async (image: string) => {
      await withClient((c) => pullImage(c, image, process.stdout));
    });

  const printStream = async (c: TvmClient, p: string, o: Parameters<TvmClient['jsonStream']>[2]) => {
    for await (const m of c.jsonStream<{ stream?: string; status?: string; error?: string }>('POST', p, o)) {
      if (m.error) throw new ApiError(500, m.error);
      if (m.stream) process.stdout.write(m.stream);
      else if (m.status) process.stdout.write(`${m.status}\n`);
    }
  };

  program
    .command('load')
    .description('Load images from a docker-archive or OCI layout tar (file or stdin)')
    .option('-i, --input <file>', 'read from a file instead of stdin')
    .option('-q, --quiet', 'suppress progress')
    .action(async (o: { input?: string; quiet?: boolean }) => {
      // Like docker: progress only on a terminal.
      const quiet = o.quiet === true || process.stdout.isTTY !== true;
      const stream = o.input ? await inputFile(o.input) : process.stdin;
      await withClient((c) => printStream(c, '/images/load', { query: { quiet }, stream }));
    });

  program
    .command('import')
    .description('Import a root filesystem tar as a one-layer image')
    .argument('<file>', 'tar file, or - for stdin')
    .argument('[reference]', 'repository[:tag]')
    .option('-c, --change <instr>', 'Dockerfile instruction to apply (CMD, ENV, ...; repeatable)', collect, [])
    .option('-m, --message <msg>', 'commit message')
    .action(async (file: string, reference: string | undefined, o: { change: string[]; message?: string }) => {
      let repo: string | undefined;
      let tag: string | undefined;
      if (reference) {
        const colon = reference.lastIndexOf(':');
        if (colon > reference.lastIndexOf('/')) {
          repo = reference.slice(0, colon);
          tag = reference.slice(colon + 1);
        } else repo = reference;
      }
      const stream = file === '-' ? process.stdin : await inputFile(file);
      await withClient((c) =>
        printStream(c, '/images/create', {
          query: { fromSrc: '-', ...(repo && { repo }), ...(tag && { tag }), changes: o.change, ...(o.message && { message: o.message }) },
          stream,
        }),
      );
    });
}

/**
 * Opens an input tar before the request starts: a missing file must be reported as such, as
 * docker does (`open x: no such file or directory`), not as a failed connection to the daemon.
 */
async function inputFile(file: string): Promise<Readable> {
  try {
    await access(file, constants.R_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InvalidParameterError(
      `open ${file}: ${code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`,
    );
  }
  return createReadStream(file);
}
