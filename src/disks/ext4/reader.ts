/**
 * Offline reading of an ext4 disk (e.g. `docker cp` / `export` from a stopped VM container's
 * disk) through libext2fs compiled to WASM (the `ext2fs` package). The image file is never
 * modified: anything libext2fs writes (it opens read-write) lands in an in-memory overlay.
 * Also the independent reader our writer's tests check against.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { mount, umount, type Ext2Disk, type Ext2Fs } from 'ext2fs';
import { NotFoundError, FormatError } from '../../errors.js';
import { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK } from './inode.js';

const SECTOR = 512;

/** read-only file with a copy-on-write overlay in 512-byte sectors */
class OverlayFileDisk implements Ext2Disk {
  private readonly written = new Map<number, Buffer>();
  constructor(private readonly fh: FileHandle) {}

  async read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<{ bytesRead: number; buffer: Buffer }> {
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buffer, bufferOffset + done, length - done, fileOffset + done);
      if (bytesRead === 0) {
        buffer.fill(0, bufferOffset + done, bufferOffset + length);
        break;
      }
      done += bytesRead;
    }
    if (this.written.size > 0) {
      const first = Math.floor(fileOffset / SECTOR);
      const last = Math.floor((fileOffset + length - 1) / SECTOR);
      for (let s = first; s <= last; s++) {
        const w = this.written.get(s);
        if (!w) continue;
        const from = Math.max(s * SECTOR, fileOffset);
        const to = Math.min((s + 1) * SECTOR, fileOffset + length);
        w.copy(buffer, bufferOffset + (from - fileOffset), from - s * SECTOR, to - s * SECTOR);
      }
    }
    return { bytesRead: length, buffer };
  }

  async write(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<{ bytesWritten: number; buffer: Buffer }> {
    const first = Math.floor(fileOffset / SECTOR);
    const last = Math.floor((fileOffset + length - 1) / SECTOR);
    for (let s = first; s <= last; s++) {
      let sec = this.written.get(s);
      if (!sec) {
        sec = Buffer.alloc(SECTOR);
        await this.read(sec, 0, SECTOR, s * SECTOR);
        this.written.set(s, sec);
      }
      const from = Math.max(s * SECTOR, fileOffset);
      const to = Math.min((s + 1) * SECTOR, fileOffset + length);
      buffer.copy(sec, from - s * SECTOR, bufferOffset + (from - fileOffset), bufferOffset + (to - fileOffset));
    }
    return { bytesWritten: length, buffer };
  }

  async discard(): Promise<void> {}
  async flush(): Promise<void> {}
}

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
  private constructor(
    private readonly image: string,
    private readonly fh: FileHandle,
    private readonly fs: Ext2Fs,
  ) {}

  static async open(image: string): Promise<Ext4Reader> {
    const fh = await open(image, 'r');
    try {
      const fs = await mount(new OverlayFileDisk(fh));
      return new Ext4Reader(image, fh, fs);
    } catch (e) {
      await fh.close();
      throw new FormatError(`${image} is not a readable ext4 filesystem: ${(e as Error).message}`, 'ERR_EXT4_FORMAT', { cause: e });
    }
  }

  private wrap<T>(p: string, fn: () => Promise<T>): Promise<T> {
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
      return e;
    });
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
  async *walk(dir = '/'): AsyncGenerator<Ext4Entry> {
    for (const name of (await this.readdir(dir)).sort()) {
      const e = await this.stat(join(dir, name));
      yield e;
      if (e.type === 'dir') yield* this.walk(e.path);
    }
  }

  async close(): Promise<void> {
    try {
      await umount(this.fs);
    } finally {
      await this.fh.close();
    }
  }
}
