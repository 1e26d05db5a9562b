import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Store } from '../../../src/images/store.js';
import { BlobStore } from '../../../src/images/blob-store.js';
import { sha256Digest } from '../../../src/images/digest.js';
import { loadDockerConfigCredentials } from '../../../src/images/auth.js';
import { packTar } from '../../fixtures/rootfs.js';
import { ConflictError, NotFoundError, FormatError } from '../../../src/errors.js';

const roots: string[] = [];
function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'tvm-store-unit-'));
  roots.push(d);
  return d;
}
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

async function image(store: Store, content: string, ref?: string) {
  const tar = await packTar([{ name: 'f.txt', content }]);
  return store.importRootfs(Readable.from([tar]), { ...(ref && { ref }) });
}

describe('image store: resolve, tag, remove', () => {
  it('resolves names, tags, IDs and ID prefixes; lists with familiar tags', async () => {
    const s = new Store(tmp());
    const a = await image(s, 'a', 'alpine');
    expect(a.repoTags).toEqual(['alpine:latest']);
    for (const ref of [
      'alpine',
      'alpine:latest',
      'library/alpine',
      'docker.io/library/alpine:latest',
      a.id,
      a.id.slice(7, 10),
      a.id.slice(7),
    ]) {
      expect((await s.resolve(ref)).id).toBe(a.id);
    }
    await expect(s.resolve('alpine:3')).rejects.toBeInstanceOf(NotFoundError);
    await expect(s.resolve('alpine:3')).rejects.toThrow('No such image: alpine:3');
    await s.tag('alpine', 'registry.example:5000/team/x:v1');
    expect((await s.resolve('registry.example:5000/team/x:v1')).id).toBe(a.id);
    expect((await s.list()).map((r) => r.repoTags)).toEqual([['alpine:latest', 'registry.example:5000/team/x:v1']]);
    await expect(s.tag('alpine', 'x@sha256:' + 'a'.repeat(64))).rejects.toThrow(/digest/);
    await expect(s.tag('nope', 'x')).rejects.toBeInstanceOf(NotFoundError);
    const index = JSON.parse(readFileSync(path.join(s.root, 'images', 'repositories.json'), 'utf8'));
    expect(index.Repositories['docker.io/library/alpine']).toEqual({ 'docker.io/library/alpine:latest': a.id });
  });

  it('moving a tag leaves the old image dangling', async () => {
    const s = new Store(tmp());
    const a = await image(s, 'a', 'app:1');
    const b = await image(s, 'b', 'app:1');
    expect((await s.resolve('app:1')).id).toBe(b.id);
    expect((await s.resolve(a.id)).repoTags).toEqual([]);
  });

  it('remove by tag untags; the last tag deletes the image and its unshared blobs', async () => {
    const s = new Store(tmp());
    const a = await image(s, 'a', 'app:1');
    await s.tag('app:1', 'app:2');
    expect(await s.remove('app:1', { force: false, inUse: new Set() })).toEqual([{ Untagged: 'app:1' }]);
    const res = await s.remove('app:2', { force: false, inUse: new Set() });
    expect(res[0]).toEqual({ Untagged: 'app:2' });
    expect(res).toContainEqual({ Deleted: a.id });
    expect(await s.list()).toEqual([]);
    expect(await s.blobs.list()).toEqual([]);
  });

  it('refuses to delete images in use or with several tags unless forced (409)', async () => {
    const s = new Store(tmp());
    const a = await image(s, 'a', 'app:1');
    const used = new Set([a.id]);
    const e1 = await s.remove('app:1', { force: false, inUse: used }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ConflictError);
    expect((e1 as ConflictError).status).toBe(409);
    const e2 = await s.remove(a.id, { force: false, inUse: used }).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(ConflictError);
    await s.tag('app:1', 'other:1');
    await expect(s.remove(a.id.slice(7, 19), { force: false, inUse: new Set() })).rejects.toThrow(/referenced in multiple repositories/);
    // forced untag of an in-use image keeps the image
    expect(await s.remove('app:1', { force: true, inUse: used })).toEqual([{ Untagged: 'app:1' }]);
    const forced = await s.remove(a.id, { force: true, inUse: used });
    expect(forced).toEqual(expect.arrayContaining([{ Untagged: 'other:1' }, { Deleted: a.id }]));
    await expect(s.resolve(a.id)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('keeps layers another image shares', async () => {
    const s = new Store(tmp());
    const a = await image(s, 'same', 'a:1');
    const cfgB = { ...(await s.config(a.id)), config: { Cmd: ['other'] } };
    const meta = await s.inspectMeta(a.id);
    const idB = await s.putConfig(cfgB);
    await s.commitImage(idB, meta.layers, ['docker.io/library/b:1']);
    await s.remove('a:1', { force: false, inUse: new Set() });
    expect(await s.blobs.has(meta.layers[0]!.digest)).toBe(true);
    const chunks: Buffer[] = [];
    for await (const l of s.layerStreams('b:1')) for await (const c of l) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).includes(Buffer.from('same'))).toBe(true);
  });

  it('blobs pinned by an operation in progress survive removals and discards', async () => {
    const s = new Store(tmp());
    const a = await image(s, 'pinned', 'p:1');
    const layer = (await s.inspectMeta(a.id)).layers[0]!.digest;
    const lease = s.lease();
    expect(await s.pinIfPresent(lease, layer)).toBe(true);
    const res = await s.remove('p:1', { force: false, inUse: new Set() });
    expect(res).toContainEqual({ Deleted: a.id });
    expect(res).not.toContainEqual({ Deleted: layer });
    await s.discardBlobs([layer]);
    expect(await s.blobs.has(layer)).toBe(true);
    lease.release();
    await s.discardBlobs([layer]);
    expect(await s.blobs.has(layer)).toBe(false);
  });

  it('layer streams fail when a stored blob was damaged on disk', async () => {
    const s = new Store(tmp());
    const a = await image(s, 'intact content', 'd:1');
    const layer = (await s.inspectMeta(a.id)).layers[0]!.digest;
    const p = s.blobs.path(layer);
    const data = readFileSync(p);
    data[data.indexOf('intact')] = 'X'.charCodeAt(0);
    writeFileSync(p, data);
    const read = async () => {
      for await (const l of s.layerStreams(a.id)) for await (const _ of l) void _;
    };
    await expect(read()).rejects.toMatchObject({ code: 'ERR_DIGEST_MISMATCH' });
  });

  it('history pairs config history with layer sizes, newest first', async () => {
    const s = new Store(tmp());
    const layer = await packTar([{ name: 'h.txt', content: 'history' }]);
    const other = await packTar([{ name: 'i.txt', content: 'more' }]);
    const a = await s.importRootfs(Readable.from([layer]), {});
    const b = await s.importRootfs(Readable.from([other]), {});
    const la = (await s.inspectMeta(a.id)).layers[0]!;
    const lb = (await s.inspectMeta(b.id)).layers[0]!;
    const id = await s.putConfig({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-05-01T00:00:00Z',
      rootfs: { type: 'layers', diff_ids: [la.diffId, lb.diffId] },
      history: [
        { created: '2024-01-01T00:00:00Z', created_by: 'ADD rootfs' },
        { created: '2024-02-01T00:00:00Z', created_by: 'ENV A=1', empty_layer: true },
        { created: '2024-03-01T00:00:00Z', created_by: 'RUN touch i.txt', comment: 'c' },
      ],
    });
    await s.commitImage(id, [la, lb], ['docker.io/library/hist:1']);
    expect(await s.history('hist:1')).toEqual([
      { Id: id, Created: 1709251200, CreatedBy: 'RUN touch i.txt', Tags: ['hist:1'], Size: lb.uncompressedSize, Comment: 'c' },
      { Id: '<missing>', Created: 1706745600, CreatedBy: 'ENV A=1', Tags: null, Size: 0, Comment: '' },
      { Id: '<missing>', Created: 1704067200, CreatedBy: 'ADD rootfs', Tags: null, Size: la.uncompressedSize, Comment: '' },
    ]);
  });

  it('ambiguous short IDs are an error', async () => {
    const s = new Store(tmp());
    const ids: string[] = [];
    for (let i = 0; ids.length < 2 || ids[0]![7] !== ids[1]![7]; i++) {
      ids.push((await image(s, `x${i}`)).id);
      ids.sort();
      const byFirst = new Map<string, string[]>();
      for (const id of ids) byFirst.set(id[7]!, [...(byFirst.get(id[7]!) ?? []), id]);
      const dup = [...byFirst.values()].find((v) => v.length > 1);
      if (dup) {
        await expect(s.resolve(dup[0]![7]!)).rejects.toThrow(/ambiguous/);
        return;
      }
    }
  });

  it('commitImage refuses layers whose diff IDs do not match the config', async () => {
    const s = new Store(tmp());
    const a = await image(s, 'a');
    const meta = await s.inspectMeta(a.id);
    const bad = await s.putConfig({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256Digest('x')] } });
    await expect(s.commitImage(bad, meta.layers, [])).rejects.toBeInstanceOf(FormatError);
  });
});

