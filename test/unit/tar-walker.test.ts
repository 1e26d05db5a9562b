import { describe, it, expect } from 'vitest';
import { TarWalker, TarField, TAR_BLOCK, MAX_META_BODY, type TarEntryInfo } from '../../src/tar-walker.js';
import { LayerTarChecker } from '../../src/tar-safety.js';
import { FormatError } from '../../src/errors.js';
import { packTar } from '../fixtures/rootfs.js';

/** One ustar header block with a valid checksum. */
function header(o: {
  name: string;
  size?: number;
  type?: string;
  linkname?: string;
  prefix?: string;
  magic?: string;
  extended?: boolean;
}): Buffer {
  const h = Buffer.alloc(TAR_BLOCK);
  h.write(o.name, TarField.name[0], 'latin1');
  h.write('0000644\0', 100, 'latin1');
  h.write((o.size ?? 0).toString(8).padStart(11, '0') + '\0', TarField.size[0], 'latin1');
  h.write(o.type ?? '0', TarField.typeflag[0], 'latin1');
  if (o.linkname) h.write(o.linkname, TarField.linkname[0], 'latin1');
  h.write(o.magic ?? 'ustar\x0000', TarField.magic[0], 'latin1');
  if (o.prefix) h.write(o.prefix, TarField.prefix[0], 'latin1');
  if (o.extended) h[482] = 1;
  h.fill(0x20, TarField.chksum[0], TarField.chksum[0] + 8);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', TarField.chksum[0], 'latin1');
  return h;
}

function body(data: Buffer | string): Buffer {
  const b = Buffer.from(data);
  return Buffer.concat([b, Buffer.alloc((TAR_BLOCK - (b.length % TAR_BLOCK)) % TAR_BLOCK)]);
}

