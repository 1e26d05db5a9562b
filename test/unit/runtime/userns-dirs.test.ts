import { chmod, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canSearch, checkReachable } from '../../../src/daemon/userns-dirs.js';

const who = { uid: 100000, gid: 100000 };

describe('the mapped root reaching the data root', () => {
  it('searches by owner, then group, then other bits', () => {
    expect(canSearch({ mode: 0o700, uid: 100000, gid: 0 }, who)).toBe(true);
    expect(canSearch({ mode: 0o700, uid: 0, gid: 0 }, who)).toBe(false);
    expect(canSearch({ mode: 0o710, uid: 0, gid: 100000 }, who)).toBe(true);
    expect(canSearch({ mode: 0o701, uid: 0, gid: 100000 }, who)).toBe(false);
    expect(canSearch({ mode: 0o711, uid: 0, gid: 0 }, who)).toBe(true);
    expect(canSearch({ mode: 0o755, uid: 0, gid: 0 }, who)).toBe(true);
  });

  let base: string;
  beforeEach(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'tvm-reach-'));
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('opens the roots themselves (0711) and names an ancestor that blocks the way', async () => {
    await chmod(base, 0o755);
    const data = path.join(base, 'data');
    await mkdir(data, { mode: 0o700 });
    await checkReachable(who, [data]);
    expect((await stat(data)).mode & 0o777).toBe(0o711);
    await chmod(base, 0o700);
    await expect(checkReachable(who, [data])).rejects.toThrow(new RegExp(`cannot pass through ${base} \\(mode 700\\)`));
  });
});
