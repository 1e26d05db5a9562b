/**
 * `docker commit` and the builder's RUN steps: an overlay container's writable layer as an image
 * layer tar, built from the same change list as `docker diff` (overlayChanges), as moby's
 * archive.ExportChanges builds it from archive.ChangesDirs:
 *
 * - an added or modified path is archived as the upper directory holds it (a modified
 *   directory as a directory entry only: its unchanged children stay in the lower layers);
 * - a deleted path becomes an empty `.wh.<name>` file beside it (the OCI/Docker whiteout);
 * - files sharing an inode in the upper are one file and hard links to it, as moby's
 *   tar writer records them;
 * - entries come in the change list's byte-wise path order, so a directory precedes its contents.
 *
 * The runtime's own mount points (DOCKER_INIT_PATHS) are not part of the change list, so they
 * never reach an image, as with Docker's init layer.
 */
import { createReadStream, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { tarStream } from '../../tar-stream-writer.js';
import { CHANGE_DELETED, type Change } from '../types.js';
import type { MapIds } from './remap-ids.js';

/** files up to this size are read in one synchronous call */
const SMALL_FILE = 1 << 20;

/** A tar of `changes` read from `upper` (container paths are absolute: `/etc/passwd`). */
export function changesTar(upper: string, changes: Change[], mapIds?: MapIds): Readable {
  return tarStream(async ({ entry, entryBuffer }) => {
    const inodes = new Map<string, string>();
    let n = 0;
    for (const c of changes) {
      if (++n % 256 === 0) await new Promise((r) => setImmediate(r));
      const rel = c.Path.replace(/^\/+/, '');
      if (c.Kind === CHANGE_DELETED) {
        const name = path.posix.join(path.posix.dirname(rel), `.wh.${path.posix.basename(rel)}`);
        await entry({ name, type: 'file', size: 0, mode: 0o600, uid: 0, gid: 0, mtime: new Date(0) });
        continue;
      }
      const host = path.join(upper, rel);
      const st = lstatSync(host);
      const ids = mapIds ? mapIds(st.uid, st.gid, c.Path) : { uid: st.uid, gid: st.gid };
      // the whole st_mode: tar-stream replaces a mode of 0 with its default, type bits are masked off
      const base = { name: rel, mode: st.mode, uid: ids.uid, gid: ids.gid, mtime: st.mtime };
      if (st.isDirectory()) await entry({ ...base, type: 'directory' });
      else if (st.isSymbolicLink()) await entry({ ...base, type: 'symlink', linkname: readlinkSync(host) });
      else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? inodes.get(key) : undefined;
        if (first !== undefined) {
          await entry({ ...base, type: 'link', linkname: first });
          continue;
        }
        if (st.nlink > 1) inodes.set(key, rel);
        // small files in one read: a layer of many small files is mostly per-file overhead
        if (st.size > 0 && st.size <= SMALL_FILE) await entryBuffer({ ...base, type: 'file', size: st.size }, readFileSync(host));
        else await entry({ ...base, type: 'file', size: st.size }, st.size > 0 ? createReadStream(host) : undefined);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const devmajor = Math.floor(st.rdev / 256) & 0xfff;
        const devminor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
        await entry({ ...base, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor, devminor });
      } else if (st.isFIFO()) await entry({ ...base, type: 'fifo' });
      // sockets are not archived (moby's tar writer skips them too)
    }
  });
}
