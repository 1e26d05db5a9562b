/**
 * Positional file access (FileIo) and the raw-file block backend built on it. FileIo is the
 * only way the disk formats touch a file, so tests can interpose (fault injection, crash
 * simulation) without the formats knowing.
 */
import fs from 'node:fs';
import { checkRange, checkWritable, writeZeroChunks, SyncBackedBlockBackend } from './block-backend.js';
import { NotFoundError, TvmError } from '../errors.js';

export interface FileIo {
  readonly path: string;
  /** reads up to buf.length bytes at `position`; returns the count (short only at end of file) */
  pread(buf: Uint8Array, position: number): number;
  /** writes all of buf at `position` */
  pwrite(buf: Uint8Array, position: number): void;
  fsync(): void;
  /** current file length in bytes */
  size(): number;
  truncate(length: number): void;
  close(): void;
}

/** Wraps an errno failure with the file's name; keeps the original as cause. */
function ioError(op: string, file: string, e: unknown): TvmError {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return new NotFoundError(`${file}: no such file`, 'ERR_DISK_NOT_FOUND');
  return new TvmError('ERR_DISK_IO', `${file}: ${op} failed: ${(e as Error)?.message ?? String(e)}`, 500, { cause: e });
}

export class NodeFileIo implements FileIo {
  private fd: number;
  private closed = false;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  static open(path: string, opts: { readOnly: boolean; create?: boolean }): NodeFileIo {
    const flags = opts.readOnly ? 'r' : opts.create ? 'wx+' : 'r+';
    try {
      return new NodeFileIo(path, fs.openSync(path, flags, 0o644));
    } catch (e) {
      throw ioError('open', path, e);
    }
  }

  pread(buf: Uint8Array, position: number): number {
    let done = 0;
    try {
      while (done < buf.length) {
        const n = fs.readSync(this.fd, buf, done, buf.length - done, position + done);
        if (n === 0) break;
        done += n;
      }
    } catch (e) {
      throw ioError('read', this.path, e);
    }
    return done;
  }

  pwrite(buf: Uint8Array, position: number): void {
    let done = 0;
    try {
      while (done < buf.length) done += fs.writeSync(this.fd, buf, done, buf.length - done, position + done);
    } catch (e) {
      throw ioError('write', this.path, e);
    }
  }

  fsync(): void {
    try {
      fs.fsyncSync(this.fd);
    } catch (e) {
      throw ioError('fsync', this.path, e);
    }
  }

  size(): number {
    return fs.fstatSync(this.fd).size;
  }

  truncate(length: number): void {
    try {
      fs.ftruncateSync(this.fd, length);
    } catch (e) {
      throw ioError('truncate', this.path, e);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

/** Reads exactly buf.length bytes; whatever lies past the end of the file reads as zeros. */
export function readZeroFilled(io: FileIo, buf: Uint8Array, position: number): void {
  const n = io.pread(buf, position);
  if (n < buf.length) buf.fill(0, n);
}

/**
 * A raw disk: the file's bytes are the disk's bytes. Size is the file length at open time.
 * Discard is a no-op (advisory; Node has no portable hole punching and the raw base disks
 * are read-only anyway).
 */
export class RawFile extends SyncBackedBlockBackend {
  readonly size: number;
  readonly discardGranularity = 0;
  private closed = false;

  constructor(
    readonly io: FileIo,
    readonly readOnly: boolean,
  ) {
    super();
    this.size = io.size();
  }

  static open(path: string, opts: { readOnly?: boolean } = {}): RawFile {
    const readOnly = opts.readOnly ?? false;
    return new RawFile(NodeFileIo.open(path, { readOnly }), readOnly);
  }

  get path(): string {
    return this.io.path;
  }

  readSync(buf: Uint8Array, offset: number): void {
    checkRange(this.io.path, this.size, offset, buf.length);
    readZeroFilled(this.io, buf, offset);
  }

  writeSync(buf: Uint8Array, offset: number): void {
    checkWritable(this.io.path, this.readOnly);
    checkRange(this.io.path, this.size, offset, buf.length);
    this.io.pwrite(buf, offset);
  }

  flushSync(): void {
    if (!this.readOnly) this.io.fsync();
  }

  discardSync(offset: number, length: number): void {
    checkWritable(this.io.path, this.readOnly);
    checkRange(this.io.path, this.size, offset, length);
  }

  writeZeroesSync(offset: number, length: number): void {
    checkWritable(this.io.path, this.readOnly);
    checkRange(this.io.path, this.size, offset, length);
    writeZeroChunks((b, o) => this.io.pwrite(b, o), offset, length);
  }

  closeSync(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (!this.readOnly) this.io.fsync();
    } finally {
      this.io.close();
    }
  }
}
