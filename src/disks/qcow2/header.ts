/**
 * The qcow2 image header (QEMU docs/interop/qcow2.txt, "Header" and "Header extensions"):
 * an explicit offset table, parse, serialize, validation and the feature policy.
 * All numbers are big-endian. 64-bit fields are kept as numbers (checked to be safe integers)
 * except feature bitmasks, which stay bigint.
 */
import { FormatError, NotImplementedError, type ErrorCode } from '../../errors.js';

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"

/** Byte offset and width of every header field, in the spec's names. */
export const HEADER_FIELDS = {
  magic: { offset: 0, size: 4 },
  version: { offset: 4, size: 4 },
  backing_file_offset: { offset: 8, size: 8 },
  backing_file_size: { offset: 16, size: 4 },
  cluster_bits: { offset: 20, size: 4 },
  size: { offset: 24, size: 8 },
  crypt_method: { offset: 32, size: 4 },
  l1_size: { offset: 36, size: 4 },
  l1_table_offset: { offset: 40, size: 8 },
  refcount_table_offset: { offset: 48, size: 8 },
  refcount_table_clusters: { offset: 56, size: 4 },
  nb_snapshots: { offset: 60, size: 4 },
  snapshots_offset: { offset: 64, size: 8 },
  // version 3 and later
  incompatible_features: { offset: 72, size: 8 },
  compatible_features: { offset: 80, size: 8 },
  autoclear_features: { offset: 88, size: 8 },
  refcount_order: { offset: 96, size: 4 },
  header_length: { offset: 100, size: 4 },
  // additional field, present when header_length > 104
  compression_type: { offset: 104, size: 1 },
} as const;

export const V2_HEADER_LENGTH = 72;
export const V3_MIN_HEADER_LENGTH = 104;
/** What we (and QEMU) write for v3: through compression_type, padded to a multiple of 8. */
export const V3_HEADER_LENGTH = 112;

export const MIN_CLUSTER_BITS = 9;
/** QEMU's implementation limit (2 MiB clusters); the spec allows more but nothing opens them. */
export const MAX_CLUSTER_BITS = 21;
export const MAX_REFCOUNT_ORDER = 6;
export const MAX_BACKING_FILE_NAME = 1023;
/** QEMU's limits, which we share so that whatever we open QEMU opens too. */
export const MAX_L1_TABLE_BYTES = 32 * 1024 * 1024;
export const MAX_REFCOUNT_TABLE_BYTES = 8 * 1024 * 1024;

export const INCOMPAT_DIRTY = 1n << 0n;
export const INCOMPAT_CORRUPT = 1n << 1n;
export const INCOMPAT_DATA_FILE = 1n << 2n;
export const INCOMPAT_COMPRESSION = 1n << 3n;
export const INCOMPAT_EXTL2 = 1n << 4n;
export const INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
export const COMPAT_LAZY_REFCOUNTS = 1n << 0n;
export const AUTOCLEAR_BITMAPS = 1n << 0n;
export const AUTOCLEAR_DATA_FILE_RAW = 1n << 1n;

export const CRYPT_NONE = 0;
export const CRYPT_AES = 1;
export const CRYPT_LUKS = 2;
export const COMPRESSION_ZLIB = 0;
export const COMPRESSION_ZSTD = 1;

export const EXT_END = 0x00000000;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_CRYPTO = 0x0537be77;
export const EXT_DATA_FILE = 0x44415441;

/** One feature name table entry: type(1) bit(1) name(46). */
export const FEATURE_ENTRY_SIZE = 48;
export const FEATURE_TYPE_INCOMPATIBLE = 0;
export const FEATURE_TYPE_COMPATIBLE = 1;
export const FEATURE_TYPE_AUTOCLEAR = 2;

export interface FeatureName {
  type: number;
  bit: number;
  name: string;
}

export interface HeaderExtension {
  type: number;
  data: Uint8Array;
}

export interface Qcow2Header {
  version: 2 | 3;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
  /** every extension in file order except the end marker, unknown ones included (kept on rewrite) */
  extensions: HeaderExtension[];
  /** from the backing file format extension */
  backingFormat?: string;
  /** from the backing_file_offset/size string */
  backingFile?: string;
  featureNames: FeatureName[];
}

function bad(name: string, what: string, code: ErrorCode = 'ERR_QCOW2_BAD_HEADER'): FormatError {
  return new FormatError(`qcow2 image ${name}: ${what}`, code);
}

