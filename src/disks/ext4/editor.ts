/**
 * Offline edits of an ext4 disk (raw or a qcow2 overlay): `docker cp` into a stopped VM
 * container writes the files into its differencing disk, through libext2fs (WASM) over our
 * qcow2 backend, without booting the guest.
 *
 * All or nothing: the edits go to a sparse copy of the image file that replaces the original
 * by rename only when every edit succeeded; a bad archive or a full disk leaves the container's
 * disk as it was. For a qcow2 overlay the copy is the overlay alone (the backing base disk is
 * shared and never written), and relative backing paths still resolve since the copy sits in
 * the same directory.
 *
 * What libext2fs cannot do offline and is therefore refused, not approximated: device nodes,
 * fifos, sockets, extended attributes. mtimes/atimes are set by patching the inodes after
 * libext2fs has unmounted (inode-times.ts).
 */
import { execFile } from 'node:child_process';
import { open as fsOpen, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mount, umount } from './ext2fs.js';
import { extract, type Header } from 'tar-stream';
import { ConflictError, FormatError, InvalidParameterError, NotFoundError, NotImplementedError, TvmError } from '../../errors.js';
import { safeEntryName, tarError } from '../../tar-safety.js';
import { openDiskImage, type DiskFormat } from '../disk-image.js';
import { PassThroughDisk } from './ext2fs-disk.js';
import { readSuperblockFacts, setInodeTimes, type InodeTimes } from './inode-table.js';
import type { Timestamp } from './inode.js';
import { Ext4Reader } from './reader.js';

const run = promisify(execFile);
/** bytes handed to libext2fs per write call */
const WRITE_CHUNK = 1 << 20;

export interface EntryAttrs {
  /** permission bits incl. setuid/setgid/sticky */
  mode: number;
  uid: number;
  gid: number;
  /** default: the time of the edit */
  mtime?: Timestamp;
}

export interface ExtractOptions {
  /** Docker's noOverwriteDirNonDir: refuse to replace a directory by a non-directory or back */
  noOverwriteDirNonDir?: boolean;
}

function toTimestamp(d: Date): Timestamp {
  const ms = d.getTime();
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: (ms - sec * 1000) * 1_000_000 };
}

export class Ext4Editor extends Ext4Reader {
  private readonly times = new Map<string, Timestamp>();

  /**
   * Runs `fn` on a writable view of the filesystem in `image`; the image is replaced only if
   * fn resolves. Refuses a filesystem whose journal still needs replaying (the guest stopped
   * uncleanly): writing around an unreplayed journal would be lost or corrupt on the next boot.
   */
  static async edit<T>(image: string, fn: (ed: Ext4Editor) => Promise<T>, opts: { format?: DiskFormat } = {}): Promise<T> {
    const work = path.join(path.dirname(image), `.${path.basename(image)}.edit-${randomBytes(6).toString('hex')}`);
    try {
      await run('cp', ['--sparse=always', '--reflink=auto', '--', image, work]);
    } catch (e) {
      await rm(work, { force: true });
      if ((e as { stderr?: string }).stderr?.includes('No such file'))
        throw new NotFoundError(`${image}: no such disk image`, 'ERR_DISK_NOT_FOUND');
      throw new TvmError('ERR_DISK_IO', `copying ${image} for an offline edit failed: ${(e as Error).message}`, 500, { cause: e });
    }
    let disk: Awaited<ReturnType<typeof openDiskImage>> | undefined;
    try {
      disk = await openDiskImage(work, { readOnly: false, ...opts });
      const facts = await readSuperblockFacts(disk, image);
      if (facts.needsRecovery) {
        throw new ConflictError(
          `${image}: the filesystem's journal needs recovery (the container did not stop cleanly); start it once to replay the journal, then retry`,
          'ERR_EXT4_NEEDS_RECOVERY',
        );
      }
      let fs;
      try {
        fs = await mount(new PassThroughDisk(disk));
      } catch (e) {
        throw new FormatError(`${image} is not a writable ext4 filesystem: ${(e as Error).message}`, 'ERR_EXT4_FORMAT', { cause: e });
      }
      const ed = new Ext4Editor(image, disk, fs);
      let result: T;
      let updates: InodeTimes[];
      try {
        result = await fn(ed);
        updates = await ed.pendingTimes();
      } catch (e) {
        // the edit's error is thrown; unmounting the in-memory filesystem frees memory only
        await umount(fs).catch(() => {});
        throw e;
      }
      await umount(fs);
      await setInodeTimes(disk, image, updates);
      await disk.close();
      disk = undefined;
      await rename(work, image);
      const dir = await fsOpen(path.dirname(image), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
      return result;
    } catch (e) {
      // on an error path the original error is what the caller needs; the handle is released even if close() reports one
      await disk?.close().catch(() => {});
      await rm(work, { force: true });
      throw e;
    }
  }

  private get p() {
    return this.fs.promises;
  }

  private async applyAttrs(p: string, a: EntryAttrs, isSymlink = false): Promise<void> {
    await this.p.lchown(p, a.uid, a.gid);
    if (!isSymlink) await this.p.lchmod(p, a.mode & 0o7777);
    this.times.set(p, a.mtime ?? toTimestamp(new Date()));
  }

  /** Creates missing directories along `p` (resolved, no symlinks) as root 0755, like mkdir -p. */
  async mkdirp(p: string): Promise<void> {
    const parts = p.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const dir = '/' + parts.slice(0, i).join('/');
      const st = await this.statOrNull(dir);
      if (!st) await this.p.mkdir(dir, 0o755);
      else if (st.type !== 'dir') throw new InvalidParameterError(`${dir} exists in ${this.image} and is not a directory`);
    }
  }

