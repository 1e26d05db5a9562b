/**
 * A push-driven tar walker: fed the uncompressed bytes of a layer chunk by chunk, it parses
 * each 512-byte header and skips bodies by arithmetic, never copying file data. It keeps no
 * reference to a chunk after push returns (a header or pax record cut by a chunk's end is
 * copied), so callers may reuse their buffers. It reads the
 * archive exactly as our consumer (src/disks/ext4/tar-reader.ts, like Go's archive/tar) does,
 * so no entry can hide from the checks in a place the consumer would parse as a header:
 *   - only regular files ('0', '\0', '7', 'S') have a body; other types ignore their size;
 *   - pax 'x' records apply to the next entry, 'g' records to all later ones ('path',
 *     'linkpath', 'size'); GNU 'L'/'K' carry long names;
 *   - old GNU sparse ('S') headers may be followed by extension blocks outside the size;
 *   - the archive ends at the first zero block; what follows is ignored, as the consumer does.
 * Names are kept as latin1 strings (the raw bytes), as the consumer keeps them.
 */
import { FormatError } from './errors.js';

export const TAR_BLOCK = 512;

/** ustar header fields (POSIX.1-1988 / pax): byte offset and length */
export const TarField = {
  name: [0, 100],
  size: [124, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  prefix: [345, 155],
} as const;

/** old GNU sparse header: the 'isextended' byte of the header and of each extension block */
const GNU_SPARSE_ISEXTENDED = 482;
const GNU_SPARSE_EXT_ISEXTENDED = 504;
/** bound on the metadata bodies we buffer (pax records, long names), as the consumer's */
export const MAX_META_BODY = 64 << 20;

const BODY_TYPES = new Set(['0', '\0', '7', 'S']);
const KNOWN_TYPES = new Set(['0', '\0', '7', 'S', '1', '2', '3', '4', '5', '6']);

export interface TarEntryInfo {
  name: string;
  /** the type flag character ('0' file, '1' hard link, '2' symlink, '5' directory, ...) */
  type: string;
  linkname: string;
  /** body bytes that follow the header */
  size: number;
}

function field(h: Buffer, f: readonly [number, number]): Buffer {
  return h.subarray(f[0], f[0] + f[1]);
}

function cString(b: Buffer): string {
  const z = b.indexOf(0);
  return (z < 0 ? b : b.subarray(0, z)).toString('latin1');
}

function parseNumber(b: Buffer, what: string, entry: string): number {
  if (b.length > 0 && (b[0]! & 0x80) !== 0) {
    // base-256 (GNU/star): big-endian with the top bit as marker; negative values are refused
    if (b[0] === 0xff) throw new FormatError(`tar entry ${entry}: negative ${what}`, 'ERR_BAD_TAR');
    let v = b[0]! & 0x7f;
    for (let i = 1; i < b.length; i++) v = v * 256 + b[i]!;
    if (!Number.isSafeInteger(v)) throw new FormatError(`tar entry ${entry}: ${what} too large`, 'ERR_BAD_TAR');
    return v;
  }
  const s = cString(b).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s))
    throw new FormatError(`tar entry ${entry}: ${what} is not an octal number (${JSON.stringify(s)})`, 'ERR_BAD_TAR');
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += h[i]!;
  // the checksum field counts as eight spaces
  for (let i = TarField.chksum[0]; i < TarField.chksum[0] + TarField.chksum[1]; i++) sum += 0x20 - h[i]!;
  const stored = cString(field(h, TarField.chksum)).trim();
  return /^[0-7]+$/.test(stored) && parseInt(stored, 8) === sum;
}

