/**
 * The per-image read-only base disk: `<dataRoot>/disks/base/<image-id-hex>.ext4`, built once
 * from the image's layers by the ext4 writer and shared by every container of the image (VMs
 * through a qcow2 overlay, container isolation through a read-only loop mount + overlayfs).
 *
 * A disk is current when its superblock carries the UUID derived from (image ID, writer
 * version) and our label: a writer change bumps BASE_DISK_WRITER_VERSION and every disk is
 * rebuilt on next use, unless containers still use it (see `inUse`). Builds go to a temp file and are renamed into place (the writer does
 * that), and concurrent ensure() calls for one image share a single build.
 */
import { createHash } from 'node:crypto';
import { open, rm, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidParameterError } from '../errors.js';
import { writeExt4FromLayers, uuidFromDigest, type Ext4Stats } from './ext4/writer.js';
import type { IdShift } from './ext4/id-shift.js';
import { SUPERBLOCK, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, EXT4_SUPER_MAGIC } from './ext4/superblock.js';

/** bump whenever the writer's output for the same layers changes */
export const BASE_DISK_WRITER_VERSION = 1;
export const BASE_DISK_LABEL = 'tvm-base';

export interface BaseDiskCacheOptions {
  dataRoot: string;
  /** uncompressed layer tars of an image, bottom first */
  layerStreams: (imageId: string) => AsyncIterable<Readable>;
  /**
   * Whether containers still use the image's disk (their qcow2 overlays name it as backing
   * file). A disk of an older writer version is then kept rather than rebuilt underneath them:
   * it is a valid filesystem, and rebuilding it would change the blocks their overlays sit on.
   */
  inUse?: (imageId: string) => boolean | Promise<boolean>;
  /**
   * virtual size of every base disk (the daemon's `--storage-opt size=`): the free space a VM's
   * writable root gets through its overlay; default: the writer's, from the content
   */
  sizeBytes?: number;
  /**
   * `--userns-remap`: this cache holds the id-shifted variant of every disk (owners moved to the
   * host ids the maps give them; see ext4/id-shift.ts). Its files are named and identified apart
   * from the plain disks (`<hex>.userns-<tag>.ext4`), so both can exist side by side.
   */
  idShift?: IdShift;
  /** called after each build (for logs and events) */
  onBuilt?: (imageId: string, stats: Ext4Stats, path: string) => void;
}

export function imageIdHex(imageId: string): string {
  const m = /^(?:sha256:)?([0-9a-f]{64})$/.exec(imageId);
  if (!m) throw new InvalidParameterError(`malformed image ID ${JSON.stringify(imageId)}`, 'ERR_BAD_IMAGE_ID');
  return m[1]!;
}

/** the filesystem UUID a current base disk of `imageId` has */
export function baseDiskUuid(imageId: string, version = BASE_DISK_WRITER_VERSION, sizeBytes?: number, idShift?: IdShift): Buffer {
  // The size is part of the identity, so a daemon started with another size rebuilds its disks.
  const size = sizeBytes === undefined ? '' : `\nsize ${sizeBytes}`;
  const shift = idShift === undefined ? '' : `\nuserns ${idShiftTag(idShift)}`;
  return uuidFromDigest(
    createHash('sha256')
      .update(`tvm base disk v${version}\n${imageIdHex(imageId)}${size}${shift}`)
      .digest(),
  );
}

/** A short stable name for a set of id maps: u<root uid>-g<root gid>-<digest of the maps>. */
export function idShiftTag(shift: IdShift): string {
  const root = (m: IdShift['uidMap']) => m.find((e) => e.containerID === 0)?.hostID ?? 'none';
  const digest = createHash('sha256')
    .update(JSON.stringify([shift.uidMap, shift.gidMap]))
    .digest('hex')
    .slice(0, 8);
  return `u${root(shift.uidMap)}-g${root(shift.gidMap)}-${digest}`;
}

/** The part of an image record a base disk is keyed by (an images ImageRecord is one). */
export interface BaseDiskImage {
  /** 'sha256:<hex>' */
  id: string;
}

/** The per-image read-only ext4 base disk (built once, keyed by image ID + writer version). */
export interface BaseDisks {
  /** path of the finished base disk; builds it atomically if absent */
  ensure(image: BaseDiskImage): Promise<string>;
}

