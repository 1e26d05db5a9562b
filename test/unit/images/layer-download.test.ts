import { describe, it, expect } from 'vitest';
import { randomBytes } from 'node:crypto';
import { LayerBodySink, SHIP_BYTES, MAX_QUEUED } from '../../../src/images/layer-download.js';
import type { BlobFile } from '../../../src/images/blob-store.js';
import type { LayerInspection } from '../../../src/images/inspect-pool.js';

function fakes(opts: { failWriteAt?: number; slowInspect?: boolean } = {}) {
  const counted: Buffer[] = [];
  const written: Buffer[] = [];
  const inspected: Buffer[] = [];
  const order: string[] = [];
  let writes = 0;
  const file: BlobFile = {
    count: (c) => void counted.push(Buffer.from(c)),
    write: async (bufs) => {
      if (opts.failWriteAt !== undefined && writes++ === opts.failWriteAt) throw new Error('disk full');
      for (const b of bufs) written.push(Buffer.from(b));
      order.push('write');
    },
  };
  const inspection = {
    write: () => undefined,
    writeOwned: (b: Buffer) => {
      inspected.push(Buffer.from(b));
      order.push('inspect');
      return opts.slowInspect ? new Promise<void>((r) => setTimeout(r, 5)) : undefined;
    },
    end: async () => {
      throw new Error('unused');
    },
    abort: () => {},
  } as LayerInspection;
  return { file, inspection, counted, written, inspected, order };
}

describe('LayerBodySink', () => {
  it('counts every byte as it comes, ships ~1 MiB buffers to the file first, then to the inspection, in order', async () => {
    const f = fakes();
    const sink = new LayerBodySink(f.file, f.inspection);
    const body = randomBytes(3 * SHIP_BYTES + 777);
    for (let o = 0; o < body.length; o += 100_000) {
      const w = sink.push(body.subarray(o, o + 100_000));
      if (w) await w;
    }
    await sink.end();
    expect(Buffer.concat(f.counted).equals(body)).toBe(true);
    expect(Buffer.concat(f.written).equals(body)).toBe(true);
    expect(Buffer.concat(f.inspected).equals(body)).toBe(true);
    expect(f.written.length).toBe(3);
    expect(f.written.slice(0, -1).every((b) => b.length >= SHIP_BYTES)).toBe(true);
    // each buffer reaches the inspection only after its file write
    expect(f.order).toEqual(f.written.flatMap(() => ['write', 'inspect']));
  });

  it('asks the reader to wait once MAX_QUEUED buffers are outstanding', async () => {
    const f = fakes({ slowInspect: true });
    const sink = new LayerBodySink(f.file, f.inspection);
    const waits: boolean[] = [];
    for (let i = 0; i < MAX_QUEUED + 1; i++) waits.push(sink.push(randomBytes(SHIP_BYTES)) !== undefined);
    expect(waits).toEqual([...Array(MAX_QUEUED - 1).fill(false), true, true]);
    await sink.end();
    expect(f.inspected.length).toBe(MAX_QUEUED + 1);
  });

  it('a failed file write fails the next wait and end, and nothing after it is inspected', async () => {
    const f = fakes({ failWriteAt: 1 });
    const sink = new LayerBodySink(f.file, f.inspection);
    // below the queue limit: no wait comes back
    void sink.push(randomBytes(SHIP_BYTES));
    const w = sink.push(randomBytes(SHIP_BYTES));
    await expect(w).rejects.toThrow('disk full');
    // a wait it returns is the failed chain above, whose error end() must report
    void sink.push(randomBytes(10));
    await expect(sink.end()).rejects.toThrow('disk full');
    expect(f.inspected.length).toBe(1);
  });

  it('a count that refuses (past the expected size) throws from push', () => {
    const f = fakes();
    f.file.count = () => {
      throw new Error('size mismatch');
    };
    expect(() => new LayerBodySink(f.file, f.inspection).push(Buffer.from('x'))).toThrow('size mismatch');
  });
});
