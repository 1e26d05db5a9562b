import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, readdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { startRegistry, type RunningRegistry } from '../../fixtures/registry.js';
import { busyboxImage, buildImage, buildIndex, pushImage, pushIndex, whiteoutLayerTars, sha256 } from '../../fixtures/oci.js';
import { RegistryClient } from '../../../src/images/registry.js';
import { Store } from '../../../src/images/store.js';
import type { PullProgress } from '../../../src/images/types.js';
import { FormatError, NotFoundError } from '../../../src/errors.js';

let reg: RunningRegistry;
let client: RegistryClient;
const roots: string[] = [];

async function fileTar(content: Buffer): Promise<Buffer> {
  const { packTar } = await import('../../fixtures/rootfs.js');
  return packTar([{ name: 'file.bin', content }]);
}

function newStore(): Store {
  const root = mkdtempSync(path.join(os.tmpdir(), 'tvm-images-'));
  roots.push(root);
  return new Store(root);
}

/** The registry's own copy of a blob, to corrupt it behind its back. */
function registryBlobPath(digest: string): string {
  const hex = digest.slice(7);
  return path.join(reg.dir, 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}

async function collectLayers(store: Store, id: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const s of store.layerStreams(id)) {
    const chunks: Buffer[] = [];
    for await (const c of s) chunks.push(c as Buffer);
    out.push(Buffer.concat(chunks));
  }
  return out;
}

beforeAll(async () => {
  reg = await startRegistry();
  client = new RegistryClient(reg.host);
});

