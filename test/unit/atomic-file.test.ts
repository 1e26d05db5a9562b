import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../../src/atomic-file.js';
import { NotFoundError, TvmError } from '../../src/errors.js';

describe('writeFileAtomic', () => {
  it('replaces the content and leaves no temp file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tvm-atomic-'));
    const f = path.join(dir, 'config.json');
    await writeFileAtomic(f, 'old');
    await writeJsonAtomic(f, { a: 1 });
    expect(JSON.parse(await readFile(f, 'utf8'))).toEqual({ a: 1 });
    expect(await readdir(dir)).toEqual(['config.json']);
    await rm(dir, { recursive: true });
  });
});

describe('errors', () => {
  it('carry a code and a Docker status', () => {
    const e = new NotFoundError('No such container: x');
    expect(e).toBeInstanceOf(TvmError);
    expect(e.status).toBe(404);
    expect(e.code).toBe('ERR_NOT_FOUND');
    expect(e.name).toBe('NotFoundError');
  });
});
