/**
 * Content-addressed blobs under `<root>/blobs/sha256/<hex>`. A blob appears only complete and
 * verified: writers stream into `<root>/blobs/tmp/`, check size and digest, fdatasync, then rename.
 * Two writers of the same digest both end with a rename of identical bytes, which is safe.
 */
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink, readFile, readdir, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { NotFoundError } from '../errors.js';
import { DigestMismatchError, SHA256_PREFIX, SizeMismatchError, digestHex, verifyBuffer, type Expected } from './digest.js';

/** bytes gathered before one writev: large enough that syscalls stop mattering */
const WRITE_BATCH = 1 << 20;

/** writev until every byte is written (a regular file may take fewer bytes than asked) */
async function writeAll(fh: FileHandle, bufs: Buffer[]): Promise<void> {
  let left = bufs;
  while (left.length) {
    const { bytesWritten } = await fh.writev(left);
    let n = bytesWritten;
    let i = 0;
    while (i < left.length && n >= left[i]!.length) n -= left[i++]!.length;
    left = left.slice(i);
    if (n > 0 && left.length) left[0] = left[0]!.subarray(n);
  }
}

/** The temp file a writeFrom producer fills. */
export interface BlobFile {
  /** Counts bytes as part of the blob (size check, hash) before they are written; throws past the expected size. */
  count(chunk: Buffer): void;
  /** Appends `bufs` (already counted) after everything written before, in call order, one write at a time. */
  write(bufs: Buffer[]): Promise<void>;
}

export interface BlobInfo {
  digest: string;
  size: number;
}

export interface WriteOptions {
  expected?: Expected;
  /** name used in error messages ('layer sha256:...') */
  what?: string;
  /**
   * sees every chunk after it was counted and hashed (progress, a layer inspector); a promise
   * it returns holds the next read back
   */
  onChunk?: (chunk: Buffer) => Promise<void> | undefined | void;
  /** the source has ended (all bytes read, nothing verified or synced yet) */
  onSourceEnd?: () => void;
  /** runs after size and digest were verified and before the blob is committed; a throw stores nothing */
  beforeCommit?: () => Promise<void>;
  /**
   * the sha256 digest of exactly the chunks onChunk saw, computed by the consumer behind it (a
   * layer inspection in a worker thread, sparing the downloading thread a second pass); it is
   * checked against `expected` exactly as our own hash would be
   */
  digestOf?: () => Promise<string>;
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

  /**
   * Streams `source` into the store; on any error nothing is stored. Chunks are hashed as they
   * arrive and written in batches of WRITE_BATCH bytes, one write in flight while the next
   * batch fills (a pull's 64 KiB network reads would otherwise cost a syscall each).
   */
  async write(source: Readable | AsyncIterable<Uint8Array>, opts: WriteOptions = {}): Promise<BlobInfo> {
    return this.writeFrom(async (file) => {
      let batch: Buffer[] = [];
      let batchLen = 0;
      let writing: Promise<void> | undefined;
      const flush = async () => {
        if (writing) await writing;
        writing = undefined;
        if (batchLen === 0) return;
        const bufs = batch;
        batch = [];
        batchLen = 0;
        writing = file.write(bufs);
        // it fails while the loop may be waiting on the network: handled here (so Node does
        // not treat it as unhandled and end the daemon), thrown where it is awaited
        // observed only so an early rejection is not 'unhandled': it is awaited, and its error reported, where it is used
        writing.catch(() => {});
      };
      try {
        for await (const c of source as AsyncIterable<Uint8Array>) {
          const chunk = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
          file.count(chunk);
          if (opts.onChunk) {
            const wait = opts.onChunk(chunk);
            if (wait) await wait;
          }
          batch.push(chunk);
          batchLen += chunk.length;
          if (batchLen >= WRITE_BATCH) await flush();
        }
        opts.onSourceEnd?.();
        await flush();
        await flush();
      } catch (e) {
        if (source instanceof Readable) source.destroy();
        // the source's error is what the caller gets; the write being abandoned fails with it
        await writing?.catch(() => {});
        throw e;
      }
    }, opts);
  }

  /**
   * Stores what `produce` writes to the file it is given; on any error (its own included)
   * nothing is stored. The producer counts every byte once as it arrives (count), which checks
   * the expected size and hashes it unless `digestOf` names the digest.
   */
  async writeFrom(produce: (file: BlobFile) => Promise<void>, opts: WriteOptions = {}): Promise<BlobInfo> {
    await this.init();
    const what = opts.what ?? `blob ${opts.expected?.digest ?? ''}`.trim();
    const expected = opts.expected ?? {};
    if (expected.digest !== undefined) digestHex(expected.digest);
    const hash = opts.digestOf ? undefined : createHash('sha256');
    let count = 0;
    const tmp = path.join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const fh = await open(tmp, 'wx', 0o644);
    let tail: Promise<void> = Promise.resolve();
    const file: BlobFile = {
      count: (chunk) => {
        count += chunk.length;
        if (expected.size !== undefined && count > expected.size) throw new SizeMismatchError(what, expected.size, count, false);
        hash?.update(chunk);
      },
      write: (bufs) => {
        // writes land in call order, one at a time
        const p = tail.then(() => writeAll(fh, bufs));
        tail = p;
        // observed only so an early rejection is not 'unhandled': it is awaited, and its error reported, where it is used
        p.catch(() => {});
        return p;
      },
    };
    try {
      await produce(file);
      await tail;
      if (expected.size !== undefined && count !== expected.size) throw new SizeMismatchError(what, expected.size, count, true);
      const digest = hash ? SHA256_PREFIX + hash.digest('hex') : await opts.digestOf!();
      digestHex(digest);
      if (expected.digest !== undefined && digest !== expected.digest) throw new DigestMismatchError(what, expected.digest, digest);
      if (opts.beforeCommit) await opts.beforeCommit();
      // data (and size) durable before the name appears; the directory entry is synced by syncDir
      await fh.datasync();
      await fh.close();
      try {
        await rename(tmp, this.path(digest));
      } catch (e) {
        // the error being thrown is the one that matters; a temp file left behind is never read as
        // data (cleanTemp sweeps the temp dir at start)
        await unlink(tmp).catch(() => {});
        throw e;
      }
      if (opts.syncDir !== false) await this.syncDir();
      return { digest, size: count };
    } catch (e) {
      // the error being thrown is the one that matters; this only waits for queued writes to stop
      await tail.catch(() => {});
      // on an error path the original error is what the caller needs; the handle is released even if close() reports one
      await fh.close().catch(() => {});
      // the error being thrown is the one that matters; a temp file left behind is never read as data
      // (cleanTemp sweeps the temp dir at start)
      await unlink(tmp).catch(() => {});
      throw e;
    }
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
    // a temp file that vanished meanwhile is what we wanted; any other is retried at the next start
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
