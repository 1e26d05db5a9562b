/**
 * cpio "newc" archives (magic 070701), the format the Linux kernel unpacks as initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst).
 *
 * Layout of one member: a 110-byte ASCII header (the magic, then 13 fields of 8 hex digits),
 * the NUL-terminated name, padding to a multiple of 4 counted from the start of the header, the
 * data, padding to a multiple of 4. The archive ends with a member named "TRAILER!!!".
 *
 * The writer is deterministic: inode numbers are assigned in order from 1, times default to 0,
 * and the bytes depend only on the entries given.
 */
import { FormatError, InvalidParameterError } from '../errors.js';

export const NEWC_MAGIC = '070701';
/** "crc" variant: same layout, c_check holds the byte sum of the data. Read, never written. */
export const NEWC_CRC_MAGIC = '070702';
export const TRAILER_NAME = 'TRAILER!!!';

/** Header field table: name, byte offset, width (hex digits). The magic takes bytes 0..5. */
export const NEWC_FIELDS = [
  ['c_ino', 6],
  ['c_mode', 14],
  ['c_uid', 22],
  ['c_gid', 30],
  ['c_nlink', 38],
  ['c_mtime', 46],
  ['c_filesize', 54],
  ['c_devmajor', 62],
  ['c_devminor', 70],
  ['c_rdevmajor', 78],
  ['c_rdevminor', 86],
  ['c_namesize', 94],
  ['c_check', 102],
] as const;
export const NEWC_FIELD_WIDTH = 8;
export const NEWC_HEADER_SIZE = 110;
export const NEWC_ALIGN = 4;

export type NewcField = (typeof NEWC_FIELDS)[number][0];
export type NewcHeader = Record<NewcField, number>;

/** File type bits of c_mode (the S_IF* values from <sys/stat.h>). */
export { S_IFMT, S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO } from './file-mode.js';
import { S_IFMT, S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO } from './file-mode.js';
const PERMISSION_BITS = 0o7777;

/** The kernel's PATH_MAX: longer names are rejected by the initramfs unpacker. */
export const CPIO_MAX_NAME = 4096;
const U32_MAX = 0xffff_ffff;

export type CpioEntryType = 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo';

const TYPE_BITS: Record<CpioEntryType, number> = {
  file: S_IFREG,
  directory: S_IFDIR,
  symlink: S_IFLNK,
  'char-device': S_IFCHR,
  'block-device': S_IFBLK,
  fifo: S_IFIFO,
};

const DEFAULT_PERMISSIONS: Record<CpioEntryType, number> = {
  file: 0o644,
  directory: 0o755,
  symlink: 0o777,
  'char-device': 0o600,
  'block-device': 0o600,
  fifo: 0o644,
};

export interface CpioEntry {
  /** Path inside the archive, relative ("bin/sh"); a leading "/" or "./" is removed. */
  path: string;
  type: CpioEntryType;
  /** Permission bits (0o7777 range); the type bits come from `type`. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch; default 0 for reproducible archives. */
  mtime?: number;
  /** Contents of a regular file. */
  data?: Uint8Array | string;
  /** Target of a symlink. */
  target?: string;
  /** Device number of a char or block device node. */
  rdevMajor?: number;
  rdevMinor?: number;
}

/** One member as read back from an archive. */
export interface CpioRecord {
  path: string;
  type: CpioEntryType | 'socket';
  /** Full c_mode: type and permission bits. */
  mode: number;
  ino: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
  /** File contents, or the symlink target's bytes. */
  data: Buffer;
  /** Symlink target as text. */
  target?: string;
}

/** Removes a leading "/" or "./" and rejects names the kernel would not unpack as we mean them. */
export function normalizeCpioPath(p: string): string {
  let s = p;
  while (s.startsWith('./')) s = s.slice(2);
  while (s.startsWith('/')) s = s.slice(1);
  while (s.endsWith('/')) s = s.slice(0, -1);
  if (s === '' || s === '.') throw new InvalidParameterError(`cpio entry "${p}": empty path`, 'ERR_CPIO_PATH');
  if (s.includes('\0')) throw new InvalidParameterError(`cpio entry "${p}": path contains NUL`, 'ERR_CPIO_PATH');
  const parts = s.split('/');
  if (parts.some((c) => c === '' || c === '.' || c === '..')) {
    throw new InvalidParameterError(`cpio entry "${p}": path has empty, "." or ".." components`, 'ERR_CPIO_PATH');
  }
  if (s === TRAILER_NAME) throw new InvalidParameterError(`cpio entry "${p}": name is reserved for the trailer`, 'ERR_CPIO_PATH');
  if (Buffer.byteLength(s) + 1 > CPIO_MAX_NAME) {
    throw new InvalidParameterError(`cpio entry "${p}": path longer than ${CPIO_MAX_NAME - 1} bytes`, 'ERR_CPIO_PATH');
  }
  return s;
}

