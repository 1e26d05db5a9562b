import { describe, expect, it } from 'vitest';
import { FormatError } from '../../../src/errors.js';
import { encodeFrame, FrameDecoder, FRAME_MAX } from '../../../src/guest-agent/framing.js';

describe('agent framing', () => {
  it('encodes a big-endian u32 length then the payload', () => {
    const f = encodeFrame(Buffer.from('{"a":1}'));
    expect([...f.subarray(0, 4)]).toEqual([0, 0, 0, 7]);
    expect(f.subarray(4).toString()).toBe('{"a":1}');
  });

  it('decodes frames split at every byte boundary and several frames per chunk', () => {
    const wire = Buffer.concat([encodeFrame(Buffer.from('one')), encodeFrame(Buffer.from('second')), encodeFrame(Buffer.from('3'))]);
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))].map((b) => b.toString());
      expect(got).toEqual(['one', 'second', '3']);
    }
    const d = new FrameDecoder();
    const got: string[] = [];
    for (const byte of wire) got.push(...d.push(Buffer.from([byte])).map((b) => b.toString()));
    expect(got).toEqual(['one', 'second', '3']);
  });

  it('keeps bytes after the last frame as the remainder (raw stream data after hello)', () => {
    const d = new FrameDecoder();
    d.append(Buffer.concat([encodeFrame(Buffer.from('hello')), Buffer.from('raw bytes')]));
    expect(String(d.next())).toBe('hello');
    expect(d.remainder().toString()).toBe('raw bytes');
    expect(d.next()).toBeUndefined();
  });

  it('rejects zero-length and oversize frames with FormatError', () => {
    expect(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 0]))).toThrow(FormatError);
    const big = Buffer.alloc(4);
    big.writeUInt32BE(FRAME_MAX + 1);
    expect(() => new FrameDecoder().push(big)).toThrow(/outside 1\.\.1048576/);
    expect(() => encodeFrame(Buffer.alloc(0))).toThrow(FormatError);
    expect(() => encodeFrame(Buffer.alloc(FRAME_MAX + 1))).toThrow(FormatError);
    expect(encodeFrame(Buffer.alloc(FRAME_MAX)).length).toBe(FRAME_MAX + 4);
  });

  it('rejects garbage: an ASCII prefix reads as a huge length', () => {
    expect(() => new FrameDecoder().push(Buffer.from('GET / HTTP/1.1\r\n'))).toThrow(FormatError);
  });
});
