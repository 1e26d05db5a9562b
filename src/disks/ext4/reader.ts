/**
 * Offline reading of an ext4 disk (e.g. `docker cp` / `export` from a stopped VM container's
 * disk) through libext2fs compiled to WASM (the `ext2fs` package). The image is a raw file or a
 * qcow2 overlay (read through our qcow2 backend, backing chain included). It is never
 * modified: anything libext2fs writes (it opens read-write) lands in an in-memory overlay.
 * Also the independent reader our writer's tests check against.
 */
import type { Readable } from 'node:stream';
import { mount, umount, type Ext2Fs } from './ext2fs.js';
import { NotFoundError, FormatError, TvmError } from '../../errors.js';
import type { BlockBackend } from '../block-backend.js';
import { openDiskImage, type DiskFormat } from '../disk-image.js';
import { OverlayDisk } from './ext2fs-disk.js';
import {
  S_IFMT,
  S_IFREG,
  S_IFDIR,
  S_IFLNK,
  S_IFCHR,
  S_IFBLK,
  S_IFIFO,
  S_IFSOCK,
  INODE,
  EXT4_N_BLOCKS_BYTES,
  decodeDevice,
} from './inode.js';
import { readInode } from './inode-table.js';
import { resolveScoped } from '../../scoped-path.js';

export type Ext4EntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'sock';

export interface Ext4Entry {
  /** absolute path inside the filesystem */
  path: string;
  type: Ext4EntryType;
  /** permission bits incl. setuid/setgid/sticky */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  /** whole seconds (libext2fs's binding does not expose nanoseconds) */
  mtimeSec: number;
  /** symlink target */
  target?: string;
  /** char and block devices (read from the inode: the binding does not report rdev) */
  device?: { major: number; minor: number };
}

function typeOf(mode: number): Ext4EntryType {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'dir';
    case S_IFLNK:
      return 'symlink';
    case S_IFCHR:
      return 'char';
    case S_IFBLK:
      return 'block';
    case S_IFIFO:
      return 'fifo';
    case S_IFSOCK:
      return 'sock';
    default:
      throw new FormatError(`unknown file type in mode 0${mode.toString(8)}`, 'ERR_EXT4_FORMAT');
  }
}

const join = (dir: string, name: string) => (dir === '/' ? `/${name}` : `${dir}/${name}`);

export class Ext4Reader {
  protected constructor(
    protected readonly image: string,
    protected readonly disk: BlockBackend,
    protected readonly fs: Ext2Fs,
  ) {}

  /** `image`: a raw ext4 image or a qcow2 overlay whose disk is one */
  /** `format`: pass it when the guest could have written the file's first bytes (disk-image.ts) */
  static async open(image: string, opts: { format?: DiskFormat } = {}): Promise<Ext4Reader> {
    const disk = await openDiskImage(image, { readOnly: true, ...opts });
    try {
      const fs = await mount(new OverlayDisk(disk));
      return new Ext4Reader(image, disk, fs);
    } catch (e) {
      await disk.close();
      if (e instanceof TvmError) throw e;
      throw new FormatError(`${image} is not a readable ext4 filesystem: ${(e as Error).message}`, 'ERR_EXT4_FORMAT', { cause: e });
    }
  }

  protected wrap<T>(p: string, fn: () => Promise<T>): Promise<T> {
    return fn().catch((e: NodeJS.ErrnoException) => {
      if (e && e.code === 'ENOENT') throw new NotFoundError(`${p}: no such file or directory in ${this.image}`);
      throw e;
    });
  }

  async stat(p: string): Promise<Ext4Entry> {
    return this.wrap(p, async () => {
      const st = await this.fs.promises.lstat(p);
      const type = typeOf(st.mode);
      const e: Ext4Entry = {
        path: p,
        type,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        nlink: st.nlink,
        ino: st.ino,
        mtimeSec: Math.floor(st.mtime.getTime() / 1000),
      };
      if (type === 'symlink') e.target = await this.readlink(p);
      if (type === 'char' || type === 'block') {
        const raw = await readInode(this.disk, this.image, st.ino);
        e.device = decodeDevice(raw.subarray(INODE.offsetOf('i_block'), INODE.offsetOf('i_block') + EXT4_N_BLOCKS_BYTES));
      }
      return e;
    });
  }

  /** stat, or null when nothing is there */
  async statOrNull(p: string): Promise<Ext4Entry | null> {
    try {
      return await this.stat(p);
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
  }

  /** An in-filesystem path with symlinks resolved as if the filesystem's root were "/". */
  async resolve(unsafe: string, followLast = true): Promise<string> {
    const rel = await resolveScoped(unsafe, followLast, async (parts) => {
      const st = await this.statOrNull('/' + parts.join('/'));
      return st?.type === 'symlink' ? st.target! : null;
    });
    return '/' + rel.join('/');
  }

  async readdir(p: string): Promise<string[]> {
    return this.wrap(p, async () => {
      const names = (await this.fs.promises.readdir(p)).map((n) => n.toString());
      return names.filter((n) => n !== '.' && n !== '..');
    });
  }

  async readFile(p: string): Promise<Buffer> {
    // (the binding's readFile always decodes to a UTF-8 string: read through a stream instead)
    return this.wrap(p, async () => {
      await this.fs.promises.lstat(p);
      const chunks: Buffer[] = [];
      for await (const c of this.createReadStream(p)) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    });
  }

  /** the file's bytes as a stream (for docker cp / export without buffering the file) */
  createReadStream(p: string): Readable {
    return this.fs.promises.createReadStream(p);
  }

  async readlink(p: string): Promise<string> {
    return this.wrap(p, async () => (await this.fs.promises.readlink(p)).toString());
  }

  /** every entry below `dir`, depth first, parents before children */
  async *walk(dir = '/', onPath: Set<number> = new Set()): AsyncGenerator<Ext4Entry> {
    // a guest can point a directory entry at an ancestor: entering one twice is refused
    const ino = (await this.stat(dir)).ino;
    if (onPath.has(ino))
      throw new FormatError(`${this.image}: directory cycle at ${dir} (inode ${ino} is its own ancestor)`, 'ERR_EXT4_FORMAT');
    onPath.add(ino);
    for (const name of (await this.readdir(dir)).sort()) {
      const e = await this.stat(join(dir, name));
      yield e;
      if (e.type === 'dir') yield* this.walk(e.path, onPath);
    }
    onPath.delete(ino);
  }

  async close(): Promise<void> {
    try {
      await umount(this.fs);
    } finally {
      await this.disk.close();
    }
  }
}
