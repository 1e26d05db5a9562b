import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  mkdtempSync,
  rmSync,
  readFileSync,
  writeFileSync,
  existsSync,
  readdirSync,
  mkdirSync,
  createReadStream,
  createWriteStream,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { startRegistry, type RunningRegistry } from '../../fixtures/registry.js';
import { buildImage, pushImage, whiteoutLayerTars, sha256 } from '../../fixtures/oci.js';
import { busyboxRootfsTar, packTar } from '../../fixtures/rootfs.js';
import { RegistryClient } from '../../../src/images/registry.js';
import { Store } from '../../../src/images/store.js';
import { FormatError } from '../../../src/errors.js';

const SKOPEO = '/usr/bin/skopeo';
const UMOCI = '/usr/bin/umoci';
let reg: RunningRegistry;
let client: RegistryClient;
let work: string;
let pushed: ReturnType<typeof buildImage>;
let tars: Buffer[];

function requireTool(p: string): void {
  if (!existsSync(p)) throw new Error(`missing ${p}: apt-get install ${path.basename(p)}`);
}

function run(bin: string, args: string[]): string {
  requireTool(bin);
  return execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

let n = 0;
function dir(name: string): string {
  const d = path.join(work, `${name}-${n++}`);
  mkdirSync(d, { recursive: true });
  return d;
}

function newStore(): Store {
  return new Store(dir('store'));
}

async function layerHashes(store: Store, id: string): Promise<string[]> {
  const out: string[] = [];
  for await (const s of store.layerStreams(id)) {
    const chunks: Buffer[] = [];
    for await (const c of s) chunks.push(c as Buffer);
    out.push(sha256(Buffer.concat(chunks)));
  }
  return out;
}

async function saveTo(store: Store, refs: string[], file: string): Promise<void> {
  await pipeline(await store.save(refs), createWriteStream(file));
}

/** Reads an OCI layout dir written by skopeo: index -> manifest -> config digest. */
function ociLayoutConfigDigest(layout: string): string {
  const index = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const m = JSON.parse(readFileSync(path.join(layout, 'blobs', 'sha256', index.manifests[0].digest.slice(7)), 'utf8'));
  return m.config.digest;
}

async function expectEmpty(store: Store): Promise<void> {
  expect(await store.list()).toEqual([]);
  expect(await store.blobs.list()).toEqual([]);
  expect(readdirSync(path.join(store.root, 'blobs', 'tmp'))).toEqual([]);
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'tvm-archive-'));
  reg = await startRegistry();
  client = new RegistryClient(reg.host);
  tars = await whiteoutLayerTars();
  pushed = buildImage(tars, { format: 'oci', compression: 'gzip' });
  await pushImage(client, 'test/layers', 'v1', pushed);
});

