import { describe, expect, it } from 'vitest';
import { entryFrame, entryPath } from '../../../../src/runtime/vm/guest-extract.js';

describe('docker cp entries for the guest agent', () => {
  it('normalizes names relative to the destination; the destination itself is "."', () => {
    expect(entryPath('a/b/')).toBe('a/b');
    expect(entryPath('/abs/./x')).toBe('abs/x');
    expect(entryPath('./')).toBe('.');
    expect(entryPath('d/../e')).toBe('e');
  });

  it('refuses a name that climbs out of the destination', () => {
    expect(() => entryPath('../x')).toThrow(/escapes the destination/);
    expect(() => entryPath('a/../../x')).toThrow(/escapes the destination/);
  });

  it('maps tar headers to entry frames; devices and fifos are not copied', () => {
    expect(entryFrame({ name: 'f', type: 'file', size: 3, mode: 0o104755, uid: 5, gid: 6, mtime: new Date(2_000_500) })).toEqual({
      v: 1,
      type: 'entry',
      path: 'f',
      kind: 'file',
      mode: 0o4755,
      uid: 5,
      gid: 6,
      size: 3,
      mtime: 2000,
    });
    expect(entryFrame({ name: 'd/', type: 'directory' })).toMatchObject({ kind: 'dir', mode: 0o755, size: 0 });
    expect(entryFrame({ name: 'l', type: 'symlink', linkname: '/etc/x' })).toMatchObject({ kind: 'symlink', linkname: '/etc/x' });
    expect(entryFrame({ name: 'h', type: 'link', linkname: './d/f' })).toMatchObject({ kind: 'link', linkname: 'd/f' });
    expect(() => entryFrame({ name: 'h', type: 'link', linkname: '../f' })).toThrow(/escapes/);
    expect(entryFrame({ name: 'c', type: 'character-device' })).toBeUndefined();
    expect(entryFrame({ name: 'p', type: 'fifo' })).toBeUndefined();
  });
});
