/**
 * The classic builder's layer cache: a step is a hit when an image was built before from the
 * same parent image by the same instruction (as expanded: the same command, environment, build
 * arguments, and for COPY/ADD the same source checksums). moby finds such children by scanning
 * images' parent links and configs; here the key is a digest of exactly those inputs, kept in
 * one index file (atomic writes) under the data root, so the cache survives a daemon restart.
 * A hit whose image is gone (removed since) is a miss.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeJsonAtomic } from '../atomic-file.js';
import { Mutex } from '../images/mutex.js';

interface IndexFile {
  version: 1;
  /** key -> image ID */
  entries: Record<string, string>;
}

export function cacheKey(parentId: string, parts: unknown): string {
  return createHash('sha256').update(parentId).update('\n').update(JSON.stringify(parts)).digest('hex');
}

export class BuildCache {
  private readonly file: string;
  private readonly lock = new Mutex();
  private index: IndexFile | undefined;

  constructor(dataRoot: string) {
    this.file = path.join(dataRoot, 'build', 'cache.json');
  }

  private async load(): Promise<IndexFile> {
    if (this.index) return this.index;
    try {
      const j = JSON.parse(await readFile(this.file, 'utf8')) as IndexFile;
      this.index = j.version === 1 && j.entries && typeof j.entries === 'object' ? j : { version: 1, entries: {} };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      this.index = { version: 1, entries: {} };
    }
    return this.index;
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.load()).entries[key];
  }

  async set(key: string, imageId: string): Promise<void> {
    await this.lock.run(async () => {
      const idx = await this.load();
      idx.entries[key] = imageId;
      await writeJsonAtomic(this.file, idx);
    });
  }

  /** Forgets every entry (and those pointing at `gone` images); returns the image IDs it held. */
  async prune(): Promise<string[]> {
    return this.lock.run(async () => {
      const idx = await this.load();
      const ids = [...new Set(Object.values(idx.entries))];
      idx.entries = {};
      await writeJsonAtomic(this.file, idx);
      return ids;
    });
  }

  async forget(key: string): Promise<void> {
    await this.lock.run(async () => {
      const idx = await this.load();
      if (!(key in idx.entries)) return;
      delete idx.entries[key];
      await writeJsonAtomic(this.file, idx);
    });
  }
}