afterAll(async () => {
  await client?.close();
  await reg?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('skopeo and umoci as independent producers and consumers', () => {
  it('skopeo reads what our client pushed (docker:// -> oci: dir)', () => {
    const layout = dir('skopeo-oci');
    run(SKOPEO, ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${reg.host}/test/layers:v1`, `oci:${layout}:v1`]);
    expect(ociLayoutConfigDigest(layout)).toBe(pushed.config.digest);
  });

  it('loads a skopeo-written OCI archive tar', async () => {
    const tar = path.join(dir('skopeo-archive'), 'img.tar');
    run(SKOPEO, [
      '--insecure-policy',
      'copy',
      '--src-tls-verify=false',
      `docker://${reg.host}/test/layers:v1`,
      `oci-archive:${tar}:example.com/team/layers:v1`,
    ]);
    const store = newStore();
    const [rec] = await store.load(createReadStream(tar));
    expect(rec!.id).toBe(pushed.config.digest);
    expect(rec!.repoTags).toEqual(['example.com/team/layers:v1']);
    expect(await layerHashes(store, rec!.id)).toEqual(tars.map((t) => sha256(t)));
    // only the image's blobs remain (config + 3 layers), not index.json, oci-layout or the manifest
    expect((await store.blobs.list()).sort()).toEqual([pushed.config.digest, ...pushed.layers.map((l) => l.digest)].sort());
  });

  it('our save is a docker-archive that skopeo and umoci read', async () => {
    const store = newStore();
    const rec = await store.pull(`${reg.host}/test/layers:v1`);
    await store.tag(rec.id, 'example.com/saved:1');
    const tar = path.join(dir('save'), 'saved.tar');
    await saveTo(store, ['example.com/saved:1'], tar);
    const inspect = JSON.parse(run(SKOPEO, ['--insecure-policy', 'inspect', `docker-archive:${tar}`]));
    expect(inspect.Layers).toEqual(rec.diffIds);
    const layout = dir('from-save');
    const raw = JSON.parse(run(SKOPEO, ['--insecure-policy', 'inspect', '--raw', `docker-archive:${tar}`]));
    expect(raw.config.digest).toBe(rec.id);
    // (copying to oci: rewrites the config as skopeo converts and compresses, so compare content below)
    run(SKOPEO, ['--insecure-policy', 'copy', `docker-archive:${tar}`, `oci:${layout}:saved`]);
    const bundle = path.join(dir('bundle'), 'b');
    run(UMOCI, ['unpack', '--image', `${layout}:saved`, bundle]);
    const rootfs = path.join(bundle, 'rootfs');
    expect(existsSync(path.join(rootfs, 'bin', 'busybox'))).toBe(true);
    expect(readFileSync(path.join(rootfs, 'data', 'keep.txt'), 'utf8')).toBe('keep\n');
    expect(existsSync(path.join(rootfs, 'data', 'gone.txt'))).toBe(false);
    expect(readdirSync(path.join(rootfs, 'opaque'))).toEqual(['new.txt']);
  });

  it('loads an image umoci built (init, new, repack, config), tarred as an OCI layout', async () => {
    const layout = path.join(dir('umoci'), 'layout');
    run(UMOCI, ['init', '--layout', layout]);
    run(UMOCI, ['new', '--image', `${layout}:base`]);
    const bundle = path.join(dir('umoci-bundle'), 'b');
    run(UMOCI, ['unpack', '--image', `${layout}:base`, bundle]);
    writeFileSync(path.join(bundle, 'rootfs', 'hello.txt'), 'from umoci\n');
    run(UMOCI, ['repack', '--image', `${layout}:base`, bundle]);
    run(UMOCI, ['config', '--image', `${layout}:base`, '--config.cmd=/hello', '--config.env=A=b']);
    // umoci names the image 'base' (a bare tag): Docker loads that untagged
    const tar = path.join(dir('umoci-tar'), 'l.tar');
    execFileSync('tar', ['-C', layout, '-cf', tar, '.']);
    const store = newStore();
    const [rec] = await store.load(createReadStream(tar));
    expect(rec!.repoTags).toEqual([]);
    expect(rec!.config.Cmd).toEqual(['/hello']);
    expect(rec!.config.Env).toContain('A=b');
    const [layer] = await (async () => {
      const out: string[] = [];
      for await (const s of store.layerStreams(rec!.id)) out.push((await s.toArray()).map((c: Buffer) => c.toString('latin1')).join(''));
      return out;
    })();
    expect(layer).toContain('from umoci');
  });
});

describe('save and load round trip', () => {
  it('multi-image archive loads into a fresh store with the same IDs, tags and layers', async () => {
    const a = newStore();
    const rec = await a.pull(`${reg.host}/test/layers:v1`);
    await a.tag(rec.id, 'team/app:1');
    await a.tag(rec.id, 'team/app:2');
    const imported = await a.importRootfs(Readable.from([await busyboxRootfsTar()]), { ref: 'other:latest', changes: ['CMD ["sh"]'] });
    const tar = path.join(dir('rt'), 'all.tar');
    // a bare repository name saves all of its tags
    await saveTo(a, ['team/app', 'other'], tar);
    const b = newStore();
    const msgs: string[] = [];
    const loaded = await b.load(createReadStream(tar), (p) => msgs.push(p.status));
    expect(loaded.map((r) => r.id).sort()).toEqual([rec.id, imported.id].sort());
    expect((await b.resolve('team/app:1')).id).toBe(rec.id);
    expect((await b.resolve('team/app:2')).id).toBe(rec.id);
    expect((await b.resolve('other')).id).toBe(imported.id);
    expect(msgs.filter((m) => m === 'Loading layer').length).toBeGreaterThan(0);
    expect(await layerHashes(b, rec.id)).toEqual(rec.diffIds);
    // loading again changes nothing and stores nothing twice
    const blobsBefore = (await b.blobs.list()).sort();
    await b.load(createReadStream(tar));
    expect((await b.blobs.list()).sort()).toEqual(blobsBefore);
  });

  it('save of an unknown image is a 404 before any byte is written', async () => {
    await expect(newStore().save(['nope:1'])).rejects.toMatchObject({ status: 404 });
  });
});

describe('archive shapes Docker writes', () => {
  it('Docker 25+ layout: manifest.json naming blobs/sha256 members next to index.json', async () => {
    const layer = await packTar([{ name: 'hello.txt', content: 'docker 25\n' }]);
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/hello'] },
        rootfs: { type: 'layers', diff_ids: [sha256(layer)] },
      }),
    );
    const b = (x: Buffer) => `blobs/sha256/${sha256(x).slice(7)}`;
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
      }),
    );
    const tar = await packTar([
      { name: 'blobs/', type: 'directory' },
      { name: 'blobs/sha256/', type: 'directory' },
      { name: b(layer), content: layer },
      { name: b(config), content: config },
      { name: b(manifest), content: manifest },
      {
        name: 'index.json',
        content: JSON.stringify({
          schemaVersion: 2,
          manifests: [
            {
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              digest: sha256(manifest),
              size: manifest.length,
              annotations: { 'io.containerd.image.name': 'docker.io/library/hello:25', 'org.opencontainers.image.ref.name': '25' },
            },
          ],
        }),
      },
      { name: 'manifest.json', content: JSON.stringify([{ Config: b(config), RepoTags: ['hello:25'], Layers: [b(layer)] }]) },
      { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
    ]);
    const store = newStore();
    const [rec] = await store.load(Readable.from([tar]));
    expect(rec!.id).toBe(sha256(config));
    expect(rec!.repoTags).toEqual(['hello:25']);
    expect(rec!.config.Cmd).toEqual(['/hello']);
  });

  it('legacy layout with a symlinked shared layer and an OCI index naming the image', async () => {
    const layer = await packTar([{ name: 'same.txt', content: 'shared\n' }]);
    const cfg = (cmd: string) =>
      Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          config: { Cmd: [cmd] },
          rootfs: { type: 'layers', diff_ids: [sha256(layer)] },
        }),
      );
    const c1 = cfg('one');
    const c2 = cfg('two');
    const tar = await packTar([
      { name: 'aaa/', type: 'directory' },
      { name: 'aaa/layer.tar', content: layer },
      { name: 'bbb/', type: 'directory' },
      { name: 'bbb/layer.tar', type: 'symlink', linkname: '../aaa/layer.tar' },
      { name: 'c1.json', content: c1 },
      { name: 'c2.json', content: c2 },
      { name: 'repositories', content: '{"one":{"latest":"aaa"}}' },
      {
        name: 'manifest.json',
        content: JSON.stringify([
          { Config: 'c1.json', RepoTags: ['one:latest'], Layers: ['aaa/layer.tar'] },
          { Config: 'c2.json', RepoTags: null, Layers: ['bbb/layer.tar'] },
        ]),
      },
    ]);
    const store = newStore();
    const msgs: string[] = [];
    const recs = await store.load(Readable.from([tar]), (p) => msgs.push(p.status));
    expect(recs.map((r) => r.config.Cmd)).toEqual([['one'], ['two']]);
    expect(recs.map((r) => r.repoTags)).toEqual([['one:latest'], []]);
    expect(msgs).toContain('Loading layer');
    expect((await store.blobs.list()).sort()).toEqual([sha256(layer), sha256(c1), sha256(c2)].sort());
  });
});

