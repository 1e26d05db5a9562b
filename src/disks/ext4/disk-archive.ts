/**
 * `docker cp` out of, `docker export` of and `docker diff` on a stopped VM container, read
 * offline from its disk (the qcow2 overlay over the image's base disk) with Ext4Reader: no guest
 * is booted and the disk is never written.
 *
 * The tars hold what Docker's hold: every entry with mode, owner and mtime, hard links as links
 * to the first name of the inode, devices with their numbers, symlinks with their targets.
 * Extended attributes are not carried (the ext2fs binding does not read them).
 */
import type { Readable } from 'node:stream';
import type { Header as TarHeader } from 'tar-stream';
import { tarStream, type TarEntryHeader as Header } from '../../tar-stream-writer.js';

/** what pack.entry takes: a name and the fields that apply */
import { FormatError, NotFoundError } from '../../errors.js';
import { CHANGE_ADDED, CHANGE_DELETED, CHANGE_MODIFIED, type Change } from '../../fs-changes.js';
import type { Ext4Entry, Ext4Reader } from './reader.js';

/** mke2fs's directory and ext4's own: not part of any image or container */
const LOST_AND_FOUND = '/lost+found';

const TAR_TYPE: Record<Ext4Entry['type'], TarHeader['type'] | undefined> = {
  file: 'file',
  dir: 'directory',
  symlink: 'symlink',
  char: 'character-device',
  block: 'block-device',
  fifo: 'fifo',
  sock: undefined, // sockets are not archived (as Docker's tar writer skips them)
};

/**
 * The guest wrote this filesystem and can point a directory entry at an ancestor: a walk keeps
 * the directory inodes on its current path and refuses to enter one twice (an endless walk
 * otherwise ends only when libext2fs runs out of WASM memory, taking every later mount with it).
 */
function enterDir(onPath: Set<number>, e: Ext4Entry, image: string): void {
  if (onPath.has(e.ino))
    throw new FormatError(`${image}: directory cycle at ${e.path} (inode ${e.ino} is its own ancestor)`, 'ERR_EXT4_FORMAT');
  onPath.add(e.ino);
}

/** ext4 paths use '/' and are absolute */
const childPath = (dir: string, name: string) => (dir === '/' ? `/${name}` : `${dir}/${name}`);

function header(e: Ext4Entry, name: string): Header | undefined {
  const type = TAR_TYPE[e.type];
  if (!type) return undefined;
  const h: Header = { name, type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: new Date(e.mtimeSec * 1000) };
  if (type === 'file') h.size = e.size;
  if (type === 'symlink') h.linkname = e.target ?? '';
  if (e.device) {
    h.devmajor = e.device.major;
    h.devminor = e.device.minor;
  }
  return h;
}

/**
 * A tar of `containerPath` (named by its base name, like Docker's archive endpoint) or, with
 * `containerPath` "/", of the whole filesystem named relative to it (docker export). Symlinks
 * in the path are resolved inside the disk; the last component is archived as it is.
 */
