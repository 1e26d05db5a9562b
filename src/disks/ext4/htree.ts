/**
 * Hashed directories (dir_index, fs/ext4/namei.c + hash.c): block 0 is a dx_root holding "."
 * and ".." plus an index of (hash, block) pairs; with more leaves than one index block holds,
 * one level of dx_node blocks sits in between. Leaves are ordinary directory blocks whose
 * entries fall in their index entry's hash range. The kernel turns a directory into this shape
 * as soon as it outgrows one block; we write large directories that way directly so lookups
 * in them are O(log n) from the first boot.
 */
import { defineStruct } from './struct.js';
import { crc32cUpdate } from './crc32c.js';
import { packDirectory, dirEntrySize, DIR_ENTRY, DIR_TAIL_SIZE, EXT4_FT, type DirEntry } from './dir-entry.js';

export const DX_HASH_HALF_MD4 = 1;
export const DX_ROOT_INFO_LENGTH = 8;
const DX_ENTRY_SIZE = 8;
const DX_TAIL_SIZE = 8;
/** count/limit live where entries[0].hash would be */
export const DX_ROOT_ENTRIES_OFFSET = 32;
export const DX_NODE_ENTRIES_OFFSET = 8;
const EXT4_HTREE_EOF_32BIT = 0x7fffffff;

export const DX_ROOT_INFO = defineStruct(8, {
  reserved_zero: [0x0, 'u32'],
  hash_version: [0x4, 'u8'],
  info_length: [0x5, 'u8'],
  indirect_levels: [0x6, 'u8'],
  unused_flags: [0x7, 'u8'],
} as const);

export const DX_COUNTLIMIT = defineStruct(4, {
  limit: [0x0, 'u16'],
  count: [0x2, 'u16'],
} as const);

export const DX_TAIL = defineStruct(DX_TAIL_SIZE, {
  dt_reserved: [0x0, 'u32'],
  dt_checksum: [0x4, 'u32'],
} as const);

/** index entries per block, one slot given up for the checksum tail (metadata_csum) */
export function dxRootLimit(blockSize: number): number {
  return (blockSize - DX_ROOT_ENTRIES_OFFSET) / DX_ENTRY_SIZE - 1;
}
export function dxNodeLimit(blockSize: number): number {
  return (blockSize - DX_NODE_ENTRIES_OFFSET) / DX_ENTRY_SIZE - 1;
}

const rol32 = (x: number, s: number) => ((x << s) | (x >>> (32 - s))) >>> 0;
const K2 = 0o13240474631;
const K3 = 0o15666365641;

function halfMd4Transform(buf: Uint32Array, inp: Uint32Array): void {
  let a = buf[0]!;
  let b = buf[1]!;
  let c = buf[2]!;
  let d = buf[3]!;
  const F = (x: number, y: number, z: number) => (z ^ (x & (y ^ z))) >>> 0;
  const G = (x: number, y: number, z: number) => ((x & y) + ((x ^ y) & z)) >>> 0;
  const H = (x: number, y: number, z: number) => (x ^ y ^ z) >>> 0;
  const R = (f: typeof F, w: number, x: number, y: number, z: number, v: number, s: number) => rol32((w + f(x, y, z) + v) >>> 0, s);
  a = R(F, a, b, c, d, inp[0]!, 3);
  d = R(F, d, a, b, c, inp[1]!, 7);
  c = R(F, c, d, a, b, inp[2]!, 11);
  b = R(F, b, c, d, a, inp[3]!, 19);
  a = R(F, a, b, c, d, inp[4]!, 3);
  d = R(F, d, a, b, c, inp[5]!, 7);
  c = R(F, c, d, a, b, inp[6]!, 11);
  b = R(F, b, c, d, a, inp[7]!, 19);
  a = R(G, a, b, c, d, (inp[1]! + K2) >>> 0, 3);
  d = R(G, d, a, b, c, (inp[3]! + K2) >>> 0, 5);
  c = R(G, c, d, a, b, (inp[5]! + K2) >>> 0, 9);
  b = R(G, b, c, d, a, (inp[7]! + K2) >>> 0, 13);
  a = R(G, a, b, c, d, (inp[0]! + K2) >>> 0, 3);
  d = R(G, d, a, b, c, (inp[2]! + K2) >>> 0, 5);
  c = R(G, c, d, a, b, (inp[4]! + K2) >>> 0, 9);
  b = R(G, b, c, d, a, (inp[6]! + K2) >>> 0, 13);
  a = R(H, a, b, c, d, (inp[3]! + K3) >>> 0, 3);
  d = R(H, d, a, b, c, (inp[7]! + K3) >>> 0, 9);
  c = R(H, c, d, a, b, (inp[2]! + K3) >>> 0, 11);
  b = R(H, b, c, d, a, (inp[6]! + K3) >>> 0, 15);
  a = R(H, a, b, c, d, (inp[1]! + K3) >>> 0, 3);
  d = R(H, d, a, b, c, (inp[5]! + K3) >>> 0, 9);
  c = R(H, c, d, a, b, (inp[0]! + K3) >>> 0, 11);
  b = R(H, b, c, d, a, (inp[4]! + K3) >>> 0, 15);
  buf[0] = (buf[0]! + a) >>> 0;
  buf[1] = (buf[1]! + b) >>> 0;
  buf[2] = (buf[2]! + c) >>> 0;
  buf[3] = (buf[3]! + d) >>> 0;
}

