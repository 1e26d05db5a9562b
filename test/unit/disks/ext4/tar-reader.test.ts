import { describe, it, expect } from 'vitest';
import { TarReader, parsePax, parsePaxTime, type TarHeader } from '../../../../src/disks/ext4/tar-reader.js';
import { FormatError } from '../../../../src/errors.js';

function header(h: {
  name: string;
  type?: string;
  mode?: number;
  size?: number;
  uid?: number;
  linkname?: string;
  prefix?: string;
  sizeField?: Buffer;
}): Buffer {
  const b = Buffer.alloc(512);
  const oct = (v: number, len: number) => v.toString(8).padStart(len - 1, '0') + '\0';
  b.write(h.name, 0, 100, 'latin1');
  b.write(oct(h.mode ?? 0o644, 8), 100, 'latin1');
  b.write(oct(h.uid ?? 0, 8), 108, 'latin1');
  b.write(oct(0, 8), 116, 'latin1');
  if (h.sizeField) h.sizeField.copy(b, 124);
  else b.write(oct(h.size ?? 0, 12), 124, 'latin1');
  b.write(oct(1700000000, 12), 136, 'latin1');
  b.write(h.type ?? '0', 156, 'latin1');
  b.write(h.linkname ?? '', 157, 100, 'latin1');
  b.write('ustar\0', 257, 'latin1');
  b.write('00', 263, 'latin1');
  if (h.prefix) b.write(h.prefix, 345, 155, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}
const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
function pax(records: [string, Buffer | string][]): Buffer {
  const parts = records.map(([k, v]) => {
    const val = typeof v === 'string' ? Buffer.from(v) : v;
    const body = Buffer.concat([Buffer.from(` ${k}=`), val, Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    return Buffer.concat([Buffer.from(String(len)), body]);
  });
  return Buffer.concat(parts);
}
const END = Buffer.alloc(1024);

async function readAll(tar: Buffer, chunk = 100): Promise<{ h: TarHeader; data: Buffer; offsets: number[] }[]> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < tar.length; i += chunk) chunks.push(tar.subarray(i, i + chunk));
  const r = new TarReader(
    (async function* () {
      yield* chunks;
    })(),
  );
  const out: { h: TarHeader; data: Buffer; offsets: number[] }[] = [];
  for (;;) {
    const h = await r.next();
    if (!h) break;
    const parts: Buffer[] = [];
    const offsets: number[] = [];
    let size = h.size;
    const data = Buffer.alloc(Math.min(size, 1 << 20));
    await r.readData((c, off) => {
      offsets.push(off);
      if (off + c.length <= data.length) c.copy(data, off);
      parts.push(Buffer.from(c));
    });
    size = 0;
    out.push({ h, data: h.sparseMap ? data : Buffer.concat(parts), offsets });
  }
  return out;
}

describe('TarReader', () => {
  it('reads ustar entries with prefix, types, and data split across odd chunks', async () => {
    const tar = Buffer.concat([
      header({ name: 'dir/', type: '5', mode: 0o755 }),
      header({ name: 'file', prefix: 'a/very/long/prefix', size: 700, mode: 0o4755, uid: 1234 }),
      pad(Buffer.alloc(700, 0x41)),
      header({ name: 'hl', type: '1', linkname: 'a/very/long/prefix/file' }),
      header({ name: 'sl', type: '2', linkname: '../x' }),
      END,
    ]);
    const all = await readAll(tar, 37);
    expect(all.map((e) => [e.h.name, e.h.type])).toEqual([
      ['dir/', 'dir'],
      ['a/very/long/prefix/file', 'file'],
      ['hl', 'link'],
      ['sl', 'symlink'],
    ]);
    expect(all[1]!.h.mode).toBe(0o4755);
    expect(all[1]!.h.uid).toBe(1234);
    expect(all[1]!.data).toEqual(Buffer.alloc(700, 0x41));
    expect(all[2]!.h.linkname).toBe('a/very/long/prefix/file');
  });

  it('applies pax records with binary xattr values, ns times, long paths and 32-bit ids', async () => {
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0xff, 0x0a, 0x00, 0x00]);
    const long = 'd/'.repeat(80) + 'file';
    const p = pax([
      ['path', long],
      ['mtime', '1700000000.5'],
      ['uid', '4000000000'],
      ['SCHILY.xattr.security.capability', cap],
      ['SCHILY.xattr.user.x', 'y'],
    ]);
    const tar = Buffer.concat([
      header({ name: 'PaxHeader', type: 'x', size: p.length }),
      pad(p),
      header({ name: 'short', size: 1 }),
      pad(Buffer.from('z')),
      END,
    ]);
    const [e] = await readAll(tar);
    expect(e!.h.name).toBe(long);
    expect(e!.h.mtime).toEqual({ sec: 1700000000, nsec: 500_000_000 });
    expect(e!.h.uid).toBe(4_000_000_000);
    expect(e!.h.xattrs.get('security.capability')).toEqual(cap);
    expect(e!.h.xattrs.get('user.x')!.toString()).toBe('y');
  });

  it('reads bsdtar LIBARCHIVE.xattr records and old-style directories', async () => {
    const p = pax([['LIBARCHIVE.xattr.user.a%20b', Buffer.from([0, 1, 2, 255]).toString('base64')]]);
    const tar = Buffer.concat([
      header({ name: 'PaxHeader', type: 'x', size: p.length }),
      pad(p),
      header({ name: 'x', size: 0 }),
      header({ name: 'olddir/', type: '\0' }),
      END,
    ]);
    const [x, d] = await readAll(tar);
    expect(x!.h.xattrs.get('user.a b')).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(d!.h.type).toBe('dir');
  });

  it('reads GNU long names and base-256 sizes', async () => {
    const name = 'n'.repeat(300);
    const l = Buffer.from(name + '\0');
    const size = Buffer.alloc(12);
    size[0] = 0x80;
    size.writeUInt32BE(3, 8);
    const tar = Buffer.concat([
      header({ name: '././@LongLink', type: 'L', size: l.length }),
      pad(l),
      header({ name: 'x', sizeField: size }),
      pad(Buffer.from('abc')),
      END,
    ]);
    const [e] = await readAll(tar);
    expect(e!.h.name).toBe(name);
    expect(e!.data.toString()).toBe('abc');
  });

  it('reads GNU sparse 1.0 (map in the body) and 0.1 (map in pax) files', async () => {
    const map = pad(Buffer.from('2\n0\n3\n10000\n2\n'));
    const body = Buffer.concat([map, Buffer.from('abcde')]);
    const p1 = pax([
      ['GNU.sparse.major', '1'],
      ['GNU.sparse.minor', '0'],
      ['GNU.sparse.name', 'sp1'],
      ['GNU.sparse.realsize', '20000'],
    ]);
    const p01 = pax([
      ['GNU.sparse.map', '5,2,100,1'],
      ['GNU.sparse.size', '200'],
      ['GNU.sparse.name', 'sp01'],
    ]);
    const tar = Buffer.concat([
      header({ name: 'PaxHeader', type: 'x', size: p1.length }),
      pad(p1),
      header({ name: 'GNUSparseFile.0/sp1', size: body.length }),
      pad(body),
      header({ name: 'PaxHeader', type: 'x', size: p01.length }),
      pad(p01),
      header({ name: 'GNUSparseFile.0/sp01', size: 3 }),
      pad(Buffer.from('xyz')),
      END,
    ]);
    const [a, b] = await readAll(tar);
    expect(a!.h.name).toBe('sp1');
    expect(a!.h.size).toBe(20000);
    expect(a!.h.sparseMap).toEqual([
      { offset: 0, length: 3 },
      { offset: 10000, length: 2 },
    ]);
    expect(a!.data.subarray(0, 3).toString()).toBe('abc');
    expect(a!.data.subarray(10000, 10002).toString()).toBe('de');
    expect(b!.h.name).toBe('sp01');
    expect(b!.h.size).toBe(200);
    expect(b!.offsets).toEqual([5, 100]);
  });

  it('skips unread bodies', async () => {
    const tar = Buffer.concat([header({ name: 'a', size: 1000 }), pad(Buffer.alloc(1000)), header({ name: 'b' }), END]);
    const r = new TarReader(
      (async function* () {
        yield tar;
      })(),
    );
    expect((await r.next())!.name).toBe('a');
    expect((await r.next())!.name).toBe('b');
    expect(await r.next()).toBeNull();
  });

  it('names the entry in every error', async () => {
    const bad = async (tar: Buffer, re: RegExp) => {
      const err = await readAll(tar).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(re);
    };
    await bad(Buffer.concat([header({ name: 'f', size: 600 }), Buffer.alloc(100)]), /truncated in entry f/);
    await bad(header({ name: 'f' }), /truncated after f/);
    await bad(Buffer.concat([header({ name: 'dump', type: 'D' }), END]), /dump: unsupported type flag "D"/);
    const h = header({ name: 'sum' });
    h[0] = 0x53;
    await bad(Buffer.concat([h, END]), /checksum/);
    await bad(Buffer.concat([header({ name: 'px', type: 'x', size: 8 }), pad(Buffer.from('99 a=b\n')), END]), /px: malformed pax record/);
    await bad(Buffer.alloc(100), /truncated after \(start of archive\)/);
  });

  it('parses pax records and times', () => {
    expect([...parsePax(Buffer.from('8 a=bcd\n'), 'x')]).toEqual([['a', Buffer.from('bcd')]]);
    expect(parsePaxTime('-1.25', 'x')).toEqual({ sec: -2, nsec: 750_000_000 });
    expect(parsePaxTime('12', 'x')).toEqual({ sec: 12, nsec: 0 });
    expect(parsePaxTime('1.1234567891', 'x')).toEqual({ sec: 1, nsec: 123456789 });
    expect(() => parsePaxTime('1e9', 'x')).toThrow(FormatError);
  });
});
