import { mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  contiguousSize,
  findFreeRange,
  idMapFromRanges,
  parseRemapSpec,
  parseSubIdFile,
  rangesOf,
  resolveRemap,
  rootOf,
  toHost,
  validateIdMap,
} from '../../../src/runtime/userns.js';

describe('parseSubIdFile', () => {
  it('reads name:start:count lines, skipping blanks and comments', () => {
    const r = parseSubIdFile('# managed\nalice:100000:65536\n\n  bob:165536:65536  \n1000:231072:10\n', '/etc/subuid');
    expect(r).toEqual([
      { owner: 'alice', start: 100000, count: 65536 },
      { owner: 'bob', start: 165536, count: 65536 },
      { owner: '1000', start: 231072, count: 10 },
    ]);
  });

  it('names file and line of a malformed entry', () => {
    expect(() => parseSubIdFile('a:1:2\nbroken line\n', '/etc/subuid')).toThrow(/\/etc\/subuid:2: expected "name:start:count"/);
    expect(() => parseSubIdFile('a:x:2\n', 'f')).toThrow(/f:1/);
    expect(() => parseSubIdFile('a:1:0\n', 'f')).toThrow(/outside the 32-bit id space/);
    expect(() => parseSubIdFile('a:4294967295:2\n', 'f')).toThrow(/outside/);
    expect(() => parseSubIdFile(':1:2\n', 'f')).toThrow(/f:1/);
  });
});

describe('ranges and maps', () => {
  const ranges = parseSubIdFile('alice:100000:65536\nbob:165536:1000\nalice:300000:10\n1001:400000:5\n', 'f');

  it("finds a user's ranges by name or numeric id, in file order", () => {
    expect(rangesOf(ranges, 'alice').map((r) => r.start)).toEqual([100000, 300000]);
    expect(rangesOf(ranges, 'carol', 1001).map((r) => r.start)).toEqual([400000]);
    expect(rangesOf(ranges, 'nobody')).toEqual([]);
  });

  it('maps container ids 0.. onto the ranges consecutively', () => {
    const m = idMapFromRanges(rangesOf(ranges, 'alice'));
    expect(m).toEqual([
      { containerID: 0, hostID: 100000, size: 65536 },
      { containerID: 65536, hostID: 300000, size: 10 },
    ]);
    expect(toHost(m, 0)).toBe(100000);
    expect(toHost(m, 65535)).toBe(165535);
    expect(toHost(m, 65536)).toBe(300000);
    expect(toHost(m, 65546)).toBeUndefined();
    expect(contiguousSize(m)).toBe(65546);
    expect(rootOf({ uidMap: m, gidMap: m })).toEqual({ uid: 100000, gid: 100000 });
  });

  it('allocates the first gap of 65536 ids from 100000', () => {
    expect(findFreeRange([])).toBe(100000);
    expect(findFreeRange(ranges)).toBe(166536);
    expect(findFreeRange(parseSubIdFile('x:100000:65536\ny:300000:65536\n', 'f'))).toBe(165536);
    expect(findFreeRange(parseSubIdFile('x:150000:65536\n', 'f'))).toBe(215536);
    // ranges below the floor do not matter
    expect(findFreeRange(parseSubIdFile('x:1000:500\n', 'f'))).toBe(100000);
    expect(() => findFreeRange(parseSubIdFile('x:100000:4294867295\n', 'f'))).toThrow(/no free range/);
  });

  it('validates maps before they reach the kernel', () => {
    expect(() => validateIdMap([], 'm')).toThrow(/empty/);
    expect(() => validateIdMap([{ containerID: 0, hostID: 1, size: 0 }], 'm')).toThrow(/invalid entry/);
    expect(() => validateIdMap([{ containerID: 0, hostID: 0, size: 65536 }], 'm')).toThrow(/host id 0/);
    expect(() =>
      validateIdMap(
        [
          { containerID: 0, hostID: 100, size: 10 },
          { containerID: 5, hostID: 200, size: 10 },
        ],
        'm',
      ),
    ).toThrow(/overlap/);
    expect(() =>
      validateIdMap(
        [
          { containerID: 0, hostID: 100, size: 10 },
          { containerID: 10, hostID: 105, size: 10 },
        ],
        'm',
      ),
    ).toThrow(/overlap/);
    expect(() =>
      validateIdMap(
        [
          { containerID: 0, hostID: 100, size: 10 },
          { containerID: 10, hostID: 110, size: 10 },
        ],
        'm',
      ),
    ).not.toThrow();
  });
});

