/**
 * Content-addressed blobs under `<root>/blobs/sha256/<hex>`. A blob appears only complete and
 * verified: writers stream into `<root>/blobs/tmp/`, check size and digest, fsync, then rename.
 * Two writers of the same digest both end with a rename of identical bytes, which is safe.
 */
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Readable, type Transform } from 'node:stream';
import { NotFoundError } from '../errors.js';
import { HashingStream, digestHex, verifyBuffer, type Expected } from './digest.js';

export interface BlobInfo {
  digest: string;
  size: number;
}

export interface WriteOptions {
  expected?: Expected;
  /** name used in error messages ('layer sha256:...') */
  what?: string;
  /** extra stages between the verifier and the file, e.g. a tee into a diff-ID hasher */
  through?: Transform[];
  /**
   * fsync the directory after the rename (default). Callers writing many blobs pass false and
   * call syncDir() once before recording anything that refers to them.
   */
  syncDir?: boolean;
}

export class BlobStore {
  readonly dir: string;
  private readonly tmpDir: string;
  private ready: Promise<void> | undefined;

  constructor(readonly root: string) {
    this.dir = path.join(root, 'blobs', 'sha256');
    this.tmpDir = path.join(root, 'blobs', 'tmp');
  }

  private init(): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(this.dir, { recursive: true });
      await mkdir(this.tmpDir, { recursive: true });
    })();
    return this.ready;
  }

  path(digest: string): string {
    return path.join(this.dir, digestHex(digest));
  }

  async stat(digest: string): Promise<BlobInfo | undefined> {
    try {
      const st = await stat(this.path(digest));
      return { digest, size: st.size };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async has(digest: string, size?: number): Promise<boolean> {
    const st = await this.stat(digest);
    return st !== undefined && (size === undefined || st.size === size);
  }

  /** A read stream of a stored blob; throws NotFoundError if absent. */
  async open(digest: string): Promise<ReadStream> {
    const p = this.path(digest);
    const fh = await open(p, 'r').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw new NotFoundError(`blob ${digest} not found`, 'ERR_BLOB_NOT_FOUND');
      throw e;
    });
    return createReadStream('', { fd: fh, autoClose: true });
  }

  /** Reads a small blob (manifest, config) and re-verifies its digest. */
  async readBuffer(digest: string): Promise<Buffer> {
    const data = await readFile(this.path(digest)).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw new NotFoundError(`blob ${digest} not found`, 'ERR_BLOB_NOT_FOUND');
      throw e;
    });
    verifyBuffer(`blob ${digest}`, data, { digest });
    return data;
  }

  /** Streams `source` into the store; on any error nothing is stored. */
  async write(source: Readable | AsyncIterable<Uint8Array>, opts: WriteOptions = {}): Promise<BlobInfo> {
    await this.init();
    const what = opts.what ?? `blob ${opts.expected?.digest ?? ''}`.trim();
    const hasher = new HashingStream(what, opts.expected);
    const tmp = path.join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const fh = await open(tmp, 'wx', 0o644);
    const out = createWriteStream('', { fd: fh.fd, autoClose: false });
    try {
      const src = source instanceof Readable ? source : Readable.from(source);
      await pipeline([src, hasher, ...(opts.through ?? []), out]);
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw e;
    }
    await fh.close();
    const info = hasher.result();
    try {
      await rename(tmp, this.path(info.digest));
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw e;
    }
    if (opts.syncDir !== false) await this.syncDir();
    return info;
  }

  async writeBuffer(data: Uint8Array, expected: Expected = {}, what?: string): Promise<BlobInfo> {
    verifyBuffer(what ?? `blob ${expected.digest ?? ''}`.trim(), data, expected);
    return this.write(Readable.from([Buffer.from(data)]), { expected, ...(what !== undefined && { what }) });
  }

  async delete(digest: string): Promise<boolean> {
    try {
      await unlink(this.path(digest));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }

  async list(): Promise<string[]> {
    await this.init();
    return (await readdir(this.dir)).filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /** Removes temp files left by a crash mid-write (call at daemon start, not while writing). */
  async cleanTemp(): Promise<void> {
    await this.init();
    for (const n of await readdir(this.tmpDir)) await unlink(path.join(this.tmpDir, n)).catch(() => {});
  }

  async syncDir(): Promise<void> {
    const dh = await open(this.dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}
