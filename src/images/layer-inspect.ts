/**
 * One pass over a layer blob that yields everything we must know before trusting it: the
 * compression, the diff ID and uncompressed size, and that every tar entry is safe.
 */
import { Transform, type TransformCallback, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingStream } from './digest.js';
import { LayerDecompressor, Tee, type Compression } from './layer.js';
import { layerTarValidator } from './tar-safety.js';
import { MediaType } from './manifest.js';

export interface LayerFacts {
  compression: Compression;
  diffId: string;
  size: number;
  entries: number;
  paths: Set<string>;
  dangling: { name: string; target: string }[];
}

class Discard extends Transform {
  override _transform(_c: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    cb();
  }
}

/** A sink for a layer blob; `done` resolves after the blob ended and the tar was checked. */
export function layerInspector(what: string, known?: Set<string>, opts: { deferLinks?: boolean } = {}): { sink: Writable; done: Promise<LayerFacts> } {
  const dec = new LayerDecompressor(what);
  const hasher = new HashingStream(`${what} (uncompressed)`);
  const validator = layerTarValidator(what, known, opts);
  const done = Promise.all([pipeline(dec, hasher, new Tee(validator.sink), new Discard()), validator.done]).then(([, v]) => {
    const r = hasher.result();
    return { compression: dec.compression ?? 'none', diffId: r.digest, size: r.size, entries: v.entries, paths: v.paths, dangling: v.dangling };
  });
  done.catch(() => {});
  return { sink: dec, done };
}

export async function inspectLayer(source: Readable, what: string, known?: Set<string>): Promise<LayerFacts> {
  const { sink, done } = layerInspector(what, known);
  await pipeline(source, sink);
  return done;
}

/** OCI media type for a layer stored as it came. */
export function layerMediaType(c: Compression): string {
  return c === 'gzip' ? MediaType.OciLayerGzip : c === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer;
}
