import { describe, it, expect } from 'vitest';
import { ProgressThrottle, humanSize, progressBar, progress, shortId } from '../../../src/images/progress.js';

const D = 'sha256:' + '0123456789ab'.repeat(5) + 'cdef';

describe('progress messages', () => {
  it('formats sizes like go-units HumanSize', () => {
    expect(humanSize(0)).toBe('0B');
    expect(humanSize(512)).toBe('512B');
    expect(humanSize(1500)).toBe('1.5kB');
    expect(humanSize(2_811_000)).toBe('2.811MB');
    expect(humanSize(3_000_000_000)).toBe('3GB');
  });
  it('draws the bar as dockerd writes it: one = per 2%, always a >, the current size padded to 8', () => {
    expect(progressBar(1_000_000, 4_000_000)).toBe(`[${'='.repeat(12)}>${' '.repeat(38)}]      1MB/4MB`);
    expect(progressBar(2_814_000, 2_814_000)).toBe(`[${'='.repeat(50)}>]  2.814MB/2.814MB`);
    expect(progressBar(1, 3)).toBe(`[${'='.repeat(16)}>${' '.repeat(34)}]       1B/3B`);
    expect(progressBar(5, 4)).toBe(`[${'='.repeat(50)}>]       5B`);
    expect(progressBar(512, 0)).toBe('    512B');
  });
  it('builds Docker-shaped messages', () => {
    expect(shortId(D)).toBe('0123456789ab');
    expect(progress.pullingFrom('library/alpine', 'latest')).toEqual({ status: 'Pulling from library/alpine', id: 'latest' });
    expect(progress.layer('Pulling fs layer', D)).toEqual({ status: 'Pulling fs layer', id: '0123456789ab', progressDetail: {} });
    expect(progress.downloading(D, 5, 10)).toMatchObject({
      status: 'Downloading',
      id: '0123456789ab',
      progressDetail: { current: 5, total: 10 },
    });
    expect(progress.digest(D)).toEqual({ status: `Digest: ${D}` });
    expect(progress.downloadedNewer('alpine:latest')).toEqual({ status: 'Status: Downloaded newer image for alpine:latest' });
    expect(progress.upToDate('alpine:latest')).toEqual({ status: 'Status: Image is up to date for alpine:latest' });
  });
});

describe('ProgressThrottle (moby progressreader rules)', () => {
  it('waits for 512 KiB or 1% of the layer, whichever is less, and 100 ms; always lets the last through', () => {
    const big = new ProgressThrottle(100 << 20);
    expect(big.due(100_000, 0)).toBe(false);
    expect(big.due(600_000, 0)).toBe(true);
    // enough bytes, too soon
    expect(big.due(1_200_000, 50)).toBe(false);
    expect(big.due(1_200_000, 100)).toBe(true);
    expect(big.due(100 << 20, 101)).toBe(true);
    // 1% of a 10 kB layer is 100 bytes
    const small = new ProgressThrottle(10_000);
    expect(small.due(99, 0)).toBe(false);
    expect(small.due(100, 0)).toBe(true);
    expect(small.due(10_000, 1)).toBe(true);
  });

  it('takes explicit byte and time steps', () => {
    const t = new ProgressThrottle(1000, { everyBytes: 10, everyMs: 0 });
    expect([10, 15, 20, 30].map((n) => t.due(n, 0))).toEqual([true, false, true, true]);
  });
});
