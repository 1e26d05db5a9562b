/**
 * `docker commit` and the builder for a VM container: the changes of its disk over the
 * image's base disk (diffDisks, the list `docker diff` shows) as an image layer tar, read
 * offline from the container's disk, as src/runtime/host/layer-tar.ts packs an overlay upper:
 * added and modified paths as the disk has them (a directory as its entry only), deletions
 * as `.wh.<name>` files, files sharing an inode as one file and hard links to it, in the
 * change list's path order.
 */
import type { Readable } from 'node:stream';
import path from 'node:path';
import { tarStream } from '../../tar-stream-writer.js';
import { CHANGE_DELETED, type Change } from '../../fs-changes.js';
import type { Ext4Reader } from './reader.js';

const TYPE_BITS: Record<string, number> = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000,
};

export function diskChangesTar(disk: Ext4Reader, changes: Change[]): Readable {
  return tarStream(async ({ entry }) => {
    const inodes = new Map<number, string>();
    for (const c of changes) {
      const rel = c.Path.replace(/^\/+/, '');
      if (c.Kind === CHANGE_DELETED) {
        await entry({
          name: path.posix.join(path.posix.dirname(rel), `.wh.${path.posix.basename(rel)}`),
          type: 'file',
          size: 0,
          mode: 0o100600,
          uid: 0,
          gid: 0,
          mtime: new Date(0),
        });
        continue;
      }
      const e = await disk.stat(c.Path);
      if (e.type === 'sock') continue; // not archived, as moby's tar writer skips sockets
      // type bits included: tar-stream replaces a mode of 0 with its default
      const base = { name: rel, mode: e.mode | (TYPE_BITS[e.type] ?? 0), uid: e.uid, gid: e.gid, mtime: new Date(e.mtimeSec * 1000) };
      if (e.type === 'dir') await entry({ ...base, type: 'directory' });
      else if (e.type === 'symlink') await entry({ ...base, type: 'symlink', linkname: e.target ?? (await disk.readlink(c.Path)) });
      else if (e.type === 'file') {
        const first = e.nlink > 1 ? inodes.get(e.ino) : undefined;
        if (first !== undefined) {
          await entry({ ...base, type: 'link', linkname: first });
          continue;
        }
        if (e.nlink > 1) inodes.set(e.ino, rel);
        await entry({ ...base, type: 'file', size: e.size }, e.size > 0 ? disk.createReadStream(c.Path) : undefined);
      } else if (e.type === 'char' || e.type === 'block') {
        await entry({
          ...base,
          type: e.type === 'char' ? 'character-device' : 'block-device',
          devmajor: e.device?.major ?? 0,
          devminor: e.device?.minor ?? 0,
        });
      } else if (e.type === 'fifo') await entry({ ...base, type: 'fifo' });
    }
  });
}
