/**
 * A size-limited writable layer (`--storage-opt size=`) for --isolation=container: the overlay
 * upper and work directories live on their own ext4 filesystem, a sparse file in the
 * container's state dir (layer.ext4) loop-mounted at <stateDir>/layer. Writes beyond its size
 * fail with ENOSPC inside the container, and `df /` there shows the size (overlayfs reports
 * the upper filesystem's statfs).
 *
 * The filesystem is made by our own writer (src/disks/ext4/writer.ts, zero layers: an empty
 * filesystem), grown by its own metadata (journal, inode tables, bitmaps) so that `size` is
 * its capacity as `df` shows it, as with Docker's xfs project quotas (the kernel keeps
 * min(2%, 16 MiB) of that in reserve for ext4's own allocations, so slightly less is writable).
 * The image file is sparse: it takes what the container writes plus the metadata in use
 * (32 KiB for 64 MiB, 10 MiB for 1 TiB).
 *
 * The mount lives in the host's mount namespace and outlives the daemon; after a host reboot
 * it is mounted again on the next use (mountSizedLayer).
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { InvalidParameterError } from '../../errors.js';
import { writeExt4FromLayers } from '../../disks/ext4/writer.js';
import { BLOCK_SIZE, BLOCKS_PER_GROUP, INODE_RATIO, INODES_PER_BLOCK } from '../../disks/ext4/layout.js';
import { defaultJournalBlocks } from '../../disks/ext4/journal.js';
import { isMountPoint, loopMount, unmountLoop } from './base-mounts.js';

/** the filesystem image, in the state dir */
export const LAYER_IMAGE = 'layer.ext4';
/** its mount point, in the state dir */
export const LAYER_MOUNT = 'layer';
/** the largest layer we make: 16 TiB, the writer's limit */
const MAX_LAYER_SIZE = 2 ** 44;
/** sizing passes: metadata grows with the disk, so the first guess can fall short */
const MAX_PASSES = 5;

export interface LayerDirs {
  upper: string;
  work: string;
}

/** The overlay upper and work directories of a container (on the sized layer if it has one). */
export function layerDirs(stateDir: string, sized: boolean): LayerDirs {
  const base = sized ? path.join(stateDir, LAYER_MOUNT) : stateDir;
  return { upper: path.join(base, 'upper'), work: path.join(base, 'work') };
}

/** the writer's smallest filesystem */
const MIN_FS_BLOCKS = 4096;

/**
 * ext4's own blocks for a filesystem with `data` free blocks: the journal (mke2fs's size),
 * per group an inode table (mke2fs's bytes-per-inode ratio) and two bitmaps, and a margin for
 * descriptors and backups; the first pass usually fits, else the next one grows by the deficit.
 */
function metadataEstimate(data: number): number {
  const groups = Math.ceil(data / BLOCKS_PER_GROUP);
  const inodeTable = (BLOCKS_PER_GROUP * BLOCK_SIZE) / INODE_RATIO / INODES_PER_BLOCK;
  return defaultJournalBlocks(Math.max(data, 2048)) + groups * (inodeTable + 2) + 4;
}

/** no layers at all: the writer then makes an empty filesystem */
async function* noLayers(): AsyncGenerator<never> {}

/**
 * Writes an empty ext4 filesystem at `image` whose free space is at least `usableBytes`.
 * Returns the filesystem's total size.
 */
export async function writeLayerImage(image: string, usableBytes: number): Promise<number> {
  if (!Number.isSafeInteger(usableBytes) || usableBytes <= 0 || usableBytes > MAX_LAYER_SIZE) {
    throw new InvalidParameterError(`writable layer size ${usableBytes} out of range 1..${MAX_LAYER_SIZE}`);
  }
  const uuid = randomUUID();
  const timestamp = Math.floor(Date.now() / 1000);
  const want = Math.ceil(usableBytes / BLOCK_SIZE);
  let total = Math.max(MIN_FS_BLOCKS, want + metadataEstimate(want));
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const stats = await writeExt4FromLayers(noLayers(), image, { sizeBytes: total * BLOCK_SIZE, uuid, timestamp });
    if (stats.freeBlocks >= want) return stats.sizeBytes;
    total = stats.blocksCount + (want - stats.freeBlocks);
  }
  // the image file may never have been created; a leftover is removed with the state directory
  await unlink(image).catch(() => {});
  throw new InvalidParameterError(`cannot size a writable layer of ${usableBytes} bytes`, 'ERR_LAYER_SIZE');
}

/**
 * Mounts and removals in progress, by mount point: start, diff and cp of one container may
 * remount its layer at once, and a diff may race its rm -f; each waits for the one before.
 */
const inProgress = new Map<string, Promise<void>>();

function serialized(mp: string, fn: () => Promise<void>): Promise<void> {
  const run = (inProgress.get(mp) ?? Promise.resolve()).then(fn);
  // the chain only orders the work: each caller awaits its own promise and gets its own error
  const tail = run.catch(() => {});
  inProgress.set(mp, tail);
  // tail never rejects (caught above): this only forgets a finished chain
  void tail.then(() => {
    if (inProgress.get(mp) === tail) inProgress.delete(mp);
  });
  return run;
}

/** Mounts the container's layer if it is not mounted (after a host reboot); a no-op otherwise. */
export async function mountSizedLayer(stateDir: string): Promise<void> {
  const mp = path.join(stateDir, LAYER_MOUNT);
  return serialized(mp, async () => {
    if (await isMountPoint(mp)) return;
    const image = path.join(stateDir, LAYER_IMAGE);
    if (!existsSync(image))
      throw new InvalidParameterError(`the writable layer ${image} of this container is missing`, 'ERR_LAYER_MISSING');
    await loopMount(image, mp, [], 'ERR_LAYER_MOUNT');
  });
}

/**
 * Creates, mounts and prepares (upper/, work/) the container's sized layer; leaves nothing
 * behind when it fails.
 */
export async function createSizedLayer(stateDir: string, usableBytes: number): Promise<LayerDirs> {
  const image = path.join(stateDir, LAYER_IMAGE);
  try {
    await writeLayerImage(image, usableBytes);
    await mountSizedLayer(stateDir);
    const dirs = layerDirs(stateDir, true);
    await mkdir(dirs.upper, { mode: 0o755 });
    await mkdir(dirs.work, { mode: 0o755 });
    return dirs;
  } catch (e) {
    // cleanup after a failed create: its error is thrown, and a layer still mounted keeps the state dir from being deleted
    await removeSizedLayer(stateDir).catch(() => {});
    throw e;
  }
}

/**
 * Unmounts (releasing the loop device) and deletes the layer; a no-op for a container without
 * one. Throws if the unmount fails, so that nobody deletes the state dir through a live mount.
 */
export async function removeSizedLayer(stateDir: string): Promise<void> {
  const mp = path.join(stateDir, LAYER_MOUNT);
  return serialized(mp, async () => {
    await unmountLoop(mp, 'ERR_LAYER_UNMOUNT');
    // an empty mount-point directory left behind is harmless: the next mount reuses it
    await rmdir(mp).catch(() => {});
    await unlink(path.join(stateDir, LAYER_IMAGE)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  });
}
