/**
 * gzip (RFC 1952) decoding through zlib, bound with koffi, into output memory that is reused
 * (one buffer per thread, shared by its streams).
 *
 * Why not node:zlib: its streams inflate on libuv's thread pool and hand every output chunk
 * over in a freshly allocated Buffer. A pull inflates hundreds of megabytes, so that meant
 * a thread hop per chunk, garbage for the GC and, on a VM, a page fault for every fresh 4 KiB
 * page (15 us each on a PVM guest: more than the inflate itself). Here inflate runs
 * synchronously on the calling thread (the pull runs it on a worker thread), writing into the
 * same memory each time; consumers get views that are valid only during their callback.
 *
 * Semantics follow Go's gzip.Reader (what dockerd uses): concatenated members are one stream,
 * each member's CRC-32 and ISIZE are checked (zlib does it with windowBits 15 + 16), anything
 * after a member that is not another member is an error, and so is input that ends inside one.
 */
import koffi from 'koffi';
import { FormatError } from '../errors.js';

/**
 * struct z_stream_s from zlib.h on LP64 (x86_64, aarch64): offsets and size. zlib checks the
 * size itself (inflateInit2_ answers Z_VERSION_ERROR for a different sizeof(z_stream)).
 */
export const Z_STREAM = {
  next_in: 0,
  avail_in: 8,
  total_in: 16,
  next_out: 24,
  avail_out: 32,
  total_out: 40,
  msg: 48,
  state: 56,
  zalloc: 64,
  zfree: 72,
  opaque: 80,
  data_type: 88,
  adler: 96,
  reserved: 104,
  SIZE: 112,
} as const;

/** zlib.h return codes and flush values */
export const Z_OK = 0;
export const Z_STREAM_END = 1;
export const Z_NEED_DICT = 2;
export const Z_STREAM_ERROR = -2;
export const Z_DATA_ERROR = -3;
export const Z_MEM_ERROR = -4;
export const Z_BUF_ERROR = -5;
export const Z_VERSION_ERROR = -6;
export const Z_NO_FLUSH = 0;
/** 32 KiB window (the maximum), +16: expect a gzip header and trailer, not zlib's */
export const GZIP_WINDOW_BITS = 15 + 16;

/** output buffer per stream: large enough that the per-call overhead vanishes, small enough to stay in L2 */
export const GUNZIP_OUT_BYTES = 256 * 1024;

interface Zlib {
  version: string;
  inflateInit2_: (strm: bigint, windowBits: number, version: string, streamSize: number) => number;
  inflate: (strm: bigint, flush: number) => number;
  inflateReset: (strm: bigint) => number;
  inflateEnd: (strm: bigint) => number;
}

let zlib: Zlib | undefined;
/**
 * Output memory shared by this thread's streams: a write fills and hands out its contents
 * before returning, so the next write (of any stream) may reuse it. A write made from inside
 * another's onData gets memory of its own.
 */
let sharedOut: Buffer | undefined;
let sharedOutBusy = false;

/**
 * Binds the zlib this process already has, on first use. Node links zlib in and exports its
 * symbols (for addons), so loading the system's libz.so.1 beside it would be wrong: that
 * library's internal calls bind to Node's exported functions, whose inflate state is laid out
 * differently, and the heap is corrupted. A Node built against a shared libz exports nothing
 * of its own, and then libz.so.1 is the one in use.
 */
function bind(): Zlib {
  if (zlib) return zlib;
  let lib: koffi.IKoffiLib;
  try {
    lib = koffi.load(null);
    lib.func('int inflateEnd(uintptr_t strm)');
  } catch {
    try {
      lib = koffi.load('libz.so.1');
    } catch (e) {
      throw new FormatError(`cannot load zlib (not in node, no libz.so.1; apt-get install zlib1g): ${(e as Error).message}`, 'ERR_NO_ZLIB');
    }
  }
  // the stream is passed by address: it must stay where it is (zlib keeps a pointer back to it)
  zlib = {
    version: (lib.func('const char *zlibVersion(void)') as () => string)(),
    inflateInit2_: lib.func('int inflateInit2_(uintptr_t strm, int windowBits, const char *version, int stream_size)'),
    inflate: lib.func('int inflate(uintptr_t strm, int flush)'),
    inflateReset: lib.func('int inflateReset(uintptr_t strm)'),
    inflateEnd: lib.func('int inflateEnd(uintptr_t strm)'),
  };
  return zlib;
}

/**
 * A gzip stream being decoded. `write` and `end` call `onData` with views of one reused buffer,
 * valid only until `onData` returns. Always `close()` it (also after an error): zlib's state
 * lives outside the JS heap.
 */
export class Gunzip {
  private readonly z = bind();
  /** the z_stream, outside the JS heap: it must not move (zlib keeps a pointer back to it) */
  private readonly strmPtr: unknown = koffi.alloc('uint8_t', Z_STREAM.SIZE);
  private readonly strm = new DataView(koffi.view(this.strmPtr, Z_STREAM.SIZE));
  private readonly strmAddr = koffi.address(this.strmPtr);

