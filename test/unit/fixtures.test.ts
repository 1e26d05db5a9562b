import { describe, it, expect } from 'vitest';
import { extract as tarExtract } from 'tar-stream';
import { Readable } from 'node:stream';
import { busyboxRootfsTar } from '../fixtures/rootfs.js';

describe('busybox rootfs fixture', () => {
  it('packs a tar with busybox and its applet links', async () => {
    const buf = await busyboxRootfsTar();
    const names: string[] = [];
    const extract = tarExtract();
    extract.on('entry', (h, stream, next) => {
      names.push(h.name);
      stream.resume();
      stream.on('end', next);
    });
    await new Promise<void>((resolve, reject) => {
      extract.on('finish', resolve);
      extract.on('error', reject);
      Readable.from(buf).pipe(extract);
    });
    expect(names).toContain('bin/busybox');
    expect(names).toContain('bin/sh');
    expect(names).toContain('etc/passwd');
  });
});
