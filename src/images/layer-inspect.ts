/**
 * One pass over a layer blob that yields everything we must know before trusting it: the
 * compression, the diff ID and uncompressed size, and that every tar entry is safe.
 *
 * The pass is on the pull's hot path, so it is one object rather than a chain of streams:
 * compressed chunks go straight into zlib (which inflates on libuv's thread pool, off the
 * main thread), and each inflated chunk is hashed and walked (headers only) as it comes out.
 */
import { createGunzip, type Gunzip } from 'node:zlib';
import { createHash } from 'node:crypto';
import { Writable, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FormatError } from '../errors.js';
import { SHA256_PREFIX } from './digest.js';
import { GUNZIP_CHUNK, MAGIC_BYTES, ZstdStream, sniffCompression, type Compression } from './layer.js';
import { LayerTarChecker, tarError } from './tar-safety.js';
import { MediaType } from './manifest.js';

export interface LayerFacts {
  compression: Compression;
  diffId: string;
  size: number;
  entries: number;
  paths: Set<string>;
  dangling: { name: string; target: string }[];
}

export class LayerInspector {
  private readonly hash = createHash('sha256');
  private readonly checker: LayerTarChecker;
  private size = 0;
  private head: Buffer[] = [];
  private headLen = 0;
  private decoder: Gunzip | Transform | undefined;
  private decoderEnded: Promise<void> | undefined;
  private failure: Error | undefined;
  compression: Compression | undefined;

  constructor(
    private readonly what: string,
    known?: Set<string>,
    opts: { deferLinks?: boolean } = {},
  ) {
    this.checker = new LayerTarChecker(what, known, opts.deferLinks ?? false);
  }

  private plain(c: Buffer): void {
    if (this.failure) return;
    this.size += c.length;
    this.hash.update(c);
    try {
      this.checker.push(c);
    } catch (e) {
      this.fail(tarError(e, this.what));
    }
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.decoder?.destroy();
  }

  private start(): void {
    const head = Buffer.concat(this.head);
    this.head = [];
    this.compression = sniffCompression(head, this.what);
    if (this.compression !== 'none') {
      const dec = this.compression === 'gzip' ? createGunzip({ chunkSize: GUNZIP_CHUNK }) : new ZstdStream(this.what);
      this.decoder = dec;
      dec.on('data', (c: Buffer) => this.plain(c));
      this.decoderEnded = new Promise<void>((resolve, reject) => {
        dec.on('end', resolve);
        dec.on('close', () => reject(this.failure ?? new FormatError(`${this.what}: ${this.compression} stream closed early`, 'ERR_BAD_COMPRESSION')));
        dec.on('error', (e: Error) => {
          this.failure ??= e instanceof FormatError ? e : new FormatError(`${this.what}: corrupt ${this.compression} stream: ${e.message}`, 'ERR_BAD_COMPRESSION', { cause: e });
          reject(this.failure);
        });
      });
      this.decoderEnded.catch(() => {});
    }
    if (head.length) void this.feed(head);
  }

  private feed(c: Buffer): Promise<void> | undefined {
    if (!this.decoder) {
      this.plain(c);
      return undefined;
    }
    if (this.decoder.write(c)) return undefined;
    const dec = this.decoder;
    return new Promise<void>((resolve) => {
      const done = () => {
        dec.off('drain', done);
        dec.off('close', done);
        resolve();
      };
      dec.on('drain', done);
      dec.on('close', done);
    });
  }

  /** Takes the next compressed chunk; a promise means: wait before writing more. Throws the first error. */
  write(chunk: Buffer): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    if (this.compression === undefined) {
      this.head.push(chunk);
      this.headLen += chunk.length;
      if (this.headLen < MAGIC_BYTES) return undefined;
      this.start();
      return undefined;
    }
    return this.feed(chunk);
  }

  /**
   * Like write, but resolves only once `chunk` itself has been consumed (inflated, hashed,
   * walked), so that its memory may be reused; rejects with the first error.
   */
  writeConsumed(chunk: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    // before the decoder exists, chunks are copied (head) or consumed synchronously (plain)
    if (!this.decoder) return this.write(chunk) ?? Promise.resolve();
    const dec = this.decoder;
    return new Promise<void>((resolve, reject) => {
      // a decoder that fails on this chunk is destroyed without calling the write back
      const finish = () => {
        dec.off('close', finish);
        if (this.failure) reject(this.failure);
        else resolve();
      };
      dec.once('close', finish);
      dec.write(chunk, finish);
    });
  }

  /** The input has ended: waits for the decoder and returns the facts, or throws what went wrong. */
  async end(): Promise<LayerFacts> {
    if (this.failure) throw this.failure;
    if (this.compression === undefined) this.start();
    if (this.decoder) {
      this.decoder.end();
      await this.decoderEnded;
    }
    if (this.failure) throw this.failure;
    let tar;
    try {
      tar = this.checker.end();
    } catch (e) {
      throw tarError(e, this.what);
    }
    return {
      compression: this.compression ?? 'none',
      diffId: SHA256_PREFIX + this.hash.digest('hex'),
      size: this.size,
      entries: tar.entries,
      paths: tar.paths,
      dangling: tar.dangling,
    };
  }

  /** Stops early (the download failed): releases the decoder. */
  abort(): void {
    this.fail(new FormatError(`${this.what}: inspection aborted`, 'ERR_ABORTED'));
  }
}

/** The inspector as a Writable sink, for pipelines; `done` resolves after the blob ended and the tar was checked. */
export function layerInspector(what: string, known?: Set<string>, opts: { deferLinks?: boolean } = {}): { sink: Writable; done: Promise<LayerFacts> } {
  const ins = new LayerInspector(what, known, opts);
  let resolve!: (f: LayerFacts) => void;
  let reject!: (e: Error) => void;
  const done = new Promise<LayerFacts>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  done.catch(() => {});
  const sink = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _e, cb) {
      let wait;
      try {
        wait = ins.write(chunk);
      } catch (e) {
        cb(e as Error);
        return;
      }
      if (wait) wait.then(() => cb(), cb);
      else cb();
    },
    final(cb) {
      ins.end().then(
        (f) => {
          resolve(f);
          cb();
        },
        (e: Error) => cb(e),
      );
    },
    destroy(err, cb) {
      if (err) ins.abort();
      cb(err);
    },
  });
  sink.on('error', (e) => reject(e));
  return { sink, done };
}

export async function inspectLayer(source: Readable, what: string, known?: Set<string>, opts: { deferLinks?: boolean } = {}): Promise<LayerFacts> {
  const { sink, done } = layerInspector(what, known, opts);
  await pipeline(source, sink);
  return done;
}

/** OCI media type for a layer stored as it came. */
export function layerMediaType(c: Compression): string {
  return c === 'gzip' ? MediaType.OciLayerGzip : c === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer;
}