function u32(entry: string, field: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > U32_MAX) {
    throw new InvalidParameterError(`cpio entry "${entry}": ${field} ${v} does not fit the 32-bit header field`, 'ERR_CPIO_FIELD');
  }
  return v;
}

function padLength(n: number): number {
  return (NEWC_ALIGN - (n % NEWC_ALIGN)) % NEWC_ALIGN;
}

/** Encodes one header; every value must already be a valid u32. */
export function encodeNewcHeader(h: NewcHeader, magic = NEWC_MAGIC): Buffer {
  const b = Buffer.alloc(NEWC_HEADER_SIZE, 0x30);
  b.write(magic, 0, 'latin1');
  for (const [name, off] of NEWC_FIELDS) {
    b.write(h[name].toString(16).padStart(NEWC_FIELD_WIDTH, '0'), off, 'latin1');
  }
  return b;
}

function member(h: NewcHeader, name: string, data: Uint8Array): Buffer[] {
  const nameBytes = Buffer.from(name + '\0', 'utf8');
  const head = encodeNewcHeader({ ...h, c_namesize: nameBytes.length, c_filesize: data.length });
  return [
    head,
    nameBytes,
    Buffer.alloc(padLength(NEWC_HEADER_SIZE + nameBytes.length)),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    Buffer.alloc(padLength(data.length)),
  ];
}

/**
 * Writes a newc archive of the entries in the order given. Each entry's parent directory must
 * come earlier in the list: the kernel's unpacker does not create missing parents, so an archive
 * without them would boot with files silently missing. Paths must be unique.
 */
export function writeCpio(entries: Iterable<CpioEntry>): Buffer {
  const chunks: Buffer[] = [];
  const seen = new Map<string, CpioEntryType>();
  let ino = 0;
  for (const e of entries) {
    const path = normalizeCpioPath(e.path);
    const type = e.type;
    if (!(type in TYPE_BITS)) throw new InvalidParameterError(`cpio entry "${path}": unknown type "${String(type)}"`, 'ERR_CPIO_TYPE');
    if (seen.has(path)) throw new InvalidParameterError(`cpio entry "${path}": duplicate path`, 'ERR_CPIO_DUPLICATE');
    const slash = path.lastIndexOf('/');
    if (slash > 0) {
      const parent = path.slice(0, slash);
      if (seen.get(parent) !== 'directory') {
        throw new InvalidParameterError(
          `cpio entry "${path}": parent directory "${parent}" must come earlier in the archive`,
          'ERR_CPIO_PARENT',
        );
      }
    }
    const perms = e.mode ?? DEFAULT_PERMISSIONS[type];
    if (!Number.isInteger(perms) || perms < 0 || perms > PERMISSION_BITS) {
      throw new InvalidParameterError(`cpio entry "${path}": mode ${perms} is not a permission value (0..0o7777)`, 'ERR_CPIO_FIELD');
    }
    let data: Uint8Array = new Uint8Array(0);
    if (type === 'file') {
      data = typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : (e.data ?? new Uint8Array(0));
    } else if (e.data !== undefined) {
      throw new InvalidParameterError(`cpio entry "${path}": only regular files carry data`, 'ERR_CPIO_FIELD');
    }
    if (type === 'symlink') {
      if (!e.target || e.target.includes('\0')) {
        throw new InvalidParameterError(`cpio entry "${path}": symlink needs a non-empty target without NUL`, 'ERR_CPIO_FIELD');
      }
      data = Buffer.from(e.target, 'utf8');
    } else if (e.target !== undefined) {
      throw new InvalidParameterError(`cpio entry "${path}": only symlinks have a target`, 'ERR_CPIO_FIELD');
    }
    const isDevice = type === 'char-device' || type === 'block-device';
    if (!isDevice && (e.rdevMajor !== undefined || e.rdevMinor !== undefined)) {
      throw new InvalidParameterError(`cpio entry "${path}": only device nodes have a device number`, 'ERR_CPIO_FIELD');
    }
    if (isDevice && (e.rdevMajor === undefined || e.rdevMinor === undefined)) {
      throw new InvalidParameterError(`cpio entry "${path}": device node needs rdevMajor and rdevMinor`, 'ERR_CPIO_FIELD');
    }
    u32(path, 'file size', data.length);
    ino += 1;
    chunks.push(
      ...member(
        {
          c_ino: ino,
          c_mode: TYPE_BITS[type] | perms,
          c_uid: u32(path, 'uid', e.uid ?? 0),
          c_gid: u32(path, 'gid', e.gid ?? 0),
          c_nlink: type === 'directory' ? 2 : 1,
          c_mtime: u32(path, 'mtime', e.mtime ?? 0),
          c_filesize: data.length,
          c_devmajor: 0,
          c_devminor: 0,
          c_rdevmajor: u32(path, 'rdevMajor', e.rdevMajor ?? 0),
          c_rdevminor: u32(path, 'rdevMinor', e.rdevMinor ?? 0),
          c_namesize: 0,
          c_check: 0,
        },
        path,
        data,
      ),
    );
    seen.set(path, type);
  }
  chunks.push(...member(emptyHeader(1), TRAILER_NAME, new Uint8Array(0)));
  return Buffer.concat(chunks);
}

