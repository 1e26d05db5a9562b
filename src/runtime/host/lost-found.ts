/**
 * The base disk is ext4, whose root holds /lost+found (e2fsck wants it there); Docker's
 * rootfs has none, so a container never shows it (nor does its export). The writable layer
 * gets an overlay whiteout for it when the disk's one is the empty directory mkfs-style
 * writers make (an image that ships files in its own /lost+found keeps them).
 */
import { execFile } from 'node:child_process';
import { lchown, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const LOST_FOUND = '/lost+found';

export async function hideLostFound(lower: string, upper: string, owner?: { uid: number; gid: number }): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(path.join(lower, 'lost+found'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (entries.length > 0) return;
  const wh = path.join(upper, 'lost+found');
  // an overlay whiteout is a 0/0 character device (Node has no mknod)
  await run('mknod', ['-m', '000', wh, 'c', '0', '0']);
  if (owner) await lchown(wh, owner.uid, owner.gid);
}
