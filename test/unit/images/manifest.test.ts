import { describe, it, expect } from 'vitest';
import { parseManifest, parseImageConfig, selectPlatform, MediaType, type ImageIndex } from '../../../src/images/manifest.js';
import { FormatError, NotFoundError } from '../../../src/errors.js';

const d = (c: string) => 'sha256:' + c.repeat(64);
const desc = (mediaType: string, c: string, extra: object = {}) => ({ mediaType, digest: d(c), size: 10, ...extra });
const buf = (o: unknown) => Buffer.from(JSON.stringify(o));

const dockerManifest = {
  schemaVersion: 2,
  mediaType: MediaType.DockerManifest,
  config: desc(MediaType.DockerConfig, 'a'),
  layers: [desc(MediaType.DockerLayerGzip, 'b')],
};

describe('parseManifest', () => {
  it('parses Docker schema2 and OCI manifests', () => {
    const m = parseManifest(buf(dockerManifest), MediaType.DockerManifest);
    expect(m).toEqual({
      kind: 'manifest',
      mediaType: MediaType.DockerManifest,
      config: desc(MediaType.DockerConfig, 'a'),
      layers: [desc(MediaType.DockerLayerGzip, 'b')],
    });
    const oci = {
      schemaVersion: 2,
      config: desc(MediaType.OciConfig, 'c'),
      layers: [desc(MediaType.OciLayerZstd, 'e'), desc(MediaType.OciLayer, 'f')],
    };
    // OCI may omit mediaType: the Content-Type or the shape decides
    expect(parseManifest(buf(oci), MediaType.OciManifest).mediaType).toBe(MediaType.OciManifest);
    expect(parseManifest(buf(oci), 'application/json').kind).toBe('manifest');
  });

  it('parses manifest lists and OCI indexes with platforms', () => {
    const list = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifestList,
      manifests: [desc(MediaType.DockerManifest, '1', { platform: { os: 'linux', architecture: 'arm', variant: 'v7' } })],
    };
    const p = parseManifest(buf(list), MediaType.DockerManifestList) as ImageIndex;
    expect(p.kind).toBe('index');
    expect(p.manifests[0]!.platform).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    const idx = { schemaVersion: 2, manifests: [desc(MediaType.OciManifest, '2')] };
    expect(parseManifest(buf(idx), undefined).mediaType).toBe(MediaType.OciIndex);
  });

  const bad: [string, unknown, string | undefined, RegExp][] = [
    ['non-JSON', 'nope', undefined, /not valid JSON/],
    ['array', [], undefined, /not a JSON object/],
    ['schema1', { schemaVersion: 1, name: 'x' }, MediaType.DockerSchema1Signed, /schema 1 is not supported/],
    ['unknown type', { schemaVersion: 2, mediaType: 'application/x-nope' }, undefined, /unsupported manifest media type/],
    [
      'unknown layer type',
      { ...dockerManifest, layers: [desc('application/x-foo', 'b')] },
      undefined,
      /unsupported layer media type application\/x-foo/,
    ],
    ['unknown config type', { ...dockerManifest, config: desc('application/x-cfg', 'a') }, undefined, /unsupported config media type/],
    [
      'bad digest',
      { ...dockerManifest, layers: [{ mediaType: MediaType.DockerLayerGzip, digest: 'sha256:xyz', size: 1 }] },
      undefined,
      /invalid digest|checksum/,
    ],
    ['negative size', { ...dockerManifest, layers: [{ ...desc(MediaType.DockerLayerGzip, 'b'), size: -1 }] }, undefined, /invalid size/],
    ['fractional size', { ...dockerManifest, layers: [{ ...desc(MediaType.DockerLayerGzip, 'b'), size: 1.5 }] }, undefined, /invalid size/],
    ['no layers', { ...dockerManifest, layers: undefined }, undefined, /layers is not an array/],
    ['wrong schemaVersion', { ...dockerManifest, schemaVersion: 3 }, undefined, /schemaVersion 3/],
    ['type disagreement', dockerManifest, MediaType.OciIndex, /disagrees/],
  ];
  for (const [name, body, ct, re] of bad) {
    it(`rejects ${name}`, () => {
      const b = typeof body === 'string' ? Buffer.from(body) : buf(body);
      expect(() => parseManifest(b, ct)).toThrow(FormatError);
      expect(() => parseManifest(b, ct)).toThrow(re);
    });
  }
  it('rejects oversized manifests', () => {
    expect(() => parseManifest(Buffer.alloc(4 * 1024 * 1024 + 1, 0x20), undefined)).toThrow(/larger than/);
  });
});

describe('selectPlatform', () => {
  const index: ImageIndex = {
    kind: 'index',
    mediaType: MediaType.OciIndex,
    manifests: [
      desc(MediaType.OciManifest, '0', { platform: { os: 'unknown', architecture: 'unknown' } }),
      desc(MediaType.OciManifest, '1', { platform: { os: 'linux', architecture: 'arm', variant: 'v6' } }),
      desc(MediaType.OciManifest, '2', { platform: { os: 'linux', architecture: 'arm', variant: 'v7' } }),
      desc(MediaType.OciManifest, '3', { platform: { os: 'linux', architecture: 'amd64' } }),
      desc(MediaType.OciManifest, '4', { platform: { os: 'windows', architecture: 'amd64' } }),
    ],
  };
  it('picks os/arch and variant', () => {
    expect(selectPlatform(index, { os: 'linux', architecture: 'amd64' }).digest).toBe(d('3'));
    expect(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' }).digest).toBe(d('2'));
    expect(selectPlatform(index, { os: 'windows', architecture: 'amd64' }).digest).toBe(d('4'));
  });
  it('404s when nothing matches', () => {
    expect(() => selectPlatform(index, { os: 'linux', architecture: 's390x' })).toThrow(NotFoundError);
    expect(() => selectPlatform(index, { os: 'linux', architecture: 's390x' })).toThrow(
      'no matching manifest for linux/s390x in the manifest list entries',
    );
  });
});

describe('parseImageConfig', () => {
  const ok = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [d('a')] }, config: { Cmd: ['sh'] } };
  it('accepts a config', () => {
    expect(parseImageConfig(buf(ok)).rootfs.diff_ids).toEqual([d('a')]);
  });
  it('rejects broken ones', () => {
    expect(() => parseImageConfig(buf({ ...ok, rootfs: { type: 'x', diff_ids: [] } }))).toThrow(/rootfs/);
    expect(() => parseImageConfig(buf({ ...ok, rootfs: { type: 'layers', diff_ids: ['nope'] } }))).toThrow(FormatError);
    expect(() => parseImageConfig(buf({ ...ok, os: undefined }))).toThrow(/architecture and os/);
    expect(() => parseImageConfig(buf({ ...ok, config: 'x' }))).toThrow(/config is not an object/);
    expect(() => parseImageConfig(Buffer.from('{'))).toThrow(/not valid JSON/);
  });
});
