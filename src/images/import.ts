/**
 * `docker import`: a root filesystem tar (plain, gzip or zstd) becomes a one-layer image.
 * The tar is streamed into the blob store as given while, in the same pass, it is
 * decompressed, hashed (diff ID) and every entry is checked; nothing is kept if it fails.
 */
import type { Readable } from 'node:stream';
import { InvalidParameterError } from '../errors.js';
import { LayerInspector, layerMediaType } from './layer-inspect.js';
import { applyChanges } from './changes.js';
import { hostPlatform } from './manifest.js';
import { formatReference, parseNormalized } from './reference.js';
import type { ImageRecord } from './types.js';
import type { Store } from './store.js';

export async function importRootfs(
  store: Store,
  tar: Readable,
  opts: { ref?: string; changes?: string[]; message?: string },
): Promise<ImageRecord> {
  // Validate everything the caller gave before reading the body.
  const ref = opts.ref ? parseNormalized(opts.ref) : undefined;
  if (ref?.digest) throw new InvalidParameterError(`cannot import to a digest reference: ${opts.ref}`);
  const runConfig = applyChanges({}, opts.changes ?? []);
  const inspector = new LayerInspector('imported rootfs');
  let facts: Awaited<ReturnType<LayerInspector['end']>> | undefined;
  const written: string[] = [];
  const lease = store.lease();
  try {
    const blob = await store.blobs.write(tar, {
      what: 'imported rootfs',
      onChunk: (c) => inspector.write(c),
      // an unsafe or corrupt tar is refused before its blob is stored
      beforeCommit: async () => void (facts = await inspector.end()),
    });
    lease.pin(blob.digest);
    written.push(blob.digest);
    if (!facts) throw new Error('imported rootfs: inspection did not finish');
    const now = new Date().toISOString();
    const config = {
      architecture: hostPlatform().architecture,
      os: 'linux',
      created: now,
      config: runConfig,
      rootfs: { type: 'layers', diff_ids: [facts.diffId] },
      // as dockerd: the message is the image's comment too (docker inspect .Comment)
      ...(opts.message && { comment: opts.message }),
      history: [{ created: now, comment: opts.message || 'Imported from -' }],
    };
    const id = await store.putConfig(config);
    lease.pin(id);
    written.push(id);
    return await store.commitImage(
      id,
      [
        {
          digest: blob.digest,
          mediaType: layerMediaType(facts.compression),
          size: blob.size,
          diffId: facts.diffId,
          uncompressedSize: facts.size,
        },
      ],
      ref ? [formatReference(ref)] : [],
    );
  } catch (e) {
    inspector.abort();
    lease.release();
    await store.discardBlobs(written);
    throw e;
  } finally {
    lease.release();
  }
}
