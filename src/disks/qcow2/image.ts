/**
 * A qcow2 differencing disk over a raw backing file (docs/interop/qcow2.txt).
 *
 * Consistency model (the order QEMU's metadata caches enforce):
 * - Guest data goes to its host cluster immediately; L2 tables, the L1 table and refcount
 *   blocks are changed in memory and written back by `flush` (or when a cache evicts a dirty
 *   table), in this order, with fsync between the steps:
 *     1. refcount blocks (counts only ever grow in memory), then refcount table entries that
 *        point to new blocks;
 *     2. fsync: data clusters and refcounts are durable;
 *     3. L2 tables;  fsync;
 *     4. L1 entries; fsync;
 *     5. refcount decrements of clusters the now-durable tables no longer reference.
 *   A crash between any two writes leaves references only to durable, counted clusters:
 *   at worst clusters are leaked (counted but unreferenced), never referenced but free.
 * - A failed write (I/O error) poisons the image: later calls throw and nothing more is
 *   written, so a half-done request can never reach the on-disk metadata.
 * - Every L1/L2/refcount-table entry is validated when used; a bad one raises a FormatError
 *   naming the entry and, on a writable image, sets the corrupt bit like QEMU.
 * - Like a disk with a volatile write cache: writes to newly allocated clusters become
 *   durable (and survive a crash) only at `flush`, so the virtio-blk device must offer
 *   VIRTIO_BLK_F_FLUSH and call flushSync for VIRTIO_BLK_T_FLUSH (or flush after each write
 *   to act write-through).
 * - One writer at a time: the file is not locked (Node has no fcntl locks); the runtime must
 *   not open a container's overlay twice for writing.
 */
import { ConflictError, FormatError, NotFoundError, NotImplementedError, TvmError } from '../../errors.js';
import { checkRange, checkWritable, writeZeroChunks, SyncBackedBlockBackend } from '../block-backend.js';
import { NodeFileIo, readZeroFilled, type FileIo } from '../raw.js';
import {
  COMPRESSION_ZLIB,
  HEADER_FIELDS,
  INCOMPAT_CORRUPT,
  INCOMPAT_DIRTY,
  MAX_CLUSTER_BITS,
  QCOW2_MAGIC,
  checkSupported,
  parseHeader,
  validateHeader,
  type Qcow2Header,
} from './header.js';
import { decodeL1, decodeL2, encodeOffset, readHalves, writeHalves, type L2Entry } from './entries.js';
import { refcountBlockEntries } from './refcount.js';
import { RefcountTable } from './refcount-table.js';
import { TableCache } from './table-cache.js';
import { resolveBackingPath, writeNewImage, type Qcow2CreateOptions } from './create.js';
import { checkQcow2 } from './check.js';
import { inflateCluster, unzstdCluster } from './compression.js';

export { resolveBackingPath, type Qcow2CreateOptions } from './create.js';

export interface Qcow2OpenOptions {
  readOnly?: boolean;
  /** L2 tables kept in memory (default 32: 16 GiB of disk at 64 KiB clusters) */
  l2CacheTables?: number;
  /** refcount blocks kept in memory (default 8) */
  refcountCacheBlocks?: number;
  /** opens the image file (tests interpose fault injection here); default: NodeFileIo */
  openFile?: (path: string, readOnly: boolean) => FileIo;
}

const ERR_CORRUPT = 'ERR_QCOW2_CORRUPT';
const ERR_UNSUPPORTED = 'ERR_QCOW2_UNSUPPORTED';
const ERR_FAILED = 'ERR_QCOW2_FAILED';

const hex = (n: number): string => `0x${n.toString(16)}`;

function unsupported(name: string, what: string): NotImplementedError {
  return new NotImplementedError(`qcow2 image ${name}: ${what} is not supported`, ERR_UNSUPPORTED);
}

