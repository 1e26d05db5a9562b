import { describe, it, expect } from 'vitest';
import { humanSize, progressBar, progress, shortId } from '../../../src/images/progress.js';

const D = 'sha256:' + '0123456789ab'.repeat(5) + 'cdef';

describe('progress messages', () => {
  it('formats sizes like go-units HumanSize', () => {
    expect(humanSize(0)).toBe('0B');
    expect(humanSize(512)).toBe('512B');
    expect(humanSize(1500)).toBe('1.5kB');
    expect(humanSize(2_811_000)).toBe('2.811MB');
    expect(humanSize(3_000_000_000)).toBe('3GB');
  });
  it('draws a 50-wide bar', () => {
    const bar = progressBar(1_000_000, 4_000_000);
    expect(bar.startsWith('[' + '='.repeat(12) + '>' + ' '.repeat(37) + ']')).toBe(true);
    expect(bar.endsWith('1MB/4MB')).toBe(true);
    expect(progressBar(4, 4).startsWith('[' + '='.repeat(50) + ']')).toBe(true);
  });
  it('builds Docker-shaped messages', () => {
    expect(shortId(D)).toBe('0123456789ab');
    expect(progress.pullingFrom('library/alpine', 'latest')).toEqual({ status: 'Pulling from library/alpine', id: 'latest' });
    expect(progress.layer('Pulling fs layer', D)).toEqual({ status: 'Pulling fs layer', id: '0123456789ab', progressDetail: {} });
    expect(progress.downloading(D, 5, 10)).toMatchObject({ status: 'Downloading', id: '0123456789ab', progressDetail: { current: 5, total: 10 } });
    expect(progress.digest(D)).toEqual({ status: `Digest: ${D}` });
    expect(progress.downloadedNewer('alpine:latest')).toEqual({ status: 'Status: Downloaded newer image for alpine:latest' });
    expect(progress.upToDate('alpine:latest')).toEqual({ status: 'Status: Image is up to date for alpine:latest' });
  });
});