function pax(records: Record<string, string>, type = 'x'): Buffer {
  let text = '';
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`;
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
    text += `${len}${rest}`;
  }
  return Buffer.concat([header({ name: 'PaxHeader', size: Buffer.byteLength(text), type }), body(text)]);
}

const END = Buffer.alloc(2 * TAR_BLOCK);

/** Walks `tar` fed in chunks of `chunk` bytes; returns the entries seen. */
function walk(tar: Buffer, chunk = tar.length): TarEntryInfo[] {
  const seen: TarEntryInfo[] = [];
  const w = new TarWalker('test layer', (e) => seen.push(e));
  for (let i = 0; i < tar.length; i += chunk) w.push(tar.subarray(i, i + chunk));
  w.end();
  return seen;
}

describe('TarWalker', () => {
  it('pins the ustar field offsets', () => {
    expect(TarField).toEqual({
      name: [0, 100],
      size: [124, 12],
      chksum: [148, 8],
      typeflag: [156, 1],
      linkname: [157, 100],
      magic: [257, 6],
      prefix: [345, 155],
    });
  });

  it('reads what packTar writes, in any chunking', async () => {
    const tar = await packTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' },
      { name: 'etc/link', type: 'link', linkname: 'etc/passwd' },
      { name: 'big', content: Buffer.alloc(3000, 7) },
    ]);
    const names = (c: number) => walk(tar, c).map((e) => `${e.type}:${e.name}:${e.size}`);
    const want = ['5:etc/:0', '0:etc/passwd:26', '1:etc/link:0', '0:big:3000'];
    for (const c of [1, 7, 511, 512, 513, 4096, tar.length]) expect(names(c)).toEqual(want);
  });

  it('applies pax path/linkpath/size, global pax, GNU long names and the ustar prefix', () => {
    const long = 'd/' + 'x'.repeat(150);
    const tar = Buffer.concat([
      pax({ path: long }),
      header({ name: 'short', size: 3 }),
      body('abc'),
      Buffer.concat([header({ name: '././@LongLink', size: long.length + 1, type: 'L' }), body(long + '\0')]),
      header({ name: 'trunc', type: '5' }),
      header({ name: 'name', prefix: 'some/prefix', type: '5' }),
      pax({ size: '5' }),
      header({ name: 'sized', size: 0 }),
      body('12345'),
      pax({ path: 'global' }, 'g'),
      header({ name: 'ignored', type: '5' }),
      END,
    ]);
    expect(walk(tar, 100).map((e) => [e.name, e.size])).toEqual([
      [long, 3],
      [long, 0],
      ['some/prefix/name', 0],
      ['sized', 5],
      ['global', 0],
    ]);
  });

  it('gives header-only types no body, as Go and our ext4 consumer read them', () => {
    // a directory whose size field claims 512 bytes: the next block is a header, not its data
    const tar = Buffer.concat([
      header({ name: 'dir/', type: '5', size: 512 }),
      header({ name: 'after' }),
      header({ name: 'old-dir/', type: '\0', size: 512 }),
      header({ name: 'x' }),
      END,
    ]);
    expect(walk(tar).map((e) => e.name)).toEqual(['dir/', 'after', 'old-dir/', 'x']);
  });

  it('walks old GNU sparse extension blocks before the body', () => {
    const ext = Buffer.alloc(TAR_BLOCK);
    const tar = Buffer.concat([
      header({ name: 'sparse', type: 'S', size: 3, extended: true, magic: 'ustar  \0' }),
      ext,
      body('abc'),
      header({ name: 'next' }),
      END,
    ]);
    expect(walk(tar, 64).map((e) => e.name)).toEqual(['sparse', 'next']);
  });

  it('ends at the first zero block and ignores what follows', () => {
    const tar = Buffer.concat([header({ name: 'a' }), Buffer.alloc(TAR_BLOCK), Buffer.from('garbage after the end')]);
    expect(walk(tar).map((e) => e.name)).toEqual(['a']);
  });

  it('refuses truncation, a missing end marker and bad checksums', () => {
    const tar = Buffer.concat([header({ name: 'file', size: 2000 }), body(Buffer.alloc(2000, 1)), END]);
    expect(() => walk(tar.subarray(0, 1000))).toThrow(/truncated in entry file/);
    expect(() => walk(tar.subarray(0, 100))).toThrow(/truncated in entry \(start of archive\)/);
    expect(() => walk(Buffer.concat([header({ name: 'file', size: 1 }), body('x')]))).toThrow(
      /truncated after file: no end-of-archive marker/,
    );
    expect(() => walk(Buffer.alloc(0))).toThrow(FormatError);
    const bad = header({ name: 'file' });
    bad[0]! ^= 1;
    expect(() => walk(Buffer.concat([bad, END]))).toThrow(/checksum mismatch/);
    const notOctal = header({ name: 'file' });
    expect(() => walk(Buffer.concat([Buffer.from(notOctal.fill(0x39, 124, 135)), END]))).toThrow(FormatError);
  });
});

describe('LayerTarChecker', () => {
  const check = (tar: Buffer, known?: Set<string>, defer = false) => {
    const c = new LayerTarChecker('layer sha256:x', known, defer);
    c.push(tar);
    return c.end();
  };

  it('refuses absolute paths and .. anywhere, including names from pax and long-name records', () => {
    expect(() => check(Buffer.concat([header({ name: '/etc/passwd' }), END]))).toThrow(/"\/etc\/passwd" has an absolute path/);
    expect(() => check(Buffer.concat([header({ name: 'a/../../b' }), END]))).toThrow(/contains '\.\.'/);
    expect(() => check(Buffer.concat([pax({ path: '../escape' }), header({ name: 'harmless' }), END]))).toThrow(
      /"\.\.\/escape" contains '\.\.'/,
    );
    expect(() =>
      check(Buffer.concat([header({ name: '././@LongLink', size: 10, type: 'L' }), body('/abs/long\0'), header({ name: 'ok' }), END])),
    ).toThrow(/absolute/);
  });

  it('needs hard link targets earlier in the layer or below; defers them when asked', () => {
    const tar = Buffer.concat([header({ name: 'link', type: '1', linkname: 'missing' }), END]);
    expect(() => check(tar)).toThrow(/hard link "link" points to missing "missing"/);
    expect(check(tar, new Set(['missing'])).entries).toBe(1);
    expect(check(tar, undefined, true).dangling).toEqual([{ name: 'link', target: 'missing' }]);
    expect(() => check(Buffer.concat([header({ name: 'link', type: '1', linkname: '../x' }), END]))).toThrow(/contains '\.\.'/);
    const ok = check(Buffer.concat([header({ name: './a/b' }), header({ name: 'l', type: '1', linkname: 'a/b' }), END]));
    expect([...ok.paths]).toEqual(['a/b', 'l']);
  });
});

describe('TarWalker reads names exactly as the ext4 TarReader', () => {
  /** the names our ext4 consumer would write for `tar` */
  async function readerNames(tar: Buffer): Promise<string[]> {
    const { TarReader } = await import('../../src/disks/ext4/tar-reader.js');
    const r = new TarReader(
      (async function* () {
        yield tar;
      })(),
    );
    const out: string[] = [];
    for (let h = await r.next(); h; h = await r.next()) out.push(h.name);
    return out;
  }

  // pax sparse 1.0: the consumer names the file by GNU.sparse.name, not by path
  const sparse1 = (sparseName: string) =>
    Buffer.concat([
      pax({
        path: 'GNUSparseFile.0/decoy',
        'GNU.sparse.major': '1',
        'GNU.sparse.minor': '0',
        'GNU.sparse.name': sparseName,
        'GNU.sparse.realsize': '0',
      }),
      header({ name: 'GNUSparseFile.0/decoy', size: TAR_BLOCK }),
      body('0\n'),
      END,
    ]);
  // pax sparse 0.1: GNU.sparse.map in the records, the data in the body
  const sparse01 = (sparseName: string) =>
    Buffer.concat([
      pax({ path: 'decoy', 'GNU.sparse.map': '0,3', 'GNU.sparse.name': sparseName, 'GNU.sparse.size': '3' }),
      header({ name: 'decoy', size: 3 }),
      body('abc'),
      END,
    ]);

  it('uses GNU.sparse.name for pax sparse files (formats 0.1 and 1.0)', async () => {
    for (const tar of [sparse1('real/name'), sparse01('real/name')]) {
      expect(await readerNames(tar)).toEqual(['real/name']);
      expect(walk(tar).map((e) => e.name)).toEqual(['real/name']);
    }
  });

  it('refuses a .. hidden in GNU.sparse.name behind a harmless path', () => {
    const c = new LayerTarChecker('layer sha256:x');
    expect(() => {
      c.push(sparse1('../../etc/shadow'));
      c.end();
    }).toThrow(/contains '\.\.'/);
  });
});

describe('TarWalker bounds what the consumer would hold in memory', () => {
  /** one pax header whose single record (an unknown key, so it is kept by the consumer only) is ~`bytes` long */
  function bigPax(key: string, bytes: number, type = 'x'): Buffer {
    const value = 'v'.repeat(bytes);
    const rest = ` ${key}=${value}\n`;
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
    const text = `${len}${rest}`;
    return Buffer.concat([header({ name: 'PaxHeader', size: text.length, type }), body(text)]);
  }

  /** walk() under a bound of `limit` pax bytes */
  function walkBounded(tar: Buffer, limit: number, chunk: number): TarEntryInfo[] {
    const seen: TarEntryInfo[] = [];
    const w = new TarWalker('test layer', (e) => seen.push(e), limit);
    for (let i = 0; i < tar.length; i += chunk) w.push(tar.subarray(i, i + chunk));
    w.end();
    return seen;
  }

  it('bounds pax records at 64 MiB, as the consumer does', () => {
    expect(MAX_META_BODY).toBe(64 << 20);
    // one header declaring more is refused before its body is read
    expect(() => walk(Buffer.concat([header({ name: 'PaxHeader', size: MAX_META_BODY + 1, type: 'x' }), END]))).toThrow(
      /'x' header of 67108865 bytes is too large/,
    );
  });

  // The bound scaled down 1024 times (64 KiB): 64 MiB of records took seconds to build and walk.
  it('refuses pax records adding up past the bound before one entry, or in global headers', () => {
    const limit = 64 << 10;
    const part = 33 << 10;
    const local = Buffer.concat([bigPax('a.key', part), bigPax('b.key', part), header({ name: 'f' }), END]);
    expect(() => walkBounded(local, limit, 1 << 10)).toThrow(/pax records of more than 65536 bytes/);
    const global = Buffer.concat([
      bigPax('a.key', part, 'g'),
      header({ name: 'f' }),
      bigPax('b.key', part, 'g'),
      header({ name: 'g' }),
      END,
    ]);
    expect(() => walkBounded(global, limit, 1 << 10)).toThrow(/global pax records of more than 65536 bytes/);
    // the same records, each before its own entry, are fine
    expect(
      walkBounded(
        Buffer.concat([bigPax('a.key', part), header({ name: 'f' }), bigPax('b.key', part), header({ name: 'g' }), END]),
        limit,
        1 << 10,
      ),
    ).toHaveLength(2);
  });
});

describe('LayerTarChecker: name lengths', () => {
  it('refuses names and link targets longer than PATH_MAX (each is kept for the hard link checks)', () => {
    const c = (tar: Buffer) => {
      const k = new LayerTarChecker('layer sha256:x');
      k.push(tar);
      return k.end();
    };
    const long = 'd/'.repeat(2100) + 'f';
    expect(() => c(Buffer.concat([pax({ path: long }), header({ name: 'f' }), END]))).toThrow(/longer than 4096 bytes/);
    expect(() => c(Buffer.concat([header({ name: 'f' }), pax({ linkpath: long }), header({ name: 'l', type: '1' }), END]))).toThrow(
      /longer than 4096 bytes/,
    );
    const ok = 'd/'.repeat(2000) + 'f';
    expect(c(Buffer.concat([pax({ path: ok }), header({ name: 'f' }), END])).entries).toBe(1);
  });
});