export class BaseDiskCache implements BaseDisks {
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(private readonly opts: BaseDiskCacheOptions) {}

  get dir(): string {
    return path.join(this.opts.dataRoot, 'disks', 'base');
  }

  pathFor(imageId: string): string {
    const variant = this.opts.idShift ? `.userns-${idShiftTag(this.opts.idShift)}` : '';
    return path.join(this.dir, `${imageIdHex(imageId)}${variant}.ext4`);
  }

  ensure(image: BaseDiskImage): Promise<string> {
    const key = imageIdHex(image.id);
    const running = this.inflight.get(key);
    if (running) return running;
    const p = this.ensureOnce(image.id).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  /** true when the disk exists and was written by this writer version for this image */
  async isCurrent(imageId: string): Promise<boolean> {
    const f = await readSuperblock(this.pathFor(imageId));
    if (!f) return false;
    const label = Buffer.from(f.s_volume_name as Uint8Array)
      .toString('utf8')
      .replace(/\0+$/, '');
    return (
      label === BASE_DISK_LABEL &&
      Buffer.from(f.s_uuid as Uint8Array).equals(baseDiskUuid(imageId, BASE_DISK_WRITER_VERSION, this.opts.sizeBytes, this.opts.idShift))
    );
  }

  /** removes an image's base disk (image deletion); containers holding it open keep their copy */
  async remove(imageId: string): Promise<void> {
    await rm(this.pathFor(imageId), { force: true });
  }

  /**
   * Daemon start: deletes the base disks (every variant: they share the directory) of images
   * `keep` rejects, and the temp files of builds a crash interrupted. Returns the names removed.
   */
  async prune(keep: (imageId: string) => boolean): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const removed: string[] = [];
    for (const name of names) {
      const disk = /^([0-9a-f]{64})(?:\.userns-[^.]+)?\.ext4$/.exec(name);
      const stale = disk ? !keep(`sha256:${disk[1]}`) : name.startsWith('.') && name.endsWith('.tmp');
      if (!stale) continue;
      await rm(path.join(this.dir, name), { force: true });
      removed.push(name);
    }
    return removed;
  }

  private async ensureOnce(imageId: string): Promise<string> {
    const target = this.pathFor(imageId);
    if (await this.isCurrent(imageId)) return target;
    if (this.opts.inUse && (await readSuperblock(target)) && (await this.opts.inUse(imageId))) return target;
    await mkdir(this.dir, { recursive: true });
    // a build killed mid-way (daemon crash) leaves its temp file: builds of one image are
    // serialised in this process, so any temp for this image now is stale
    const stale = `.${path.basename(target)}.`;
    for (const name of await readdir(this.dir)) {
      if (name.startsWith(stale) && name.endsWith('.tmp')) await rm(path.join(this.dir, name), { force: true });
    }
    const stats = await writeExt4FromLayers(this.opts.layerStreams(imageId), target, {
      uuid: baseDiskUuid(imageId, BASE_DISK_WRITER_VERSION, this.opts.sizeBytes, this.opts.idShift),
      label: BASE_DISK_LABEL,
      ...(this.opts.sizeBytes !== undefined && { sizeBytes: this.opts.sizeBytes }),
      ...(this.opts.idShift && { idShift: this.opts.idShift }),
    });
    this.opts.onBuilt?.(imageId, stats, target);
    return target;
  }
}

/** the superblock's fields, or null if `p` is missing or not ext4 */
async function readSuperblock(p: string): Promise<ReturnType<typeof SUPERBLOCK.decode> | null> {
  let fh;
  try {
    fh = await open(p, 'r');
  } catch {
    return null;
  }
  try {
    const sb = Buffer.alloc(SUPERBLOCK_SIZE);
    const { bytesRead } = await fh.read(sb, 0, SUPERBLOCK_SIZE, SUPERBLOCK_OFFSET);
    if (bytesRead !== SUPERBLOCK_SIZE) return null;
    const f = SUPERBLOCK.decode(sb);
    return f.s_magic === EXT4_SUPER_MAGIC ? f : null;
  } finally {
    await fh.close();
  }
}
