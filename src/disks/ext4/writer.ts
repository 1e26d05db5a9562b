/**
 * Image layers -> one ext4 filesystem image, in one streaming pass and without root: file data
 * goes straight from the tar streams into its final blocks, the tree (names, metadata, extents)
 * stays in memory, and when the last layer is done the metadata is laid out behind the data:
 * directories, extent tree blocks, xattr blocks, the journal, inode tables, bitmaps, group
 * descriptors and superblocks. Output goes to a temp file renamed into place only when
 * complete; any error removes it.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { FormatError, InvalidParameterError } from '../../errors.js';
import { BlockAllocator, type Run } from './allocator.js';
import { BlockWriter } from './block-writer.js';
import { shiftId, shiftXattr, type IdShift } from './id-shift.js';
import { crc32cUpdate } from './crc32c.js';
import { packDirectory, dirBlocksNeeded, EXT4_FT, type DirEntry } from './dir-entry.js';
import {
  appendExtent,
  buildExtentTree,
  extentTreeBlocksNeeded,
  setExtentBlockChecksum,
  EXT4_EXT_MAGIC,
  EXTENT_HEADER,
  EXT4_INODE_ROOT_ENTRIES,
} from './extent.js';
import {
  GROUP_DESC,
  GROUP_DESC_SIZE_64,
  EXT4_BG_INODE_ZEROED,
  EXT4_BG_BLOCK_UNINIT,
  EXT4_BG_INODE_UNINIT,
  groupDescChecksum,
  bitmapChecksum,
} from './group-descriptor.js';
import {
  INODE,
  EXT4_INODE_SIZE,
  EXT4_EXTRA_ISIZE,
  EXT4_INODE_XATTR_OFFSET,
  EXT4_ROOT_INO,
  EXT4_JOURNAL_INO,
  EXT4_GOOD_OLD_FIRST_INO,
  EXT4_EXTENTS_FL,
  EXT4_INDEX_FL,
  EXT4_LINK_MAX,
  S_IFREG,
  S_IFDIR,
  S_IFLNK,
  S_IFCHR,
  S_IFBLK,
  S_IFIFO,
  S_IFSOCK,
  encodeTime,
  encodeDevice,
  inodeCsumSeed,
  setInodeChecksum,
  type Timestamp,
} from './inode.js';
import { buildJournalSuperblock, defaultJournalBlocks } from './journal.js';
import {
  BLOCK_SIZE,
  BLOCKS_PER_GROUP,
  LOG_BLOCK_SIZE,
  LOG_GROUPS_PER_FLEX,
  MAX_INODES_PER_GROUP,
  computeGeometry,
  gdtBlocksFor,
  groupBlocks,
  hasSuperblockBackup,
  trimBlocksCount,
  type Geometry,
} from './layout.js';
import {
  SUPERBLOCK,
  SUPERBLOCK_OFFSET,
  EXT4_SUPER_MAGIC,
  EXT4_FEATURE_COMPAT,
  EXT4_FEATURE_INCOMPAT,
  EXT4_FEATURE_RO_COMPAT,
  EXT4_STATE_VALID_FS,
  EXT4_ERRORS_CONTINUE,
  EXT4_OS_LINUX,
  EXT4_DYNAMIC_REV,
  EXT4_CRC32C_CHKSUM,
  EXT4_FLAGS_SIGNED_HASH,
  EXT4_DEFM_XATTR_USER,
  EXT4_DEFM_ACL,
  DX_HASH_HALF_MD4,
  EXT3_JNL_BACKUP_BLOCKS,
  EXT4_LABEL_MAX,
  setSuperblockChecksum,
} from './superblock.js';
import { TarReader, type TarHeader } from './tar-reader.js';
import { packHashedDirectory } from './htree.js';
import { FsNode, MergedTree, splitPath, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX, type NodeMeta } from './tree.js';
import { buildXattrBlock, fitsInBlock, fitsInInode, posixAclToExt4, splitXattrName, writeInodeXattrs, type Xattr } from './xattr.js';

export interface Ext4WriteOptions {
  /** virtual size of the disk; default max(content * 1.5 + 256 MiB, 1 GiB) */
  sizeBytes?: number;
  /** filesystem UUID ("xxxxxxxx-xxxx-...", or 16 bytes); default derived from the layers' bytes */
  uuid?: string | Uint8Array;
  /** volume label, at most 16 bytes */
  label?: string;
  /**
   * seconds since the epoch for the superblock times, /lost+found and directories the layers
   * imply but do not list; default: the newest mtime in the layers (so output stays a pure
   * function of the input)
   */
  timestamp?: number;
  /**
   * ownership shift for a root used under a user namespace (`--userns-remap`): every uid/gid,
   * and the ids in ACLs and file capabilities, become the host ids the maps give them
   * (id-shift.ts); an id the maps do not cover fails the build
   */
  idShift?: IdShift;
}

export interface Ext4Stats {
  /** size of the image file (virtual; the file is sparse) */
  sizeBytes: number;
  blockSize: number;
  blocksCount: number;
  freeBlocks: number;
  groups: number;
  inodesCount: number;
  inodesUsed: number;
  /** blocks holding file data (after holes and whiteouts) */
  dataBlocks: number;
  /** blocks of directories, extent trees, xattrs, symlinks, bitmaps, inode tables in use */
  metadataBlocks: number;
  journalBlocks: number;
  files: number;
  directories: number;
  symlinks: number;
  /** names beyond the first for hard-linked files */
  hardlinks: number;
  devices: number;
  fifos: number;
  whiteouts: number;
  opaqueDirs: number;
  /** xattrs with a namespace ext4 cannot store (e.g. macOS "com.apple.*"), left out */
  skippedXattrs: number;
  layers: number;
  uuid: string;
}

const DEFAULT_MIN_SIZE = 1 << 30;
const DEFAULT_HEADROOM = 256 << 20;
/** without a given size, the descriptor area is reserved for disks up to this many groups (2 TiB) */
const DEFAULT_MAX_GROUPS = 16384;
const MAX_FILE_BLOCKS = 2 ** 32;
/** 16 TiB: plenty for a container disk, and every count stays far inside JS integer precision */
const MAX_BLOCKS = 2 ** 32;
const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);
const NO_XATTRS: Map<string, Buffer> = new Map();

