import { describe, it, expect } from 'vitest';
import koffi from 'koffi';
import { gzipSync, gunzipSync } from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import { Gunzip, GUNZIP_OUT_BYTES, Z_STREAM } from '../../../src/images/gunzip.js';
import { LayerInspector } from '../../../src/images/layer-inspect.js';
import { packTar } from '../../fixtures/rootfs.js';
import { zstdRaw } from '../../fixtures/zstd.js';

/** Decodes `gz` fed in pieces of `step` bytes; returns the output and the largest piece seen. */
function decode(gz: Buffer, step = gz.length): { out: Buffer; largest: number } {
  const parts: Buffer[] = [];
  let largest = 0;
  const g = new Gunzip('test layer', (c) => {
    largest = Math.max(largest, c.length);
    // the view is only valid during the callback: copy
    parts.push(Buffer.from(c));
  });
  try {
    for (let o = 0; o < gz.length; o += step) g.write(gz.subarray(o, o + step));
    g.end();
  } finally {
    g.close();
  }
  return { out: Buffer.concat(parts), largest };
}

function failure(gz: Buffer, step = gz.length): string {
  try {
    decode(gz, step);
  } catch (e) {
    expect(e).toMatchObject({ code: 'ERR_BAD_COMPRESSION', status: 400 });
    return (e as Error).message;
  }
  throw new Error('decoding did not fail');
}

const data = Buffer.concat([randomBytes(700_000), Buffer.alloc(900_000, 'text that compresses ')]);

describe('z_stream layout (zlib.h, LP64)', () => {
  it('matches the C layout of struct z_stream_s', () => {
    const zs = koffi.struct('z_stream_s_test', {
      next_in: 'void *',
      avail_in: 'uint32_t',
      total_in: 'unsigned long',
      next_out: 'void *',
      avail_out: 'uint32_t',
      total_out: 'unsigned long',
      msg: 'const char *',
      state: 'void *',
      zalloc: 'void *',
      zfree: 'void *',
      opaque: 'void *',
      data_type: 'int',
      adler: 'unsigned long',
      reserved: 'unsigned long',
    });
    expect(koffi.sizeof(zs)).toBe(Z_STREAM.SIZE);
    for (const [field, off] of Object.entries(Z_STREAM)) {
      if (field !== 'SIZE') expect([field, koffi.offsetof(zs, field)]).toEqual([field, off]);
    }
  });
});

