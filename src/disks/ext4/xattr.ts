/**
 * Extended attributes (fs/ext4/xattr.h): in the inode body after the extra fields when they
 * fit, else in one external block (header + entries growing down from the top, values growing
 * up from the bottom). Names are stored as (index, suffix): "security.capability" is index 6,
 * name "capability".
 */
import { defineStruct } from './struct.js';
import { crc32cUpdate, crc32cU64 } from './crc32c.js';

export const EXT4_XATTR_MAGIC = 0xea020000;
export const XATTR_HEADER_SIZE = 32;
export const XATTR_IBODY_HEADER_SIZE = 4;
export const XATTR_ENTRY_HEADER_SIZE = 16;
const XATTR_PAD = 4;
const NAME_HASH_SHIFT = 5;
const VALUE_HASH_SHIFT = 16;
const BLOCK_HASH_SHIFT = 16;

export const XATTR_HEADER = defineStruct(XATTR_HEADER_SIZE, {
  h_magic: [0x00, 'u32'],
  h_refcount: [0x04, 'u32'],
  h_blocks: [0x08, 'u32'],
  h_hash: [0x0c, 'u32'],
  h_checksum: [0x10, 'u32'],
  h_reserved: [0x14, { bytes: 12 }],
} as const);

export const XATTR_ENTRY = defineStruct(XATTR_ENTRY_HEADER_SIZE, {
  e_name_len: [0x0, 'u8'],
  e_name_index: [0x1, 'u8'],
  e_value_offs: [0x2, 'u16'],
  e_value_inum: [0x4, 'u32'],
  e_value_size: [0x8, 'u32'],
  e_hash: [0xc, 'u32'],
} as const);

/** Name prefixes, longest first so "system.posix_acl_access" wins over "system." */
const PREFIXES: [string, number][] = [
  ['system.posix_acl_default', 3],
  ['system.posix_acl_access', 2],
  ['system.richacl', 8],
  ['security.', 6],
  ['trusted.', 4],
  ['system.', 7],
  ['user.', 1],
];

export interface Xattr {
  index: number;
  name: Buffer;
  value: Buffer;
}

/** Splits a full attribute name into its index and stored suffix; null if ext4 cannot store it. */
/** `full` is latin1 (the raw bytes of the name) */
export function splitXattrName(full: string): { index: number; name: Buffer } | null {
  for (const [prefix, index] of PREFIXES) {
    if (full.startsWith(prefix)) {
      const name = Buffer.from(full.slice(prefix.length), 'latin1');
      // the ACL names are stored with an empty suffix; others need one
      if (index !== 2 && index !== 3 && name.length === 0) return null;
      if (name.length > 255) return null;
      return { index, name };
    }
  }
  return null;
}

const pad = (n: number) => (n + XATTR_PAD - 1) & ~(XATTR_PAD - 1);

/** the kernel's sort order for entries: index, then name length, then name */
export function sortXattrs(list: Xattr[]): Xattr[] {
  return [...list].sort((a, b) => a.index - b.index || a.name.length - b.name.length || Buffer.compare(a.name, b.name));
}

/** ext4_xattr_hash_entry: rotating hash over the name (signed chars, as x86 mke2fs) and padded value words */
export function xattrEntryHash(name: Buffer, value: Buffer): number {
  let hash = 0;
  for (const byte of name) {
    const c = byte >= 0x80 ? byte - 0x100 : byte;
    hash = ((hash << NAME_HASH_SHIFT) ^ (hash >>> (32 - NAME_HASH_SHIFT)) ^ c) >>> 0;
  }
  if (value.length > 0) {
    const padded = Buffer.alloc(pad(value.length));
    value.copy(padded);
    for (let i = 0; i < padded.length; i += 4) {
      hash = ((hash << VALUE_HASH_SHIFT) ^ (hash >>> (32 - VALUE_HASH_SHIFT)) ^ padded.readUInt32LE(i)) >>> 0;
    }
  }
  return hash >>> 0;
}

/** bytes the entries + values need in a region */
export function xattrSpace(list: Xattr[]): number {
  let n = 0;
  for (const x of list) n += pad(XATTR_ENTRY_HEADER_SIZE + x.name.length) + pad(x.value.length);
  return n;
}

/** in-inode space: after the 4-byte ibody header, entries + 4-byte terminator + values */
export function fitsInInode(list: Xattr[], space: number): boolean {
  return XATTR_IBODY_HEADER_SIZE + xattrSpace(list) + 4 <= space;
}

export function fitsInBlock(list: Xattr[], blockSize: number): boolean {
  return XATTR_HEADER_SIZE + xattrSpace(list) + 4 <= blockSize;
}

