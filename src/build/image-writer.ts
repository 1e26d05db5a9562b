/**
 * New images from a parent image and one step's change: `docker commit` and every step of the
 * classic builder end here. As moby's image.NewChildImage: the child config is the parent's
 * with the new run config, one more history entry, and the layer's diff ID appended to
 * rootfs.diff_ids unless the layer is empty (then the history entry says empty_layer).
 *
 * Layers are stored uncompressed (as dockerd's local store keeps them); push compresses.
 * Everything a failed write stored is removed again unless another image uses it.
 */
import type { Readable } from 'node:stream';
import { LayerInspector, layerMediaType } from '../images/layer-inspect.js';
import { hostPlatform, type ImageConfig } from '../images/manifest.js';
import type { ImageRecord, ImageRunConfig } from '../images/types.js';
import type { LayerMeta, Lease, Store } from '../images/store.js';

/** diff ID of a tar with no entries (1024 zero bytes): moby's layer.EmptyLayer */
export const EMPTY_LAYER_DIFF_ID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';

export type HistoryEntry = NonNullable<ImageConfig['history']>[number];

/** What an image write started: blobs it stored (removed on failure) and its pins. */
export class ImageWrite {
  readonly lease: Lease;
  private readonly written: string[] = [];

  constructor(readonly store: Store) {
    this.lease = store.lease();
  }

  /**
   * Stores a layer tar (checked entry by entry as any pulled layer is); undefined when it has
   * no entries, as moby drops an empty layer from the image.
   */
  async layer(tar: Readable, what: string): Promise<LayerMeta | undefined> {
    const inspector = new LayerInspector(what);
    let facts: Awaited<ReturnType<LayerInspector['end']>> | undefined;
    try {
      const blob = await this.store.blobs.write(tar, {
        what,
        onChunk: (c) => inspector.write(c),
        beforeCommit: async () => void (facts = await inspector.end()),
      });
      this.lease.pin(blob.digest);
      this.written.push(blob.digest);
      if (!facts) throw new Error(`${what}: inspection did not finish`);
      if (facts.diffId === EMPTY_LAYER_DIFF_ID) return undefined;
      return {
        digest: blob.digest,
        mediaType: layerMediaType(facts.compression),
        size: blob.size,
        diffId: facts.diffId,
        uncompressedSize: facts.size,
      };
    } catch (e) {
      inspector.abort();
      throw e;
    }
  }

  /** Stores the child config of `parent` and records the image (tagged with `refs`, full references). */
  async image(o: {
    parent: { config: ImageConfig; layers: LayerMeta[] } | undefined;
    /** the parent's image ID (recorded as Docker's Parent) */
    parentId?: string;
    layer: LayerMeta | undefined;
    runConfig: ImageRunConfig;
    history: HistoryEntry;
    author?: string;
    /** the config's comment (`docker commit -m`) */
    comment?: string;
    created?: string;
    refs?: string[];
  }): Promise<ImageRecord> {
    const created = o.created ?? new Date().toISOString();
    const p = o.parent?.config;
    const config: ImageConfig = {
      architecture: p?.architecture ?? hostPlatform().architecture,
      os: p?.os ?? 'linux',
      ...(p?.variant && { variant: p.variant }),
      created,
      ...(o.author && { author: o.author }),
      ...(o.comment && { comment: o.comment }),
      config: o.runConfig,
      rootfs: { type: 'layers', diff_ids: [...(p?.rootfs.diff_ids ?? []), ...(o.layer ? [o.layer.diffId] : [])] },
      history: [...(p?.history ?? []), { created, ...o.history, ...(o.layer ? {} : { empty_layer: true }) }],
    };
    const id = await this.store.putConfig(config);
    this.lease.pin(id);
    this.written.push(id);
    return this.store.commitImage(id, [...(o.parent?.layers ?? []), ...(o.layer ? [o.layer] : [])], o.refs ?? [], {
      ...(o.parentId && { parent: o.parentId }),
    });
  }

  /** Success: the images now hold their blobs. */
  done(): void {
    this.lease.release();
  }

  /** Failure: blobs no image uses are removed (an error doing so is reported to `log`). */
  async abandon(log: (m: string) => void): Promise<void> {
    this.lease.release();
    await this.store.discardBlobs(this.written).catch((e) => log(`removing blobs of a failed image write: ${String(e)}`));
  }
}

/** The parent side of a child image: its config and stored layers. */
export async function parentOf(store: Store, imageId: string): Promise<{ config: ImageConfig; layers: LayerMeta[] }> {
  const meta = await store.inspectMeta(imageId);
  return { config: await store.config(meta.id), layers: meta.layers };
}
