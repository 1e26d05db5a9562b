/**
 * A streaming tar reader for image layers: ustar, POSIX pax (binary-safe values, so
 * SCHILY.xattr.* keeps raw bytes such as security.capability), GNU long names, base-256
 * numbers and GNU sparse files (old GNU 'S' and pax formats 0.1 and 1.0). Every malformed or truncated input
 * is a FormatError naming the entry. Names are kept as latin1 strings, i.e. the raw bytes.
 */
import { FormatError } from '../../errors.js';
import type { Timestamp } from './inode.js';

export const TAR_BLOCK = 512;

export type TarEntryType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarHeader {
  /** path as stored (latin1 = raw bytes) */
  name: string;
  type: TarEntryType;
  /** permission bits incl. setuid/setgid/sticky */
  mode: number;
  uid: number;
  gid: number;
  /** logical file size (the real size for sparse files) */
  size: number;
  mtime: Timestamp;
  atime?: Timestamp;
  ctime?: Timestamp;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** full xattr names ("security.capability") -> raw values */
  xattrs: Map<string, Buffer>;
  /** data regions of a sparse file (offset, length); undefined for ordinary files */
  sparseMap?: { offset: number; length: number }[];
}

/** Buffered reader over an async iterable of chunks. */
class ByteSource {
  private chunks: Buffer[] = [];
  private head = 0;
  private buffered = 0;
  private done = false;
  private readonly it: AsyncIterator<Buffer | string>;
  consumed = 0;

  constructor(src: AsyncIterable<Buffer | string>) {
    this.it = src[Symbol.asyncIterator]();
  }

  /** ensures at least n bytes are buffered; false if the stream ends first */
  async fill(n: number): Promise<boolean> {
    while (this.buffered < n) {
      if (this.done) return false;
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      const b = typeof r.value === 'string' ? Buffer.from(r.value, 'latin1') : r.value;
      if (b.length === 0) continue;
      this.chunks.push(b);
      this.buffered += b.length;
    }
    return true;
  }

  /** up to n bytes already buffered (at least one if anything is buffered), without copying */
  takeSome(n: number): Buffer {
    const c = this.chunks[0]!;
    const avail = c.length - this.head;
    if (avail <= n) {
      this.chunks.shift();
      const out = this.head === 0 ? c : c.subarray(this.head);
      this.head = 0;
      this.buffered -= out.length;
      this.consumed += out.length;
      return out;
    }
    const out = c.subarray(this.head, this.head + n);
    this.head += n;
    this.buffered -= n;
    this.consumed += n;
    return out;
  }

  /** exactly n buffered bytes (call fill first) */
  take(n: number): Buffer {
    const first = this.takeSome(n);
    if (first.length === n) return first;
    const parts = [first];
    let got = first.length;
    while (got < n) {
      const p = this.takeSome(n - got);
      parts.push(p);
      got += p.length;
    }
    return Buffer.concat(parts, n);
  }

  async close(): Promise<void> {
    if (!this.done) await this.it.return?.();
  }
}

function parseNumber(field: Buffer, what: string, entry: string): number {
  if (field.length > 0 && (field[0]! & 0x80) !== 0) {
    // base-256 (GNU/star): big-endian two's complement with the top bit as marker
    if (field[0] === 0xff) throw new FormatError(`tar entry ${entry}: negative ${what}`, 'ERR_TAR_FORMAT');
    let v = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) v = v * 256 + field[i]!;
    if (!Number.isSafeInteger(v)) throw new FormatError(`tar entry ${entry}: ${what} too large`, 'ERR_TAR_FORMAT');
    return v;
  }
  const s = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s))
    throw new FormatError(`tar entry ${entry}: ${what} is not an octal number (${JSON.stringify(s)})`, 'ERR_TAR_FORMAT');
  return parseInt(s, 8);
}

function cString(b: Buffer): string {
  const z = b.indexOf(0);
  return (z < 0 ? b : b.subarray(0, z)).toString('latin1');
}

function headerChecksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  const stored = cString(h.subarray(148, 156)).trim();
  return /^[0-7]+$/.test(stored) && parseInt(stored, 8) === sum;
}