export class Qcow2Image extends SyncBackedBlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  readonly clusterSize: number;
  get discardGranularity(): number {
    // version 2 has no zero flag: with a backing file, discarding would expose its data
    return this.backing !== undefined && this.header.version < 3 ? 0 : this.clusterSize;
  }
  /** absolute or cwd-relative path of the opened backing file, if any */
  readonly backingPath: string | undefined;

  private readonly name: string;
  private readonly io: FileIo;
  private readonly backing: FileIo | undefined;
  private readonly backingSize: number;
  private header: Qcow2Header;
  private readonly clusterBits: number;
  private readonly l2Entries: number;

  private readonly l1: Uint8Array;
  private readonly dirtyL1 = new Set<number>();
  private readonly l2Tables: TableCache;
  private readonly refcounts: RefcountTable;
  /** host clusters whose count drops once the tables that dropped them are durable */
  private pendingFrees: number[] = [];
  /** offsets of L2 tables: data must never alias them */
  private readonly l2Offsets = new Set<number>();

  private readonly cowBuf: Buffer;
  private compressedCache: { offset: number; data: Uint8Array } | undefined;
  private failed: Error | undefined;
  private closed = false;

  private constructor(
    name: string,
    io: FileIo,
    header: Qcow2Header,
    readOnly: boolean,
    backing: { io: FileIo; path: string } | undefined,
    opts: Qcow2OpenOptions,
  ) {
    super();
    this.name = name;
    this.io = io;
    this.header = header;
    this.readOnly = readOnly;
    this.size = header.size;
    this.clusterBits = header.clusterBits;
    this.clusterSize = 2 ** header.clusterBits;
    this.l2Entries = this.clusterSize / 8;
    this.backing = backing?.io;
    this.backingPath = backing?.path;
    this.backingSize = backing ? backing.io.size() : 0;
    this.l2Tables = new TableCache(opts.l2CacheTables ?? 32, this.clusterSize, io);
    this.cowBuf = Buffer.alloc(this.clusterSize);

    this.l1 = new Uint8Array(header.l1Size * 8);
    if (header.l1Size > 0) this.readExact(this.l1, header.l1TableOffset, 'L1 table');
    const rt = new Uint8Array(header.refcountTableClusters * this.clusterSize);
    this.readExact(rt, header.refcountTableOffset, 'refcount table');
    this.refcounts = new RefcountTable({
      io,
      clusterSize: this.clusterSize,
      blockEntries: refcountBlockEntries(header.clusterBits, header.refcountOrder),
      refcountOrder: header.refcountOrder,
      table: rt,
      tableOffset: header.refcountTableOffset,
      tableClusters: header.refcountTableClusters,
      fileEnd: io.size(),
      cacheBlocks: opts.refcountCacheBlocks ?? 8,
      corrupt: (msg) => this.corrupt(msg),
      unsupported: (what) => unsupported(this.name, what),
      onTableMoved: (offset, clusters) => {
        this.header = { ...this.header, refcountTableOffset: offset, refcountTableClusters: clusters };
      },
    });
    for (let i = 0; i < header.l1Size; i++) {
      const [hi, lo] = readHalves(this.l1, i);
      const e = decodeL1(hi, lo);
      if (e.offset !== 0 && !e.reservedBits) this.l2Offsets.add(e.offset);
    }
  }

  // ---------------------------------------------------------------------------------------
  // create / open

  /** Creates a new image (refuses an existing path), written whole to a temp name and renamed. */
  static createSync(imagePath: string, opts: Qcow2CreateOptions): Qcow2Image {
    writeNewImage(imagePath, opts);
    return Qcow2Image.openSync(imagePath, { readOnly: false });
  }

  static async create(imagePath: string, opts: Qcow2CreateOptions): Promise<Qcow2Image> {
    return Qcow2Image.createSync(imagePath, opts);
  }

  /**
   * Opens an image. A writable open of an image whose dirty bit is set (a writer using lazy
   * refcounts stopped without closing it) first rebuilds its refcounts, as the spec asks and
   * QEMU does; pointer corruption found on the way is refused, never repaired.
   */
  static openSync(imagePath: string, opts: Qcow2OpenOptions = {}): Qcow2Image {
    return Qcow2Image.openOnce(imagePath, opts, true);
  }

  private static openOnce(imagePath: string, opts: Qcow2OpenOptions, mayRepair: boolean): Qcow2Image {
    const readOnly = opts.readOnly ?? false;
    const io = opts.openFile ? opts.openFile(imagePath, readOnly) : NodeFileIo.open(imagePath, { readOnly });
    let backing: { io: FileIo; path: string } | undefined;
    try {
      const fileSize = io.size();
      let head = new Uint8Array(Math.min(fileSize, 65536));
      io.pread(head, 0);
      const view = new DataView(head.buffer);
      if (head.length >= 24 && view.getUint32(0) === QCOW2_MAGIC) {
        const cs = 2 ** Math.min(view.getUint32(HEADER_FIELDS.cluster_bits.offset), MAX_CLUSTER_BITS);
        if (cs > head.length && fileSize > head.length) {
          head = new Uint8Array(Math.min(cs, fileSize));
          io.pread(head, 0);
        } else if (cs < head.length) head = head.subarray(0, cs);
      }
      const header = parseHeader(head, imagePath);
      validateHeader(header, fileSize, imagePath);
      if (
        !readOnly &&
        mayRepair &&
        (header.incompatibleFeatures & INCOMPAT_DIRTY) !== 0n &&
        (header.incompatibleFeatures & INCOMPAT_CORRUPT) === 0n
      ) {
        checkSupported(header, imagePath, true);
        io.close();
        const r = checkQcow2(imagePath, { repair: 'all', ...(opts.openFile ? { openFile: opts.openFile } : {}) });
        if (r.corruptions.length > 0) {
          throw new FormatError(
            `qcow2 image ${imagePath}: dirty image could not be repaired: ${r.corruptions.slice(0, 3).join('; ')}`,
            ERR_CORRUPT,
          );
        }
        return Qcow2Image.openOnce(imagePath, opts, false);
      }
      checkSupported(header, imagePath, readOnly);
      if (header.backingFile !== undefined) {
        if (header.backingFormat !== undefined && header.backingFormat !== 'raw') {
          throw unsupported(imagePath, `backing format '${header.backingFormat}' (only raw backing files)`);
        }
        const bpath = resolveBackingPath(imagePath, header.backingFile);
        let bio: FileIo;
        try {
          bio = NodeFileIo.open(bpath, { readOnly: true });
        } catch (e) {
          if (e instanceof NotFoundError) {
            throw new NotFoundError(`qcow2 image ${imagePath}: backing file ${bpath} does not exist`, 'ERR_DISK_NOT_FOUND');
          }
          throw e;
        }
        backing = { io: bio, path: bpath };
        if (header.backingFormat === undefined) {
          // No format recorded: never guess qcow2 (a raw disk's content must not pick its format).
          const magic = new Uint8Array(4);
          if (bio.pread(magic, 0) === 4 && new DataView(magic.buffer).getUint32(0) === QCOW2_MAGIC) {
            throw unsupported(imagePath, `a qcow2 backing file without a recorded format (${bpath})`);
          }
        }
      }
      const img = new Qcow2Image(imagePath, io, header, readOnly, backing, opts);
      img.refcounts.validate();
      if (!readOnly && header.autoclearFeatures !== 0n) img.clearAutoclear();
      return img;
    } catch (e) {
      backing?.io.close();
      io.close();
      throw e;
    }
  }

  static async open(imagePath: string, opts: Qcow2OpenOptions = {}): Promise<Qcow2Image> {
    return Qcow2Image.openSync(imagePath, opts);
  }

  /** A copy of the parsed header as it is on disk now. */
  getHeader(): Qcow2Header {
    return { ...this.header, extensions: [...this.header.extensions] };
  }

  get path(): string {
    return this.name;
  }

  // ---------------------------------------------------------------------------------------
  // BlockBackend

  readSync(buf: Uint8Array, offset: number): void {
    checkRange(this.name, this.size, offset, buf.length);
    this.checkUsable();
    const cs = this.clusterSize;
    let done = 0;
    // Contiguous pieces of the same source are read with one pread.
    let runKind: 'host' | 'backing' | 'none' = 'none';
    let runSrc = 0;
    let runBuf = 0;
    let runLen = 0;
    const flushRun = (): void => {
      if (runLen === 0) return;
      const dst = buf.subarray(runBuf, runBuf + runLen);
      if (runKind === 'host') readZeroFilled(this.io, dst, runSrc);
      else this.readBacking(dst, runSrc);
      runLen = 0;
    };
    while (done < buf.length) {
      const pos = offset + done;
      const inOff = pos % cs;
      const n = Math.min(cs - inOff, buf.length - done);
      const e = this.lookup(pos);
      let kind: 'host' | 'backing' | 'zero' | 'compressed';
      let src = 0;
      if (e === undefined || e.kind === 'unallocated') {
        kind = this.backing && pos < this.backingSize ? 'backing' : 'zero';
        src = pos;
      } else if (e.kind === 'normal') {
        kind = 'host';
        src = e.offset + inOff;
      } else if (e.kind === 'compressed') kind = 'compressed';
      else kind = 'zero';

      if (
        (kind === 'host' || kind === 'backing') &&
        runKind === kind &&
        runLen > 0 &&
        runSrc + runLen === src &&
        runBuf + runLen === done
      ) {
        runLen += n;
      } else {
        flushRun();
        if (kind === 'host' || kind === 'backing') {
          runKind = kind;
          runSrc = src;
          runBuf = done;
          runLen = n;
        } else if (kind === 'zero') {
          buf.fill(0, done, done + n);
        } else {
          const data = this.readCompressed(e!, pos);
          buf.set(data.subarray(inOff, inOff + n), done);
        }
      }
      done += n;
    }
    flushRun();
    this.trimCaches();
  }

  writeSync(buf: Uint8Array, offset: number): void {
    checkWritable(this.name, this.readOnly);
    checkRange(this.name, this.size, offset, buf.length);
    this.checkUsable();
    const cs = this.clusterSize;
    let done = 0;
    // Pieces that land in contiguous host clusters go out in one pwrite.
    let runHost = 0;
    let runBuf = 0;
    let runLen = 0;
    const flushRun = (): void => {
      if (runLen === 0) return;
      this.io.pwrite(buf.subarray(runBuf, runBuf + runLen), runHost);
      runLen = 0;
    };
    try {
      while (done < buf.length) {
        const pos = offset + done;
        const inOff = pos % cs;
        const n = Math.min(cs - inOff, buf.length - done);
        const host = this.prepareWrite(pos, inOff, buf.subarray(done, done + n));
        if (host >= 0) {
          if (runLen > 0 && runHost + runLen === host + inOff && runBuf + runLen === done) runLen += n;
          else {
            flushRun();
            runHost = host + inOff;
            runBuf = done;
            runLen = n;
          }
        }
        done += n;
      }
      flushRun();
    } catch (e) {
      if (e instanceof TvmError && e.code === ERR_UNSUPPORTED) {
        // Refused before touching this cluster: entries already pointed at clusters get their data.
        try {
          flushRun();
        } catch (e2) {
          this.fail(e2);
          throw e2;
        }
        throw e;
      }
      this.fail(e);
      throw e;
    }
    this.trimCaches();
  }

  flushSync(): void {
    if (this.readOnly) return;
    this.checkUsable();
    try {
      this.writeback();
    } catch (e) {
      this.fail(e);
      throw e;
    }
  }

  /**
   * Drops whole clusters inside the range: they read as zeros afterwards (zero flag when a
   * backing file could show through, else unallocated) and their host clusters are freed.
   * Partial clusters at the ends are left as they are (discard is advisory).
   */
  discardSync(offset: number, length: number): void {
    checkWritable(this.name, this.readOnly);
    checkRange(this.name, this.size, offset, length);
    this.checkUsable();
    const cs = this.clusterSize;
    const first = Math.ceil(offset / cs);
    const end = Math.floor((offset + length) / cs);
    const useZeroFlag = this.backing !== undefined;
    this.compressedCache = undefined; // freed compressed clusters may be reused
    if (useZeroFlag && this.header.version < 3) return; // v2 has no zero flag: the backing file would show through
    try {
      for (let gc = first; gc < end; gc++) {
        const l1i = Math.floor(gc / this.l2Entries);
        const l2i = gc % this.l2Entries;
        const [l1hi, l1lo] = readHalves(this.l1, l1i);
        if (decodeL1(l1hi, l1lo).offset === 0 && !useZeroFlag) {
          gc = (l1i + 1) * this.l2Entries - 1; // the whole L2 range already reads zeros
          continue;
        }
        const { offset: l2Off, table } = this.l2ForWrite(l1i);
        const [hi, lo] = readHalves(table, l2i);
        const e = this.checkedL2(decodeL2(hi, lo, this.clusterBits), l2Off, l2i, gc * cs);
        if (e.kind === 'zero' || (e.kind === 'unallocated' && !useZeroFlag)) continue;
        if (e.kind === 'normal' || e.kind === 'zero-alloc') this.pendingFrees.push(e.offset);
        else if (e.kind === 'compressed') {
          const firstHost = Math.floor(e.offset / cs);
          const lastHost = Math.floor((e.offset + e.compressedSize - 1) / cs);
          for (let c = firstHost; c <= lastHost; c++) this.pendingFrees.push(c * cs);
        }
        if (useZeroFlag) writeHalves(table, l2i, 0, 1);
        else writeHalves(table, l2i, 0, 0);
        this.l2Tables.markDirty(l2Off);
      }
    } catch (e) {
      if (!(e instanceof TvmError && e.code === ERR_UNSUPPORTED)) this.fail(e);
      throw e;
    }
    this.trimCaches();
  }

  /**
   * Makes the range read as zeros: whole clusters are unmapped like `discard` (zero flag, or
   * unallocated when nothing could show through), partial ones get zeros written.
   */
  writeZeroesSync(offset: number, length: number): void {
    checkWritable(this.name, this.readOnly);
    checkRange(this.name, this.size, offset, length);
    this.checkUsable();
    const cs = this.clusterSize;
    const first = Math.ceil(offset / cs) * cs;
    const end = Math.floor((offset + length) / cs) * cs;
    const write = (b: Uint8Array, o: number): void => this.writeSync(b, o);
    if (end <= first) {
      writeZeroChunks(write, offset, length);
      return;
    }
    if (first > offset) writeZeroChunks(write, offset, first - offset);
    if (this.backing !== undefined && this.header.version < 3) writeZeroChunks(write, first, end - first);
    else this.discardSync(first, end - first);
    if (offset + length > end) writeZeroChunks(write, end, offset + length - end);
  }

  closeSync(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (!this.readOnly && this.failed === undefined) this.writeback();
    } finally {
      this.backing?.close();
      this.io.close();
    }
  }

  // ---------------------------------------------------------------------------------------
  // mapping

  /** The L2 entry for a guest offset, or undefined when its whole L2 table is unallocated. */
  private lookup(pos: number): L2Entry | undefined {
    const gc = Math.floor(pos / this.clusterSize);
    const l1i = Math.floor(gc / this.l2Entries);
    const l2i = gc % this.l2Entries;
    const l2Off = this.l1Entry(l1i);
    if (l2Off === 0) return undefined;
    const table = this.loadL2(l2Off, l1i);
    const [hi, lo] = readHalves(table, l2i);
    return this.checkedL2(decodeL2(hi, lo, this.clusterBits), l2Off, l2i, gc * this.clusterSize);
  }

  /** Validated L2 table offset from L1 entry `l1i` (0 = unallocated). */
  private l1Entry(l1i: number): number {
    const [hi, lo] = readHalves(this.l1, l1i);
    const e = decodeL1(hi, lo);
    if (e.offset === 0 && !e.reservedBits) return 0;
    const problem = e.reservedBits ? 'has reserved bits set' : this.hostClusterProblem(e.offset, true);
    if (problem)
      throw this.corrupt(`L1 entry ${l1i} (L2 table for guest offset ${hex(l1i * this.l2Entries * this.clusterSize)}) ${problem}`);
    return e.offset;
  }

  private checkedL2(e: L2Entry, l2Off: number, l2i: number, guestOff: number): L2Entry {
    let problem: string | undefined;
    if (e.reservedBits) problem = 'has reserved bits set';
    else if (e.kind === 'normal' || e.kind === 'zero-alloc') problem = this.hostClusterProblem(e.offset, false);
    else if (e.kind === 'compressed') {
      if (e.offset < this.clusterSize || e.offset >= this.refcounts.fileEnd) {
        problem = `points to compressed data at ${hex(e.offset)} outside the file (${this.refcounts.fileEnd} bytes)`;
      }
    } else if (e.copied && e.kind === 'unallocated') {
      problem = 'has host offset 0 with the copied flag (only valid with an external data file)';
    }
    if (problem) throw this.corrupt(`L2 entry ${l2i} of the L2 table at ${hex(l2Off)} (guest offset ${hex(guestOff)}) ${problem}`);
    return e;
  }

  /**
   * Why a host cluster offset taken from a table is unusable, or undefined when it is fine:
   * it must be aligned, inside the file and not any metadata's cluster.
   */
  private hostClusterProblem(off: number, isL2: boolean): string | undefined {
    const cs = this.clusterSize;
    if (off % cs !== 0) return `points to ${hex(off)}, not aligned to the cluster size ${cs}`;
    if (off >= this.refcounts.fileEnd) return `points to ${hex(off)}, past the end of the file (${this.refcounts.fileEnd} bytes)`;
    const h = this.header;
    const end = off + cs;
    let meta: string | undefined;
    if (off < cs) meta = 'the header';
    else if (h.l1Size > 0 && off < h.l1TableOffset + h.l1Size * 8 && h.l1TableOffset < end) meta = 'the L1 table';
    else if (off < h.refcountTableOffset + h.refcountTableClusters * cs && h.refcountTableOffset < end) meta = 'the refcount table';
    else if (this.refcounts.isBlock(off)) meta = 'a refcount block';
    else if (!isL2 && this.l2Offsets.has(off)) meta = 'an L2 table';
    return meta ? `points to ${hex(off)}, which overlaps ${meta}` : undefined;
  }

  private loadL2(l2Off: number, l1i: number): Uint8Array {
    return (
      this.l2Tables.get(l2Off) ??
      this.l2Tables.load(l2Off, () => this.corrupt(`L1 entry ${l1i}: L2 table at ${hex(l2Off)} is cut short by the end of the file`))
    );
  }

  /** The L2 table for `l1i`, allocated if missing, owned alone (copied flag) so it can change. */
  private l2ForWrite(l1i: number): { offset: number; table: Uint8Array } {
    const l2Off = this.l1Entry(l1i);
    if (l2Off === 0) {
      const off = this.refcounts.alloc();
      const table = this.l2Tables.create(off);
      this.l2Offsets.add(off);
      const [hi, lo] = encodeOffset(off, true);
      writeHalves(this.l1, l1i, hi, lo);
      this.dirtyL1.add(l1i);
      return { offset: off, table };
    }
    const [hi, lo] = readHalves(this.l1, l1i);
    if (!decodeL1(hi, lo).copied) {
      const rc = this.refcounts.get(l2Off);
      if (rc !== 1) throw unsupported(this.name, `writing through a shared L2 table at ${hex(l2Off)} (refcount ${rc})`);
      const [nhi, nlo] = encodeOffset(l2Off, true);
      writeHalves(this.l1, l1i, nhi, nlo);
      this.dirtyL1.add(l1i);
    }
    return { offset: l2Off, table: this.loadL2(l2Off, l1i) };
  }

  /**
   * Makes guest cluster of `pos` writable. Returns the host cluster offset the caller writes
   * `data` into, or -1 when this already wrote a whole new cluster (copy-on-write merge).
   */
  private prepareWrite(pos: number, inOff: number, data: Uint8Array): number {
    const cs = this.clusterSize;
    const gc = Math.floor(pos / cs);
    const l1i = Math.floor(gc / this.l2Entries);
    const l2i = gc % this.l2Entries;
    const { offset: l2Off, table } = this.l2ForWrite(l1i);
    const [hi, lo] = readHalves(table, l2i);
    const e = this.checkedL2(decodeL2(hi, lo, this.clusterBits), l2Off, l2i, gc * cs);
    let source: 'backing' | 'zeros' = 'backing';
    switch (e.kind) {
      case 'normal': {
        if (e.copied) return e.offset;
        const rc = this.refcounts.get(e.offset);
        if (rc !== 1) throw unsupported(this.name, `writing to a shared cluster at ${hex(e.offset)} (refcount ${rc})`);
        const [nhi, nlo] = encodeOffset(e.offset, true);
        writeHalves(table, l2i, nhi, nlo);
        this.l2Tables.markDirty(l2Off);
        return e.offset;
      }
      case 'compressed':
        throw unsupported(this.name, `writing to a compressed cluster (guest offset ${hex(gc * cs)})`);
      case 'zero-alloc':
        if (e.copied) {
          // Preallocated and ours alone: fill it (zeros around the data), then drop the zero flag.
          this.writeMerged(e.offset, gc, inOff, data, 'zeros');
          const [nhi, nlo] = encodeOffset(e.offset, true);
          writeHalves(table, l2i, nhi, nlo);
          this.l2Tables.markDirty(l2Off);
          return -1;
        }
        this.pendingFrees.push(e.offset);
        source = 'zeros';
        break;
      case 'zero':
        source = 'zeros';
        break;
      case 'unallocated':
        source = 'backing';
        break;
    }
    const host = this.refcounts.alloc();
    const [nhi, nlo] = encodeOffset(host, true);
    let ret = host;
    if (data.length !== cs) {
      this.writeMerged(host, gc, inOff, data, source);
      ret = -1;
    }
    writeHalves(table, l2i, nhi, nlo);
    this.l2Tables.markDirty(l2Off);
    return ret;
  }

  /** Writes a whole cluster: `data` at `inOff`, the rest from the backing file or zeros. */
  private writeMerged(host: number, gc: number, inOff: number, data: Uint8Array, source: 'backing' | 'zeros'): void {
    const cs = this.clusterSize;
    const c = this.cowBuf;
    const guest = gc * cs;
    if (source === 'backing' && this.backing && guest < this.backingSize) this.readBacking(c, guest);
    else c.fill(0);
    c.set(data, inOff);
    this.io.pwrite(c, host);
  }

  private readBacking(dst: Uint8Array, guestOff: number): void {
    // Reads past the end of the backing file (or of the image's own size) are zeros.
    const avail = Math.max(0, Math.min(dst.length, this.backingSize - guestOff));
    if (avail > 0) readZeroFilled(this.backing!, dst.subarray(0, avail), guestOff);
    if (avail < dst.length) dst.fill(0, avail);
  }

  private readCompressed(e: L2Entry, pos: number): Uint8Array {
    if (this.compressedCache?.offset === e.offset) return this.compressedCache.data;
    const raw = Buffer.alloc(e.compressedSize);
    readZeroFilled(this.io, raw, e.offset);
    let data: Uint8Array;
    try {
      // The descriptor rounds up to whole sectors, so other clusters' data may follow ours.
      data =
        this.header.compressionType === COMPRESSION_ZLIB ? inflateCluster(raw, this.clusterSize) : unzstdCluster(raw, this.clusterSize);
    } catch (err) {
      throw this.corrupt(`compressed cluster at ${hex(e.offset)} (guest offset ${hex(pos)}) does not inflate: ${(err as Error).message}`);
    }
    if (data.length !== this.clusterSize) {
      throw this.corrupt(
        `compressed cluster at ${hex(e.offset)} (guest offset ${hex(pos)}) inflates to ${data.length} bytes, not ${this.clusterSize}`,
      );
    }
    this.compressedCache = { offset: e.offset, data };
    return data;
  }

  // ---------------------------------------------------------------------------------------
  // write-back, caches, failure

  /** The ordered metadata write-back described at the top of this file. */
  private writeback(): void {
    const io = this.io;
    this.refcounts.writeBack();
    io.fsync();
    if (this.l2Tables.writeDirty()) io.fsync();
    if (this.dirtyL1.size > 0) {
      for (const i of [...this.dirtyL1].sort((a, b) => a - b))
        io.pwrite(this.l1.subarray(i * 8, i * 8 + 8), this.header.l1TableOffset + i * 8);
      this.dirtyL1.clear();
      io.fsync();
    }
    if (this.pendingFrees.length > 0) {
      const frees = this.pendingFrees;
      this.pendingFrees = [];
      for (const off of frees) this.refcounts.add(off, -1);
      this.refcounts.writeBlocks();
    }
  }

  /** Evicts least recently used tables once a request is complete (never in the middle of one). */
  private trimCaches(): void {
    try {
      while (this.l2Tables.overCapacity()) {
        const k = this.l2Tables.oldest();
        // a dirty L2 table may only reach the disk after the refcounts it relies on: all of step 1-5
        if (this.l2Tables.isDirty(k)) this.writeback();
        this.l2Tables.drop(k);
      }
      this.refcounts.trim();
    } catch (e) {
      this.fail(e);
      throw e;
    }
  }

  private readExact(buf: Uint8Array, off: number, what: string): void {
    if (this.io.pread(buf, off) !== buf.length) throw this.corrupt(`${what} at ${hex(off)} is cut short by the end of the file`);
  }

  private checkUsable(): void {
    if (this.closed) throw new ConflictError(`qcow2 image ${this.name} is closed`, 'ERR_DISK_CLOSED');
    if (this.failed) {
      throw new TvmError(ERR_FAILED, `qcow2 image ${this.name} failed earlier and accepts no more requests: ${this.failed.message}`, 500, {
        cause: this.failed,
      });
    }
  }

  private fail(e: unknown): void {
    this.failed ??= e instanceof Error ? e : new Error(String(e));
  }

  /** A corruption error; on a writable image also sets the corrupt bit and stops all writing. */
  private corrupt(msg: string): FormatError {
    const err = new FormatError(`qcow2 image ${this.name}: ${msg}`, ERR_CORRUPT);
    if (!this.readOnly && this.header?.version === 3 && this.failed === undefined && !this.closed && this.io) {
      try {
        const bits = Buffer.alloc(8);
        bits.writeBigUInt64BE(this.header.incompatibleFeatures | INCOMPAT_CORRUPT);
        this.io.pwrite(bits, HEADER_FIELDS.incompatible_features.offset);
        this.io.fsync();
        this.header = { ...this.header, incompatibleFeatures: this.header.incompatibleFeatures | INCOMPAT_CORRUPT };
      } catch {
        // the error we are about to throw says more than a failed marking would
      }
    }
    if (!this.readOnly) this.fail(err);
    return err;
  }

  /** Unknown (and bitmap) autoclear bits must be cleared before writing: we keep no bitmaps. */
  private clearAutoclear(): void {
    const zero = Buffer.alloc(8);
    this.io.pwrite(zero, HEADER_FIELDS.autoclear_features.offset);
    this.io.fsync();
    this.header = { ...this.header, autoclearFeatures: 0n };
  }
}