describe('Gunzip (zlib through koffi, one reused output buffer)', () => {
  it('decodes what node:zlib encodes, fed whole, in odd pieces and byte by byte at the start', () => {
    const gz = gzipSync(data);
    expect(decode(gz).out.equals(data)).toBe(true);
    expect(decode(gz, 4099).out.equals(data)).toBe(true);
    const small = gzipSync(Buffer.from('hello gzip'));
    expect(decode(small, 1).out.toString()).toBe('hello gzip');
  });

  it('hands out views of one buffer no larger than its size', () => {
    const seen = new Set<ArrayBufferLike>();
    const g = new Gunzip('t', (c) => void seen.add(c.buffer));
    g.write(gzipSync(data));
    g.end();
    expect(seen.size).toBe(1);
    expect(decode(gzipSync(data)).largest).toBeLessThanOrEqual(GUNZIP_OUT_BYTES);
  });

  it("streams written in turn share the output memory; one written from inside another's onData gets its own", () => {
    const a = randomBytes(600_000);
    const b = Buffer.alloc(900_000, 'b');
    const ga = gzipSync(a);
    const gb = gzipSync(b);
    const outA: Buffer[] = [];
    const outB: Buffer[] = [];
    const sb = new Gunzip('b', (c) => void outB.push(Buffer.from(c)));
    let fedB = 0;
    const sa = new Gunzip('a', (c) => {
      outA.push(Buffer.from(c));
      // re-entrant: B decodes while A's output view is still being handed out
      if (fedB < gb.length) {
        sb.write(gb.subarray(fedB, fedB + 5000));
        fedB += 5000;
      }
      expect(Buffer.from(c).equals(outA.at(-1)!)).toBe(true);
    });
    for (let o = 0; o < ga.length; o += 7000) sa.write(ga.subarray(o, o + 7000));
    for (; fedB < gb.length; fedB += 7000) sb.write(gb.subarray(fedB, fedB + 7000));
    sa.end();
    sb.end();
    expect(Buffer.concat(outA).equals(a)).toBe(true);
    expect(Buffer.concat(outB).equals(b)).toBe(true);
  });

  it('reads concatenated members as one stream (as Go and gunzip do), also when a member starts mid-piece', () => {
    const a = randomBytes(5000);
    const b = Buffer.from('second member');
    const gz = Buffer.concat([gzipSync(a), gzipSync(b), gzipSync(Buffer.alloc(0))]);
    expect(decode(gz).out.equals(Buffer.concat([a, b]))).toBe(true);
    expect(decode(gz, 777).out.equals(Buffer.concat([a, b]))).toBe(true);
    expect(gunzipSync(gz).equals(Buffer.concat([a, b]))).toBe(true);
  });

  it('refuses a wrong CRC-32, a wrong ISIZE, a corrupt block, truncation, trailing bytes and non-gzip input', () => {
    const gz = gzipSync(data);
    const badCrc = Buffer.from(gz);
    badCrc[badCrc.length - 8]! ^= 1;
    expect(failure(badCrc)).toMatch(/^test layer: corrupt gzip stream: incorrect data check$/);
    const badSize = Buffer.from(gz);
    badSize[badSize.length - 1]! ^= 1;
    expect(failure(badSize)).toMatch(/incorrect length check/);
    const badBlock = Buffer.from(gzipSync(Buffer.from('x'.repeat(1000))));
    badBlock[10] = 0xff;
    expect(failure(badBlock)).toMatch(/corrupt gzip stream: invalid/);
    expect(failure(gz.subarray(0, gz.length - 3))).toMatch(/unexpected end of file$/);
    expect(failure(gz.subarray(0, 5), 1)).toMatch(/unexpected end of file$/);
    expect(failure(Buffer.alloc(0))).toMatch(/unexpected end of file$/);
    expect(failure(Buffer.concat([gz, Buffer.from('garbage after the member')]))).toMatch(/trailing data after the gzip stream/);
    expect(failure(Buffer.concat([gz, Buffer.alloc(512)]))).toMatch(/trailing data after the gzip stream/);
    expect(failure(Buffer.from('plain text, not gzip'))).toMatch(/incorrect header check/);
  });

  it('an error in the consumer stops decoding and leaves the stream closable; use after close is refused', () => {
    const g = new Gunzip('t', () => {
      throw new Error('consumer says no');
    });
    expect(() => g.write(gzipSync(data))).toThrow('consumer says no');
    g.close();
    g.close();
    expect(() => g.write(Buffer.from([1]))).toThrow(/after it was closed/);
  });

  it('survives many streams with errors and GC in between (no heap corruption)', () => {
    const gz = gzipSync(randomBytes(20_000));
    for (let i = 0; i < 2000; i++) {
      const input = i % 3 === 0 ? gz.subarray(0, 100) : i % 3 === 1 ? Buffer.concat([gz, Buffer.from('x')]) : gz;
      const g = new Gunzip('t', () => {});
      try {
        g.write(input);
        g.end();
      } catch {
        // expected for two of three
      } finally {
        g.close();
      }
    }
    expect(decode(gz).out.length).toBe(20_000);
  });
});

describe('LayerInspector keeps nothing of the chunks it was given', () => {
  it('gives the same facts when every chunk is overwritten right after write (plain, gzip, zstd)', async () => {
    // long names make pax records and headers fall across chunk ends
    const tar = await packTar([
      { name: 'd/', type: 'directory' },
      { name: `d/${'long-name-'.repeat(30)}`, content: randomBytes(3000) },
      { name: 'd/f', content: Buffer.from('body') },
    ]);
    for (const blob of [tar, gzipSync(tar), zstdRaw(tar)]) {
      const ins = new LayerInspector('layer x');
      // smaller than a zstd block: the decoder must keep partial blocks across writes
      const scratch = Buffer.alloc(333);
      for (let o = 0; o < blob.length; o += scratch.length) {
        const n = blob.copy(scratch, 0, o, o + scratch.length);
        ins.write(scratch.subarray(0, n));
        scratch.fill(0xee);
      }
      const f = ins.endSync();
      expect(f.diffId).toBe('sha256:' + createHash('sha256').update(tar).digest('hex'));
      expect([...f.paths].sort()).toEqual(['d', `d/${'long-name-'.repeat(30)}`, 'd/f'].sort());
    }
  });
});