function u64(view: DataView, offset: number, field: string, name: string): number {
  const v = view.getBigUint64(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(name, `${field} ${v} is too large`);
  return Number(v);
}

const isAligned = (v: number, clusterSize: number): boolean => v % clusterSize === 0;

/** Number of L1 entries a disk of `size` bytes needs. */
export function l1EntriesFor(size: number, clusterBits: number): number {
  const clusterSize = 2 ** clusterBits;
  const bytesPerL2 = clusterSize * (clusterSize / 8);
  return Math.ceil(size / bytesPerL2);
}

function decodeFeatureTable(data: Uint8Array, name: string): FeatureName[] {
  if (data.length % FEATURE_ENTRY_SIZE !== 0)
    throw bad(name, `feature name table length ${data.length} is not a multiple of ${FEATURE_ENTRY_SIZE}`);
  const out: FeatureName[] = [];
  for (let p = 0; p < data.length; p += FEATURE_ENTRY_SIZE) {
    const raw = data.subarray(p + 2, p + FEATURE_ENTRY_SIZE);
    const nul = raw.indexOf(0);
    out.push({ type: data[p]!, bit: data[p + 1]!, name: Buffer.from(nul < 0 ? raw : raw.subarray(0, nul)).toString('latin1') });
  }
  return out;
}

/**
 * Parses the header and its extensions from the image's first cluster (or the whole file if it
 * is shorter). Checks structure only; `validateHeader` checks it against the file.
 */
export function parseHeader(cluster0: Uint8Array, name: string): Qcow2Header {
  if (cluster0.length < V2_HEADER_LENGTH)
    throw bad(name, `file is ${cluster0.length} bytes, shorter than a qcow2 header`, 'ERR_QCOW2_BAD_MAGIC');
  const view = new DataView(cluster0.buffer, cluster0.byteOffset, cluster0.byteLength);
  const F = HEADER_FIELDS;
  const magic = view.getUint32(F.magic.offset);
  if (magic !== QCOW2_MAGIC)
    throw bad(name, `bad magic 0x${magic.toString(16).padStart(8, '0')} (not a qcow2 image)`, 'ERR_QCOW2_BAD_MAGIC');
  const version = view.getUint32(F.version.offset);
  if (version !== 2 && version !== 3) throw bad(name, `unsupported version ${version} (2 and 3 are supported)`, 'ERR_QCOW2_BAD_VERSION');
  const clusterBits = view.getUint32(F.cluster_bits.offset);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw bad(name, `cluster_bits ${clusterBits} out of range ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS}`);
  }
  const clusterSize = 2 ** clusterBits;

  const h: Qcow2Header = {
    version,
    backingFileOffset: u64(view, F.backing_file_offset.offset, 'backing_file_offset', name),
    backingFileSize: view.getUint32(F.backing_file_size.offset),
    clusterBits,
    size: u64(view, F.size.offset, 'size', name),
    cryptMethod: view.getUint32(F.crypt_method.offset),
    l1Size: view.getUint32(F.l1_size.offset),
    l1TableOffset: u64(view, F.l1_table_offset.offset, 'l1_table_offset', name),
    refcountTableOffset: u64(view, F.refcount_table_offset.offset, 'refcount_table_offset', name),
    refcountTableClusters: view.getUint32(F.refcount_table_clusters.offset),
    nbSnapshots: view.getUint32(F.nb_snapshots.offset),
    snapshotsOffset: u64(view, F.snapshots_offset.offset, 'snapshots_offset', name),
    incompatibleFeatures: 0n,
    compatibleFeatures: 0n,
    autoclearFeatures: 0n,
    refcountOrder: 4,
    headerLength: V2_HEADER_LENGTH,
    compressionType: COMPRESSION_ZLIB,
    extensions: [],
    featureNames: [],
  };

  if (version === 3) {
    if (cluster0.length < V3_MIN_HEADER_LENGTH) throw bad(name, `file is ${cluster0.length} bytes, shorter than a version 3 header`);
    h.incompatibleFeatures = view.getBigUint64(F.incompatible_features.offset);
    h.compatibleFeatures = view.getBigUint64(F.compatible_features.offset);
    h.autoclearFeatures = view.getBigUint64(F.autoclear_features.offset);
    h.refcountOrder = view.getUint32(F.refcount_order.offset);
    h.headerLength = view.getUint32(F.header_length.offset);
    if (h.headerLength < V3_MIN_HEADER_LENGTH || h.headerLength % 8 !== 0) {
      throw bad(name, `header_length ${h.headerLength} must be at least ${V3_MIN_HEADER_LENGTH} and a multiple of 8`);
    }
    if (h.headerLength > Math.min(clusterSize, cluster0.length))
      throw bad(name, `header_length ${h.headerLength} runs past the first cluster`);
    if (h.headerLength > F.compression_type.offset) h.compressionType = view.getUint8(F.compression_type.offset);
  }
  if (h.refcountOrder > MAX_REFCOUNT_ORDER) throw bad(name, `refcount_order ${h.refcountOrder} exceeds ${MAX_REFCOUNT_ORDER}`);

  // Header extensions: from header_length up to the backing file name (or the cluster's end).
  const extLimit = Math.min(cluster0.length, clusterSize, h.backingFileOffset > 0 ? h.backingFileOffset : clusterSize);
  let p = h.headerLength;
  const seen = new Set<number>();
  for (;;) {
    if (p + 8 > extLimit) throw bad(name, `header extension area at ${p} has no end marker before ${extLimit}`);
    const type = view.getUint32(p);
    const len = view.getUint32(p + 4);
    if (type === EXT_END) break;
    const dataStart = p + 8;
    const next = dataStart + Math.ceil(len / 8) * 8;
    if (dataStart + len > extLimit)
      throw bad(name, `header extension 0x${type.toString(16)} at ${p} (length ${len}) runs past ${extLimit}`);
    if (seen.has(type)) throw bad(name, `header extension 0x${type.toString(16)} appears twice`);
    seen.add(type);
    const data = new Uint8Array(len);
    data.set(cluster0.subarray(dataStart, dataStart + len));
    h.extensions.push({ type, data });
    if (type === EXT_BACKING_FORMAT) h.backingFormat = Buffer.from(data).toString('utf8');
    else if (type === EXT_FEATURE_TABLE) h.featureNames = decodeFeatureTable(data, name);
    p = next;
  }

  if (h.backingFileOffset !== 0) {
    if (h.backingFileSize === 0 || h.backingFileSize > MAX_BACKING_FILE_NAME) {
      throw bad(name, `backing_file_size ${h.backingFileSize} out of range 1..${MAX_BACKING_FILE_NAME}`);
    }
    const end = h.backingFileOffset + h.backingFileSize;
    if (h.backingFileOffset < h.headerLength || end > Math.min(clusterSize, cluster0.length)) {
      throw bad(name, `backing file name at ${h.backingFileOffset}..${end} lies outside the first cluster's free space`);
    }
    h.backingFile = Buffer.from(cluster0.subarray(h.backingFileOffset, end)).toString('utf8');
    if (h.backingFile.includes('\0')) throw bad(name, 'backing file name contains a NUL byte');
  }
  return h;
}

