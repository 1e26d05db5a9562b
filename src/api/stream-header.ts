/**
 * Docker's multiplexed stream framing (attach, exec, logs without a TTY): each frame is an
 * 8-byte header — byte 0 the stream (0 stdin, 1 stdout, 2 stderr, 3 systemerr), bytes 1..3
 * zero, bytes 4..7 the payload length big-endian — then the payload.
 */
import { Writable } from 'node:stream';
import { FormatError } from '../errors.js';

export const STREAM_STDIN = 0;
export const STREAM_STDOUT = 1;
export const STREAM_STDERR = 2;
export const STREAM_SYSTEMERR = 3;
export type StreamId = 0 | 1 | 2 | 3;

export const HEADER_SIZE = 8;
const HEADER_STREAM_OFFSET = 0;
const HEADER_LENGTH_OFFSET = 4;
/** payload lengths are uint32 */
const MAX_FRAME = 0xffff_ffff;

export function encodeHeader(stream: StreamId, length: number): Buffer {
  if (length < 0 || length > MAX_FRAME) throw new FormatError(`stream frame length ${length} out of range`);
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt8(stream, HEADER_STREAM_OFFSET);
  h.writeUInt32BE(length, HEADER_LENGTH_OFFSET);
  return h;
}

export function encodeFrame(stream: StreamId, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return Buffer.concat([encodeHeader(stream, body.length), body]);
}

export interface Frame {
  stream: StreamId;
  payload: Buffer;
}

/** Incremental decoder: feed chunks, get complete frames; rejects malformed headers. */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Frame[] = [];
    while (this.buf.length >= HEADER_SIZE) {
      const stream = this.buf.readUInt8(HEADER_STREAM_OFFSET);
      if (stream > STREAM_SYSTEMERR) throw new FormatError(`bad stream id ${stream} in multiplexed stream header`);
      if (this.buf[1] !== 0 || this.buf[2] !== 0 || this.buf[3] !== 0) throw new FormatError('bad padding in multiplexed stream header');
      const len = this.buf.readUInt32BE(HEADER_LENGTH_OFFSET);
      if (this.buf.length < HEADER_SIZE + len) break;
      out.push({ stream: stream as StreamId, payload: this.buf.subarray(HEADER_SIZE, HEADER_SIZE + len) });
      this.buf = this.buf.subarray(HEADER_SIZE + len);
    }
    return out;
  }

  /** bytes of an incomplete frame still buffered */
  get pending(): number {
    return this.buf.length;
  }
}

/** A Writable that frames everything written to it for one stream onto `sink`. */
export function framedWriter(sink: Writable, stream: StreamId): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (chunk.length === 0) return cb();
      if (sink.destroyed || sink.writableEnded) return cb();
      sink.write(encodeFrame(stream, chunk), () => cb());
    },
  });
}

/** A Writable passing bytes through unframed (TTY mode), never ending the sink. */
export function rawWriter(sink: Writable): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (sink.destroyed || sink.writableEnded) return cb();
      sink.write(chunk, () => cb());
    },
  });
}
