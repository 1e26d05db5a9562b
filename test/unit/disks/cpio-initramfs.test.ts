import { describe, it, expect } from 'vitest';
import { buildInitramfs, busyboxEntries, completeTree, initramfsEntries, DEV_CONSOLE } from '../../../src/disks/initramfs.js';
import { readCpio } from '../../../src/disks/cpio.js';
import { InvalidParameterError } from '../../../src/errors.js';

describe('buildInitramfs', () => {
  it('has /init (0755), /dev/console and the parents of every file, parents first', () => {
    const img = buildInitramfs({
      init: '#!/bin/sh\necho hi\n',
      dirs: ['proc', 'sys'],
      files: [{ path: 'etc/deep/conf', type: 'file', data: 'x' }],
    });
    const recs = readCpio(img);
    const paths = recs.map((r) => r.path);
    expect(paths).toEqual(['dev', 'dev/console', 'etc', 'etc/deep', 'etc/deep/conf', 'init', 'proc', 'sys']);
    const init = recs.find((r) => r.path === 'init')!;
    expect(init.mode & 0o7777).toBe(0o755);
    expect(init.data.toString()).toBe('#!/bin/sh\necho hi\n');
    const console = recs.find((r) => r.path === 'dev/console')!;
    expect([console.type, console.rdevMajor, console.rdevMinor]).toEqual(['char-device', DEV_CONSOLE.major, DEV_CONSOLE.minor]);
  });

  it('does not depend on the order entries are given in', () => {
    const files = [
      { path: 'b/x', type: 'file' as const, data: '1' },
      { path: 'a/y', type: 'file' as const, data: '2' },
    ];
    const one = buildInitramfs({ init: 'i', files });
    const two = buildInitramfs({ init: 'i', files: [...files].reverse() });
    expect(one.equals(two)).toBe(true);
  });

  it('can leave out /dev/console', () => {
    expect(readCpio(buildInitramfs({ init: 'i', devConsole: false })).map((r) => r.path)).toEqual(['init']);
  });

  it('rejects duplicates and a file used as a parent', () => {
    expect(() => initramfsEntries({ init: 'i', files: [{ path: 'init', type: 'file' }] })).toThrow(InvalidParameterError);
    expect(() =>
      completeTree([
        { path: 'a', type: 'file' },
        { path: 'a/b', type: 'file' },
      ]),
    ).toThrow(/needs "a" to be a directory/);
  });
});

describe('busyboxEntries', () => {
  it('installs busybox and one symlink per applet', () => {
    const e = busyboxEntries(Buffer.from('ELF'), ['sh', 'ls']);
    expect(e.map((x) => [x.path, x.type, x.target])).toEqual([
      ['bin/busybox', 'file', undefined],
      ['bin/sh', 'symlink', 'busybox'],
      ['bin/ls', 'symlink', 'busybox'],
    ]);
    expect(() => busyboxEntries(Buffer.from(''), ['a/b'])).toThrow(InvalidParameterError);
  });
});