export async function writeExt4FromLayers(
  layers: AsyncIterable<Readable>,
  outPath: string,
  opts: Ext4WriteOptions = {},
): Promise<Ext4Stats> {
  const dir = path.dirname(outPath);
  const tmp = path.join(dir, `.${path.basename(outPath)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    const builder = new Ext4Builder(fh, opts);
    let index = 0;
    for await (const layer of layers) {
      try {
        await builder.applyLayer(layer, index);
      } finally {
        // release the source (a file or a decompressor) even when we stopped early
        if (typeof layer.destroy === 'function' && !layer.destroyed) layer.destroy();
      }
      index++;
    }
    const stats = await builder.finish(index);
    await fh.sync();
    await fh.close();
    await rename(tmp, outPath);
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
    return stats;
  } catch (e) {
    // on an error path the original error is what the caller needs; the handle is released even if close() reports one
    await fh.close().catch(() => {});
    // the error being thrown is the one that matters; a temp file left behind is never read as data
    // (the next build of this image removes stale temps)
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

export function parseUuid(u: string | Uint8Array): Buffer {
  if (typeof u !== 'string') {
    if (u.length !== 16) throw new InvalidParameterError('uuid must be 16 bytes', 'ERR_BAD_UUID');
    return Buffer.from(u);
  }
  const hex = u.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new InvalidParameterError(`malformed uuid ${JSON.stringify(u)}`, 'ERR_BAD_UUID');
  return Buffer.from(hex, 'hex');
}

export function formatUuid(b: Uint8Array): string {
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** a name-based UUID (RFC 9562 version 8) from a digest */
export function uuidFromDigest(digest: Uint8Array): Buffer {
  const b = Buffer.from(digest.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}

async function* hashing(src: AsyncIterable<Buffer | string>, h: Hash): AsyncGenerator<Buffer> {
  for await (const c of src) {
    const b = typeof c === 'string' ? Buffer.from(c) : c;
    h.update(b);
    yield b;
  }
}

/** per-inode layout decided in finish() */
interface InodeLayout {
  iblock: Buffer | null;
  /** hashed directory (EXT4_INDEX_FL) */
  indexed?: boolean;
  treeBlocks: number;
  xattrBlock: number;
  inodeXattrs: Xattr[];
}

/** what finish() decides in its first phases, read by the later ones */
interface FsPlan {
  uuid: Buffer;
  fsSeed: number;
  hashSeed: Buffer;
  /** the root first, then every other inode in number order (not the journal) */
  nodes: FsNode[];
  lastIno: number;
  layouts: Map<FsNode, InodeLayout>;
  geo: Geometry;
  /** metadata blocks allocated so far, for the block bitmaps */
  metaRuns: Run[];
}

/** an xattr list too big for its inodes, stored once for all of them */
interface SharedXattrBlock {
  list: Xattr[];
  refs: number;
  block: number;
}

/** per group: where its block bitmap, inode bitmap and inode table start */
interface GroupPlaces {
  blockBitmap: number[];
  inodeBitmap: number[];
  inodeTable: number[];
}

/** One 64-byte group descriptor at index `g` of `gdt`, with its checksum. */
function encodeGroupDescriptor(
  gdt: Buffer,
  g: number,
  fsSeed: number,
  d: {
    blockBitmap: number;
    inodeBitmap: number;
    inodeTable: number;
    freeBlocks: number;
    freeInodes: number;
    usedDirs: number;
    bbCsum: number;
    ibCsum: number;
    flags: number;
  },
): void {
  const at = g * GROUP_DESC_SIZE_64;
  GROUP_DESC.encode(
    {
      bg_block_bitmap_lo: lo(d.blockBitmap),
      bg_block_bitmap_hi: hi(d.blockBitmap),
      bg_inode_bitmap_lo: lo(d.inodeBitmap),
      bg_inode_bitmap_hi: hi(d.inodeBitmap),
      bg_inode_table_lo: lo(d.inodeTable),
      bg_inode_table_hi: hi(d.inodeTable),
      bg_free_blocks_count_lo: d.freeBlocks & 0xffff,
      bg_free_blocks_count_hi: d.freeBlocks >>> 16,
      bg_free_inodes_count_lo: d.freeInodes & 0xffff,
      bg_free_inodes_count_hi: d.freeInodes >>> 16,
      bg_used_dirs_count_lo: d.usedDirs & 0xffff,
      bg_used_dirs_count_hi: d.usedDirs >>> 16,
      bg_itable_unused_lo: d.freeInodes & 0xffff,
      bg_itable_unused_hi: d.freeInodes >>> 16,
      bg_flags: d.flags,
      bg_block_bitmap_csum_lo: d.bbCsum & 0xffff,
      bg_block_bitmap_csum_hi: d.bbCsum >>> 16,
      bg_inode_bitmap_csum_lo: d.ibCsum & 0xffff,
      bg_inode_bitmap_csum_hi: d.ibCsum >>> 16,
    },
    gdt,
    at,
  );
  const desc = gdt.subarray(at, at + GROUP_DESC_SIZE_64);
  gdt.writeUInt16LE(groupDescChecksum(fsSeed, g, desc), at + GROUP_DESC.offsetOf('bg_checksum'));
}

/** The primary superblock (group 0, no checksum yet): the features we write, the geometry, the journal. */
function encodeSuperblock(p: {
  geo: Geometry;
  freeBlocks: number;
  freeInodes: number;
  time: number;
  uuid: Buffer;
  label: string;
  hashSeed: Buffer;
  jnlBlocks: Buffer;
}): Buffer {
  const { geo, time: t } = p;
  return SUPERBLOCK.encode({
    s_inodes_count: geo.inodesCount,
    s_blocks_count_lo: lo(geo.blocksCount),
    s_blocks_count_hi: hi(geo.blocksCount),
    s_r_blocks_count_lo: 0,
    s_free_blocks_count_lo: lo(p.freeBlocks),
    s_free_blocks_count_hi: hi(p.freeBlocks),
    s_free_inodes_count: p.freeInodes,
    s_first_data_block: 0,
    s_log_block_size: LOG_BLOCK_SIZE,
    s_log_cluster_size: LOG_BLOCK_SIZE,
    s_blocks_per_group: BLOCKS_PER_GROUP,
    s_clusters_per_group: BLOCKS_PER_GROUP,
    s_inodes_per_group: geo.inodesPerGroup,
    s_mtime: 0,
    s_wtime: t,
    s_mnt_count: 0,
    s_max_mnt_count: 0xffff,
    s_magic: EXT4_SUPER_MAGIC,
    s_state: EXT4_STATE_VALID_FS,
    s_errors: EXT4_ERRORS_CONTINUE,
    s_lastcheck: t,
    s_creator_os: EXT4_OS_LINUX,
    s_rev_level: EXT4_DYNAMIC_REV,
    s_first_ino: EXT4_GOOD_OLD_FIRST_INO,
    s_inode_size: EXT4_INODE_SIZE,
    s_feature_compat: EXT4_FEATURE_COMPAT.HAS_JOURNAL | EXT4_FEATURE_COMPAT.EXT_ATTR | EXT4_FEATURE_COMPAT.DIR_INDEX,
    s_feature_incompat:
      EXT4_FEATURE_INCOMPAT.FILETYPE | EXT4_FEATURE_INCOMPAT.EXTENTS | EXT4_FEATURE_INCOMPAT.BIT64 | EXT4_FEATURE_INCOMPAT.FLEX_BG,
    s_feature_ro_compat:
      EXT4_FEATURE_RO_COMPAT.SPARSE_SUPER |
      EXT4_FEATURE_RO_COMPAT.LARGE_FILE |
      EXT4_FEATURE_RO_COMPAT.HUGE_FILE |
      EXT4_FEATURE_RO_COMPAT.DIR_NLINK |
      EXT4_FEATURE_RO_COMPAT.EXTRA_ISIZE |
      EXT4_FEATURE_RO_COMPAT.METADATA_CSUM,
    s_uuid: p.uuid,
    s_volume_name: Buffer.from(p.label, 'utf8'),
    s_journal_inum: EXT4_JOURNAL_INO,
    s_hash_seed: p.hashSeed,
    s_def_hash_version: DX_HASH_HALF_MD4,
    s_jnl_backup_type: EXT3_JNL_BACKUP_BLOCKS,
    s_desc_size: GROUP_DESC_SIZE_64,
    s_default_mount_opts: EXT4_DEFM_XATTR_USER | EXT4_DEFM_ACL,
    s_mkfs_time: t,
    s_jnl_blocks: p.jnlBlocks,
    s_min_extra_isize: EXT4_EXTRA_ISIZE,
    s_want_extra_isize: EXT4_EXTRA_ISIZE,
    s_flags: EXT4_FLAGS_SIGNED_HASH,
    s_log_groups_per_flex: LOG_GROUPS_PER_FLEX,
    s_checksum_type: EXT4_CRC32C_CHKSUM,
  });
}

class Ext4Builder {
  private readonly reservedPerBackup: number;
  private readonly alloc: BlockAllocator;
  private readonly writer: BlockWriter;
  private readonly tree: MergedTree;
  /** newest mtime seen so far, the default time */
  private newest = 0;
  private rootListed = false;
  private readonly contentHash: Hash | null;
  private readonly fixedBlocks: number | null;
  private hardlinks = 0;
  private skippedXattrs = 0;
  /** partial last block of the file being written */
  private readonly partial = Buffer.alloc(BLOCK_SIZE);
  private partialBlock = -1;

  constructor(
    fh: FileHandle,
    private readonly opts: Ext4WriteOptions,
  ) {
    if (opts.label !== undefined && Buffer.byteLength(opts.label) > EXT4_LABEL_MAX) {
      throw new InvalidParameterError(`label ${JSON.stringify(opts.label)} is longer than ${EXT4_LABEL_MAX} bytes`, 'ERR_BAD_LABEL');
    }
    if (opts.uuid !== undefined) parseUuid(opts.uuid);
    if (opts.sizeBytes !== undefined) {
      if (!Number.isSafeInteger(opts.sizeBytes) || opts.sizeBytes <= 0) {
        throw new InvalidParameterError(`disk size ${opts.sizeBytes} is not a positive integer`, 'ERR_DISK_TOO_SMALL');
      }
      const blocks = trimBlocksCount(Math.floor(opts.sizeBytes / BLOCK_SIZE));
      if (blocks < 4096) throw new InvalidParameterError(`disk size ${opts.sizeBytes} is below the 16 MiB minimum`, 'ERR_DISK_TOO_SMALL');
      if (blocks > MAX_BLOCKS)
        throw new InvalidParameterError(`disk size ${opts.sizeBytes} is above the 16 TiB maximum`, 'ERR_DISK_TOO_LARGE');
      this.fixedBlocks = blocks;
      this.reservedPerBackup = 1 + gdtBlocksFor(Math.ceil(blocks / BLOCKS_PER_GROUP));
    } else {
      this.fixedBlocks = null;
      this.reservedPerBackup = 1 + gdtBlocksFor(DEFAULT_MAX_GROUPS);
    }
    this.alloc = new BlockAllocator(this.reservedPerBackup, this.fixedBlocks ?? DEFAULT_MAX_GROUPS * BLOCKS_PER_GROUP);
    this.writer = new BlockWriter(fh, BLOCK_SIZE);
    this.fh = fh;
    this.contentHash = opts.uuid === undefined ? createHash('sha256') : null;
    this.tree = new MergedTree(this.implicitMeta(), (node) => {
      for (const e of node.extents) this.alloc.release(e.physical, e.len);
      node.extents = [];
      node.dataBlocks = 0;
    });
  }
  private readonly fh: FileHandle;

  private get defaultTime(): Timestamp {
    return { sec: this.opts.timestamp ?? this.newest, nsec: 0 };
  }

  private implicitMeta(): NodeMeta {
    const t = this.defaultTime;
    const sh = this.opts.idShift;
    const uid = sh ? shiftId(sh.uidMap, 0, 'uid', 'the root directory') : 0;
    const gid = sh ? shiftId(sh.gidMap, 0, 'gid', 'the root directory') : 0;
    return { mode: 0o755, uid, gid, atime: t, mtime: t, ctime: t, xattrs: NO_XATTRS };
  }

  private metaOf(h: TarHeader): NodeMeta {
    if (h.mtime.sec > this.newest) this.newest = h.mtime.sec;
    const sh = this.opts.idShift;
    let xattrs = h.xattrs;
    if (sh && xattrs.size > 0) {
      xattrs = new Map([...xattrs].map(([k, v]) => [k, shiftXattr(k, v, sh, h.name)]));
    }
    return {
      mode: h.mode,
      uid: sh ? shiftId(sh.uidMap, h.uid, 'uid', h.name) : h.uid,
      gid: sh ? shiftId(sh.gidMap, h.gid, 'gid', h.name) : h.gid,
      mtime: h.mtime,
      atime: h.atime ?? h.mtime,
      ctime: h.ctime ?? h.mtime,
      // most entries have none: share one empty map instead of keeping one per file
      xattrs: xattrs.size > 0 ? xattrs : NO_XATTRS,
    };
  }

  async applyLayer(stream: Readable, layer: number): Promise<void> {
    const tar = new TarReader(this.contentHash ? hashing(stream, this.contentHash) : stream);
    try {
      for (;;) {
        const h = await tar.next();
        if (!h) break;
        await this.applyEntry(h, layer, tar);
      }
    } catch (e) {
      if (e instanceof FormatError) throw new FormatError(`layer ${layer}: ${e.message}`, e.code, { cause: e });
      throw e;
    } finally {
      // reading is finished or failed already; closing the layer reader releases memory only
      await tar.close().catch(() => {});
    }
  }

  private async applyEntry(h: TarHeader, layer: number, tar: TarReader): Promise<void> {
    const parts = splitPath(h.name, h.name);
    if (parts.length === 0) {
      if (h.type !== 'dir') throw new FormatError(`tar entry ${h.name}: the root must be a directory`, 'ERR_TAR_FORMAT');
      this.tree.root.meta = this.metaOf(h);
      this.rootListed = true;
      return;
    }
    const base = parts[parts.length - 1]!;
    // parents are created first even for whiteouts, as Docker's layer unpacker does
    const parent = this.tree.parentOf(parts, layer, () => this.implicitMeta());
    if (base.startsWith(WHITEOUT_PREFIX)) {
      if (base === WHITEOUT_OPAQUE) this.tree.opaque(parent, layer);
      // other ".wh..wh." names are aufs bookkeeping (hard link dirs), not part of the image
      else if (!base.startsWith(WHITEOUT_META_PREFIX)) this.tree.whiteout(parent, base.slice(WHITEOUT_PREFIX.length), layer);
      return;
    }
    const meta = this.metaOf(h);
    switch (h.type) {
      case 'dir': {
        const existing = parent.children!.get(base);
        if (existing && existing.kind === 'dir') {
          existing.meta = meta;
          existing.layer = layer;
        } else {
          this.tree.link(parent, base, new FsNode('dir', meta, layer));
        }
        return;
      }
      case 'link': {
        const target = this.tree.lookup(splitPath(h.linkname, h.name));
        if (!target)
          throw new FormatError(`tar entry ${h.name}: hard link target ${JSON.stringify(h.linkname)} does not exist`, 'ERR_TAR_BAD_LINK');
        if (target.kind === 'dir')
          throw new FormatError(`tar entry ${h.name}: hard link to directory ${JSON.stringify(h.linkname)}`, 'ERR_TAR_BAD_LINK');
        if (target.layer < layer) target.layer = layer;
        this.tree.link(parent, base, target);
        return;
      }
      case 'symlink': {
        const target = Buffer.from(h.linkname, 'latin1');
        if (target.length === 0 || target.length >= BLOCK_SIZE) {
          throw new FormatError(`tar entry ${h.name}: symlink target of ${target.length} bytes`, 'ERR_TAR_FORMAT');
        }
        const node = new FsNode('symlink', meta, layer);
        node.target = target;
        node.size = target.length;
        this.tree.link(parent, base, node);
        return;
      }
      case 'char':
      case 'block': {
        const node = new FsNode(h.type, meta, layer);
        if (h.devmajor > 0xfff || h.devminor > 0xfffff)
          throw new FormatError(`tar entry ${h.name}: device number ${h.devmajor}:${h.devminor} out of range`, 'ERR_TAR_FORMAT');
        node.rdev = { major: h.devmajor, minor: h.devminor };
        this.tree.link(parent, base, node);
        return;
      }
      case 'fifo':
        this.tree.link(parent, base, new FsNode('fifo', meta, layer));
        return;
      case 'file': {
        if (h.size > MAX_FILE_BLOCKS * BLOCK_SIZE)
          throw new FormatError(`tar entry ${h.name}: file of ${h.size} bytes exceeds ext4's 16 TiB limit`, 'ERR_TAR_FORMAT');
        const node = new FsNode('file', meta, layer);
        // link first: replacing an older file frees its blocks for this one
        this.tree.link(parent, base, node);
        node.size = h.size;
        this.partialBlock = -1;
        await tar.readData((chunk, off) => this.fileData(node, chunk, off));
        await this.flushPartial(node);
        return;
      }
    }
  }

  private fileData(node: FsNode, chunk: Buffer, off: number): Promise<void> | void {
    // fast path: whole aligned blocks straight from the tar chunk
    if (this.partialBlock < 0 && off % BLOCK_SIZE === 0 && chunk.length >= BLOCK_SIZE) {
      const whole = chunk.length - (chunk.length % BLOCK_SIZE);
      const p = this.emit(node, off / BLOCK_SIZE, chunk.subarray(0, whole));
      if (whole === chunk.length) return p;
      return p.then(() => this.fileData(node, chunk.subarray(whole), off + whole));
    }
    const lb = Math.floor(off / BLOCK_SIZE);
    const inb = off - lb * BLOCK_SIZE;
    if (this.partialBlock >= 0 && this.partialBlock !== lb) {
      return this.flushPartial(node).then(() => this.fileData(node, chunk, off));
    }
    if (this.partialBlock < 0) {
      this.partialBlock = lb;
      this.partial.fill(0);
    }
    const n = Math.min(BLOCK_SIZE - inb, chunk.length);
    chunk.copy(this.partial, inb, 0, n);
    if (inb + n < BLOCK_SIZE) return;
    const p = this.flushPartial(node);
    if (n === chunk.length) return p;
    return p.then(() => this.fileData(node, chunk.subarray(n), off + n));
  }

  private async flushPartial(node: FsNode): Promise<void> {
    if (this.partialBlock < 0) return;
    const lb = this.partialBlock;
    this.partialBlock = -1;
    await this.emit(node, lb, this.partial);
  }

  /** writes whole blocks of a file starting at logical block `logical`; all-zero blocks stay holes */
  private async emit(node: FsNode, logical: number, data: Buffer): Promise<void> {
    const nb = data.length / BLOCK_SIZE;
    let i = 0;
    while (i < nb) {
      if (isZeroBlock(data, i)) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < nb && !isZeroBlock(data, j)) j++;
      let k = i;
      while (k < j) {
        const run = this.alloc.alloc(j - k);
        await this.writer.write(run.start, data.subarray(k * BLOCK_SIZE, (k + run.len) * BLOCK_SIZE));
        appendExtent(node.extents, logical + k, run.start, run.len);
        node.dataBlocks += run.len;
        k += run.len;
      }
      i = j;
    }
  }

  // ---------------------------------------------------------------------------------------
  // layout

  /**
   * Lays the merged tree out as a file system, in phases: inode numbers, extended attributes
   * and the size estimate, the geometry, then blocks for xattrs, directories and long
   * symlinks, the journal, extent trees, group metadata, inode tables, bitmaps with the group
   * descriptors, and last the superblock copies (nothing points at an unwritten block).
   */
  async finish(layerCount: number): Promise<Ext4Stats> {
    this.addLostFound(layerCount);
    const uuid = this.opts.uuid !== undefined ? parseUuid(this.opts.uuid) : uuidFromDigest(this.contentHash!.digest());
    // inode numbers: root is 2, the rest from 11 on, each directory's entries together
    const nodes = [this.tree.root, ...this.numberInodes()];
    const lastIno = EXT4_GOOD_OLD_FIRST_INO + nodes.length - 2;
    const { layouts, xattrBlocks, estimate } = this.planInodes(nodes);
    const geo = this.chooseGeometry(estimate, lastIno);
    if (geo.gdtBlocks + 1 > this.reservedPerBackup) {
      throw new InvalidParameterError(
        `a disk of ${geo.groupCount} groups needs more descriptor blocks than were reserved`,
        'ERR_DISK_TOO_LARGE',
      );
    }
    const fs: FsPlan = {
      uuid,
      fsSeed: crc32cUpdate(0xffffffff, uuid),
      hashSeed: uuidFromDigest(createHash('sha256').update('ext4 hash seed').update(uuid).digest()),
      nodes,
      lastIno,
      layouts,
      geo,
      metaRuns: [],
    };
    await this.writeXattrBlocks(fs, xattrBlocks);
    await this.writeDirectories(fs);
    const journal = await this.writeJournal(fs);
    await this.writeExtentTrees(fs, [...nodes, journal]);
    const places = this.placeGroupMetadata(fs);
    await this.writeInodeTables(fs, places, journal);
    const { gdt, freeBlocks } = await this.writeBitmapsAndDescriptors(fs, places, journal);
    await this.writeSuperblocks(fs, gdt, freeBlocks, journal);
    await this.writer.flush();
    await this.fh.truncate(geo.blocksCount * BLOCK_SIZE);
    return this.stats(fs, freeBlocks, layerCount);
  }

  /** The root's metadata when no layer listed it, and /lost+found as mke2fs makes it. */
  private addLostFound(layerCount: number): void {
    const root = this.tree.root;
    if (!this.rootListed) root.meta = this.implicitMeta();
    if (!root.children!.has('lost+found')) {
      this.tree.link(root, 'lost+found', new FsNode('dir', { ...this.implicitMeta(), mode: 0o700 }, layerCount));
    } else if (root.children!.get('lost+found')!.kind !== 'dir') {
      throw new FormatError('the image has a /lost+found that is not a directory', 'ERR_TAR_FORMAT');
    }
  }

  /** Where each inode's xattrs go (in the inode, or a shared block), and the metadata blocks the content will need. */
  private planInodes(nodes: FsNode[]): { layouts: Map<FsNode, InodeLayout>; xattrBlocks: Map<string, SharedXattrBlock>; estimate: number } {
    const layouts = new Map<FsNode, InodeLayout>();
    const xattrBlocks = new Map<string, SharedXattrBlock>();
    let estimate = 0;
    for (const n of nodes) {
      const list = this.xattrsOf(n);
      const lay: InodeLayout = { iblock: null, treeBlocks: 0, xattrBlock: 0, inodeXattrs: [] };
      if (list.length > 0) {
        if (fitsInInode(list, EXT4_INODE_SIZE - EXT4_INODE_XATTR_OFFSET)) lay.inodeXattrs = list;
        else if (fitsInBlock(list, BLOCK_SIZE)) {
          const key = xattrKey(list);
          const shared = xattrBlocks.get(key);
          if (shared) shared.refs++;
          else {
            xattrBlocks.set(key, { list, refs: 1, block: 0 });
            estimate++;
          }
        } else throw new FormatError(`inode ${n.ino}: extended attributes do not fit in one block`, 'ERR_TAR_FORMAT');
      }
      layouts.set(n, lay);
      if (n.kind === 'dir') {
        const lens = [1, 2];
        for (const name of n.children!.keys()) lens.push(Buffer.byteLength(name, 'latin1'));
        const b = dirBlocksNeeded(lens, BLOCK_SIZE);
        estimate += b + extentTreeBlocksNeeded(b, BLOCK_SIZE);
      } else if (n.kind === 'symlink' && n.target!.length >= 60) estimate++;
      else if (n.kind === 'file') estimate += extentTreeBlocksNeeded(n.extents.length, BLOCK_SIZE);
    }
    return { layouts, xattrBlocks, estimate };
  }

  /** `n` metadata blocks (maybe in several runs), recorded for the block bitmaps. */
  private allocMeta(fs: FsPlan, n: number): number[] {
    const blocks: number[] = [];
    while (blocks.length < n) {
      const r = this.alloc.alloc(n - blocks.length);
      fs.metaRuns.push(r);
      for (let i = 0; i < r.len; i++) blocks.push(r.start + i);
    }
    return blocks;
  }

  private async writeXattrBlocks(fs: FsPlan, xattrBlocks: Map<string, SharedXattrBlock>): Promise<void> {
    for (const x of xattrBlocks.values()) {
      x.block = this.allocMeta(fs, 1)[0]!;
      await this.writer.write(x.block, buildXattrBlock(x.list, BLOCK_SIZE, x.block, x.refs, fs.fsSeed));
    }
    for (const n of fs.nodes) {
      const list = this.xattrsOf(n);
      const lay = fs.layouts.get(n)!;
      if (list.length > 0 && lay.inodeXattrs.length === 0) lay.xattrBlock = xattrBlocks.get(xattrKey(list))!.block;
    }
  }

  /** Directories and long symlinks get their blocks now. */
  private async writeDirectories(fs: FsPlan): Promise<void> {
    const root = this.tree.root;
    for (const n of fs.nodes) {
      const seed = inodeCsumSeed(fs.fsSeed, n.ino, 0);
      if (n.kind === 'dir') {
        const parentIno = n === root ? EXT4_ROOT_INO : this.parentIno.get(n)!;
        const entries: DirEntry[] = [];
        for (const [name, child] of n.children!)
          entries.push({ name: Buffer.from(name, 'latin1'), inode: child.ino, fileType: fileTypeOf(child) });
        const dots: DirEntry[] = [
          { name: Buffer.from('.'), inode: n.ino, fileType: EXT4_FT.DIR },
          { name: Buffer.from('..'), inode: parentIno, fileType: EXT4_FT.DIR },
        ];
        // more than one block: hashed (dir_index), as the kernel would have made it
        const indexed = dirBlocksNeeded([1, 2, ...entries.map((e) => e.name.length)], BLOCK_SIZE) > 1;
        const blocks = indexed
          ? packHashedDirectory(n.ino, parentIno, entries, BLOCK_SIZE, seed, fs.hashSeed, true)
          : packDirectory([...dots, ...entries], BLOCK_SIZE, seed);
        fs.layouts.get(n)!.indexed = indexed;
        const phys = this.allocMeta(fs, blocks.length);
        n.extents = [];
        for (let i = 0; i < blocks.length; i++) {
          await this.writer.write(phys[i]!, blocks[i]!);
          appendExtent(n.extents, i, phys[i]!, 1);
        }
        n.dataBlocks = blocks.length;
        n.size = blocks.length * BLOCK_SIZE;
      } else if (n.kind === 'symlink' && n.target!.length >= 60) {
        const blk = this.allocMeta(fs, 1)[0]!;
        const data = Buffer.alloc(BLOCK_SIZE);
        n.target!.copy(data);
        await this.writer.write(blk, data);
        n.extents = [{ logical: 0, physical: blk, len: 1 }];
        n.dataBlocks = 1;
      }
    }
  }

  /** The journal: inode 8, fresh blocks (zeros) after the data. */
  private async writeJournal(fs: FsPlan): Promise<FsNode> {
    const journalBlocks = defaultJournalBlocks(fs.geo.blocksCount);
    const journal = new FsNode('file', { ...this.implicitMeta(), mode: 0o600 }, 0);
    journal.ino = EXT4_JOURNAL_INO;
    journal.links = 1;
    while (journal.dataBlocks < journalBlocks) {
      const r = this.alloc.alloc(journalBlocks - journal.dataBlocks, true);
      appendExtent(journal.extents, journal.dataBlocks, r.start, r.len);
      journal.dataBlocks += r.len;
    }
    journal.size = journalBlocks * BLOCK_SIZE;
    await this.writer.write(journal.extents[0]!.physical, buildJournalSuperblock(BLOCK_SIZE, journalBlocks, fs.uuid));
    fs.layouts.set(journal, { iblock: null, treeBlocks: 0, xattrBlock: 0, inodeXattrs: [] });
    return journal;
  }

  /** Extent roots (in the inode) and the tree blocks of inodes with more extents than fit there. */
  private async writeExtentTrees(fs: FsPlan, nodes: FsNode[]): Promise<void> {
    for (const n of nodes) {
      if (n.kind !== 'file' && n.kind !== 'dir' && !(n.kind === 'symlink' && n.target!.length >= 60)) continue;
      const lay = fs.layouts.get(n)!;
      const need = extentTreeBlocksNeeded(n.extents.length, BLOCK_SIZE);
      const tree = buildExtentTree(n.extents, need > 0 ? this.allocMeta(fs, need) : [], BLOCK_SIZE);
      const seed = inodeCsumSeed(fs.fsSeed, n.ino, 0);
      for (const b of tree.blocks) {
        setExtentBlockChecksum(b.data, seed);
        await this.writer.write(b.block, b.data);
      }
      lay.iblock = tree.root;
      lay.treeBlocks = tree.treeBlocks;
    }
  }

  /** Bitmaps and inode tables of every group (fresh blocks, so unused inode slots read as zeros). */
  private placeGroupMetadata(fs: FsPlan): GroupPlaces {
    const places: GroupPlaces = { blockBitmap: [], inodeBitmap: [], inodeTable: [] };
    for (let g = 0; g < fs.geo.groupCount; g++) {
      const r = this.alloc.allocContiguousFresh(2);
      places.blockBitmap.push(r);
      places.inodeBitmap.push(r + 1);
      fs.metaRuns.push({ start: r, len: 2 });
    }
    for (let g = 0; g < fs.geo.groupCount; g++) {
      const t = this.alloc.allocContiguousFresh(fs.geo.inodeTableBlocks);
      places.inodeTable.push(t);
      fs.metaRuns.push({ start: t, len: fs.geo.inodeTableBlocks });
    }
    if (this.alloc.highWater > fs.geo.blocksCount) {
      throw new InvalidParameterError(
        `the content needs ${this.alloc.highWater} blocks but the disk has ${fs.geo.blocksCount}`,
        'ERR_DISK_TOO_SMALL',
      );
    }
    return places;
  }

  private async writeInodeTables(fs: FsPlan, places: GroupPlaces, journal: FsNode): Promise<void> {
    const { geo, lastIno } = fs;
    const byIno = new Map<number, FsNode>();
    for (const n of [...fs.nodes, journal]) byIno.set(n.ino, n);
    for (let g = 0; g * geo.inodesPerGroup < lastIno; g++) {
      const first = g * geo.inodesPerGroup + 1;
      const last = Math.min(lastIno, first + geo.inodesPerGroup - 1);
      const count = last - first + 1;
      const table = Buffer.alloc(Math.ceil((count * EXT4_INODE_SIZE) / BLOCK_SIZE) * BLOCK_SIZE);
      for (let ino = first; ino <= last; ino++) {
        const n = byIno.get(ino);
        if (!n) continue; // reserved inodes stay zero
        this.encodeInode(
          n,
          fs.layouts.get(n)!,
          fs.fsSeed,
          table.subarray((ino - first) * EXT4_INODE_SIZE, (ino - first + 1) * EXT4_INODE_SIZE),
        );
      }
      await this.writer.write(places.inodeTable[g]!, table);
    }
  }

  /** Block bitmaps from every block in use, inode bitmaps, and the group descriptor table. */
  private async writeBitmapsAndDescriptors(fs: FsPlan, places: GroupPlaces, journal: FsNode): Promise<{ gdt: Buffer; freeBlocks: number }> {
    const { geo, lastIno, fsSeed } = fs;
    const perGroupDirs = new Array<number>(geo.groupCount).fill(0);
    for (const n of fs.nodes) if (n.kind === 'dir') perGroupDirs[Math.floor((n.ino - 1) / geo.inodesPerGroup)]!++;
    const used: Run[] = [...fs.metaRuns];
    for (const n of [...fs.nodes, journal]) for (const e of n.extents) used.push({ start: e.physical, len: e.len });
    for (let g = 0; g < geo.groupCount; g++) {
      if (hasSuperblockBackup(g)) used.push({ start: g * BLOCKS_PER_GROUP, len: 1 + geo.gdtBlocks });
    }
    used.sort((a, b) => a.start - b.start);
    let ui = 0;
    let freeBlocksTotal = 0;
    const gdt = Buffer.alloc(geo.gdtBlocks * BLOCK_SIZE);
    for (let g = 0; g < geo.groupCount; g++) {
      const gStart = g * BLOCKS_PER_GROUP;
      const gLen = groupBlocks(geo, g);
      const bitmap = Buffer.alloc(BLOCK_SIZE);
      let usedInGroup = 0;
      // runs may span groups: walk from the first run that can reach this group
      while (ui < used.length && used[ui]!.start + used[ui]!.len <= gStart) ui++;
      for (let k = ui; k < used.length && used[k]!.start < gStart + BLOCKS_PER_GROUP; k++) {
        const s = Math.max(used[k]!.start, gStart) - gStart;
        const e = Math.min(used[k]!.start + used[k]!.len, gStart + BLOCKS_PER_GROUP) - gStart;
        if (e > s) usedInGroup += setBits(bitmap, s, e);
      }
      if (gLen < BLOCKS_PER_GROUP) setBits(bitmap, gLen, BLOCKS_PER_GROUP); // padding past the end
      const freeBlocks = gLen - usedInGroup;
      freeBlocksTotal += freeBlocks;
      // like mke2fs: a group holding nothing but its own superblock copy is BLOCK_UNINIT (the
      // kernel derives its bitmap), one without inodes INODE_UNINIT; neither bitmap is written
      const baseMeta = hasSuperblockBackup(g) ? 1 + geo.gdtBlocks : 0;
      const blockUninit = g !== geo.groupCount - 1 && usedInGroup === baseMeta;
      if (!blockUninit) await this.writer.write(places.blockBitmap[g]!, bitmap);

      const inodesUsed = Math.max(0, Math.min(geo.inodesPerGroup, lastIno - g * geo.inodesPerGroup));
      const inodeUninit = inodesUsed === 0;
      const ibitmap = Buffer.alloc(BLOCK_SIZE);
      setBits(ibitmap, 0, inodesUsed);
      setBits(ibitmap, geo.inodesPerGroup, BLOCK_SIZE * 8);
      if (!inodeUninit) await this.writer.write(places.inodeBitmap[g]!, ibitmap);

      encodeGroupDescriptor(gdt, g, fsSeed, {
        blockBitmap: places.blockBitmap[g]!,
        inodeBitmap: places.inodeBitmap[g]!,
        inodeTable: places.inodeTable[g]!,
        freeBlocks,
        freeInodes: geo.inodesPerGroup - inodesUsed,
        usedDirs: perGroupDirs[g]!,
        bbCsum: blockUninit ? 0 : bitmapChecksum(fsSeed, bitmap, BLOCKS_PER_GROUP / 8),
        ibCsum: inodeUninit ? 0 : bitmapChecksum(fsSeed, ibitmap, geo.inodesPerGroup / 8),
        flags: EXT4_BG_INODE_ZEROED | (blockUninit ? EXT4_BG_BLOCK_UNINIT : 0) | (inodeUninit ? EXT4_BG_INODE_UNINIT : 0),
      });
    }
    return { gdt, freeBlocks: freeBlocksTotal };
  }

  /** The superblock and the descriptor table, primary and backups. */
  private async writeSuperblocks(fs: FsPlan, gdt: Buffer, freeBlocks: number, journal: FsNode): Promise<void> {
    const { geo } = fs;
    const jnlBlocks = Buffer.alloc(68);
    fs.layouts.get(journal)!.iblock!.copy(jnlBlocks, 0);
    jnlBlocks.writeUInt32LE(hi(journal.size), 60);
    jnlBlocks.writeUInt32LE(lo(journal.size), 64);
    const sb = encodeSuperblock({
      geo,
      freeBlocks,
      freeInodes: geo.inodesCount - fs.lastIno,
      time: lo(Math.max(0, this.defaultTime.sec)),
      uuid: fs.uuid,
      label: this.opts.label ?? '',
      hashSeed: fs.hashSeed,
      jnlBlocks,
    });
    for (let g = 0; g < geo.groupCount; g++) {
      if (!hasSuperblockBackup(g)) continue;
      const copy = Buffer.from(sb);
      copy.writeUInt16LE(g, SUPERBLOCK.offsetOf('s_block_group_nr'));
      setSuperblockChecksum(copy);
      const blk = Buffer.alloc(BLOCK_SIZE);
      copy.copy(blk, g === 0 ? SUPERBLOCK_OFFSET : 0);
      await this.writer.write(g * BLOCKS_PER_GROUP, Buffer.concat([blk, gdt]));
    }
  }

  private stats(fs: FsPlan, freeBlocksTotal: number, layerCount: number): Ext4Stats {
    const { geo } = fs;
    const s = { files: 0, directories: 0, symlinks: 0, devices: 0, fifos: 0, data: 0 };
    for (const n of fs.nodes) {
      if (n.kind === 'file') {
        s.files++;
        s.data += n.dataBlocks;
        this.hardlinks += n.links - 1;
      } else if (n.kind === 'dir') s.directories++;
      else if (n.kind === 'symlink') s.symlinks++;
      else if (n.kind === 'char' || n.kind === 'block') s.devices++;
      else if (n.kind === 'fifo') s.fifos++;
      if (n.kind !== 'file' && n.kind !== 'dir') this.hardlinks += n.links - 1;
    }
    const usedBlocks = geo.blocksCount - freeBlocksTotal;
    const journalBlocks = defaultJournalBlocks(geo.blocksCount);
    return {
      sizeBytes: geo.blocksCount * BLOCK_SIZE,
      blockSize: BLOCK_SIZE,
      blocksCount: geo.blocksCount,
      freeBlocks: freeBlocksTotal,
      groups: geo.groupCount,
      inodesCount: geo.inodesCount,
      inodesUsed: fs.lastIno,
      dataBlocks: s.data,
      metadataBlocks: usedBlocks - s.data - journalBlocks,
      journalBlocks,
      files: s.files,
      directories: s.directories,
      symlinks: s.symlinks,
      hardlinks: this.hardlinks,
      devices: s.devices,
      fifos: s.fifos,
      whiteouts: this.tree.counters.whiteouts,
      opaqueDirs: this.tree.counters.opaques,
      skippedXattrs: this.skippedXattrs,
      layers: layerCount,
      uuid: formatUuid(fs.uuid),
    };
  }

  private readonly parentIno = new Map<FsNode, number>();

  /** root = 2; everything else from 11 in breadth-per-directory order: a directory's entries get consecutive numbers */
  private numberInodes(): FsNode[] {
    const out: FsNode[] = [];
    const root = this.tree.root;
    root.ino = EXT4_ROOT_INO;
    let next = EXT4_GOOD_OLD_FIRST_INO;
    const stack: FsNode[] = [root];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      const subdirs: FsNode[] = [];
      for (const child of dir.children!.values()) {
        if (child.ino === 0) {
          child.ino = next++;
          out.push(child);
          if (next > 2 ** 32 - 1) throw new InvalidParameterError('too many inodes', 'ERR_DISK_TOO_SMALL');
        }
        if (child.kind === 'dir') {
          this.parentIno.set(child, dir.ino);
          subdirs.push(child);
        }
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
    }
    return out;
  }

  private xattrCache = new Map<FsNode, Xattr[]>();

  private xattrsOf(n: FsNode): Xattr[] {
    const cached = this.xattrCache.get(n);
    if (cached) return cached;
    const list: Xattr[] = [];
    for (const [full, value] of n.meta.xattrs) {
      const split = splitXattrName(full);
      if (!split) {
        this.skippedXattrs++;
        continue;
      }
      let v = value;
      if (split.index === 2 || split.index === 3) {
        const conv = posixAclToExt4(value);
        if (!conv) throw new FormatError(`inode ${n.ino}: malformed POSIX ACL in ${full}`, 'ERR_TAR_FORMAT');
        v = conv;
      }
      list.push({ index: split.index, name: split.name, value: v });
    }
    this.xattrCache.set(n, list);
    return list;
  }

  private chooseGeometry(metaEstimate: number, lastIno: number): Geometry {
    const minInodes = Math.ceil(lastIno * 1.1) + 64;
    if (this.fixedBlocks !== null) return computeGeometry(this.fixedBlocks, minInodes);
    let live = 0;
    const seen = new Set<FsNode>();
    const walk = (d: FsNode) => {
      for (const c of d.children!.values()) {
        if (seen.has(c)) continue;
        seen.add(c);
        live += c.dataBlocks;
        if (c.children) walk(c);
      }
    };
    walk(this.tree.root);
    const content = (live + metaEstimate) * BLOCK_SIZE + lastIno * EXT4_INODE_SIZE;
    const want = Math.max(Math.ceil(content * 1.5) + DEFAULT_HEADROOM, DEFAULT_MIN_SIZE);
    // enough groups for the size formula and for the inodes (at most one bitmap block of them per group)
    const groupsForInodes = Math.ceil(minInodes / MAX_INODES_PER_GROUP);
    let blocks = Math.max(Math.ceil(want / BLOCK_SIZE / BLOCKS_PER_GROUP), groupsForInodes) * BLOCKS_PER_GROUP;
    for (;;) {
      const geo = computeGeometry(blocks, minInodes);
      const needed =
        this.alloc.highWater +
        metaEstimate +
        defaultJournalBlocks(blocks) +
        geo.groupCount * (geo.inodeTableBlocks + 2) +
        4 * this.reservedPerBackup;
      if (needed + BLOCKS_PER_GROUP / 4 <= blocks) return geo;
      blocks += BLOCKS_PER_GROUP;
    }
  }

  private encodeInode(n: FsNode, lay: InodeLayout, fsSeed: number, raw: Buffer): void {
    const typeBits = { file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK, char: S_IFCHR, block: S_IFBLK, fifo: S_IFIFO, sock: S_IFSOCK }[
      n.kind
    ];
    const m = n.meta;
    let links = n.links;
    if (n.kind === 'dir') {
      let subdirs = 0;
      for (const c of n.children!.values()) if (c.kind === 'dir') subdirs++;
      links = 2 + subdirs;
      if (links >= EXT4_LINK_MAX) links = 1;
    }
    const sectors = (n.dataBlocks + lay.treeBlocks + (lay.xattrBlock ? 1 : 0)) * (BLOCK_SIZE / 512);
    let iblock: Buffer;
    let flags = 0;
    if (n.kind === 'file' || n.kind === 'dir' || (n.kind === 'symlink' && n.target!.length >= 60)) {
      iblock = lay.iblock ?? emptyExtentRoot();
      flags |= EXT4_EXTENTS_FL;
      if (lay.indexed) flags |= EXT4_INDEX_FL;
    } else if (n.kind === 'symlink') {
      iblock = Buffer.alloc(60);
      n.target!.copy(iblock);
    } else if (n.kind === 'char' || n.kind === 'block') {
      iblock = encodeDevice(n.rdev.major, n.rdev.minor);
    } else iblock = Buffer.alloc(60);
    const at = encodeTime(m.atime);
    const ct = encodeTime(m.ctime);
    const mt = encodeTime(m.mtime);
    raw.fill(0);
    INODE.encode(
      {
        i_mode: typeBits | (m.mode & 0o7777),
        i_uid: m.uid & 0xffff,
        l_i_uid_high: m.uid >>> 16,
        i_gid: m.gid & 0xffff,
        l_i_gid_high: m.gid >>> 16,
        i_size_lo: lo(n.size),
        i_size_high: hi(n.size),
        i_atime: at.base,
        i_ctime: ct.base,
        i_mtime: mt.base,
        i_atime_extra: at.extra,
        i_ctime_extra: ct.extra,
        i_mtime_extra: mt.extra,
        i_crtime: ct.base,
        i_crtime_extra: ct.extra,
        i_links_count: links,
        i_blocks_lo: lo(sectors),
        l_i_blocks_high: hi(sectors),
        i_flags: flags,
        i_block: iblock,
        i_file_acl_lo: lo(lay.xattrBlock),
        l_i_file_acl_high: hi(lay.xattrBlock),
        i_extra_isize: EXT4_EXTRA_ISIZE,
      },
      raw,
      0,
    );
    if (lay.inodeXattrs.length > 0) writeInodeXattrs(raw.subarray(EXT4_INODE_XATTR_OFFSET), lay.inodeXattrs);
    setInodeChecksum(raw, fsSeed, n.ino, 0);
  }
}

