import { describe, it, expect } from 'vitest';
import {
  HEADER_FIELDS,
  INCOMPAT_CORRUPT,
  INCOMPAT_DATA_FILE,
  INCOMPAT_DIRTY,
  INCOMPAT_EXTL2,
  INCOMPAT_COMPRESSION,
  EXT_BACKING_FORMAT,
  EXT_FEATURE_TABLE,
  QCOW2_MAGIC,
  V3_HEADER_LENGTH,
  checkSupported,
  defaultFeatureTable,
  l1EntriesFor,
  parseHeader,
  serializeHeader,
  validateHeader,
  type Qcow2Header,
} from '../../../../src/disks/qcow2/header.js';
import { FormatError, NotImplementedError } from '../../../../src/errors.js';

function base(over: Partial<Qcow2Header> = {}): Qcow2Header {
  return {
    version: 3,
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits: 16,
    size: 10 * 1024 * 1024,
    cryptMethod: 0,
    l1Size: 1,
    l1TableOffset: 3 * 65536,
    refcountTableOffset: 65536,
    refcountTableClusters: 1,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatibleFeatures: 0n,
    compatibleFeatures: 0n,
    autoclearFeatures: 0n,
    refcountOrder: 4,
    headerLength: 0,
    compressionType: 0,
    extensions: [
      { type: EXT_BACKING_FORMAT, data: Buffer.from('raw') },
      { type: EXT_FEATURE_TABLE, data: defaultFeatureTable() },
    ],
    featureNames: [],
    backingFile: 'base.raw',
    ...over,
  };
}

const FILE = 4 * 65536;

function bytesOf(h: Qcow2Header): Buffer {
  return serializeHeader(h).bytes;
}

function expectCode(fn: () => unknown, cls: new (...a: never[]) => Error, code: string, text?: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(cls);
  expect((err as { code: string }).code).toBe(code);
  if (text) expect((err as Error).message).toMatch(text);
}

describe('qcow2 header offsets (docs/interop/qcow2.txt)', () => {
  it('pins every field offset and width', () => {
    expect(HEADER_FIELDS).toEqual({
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
      incompatible_features: { offset: 72, size: 8 },
      compatible_features: { offset: 80, size: 8 },
      autoclear_features: { offset: 88, size: 8 },
      refcount_order: { offset: 96, size: 4 },
      header_length: { offset: 100, size: 4 },
      compression_type: { offset: 104, size: 1 },
    });
    // consecutive, no gaps, up to the v3 minimum length
    const f = Object.values(HEADER_FIELDS);
    for (let i = 1; i < f.length; i++) expect(f[i]!.offset).toBe(f[i - 1]!.offset + f[i - 1]!.size);
    expect(HEADER_FIELDS.header_length.offset + 4).toBe(104);
  });

  it('serializes the same bytes qemu-img create writes for the header fields', () => {
    const b = bytesOf(base());
    expect(b.readUInt32BE(0)).toBe(QCOW2_MAGIC);
    expect(b.subarray(0, 4).toString('latin1')).toBe('QFI\xfb');
    expect(b.readUInt32BE(4)).toBe(3);
    expect(b.readUInt32BE(20)).toBe(16);
    expect(b.readBigUInt64BE(24)).toBe(10n * 1024n * 1024n);
    expect(b.readUInt32BE(96)).toBe(4);
    expect(b.readUInt32BE(100)).toBe(V3_HEADER_LENGTH);
    // extensions start at header_length: backing format "raw", then the feature table, then end
    expect(b.readUInt32BE(112)).toBe(EXT_BACKING_FORMAT);
    expect(b.readUInt32BE(116)).toBe(3);
    expect(b.subarray(120, 123).toString()).toBe('raw');
    expect(b.readUInt32BE(128)).toBe(EXT_FEATURE_TABLE);
    expect(b.readUInt32BE(132)).toBe(8 * 48);
    const end = 136 + 8 * 48;
    expect(b.readUInt32BE(end)).toBe(0);
    expect(b.readUInt32BE(end + 4)).toBe(0);
    // backing file name right after the end marker, as QEMU places it (0x210)
    expect(Number(b.readBigUInt64BE(8))).toBe(end + 8);
    expect(end + 8).toBe(0x210);
    expect(b.readUInt32BE(16)).toBe(8);
    expect(b.subarray(0x210, 0x218).toString()).toBe('base.raw');
  });

  it('round-trips through parse', () => {
    const { bytes, header } = serializeHeader(base({ compatibleFeatures: 1n, autoclearFeatures: 0n }));
    const p = parseHeader(bytes, 't');
    expect(p).toEqual({
      ...header,
      extensions: header.extensions.map((e) => ({ type: e.type, data: new Uint8Array(e.data) })),
      featureNames: p.featureNames,
      backingFormat: 'raw',
    });
    expect(p.featureNames).toContainEqual({ type: 0, bit: 1, name: 'corrupt bit' });
    expect(p.featureNames).toContainEqual({ type: 1, bit: 0, name: 'lazy refcounts' });
    expect(p.backingFile).toBe('base.raw');
    validateHeader(p, FILE, 't');
  });

  it('round-trips a version 2 header (72 bytes, no feature fields)', () => {
    const { bytes } = serializeHeader(base({ version: 2, extensions: [] }));
    const p = parseHeader(bytes, 't');
    expect(p.version).toBe(2);
    expect(p.headerLength).toBe(72);
    expect(p.refcountOrder).toBe(4);
    expect(p.backingFileOffset).toBe(80);
    expect(p.backingFile).toBe('base.raw');
  });

  it('keeps unknown header extensions', () => {
    const ext = { type: 0x12345678, data: Buffer.from('hello') };
    const p = parseHeader(bytesOf(base({ extensions: [ext] })), 't');
    expect(p.extensions).toEqual([{ type: 0x12345678, data: new Uint8Array(Buffer.from('hello')) }]);
  });

  it('computes L1 sizes', () => {
    expect(l1EntriesFor(10 * 1024 * 1024, 16)).toBe(1);
    expect(l1EntriesFor(512 * 1024 * 1024, 16)).toBe(1);
    expect(l1EntriesFor(512 * 1024 * 1024 + 1, 16)).toBe(2);
    expect(l1EntriesFor(1024 ** 3, 9)).toBe(32768);
  });
});

