/** `tvm restart` and the `--restart` flag of `tvm run` (Docker's restart policies). */
import type { Command } from 'commander';
import { InvalidParameterError } from '../../errors.js';
import { withClient } from '../client.js';

/** `--restart NAME[:COUNT]` as the docker CLI parses it; the daemon validates the name. */
export function parseRestartFlag(v: string): { Name: string; MaximumRetryCount: number } {
  if (v === '') return { Name: '', MaximumRetryCount: 0 };
  const colon = v.indexOf(':');
  const name = colon < 0 ? v : v.slice(0, colon);
  const count = colon < 0 ? '' : v.slice(colon + 1);
  if (colon >= 0 && name === '') throw new InvalidParameterError('invalid restart policy format: no policy provided before colon');
  if (count !== '' && !/^[+-]?\d+$/.test(count))
    throw new InvalidParameterError('invalid restart policy format: maximum retry count must be an integer');
  return { Name: name, MaximumRetryCount: count === '' ? 0 : Number(count) };
}

export function registerRestartCommand(program: Command): void {
  program
    .command('restart')
    .description('Restart one or more containers')
    .argument('<containers...>')
    .option('-t, --time <seconds>', 'seconds to wait before killing the container')
    .option('-s, --signal <sig>', 'signal to send to stop the container')
    .action(async (ids: string[], o: { time?: string; signal?: string }) => {
      await withClient(async (c) => {
        let failed = false;
        for (const id of ids) {
          try {
            await c.ok('POST', `/containers/${encodeURIComponent(id)}/restart`, {
              query: { ...(o.time !== undefined && { t: o.time }), ...(o.signal !== undefined && { signal: o.signal }) },
            });
            process.stdout.write(`${id}\n`);
          } catch (e) {
            failed = true;
            process.stderr.write(`Error response from daemon: ${(e as Error).message}\n`);
          }
        }
        if (failed) process.exitCode = 1;
      });
    });
}