export async function archiveFromDisk(reader: Ext4Reader, containerPath: string, opts: { exportRoot?: boolean } = {}): Promise<Readable> {
  const parent = await reader.resolve(containerPath.replace(/\/+$/, '').split('/').slice(0, -1).join('/') || '/');
  const base = containerPath.replace(/\/+$/, '').split('/').pop() ?? '';
  const start = base === '' || base === '.' ? parent : childPath(parent, base);
  let top: Ext4Entry;
  try {
    top = await reader.stat(start);
  } catch (e) {
    if (e instanceof NotFoundError) throw new NotFoundError(`Could not find the file ${containerPath} in container`);
    throw e;
  }
  const rootName = opts.exportRoot ? '.' : start === '/' ? '.' : start.split('/').pop()!;
  const firstName = new Map<number, string>();
  const onPath = new Set<number>();
  return tarStream(async ({ entry }) => {
    const walk = async (e: Ext4Entry, name: string): Promise<void> => {
      if (e.type !== 'dir' && e.nlink > 1) {
        const first = firstName.get(e.ino);
        if (first !== undefined) {
          await entry({ name, type: 'link', linkname: first, mode: e.mode, uid: e.uid, gid: e.gid, mtime: new Date(e.mtimeSec * 1000) });
          return;
        }
        firstName.set(e.ino, name);
      }
      const h = header(e, name);
      if (!h) return;
      const isExportRoot = opts.exportRoot && name === '.';
      if (e.type === 'file') {
        await entry(h, e.size > 0 ? reader.createReadStream(e.path) : undefined);
        return;
      }
      // docker export names entries relative to the root and has no entry for the root itself
      if (!isExportRoot) await entry(h);
      if (e.type !== 'dir') return;
      enterDir(onPath, e, "the container's disk");
      for (const child of (await reader.readdir(e.path)).sort()) {
        const p = childPath(e.path, child);
        if (p === LOST_AND_FOUND) continue;
        await walk(await reader.stat(p), name === '.' ? child : `${name}/${child}`);
      }
      onPath.delete(e.ino);
    };
    await walk(top, rootName);
  });
}

/** The whole filesystem as `docker export` writes it. */
export function exportDisk(reader: Ext4Reader): Promise<Readable> {
  return archiveFromDisk(reader, '/', { exportRoot: true });
}

/** moby's statDifferent, at the resolution the reader gives (whole seconds) */
function statDifferent(a: Ext4Entry, b: Ext4Entry): boolean {
  if (a.type !== b.type || a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid) return true;
  if (a.device?.major !== b.device?.major || a.device?.minor !== b.device?.minor) return true;
  if (a.type === 'symlink' && a.target !== b.target) return true;
  return a.type !== 'dir' && (a.mtimeSec !== b.mtimeSec || a.size !== b.size);
}

function byteOrder(a: Change, b: Change): number {
  return Buffer.compare(Buffer.from(a.Path), Buffer.from(b.Path));
}

/**
 * `docker diff` of a VM container: its disk (`top`) against its image's base disk (`base`),
 * with Docker's rules (moby's ChangesDirs): added, deleted (nothing reported below a deleted
 * directory), modified (type, mode, owner, device; for non-directories also mtime and size),
 * and every directory holding a change modified too. `hidden` paths (what the runtime makes
 * and Docker keeps in its init layer) are neither reported nor walked.
 */
export async function diffDisks(base: Ext4Reader, top: Ext4Reader, hidden: readonly string[] = []): Promise<Change[]> {
  const skip = new Set([LOST_AND_FOUND, ...hidden]);
  const out: Change[] = [];
  const onPath = new Set<number>();
  /** reports the changes below directory `dir`; returns whether there were any */
  const walk = async (dir: string, baseHasDir: boolean): Promise<boolean> => {
    const before = out.length;
    enterDir(onPath, await top.stat(dir), "the container's disk");
    const topNames = await top.readdir(dir);
    const baseNames = baseHasDir ? await base.readdir(dir) : [];
    for (const name of topNames) {
      const p = childPath(dir, name);
      if (skip.has(p)) continue;
      const t = await top.stat(p);
      const b = baseHasDir ? await base.statOrNull(p) : null;
      const at = out.length;
      let self: Change['Kind'] | undefined;
      if (!b) self = CHANGE_ADDED;
      else if (statDifferent(b, t)) self = CHANGE_MODIFIED;
      if (self !== undefined) out.push({ Path: p, Kind: self });
      if (t.type === 'dir') {
        const inner = await walk(p, b?.type === 'dir');
        if (inner && self === undefined) out.splice(at, 0, { Path: p, Kind: CHANGE_MODIFIED });
      }
    }
    onPath.delete((await top.stat(dir)).ino);
    const inTop = new Set(topNames);
    for (const name of baseNames) {
      const p = childPath(dir, name);
      if (!inTop.has(name) && !skip.has(p)) out.push({ Path: p, Kind: CHANGE_DELETED });
    }
    return out.length > before;
  };
  await walk('/', true);
  return out.sort(byteOrder);
}
