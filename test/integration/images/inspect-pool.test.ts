/**
 * The worker-thread layer inspection that pulls use for large layers: same facts as the
 * inline inspector, the same typed errors for bad tars, and an abort that frees the job.
 */
import { describe, it, expect } from 'vitest';
import { gzipSync } from 'node:zlib';
import { randomBytes, createHash } from 'node:crypto';
import { inspectionFor, messageBuffer, WORKER_MIN_BYTES, type LayerInspection } from '../../../src/images/inspect-pool.js';
import { LayerInspector } from '../../../src/images/layer-inspect.js';
import { FormatError } from '../../../src/errors.js';
import { packTar } from '../../fixtures/rootfs.js';
import { zstdRaw } from '../../fixtures/zstd.js';

async function feed(ins: Pick<LayerInspection, 'write' | 'end'>, blob: Buffer, chunk = 64 * 1024) {
  for (let i = 0; i < blob.length; i += chunk) {
    const w = ins.write(blob.subarray(i, i + chunk));
    if (w) await w;
  }
  return ins.end();
}

/** As a direct blob download feeds it: whole message buffers, given up to the inspection. */
async function feedOwned(ins: LayerInspection, blob: Buffer, fill = 700 * 1024) {
  for (let i = 0; i < blob.length; i += fill) {
    const buf = messageBuffer();
    const n = blob.copy(buf, 0, i, i + fill);
    const w = ins.writeOwned(buf.subarray(0, n));
    if (w) await w;
  }
  return ins.end();
}

describe('layer inspection in a worker', () => {
  it("gives the inline inspector's facts for a large gzip layer", async () => {
    const tar = await packTar([
      { name: 'data/', type: 'directory' },
      ...Array.from({ length: 24 }, (_, i) => ({ name: `data/f${i}`, content: randomBytes(256 * 1024) })),
      { name: 'data/hard', type: 'link', linkname: 'data/f0' },
      { name: 'below', type: 'link', linkname: 'lower/file' },
    ]);
    const blob = gzipSync(tar, { level: 1 });
    expect(blob.length).toBeGreaterThanOrEqual(WORKER_MIN_BYTES);
    const remote = await feed(inspectionFor('layer big', blob.length, { deferLinks: true }), blob);
    const local = await feed(new LayerInspector('layer big', new Set(), { deferLinks: true }), blob);
    expect(remote).toEqual(local);
    // given up buffers (moved to the worker, or inspected inline and reused) give the same facts
    expect(await feedOwned(inspectionFor('layer big', blob.length, { deferLinks: true }), blob)).toEqual(local);
    expect(await feedOwned(inspectionFor('layer big', 1000, { deferLinks: true }), blob)).toEqual(local);
    expect(remote.diffId).toBe('sha256:' + createHash('sha256').update(tar).digest('hex'));
    expect(remote.compression).toBe('gzip');
    expect(remote.entries).toBe(27);
    expect(remote.dangling).toEqual([{ name: 'below', target: 'lower/file' }]);
  });

  it('reports unsafe entries and truncation as FormatErrors naming the layer', async () => {
    const pad = { name: 'pad', content: randomBytes(WORKER_MIN_BYTES) };
    const unsafe = gzipSync(await packTar([pad, { name: '../etc/passwd', content: 'x' }]), { level: 1 });
    const err = await feed(inspectionFor('layer unsafe', unsafe.length), unsafe).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).message).toMatch(/layer unsafe: entry "\.\.\/etc\/passwd" contains '\.\.'/);
    const whole = gzipSync(await packTar([pad]), { level: 1 });
    const cut = whole.subarray(0, whole.length - 1000);
    await expect(feed(inspectionFor('layer cut', whole.length), cut)).rejects.toMatchObject({ code: 'ERR_BAD_COMPRESSION' });
  });

  it('aborts an inspection midway and keeps serving others', async () => {
    const blob = gzipSync(await packTar([{ name: 'f', content: randomBytes(WORKER_MIN_BYTES + 1000) }]), { level: 1 });
    const a = inspectionFor('layer a', blob.length);
    await a.write(blob.subarray(0, 1 << 20));
    a.abort();
    const b = await feed(inspectionFor('layer b', blob.length), blob);
    expect(b.entries).toBe(1);
  });
});