function emptyHeader(nlink: number): NewcHeader {
  const h = Object.fromEntries(NEWC_FIELDS.map(([n]) => [n, 0])) as NewcHeader;
  h.c_nlink = nlink;
  return h;
}

/** Decodes the header at `offset`, checking the magic and that every field is 8 hex digits. */
export function decodeNewcHeader(buf: Buffer, offset: number): { magic: string; header: NewcHeader } {
  if (offset + NEWC_HEADER_SIZE > buf.length) {
    throw new FormatError(`cpio: truncated header at offset ${offset}`, 'ERR_CPIO_TRUNCATED');
  }
  const magic = buf.toString('latin1', offset, offset + 6);
  if (magic !== NEWC_MAGIC && magic !== NEWC_CRC_MAGIC) {
    throw new FormatError(
      `cpio: bad magic "${magic.replace(/[^\x20-\x7e]/g, '?')}" at offset ${offset} (want ${NEWC_MAGIC})`,
      'ERR_CPIO_MAGIC',
    );
  }
  const header = {} as NewcHeader;
  for (const [name, off] of NEWC_FIELDS) {
    const text = buf.toString('latin1', offset + off, offset + off + NEWC_FIELD_WIDTH);
    if (!/^[0-9a-fA-F]{8}$/.test(text)) {
      throw new FormatError(`cpio: field ${name} at offset ${offset + off} is not hexadecimal: "${text}"`, 'ERR_CPIO_FIELD');
    }
    header[name] = parseInt(text, 16);
  }
  return { magic, header };
}

function typeOf(mode: number): CpioRecord['type'] | undefined {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'directory';
    case S_IFLNK:
      return 'symlink';
    case S_IFCHR:
      return 'char-device';
    case S_IFBLK:
      return 'block-device';
    case S_IFIFO:
      return 'fifo';
    case S_IFSOCK:
      return 'socket';
    default:
      return undefined;
  }
}

/**
 * Parses a newc (or newc-crc) archive up to its trailer. Strict: anything malformed or a
 * missing trailer is a FormatError naming the offset. Bytes after the trailer (padding, further
 * concatenated archives) are not read.
 */
export function readCpio(buf: Buffer): CpioRecord[] {
  const out: CpioRecord[] = [];
  let off = 0;
  for (;;) {
    const { magic, header: h } = decodeNewcHeader(buf, off);
    const nameStart = off + NEWC_HEADER_SIZE;
    if (h.c_namesize === 0 || h.c_namesize > CPIO_MAX_NAME) {
      throw new FormatError(`cpio: c_namesize ${h.c_namesize} out of range at offset ${off}`, 'ERR_CPIO_FIELD');
    }
    const nameEnd = nameStart + h.c_namesize;
    if (nameEnd > buf.length) throw new FormatError(`cpio: truncated name at offset ${nameStart}`, 'ERR_CPIO_TRUNCATED');
    if (buf[nameEnd - 1] !== 0) throw new FormatError(`cpio: name at offset ${nameStart} is not NUL-terminated`, 'ERR_CPIO_FIELD');
    const name = buf.toString('utf8', nameStart, nameEnd - 1);
    const dataStart = nameEnd + padLength(NEWC_HEADER_SIZE + h.c_namesize);
    const dataEnd = dataStart + h.c_filesize;
    if (dataEnd > buf.length) throw new FormatError(`cpio: "${name}": truncated data at offset ${dataStart}`, 'ERR_CPIO_TRUNCATED');
    if (name === TRAILER_NAME) return out;
    const type = typeOf(h.c_mode);
    if (type === undefined) throw new FormatError(`cpio: "${name}": unknown file type in mode ${h.c_mode.toString(8)}`, 'ERR_CPIO_FIELD');
    const data = buf.subarray(dataStart, dataEnd);
    if (magic === NEWC_CRC_MAGIC) {
      let sum = 0;
      for (const byte of data) sum = (sum + byte) >>> 0;
      if (sum !== h.c_check)
        throw new FormatError(`cpio: "${name}": checksum ${h.c_check} does not match data (${sum})`, 'ERR_CPIO_CHECKSUM');
    }
    out.push({
      path: name,
      type,
      mode: h.c_mode,
      ino: h.c_ino,
      uid: h.c_uid,
      gid: h.c_gid,
      nlink: h.c_nlink,
      mtime: h.c_mtime,
      devMajor: h.c_devmajor,
      devMinor: h.c_devminor,
      rdevMajor: h.c_rdevmajor,
      rdevMinor: h.c_rdevminor,
      data: Buffer.from(data),
      ...(type === 'symlink' && { target: data.toString('utf8') }),
    });
    off = dataEnd + padLength(h.c_filesize);
  }
}