describe('parseRemapSpec', () => {
  it("accepts Docker's forms", () => {
    expect(parseRemapSpec('default')).toEqual({ user: 'dockremap', group: 'dockremap' });
    expect(parseRemapSpec('alice')).toEqual({ user: 'alice' });
    expect(parseRemapSpec('alice:staff')).toEqual({ user: 'alice', group: 'staff' });
    expect(parseRemapSpec('1000:1000')).toEqual({ user: '1000', group: '1000' });
  });
  it('refuses empty, malformed and root', () => {
    expect(() => parseRemapSpec('')).toThrow(/empty/);
    expect(() => parseRemapSpec('a:b:c')).toThrow(/expected default/);
    expect(() => parseRemapSpec('a b')).toThrow(/expected default/);
    expect(() => parseRemapSpec('root')).toThrow(/root is not allowed/);
    expect(() => parseRemapSpec('0:0')).toThrow(/root is not allowed/);
  });
});

describe('resolveRemap', () => {
  let etc: string;
  beforeEach(async () => {
    etc = await mkdtemp(path.join(tmpdir(), 'tvm-userns-'));
    await writeFile(path.join(etc, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n');
    await writeFile(path.join(etc, 'group'), 'root:x:0:\nalice:x:1000:\nstaff:x:50:\n');
    await writeFile(path.join(etc, 'subuid'), 'alice:100000:65536\nother:165536:65536\n');
    await writeFile(path.join(etc, 'subgid'), 'alice:200000:65536\n');
  });
  afterEach(async () => {
    await rm(etc, { recursive: true, force: true });
  });

  it('resolves a named user and its group of the same name', async () => {
    const r = await resolveRemap('alice', { etcDir: etc });
    expect(r.user).toBe('alice');
    expect(r.group).toBe('alice');
    expect(r.maps.uidMap).toEqual([{ containerID: 0, hostID: 100000, size: 65536 }]);
    expect(r.maps.gidMap).toEqual([{ containerID: 0, hostID: 200000, size: 65536 }]);
  });

  it("a group without subgid lines of its own uses the user's", async () => {
    const r = await resolveRemap('alice:staff', { etcDir: etc });
    expect(r.group).toBe('staff');
    expect(r.maps.gidMap[0]!.hostID).toBe(200000);
  });

  it('refuses unknown users and users without ranges, creating nothing', async () => {
    await expect(resolveRemap('carol', { etcDir: etc })).rejects.toThrow(/no such user "carol"/);
    await appendFile(path.join(etc, 'passwd'), 'dave:x:1001:1001::/:/bin/false\n');
    await appendFile(path.join(etc, 'group'), 'dave:x:1001:\n');
    await expect(resolveRemap('dave', { etcDir: etc })).rejects.toThrow(/no subordinate ids for dave/);
    expect(await readFile(path.join(etc, 'subuid'), 'utf8')).toBe('alice:100000:65536\nother:165536:65536\n');
  });

  it('default creates dockremap and a free range once, then reuses them', async () => {
    let created = 0;
    const createUser = async (name: string) => {
      created++;
      await appendFile(path.join(etc, 'passwd'), `${name}:x:998:998::/nonexistent:/bin/false\n`);
      await appendFile(path.join(etc, 'group'), `${name}:x:998:\n`);
    };
    const a = await resolveRemap('default', { etcDir: etc, createUser });
    expect(created).toBe(1);
    expect(a.user).toBe('dockremap');
    expect(a.maps.uidMap).toEqual([{ containerID: 0, hostID: 231072, size: 65536 }]);
    // subgid has only alice's 200000..265535: the first gap from 100000 is below it
    expect(a.maps.gidMap).toEqual([{ containerID: 0, hostID: 100000, size: 65536 }]);
    expect(await readFile(path.join(etc, 'subuid'), 'utf8')).toBe('alice:100000:65536\nother:165536:65536\ndockremap:231072:65536\n');
    const b = await resolveRemap('default', { etcDir: etc, createUser });
    expect(created).toBe(1);
    expect(b.maps).toEqual(a.maps);
    expect((await readFile(path.join(etc, 'subgid'), 'utf8')).match(/dockremap/g)).toHaveLength(1);
  });
});
