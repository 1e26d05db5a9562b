/**
 * With `--userns-remap`, the containers' root is an unprivileged id on the host: it must be able
 * to pass through the data and exec roots to reach its overlay dirs and base-disk mounts. Docker
 * makes its root 0711 for the same reason; tvm does that for the two roots it owns and refuses to
 * start, naming the directory, when an ancestor still blocks the way (instead of every container
 * failing later with EACCES from mount).
 */
import { chmod, stat } from 'node:fs/promises';
import path from 'node:path';
import { TvmError } from '../errors.js';

/** Can uid/gid search (x) this directory? Pure, for tests. */
export function canSearch(st: { mode: number; uid: number; gid: number }, who: { uid: number; gid: number }): boolean {
  if (st.uid === who.uid) return (st.mode & 0o100) !== 0;
  if (st.gid === who.gid) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

/** Every ancestor of each root, the roots themselves made 0711-searchable if they are not. */
export async function checkReachable(who: { uid: number; gid: number }, roots: string[]): Promise<void> {
  for (const root of roots) {
    const abs = path.resolve(root);
    const st = await stat(abs);
    if (!canSearch(st, who)) await chmod(abs, (st.mode & 0o7777) | 0o011);
    for (let dir = path.dirname(abs); ; dir = path.dirname(dir)) {
      const s = await stat(dir);
      if (!canSearch(s, who)) {
        throw new TvmError(
          'ERR_USERNS_UNREACHABLE',
          `--userns-remap: the containers' root (${who.uid}:${who.gid}) cannot pass through ${dir} (mode ${(s.mode & 0o7777).toString(8)}) to reach ${abs}: make it searchable (chmod o+x ${dir}) or use a data/exec root under a searchable path`,
          500,
        );
      }
      if (dir === path.dirname(dir)) break;
    }
  }
}