/** Checks the header's tables against each other and against the file length. */
export function validateHeader(h: Qcow2Header, fileSize: number, name: string): void {
  const cs = 2 ** h.clusterBits;
  const within = (what: string, off: number, len: number): void => {
    if (!isAligned(off, cs)) throw bad(name, `${what} offset ${off} is not aligned to the cluster size ${cs}`);
    if (off === 0) throw bad(name, `${what} offset 0 overlaps the header`);
    if (off + len > fileSize) throw bad(name, `${what} at ${off}..${off + len} lies past the end of the file (${fileSize} bytes)`);
  };
  const needL1 = l1EntriesFor(h.size, h.clusterBits);
  if (h.l1Size < needL1) throw bad(name, `l1_size ${h.l1Size} is too small for a disk of ${h.size} bytes (needs ${needL1})`);
  if (h.l1Size * 8 > MAX_L1_TABLE_BYTES) throw bad(name, `l1_size ${h.l1Size} exceeds ${MAX_L1_TABLE_BYTES / 8} entries`);
  if (h.l1Size > 0) within('L1 table (l1_table_offset)', h.l1TableOffset, h.l1Size * 8);
  if (h.refcountTableClusters === 0) throw bad(name, 'refcount_table_clusters is 0');
  if (h.refcountTableClusters * cs > MAX_REFCOUNT_TABLE_BYTES)
    throw bad(name, `refcount_table_clusters ${h.refcountTableClusters} exceeds ${MAX_REFCOUNT_TABLE_BYTES} bytes`);
  within('refcount table (refcount_table_offset)', h.refcountTableOffset, h.refcountTableClusters * cs);
  if (h.l1Size > 0) {
    const l1End = h.l1TableOffset + h.l1Size * 8;
    const rtEnd = h.refcountTableOffset + h.refcountTableClusters * cs;
    if (h.l1TableOffset < rtEnd && h.refcountTableOffset < l1End) throw bad(name, 'L1 table overlaps the refcount table');
  }
  if (h.nbSnapshots > 0) within('snapshot table (snapshots_offset)', h.snapshotsOffset, 1);
  const compressionBit = (h.incompatibleFeatures & INCOMPAT_COMPRESSION) !== 0n;
  if (compressionBit && h.compressionType === COMPRESSION_ZLIB) throw bad(name, 'compression type bit set but compression_type is 0');
  if (!compressionBit && h.compressionType !== COMPRESSION_ZLIB)
    throw bad(name, `compression_type ${h.compressionType} without the compression type bit`);
  if (h.compressionType !== COMPRESSION_ZLIB && h.compressionType !== COMPRESSION_ZSTD)
    throw bad(name, `unknown compression_type ${h.compressionType}`);
}

