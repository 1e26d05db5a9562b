/**
 * A unix socket path that fits sun_path (108 bytes with the NUL): a supervisor's socket lives
 * in its container's state directory, whose path can be longer; then it is reached through a
 * short symlink under the daemon's run root named by a hash of the real path.
 */
import { existsSync } from 'node:fs';
import { mkdir, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { TvmError } from '../errors.js';

/** sun_path holds 108 bytes including the NUL. */
export const SUN_PATH_MAX = 107;

export async function reachableSocketPath(sock: string, runRoot: string): Promise<string> {
  if (Buffer.byteLength(sock) <= SUN_PATH_MAX) return sock;
  const dir = path.join(runRoot, 'sock');
  await mkdir(dir, { recursive: true });
  const link = path.join(dir, createHash('sha256').update(sock).digest('hex').slice(0, 16));
  if (Buffer.byteLength(link) > SUN_PATH_MAX) {
    throw new TvmError('ERR_SOCKET_PATH', `runRoot ${runRoot} is too long for a unix socket path`);
  }
  if (!existsSync(link)) {
    // a dangling link from an earlier run, if any: symlink() below fails loudly if it is still in the way
    await unlink(link).catch(() => {});
    await symlink(sock, link);
  }
  return link;
}