/** str2hashbuf: packs up to num*4 name bytes into words, padded with a length pattern */
function str2hashbuf(msg: Uint8Array, len: number, out: Uint32Array, num: number, signed: boolean): void {
  let pad = (len | (len << 8)) >>> 0;
  pad = (pad | (pad << 16)) >>> 0;
  let val = pad;
  if (len > num * 4) len = num * 4;
  let o = 0;
  for (let i = 0; i < len; i++) {
    const c = signed && msg[i]! >= 0x80 ? msg[i]! - 0x100 : msg[i]!;
    val = (c + ((val << 8) >>> 0)) >>> 0;
    if (i % 4 === 3) {
      out[o++] = val;
      val = pad;
      num--;
    }
  }
  if (--num >= 0) out[o++] = val;
  while (--num >= 0) out[o++] = pad;
}

/** the major hash ext4 files `name` under (half_md4, the default hash) */
export function dirHash(name: Uint8Array, seed: Uint8Array, signed: boolean): number {
  const buf = new Uint32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
  const s = Buffer.from(seed.buffer, seed.byteOffset, 16);
  if (!s.every((b) => b === 0)) for (let i = 0; i < 4; i++) buf[i] = s.readUInt32LE(i * 4);
  const inp = new Uint32Array(8);
  for (let off = 0, len = name.length; len > 0; off += 32, len -= 32) {
    str2hashbuf(name.subarray(off), len, inp, 8, signed);
    halfMd4Transform(buf, inp);
  }
  let hash = buf[1]! & ~1;
  if (hash >>> 0 === (EXT4_HTREE_EOF_32BIT << 1) >>> 0) hash = (EXT4_HTREE_EOF_32BIT - 1) << 1;
  return hash >>> 0;
}

function setDxChecksum(block: Buffer, countOffset: number, inodeSeed: number): void {
  const { limit, count } = DX_COUNTLIMIT.decode(block, countOffset) as { limit: number; count: number };
  const tailAt = countOffset + limit * DX_ENTRY_SIZE;
  // over the used entries, then the whole tail with dt_checksum still zero
  DX_TAIL.encode({ dt_reserved: 0, dt_checksum: 0 }, block, tailAt);
  let c = crc32cUpdate(inodeSeed, block, 0, countOffset + count * DX_ENTRY_SIZE);
  c = crc32cUpdate(c, block, tailAt, tailAt + DX_TAIL_SIZE);
  DX_TAIL.encode({ dt_checksum: c }, block, tailAt);
}

function writeIndex(block: Buffer, countOffset: number, limit: number, entries: { hash: number; block: number }[]): void {
  DX_COUNTLIMIT.encode({ limit, count: entries.length }, block, countOffset);
  block.writeUInt32LE(entries[0]!.block, countOffset + 4);
  for (let i = 1; i < entries.length; i++) {
    block.writeUInt32LE(entries[i]!.hash, countOffset + i * DX_ENTRY_SIZE);
    block.writeUInt32LE(entries[i]!.block, countOffset + i * DX_ENTRY_SIZE + 4);
  }
}