  private open = false;
  /** between members: the last one ended and no byte of the next has been seen */
  private atMemberEnd = false;
  private failure: FormatError | undefined;
  bytesOut = 0;

  constructor(
    private readonly what: string,
    private readonly onData: (chunk: Buffer) => void,
  ) {
    // zalloc, zfree, opaque = Z_NULL: zlib's own malloc and free
    new Uint8Array(this.strm.buffer).fill(0);
    const rc = this.z.inflateInit2_(this.strmAddr, GZIP_WINDOW_BITS, this.z.version, Z_STREAM.SIZE);
    if (rc !== Z_OK) {
      koffi.free(this.strmPtr);
      throw new FormatError(`${what}: zlib ${this.z.version} refused to start (code ${rc})`, 'ERR_BAD_COMPRESSION');
    }
    this.open = true;
  }

  private fail(detail: string): FormatError {
    this.failure = new FormatError(`${this.what}: corrupt gzip stream: ${detail}`, 'ERR_BAD_COMPRESSION');
    this.close();
    return this.failure;
  }

  /** Decodes all of `input`; throws a FormatError for bad data. */
  write(input: Uint8Array): void {
    if (this.failure) throw this.failure;
    if (!this.open) throw new FormatError(`${this.what}: gzip stream written after it was closed`, 'ERR_BAD_COMPRESSION');
    if (input.byteLength === 0) return;
    const s = this.strm;
    s.setBigUint64(Z_STREAM.next_in, koffi.address(input), true);
    s.setUint32(Z_STREAM.avail_in, input.byteLength, true);
    const own = sharedOutBusy;
    const out = own ? Buffer.from(new ArrayBuffer(GUNZIP_OUT_BYTES)) : (sharedOut ??= Buffer.from(new ArrayBuffer(GUNZIP_OUT_BYTES)));
    const outAddr = koffi.address(out);
    if (!own) sharedOutBusy = true;
    try {
      this.inflateAll(out, outAddr);
    } finally {
      if (!own) sharedOutBusy = false;
    }
  }

  private inflateAll(out: Buffer, outAddr: bigint): void {
    const s = this.strm;
    for (;;) {
      if (this.atMemberEnd) {
        // more input after a member: it must be the next member (zlib checks its header)
        if (this.z.inflateReset(this.strmAddr) !== Z_OK) throw this.fail('inflateReset failed');
        this.atMemberEnd = false;
      }
      s.setBigUint64(Z_STREAM.next_out, outAddr, true);
      s.setUint32(Z_STREAM.avail_out, GUNZIP_OUT_BYTES, true);
      const rc = this.z.inflate(this.strmAddr, Z_NO_FLUSH);
      const produced = GUNZIP_OUT_BYTES - s.getUint32(Z_STREAM.avail_out, true);
      if (rc < 0 && rc !== Z_BUF_ERROR) {
        const detail =
          rc === Z_DATA_ERROR ? (this.zlibMessage() ?? 'invalid data') : rc === Z_MEM_ERROR ? 'out of memory' : `zlib error ${rc}`;
        // bytes after a complete member that are not a gzip header: Go says "invalid header"
        throw this.fail(
          this.bytesOut > 0 && s.getBigUint64(Z_STREAM.total_out, true) === 0n && produced === 0
            ? `trailing data after the gzip stream (${detail})`
            : detail,
        );
      }
      if (rc === Z_NEED_DICT) throw this.fail('a preset dictionary is required (not gzip)');
      if (produced > 0) {
        this.bytesOut += produced;
        this.onData(out.subarray(0, produced));
      }
      const availIn = s.getUint32(Z_STREAM.avail_in, true);
      if (rc === Z_STREAM_END) {
        this.atMemberEnd = true;
        if (availIn === 0) return;
        continue;
      }
      // output not full: zlib took all the input it could use
      if (produced < GUNZIP_OUT_BYTES && availIn === 0) return;
      // Z_BUF_ERROR with input left and room for output cannot happen; guard against a loop
      if (rc === Z_BUF_ERROR && produced === 0) throw this.fail('zlib made no progress');
    }
  }

  /** The input has ended: throws if it ended inside a member (or before any). */
  end(): void {
    if (this.failure) throw this.failure;
    const complete = this.atMemberEnd;
    this.close();
    if (!complete) {
      this.failure = new FormatError(`${this.what}: corrupt gzip stream: unexpected end of file`, 'ERR_BAD_COMPRESSION');
      throw this.failure;
    }
  }

  /** zlib's own words for a failure (z_stream.msg), when it set any. */
  private zlibMessage(): string | undefined {
    return (koffi.decode(this.strmPtr, Z_STREAM.msg, 'const char *') as string | null) ?? undefined;
  }

  /** Frees zlib's state and the stream; idempotent. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.z.inflateEnd(this.strmAddr);
    koffi.free(this.strmPtr);
  }
}
