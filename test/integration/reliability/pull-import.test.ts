/**
 * Item 14: a pull of an image whose layer an import already stored (same blob digest) must not
 * look like a download: dockerd says only "Already exists" for it, and nothing is fetched.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { startRegistry, type RunningRegistry } from '../../fixtures/registry.js';
import { buildImage, pushImage, compress } from '../../fixtures/oci.js';
import { packTar } from '../../fixtures/rootfs.js';
import { RegistryClient } from '../../../src/images/registry.js';
import { Store } from '../../../src/images/store.js';

describe('pull after import (issue 16 item 14)', () => {
  const roots: string[] = [];
  let reg: RunningRegistry | undefined;
  let client: RegistryClient | undefined;
  afterAll(async () => {
    await client?.close();
    await reg?.stop();
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it('a layer an import stored is "Already exists", never pulled again', async () => {
    reg = await startRegistry();
    client = new RegistryClient(reg.host);
    const tar = await packTar([{ name: 'f.bin', content: Buffer.alloc(200_000, 7) }]);
    for (const c of ['none', 'gzip'] as const) {
      const root = mkdtempSync(path.join(os.tmpdir(), 'rel-pull-'));
      roots.push(root);
      const store = new Store(root);
      await store.importRootfs(Readable.from([c === 'none' ? tar : compress(tar, 'gzip')]), { ref: 'imp:1' });
      const img = buildImage([tar], { format: 'oci', compression: c });
      await pushImage(client, `rel/${c}`, 'v1', img);
      const msgs: string[] = [];
      await store.pull(`${reg.host}/rel/${c}:v1`, { onProgress: (p) => msgs.push(p.status) });
      expect(msgs).toContain('Already exists');
      expect(msgs.filter((s) => ['Pulling fs layer', 'Downloading', 'Download complete'].includes(s))).toEqual([]);
    }
  });
});
