import { describe, it, expect, vi, afterEach } from 'vitest';
import { gzipSync } from 'node:zlib';
import { inspectionFor, messageBuffer, spareMessageBuffers, SPARE_IDLE_MS } from '../../../src/images/inspect-pool.js';
import { packTar } from '../../fixtures/rootfs.js';

afterEach(() => void vi.useRealTimers());

describe('message buffers', () => {
  it('are reused while pulls run and let go once idle for SPARE_IDLE_MS', async () => {
    vi.useFakeTimers();
    const blob = gzipSync(await packTar([{ name: 'f', content: Buffer.alloc(1000, 1) }]));
    const ins = inspectionFor('layer small', blob.length);
    const buf = messageBuffer();
    const n = blob.copy(buf);
    await ins.writeOwned(buf.subarray(0, n));
    expect((await ins.end()).entries).toBe(1);
    expect(spareMessageBuffers()).toBe(1);
    // the same memory comes back for the next message
    const again = messageBuffer();
    expect(again.buffer).toBe(buf.buffer);
    expect(spareMessageBuffers()).toBe(0);
    const ins2 = inspectionFor('layer small', blob.length);
    blob.copy(again);
    await ins2.writeOwned(again.subarray(0, n));
    await ins2.end();
    expect(spareMessageBuffers()).toBe(1);
    vi.advanceTimersByTime(SPARE_IDLE_MS - 1000);
    expect(spareMessageBuffers()).toBe(1);
    vi.advanceTimersByTime(SPARE_IDLE_MS + 1000);
    expect(spareMessageBuffers()).toBe(0);
  });
});