  /** Removes `p` (a directory with everything below it). */
  async remove(p: string, onPath: Set<number> = new Set()): Promise<void> {
    const st = await this.statOrNull(p);
    if (!st) return;
    if (st.type === 'dir') {
      // the guest wrote this disk and can point an entry at an ancestor: never enter one twice
      if (onPath.has(st.ino))
        throw new FormatError(`${this.image}: directory cycle at ${p} (inode ${st.ino} is its own ancestor)`, 'ERR_EXT4_FORMAT');
      onPath.add(st.ino);
      for (const name of await this.readdir(p)) await this.remove(`${p === '/' ? '' : p}/${name}`, onPath);
      onPath.delete(st.ino);
      await this.p.rmdir(p);
    } else {
      await this.p.unlink(p);
    }
    this.times.delete(p);
  }

  async mkdir(p: string, a: EntryAttrs): Promise<void> {
    const st = await this.statOrNull(p);
    if (st && st.type !== 'dir') await this.remove(p);
    if (!st || st.type !== 'dir') await this.p.mkdir(p, a.mode & 0o777);
    await this.applyAttrs(p, a);
  }

  /** Replaces whatever non-directory is at `p` with a regular file holding `data`. */
  async writeFile(p: string, data: Buffer | AsyncIterable<Buffer>, a: EntryAttrs): Promise<void> {
    await this.remove(p);
    const h = await this.p.open(p, 'w', a.mode & 0o777);
    try {
      let pos = 0;
      const put = async (b: Buffer) => {
        for (let off = 0; off < b.length; off += WRITE_CHUNK) {
          const part = b.subarray(off, off + WRITE_CHUNK);
          const { bytesWritten } = await this.p.write(h.fd, part, 0, part.length, pos);
          if (bytesWritten !== part.length)
            throw new TvmError('ERR_DISK_FULL', `${this.image}: short write to ${p} (no space left on the disk?)`, 507);
          pos += part.length;
        }
      };
      if (Buffer.isBuffer(data)) await put(data);
      else for await (const chunk of data) await put(chunk);
    } finally {
      await this.p.close(h.fd);
    }
    await this.applyAttrs(p, a);
  }

  async symlink(target: string, p: string, a: EntryAttrs): Promise<void> {
    await this.remove(p);
    await this.p.symlink(target, p);
    await this.applyAttrs(p, a, true);
  }

  async link(existing: string, p: string): Promise<void> {
    const src = await this.statOrNull(existing);
    if (!src) throw new NotFoundError(`hard link target ${existing} does not exist in ${this.image}`);
    if (src.type === 'dir') throw new InvalidParameterError(`hard link target ${existing} is a directory`);
    await this.remove(p);
    await this.p.link(existing, p);
  }