describe('qcow2 header rejection', () => {
  const valid = bytesOf(base());
  const mutate = (f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(valid);
    f(b);
    return b;
  };
  const parseOk = (b: Buffer) => {
    const h = parseHeader(b, 'img');
    validateHeader(h, FILE, 'img');
    return h;
  };

  it('bad magic', () =>
    expectCode(() => parseOk(mutate((b) => b.write('QFJ', 0, 'latin1'))), FormatError, 'ERR_QCOW2_BAD_MAGIC', /bad magic/));
  it('too short', () => expectCode(() => parseHeader(valid.subarray(0, 40), 'img'), FormatError, 'ERR_QCOW2_BAD_MAGIC', /shorter/));
  it('version 1 and 4', () => {
    expectCode(() => parseOk(mutate((b) => b.writeUInt32BE(1, 4))), FormatError, 'ERR_QCOW2_BAD_VERSION', /version 1/);
    expectCode(() => parseOk(mutate((b) => b.writeUInt32BE(4, 4))), FormatError, 'ERR_QCOW2_BAD_VERSION', /version 4/);
  });
  it('cluster_bits out of range', () => {
    expectCode(() => parseOk(mutate((b) => b.writeUInt32BE(8, 20))), FormatError, 'ERR_QCOW2_BAD_HEADER', /cluster_bits 8/);
    expectCode(() => parseOk(mutate((b) => b.writeUInt32BE(22, 20))), FormatError, 'ERR_QCOW2_BAD_HEADER', /cluster_bits 22/);
  });
  it('header_length not a multiple of 8 or too small', () => {
    expectCode(() => parseOk(mutate((b) => b.writeUInt32BE(108, 100))), FormatError, 'ERR_QCOW2_BAD_HEADER', /header_length 108/);
    expectCode(() => parseOk(mutate((b) => b.writeUInt32BE(96, 100))), FormatError, 'ERR_QCOW2_BAD_HEADER', /header_length 96/);
  });
  it('refcount_order above 6', () =>
    expectCode(() => parseOk(mutate((b) => b.writeUInt32BE(7, 96))), FormatError, 'ERR_QCOW2_BAD_HEADER', /refcount_order 7/));
  it('L1 table misaligned', () =>
    expectCode(
      () => parseOk(mutate((b) => b.writeBigUInt64BE(3n * 65536n + 512n, 40))),
      FormatError,
      'ERR_QCOW2_BAD_HEADER',
      /L1 table.*not aligned/,
    ));
  it('L1 table past EOF', () =>
    expectCode(
      () => parseOk(mutate((b) => b.writeBigUInt64BE(9n * 65536n, 40))),
      FormatError,
      'ERR_QCOW2_BAD_HEADER',
      /L1 table.*past the end/,
    ));
  it('L1 table too small for the size', () =>
    expectCode(
      () => parseOk(mutate((b) => b.writeBigUInt64BE(1n << 40n, 24))),
      FormatError,
      'ERR_QCOW2_BAD_HEADER',
      /l1_size 1 is too small/,
    ));
  it('refcount table past EOF or misaligned or empty', () => {
    expectCode(
      () => parseOk(mutate((b) => b.writeBigUInt64BE(4n * 65536n, 48))),
      FormatError,
      'ERR_QCOW2_BAD_HEADER',
      /refcount table.*past the end/,
    );
    expectCode(
      () => parseOk(mutate((b) => b.writeBigUInt64BE(65536n + 8n, 48))),
      FormatError,
      'ERR_QCOW2_BAD_HEADER',
      /refcount table.*not aligned/,
    );
    expectCode(() => parseOk(mutate((b) => b.writeUInt32BE(0, 56))), FormatError, 'ERR_QCOW2_BAD_HEADER', /refcount_table_clusters is 0/);
  });
  it('L1 table overlapping the refcount table', () =>
    expectCode(() => parseOk(mutate((b) => b.writeBigUInt64BE(65536n, 40))), FormatError, 'ERR_QCOW2_BAD_HEADER', /overlaps/));
  it('extension running past the cluster, or without an end marker', () => {
    expectCode(() => parseOk(mutate((b) => b.writeUInt32BE(70000, 116))), FormatError, 'ERR_QCOW2_BAD_HEADER', /extension 0xe2792aca/);
  });
  it('backing file name too long or outside the first cluster', () => {
    expectCode(() => parseOk(mutate((b) => b.writeUInt32BE(1024, 16))), FormatError, 'ERR_QCOW2_BAD_HEADER', /backing_file_size 1024/);
    expectCode(() => parseOk(mutate((b) => b.writeBigUInt64BE(65536n - 4n, 8))), FormatError, 'ERR_QCOW2_BAD_HEADER', /backing file name/);
  });
  it('compression type bit and field must agree', () => {
    expectCode(
      () => parseOk(mutate((b) => b.writeBigUInt64BE(INCOMPAT_COMPRESSION, 72))),
      FormatError,
      'ERR_QCOW2_BAD_HEADER',
      /compression type bit/,
    );
    expectCode(() => parseOk(mutate((b) => b.writeUInt8(1, 104))), FormatError, 'ERR_QCOW2_BAD_HEADER', /compression_type 1/);
  });
});