/**
 * Writes entries and values into `region` (entries from `entriesAt`, values packed at the end);
 * value offsets are relative to `base`. Returns the entry hashes in order.
 */
function writeEntries(region: Buffer, entriesAt: number, base: number, list: Xattr[]): number[] {
  let e = entriesAt;
  let v = region.length;
  const hashes: number[] = [];
  for (const x of sortXattrs(list)) {
    v -= pad(x.value.length);
    x.value.copy(region, v);
    const hash = xattrEntryHash(x.name, x.value);
    hashes.push(hash);
    XATTR_ENTRY.encode(
      {
        e_name_len: x.name.length,
        e_name_index: x.index,
        e_value_offs: x.value.length ? v - base : 0,
        e_value_inum: 0,
        e_value_size: x.value.length,
        e_hash: hash,
      },
      region,
      e,
    );
    x.name.copy(region, e + XATTR_ENTRY_HEADER_SIZE);
    e += pad(XATTR_ENTRY_HEADER_SIZE + x.name.length);
  }
  if (e + 4 > v) throw new Error('xattrs do not fit');
  return hashes;
}

/** Fills the in-inode xattr area (`region` = inode bytes from EXT4_INODE_XATTR_OFFSET to the end). */
export function writeInodeXattrs(region: Buffer, list: Xattr[]): void {
  region.fill(0);
  if (list.length === 0) return;
  region.writeUInt32LE(EXT4_XATTR_MAGIC, 0);
  writeEntries(region, XATTR_IBODY_HEADER_SIZE, XATTR_IBODY_HEADER_SIZE, list);
}

/** Builds one external xattr block at physical `block` (h_refcount = number of inodes sharing it). */
export function buildXattrBlock(list: Xattr[], blockSize: number, block: number, refcount: number, fsSeed: number): Buffer {
  const buf = Buffer.alloc(blockSize);
  const hashes = writeEntries(buf, XATTR_HEADER_SIZE, 0, list);
  let h = 0;
  for (const eh of hashes) {
    if (eh === 0) {
      h = 0;
      break;
    }
    h = ((h << BLOCK_HASH_SHIFT) ^ (h >>> (32 - BLOCK_HASH_SHIFT)) ^ eh) >>> 0;
  }
  XATTR_HEADER.encode({ h_magic: EXT4_XATTR_MAGIC, h_refcount: refcount, h_blocks: 1, h_hash: h, h_checksum: 0 }, buf, 0);
  const c = crc32cUpdate(crc32cU64(fsSeed, block), buf);
  buf.writeUInt32LE(c, XATTR_HEADER.offsetOf('h_checksum'));
  return buf;
}

/** POSIX ACL tags (include/uapi/linux/posix_acl.h) */
const ACL_USER_OBJ = 0x01;
const ACL_USER = 0x02;
const ACL_GROUP_OBJ = 0x04;
const ACL_GROUP = 0x08;
const ACL_MASK = 0x10;
const ACL_OTHER = 0x20;
const POSIX_ACL_XATTR_VERSION = 2;
export const EXT4_ACL_VERSION = 1;

/**
 * The kernel hands ACLs to userspace (and tar stores them) as posix_acl_xattr (version 2,
 * 8-byte entries); ext4 keeps them on disk in its own compact form (version 1, 4-byte entries
 * for the owner/group/mask/other tags). Returns null when the value is malformed.
 */
export function posixAclToExt4(value: Buffer): Buffer | null {
  if (value.length < 4 || (value.length - 4) % 8 !== 0) return null;
  if (value.readUInt32LE(0) !== POSIX_ACL_XATTR_VERSION) return null;
  const parts: Buffer[] = [Buffer.alloc(4)];
  parts[0]!.writeUInt32LE(EXT4_ACL_VERSION);
  for (let i = 4; i < value.length; i += 8) {
    const tag = value.readUInt16LE(i);
    const perm = value.readUInt16LE(i + 2);
    const id = value.readUInt32LE(i + 4);
    if (tag === ACL_USER || tag === ACL_GROUP) {
      const e = Buffer.alloc(8);
      e.writeUInt16LE(tag, 0);
      e.writeUInt16LE(perm, 2);
      e.writeUInt32LE(id, 4);
      parts.push(e);
    } else if (tag === ACL_USER_OBJ || tag === ACL_GROUP_OBJ || tag === ACL_MASK || tag === ACL_OTHER) {
      const e = Buffer.alloc(4);
      e.writeUInt16LE(tag, 0);
      e.writeUInt16LE(perm, 2);
      parts.push(e);
    } else {
      return null;
    }
  }
  return Buffer.concat(parts);
}