describe('a worker inspection that hashes the blob too', () => {
  it('reports the blob digest, also when the inspection fails', async () => {
    const pad = { name: 'pad', content: randomBytes(WORKER_MIN_BYTES) };
    const good = gzipSync(await packTar([pad]), { level: 1 });
    const ins = inspectionFor('layer good', good.length, { hashBlob: true });
    expect(ins.blobDigest).toBeTypeOf('function');
    await feed(ins, good);
    expect(await ins.blobDigest!()).toBe('sha256:' + createHash('sha256').update(good).digest('hex'));

    const cut = good.subarray(0, good.length - 1000);
    const bad = inspectionFor('layer cut', cut.length, { hashBlob: true });
    await expect(feed(bad, cut)).rejects.toMatchObject({ code: 'ERR_BAD_COMPRESSION' });
    expect(await bad.blobDigest!()).toBe('sha256:' + createHash('sha256').update(cut).digest('hex'));
    // a stream that breaks mid-way fails the inspection (and the hand-off) without hanging
    const garbage = Buffer.concat([good.subarray(0, 64 * 1024), randomBytes(WORKER_MIN_BYTES)]);
    const broken = inspectionFor('layer garbage', garbage.length, { hashBlob: true });
    await expect(feed(broken, garbage)).rejects.toMatchObject({ code: 'ERR_BAD_COMPRESSION' });
    // small layers are inspected inline and leave hashing to the blob store
    expect(inspectionFor('layer small', 1000, { hashBlob: true }).blobDigest).toBeUndefined();
  });
});

describe('layer inspection in a worker: message memory', () => {
  /** one ustar header block with a valid checksum */
  function header(name: string, size: number, type = '0'): Buffer {
    const h = Buffer.alloc(512);
    h.write(name, 0, 'latin1');
    h.write('0000644\0', 100, 'latin1');
    h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
    h.write(type, 156, 'latin1');
    h.write('ustar\x0000', 257, 'latin1');
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    return h;
  }

  it('walks a plain tar whose pax record straddles two messages (the memory goes back to the sender)', async () => {
    const rec = ' path=../escape\n';
    const paxText = `${rec.length + 2}${rec}`;
    const filler = (2 << 20) - 1024;
    const tar = Buffer.concat([
      header('filler', filler),
      Buffer.alloc(filler, 1),
      header('PaxHeader', paxText.length, 'x'),
      Buffer.concat([Buffer.from(paxText), Buffer.alloc(512 - paxText.length)]),
      header('harmless', 0),
      Buffer.alloc(1024),
    ]);
    // the pax body starts at 2 MiB; the second message ends 256 bytes into it (the first one
    // is copied while the compression is sniffed)
    const cut = (2 << 20) + 256;
    const ins = inspectionFor('layer plain', WORKER_MIN_BYTES, { deferLinks: true });
    for (const part of [tar.subarray(0, 1 << 20), tar.subarray(1 << 20, cut), tar.subarray(cut)]) {
      const w = ins.write(part);
      if (w) await w;
    }
    const err = await ins.end().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/"\.\.\/escape" contains '\.\.'/);
  });

  it('inflates a zstd layer whose block straddles two messages', async () => {
    const tar = await packTar(Array.from({ length: 6 }, (_, i) => ({ name: `f${i}`, content: randomBytes(700 * 1024) })));
    const blob = zstdRaw(tar);
    const ins = inspectionFor('layer zstd', WORKER_MIN_BYTES, { deferLinks: true });
    // messages end mid-block, so the decoder keeps a message's tail until the next one
    const f = await feed(ins, blob, 1000);
    expect(f.compression).toBe('zstd');
    expect(f.diffId).toBe('sha256:' + createHash('sha256').update(tar).digest('hex'));
    expect(f.entries).toBe(6);
  });
});
