/**
 * Layer blobs arrive gzip-, zstd-compressed or as plain tar; the media type is advisory
 * (docker-archive layers are plain, some registries mislabel), so we sniff the magic bytes.
 * A diff ID is the sha256 of the uncompressed tar.
 */
import { Transform, type TransformCallback, Readable, PassThrough, type Duplex, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { FormatError } from '../errors.js';
import { HashingStream } from './digest.js';

export type Compression = 'gzip' | 'zstd' | 'none';

/** RFC 1952 ID1 ID2 */
const GZIP_MAGIC = [0x1f, 0x8b];
/** RFC 8878 frame magic 0xFD2FB528, little endian */
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const BZIP2_MAGIC = [0x42, 0x5a, 0x68];
export const MAGIC_BYTES = 6;
/** zlib's default 16 KiB output chunks make every later stage (hash, tar checks) run 8x as often. */
export const GUNZIP_CHUNK = 128 * 1024;

function startsWith(buf: Buffer, magic: number[]): boolean {
  return buf.length >= magic.length && magic.every((b, i) => buf[i] === b);
}

/** Classifies a buffer by its first bytes; xz and bzip2 are refused (Docker no longer writes them). */
export function sniffCompression(head: Buffer, what = 'layer'): Compression {
  if (startsWith(head, GZIP_MAGIC)) return 'gzip';
  if (startsWith(head, ZSTD_MAGIC)) return 'zstd';
  if (startsWith(head, XZ_MAGIC)) throw new FormatError(`${what}: xz-compressed layers are not supported`, 'ERR_UNSUPPORTED_COMPRESSION');
  if (startsWith(head, BZIP2_MAGIC))
    throw new FormatError(`${what}: bzip2-compressed layers are not supported`, 'ERR_UNSUPPORTED_COMPRESSION');
  return 'none';
}

/** fzstd's synchronous push decoder as a Transform. */
export class ZstdStream extends Transform {
  private readonly dec: ZstdDecompress;
  private pending: Buffer[] = [];
  constructor(private readonly what: string) {
    super();
    this.dec = new ZstdDecompress((data) => {
      this.pending.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    });
  }
  private drainPending(): void {
    for (const c of this.pending) this.push(c);
    this.pending = [];
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    try {
      this.dec.push(chunk);
    } catch (e) {
      cb(new FormatError(`${this.what}: corrupt zstd stream: ${(e as Error).message}`, 'ERR_BAD_COMPRESSION', { cause: e }));
      return;
    }
    this.drainPending();
    cb();
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.dec.push(new Uint8Array(0), true);
    } catch (e) {
      cb(new FormatError(`${this.what}: corrupt zstd stream: ${(e as Error).message}`, 'ERR_BAD_COMPRESSION', { cause: e }));
      return;
    }
    this.drainPending();
    cb();
  }
}

/**
 * A Duplex that takes a layer blob (any supported compression) and emits the uncompressed
 * tar. The decoder is chosen once the first bytes have arrived.
 */
export class LayerDecompressor extends Transform {
  private head: Buffer[] = [];
  private headLen = 0;
  private inner: Duplex | undefined;
  private innerDone: Promise<void> | undefined;
  compression: Compression | undefined;

  constructor(private readonly what = 'layer') {
    super();
  }

  private start(): void {
    const head = Buffer.concat(this.head);
    this.head = [];
    this.compression = sniffCompression(head, this.what);
    const inner: Duplex =
      this.compression === 'gzip'
        ? createGunzip({ chunkSize: GUNZIP_CHUNK })
        : this.compression === 'zstd'
          ? new ZstdStream(this.what)
          : new PassThrough();
    this.inner = inner;
    inner.on('data', (c: Buffer) => {
      if (!this.push(c)) inner.pause();
    });
    this.innerDone = new Promise<void>((resolve, reject) => {
      inner.on('end', resolve);
      inner.on('error', (e: Error) =>
        reject(
          e instanceof FormatError
            ? e
            : new FormatError(`${this.what}: corrupt ${this.compression} stream: ${e.message}`, 'ERR_BAD_COMPRESSION', { cause: e }),
        ),
      );
    });
    // Keep the promise from becoming an unhandled rejection before _flush awaits it.
    this.innerDone.catch(() => {});
    if (head.length) this.writeInner(head, () => {});
  }

  override _read(size: number): void {
    this.inner?.resume();
    super._read(size);
  }

  private writeInner(chunk: Buffer, cb: TransformCallback): void {
    const inner = this.inner!;
    if (inner.write(chunk)) cb();
    else inner.once('drain', () => cb());
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (!this.inner) {
      this.head.push(chunk);
      this.headLen += chunk.length;
      if (this.headLen < MAGIC_BYTES) {
        cb();
        return;
      }
      try {
        this.start();
      } catch (e) {
        cb(e as Error);
        return;
      }
      // start() already wrote the head, which includes this chunk
      cb();
      return;
    }
    this.writeInner(chunk, cb);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.inner) {
      try {
        this.start();
      } catch (e) {
        cb(e as Error);
        return;
      }
    }
    this.inner!.end();
    this.innerDone!.then(
      () => cb(),
      (e: Error) => cb(e),
    );
  }
}

/** Uncompressed tar stream of a layer blob stream. */
export function decompressLayer(source: Readable, what = 'layer'): Readable {
  const d = new LayerDecompressor(what);
  source.on('error', (e) => d.destroy(e));
  // pipe() never ends its source: a consumer that stops early (a failed base-disk build) would
  // leave the blob's file open until garbage collection
  d.once('close', () => source.destroy());
  return source.pipe(d);
}

/**
 * A pass-through stage that also feeds every chunk to `side` (respecting its backpressure),
 * used to decompress and hash a layer while it is written to the blob store.
 */
export class Tee extends Transform {
  constructor(private readonly side: Writable) {
    super();
    // A failing side (corrupt layer, unsafe entry) fails the whole pipeline instead of stalling it.
    side.on('error', (e: Error) => this.destroy(e));
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (this.side.write(chunk)) cb(null, chunk);
    else this.side.once('drain', () => cb(null, chunk));
  }
  override _flush(cb: TransformCallback): void {
    this.side.end();
    cb();
  }
}

/**
 * A writable sink that decompresses what it receives and hashes the uncompressed bytes.
 * `done` resolves to the diff ID and uncompressed size once the input has ended.
 */
export function diffIdSink(what: string): { sink: Writable; done: Promise<{ diffId: string; size: number }> } {
  const dec = new LayerDecompressor(what);
  const hasher = new HashingStream(`${what} (uncompressed)`);
  const devnull = new (class extends Transform {
    override _transform(_c: Buffer, _e: BufferEncoding, cb: TransformCallback) {
      cb();
    }
  })();
  const done = pipeline(dec, hasher, devnull).then(() => {
    const r = hasher.result();
    return { diffId: r.digest, size: r.size };
  });
  // observed only so an early rejection is not 'unhandled': it is awaited, and its error reported, where it is used
  done.catch(() => {});
  return { sink: dec, done };
}

/** Computes diff ID and uncompressed size of a layer stream (any compression). */
export async function computeDiffId(source: Readable, what = 'layer'): Promise<{ diffId: string; size: number }> {
  const { sink, done } = diffIdSink(what);
  await pipeline(source, sink);
  return done;
}
