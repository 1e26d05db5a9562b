/**
 * One pass over a layer blob that yields everything we must know before trusting it: the
 * compression, the diff ID and uncompressed size, and that every tar entry is safe.
 *
 * The pass is on the pull's hot path, so it is synchronous and allocation-free per chunk:
 * compressed chunks are inflated on the calling thread (gzip through the zlib Node carries, into
 * reused memory, see gunzip.ts; zstd through fzstd) and each inflated piece is hashed and
 * walked (headers only) before the next is made. Large layers run this on a worker thread
 * (inspect-pool.ts), small ones inline.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Decompress as ZstdDecompress } from 'fzstd';
import { FormatError } from '../errors.js';
import { SHA256_PREFIX } from './digest.js';
import { MAGIC_BYTES, sniffCompression, type Compression } from './layer.js';
import { Gunzip } from './gunzip.js';
import { LayerTarChecker, tarError } from '../tar-safety.js';
import { MediaType } from './manifest.js';

export interface LayerFacts {
  compression: Compression;
  diffId: string;
  size: number;
  entries: number;
  paths: Set<string>;
  dangling: { name: string; target: string }[];
}

/** A push decoder: bytes in, uncompressed pieces out through the callback given at creation. */
interface Decoder {
  write(c: Uint8Array): void;
  end(): void;
  close(): void;
}

function zstdDecoder(what: string, onData: (c: Buffer) => void): Decoder {
  const bad = (e: unknown) => new FormatError(`${what}: corrupt zstd stream: ${(e as Error).message}`, 'ERR_BAD_COMPRESSION', { cause: e });
  const dec = new ZstdDecompress((data) => onData(Buffer.from(data.buffer, data.byteOffset, data.byteLength)));
  return {
    write(c) {
      try {
        // fzstd keeps input it cannot decode yet by reference: give it a copy of its own
        // (Buffer#slice would be a view)
        dec.push(new Uint8Array(c));
      } catch (e) {
        throw e instanceof FormatError ? e : bad(e);
      }
    },
    end() {
      try {
        dec.push(new Uint8Array(0), true);
      } catch (e) {
        throw e instanceof FormatError ? e : bad(e);
      }
    },
    close() {},
  };
}

export class LayerInspector {
  private readonly hash = createHash('sha256');
  private readonly checker: LayerTarChecker;
  private size = 0;
  private head: Buffer[] = [];
  private headLen = 0;
  private decoder: Decoder | undefined;
  private failure: Error | undefined;
  private finished = false;
  compression: Compression | undefined;

  constructor(
    private readonly what: string,
    known?: Set<string>,
    opts: { deferLinks?: boolean } = {},
  ) {
    this.checker = new LayerTarChecker(what, known, opts.deferLinks ?? false);
  }

  private readonly plain = (c: Buffer): void => {
    this.size += c.length;
    this.hash.update(c);
    try {
      this.checker.push(c);
    } catch (e) {
      throw tarError(e, this.what);
    }
  };

  /** Records the first failure, releases the decoder and throws it. */
  private fail(e: unknown): never {
    this.failure ??= e as Error;
    this.decoder?.close();
    throw this.failure;
  }

  /** Picks the decoder from the first bytes (`head`, or what was gathered) and feeds them. */
  private start(head: Buffer = Buffer.concat(this.head)): void {
    this.head = [];
    this.compression = sniffCompression(head, this.what);
    if (this.compression === 'gzip') this.decoder = new Gunzip(this.what, this.plain);
    else if (this.compression === 'zstd') this.decoder = zstdDecoder(this.what, this.plain);
    if (head.length) this.feed(head);
  }

  private feed(c: Buffer): void {
    if (this.decoder) this.decoder.write(c);
    else this.plain(c);
  }

  /**
   * Takes the next compressed chunk and consumes it before returning (inflated, hashed,
   * walked: the caller may reuse its memory); throws the first error, then again on every call.
   */
  write(chunk: Buffer): undefined {
    if (this.failure) throw this.failure;
    try {
      if (this.compression === undefined) {
        // the first bytes decide the decoder: a chunk that holds them all is used as it is;
        // shorter ones are copied (the caller's memory is never kept)
        if (this.headLen === 0 && chunk.length >= MAGIC_BYTES) {
          this.start(chunk);
          return undefined;
        }
        this.head.push(Buffer.from(chunk));
        this.headLen += chunk.length;
        if (this.headLen >= MAGIC_BYTES) this.start();
        return undefined;
      }
      this.feed(chunk);
    } catch (e) {
      this.fail(e);
    }
    return undefined;
  }

  /** The input has ended: returns the facts, or throws what went wrong. */
  async end(): Promise<LayerFacts> {
    return this.endSync();
  }

  endSync(): LayerFacts {
    if (this.failure) throw this.failure;
    if (this.finished) throw new FormatError(`${this.what}: inspection ended twice`, 'ERR_ABORTED');
    this.finished = true;
    let tar;
    try {
      if (this.compression === undefined) this.start();
      this.decoder?.end();
      tar = this.checker.end();
    } catch (e) {
      this.fail(e instanceof FormatError ? e : tarError(e, this.what));
    }
    this.decoder?.close();
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
    if (this.finished && !this.failure) return;
    this.failure ??= new FormatError(`${this.what}: inspection aborted`, 'ERR_ABORTED');
    this.decoder?.close();
  }
}

/** Inspects a whole blob read from `source` (which is destroyed if inspection fails). */
export async function inspectLayer(
  source: Readable,
  what: string,
  known?: Set<string>,
  opts: { deferLinks?: boolean } = {},
): Promise<LayerFacts> {
  const ins = new LayerInspector(what, known, opts);
  try {
    for await (const c of source) ins.write(c as Buffer);
    return ins.endSync();
  } catch (e) {
    ins.abort();
    source.destroy();
    throw e;
  }
}

/** OCI media type for a layer stored as it came. */
export function layerMediaType(c: Compression): string {
  return c === 'gzip' ? MediaType.OciLayerGzip : c === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer;
}