function featureLabel(h: Qcow2Header, type: number, bit: number): string {
  const n = h.featureNames.find((f) => f.type === type && f.bit === bit);
  return n ? `'${n.name}' (bit ${bit})` : `bit ${bit}`;
}

/**
 * Refuses what this implementation does not support, naming it. Read-only opens are allowed
 * for images with internal snapshots (only the active L1 table is used) and with the corrupt
 * bit set (reads still validate every entry); neither may be written.
 */
export function checkSupported(h: Qcow2Header, name: string, readOnly: boolean): void {
  const unsupported = (what: string): NotImplementedError =>
    new NotImplementedError(`qcow2 image ${name}: ${what} is not supported`, 'ERR_QCOW2_UNSUPPORTED');
  if (h.cryptMethod !== CRYPT_NONE)
    throw unsupported(
      `encryption (crypt_method ${h.cryptMethod === CRYPT_AES ? 'AES' : h.cryptMethod === CRYPT_LUKS ? 'LUKS' : h.cryptMethod})`,
    );
  const unknown = h.incompatibleFeatures & ~INCOMPAT_KNOWN;
  if (unknown !== 0n) {
    const bits: string[] = [];
    for (let b = 0; b < 64; b++) if ((unknown >> BigInt(b)) & 1n) bits.push(featureLabel(h, FEATURE_TYPE_INCOMPATIBLE, b));
    throw unsupported(`unknown incompatible feature ${bits.join(', ')}`);
  }
  if (h.incompatibleFeatures & INCOMPAT_DATA_FILE) throw unsupported('an external data file (incompatible feature bit 2)');
  if (h.incompatibleFeatures & INCOMPAT_EXTL2) throw unsupported('extended L2 entries (incompatible feature bit 4)');
  if (h.extensions.some((e) => e.type === EXT_DATA_FILE)) throw unsupported('an external data file (header extension)');
  if (readOnly) return;
  if (h.incompatibleFeatures & INCOMPAT_CORRUPT) {
    throw new FormatError(
      `qcow2 image ${name}: the corrupt bit is set; it may only be opened read-only (repair with qemu-img check -r all)`,
      'ERR_QCOW2_CORRUPT',
    );
  }
  if (h.incompatibleFeatures & INCOMPAT_DIRTY) {
    // Qcow2Image.open repairs such images (checkQcow2 repair 'all') before it gets here.
    throw unsupported('writing an image whose dirty bit is set before its refcounts are rebuilt');
  }
  if (h.nbSnapshots > 0) throw unsupported(`writing an image with internal snapshots (nb_snapshots ${h.nbSnapshots})`);
}

function padTo8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

/**
 * Serializes the header, its extensions (in order, then the end marker) and the backing file
 * name into one buffer of `clusterSize` bytes. `backingFileOffset`/`backingFileSize` and
 * `headerLength` are computed here; the returned header carries them.
 */