  /**
   * Unpacks a tar into `containerPath` (an existing directory), as `docker cp` / PUT
   * /containers/{id}/archive does: ownership and modes from the archive, mtimes kept,
   * symlinks in the destination path resolved inside this filesystem.
   */
  async extractTar(containerPath: string, tar: Readable, opts: ExtractOptions = {}): Promise<void> {
    const dest = await this.resolve(containerPath);
    const st = await this.statOrNull(dest);
    if (!st) throw new NotFoundError(`Could not find the file ${containerPath} in container`);
    if (st.type !== 'dir') throw new InvalidParameterError(`extraction point ${containerPath} is not a directory`);
    const what = `archive for ${containerPath}`;
    const ex = extract();
    // One entry at a time: tar-stream waits for `next` before it parses the next header. The
    // entry in flight is awaited before returning, so nothing touches libext2fs after a failure.
    let inFlight: Promise<void> = Promise.resolve();
    ex.on('entry', (h, body, next) => {
      // a truncated archive errors the body; the error reaches us through the pipeline
      body.on('error', () => {});
      // (a streamx Readable: async-iterable and resumable like a Node one)
      inFlight = this.extractEntry(dest, h, body as unknown as Readable, opts, what).then(
        () => next(),
        (e: unknown) => {
          body.resume();
          ex.destroy(e as Error);
        },
      );
    });
    try {
      await pipeline(tar, ex);
    } catch (e) {
      await inFlight;
      if (e instanceof TvmError) throw e;
      throw tarError(e, what);
    }
  }

  private async extractEntry(dest: string, h: Header, body: Readable, opts: ExtractOptions, what: string): Promise<void> {
    const drain = () => body.resume();
    const name = safeEntryName(h.name, what);
    if (name === '') {
      drain();
      return;
    }
    const full = path.posix.join(dest, name);
    const parent = await this.resolve(path.posix.dirname(full));
    await this.mkdirp(parent);
    const target = path.posix.join(parent, path.posix.basename(full));
    const attrs: EntryAttrs = {
      mode: (h.mode ?? 0o644) & 0o7777,
      uid: h.uid ?? 0,
      gid: h.gid ?? 0,
      mtime: h.mtime ? toTimestamp(h.mtime) : undefined,
    };
    const pax = h.pax ?? {};
    const xattr = Object.keys(pax).find((k) => k.startsWith('SCHILY.xattr.'));
    if (xattr) {
      drain();
      throw new NotImplementedError(
        `${what}: ${h.name} carries the extended attribute ${xattr.slice('SCHILY.xattr.'.length)}, which cannot be written into a stopped VM container's disk`,
        'ERR_EXT4_OFFLINE_UNSUPPORTED',
      );
    }
    const existing = await this.statOrNull(target);
    if (opts.noOverwriteDirNonDir && existing) {
      const newIsDir = h.type === 'directory';
      if (existing.type === 'dir' && !newIsDir) {
        drain();
        throw new InvalidParameterError(`cannot overwrite directory "${target}" with non-directory "${h.name}"`);
      }
      if (existing.type !== 'dir' && newIsDir) {
        drain();
        throw new InvalidParameterError(`cannot overwrite non-directory "${target}" with directory "${h.name}"`);
      }
    }
    switch (h.type) {
      case 'directory':
        drain();
        await this.mkdir(target, attrs);
        return;
      case 'file':
      case 'contiguous-file':
        await this.writeFile(target, body, attrs);
        return;
      case 'symlink':
        drain();
        await this.symlink(h.linkname ?? '', target, attrs);
        return;
      case 'link': {
        drain();
        const src = await this.resolve(path.posix.join(dest, safeEntryName(h.linkname ?? '', what)), false);
        await this.link(src, target);
        return;
      }
      default:
        drain();
        throw new NotImplementedError(
          `${what}: ${h.name} is a ${h.type}; device nodes, fifos and sockets cannot be written into a stopped VM container's disk`,
          'ERR_EXT4_OFFLINE_UNSUPPORTED',
        );
    }
  }

  /** The recorded times, by inode: the last write to a path wins; paths gone since are dropped. */
  private async pendingTimes(): Promise<InodeTimes[]> {
    const out: InodeTimes[] = [];
    for (const [p, mtime] of this.times) {
      const st = await this.statOrNull(p);
      if (st) out.push({ ino: st.ino, mtime });
    }
    return out;
  }
}