describe('bad archives are rejected with nothing stored', () => {
  async function goodArchive(): Promise<Buffer> {
    const a = newStore();
    await a.importRootfs(Readable.from([await packTar([{ name: 'f.txt', content: 'x'.repeat(5000) }])]), { ref: 'tiny:1' });
    const f = path.join(dir('good'), 'g.tar');
    await saveTo(a, ['tiny:1'], f);
    return readFileSync(f);
  }

  const cases: [string, () => Promise<Buffer>, RegExp][] = [
    ['a member climbing out with ..', () => packTar([{ name: '../evil', content: 'x' }]), /'\.\.'/],
    ['an absolute member name', () => packTar([{ name: '/etc/evil', content: 'x' }]), /absolute/],
    ['a truncated archive', async () => (await goodArchive()).subarray(0, 3000), /truncated|corrupt|no member/],
    ['no manifest.json nor index.json', () => packTar([{ name: 'hello.txt', content: 'x' }]), /neither manifest.json/],
    [
      'manifest.json naming a missing layer',
      () =>
        packTar([
          { name: 'manifest.json', content: JSON.stringify([{ Config: 'c.json', RepoTags: ['a:1'], Layers: ['l.tar'] }]) },
          { name: 'c.json', content: JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }) },
        ]),
      /no member "l.tar"/,
    ],
    [
      'a layer with a hard link to a missing file',
      async () => {
        const layer = await packTar([{ name: 'link', type: 'link', linkname: 'missing' }]);
        const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } });
        return packTar([
          { name: 'l/layer.tar', content: layer },
          { name: 'c.json', content: config },
          { name: 'manifest.json', content: JSON.stringify([{ Config: 'c.json', RepoTags: ['a:1'], Layers: ['l/layer.tar'] }]) },
        ]);
      },
      /hard link "link" points to missing "missing"/,
    ],
    [
      'a layer with a .. entry',
      async () => {
        const layer = await packTar([{ name: 'a/../../etc/passwd', content: 'x' }]);
        const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } });
        return packTar([
          { name: 'l/layer.tar', content: layer },
          { name: 'c.json', content: config },
          { name: 'manifest.json', content: JSON.stringify([{ Config: 'c.json', RepoTags: ['a:1'], Layers: ['l/layer.tar'] }]) },
        ]);
      },
      /contains '\.\.'/,
    ],
    [
      'an OCI blob whose content does not match its name',
      async () =>
        packTar([
          { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
          { name: `blobs/sha256/${'a'.repeat(64)}`, content: 'not it' },
        ]),
      /digest mismatch/,
    ],
  ];
  for (const [name, make, re] of cases) {
    it(name, async () => {
      const store = newStore();
      const err = await store.load(Readable.from([await make()])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(re);
      await expectEmpty(store);
    });
  }
});

