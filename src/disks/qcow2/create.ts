/**
 * Writing a new qcow2 image: what `qemu-img create -f qcow2 [-b base -F raw]` writes
 * (version 3, refcount_order 4 by default, header extensions: backing format, feature names),
 * assembled in memory, written to a temp name, fsynced, verified to parse and renamed.
 */
import path from 'node:path';
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ConflictError, InvalidParameterError, NotFoundError, NotImplementedError } from '../../errors.js';
import { NodeFileIo } from '../raw.js';
import {
  COMPRESSION_ZLIB,
  EXT_BACKING_FORMAT,
  EXT_FEATURE_TABLE,
  MAX_CLUSTER_BITS,
  MAX_REFCOUNT_ORDER,
  MIN_CLUSTER_BITS,
  V3_HEADER_LENGTH,
  defaultFeatureTable,
  parseHeader,
  serializeHeader,
  validateHeader,
} from './header.js';
import { refcountBlockEntries, setRefcount } from './refcount.js';
import { createLayout } from './layout.js';

const SECTOR = 512;

export interface Qcow2CreateOptions {
  /** virtual size in bytes (multiple of 512); defaults to the backing file's size */
  size?: number;
  /** stored as given; a relative name is relative to the new image's directory */
  backingFile?: string;
  backingFormat?: 'raw';
  /** 9..21; default 16 (64 KiB clusters) */
  clusterBits?: number;
  /** 0..6; default 4 (16-bit refcounts) */
  refcountOrder?: number;
}

/** Resolves a backing file name the way QEMU does: relative to the image's directory. */
export function resolveBackingPath(imagePath: string, backingFile: string): string {
  return path.isAbsolute(backingFile) ? backingFile : path.join(path.dirname(imagePath), backingFile);
}

export function writeNewImage(imagePath: string, opts: Qcow2CreateOptions): void {
  const clusterBits = opts.clusterBits ?? 16;
  const refcountOrder = opts.refcountOrder ?? 4;
  if (!Number.isInteger(clusterBits) || clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw new InvalidParameterError(
      `qcow2 create ${imagePath}: clusterBits ${clusterBits} out of range ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS}`,
    );
  }
  if (!Number.isInteger(refcountOrder) || refcountOrder < 0 || refcountOrder > MAX_REFCOUNT_ORDER) {
    throw new InvalidParameterError(`qcow2 create ${imagePath}: refcountOrder ${refcountOrder} out of range 0..${MAX_REFCOUNT_ORDER}`);
  }
  if (opts.backingFormat !== undefined && opts.backingFormat !== 'raw') {
    throw new NotImplementedError(
      `qcow2 image ${imagePath}: backing format '${String(opts.backingFormat)}' is not supported`,
      'ERR_QCOW2_UNSUPPORTED',
    );
  }
  let size = opts.size;
  if (opts.backingFile !== undefined) {
    const resolved = resolveBackingPath(imagePath, opts.backingFile);
    let st: fs.Stats;
    try {
      st = fs.statSync(resolved);
    } catch {
      throw new NotFoundError(`qcow2 create ${imagePath}: backing file ${resolved} does not exist`, 'ERR_DISK_NOT_FOUND');
    }
    if (!st.isFile() && !st.isBlockDevice())
      throw new InvalidParameterError(`qcow2 create ${imagePath}: backing file ${resolved} is not a file`);
    size ??= st.size;
  }
  if (size === undefined || !Number.isSafeInteger(size) || size <= 0 || size % SECTOR !== 0) {
    throw new InvalidParameterError(`qcow2 create ${imagePath}: size ${size} must be a positive multiple of ${SECTOR}`);
  }
  if (fs.existsSync(imagePath)) throw new ConflictError(`qcow2 create ${imagePath}: file already exists`, 'ERR_DISK_EXISTS');

  const layout = createLayout(size, clusterBits, refcountOrder);
  const cs = layout.clusterSize;
  const extensions = [{ type: EXT_BACKING_FORMAT, data: Buffer.from('raw') as Uint8Array }];
  if (opts.backingFile === undefined) extensions.pop();
  // The feature name table is optional; like QEMU, leave it out where it does not fit (512-byte clusters).
  const table = defaultFeatureTable();
  const nameLen = opts.backingFile !== undefined ? Buffer.byteLength(opts.backingFile) : 0;
  if (V3_HEADER_LENGTH + 16 + 8 + 8 + table.length + nameLen <= cs) extensions.push({ type: EXT_FEATURE_TABLE, data: table });
  const { bytes: cluster0 } = serializeHeader({
    version: 3,
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits,
    size,
    cryptMethod: 0,
    l1Size: layout.l1Size,
    l1TableOffset: layout.l1TableOffset,
    refcountTableOffset: layout.refcountTableOffset,
    refcountTableClusters: layout.refcountTableClusters,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatibleFeatures: 0n,
    compatibleFeatures: 0n,
    autoclearFeatures: 0n,
    refcountOrder,
    headerLength: 0,
    compressionType: COMPRESSION_ZLIB,
    extensions,
    featureNames: [],
    ...(opts.backingFile !== undefined ? { backingFile: opts.backingFile } : {}),
  });
  const file = Buffer.alloc(layout.totalClusters * cs);
  file.set(cluster0, 0);
  const perBlock = refcountBlockEntries(clusterBits, refcountOrder);
  layout.refcountBlockOffsets.forEach((off, t) => {
    file.writeBigUInt64BE(BigInt(off), layout.refcountTableOffset + t * 8);
    const block = file.subarray(off, off + cs);
    for (let i = 0; i < perBlock; i++) {
      const cluster = t * perBlock + i;
      if (cluster >= layout.totalClusters) break;
      setRefcount(block, i, refcountOrder, 1);
    }
  });

  const dir = path.dirname(imagePath);
  const tmp = path.join(dir, `.${path.basename(imagePath)}.${randomBytes(6).toString('hex')}.tmp`);
  const io = NodeFileIo.open(tmp, { readOnly: false, create: true });
  try {
    io.pwrite(file, 0);
    io.fsync();
    io.close();
    // Verify what we wrote parses before it gets its real name.
    validateHeader(parseHeader(file.subarray(0, cs), imagePath), file.length, imagePath);
    fs.renameSync(tmp, imagePath);
  } catch (e) {
    io.close();
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}
