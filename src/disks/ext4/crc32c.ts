/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) as ext4 and jbd2 use it for
 * metadata_csum: the raw register update, with no pre- or post-inversion. Callers pass the
 * seed explicitly (~0 for the superblock, the filesystem's checksum seed for everything else),
 * exactly as the kernel's ext4_chksum() does.
 */
const POLY = 0x82f63b78;

// Slicing-by-8 tables: metadata checksums cover whole 4 KiB blocks (directories, bitmaps).
const T = Array.from({ length: 8 }, () => new Uint32Array(256));
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[0]![n] = c >>> 0;
}
for (let n = 0; n < 256; n++) {
  let c = T[0]![n]!;
  for (let t = 1; t < 8; t++) {
    c = (c >>> 8) ^ T[0]![c & 0xff]!;
    T[t]![n] = c >>> 0;
  }
}
const [T0, T1, T2, T3, T4, T5, T6, T7] = T as [
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
];

/** raw CRC-32C register update over `data` starting from `crc` */
export function crc32cUpdate(crc: number, data: Uint8Array, start = 0, end = data.length): number {
  let c = crc >>> 0;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const a = (c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0;
    c =
      T7[a & 0xff]! ^
      T6[(a >>> 8) & 0xff]! ^
      T5[(a >>> 16) & 0xff]! ^
      T4[a >>> 24]! ^
      T3[data[i + 4]!]! ^
      T2[data[i + 5]!]! ^
      T1[data[i + 6]!]! ^
      T0[data[i + 7]!]!;
  }
  for (; i < end; i++) c = (c >>> 8) ^ T0[(c ^ data[i]!) & 0xff]!;
  return c >>> 0;
}

/** the standard CRC-32C (iSCSI) value: inverted in and out; used to check against known vectors */
export function crc32c(data: Uint8Array): number {
  return (crc32cUpdate(0xffffffff, data) ^ 0xffffffff) >>> 0;
}

export function crc32cU32(crc: number, v: number): number {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return crc32cUpdate(crc, b);
}

export function crc32cU64(crc: number, v: number): number {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return crc32cUpdate(crc, b);
}
