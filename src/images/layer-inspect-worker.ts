/**
 * Worker thread side of the inspector pool (inspect-pool.ts): runs LayerInspectors for the
 * main thread, so that gunzip, the diff-ID hash and the tar walk of a layer use the second
 * core while the main thread downloads, hashes and writes the compressed blob.
 * Messages per inspection id are handled strictly in order.
 */
import { parentPort } from 'node:worker_threads';
import { createHash, type Hash } from 'node:crypto';
import { LayerInspector } from './layer-inspect.js';
import type { ToWorker, FromWorker } from './inspect-pool.js';

const port = parentPort!;
const jobs = new Map<number, { ins: LayerInspector; blob: Hash | undefined; tail: Promise<void>; failed: boolean }>();

function send(m: FromWorker, transfer?: ArrayBuffer[]): void {
  port.postMessage(m, transfer);
}

function failed(id: number, e: unknown, blobDigest?: string): void {
  const job = jobs.get(id);
  if (!job || job.failed) return;
  job.failed = true;
  job.ins.abort();
  const err = e as { message?: string; code?: string; name?: string };
  send({
    op: 'error',
    id,
    message: err?.message ?? String(e),
    code: err?.code ?? 'ERR_LAYER_INSPECT',
    name: err?.name ?? 'Error',
    ...(blobDigest && { blobDigest }),
  });
}

port.on('message', (m: ToWorker) => {
  if (m.op === 'start') {
    const blob = m.hashBlob ? createHash('sha256') : undefined;
    jobs.set(m.id, {
      ins: new LayerInspector(m.what, new Set(), { deferLinks: m.deferLinks }),
      blob,
      tail: Promise.resolve(),
      failed: false,
    });
    return;
  }
  const job = jobs.get(m.id);
  if (!job) return;
  if (m.op === 'abort') {
    job.failed = true;
    job.ins.abort();
    jobs.delete(m.id);
    return;
  }
  job.tail = job.tail.then(async () => {
    if (job.failed) return;
    let blobDigest: string | undefined;
    try {
      if (m.op === 'data') {
        const bytes = m.chunk.byteLength;
        const chunk = Buffer.from(m.chunk.buffer, m.chunk.byteOffset, bytes);
        job.blob?.update(chunk);
        // consumed (inflated, hashed, walked) before write returns
        job.ins.write(chunk);
        // the memory goes back to the sender for its next message (fresh pages cost a fault
        // each): the inspector consumed the chunk and kept no reference to it
        const memory = m.chunk.buffer as ArrayBuffer;
        send({ op: 'ack', id: m.id, bytes, memory }, [memory]);
      } else {
        if (job.blob) blobDigest = 'sha256:' + job.blob.digest('hex');
        const f = await job.ins.end();
        jobs.delete(m.id);
        send({
          op: 'done',
          id: m.id,
          facts: {
            compression: f.compression,
            diffId: f.diffId,
            size: f.size,
            entries: f.entries,
            paths: [...f.paths],
            dangling: f.dangling,
          },
          ...(blobDigest && { blobDigest }),
        });
      }
    } catch (e) {
      failed(m.id, e, blobDigest);
      jobs.delete(m.id);
    }
  });
});
