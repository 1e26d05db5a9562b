import { describe, it, expect, afterEach, vi } from 'vitest';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BlobStore } from '../../../src/images/blob-store.js';

const dirs: string[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('BlobStore.write', () => {
  it("a failed batch write is the write's error (not an unhandled rejection) and leaves no temp file", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'tvm-blobs-'));
    dirs.push(root);
    const store = new BlobStore(root);
    // the FileHandle class is not exported: take it from a handle
    const probe = await open(path.join(root, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { writev: (...a: unknown[]) => Promise<unknown> };
    await probe.close();
    vi.spyOn(proto, 'writev').mockImplementation(() =>
      Promise.reject(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' })),
    );
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      // one full batch, then a slow network: the batch's write fails while the next read waits
      async function* source() {
        yield Buffer.alloc(1 << 20, 1);
        await new Promise((r) => setTimeout(r, 100));
        yield Buffer.alloc(10, 2);
      }
      await expect(store.write(source())).rejects.toThrow(/ENOSPC/);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
    expect(await readdir(path.join(root, 'blobs', 'tmp'))).toEqual([]);
  });
});