function emptyExtentRoot(): Buffer {
  const b = Buffer.alloc(60);
  EXTENT_HEADER.encode({ eh_magic: EXT4_EXT_MAGIC, eh_entries: 0, eh_max: EXT4_INODE_ROOT_ENTRIES, eh_depth: 0, eh_generation: 0 }, b, 0);
  return b;
}

function fileTypeOf(n: FsNode): number {
  switch (n.kind) {
    case 'file':
      return EXT4_FT.REG_FILE;
    case 'dir':
      return EXT4_FT.DIR;
    case 'symlink':
      return EXT4_FT.SYMLINK;
    case 'char':
      return EXT4_FT.CHRDEV;
    case 'block':
      return EXT4_FT.BLKDEV;
    case 'fifo':
      return EXT4_FT.FIFO;
    case 'sock':
      return EXT4_FT.SOCK;
  }
}

function xattrKey(list: Xattr[]): string {
  return list.map((x) => `${x.index}:${x.name.toString('hex')}=${x.value.toString('hex')}`).join(',');
}

function isZeroBlock(data: Buffer, i: number): boolean {
  return data.compare(ZERO_BLOCK, 0, BLOCK_SIZE, i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE) === 0;
}

/** sets bits [s, e) and returns how many were newly set */
function setBits(bm: Buffer, s: number, e: number): number {
  let newly = 0;
  let i = s;
  while (i < e && i % 8 !== 0) {
    if (!(bm[i >> 3]! & (1 << (i & 7)))) newly++;
    bm[i >> 3]! |= 1 << (i & 7);
    i++;
  }
  while (i + 8 <= e) {
    const b = bm[i >> 3]!;
    newly += 8 - popcount8(b);
    bm[i >> 3] = 0xff;
    i += 8;
  }
  while (i < e) {
    if (!(bm[i >> 3]! & (1 << (i & 7)))) newly++;
    bm[i >> 3]! |= 1 << (i & 7);
    i++;
  }
  return newly;
}

function popcount8(b: number): number {
  let c = 0;
  for (; b; b &= b - 1) c++;
  return c;
}

const lo = (v: number) => v % 0x1_0000_0000;
const hi = (v: number) => Math.floor(v / 0x1_0000_0000);