describe('docker import', () => {
  it('imports a gzip rootfs with --change and a message', async () => {
    const store = newStore();
    const tar = await busyboxRootfsTar();
    const rec = await store.importRootfs(Readable.from([gzipSync(tar)]), {
      ref: 'imported/busybox:1',
      message: 'from test',
      changes: [
        'CMD ["sh", "-c", "echo hi"]',
        'ENV A=1 B="two words"',
        'WORKDIR /srv',
        'USER app',
        'EXPOSE 80 53/udp',
        'LABEL a=b',
        'ENTRYPOINT ["/bin/env"]',
      ],
    });
    expect(rec.repoTags).toEqual(['imported/busybox:1']);
    expect(rec.diffIds).toEqual([sha256(tar)]);
    expect(rec.config).toMatchObject({
      Cmd: ['sh', '-c', 'echo hi'],
      Entrypoint: ['/bin/env'],
      Env: ['A=1', 'B=two words'],
      WorkingDir: '/srv',
      User: 'app',
      ExposedPorts: { '80/tcp': {}, '53/udp': {} },
      Labels: { a: 'b' },
    });
    const cfg = await store.config(rec.id);
    expect(cfg.history?.[0]?.comment).toBe('from test');
    expect(await layerHashes(store, rec.id)).toEqual([sha256(tar)]);
  });

  it('rejects an unsafe rootfs and a bad --change, storing nothing', async () => {
    const store = newStore();
    await expect(store.importRootfs(Readable.from([await packTar([{ name: '/abs', content: 'x' }])]), {})).rejects.toBeInstanceOf(
      FormatError,
    );
    await expect(
      store.importRootfs(Readable.from([await packTar([{ name: 'x', content: 'x' }])]), { changes: ['RUN rm -rf /'] }),
    ).rejects.toThrow(/RUN is not supported/);
    const truncated = (await busyboxRootfsTar()).subarray(0, 100_000);
    await expect(store.importRootfs(Readable.from([truncated]), {})).rejects.toBeInstanceOf(FormatError);
    await expectEmpty(store);
  });
});