afterAll(async () => {
  await client?.close();
  await reg?.stop();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

describe('pull from a real docker-registry', () => {
  it('pulls by tag with Docker progress messages, then is up to date', async () => {
    const img = await busyboxImage();
    const digest = await pushImage(client, 'test/busybox', 'v1', img);
    expect(digest).toBe(img.manifest.digest);
    const store = newStore();
    const msgs: PullProgress[] = [];
    const rec = await store.pull(`${reg.host}/test/busybox:v1`, { onProgress: (p) => msgs.push(p) });
    expect(rec.id).toBe(img.config.digest);
    expect(rec.repoTags).toEqual([`${reg.host}/test/busybox:v1`]);
    expect(rec.repoDigests).toEqual([`${reg.host}/test/busybox@${digest}`]);
    expect(rec.diffIds).toEqual(img.layers.map((l) => l.diffId));
    expect(rec.config.Cmd).toEqual(['sh']);
    expect(rec.size).toBe(img.layers[0]!.uncompressed.length);
    const statuses = msgs.map((m) => m.status);
    const short = img.layers[0]!.digest.slice(7, 19);
    expect(msgs[0]).toEqual({ status: 'Pulling from test/busybox', id: 'v1' });
    for (const s of ['Pulling fs layer', 'Downloading', 'Verifying Checksum', 'Download complete', 'Pull complete']) {
      expect(msgs.some((m) => m.status === s && m.id === short)).toBe(true);
    }
    const dl = msgs.filter((m) => m.status === 'Downloading');
    expect(dl.at(-1)!.progressDetail).toEqual({ current: img.layers[0]!.size, total: img.layers[0]!.size });
    expect(statuses.slice(-2)).toEqual([`Digest: ${digest}`, `Status: Downloaded newer image for ${reg.host}/test/busybox:v1`]);

    expect((await collectLayers(store, rec.id)).map((b) => sha256(b))).toEqual([sha256(img.layers[0]!.uncompressed)]);

    const again: PullProgress[] = [];
    await store.pull(`${reg.host}/test/busybox:v1`, { onProgress: (p) => again.push(p) });
    expect(again.at(-1)!.status).toBe(`Status: Image is up to date for ${reg.host}/test/busybox:v1`);
    expect(again.some((m) => m.status === 'Downloading')).toBe(false);

    // resolve by every name Docker accepts
    for (const r of [
      `${reg.host}/test/busybox:v1`,
      `${reg.host}/test/busybox@${digest}`,
      rec.id,
      rec.id.slice(7, 19),
      rec.id.slice(0, 19),
    ]) {
      expect((await store.resolve(r)).id).toBe(rec.id);
    }
    await expect(store.resolve(`${reg.host}/test/busybox:nope`)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('pulls by digest: no tag recorded, blob shared with an existing image is skipped', async () => {
    const img = await busyboxImage({ config: { config: { Cmd: ['echo', 'by-digest'] } } });
    const digest = await pushImage(client, 'test/bydigest', 'x', img);
    const store = newStore();
    await store.pull(`${reg.host}/test/busybox:v1`);
    const msgs: PullProgress[] = [];
    const rec = await store.pull(`${reg.host}/test/bydigest@${digest}`, { onProgress: (p) => msgs.push(p) });
    expect(rec.repoTags).toEqual([]);
    expect(rec.repoDigests).toEqual([`${reg.host}/test/bydigest@${digest}`]);
    expect(rec.config.Cmd).toEqual(['echo', 'by-digest']);
    // same busybox layer as test/busybox:v1, so it is not downloaded again
    expect(msgs.some((m) => m.status === 'Already exists')).toBe(true);
    expect(msgs.some((m) => m.status === 'Downloading')).toBe(false);
  });

  it('pulls a multi-layer OCI zstd image with whiteouts and hard links, layers bottom first', async () => {
    const tars = await whiteoutLayerTars();
    const img = buildImage(tars, { format: 'oci', compression: 'zstd' });
    await pushImage(client, 'test/layers', 'zstd', img);
    const store = newStore();
    const rec = await store.pull(`${reg.host}/test/layers:zstd`);
    expect(rec.diffIds).toEqual(tars.map((t) => sha256(t)));
    expect((await collectLayers(store, rec.id)).map((b) => sha256(b))).toEqual(tars.map((t) => sha256(t)));
    expect(rec.size).toBe(tars.reduce((s, t) => s + t.length, 0));
  });

  it('resolves a manifest list to linux/amd64', async () => {
    const amd = await busyboxImage({ architecture: 'amd64' });
    const arm = buildImage([await fileTar(Buffer.alloc(1024))], { architecture: 'arm64', config: { config: { Cmd: ['arm'] } } });
    for (const format of ['docker', 'oci'] as const) {
      const index = buildIndex(
        [
          { image: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
          { image: amd, platform: { os: 'linux', architecture: 'amd64' } },
        ],
        format,
      );
      const digest = await pushIndex(client, `test/multi-${format}`, 'latest', [arm, amd], index);
      const store = newStore();
      const rec = await store.pull(`${reg.host}/test/multi-${format}`, { platform: { os: 'linux', architecture: 'amd64' } });
      expect(rec.id).toBe(amd.config.digest);
      expect(rec.architecture).toBe('amd64');
      // Docker records the digest the tag points to: the index
      expect(rec.repoDigests).toEqual([`${reg.host}/test/multi-${format}@${digest}`]);
      await expect(store.pull(`${reg.host}/test/multi-${format}`, { platform: { os: 'linux', architecture: 's390x' } })).rejects.toThrow(
        /no matching manifest for linux\/s390x/,
      );
    }
  });

  it('rejects a blob whose content does not match its digest, storing nothing', async () => {
    const img = buildImage([await fileTar(Buffer.alloc(4096, 1))], { config: { config: { Cmd: ['corrupt'] } } });
    await pushImage(client, 'test/corrupt', 'v1', img);
    const p = registryBlobPath(img.layers[0]!.digest);
    const data = readFileSync(p);
    data[data.length - 20]! ^= 0xff;
    writeFileSync(p, data);
    const store = newStore();
    const err = await store.pull(`${reg.host}/test/corrupt:v1`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).code).toMatch(/ERR_DIGEST_MISMATCH|ERR_BAD_COMPRESSION/);
    expect(await store.list()).toEqual([]);
    expect(await store.blobs.list()).toEqual([]);
    expect(readdirSync(path.join(store.root, 'blobs', 'tmp'))).toEqual([]);
  });

  it('large layers (inspected and hashed in a worker): pulled intact; corrupted ones refused by digest, storing nothing', async () => {
    const { randomBytes } = await import('node:crypto');
    const { WORKER_MIN_BYTES } = await import('../../../src/images/inspect-pool.js');
    const tar = await fileTar(randomBytes(WORKER_MIN_BYTES + 4096));
    const img = buildImage([tar], { config: { config: { Cmd: ['big'] } } });
    expect(img.layers[0]!.size).toBeGreaterThanOrEqual(WORKER_MIN_BYTES);
    await pushImage(client, 'test/big', 'v1', img);
    const good = newStore();
    const rec = await good.pull(`${reg.host}/test/big:v1`);
    expect(rec.diffIds).toEqual([sha256(tar)]);
    expect((await collectLayers(good, rec.id))[0]!.equals(tar)).toBe(true);

    const p = registryBlobPath(img.layers[0]!.digest);
    const data = readFileSync(p);
    // a changed gzip MTIME (header bytes 4-7): the layer still inflates to the same tar with
    // the same diff ID; only the blob digest can tell
    data[4]! ^= 0xff;
    writeFileSync(p, data);
    const store = newStore();
    const err = await store.pull(`${reg.host}/test/big:v1`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).code).toBe('ERR_DIGEST_MISMATCH');
    expect(await store.list()).toEqual([]);
    expect(await store.blobs.list()).toEqual([]);
  });

  it('rejects a config blob that does not match its digest or is longer than its descriptor, storing nothing', async () => {
    const img = buildImage([await fileTar(Buffer.alloc(1024, 5))], { config: { config: { Cmd: ['cfg'] } } });
    await pushImage(client, 'test/badcfg', 'v1', img);
    const p = registryBlobPath(img.config.digest);
    const good = readFileSync(p);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 2]! ^= 0x01;
    for (const [bad, code] of [
      [flipped, 'ERR_DIGEST_MISMATCH'],
      [Buffer.concat([good, Buffer.from('     ')]), /ERR_SIZE_MISMATCH|ERR_DIGEST_MISMATCH|ERR_BAD_FORMAT/],
    ] as const) {
      writeFileSync(p, bad);
      const store = newStore();
      const err = await store.pull(`${reg.host}/test/badcfg:v1`).catch((e: unknown) => e);
      expect(err).toMatchObject({ status: 400 });
      expect((err as FormatError).code).toMatch(code);
      expect(await store.list()).toEqual([]);
      expect(await store.blobs.list()).toEqual([]);
    }
  });

  it('rejects a truncated blob, storing nothing', async () => {
    const img = buildImage([await fileTar(Buffer.alloc(8192, 2))], { config: { config: { Cmd: ['short'] } } });
    await pushImage(client, 'test/short', 'v1', img);
    const p = registryBlobPath(img.layers[0]!.digest);
    writeFileSync(p, readFileSync(p).subarray(0, 10));
    const store = newStore();
    const err = await store.pull(`${reg.host}/test/short:v1`).catch((e: unknown) => e);
    expect((err as FormatError).code).toMatch(/ERR_SIZE_MISMATCH|ERR_TRUNCATED/);
    expect(await store.list()).toEqual([]);
    expect(await store.blobs.list()).toEqual([]);
  });

  it('rejects a layer whose diff ID differs from the config', async () => {
    const img = buildImage([await fileTar(Buffer.alloc(2048, 3))], {
      config: { rootfs: { type: 'layers', diff_ids: [sha256('something else')] } },
    });
    await pushImage(client, 'test/diffid', 'v1', img);
    const store = newStore();
    await expect(store.pull(`${reg.host}/test/diffid:v1`)).rejects.toMatchObject({ code: 'ERR_DIFF_ID_MISMATCH' });
    expect(await store.blobs.list()).toEqual([]);
  });

  it('rejects unknown layer media types', async () => {
    const img = buildImage([await fileTar(Buffer.alloc(1024, 4))], {
      format: 'oci',
      compression: 'gzip',
      config: { config: { Cmd: ['mt'] } },
    });
    const m = JSON.parse(img.manifest.data.toString());
    m.layers[0].mediaType = 'application/x-tvm-unknown';
    const body = Buffer.from(JSON.stringify(m));
    for (const b of [...img.layers, img.config]) await client.pushBlob('test/mediatype', b, () => [b.data] as never);
    await client.putManifest('test/mediatype', 'v1', img.manifest.mediaType, body);
    const store = newStore();
    await expect(store.pull(`${reg.host}/test/mediatype:v1`)).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED_MEDIA_TYPE' });
    expect(await store.blobs.list()).toEqual([]);
  });

  it('rejects layers with unsafe entries or hard links to nothing, storing nothing', async () => {
    const { packTar } = await import('../../fixtures/rootfs.js');
    const base = await packTar([
      { name: 'bin/', type: 'directory' },
      { name: 'bin/x', content: 'x' },
    ]);
    const cases: [string, Buffer, RegExp][] = [
      ['dotdot', await packTar([{ name: 'a/../../../etc/shadow', content: 'x' }]), /contains '\.\.'/],
      ['dangling', await packTar([{ name: 'bin/y', type: 'link', linkname: 'bin/nope' }]), /points to missing "bin\/nope"/],
    ];
    for (const [name, top, re] of cases) {
      const img = buildImage([base, top], { config: { config: { Cmd: [name] } } });
      await pushImage(client, `test/unsafe-${name}`, 'v1', img);
      const store = newStore();
      const err = await store.pull(`${reg.host}/test/unsafe-${name}:v1`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(re);
      expect(await store.list()).toEqual([]);
      expect(await store.blobs.list()).toEqual([]);
    }
  });

  it('checks the tar of a layer blob already stored but not part of any image (a load in progress, a leftover)', async () => {
    const { packTar } = await import('../../fixtures/rootfs.js');
    const img = buildImage([await packTar([{ name: 'a/../../../etc/shadow', content: 'x' }])], {
      config: { config: { Cmd: ['present'] } },
    });
    await pushImage(client, 'test/unsafe-present', 'v1', img);
    const store = newStore();
    const layer = img.layers[0]!;
    await store.blobs.writeBuffer(layer.data, { digest: layer.digest, size: layer.size });
    const err = await store.pull(`${reg.host}/test/unsafe-present:v1`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/contains '\.\.'/);
    expect(await store.list()).toEqual([]);
  });

  it('a missing tag is a 404', async () => {
    const store = newStore();
    await expect(store.pull(`${reg.host}/test/busybox:missing`)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('pushes an image from the store that another store pulls back identically', async () => {
    const a = newStore();
    const rec = await a.pull(`${reg.host}/test/layers:zstd`);
    await a.tag(rec.id, `${reg.host}/pushed/again:v2`);
    const pushMsgs: string[] = [];
    // status lines only: Docker's last message is the aux record (Tag, Digest, Size), which has none
    const digest = await a.push(`${reg.host}/pushed/again:v2`, {
      onProgress: (p) => void (p.status !== undefined && pushMsgs.push(p.status)),
    });
    expect(pushMsgs[0]).toBe(`The push refers to repository [${reg.host}/pushed/again]`);
    // the layers came from test/layers on the same registry: mounted, not uploaded again
    expect(pushMsgs.filter((m) => m === 'Mounted from test/layers').length).toBe(3);
    expect(pushMsgs.at(-1)).toMatch(/^v2: digest: sha256:[a-f0-9]{64} size: \d+$/);
    const b = newStore();
    const back = await b.pull(`${reg.host}/pushed/again:v2`);
    expect(back.id).toBe(rec.id);
    expect(back.repoDigests).toEqual([`${reg.host}/pushed/again@${digest}`]);
    const la = await collectLayers(a, rec.id);
    const lb = await collectLayers(b, back.id);
    expect(lb.map((l) => createHash('sha256').update(l).digest('hex'))).toEqual(
      la.map((l) => createHash('sha256').update(l).digest('hex')),
    );
    expect(existsSync(path.join(b.root, 'images', 'repositories.json'))).toBe(true);
  });
});