describe('qcow2 feature policy', () => {
  const h = (over: Partial<Qcow2Header>) => ({ ...parseHeader(bytesOf(base()), 'img'), ...over });
  it('refuses encryption by name', () => {
    expectCode(
      () => checkSupported(h({ cryptMethod: 1 }), 'img', true),
      NotImplementedError,
      'ERR_QCOW2_UNSUPPORTED',
      /encryption \(crypt_method AES\)/,
    );
    expectCode(() => checkSupported(h({ cryptMethod: 2 }), 'img', true), NotImplementedError, 'ERR_QCOW2_UNSUPPORTED', /LUKS/);
  });
  it('refuses external data files and extended L2 entries', () => {
    expectCode(
      () => checkSupported(h({ incompatibleFeatures: INCOMPAT_DATA_FILE }), 'img', true),
      NotImplementedError,
      'ERR_QCOW2_UNSUPPORTED',
      /external data file/,
    );
    expectCode(
      () => checkSupported(h({ incompatibleFeatures: INCOMPAT_EXTL2 }), 'img', true),
      NotImplementedError,
      'ERR_QCOW2_UNSUPPORTED',
      /extended L2/,
    );
  });
  it('refuses unknown incompatible bits, naming them from the feature table when it can', () => {
    expectCode(
      () => checkSupported(h({ incompatibleFeatures: 1n << 9n }), 'img', true),
      NotImplementedError,
      'ERR_QCOW2_UNSUPPORTED',
      /unknown incompatible feature bit 9/,
    );
    const named = h({ incompatibleFeatures: 1n << 9n, featureNames: [{ type: 0, bit: 9, name: 'shiny' }] });
    expectCode(() => checkSupported(named, 'img', true), NotImplementedError, 'ERR_QCOW2_UNSUPPORTED', /'shiny' \(bit 9\)/);
  });
  it('allows read-only opens of dirty, corrupt or snapshotted images; refuses writing them', () => {
    for (const over of [
      { incompatibleFeatures: INCOMPAT_DIRTY },
      { incompatibleFeatures: INCOMPAT_CORRUPT },
      { nbSnapshots: 1, snapshotsOffset: 65536 * 2 },
    ]) {
      expect(() => checkSupported(h(over), 'img', true)).not.toThrow();
      expect(() => checkSupported(h(over), 'img', false)).toThrow();
    }
    expectCode(
      () => checkSupported(h({ incompatibleFeatures: INCOMPAT_CORRUPT }), 'img', false),
      FormatError,
      'ERR_QCOW2_CORRUPT',
      /corrupt bit/,
    );
    expectCode(
      () => checkSupported(h({ incompatibleFeatures: INCOMPAT_DIRTY }), 'img', false),
      NotImplementedError,
      'ERR_QCOW2_UNSUPPORTED',
      /dirty bit/,
    );
    expectCode(
      () => checkSupported(h({ nbSnapshots: 2 }), 'img', false),
      NotImplementedError,
      'ERR_QCOW2_UNSUPPORTED',
      /internal snapshots/,
    );
  });
  it('ignores compatible bits (lazy refcounts)', () => {
    expect(() => checkSupported(h({ compatibleFeatures: 1n | (1n << 40n) }), 'img', false)).not.toThrow();
  });
});
