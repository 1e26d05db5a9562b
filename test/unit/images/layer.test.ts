import { describe, it, expect } from 'vitest';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { computeDiffId, decompressLayer, sniffCompression } from '../../../src/images/layer.js';
import { FormatError } from '../../../src/errors.js';

// 200 lines 'line N of the zstd fixture\n', compressed with `zstd -19`.
const ZSTD_FIXTURE = Buffer.from(
  'KLUv/WQ6FU0IAGaUKhWgW1oDcJv8HEX435i9t5RSytw1Wq0zACQAGgBmZmZVVVVVVUREREREMzMzMzP/FzLOiibAgEIDg4MBQYAAw8JDwEABQwBBQoAIGEAwOAj//4uiKIqiKIpiKaWUUkophBBCCCGEjDHGGGOMcXd3d3dnZhbWWmuttdbWWmuttdZKKaWUUkrpnHPOOeecB2VZlmVZlmVJkiRJkiRJkuM4juM4juN477333ntvgMioERD6/d/QU3kRJAT/IwQSP1dLs7O5mVlbVc3NzNZmam1xSZDskSiyQhJk+0iP3REcLwAgAAACACAAAAIAIFAbobEyAsa6CItVERRrIiRewTCBYYKZrLUDpArpeBCn',
  'base64',
);
const ZSTD_PLAIN = Array.from({ length: 200 }, (_, i) => `line ${i} of the zstd fixture\n`).join('');

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Splits a buffer into small chunks so that magic sniffing sees partial heads. */
function chunked(buf: Buffer, size = 3): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts);
}

describe('layer decompression', () => {
  const plain = Buffer.from('x'.repeat(100_000) + 'tail');

  it('sniffs gzip, zstd, plain', () => {
    expect(sniffCompression(gzipSync(plain))).toBe('gzip');
    expect(sniffCompression(ZSTD_FIXTURE)).toBe('zstd');
    expect(sniffCompression(plain)).toBe('none');
    expect(sniffCompression(Buffer.alloc(0))).toBe('none');
  });

  it('refuses xz and bzip2', () => {
    expect(() => sniffCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1]))).toThrow(/xz/);
    expect(() => sniffCompression(Buffer.from('BZh91AY'))).toThrow(/bzip2/);
  });

  it('decompresses gzip in tiny chunks', async () => {
    expect((await collect(decompressLayer(chunked(gzipSync(plain), 5)))).equals(plain)).toBe(true);
  });

  it('decompresses zstd', async () => {
    expect((await collect(decompressLayer(chunked(ZSTD_FIXTURE, 7)))).toString()).toBe(ZSTD_PLAIN);
  });

  it('passes plain data and tiny inputs through', async () => {
    expect((await collect(decompressLayer(chunked(plain, 1000)))).equals(plain)).toBe(true);
    expect(await collect(decompressLayer(Readable.from([Buffer.from('ab')])))).toEqual(Buffer.from('ab'));
    expect(await collect(decompressLayer(Readable.from([])))).toEqual(Buffer.alloc(0));
  });

  it('computes diff IDs of the uncompressed bytes', async () => {
    const want = 'sha256:' + createHash('sha256').update(plain).digest('hex');
    expect(await computeDiffId(Readable.from([gzipSync(plain)]))).toEqual({ diffId: want, size: plain.length });
    expect(await computeDiffId(Readable.from([plain]))).toEqual({ diffId: want, size: plain.length });
  });

  it('rejects corrupt and truncated gzip with FormatError', async () => {
    const gz = gzipSync(plain);
    const bad = Buffer.from(gz);
    bad.fill(0xff, 20, 40);
    await expect(collect(decompressLayer(Readable.from([bad])))).rejects.toBeInstanceOf(FormatError);
    await expect(collect(decompressLayer(Readable.from([gz.subarray(0, gz.length - 20)])))).rejects.toBeInstanceOf(FormatError);
  });

  it('rejects corrupt zstd with FormatError', async () => {
    const bad = Buffer.from(ZSTD_FIXTURE);
    bad.fill(0x00, 6, 30);
    await expect(collect(decompressLayer(Readable.from([bad])))).rejects.toBeInstanceOf(FormatError);
  });
});