describe('blob store', () => {
  it('stores verified content; concurrent writers of one digest are safe', async () => {
    const b = new BlobStore(tmp());
    const data = Buffer.alloc(1 << 20, 7);
    const digest = sha256Digest(data);
    const chunks = () => Readable.from(Array.from({ length: 16 }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536)));
    const res = await Promise.all(Array.from({ length: 4 }, () => b.write(chunks(), { expected: { digest, size: data.length } })));
    expect(res.every((r) => r.digest === digest)).toBe(true);
    expect(await b.has(digest)).toBe(true);
    expect((await b.stat(digest))!.size).toBe(data.length);
    expect((await b.readBuffer(digest)).equals(data)).toBe(true);
    expect(readdirSync(path.join(b.root, 'blobs', 'tmp'))).toEqual([]);
    expect(await b.delete(digest)).toBe(true);
    expect(await b.delete(digest)).toBe(false);
    await expect(b.open(digest)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('a wrong digest, a short or long body leave nothing behind', async () => {
    const b = new BlobStore(tmp());
    const data = Buffer.from('hello');
    await expect(b.write(Readable.from([data]), { expected: { digest: sha256Digest('other') } })).rejects.toMatchObject({
      code: 'ERR_DIGEST_MISMATCH',
    });
    await expect(b.write(Readable.from([data]), { expected: { size: 6 } })).rejects.toMatchObject({ code: 'ERR_TRUNCATED' });
    await expect(b.write(Readable.from([data]), { expected: { size: 4 } })).rejects.toMatchObject({ code: 'ERR_SIZE_MISMATCH' });
    const failing = new Readable({
      read() {
        this.destroy(new Error('connection reset'));
      },
    });
    await expect(b.write(failing)).rejects.toThrow('connection reset');
    expect(await b.list()).toEqual([]);
    expect(readdirSync(path.join(b.root, 'blobs', 'tmp'))).toEqual([]);
  });
});

describe('docker config.json credentials', () => {
  it('reads base64 auth for a registry and Docker Hub', async () => {
    const p = path.join(tmp(), 'config.json');
    writeFileSync(
      p,
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw').toString('base64') },
          'reg.example:5000': { auth: Buffer.from('u:p:with:colons').toString('base64') },
          'tok.example': { identitytoken: 'refresh' },
        },
      }),
    );
    expect(await loadDockerConfigCredentials('docker.io', p)).toEqual({ username: 'hub', password: 'pw' });
    expect(await loadDockerConfigCredentials('reg.example:5000', p)).toEqual({ username: 'u', password: 'p:with:colons' });
    expect(await loadDockerConfigCredentials('tok.example', p)).toEqual({ identitytoken: 'refresh' });
    expect(await loadDockerConfigCredentials('other', p)).toBeUndefined();
    expect(await loadDockerConfigCredentials('other', path.join(tmp(), 'missing.json'))).toBeUndefined();
  });
});

describe('image store: layer streams release their files (issue 16 item 7)', () => {
  // A failed base-disk build stops reading a layer and destroys its stream; the blob's file
  // handle stayed open behind the decompressor until garbage collection.
  it('destroying a layer stream early closes the blob file', async () => {
    const s = new Store(tmp());
    const { randomBytes } = await import('node:crypto');
    const tar = await packTar([{ name: 'big.bin', content: randomBytes(8 << 20).toString('base64') }]);
    const img = await s.importRootfs(Readable.from([tar]), {});
    const blobDir = s.blobs.dir;
    const openBlobs = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(blobDir);
        } catch {
          return false;
        }
      }).length;
    const it = s.layerStreams(img.id)[Symbol.asyncIterator]();
    const first = (await it.next()).value as Readable;
    await new Promise<void>((resolve) => first.once('data', () => resolve()));
    expect(openBlobs()).toBe(1);
    first.destroy();
    await it.return?.();
    for (let i = 0; i < 20 && openBlobs() > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(openBlobs()).toBe(0);
  });
});
