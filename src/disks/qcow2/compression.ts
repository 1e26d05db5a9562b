/**
 * Decoding compressed clusters (read only). A compressed descriptor rounds up to whole
 * 512-byte sectors, so the bytes read may run on into the next cluster's compressed data:
 * both decoders stop after exactly one cluster.
 */
import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import type { Decompress } from 'fzstd';

/**
 * fzstd on first use: zstd clusters are rare, and every VM supervisor (which opens qcow2 disks
 * on its start path) would otherwise load the decoder before its first line.
 */
let zstd: typeof Decompress | undefined;
function zstdDecompress(): typeof Decompress {
  zstd ??= (createRequire(import.meta.url)('fzstd') as { Decompress: typeof Decompress }).Decompress;
  return zstd;
}

/** zlib compression type: QEMU writes raw deflate (no zlib header). */
export function inflateCluster(raw: Uint8Array, clusterSize: number): Uint8Array {
  return zlib.inflateRawSync(raw, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: clusterSize });
}

/**
 * zstd compression type: one frame per cluster. Fed in small pieces so decoding stops once a
 * cluster's worth is out instead of running on into the next cluster's frame (or padding).
 */
export function unzstdCluster(raw: Uint8Array, clusterSize: number): Uint8Array {
  const out = new Uint8Array(clusterSize);
  let n = 0;
  const d = new (zstdDecompress())((chunk) => {
    const take = Math.min(chunk.length, clusterSize - n);
    out.set(chunk.subarray(0, take), n);
    n += take;
  });
  const PIECE = 4096;
  try {
    for (let p = 0; p < raw.length && n < clusterSize; p += PIECE)
      d.push(raw.subarray(p, Math.min(raw.length, p + PIECE)), p + PIECE >= raw.length);
  } catch (e) {
    if (n < clusterSize) throw e; // errors past our frame belong to whatever follows it
  }
  return out.subarray(0, n);
}
