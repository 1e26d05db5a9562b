import { describe, it, expect } from 'vitest';
import { parseStorageOpts } from '../../../src/cli/commands/daemon.js';
import { InvalidParameterError } from '../../../src/errors.js';

describe('tvm daemon --storage-opt', () => {
  it('parses size= with units', () => {
    expect(parseStorageOpts([])).toBeUndefined();
    expect(parseStorageOpts(['size=10G'])).toBe(10 * 1024 ** 3);
    expect(parseStorageOpts(['size=512m'])).toBe(512 * 1024 ** 2);
    expect(parseStorageOpts(['size=1g', 'size=2g'])).toBe(2 * 1024 ** 3);
  });
  it('refuses unknown keys, missing values and sizes too small for a disk', () => {
    expect(() => parseStorageOpts(['dm.basesize=10G'])).toThrow(InvalidParameterError);
    expect(() => parseStorageOpts(['size'])).toThrow('unknown option');
    expect(() => parseStorageOpts(['size=1m'])).toThrow('at least 64 MiB');
    expect(() => parseStorageOpts(['size=lots'])).toThrow("invalid size: 'lots'");
  });
});

describe('--max-concurrent-downloads', () => {
  it('takes a whole number from 1, as dockerd does', async () => {
    const { parseDownloads } = await import('../../../src/cli/commands/daemon.js');
    expect(parseDownloads('1')).toBe(1);
    expect(parseDownloads('6')).toBe(6);
    for (const bad of ['0', '-1', '2.5', 'many', '']) expect(() => parseDownloads(bad)).toThrow(/needs a whole number of at least 1/);
  });
});