/** "%d key=value\n" records; values stay raw bytes */
export function parsePax(body: Buffer, entry: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < body.length) {
    if (body[i] === 0) break;
    const sp = body.indexOf(0x20, i);
    if (sp < 0) throw new FormatError(`tar entry ${entry}: malformed pax record`, 'ERR_TAR_FORMAT');
    const len = parseInt(body.subarray(i, sp).toString('latin1'), 10);
    if (!Number.isInteger(len) || len <= sp - i + 1 || i + len > body.length || body[i + len - 1] !== 0x0a) {
      throw new FormatError(`tar entry ${entry}: malformed pax record length`, 'ERR_TAR_FORMAT');
    }
    const rec = body.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new FormatError(`tar entry ${entry}: pax record without '='`, 'ERR_TAR_FORMAT');
    // keys are UTF-8 text; keep them as raw bytes (latin1) like names
    out.set(rec.subarray(0, eq).toString('latin1'), Buffer.from(rec.subarray(eq + 1)));
    i += len;
  }
  return out;
}

/** pax time "seconds[.fraction]", possibly negative, to (sec, nsec) */
export function parsePaxTime(v: string, entry: string): Timestamp {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(v);
  if (!m) throw new FormatError(`tar entry ${entry}: malformed pax time ${JSON.stringify(v)}`, 'ERR_TAR_FORMAT');
  const whole = parseInt(m[2]!, 10);
  const frac = parseInt(((m[3] ?? '') + '000000000').slice(0, 9), 10);
  if (m[1] === '-') return frac === 0 ? { sec: -whole, nsec: 0 } : { sec: -whole - 1, nsec: 1_000_000_000 - frac };
  return { sec: whole, nsec: frac };
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  S: 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

export class TarReader {
  private readonly src: ByteSource;
  /** bytes of the current entry's body still unread, and its padding */
  private remaining = 0;
  private padding = 0;
  private current: TarHeader | null = null;
  private globalPax = new Map<string, Buffer>();
  private sparsePrefixPending = false;

  constructor(source: AsyncIterable<Buffer | string>) {
    this.src = new ByteSource(source);
  }

  private async readBlock(what: string): Promise<Buffer> {
    if (!(await this.src.fill(TAR_BLOCK))) throw new FormatError(`tar truncated while reading ${what}`, 'ERR_TAR_TRUNCATED');
    return this.src.take(TAR_BLOCK);
  }

  private async readExact(n: number, entry: string): Promise<Buffer> {
    if (!(await this.src.fill(n))) throw new FormatError(`tar truncated in entry ${entry}`, 'ERR_TAR_TRUNCATED');
    return this.src.take(n);
  }

  private async skipBody(): Promise<void> {
    if (this.remaining > 0 || this.padding > 0) await this.readData(() => undefined);
  }

  /** the next entry's header, or null at the end-of-archive marker */
  async next(): Promise<TarHeader | null> {
    await this.skipBody();
    let pax: Map<string, Buffer> | null = null;
    let longName: string | null = null;
    let longLink: string | null = null;
    const prevName = this.current?.name ?? '(start of archive)';
    for (;;) {
      if (!(await this.src.fill(TAR_BLOCK))) {
        throw new FormatError(`tar truncated after ${prevName}: no end-of-archive marker`, 'ERR_TAR_TRUNCATED');
      }
      const h = this.src.take(TAR_BLOCK);
      if (h.every((b) => b === 0)) {
        // end-of-archive: one or two zero blocks; drain the rest of the stream
        while (await this.src.fill(1)) this.src.takeSome(1 << 20);
        this.current = null;
        return null;
      }
      const rawName = cString(h.subarray(0, 100));
      if (!headerChecksumOk(h)) throw new FormatError(`tar header checksum mismatch at ${rawName || prevName}`, 'ERR_TAR_FORMAT');
      const flag = String.fromCharCode(h[156]!);
      const size = parseNumber(h.subarray(124, 136), 'size', rawName);
      const padded = Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        if (size > 64 << 20) throw new FormatError(`tar entry ${rawName}: ${flag} header of ${size} bytes is too large`, 'ERR_TAR_FORMAT');
        const body = (await this.readExact(padded, rawName)).subarray(0, size);
        if (flag === 'x') pax = new Map([...(pax ?? []), ...parsePax(body, rawName)]);
        else if (flag === 'g') for (const [k, v] of parsePax(body, rawName)) this.globalPax.set(k, v);
        else if (flag === 'L') longName = cString(body);
        else longLink = cString(body);
        continue;
      }
      const type = TYPES[flag];
      const magic = h.subarray(257, 263).toString('latin1');
      const prefix = magic.startsWith('ustar') ? cString(h.subarray(345, 500)) : '';
      let name = longName ?? (prefix && magic === 'ustar\0' ? `${prefix}/${rawName}` : rawName);
      if (type === undefined) {
        throw new FormatError(`tar entry ${name}: unsupported type flag ${JSON.stringify(flag)}`, 'ERR_TAR_FORMAT');
      }
      const all = new Map([...this.globalPax, ...(pax ?? [])]);
      const str = (k: string) => all.get(k)?.toString('latin1');
      const num = (k: string, dflt: number) => {
        const v = str(k);
        if (v === undefined) return dflt;
        if (!/^\d+$/.test(v)) throw new FormatError(`tar entry ${name}: malformed pax ${k}`, 'ERR_TAR_FORMAT');
        return parseInt(v, 10);
      };
      if (str('path') !== undefined) name = str('path')!;
      let linkname = longLink ?? cString(h.subarray(157, 257));
      if (str('linkpath') !== undefined) linkname = str('linkpath')!;
      const mtimeOctal = parseNumber(h.subarray(136, 148), 'mtime', name);
      const header: TarHeader = {
        name,
        type,
        mode: parseNumber(h.subarray(100, 108), 'mode', name) & 0o7777,
        uid: num('uid', parseNumber(h.subarray(108, 116), 'uid', name)),
        gid: num('gid', parseNumber(h.subarray(116, 124), 'gid', name)),
        size: 0,
        mtime: str('mtime') !== undefined ? parsePaxTime(str('mtime')!, name) : { sec: mtimeOctal, nsec: 0 },
        linkname,
        devmajor: parseNumber(h.subarray(329, 337), 'devmajor', name),
        devminor: parseNumber(h.subarray(337, 345), 'devminor', name),
        xattrs: new Map(),
      };
      if (str('atime') !== undefined) header.atime = parsePaxTime(str('atime')!, name);
      if (str('ctime') !== undefined) header.ctime = parsePaxTime(str('ctime')!, name);
      for (const [k, v] of all) {
        if (k.startsWith('SCHILY.xattr.')) header.xattrs.set(k.slice('SCHILY.xattr.'.length), v);
        // bsdtar: URL-encoded name, base64 value
        else if (k.startsWith('LIBARCHIVE.xattr.')) {
          let xname: string;
          try {
            xname = Buffer.from(decodeURIComponent(k.slice('LIBARCHIVE.xattr.'.length)), 'utf8').toString('latin1');
          } catch {
            throw new FormatError(`tar entry ${name}: malformed pax key ${JSON.stringify(k)}`, 'ERR_TAR_FORMAT');
          }
          if (!header.xattrs.has(xname)) header.xattrs.set(xname, Buffer.from(v.toString('latin1'), 'base64'));
        }
      }
      // pre-POSIX archives mark directories only by a trailing slash on an old-style ('\0') file entry
      if (flag === '\0' && name.endsWith('/')) header.type = 'dir';
      const storedSize = num('size', size);
      header.size = storedSize;
      // like Go's archive/tar: only regular files have a body; other types ignore their size field
      const bodyBytes = header.type === 'file' ? storedSize : 0;
      this.remaining = bodyBytes;
      this.padding = Math.ceil(bodyBytes / TAR_BLOCK) * TAR_BLOCK - bodyBytes;
      this.sparsePrefixPending = false;
      const major = str('GNU.sparse.major');
      if (str('GNU.sparse.map') !== undefined || major !== undefined) {
        if (header.type !== 'file') throw new FormatError(`tar entry ${name}: sparse header on a non-file`, 'ERR_TAR_FORMAT');
        if (str('GNU.sparse.name') !== undefined) header.name = str('GNU.sparse.name')!;
        const realSize = num('GNU.sparse.realsize', num('GNU.sparse.size', -1));
        if (realSize < 0) throw new FormatError(`tar entry ${name}: sparse file without real size`, 'ERR_TAR_FORMAT');
        header.size = realSize;
        if (major === '1') {
          this.sparsePrefixPending = true;
          header.sparseMap = [];
        } else {
          const parts = (str('GNU.sparse.map') ?? '').split(',').filter((s) => s !== '');
          if (parts.length % 2 !== 0 || parts.some((p) => !/^\d+$/.test(p)))
            throw new FormatError(`tar entry ${name}: malformed GNU.sparse.map`, 'ERR_TAR_FORMAT');
          header.sparseMap = [];
          for (let i = 0; i < parts.length; i += 2)
            header.sparseMap.push({ offset: parseInt(parts[i]!, 10), length: parseInt(parts[i + 1]!, 10) });
        }
      }
      if (flag === 'S') await this.readOldGnuSparse(h, header);
      this.current = header;
      if (this.sparsePrefixPending) await this.readSparseMap1(header);
      if (header.sparseMap) validateSparseMap(header, this.remaining);
      return header;
    }
  }

  /**
   * Old GNU sparse ('S', what `tar --sparse` writes in its default format): four map entries in
   * the header, more in extension blocks that follow it (not counted in the size field).
   */
  private async readOldGnuSparse(block: Buffer, h: TarHeader): Promise<void> {
    const map: { offset: number; length: number }[] = [];
    const take = (b: Buffer, at: number, n: number) => {
      for (let i = 0; i < n; i++) {
        const e = b.subarray(at + i * 24, at + i * 24 + 24);
        if (e.every((x) => x === 0)) continue;
        const length = parseNumber(e.subarray(12, 24), 'sparse length', h.name);
        if (length > 0) map.push({ offset: parseNumber(e.subarray(0, 12), 'sparse offset', h.name), length });
      }
    };
    take(block, 386, 4);
    let extended = block[482] !== 0;
    h.size = parseNumber(block.subarray(483, 495), 'sparse real size', h.name);
    for (let n = 0; extended; n++) {
      if (n > 100_000) throw new FormatError(`tar entry ${h.name}: sparse map too large`, 'ERR_TAR_FORMAT');
      const ext = await this.readBlock(`the sparse map of ${h.name}`);
      take(ext, 0, 21);
      extended = ext[504] !== 0;
    }
    h.sparseMap = map;
  }

  /** pax sparse 1.0: the map is a block-padded list of decimal lines at the start of the body */
  private async readSparseMap1(h: TarHeader): Promise<void> {
    const lines: number[] = [];
    let want = -1;
    let buf = Buffer.alloc(0);
    let used = 0;
    while (want < 0 || lines.length < 1 + want * 2) {
      let nl = buf.indexOf(0x0a);
      while (nl < 0) {
        if (this.remaining < TAR_BLOCK) throw new FormatError(`tar entry ${h.name}: truncated sparse map`, 'ERR_TAR_FORMAT');
        buf = Buffer.concat([buf, await this.readExact(TAR_BLOCK, h.name)]);
        this.remaining -= TAR_BLOCK;
        used += TAR_BLOCK;
        nl = buf.indexOf(0x0a);
      }
      const s = buf.subarray(0, nl).toString('latin1');
      if (!/^\d+$/.test(s)) throw new FormatError(`tar entry ${h.name}: malformed sparse map`, 'ERR_TAR_FORMAT');
      lines.push(parseInt(s, 10));
      buf = buf.subarray(nl + 1);
      if (lines.length === 1) want = lines[0]!;
      if (want > 1_000_000) throw new FormatError(`tar entry ${h.name}: sparse map too large`, 'ERR_TAR_FORMAT');
    }
    void used;
    for (let i = 0; i < want; i++) h.sparseMap!.push({ offset: lines[1 + i * 2]!, length: lines[2 + i * 2]! });
  }

  /**
   * Streams the current entry's data to `sink` as (chunk, offset in the file). Sparse files
   * deliver only their data regions; holes are simply not delivered.
   */
  async readData(sink: (chunk: Buffer, fileOffset: number) => unknown): Promise<void> {
    const h = this.current;
    const name = h?.name ?? '(none)';
    const regions = h?.sparseMap ?? [{ offset: 0, length: this.remaining }];
    let r = 0;
    let inRegion = 0;
    while (this.remaining > 0) {
      if (!(await this.src.fill(1))) throw new FormatError(`tar truncated in entry ${name}`, 'ERR_TAR_TRUNCATED');
      let chunk = this.src.takeSome(this.remaining);
      this.remaining -= chunk.length;
      while (chunk.length > 0) {
        const reg = regions[r];
        if (!reg) throw new FormatError(`tar entry ${name}: data beyond its sparse map`, 'ERR_TAR_FORMAT');
        const n = Math.min(chunk.length, reg.length - inRegion);
        if (n > 0) {
          const p = sink(chunk.subarray(0, n), reg.offset + inRegion);
          if (p instanceof Promise) await p;
        }
        inRegion += n;
        chunk = chunk.subarray(n);
        if (inRegion >= reg.length) {
          r++;
          inRegion = 0;
        }
      }
    }
    if (this.padding > 0) {
      await this.readExact(this.padding, name);
      this.padding = 0;
    }
  }

  async close(): Promise<void> {
    await this.src.close();
  }
}

function validateSparseMap(h: TarHeader, bodyBytes: number): void {
  let end = 0;
  let total = 0;
  for (const { offset, length } of h.sparseMap!) {
    if (offset < end || offset + length > h.size)
      throw new FormatError(`tar entry ${h.name}: sparse map regions overlap or exceed the file`, 'ERR_TAR_FORMAT');
    end = offset + length;
    total += length;
  }
  if (total !== bodyBytes)
    throw new FormatError(`tar entry ${h.name}: sparse map covers ${total} bytes but the entry holds ${bodyBytes}`, 'ERR_TAR_FORMAT');
}
