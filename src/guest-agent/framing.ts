/**
 * Agent protocol framing (docs/agent-protocol.md): u32 big-endian payload length, then the
 * payload. Lengths outside 1..FRAME_MAX are protocol errors.
 */
import { FormatError } from '../errors.js';

export const FRAME_HEADER_SIZE = 4;
export const FRAME_MAX = 1 << 20;

export function encodeFrame(payload: Uint8Array): Buffer {
  if (payload.length === 0 || payload.length > FRAME_MAX) {
    throw new FormatError(`agent frame of ${payload.length} bytes is outside 1..${FRAME_MAX}`, 'ERR_AGENT_FRAME');
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, FRAME_HEADER_SIZE);
  return out;
}

/** Incremental decoder: push received chunks, get whole payloads back, in order. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Throws FormatError on an invalid length; the decoder is then unusable (close the connection). */
  push(chunk: Uint8Array): Buffer[] {
    this.append(chunk);
    const frames: Buffer[] = [];
    for (let f = this.next(); f; f = this.next()) frames.push(f);
    return frames;
  }

  append(chunk: Uint8Array): void {
    if (!chunk.length) return;
    this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    this.buffered += chunk.length;
  }

  /** The next whole frame's payload, or undefined until more bytes arrive. Reading one frame at a
   * time lets a stream connection stop after its hello: what follows is raw data, not frames. */
  next(): Buffer | undefined {
    if (this.buffered < FRAME_HEADER_SIZE) return undefined;
    const len = this.peek(FRAME_HEADER_SIZE).readUInt32BE(0);
    if (len === 0 || len > FRAME_MAX) {
      throw new FormatError(`agent frame length ${len} is outside 1..${FRAME_MAX}`, 'ERR_AGENT_FRAME');
    }
    if (this.buffered < FRAME_HEADER_SIZE + len) return undefined;
    return this.take(FRAME_HEADER_SIZE + len).subarray(FRAME_HEADER_SIZE);
  }

  /** Bytes received after the last whole frame (a stream connection's first raw bytes). */
  remainder(): Buffer {
    const rest = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    const joined = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  private take(n: number): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    const out = Buffer.from(joined.subarray(0, n));
    const rest = joined.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered -= n;
    return out;
  }
}