function isZeroBlock(h: Buffer): boolean {
  for (let i = 0; i < TAR_BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

/**
 * pax keys that decide an entry's name or body; the consumer names a pax sparse file (formats
 * 0.1 and 1.0: GNU.sparse.map or GNU.sparse.major present) by GNU.sparse.name, not by path
 */
const LOCATING_KEYS = new Set(['path', 'linkpath', 'size', 'GNU.sparse.name', 'GNU.sparse.map', 'GNU.sparse.major']);

/** "%d key=value\n" records (only the keys that locate entries are kept) */
function parsePax(body: Buffer, entry: string, into: Map<string, string>): void {
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const sp = body.indexOf(0x20, i);
    if (sp < 0) throw new FormatError(`tar entry ${entry}: malformed pax record`, 'ERR_BAD_TAR');
    const len = parseInt(body.subarray(i, sp).toString('latin1'), 10);
    if (!Number.isInteger(len) || len <= sp - i + 1 || i + len > body.length || body[i + len - 1] !== 0x0a) {
      throw new FormatError(`tar entry ${entry}: malformed pax record length`, 'ERR_BAD_TAR');
    }
    const rec = body.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new FormatError(`tar entry ${entry}: pax record without '='`, 'ERR_BAD_TAR');
    const key = rec.subarray(0, eq).toString('latin1');
    if (LOCATING_KEYS.has(key)) into.set(key, rec.subarray(eq + 1).toString('latin1'));
    i += len;
  }
}

type State =
  | { kind: 'header' }
  | { kind: 'body'; left: number }
  | { kind: 'meta'; flag: string; name: string; size: number; left: number; parts: Buffer[] }
  | { kind: 'sparse-ext'; bodyAfter: number }
  | { kind: 'end' };

export class TarWalker {
  private state: State = { kind: 'header' };
  /** a partial header block carried between chunks */
  private partial: Buffer[] = [];
  private partialLen = 0;
  private pax = new Map<string, string>();
  private readonly globalPax = new Map<string, string>();
  private longName: string | undefined;
  private longLink: string | undefined;
  private lastName = '(start of archive)';
  /**
   * pax bytes the consumer would hold at once: its 'x' records merge until the next entry and
   * its 'g' records stay for the rest of the layer, so a gzip bomb of many headers, each under
   * the per-header bound, would otherwise grow without limit in the ext4 writer
   */
  private paxBytes = 0;
  private globalPaxBytes = 0;
  entries = 0;

  constructor(
    private readonly what: string,
    private readonly onEntry: (e: TarEntryInfo) => void,
    /** the bound on pax bytes held at once (tests pass a small one: 64 MiB of records takes seconds to build) */
    private readonly maxPaxBytes = MAX_META_BODY,
  ) {}

  get ended(): boolean {
    return this.state.kind === 'end';
  }

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      const st = this.state;
      if (st.kind === 'end') return;
      if (st.kind === 'body') {
        const n = Math.min(st.left, chunk.length - off);
        st.left -= n;
        off += n;
        if (st.left === 0) this.state = { kind: 'header' };
        continue;
      }
      if (st.kind === 'meta') {
        const n = Math.min(st.left, chunk.length - off);
        st.parts.push(Buffer.from(chunk.subarray(off, off + n)));
        st.left -= n;
        off += n;
        if (st.left === 0) this.finishMeta(st);
        continue;
      }
      // a block: a header or a sparse extension block
      let block: Buffer;
      if (this.partialLen === 0 && chunk.length - off >= TAR_BLOCK) {
        block = chunk.subarray(off, off + TAR_BLOCK);
        off += TAR_BLOCK;
      } else {
        const n = Math.min(TAR_BLOCK - this.partialLen, chunk.length - off);
        this.partial.push(Buffer.from(chunk.subarray(off, off + n)));
        this.partialLen += n;
        off += n;
        if (this.partialLen < TAR_BLOCK) return;
        block = Buffer.concat(this.partial, TAR_BLOCK);
        this.partial = [];
        this.partialLen = 0;
      }
      if (st.kind === 'sparse-ext') {
        if (block[GNU_SPARSE_EXT_ISEXTENDED] === 0)
          this.state = st.bodyAfter > 0 ? { kind: 'body', left: st.bodyAfter } : { kind: 'header' };
        continue;
      }
      this.header(block);
    }
  }

  /** The input ended: anything but a finished archive is a truncation. */
  end(): void {
    const st = this.state;
    if (st.kind === 'end') return;
    if (st.kind === 'header' && this.partialLen === 0) {
      throw new FormatError(`${this.what}: tar truncated after ${this.lastName}: no end-of-archive marker`, 'ERR_BAD_TAR');
    }
    throw new FormatError(`${this.what}: tar truncated in entry ${this.lastName}`, 'ERR_BAD_TAR');
  }

  private header(h: Buffer): void {
    if (isZeroBlock(h)) {
      this.state = { kind: 'end' };
      return;
    }
    const rawName = cString(field(h, TarField.name));
    if (!checksumOk(h))
      throw new FormatError(`${this.what}: tar header checksum mismatch at ${JSON.stringify(rawName || this.lastName)}`, 'ERR_BAD_TAR');
    const flag = String.fromCharCode(h[TarField.typeflag[0]]!);
    const size = parseNumber(field(h, TarField.size), 'size', rawName);
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > MAX_META_BODY)
        throw new FormatError(`${this.what}: tar entry ${rawName}: '${flag}' header of ${size} bytes is too large`, 'ERR_BAD_TAR');
      const padded = Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
      const meta = { kind: 'meta' as const, flag, name: rawName, size, left: padded, parts: [] as Buffer[] };
      if (padded === 0) this.finishMeta(meta);
      else this.state = meta;
      return;
    }
    const magic = field(h, TarField.magic).toString('latin1');
    const prefix = magic === 'ustar\0' ? cString(field(h, TarField.prefix)) : '';
    let name = this.longName ?? (prefix ? `${prefix}/${rawName}` : rawName);
    let linkname = this.longLink ?? cString(field(h, TarField.linkname));
    const pax = this.globalPax.size ? new Map([...this.globalPax, ...this.pax]) : this.pax;
    if (pax.has('path')) name = pax.get('path')!;
    if (pax.has('linkpath')) linkname = pax.get('linkpath')!;
    if ((pax.has('GNU.sparse.map') || pax.has('GNU.sparse.major')) && pax.has('GNU.sparse.name')) name = pax.get('GNU.sparse.name')!;
    let stored = size;
    if (pax.has('size')) {
      const v = pax.get('size')!;
      if (!/^\d+$/.test(v)) throw new FormatError(`${this.what}: tar entry ${name}: malformed pax size`, 'ERR_BAD_TAR');
      stored = Number(v);
    }
    this.pax = new Map();
    this.paxBytes = 0;
    this.longName = undefined;
    this.longLink = undefined;
    this.lastName = name;
    // unknown types are read as files (Go does); the consumer refuses them later by name
    // pre-POSIX archives mark directories by a trailing slash on an old-style ('\0') entry
    const oldStyleDir = flag === '\0' && name.endsWith('/');
    const body = (BODY_TYPES.has(flag) || !KNOWN_TYPES.has(flag)) && !oldStyleDir ? stored : 0;
    this.entries++;
    this.onEntry({ name, type: flag, linkname, size: body });
    const padded = Math.ceil(body / TAR_BLOCK) * TAR_BLOCK;
    if (flag === 'S' && h[GNU_SPARSE_ISEXTENDED] !== 0) {
      // extension blocks come first, then the body; walk them, then skip the body
      this.state = { kind: 'sparse-ext', bodyAfter: padded };
      return;
    }
    this.state = padded > 0 ? { kind: 'body', left: padded } : { kind: 'header' };
  }

  private finishMeta(st: Extract<State, { kind: 'meta' }>): void {
    const body = Buffer.concat(st.parts).subarray(0, st.size);
    if (st.flag === 'x' || st.flag === 'g') {
      const total = st.flag === 'x' ? (this.paxBytes += st.size) : (this.globalPaxBytes += st.size);
      if (total > this.maxPaxBytes) {
        throw new FormatError(
          `${this.what}: tar entry ${st.name}: ${st.flag === 'x' ? 'pax records' : 'global pax records'} of more than ${this.maxPaxBytes} bytes`,
          'ERR_BAD_TAR',
        );
      }
    }
    if (st.flag === 'x') parsePax(body, st.name, this.pax);
    else if (st.flag === 'g') parsePax(body, st.name, this.globalPax);
    else if (st.flag === 'L') this.longName = cString(body);
    else this.longLink = cString(body);
    this.state = { kind: 'header' };
  }
}
