/**
 * L1 and L2 table entries ("Cluster mapping" in docs/interop/qcow2.txt). Tables are kept as
 * raw big-endian bytes and entries are read as two 32-bit halves, so the hot path never
 * touches bigint. Host offsets above 2^53 are refused as corrupt (no real file is that big).
 */

/** Bit 63 of L1 and L2 entries: refcount is exactly one (writes may go in place). */
export const QCOW_OFLAG_COPIED_HI = 0x80000000;
/** Bit 62 of L2 entries: compressed cluster. */
export const QCOW_OFLAG_COMPRESSED_HI = 0x40000000;
/** Bit 0 of a standard cluster descriptor: reads as zeros (version 3). */
export const QCOW_OFLAG_ZERO_LO = 0x1;
/** Bits 9-55 of the host offset, split in halves. */
const OFFSET_MASK_HI = 0x00ffffff;
const OFFSET_MASK_LO = 0xfffffe00;
/** L1 reserved bits: 0-8 and 56-62. */
const L1_RESERVED_HI = 0x7f000000;
const L1_RESERVED_LO = 0x000001ff;
/** Standard L2 reserved bits: 1-8 and 56-61. */
const L2_RESERVED_HI = 0x3f000000;
const L2_RESERVED_LO = 0x000001fe;
const TWO32 = 0x1_0000_0000;

export const L2_ENTRY_SIZE = 8;

export type L2Kind = 'unallocated' | 'normal' | 'zero' | 'zero-alloc' | 'compressed';

export interface L2Entry {
  kind: L2Kind;
  /** host offset of the data cluster (normal, zero-alloc), or of the compressed data */
  offset: number;
  copied: boolean;
  /** compressed only: bytes to read at `offset` (whole 512-byte sectors, less the start's misalignment) */
  compressedSize: number;
  /** non-zero reserved bits make the entry invalid */
  reservedBits: boolean;
}

export function readHalves(table: Uint8Array, index: number): [number, number] {
  const p = index * 8;
  const hi = ((table[p]! << 24) | (table[p + 1]! << 16) | (table[p + 2]! << 8) | table[p + 3]!) >>> 0;
  const lo = ((table[p + 4]! << 24) | (table[p + 5]! << 16) | (table[p + 6]! << 8) | table[p + 7]!) >>> 0;
  return [hi, lo];
}

export function writeHalves(table: Uint8Array, index: number, hi: number, lo: number): void {
  const p = index * 8;
  table[p] = hi >>> 24;
  table[p + 1] = (hi >>> 16) & 0xff;
  table[p + 2] = (hi >>> 8) & 0xff;
  table[p + 3] = hi & 0xff;
  table[p + 4] = lo >>> 24;
  table[p + 5] = (lo >>> 16) & 0xff;
  table[p + 6] = (lo >>> 8) & 0xff;
  table[p + 7] = lo & 0xff;
}

export interface L1Entry {
  /** host offset of the L2 table; 0 = unallocated */
  offset: number;
  copied: boolean;
  reservedBits: boolean;
}

export function decodeL1(hi: number, lo: number): L1Entry {
  return {
    offset: (hi & OFFSET_MASK_HI) * TWO32 + ((lo & OFFSET_MASK_LO) >>> 0),
    copied: (hi & QCOW_OFLAG_COPIED_HI) !== 0,
    reservedBits: (hi & L1_RESERVED_HI) !== 0 || (lo & L1_RESERVED_LO) !== 0,
  };
}

/** Encodes a host offset (cluster-aligned, < 2^56) with the COPIED flag as an L1 or standard L2 entry. */
export function encodeOffset(offset: number, copied: boolean, zero = false): [number, number] {
  const hi = (Math.floor(offset / TWO32) & OFFSET_MASK_HI) | (copied ? QCOW_OFLAG_COPIED_HI : 0);
  const lo = ((offset % TWO32) & OFFSET_MASK_LO) | (zero ? QCOW_OFLAG_ZERO_LO : 0);
  return [hi >>> 0, lo >>> 0];
}

export function decodeL2(hi: number, lo: number, clusterBits: number): L2Entry {
  const copied = (hi & QCOW_OFLAG_COPIED_HI) !== 0;
  if (hi & QCOW_OFLAG_COMPRESSED_HI) {
    // Compressed descriptor: offset in bits 0..x-1, additional sectors in x..61, x = 62 - (cluster_bits - 8).
    const x = 62 - (clusterBits - 8);
    const desc = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(lo);
    const offset = Number(desc & ((1n << BigInt(x)) - 1n));
    const sectors = Number(desc >> BigInt(x)) + 1;
    const compressedSize = sectors * 512 - (offset % 512);
    return { kind: 'compressed', offset, copied, compressedSize, reservedBits: false };
  }
  const offset = (hi & OFFSET_MASK_HI) * TWO32 + ((lo & OFFSET_MASK_LO) >>> 0);
  const reservedBits = (hi & L2_RESERVED_HI) !== 0 || (lo & L2_RESERVED_LO) !== 0;
  let kind: L2Kind;
  if (lo & QCOW_OFLAG_ZERO_LO) kind = offset === 0 ? 'zero' : 'zero-alloc';
  else kind = offset === 0 ? 'unallocated' : 'normal';
  return { kind, offset, copied, compressedSize: 0, reservedBits };
}

/** Encodes a compressed descriptor (used by tests that build images by hand). */
export function encodeCompressed(offset: number, additionalSectors: number, clusterBits: number): [number, number] {
  const x = 62 - (clusterBits - 8);
  const desc = BigInt(offset) | (BigInt(additionalSectors) << BigInt(x));
  return [Number((desc >> 32n) & 0x3fffffffn) | QCOW_OFLAG_COMPRESSED_HI, Number(desc & 0xffffffffn)];
}