export function serializeHeader(input: Qcow2Header): { bytes: Buffer; header: Qcow2Header } {
  const h: Qcow2Header = { ...input, extensions: [...input.extensions] };
  const cs = 2 ** h.clusterBits;
  const F = HEADER_FIELDS;
  h.headerLength = h.version === 2 ? V2_HEADER_LENGTH : Math.max(h.headerLength, V3_HEADER_LENGTH);
  const buf = Buffer.alloc(cs);
  let p = h.headerLength;
  for (const e of h.extensions) {
    buf.writeUInt32BE(e.type, p);
    buf.writeUInt32BE(e.data.length, p + 4);
    buf.set(e.data, p + 8);
    p += 8 + padTo8(e.data.length);
  }
  p += 8; // end marker: type 0, length 0 (already zero)
  const name = h.backingFile !== undefined ? Buffer.from(h.backingFile, 'utf8') : undefined;
  if (name) {
    if (name.length === 0 || name.length > MAX_BACKING_FILE_NAME)
      throw bad('(new)', `backing file name length ${name.length} out of range 1..${MAX_BACKING_FILE_NAME}`);
    h.backingFileOffset = p;
    h.backingFileSize = name.length;
    buf.set(name, p);
    p += name.length;
  } else {
    h.backingFileOffset = 0;
    h.backingFileSize = 0;
  }
  if (p > cs) throw bad('(new)', `header, extensions and backing file name need ${p} bytes, more than one cluster (${cs})`);

  buf.writeUInt32BE(QCOW2_MAGIC, F.magic.offset);
  buf.writeUInt32BE(h.version, F.version.offset);
  buf.writeBigUInt64BE(BigInt(h.backingFileOffset), F.backing_file_offset.offset);
  buf.writeUInt32BE(h.backingFileSize, F.backing_file_size.offset);
  buf.writeUInt32BE(h.clusterBits, F.cluster_bits.offset);
  buf.writeBigUInt64BE(BigInt(h.size), F.size.offset);
  buf.writeUInt32BE(h.cryptMethod, F.crypt_method.offset);
  buf.writeUInt32BE(h.l1Size, F.l1_size.offset);
  buf.writeBigUInt64BE(BigInt(h.l1TableOffset), F.l1_table_offset.offset);
  buf.writeBigUInt64BE(BigInt(h.refcountTableOffset), F.refcount_table_offset.offset);
  buf.writeUInt32BE(h.refcountTableClusters, F.refcount_table_clusters.offset);
  buf.writeUInt32BE(h.nbSnapshots, F.nb_snapshots.offset);
  buf.writeBigUInt64BE(BigInt(h.snapshotsOffset), F.snapshots_offset.offset);
  if (h.version === 3) {
    buf.writeBigUInt64BE(h.incompatibleFeatures, F.incompatible_features.offset);
    buf.writeBigUInt64BE(h.compatibleFeatures, F.compatible_features.offset);
    buf.writeBigUInt64BE(h.autoclearFeatures, F.autoclear_features.offset);
    buf.writeUInt32BE(h.refcountOrder, F.refcount_order.offset);
    buf.writeUInt32BE(h.headerLength, F.header_length.offset);
    buf.writeUInt8(h.compressionType, F.compression_type.offset);
  }
  return { bytes: buf, header: h };
}

/** The feature name table QEMU writes, so `qemu-img info` and older tools can name our bits. */
export function defaultFeatureTable(): Uint8Array {
  const names: [number, number, string][] = [
    [FEATURE_TYPE_INCOMPATIBLE, 0, 'dirty bit'],
    [FEATURE_TYPE_INCOMPATIBLE, 1, 'corrupt bit'],
    [FEATURE_TYPE_INCOMPATIBLE, 2, 'external data file'],
    [FEATURE_TYPE_INCOMPATIBLE, 3, 'compression type'],
    [FEATURE_TYPE_INCOMPATIBLE, 4, 'extended L2 entries'],
    [FEATURE_TYPE_COMPATIBLE, 0, 'lazy refcounts'],
    [FEATURE_TYPE_AUTOCLEAR, 0, 'bitmaps'],
    [FEATURE_TYPE_AUTOCLEAR, 1, 'raw external data'],
  ];
  const out = Buffer.alloc(names.length * FEATURE_ENTRY_SIZE);
  names.forEach(([type, bit, n], i) => {
    out[i * FEATURE_ENTRY_SIZE] = type;
    out[i * FEATURE_ENTRY_SIZE + 1] = bit;
    out.write(n, i * FEATURE_ENTRY_SIZE + 2, 'latin1');
  });
  return out;
}
