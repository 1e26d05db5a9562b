import { describe, it, expect } from 'vitest';
import { resolveScoped, MAX_SYMLINKS } from '../../src/scoped-path.js';
import { InvalidParameterError } from '../../src/errors.js';

/** a filesystem given as symlink table: path (relative, '/'-joined) -> target */
const fs = (links: Record<string, string>) => async (parts: string[]) => links[parts.join('/')] ?? null;
const resolve = async (p: string, links: Record<string, string>, followLast = true) =>
  '/' + (await resolveScoped(p, followLast, fs(links))).join('/');

describe('resolveScoped', () => {
  it('takes plain paths literally and folds . and //', async () => {
    expect(await resolve('/a/./b//c/', {})).toBe('/a/b/c');
    expect(await resolve('', {})).toBe('/');
  });
  it('never climbs above the root', async () => {
    expect(await resolve('/../../etc/passwd', {})).toBe('/etc/passwd');
    expect(await resolve('/a/x', { a: '../../../..' })).toBe('/x');
  });
  it('restarts absolute targets at the root and keeps relative ones in place', async () => {
    expect(await resolve('/lnk/f', { lnk: '/etc' })).toBe('/etc/f');
    expect(await resolve('/d/lnk/f', { 'd/lnk': '../e' })).toBe('/e/f');
    expect(await resolve('/a/b', { a: 'c', c: '/d', 'd/b': 'z' })).toBe('/d/z');
  });
  it('leaves the last component alone when asked (lstat semantics)', async () => {
    expect(await resolve('/d/lnk', { 'd/lnk': '/etc' }, false)).toBe('/d/lnk');
    expect(await resolve('/lnk/f', { lnk: '/etc' }, false)).toBe('/etc/f');
  });
  it("refuses symlink loops after Linux's 40 links", async () => {
    await expect(resolve('/a', { a: 'b', b: 'a' })).rejects.toBeInstanceOf(InvalidParameterError);
    const chain: Record<string, string> = {};
    for (let i = 0; i < MAX_SYMLINKS; i++) chain[`l${i}`] = `l${i + 1}`;
    expect(await resolve('/l0', chain)).toBe(`/l${MAX_SYMLINKS}`);
    chain[`l${MAX_SYMLINKS}`] = 'end';
    await expect(resolve('/l0', chain)).rejects.toThrow(/too many symlinks/);
  });
});
