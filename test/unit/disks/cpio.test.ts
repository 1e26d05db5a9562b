import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, readlinkSync, lstatSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  writeCpio,
  readCpio,
  encodeNewcHeader,
  decodeNewcHeader,
  normalizeCpioPath,
  NEWC_FIELDS,
  NEWC_HEADER_SIZE,
  NEWC_FIELD_WIDTH,
  NEWC_MAGIC,
  NEWC_CRC_MAGIC,
  S_IFREG,
  S_IFDIR,
  S_IFLNK,
  S_IFCHR,
  type CpioEntry,
  type NewcHeader,
} from '../../../src/disks/cpio.js';
import { FormatError, InvalidParameterError } from '../../../src/errors.js';

function gnuCpio(): string {
  try {
    execFileSync('cpio', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('missing GNU cpio (apt-get install cpio): needed to cross-check the newc writer');
  }
  return 'cpio';
}

const sample: CpioEntry[] = [
  { path: 'bin', type: 'directory' },
  { path: 'bin/hello', type: 'file', mode: 0o755, data: 'hello\n', uid: 1000, gid: 50, mtime: 1_700_000_000 },
  { path: 'bin/sh', type: 'symlink', target: 'hello' },
  { path: 'dev', type: 'directory', mode: 0o700 },
  { path: 'dev/console', type: 'char-device', rdevMajor: 5, rdevMinor: 1 },
  { path: 'dev/vda', type: 'block-device', rdevMajor: 254, rdevMinor: 0 },
  { path: 'dev/fifo', type: 'fifo' },
  { path: 'empty', type: 'file' },
  { path: 'odd', type: 'file', data: Buffer.from([1, 2, 3]) },
];

describe('newc header layout', () => {
  it('pins the field table to the spec: 13 fields of 8 hex digits after the 6-byte magic', () => {
    expect(NEWC_HEADER_SIZE).toBe(110);
    expect(NEWC_FIELD_WIDTH).toBe(8);
    expect(NEWC_FIELDS.map(([n]) => n)).toEqual([
      'c_ino',
      'c_mode',
      'c_uid',
      'c_gid',
      'c_nlink',
      'c_mtime',
      'c_filesize',
      'c_devmajor',
      'c_devminor',
      'c_rdevmajor',
      'c_rdevminor',
      'c_namesize',
      'c_check',
    ]);
    NEWC_FIELDS.forEach(([, off], i) => expect(off).toBe(6 + 8 * i));
    expect(NEWC_FIELDS.at(-1)![1] + NEWC_FIELD_WIDTH).toBe(NEWC_HEADER_SIZE);
  });

  it('encodes and decodes a header', () => {
    const h = Object.fromEntries(NEWC_FIELDS.map(([n], i) => [n, i * 0x01010101])) as NewcHeader;
    const b = encodeNewcHeader(h);
    expect(b.length).toBe(110);
    expect(b.toString('latin1', 0, 6)).toBe(NEWC_MAGIC);
    expect(b.toString('latin1', 14, 22)).toBe('01010101');
    expect(decodeNewcHeader(b, 0)).toEqual({ magic: NEWC_MAGIC, header: h });
  });

  it('encodes the exact bytes of a known member', () => {
    const a = writeCpio([{ path: 'x', type: 'file', mode: 0o644, data: 'ab' }]);
    const first =
      '070701' +
      '00000001' +
      '000081a4' +
      '00000000' +
      '00000000' +
      '00000001' +
      '00000000' +
      '00000002' +
      '00000000' +
      '00000000' +
      '00000000' +
      '00000000' +
      '00000002' +
      '00000000';
    expect(a.toString('latin1', 0, 110)).toBe(first);
    // name "x\0" then pad to 112, data "ab", pad to 116.
    expect(a.subarray(110, 116)).toEqual(Buffer.from([0x78, 0, 0x61, 0x62, 0, 0]));
    expect(a.toString('latin1', 116, 122)).toBe(NEWC_MAGIC);
  });
});

describe('writeCpio / readCpio', () => {
  it('round-trips every entry type with modes, owners, times and device numbers', () => {
    const recs = readCpio(writeCpio(sample));
    expect(recs.map((r) => r.path)).toEqual(sample.map((e) => e.path));
    const byPath = new Map(recs.map((r) => [r.path, r]));
    expect(byPath.get('bin')!.mode).toBe(S_IFDIR | 0o755);
    expect(byPath.get('bin')!.nlink).toBe(2);
    const hello = byPath.get('bin/hello')!;
    expect(hello).toMatchObject({ type: 'file', mode: S_IFREG | 0o755, uid: 1000, gid: 50, mtime: 1_700_000_000, nlink: 1 });
    expect(hello.data.toString()).toBe('hello\n');
    expect(byPath.get('bin/sh')).toMatchObject({ type: 'symlink', mode: S_IFLNK | 0o777, target: 'hello' });
    expect(byPath.get('dev')!.mode).toBe(S_IFDIR | 0o700);
    expect(byPath.get('dev/console')).toMatchObject({ type: 'char-device', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 });
    expect(byPath.get('dev/vda')).toMatchObject({ type: 'block-device', rdevMajor: 254, rdevMinor: 0 });
    expect(byPath.get('dev/fifo')!.type).toBe('fifo');
    expect(byPath.get('empty')!.data.length).toBe(0);
    expect([...byPath.get('odd')!.data]).toEqual([1, 2, 3]);
    // Inode numbers are unique and assigned in order.
    expect(recs.map((r) => r.ino)).toEqual(sample.map((_, i) => i + 1));
  });

  it('is deterministic and 4-byte aligned, ending with the trailer', () => {
    const a = writeCpio(sample);
    expect(writeCpio(sample).equals(a)).toBe(true);
    expect(a.length % 4).toBe(0);
    expect(a.includes(Buffer.from('TRAILER!!!\0'))).toBe(true);
  });

  it('pads names and data of every length correctly', () => {
    const entries: CpioEntry[] = [];
    for (let n = 1; n <= 9; n++) entries.push({ path: 'n'.repeat(n), type: 'file', data: Buffer.alloc(n, n) });
    const recs = readCpio(writeCpio(entries));
    recs.forEach((r, i) => {
      expect(r.path).toBe('n'.repeat(i + 1));
      expect(r.data).toEqual(Buffer.alloc(i + 1, i + 1));
    });
  });

  it('normalizes leading "/" and "./"', () => {
    expect(normalizeCpioPath('/a/b')).toBe('a/b');
    expect(normalizeCpioPath('./a/')).toBe('a');
  });

  it('rejects bad paths, duplicates, missing parents and bad fields with typed errors', () => {
    const bad: CpioEntry[][] = [
      [{ path: '', type: 'file' }],
      [{ path: 'a/../b', type: 'file' }],
      [{ path: 'a//b', type: 'file' }],
      [{ path: 'a\0b', type: 'file' }],
      [{ path: 'TRAILER!!!', type: 'file' }],
      [{ path: 'x'.repeat(5000), type: 'file' }],
      [
        { path: 'a', type: 'file' },
        { path: 'a', type: 'file' },
      ],
      [{ path: 'a/b', type: 'file' }],
      [
        { path: 'a', type: 'file' },
        { path: 'a/b', type: 'file' },
      ],
      [{ path: 'a', type: 'file', mode: 0o10000 }],
      [{ path: 'a', type: 'file', uid: -1 }],
      [{ path: 'a', type: 'file', mtime: 2 ** 32 }],
      [{ path: 'a', type: 'symlink' }],
      [{ path: 'a', type: 'directory', data: 'x' }],
      [{ path: 'a', type: 'file', target: 'x' }],
      [{ path: 'a', type: 'char-device' }],
      [{ path: 'a', type: 'file', rdevMajor: 1, rdevMinor: 1 }],
      [{ path: 'a', type: 'socket' as never }],
    ];
    for (const entries of bad) expect(() => writeCpio(entries), JSON.stringify(entries).slice(0, 80)).toThrow(InvalidParameterError);
  });

  it('rejects malformed archives with FormatError', () => {
    const good = writeCpio(sample);
    const cases: Buffer[] = [
      Buffer.alloc(0),
      good.subarray(0, 50),
      Buffer.concat([Buffer.from('070707'), good.subarray(6)]),
      good.subarray(0, good.length - 120), // no trailer
    ];
    const badHex = Buffer.from(good);
    badHex.write('zz', 20, 'latin1');
    cases.push(badHex);
    const noNul = Buffer.from(good);
    noNul[110 + 3] = 0x41; // "bin\0" -> "binA"
    cases.push(noNul);
    const hugeSize = Buffer.from(good);
    hugeSize.write('7fffffff', 54, 'latin1');
    cases.push(hugeSize);
    for (const c of cases) expect(() => readCpio(c)).toThrow(FormatError);
  });

  it('reads the crc variant and verifies its checksum', () => {
    const a = writeCpio([{ path: 'f', type: 'file', data: Buffer.from([200, 100]) }]);
    const crc = Buffer.from(a);
    crc.write(NEWC_CRC_MAGIC, 0, 'latin1');
    crc.write((300).toString(16).padStart(8, '0'), 102, 'latin1');
    expect(readCpio(crc)[0]!.data).toEqual(Buffer.from([200, 100]));
    crc.write('00000001', 102, 'latin1');
    expect(() => readCpio(crc)).toThrow(/checksum/);
  });
});

describe('cross-check with GNU cpio', () => {
  it('GNU cpio lists and extracts what we write', () => {
    const cpio = gnuCpio();
    const archive = writeCpio(sample.filter((e) => e.type !== 'block-device' && e.type !== 'char-device'));
    const list = execFileSync(cpio, ['-t', '--quiet', '-H', 'newc'], { input: archive }).toString().trim().split('\n');
    expect(list).toEqual(['bin', 'bin/hello', 'bin/sh', 'dev', 'dev/fifo', 'empty', 'odd']);
    const dir = mkdtempSync(path.join(tmpdir(), 'tvm-cpio-'));
    try {
      execFileSync(cpio, ['-i', '--quiet', '-H', 'newc', '--no-absolute-filenames', '-D', dir], { input: archive });
      expect(readFileSync(path.join(dir, 'bin/hello'), 'utf8')).toBe('hello\n');
      expect(lstatSync(path.join(dir, 'bin/hello')).mode & 0o7777).toBe(0o755);
      expect(readlinkSync(path.join(dir, 'bin/sh'))).toBe('hello');
      expect(lstatSync(path.join(dir, 'dev/fifo')).isFIFO()).toBe(true);
      expect(readFileSync(path.join(dir, 'odd'))).toEqual(Buffer.from([1, 2, 3]));
      expect(existsSync(path.join(dir, 'empty'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('GNU cpio reports device numbers as written (verbose listing)', () => {
    const cpio = gnuCpio();
    const archive = writeCpio([{ path: 'console', type: 'char-device', rdevMajor: 5, rdevMinor: 1 }]);
    const line = execFileSync(cpio, ['-tv', '--quiet', '-H', 'newc'], { input: archive }).toString();
    expect(line).toMatch(/^crw-------\s+1 root\s+root\s+5,\s+1 .* console\n$/);
  });

  it('we read what GNU cpio writes', () => {
    const cpio = gnuCpio();
    const dir = mkdtempSync(path.join(tmpdir(), 'tvm-cpio-'));
    try {
      execFileSync('sh', ['-c', `cd ${dir} && mkdir d && printf abc > d/f && ln -s f d/l`]);
      const archive = execFileSync('sh', ['-c', `cd ${dir} && printf 'd\\nd/f\\nd/l\\n' | ${cpio} -o --quiet -H newc`]);
      const recs = readCpio(archive);
      expect(recs.map((r) => [r.path, r.type])).toEqual([
        ['d', 'directory'],
        ['d/f', 'file'],
        ['d/l', 'symlink'],
      ]);
      expect(recs[1]!.data.toString()).toBe('abc');
      expect(recs[2]!.target).toBe('f');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