/**
 * Builds a hashed directory: returns its blocks in logical order (0 = dx_root). `entries`
 * excludes "." and "..".
 */
export function packHashedDirectory(
  self: number,
  parent: number,
  entries: DirEntry[],
  blockSize: number,
  inodeSeed: number,
  hashSeed: Uint8Array,
  signedHash: boolean,
): Buffer[] {
  const hashed = entries.map((e) => ({ e, hash: dirHash(e.name, hashSeed, signedHash) }));
  hashed.sort((a, b) => a.hash - b.hash || Buffer.compare(a.e.name, b.e.name));

  // leaves: fill with whole groups of equal hashes, so no hash spans two leaves
  const usable = blockSize - DIR_TAIL_SIZE;
  const leaves: { firstHash: number; entries: DirEntry[] }[] = [];
  let cur: DirEntry[] = [];
  let used = 0;
  let first = 0;
  for (let i = 0; i < hashed.length;) {
    let j = i;
    let groupBytes = 0;
    while (j < hashed.length && hashed[j]!.hash === hashed[i]!.hash) groupBytes += dirEntrySize(hashed[j++]!.e.name.length);
    if (groupBytes > usable) throw new Error('too many names share one directory hash');
    if (used + groupBytes > usable) {
      leaves.push({ firstHash: first, entries: cur });
      cur = [];
      used = 0;
    }
    if (cur.length === 0) first = hashed[i]!.hash;
    for (let k = i; k < j; k++) cur.push(hashed[k]!.e);
    used += groupBytes;
    i = j;
  }
  if (cur.length > 0 || leaves.length === 0) leaves.push({ firstHash: first, entries: cur });

  const rootLimit = dxRootLimit(blockSize);
  const nodeLimit = dxNodeLimit(blockSize);
  const levels = leaves.length <= rootLimit ? 0 : 1;
  if (levels === 1 && Math.ceil(leaves.length / nodeLimit) > rootLimit) throw new Error('directory too large for a two-level htree');
  const nodeCount = levels === 0 ? 0 : Math.ceil(leaves.length / nodeLimit);
  const firstLeaf = 1 + nodeCount;

  const root = Buffer.alloc(blockSize);
  DIR_ENTRY.encode({ inode: self, rec_len: 12, name_len: 1, file_type: EXT4_FT.DIR }, root, 0);
  root.write('.', 8, 'latin1');
  DIR_ENTRY.encode({ inode: parent, rec_len: blockSize - 12, name_len: 2, file_type: EXT4_FT.DIR }, root, 12);
  root.write('..', 20, 'latin1');
  DX_ROOT_INFO.encode(
    { reserved_zero: 0, hash_version: DX_HASH_HALF_MD4, info_length: DX_ROOT_INFO_LENGTH, indirect_levels: levels, unused_flags: 0 },
    root,
    24,
  );

  const blocks: Buffer[] = [root];
  const leafIndex = leaves.map((l, i) => ({ hash: l.firstHash, block: firstLeaf + i }));
  if (levels === 0) {
    writeIndex(root, DX_ROOT_ENTRIES_OFFSET, rootLimit, leafIndex);
  } else {
    const rootEntries: { hash: number; block: number }[] = [];
    for (let n = 0; n < nodeCount; n++) {
      const chunk = leafIndex.slice(n * nodeLimit, (n + 1) * nodeLimit);
      const node = Buffer.alloc(blockSize);
      DIR_ENTRY.encode({ inode: 0, rec_len: blockSize, name_len: 0, file_type: 0 }, node, 0);
      writeIndex(node, DX_NODE_ENTRIES_OFFSET, nodeLimit, chunk);
      setDxChecksum(node, DX_NODE_ENTRIES_OFFSET, inodeSeed);
      blocks.push(node);
      rootEntries.push({ hash: chunk[0]!.hash, block: 1 + n });
    }
    writeIndex(root, DX_ROOT_ENTRIES_OFFSET, rootLimit, rootEntries);
  }
  setDxChecksum(root, DX_ROOT_ENTRIES_OFFSET, inodeSeed);
  for (const leaf of leaves) {
    const packed = packDirectory(leaf.entries, blockSize, inodeSeed);
    if (packed.length !== 1) throw new Error('htree leaf overflow');
    blocks.push(packed[0]!);
  }
  return blocks;
}
