/**
 * Docker's volume copy-up: a volume mounted over a directory the image fills gets the image's
 * files the first time, while it is still empty (dockerd copies at mount time; `nocopy` turns
 * it off). Owners, modes and times come along (`cp -a`), so an id-shifted base disk gives a
 * remapped container files it owns.
 */
import { execFile } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { TvmError } from '../../errors.js';
import type { Mount } from '../types.js';
import { resolveIn } from './archive.js';

const run = promisify(execFile);

async function isEmptyDir(p: string): Promise<boolean | undefined> {
  try {
    if (!(await stat(p)).isDirectory()) return undefined;
    return (await readdir(p)).length === 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw e;
  }
}

export async function copyUpVolumes(mounts: readonly Mount[], lower: string): Promise<void> {
  for (const m of mounts) {
    if (m.type !== 'volume' || m.copyUp !== true) continue;
    if ((await isEmptyDir(m.source)) !== true) continue;
    const from = await resolveIn(lower, m.destination);
    if ((await isEmptyDir(from)) !== false) continue; // nothing there in the image
    try {
      await run('cp', ['-a', '--', `${from}/.`, m.source]);
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new TvmError(
        'ERR_VOLUME_COPY',
        `copying the image's ${m.destination} into its volume: ${(err.stderr || err.message).trim()}`,
        500,
        { cause: e },
      );
    }
  }
}
