/**
 * Image manifests, indexes and configs: media types, parsing with validation of every
 * descriptor, and platform selection from an index (Docker manifest list or OCI index).
 */
import { FormatError, NotFoundError } from '../errors.js';
import { validateDigest } from './reference.js';
import type { ImageRunConfig } from './types.js';

export const MediaType = {
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayerForeignGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
} as const;

/** What we ask registries for, in Docker's order of preference. */
export const MANIFEST_ACCEPT = [MediaType.DockerManifest, MediaType.DockerManifestList, MediaType.OciManifest, MediaType.OciIndex];

export const LAYER_MEDIA_TYPES = new Set<string>([
  MediaType.DockerLayerGzip,
  MediaType.DockerLayerForeignGzip,
  MediaType.OciLayer,
  MediaType.OciLayerGzip,
  MediaType.OciLayerZstd,
  MediaType.OciLayerNondistributable,
  MediaType.OciLayerNondistributableGzip,
  MediaType.OciLayerNondistributableZstd,
]);
export const CONFIG_MEDIA_TYPES = new Set<string>([MediaType.DockerConfig, MediaType.OciConfig]);

/** Docker refuses manifests larger than this (distribution's maxManifestBodySize). */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface ImageManifest {
  kind: 'manifest';
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageIndex {
  kind: 'index';
  mediaType: string;
  manifests: Descriptor[];
}

export type ParsedManifest = ImageManifest | ImageIndex;

/** The image config blob, as much of it as we use. */
export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  created?: string;
  author?: string;
  config?: ImageRunConfig;
  rootfs: { type: string; diff_ids: string[] };
  history?: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean; author?: string }[];
  [k: string]: unknown;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) throw new FormatError(`${what}: descriptor is not an object`, 'ERR_BAD_MANIFEST');
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string' || mediaType === '') throw new FormatError(`${what}: descriptor has no mediaType`, 'ERR_BAD_MANIFEST');
  if (typeof digest !== 'string') throw new FormatError(`${what}: descriptor has no digest`, 'ERR_BAD_MANIFEST');
  try {
    validateDigest(digest);
  } catch (e) {
    throw new FormatError(`${what}: ${(e as Error).message}`, 'ERR_BAD_MANIFEST', { cause: e });
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new FormatError(`${what}: descriptor ${digest} has an invalid size`, 'ERR_BAD_MANIFEST');
  }
  const d: Descriptor = { mediaType, digest, size };
  if (Array.isArray(v.urls)) d.urls = v.urls.filter((u): u is string => typeof u === 'string');
  if (isObject(v.annotations)) d.annotations = v.annotations as Record<string, string>;
  if (isObject(v.platform)) {
    const p = v.platform;
    if (typeof p.os !== 'string' || typeof p.architecture !== 'string') {
      throw new FormatError(`${what}: descriptor ${digest} has an invalid platform`, 'ERR_BAD_MANIFEST');
    }
    d.platform = { os: p.os, architecture: p.architecture, ...(typeof p.variant === 'string' && { variant: p.variant }) };
  }
  return d;
}

/**
 * Parses a manifest or index body. `contentType` is the registry's Content-Type (or the
 * descriptor's mediaType); the body's own `mediaType`, when present, must agree with it.
 */
export function parseManifest(body: Uint8Array, contentType: string | undefined, what = 'manifest'): ParsedManifest {
  if (body.length > MAX_MANIFEST_SIZE) throw new FormatError(`${what}: larger than ${MAX_MANIFEST_SIZE} bytes`, 'ERR_BAD_MANIFEST');
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch (e) {
    throw new FormatError(`${what}: not valid JSON: ${(e as Error).message}`, 'ERR_BAD_MANIFEST', { cause: e });
  }
  if (!isObject(json)) throw new FormatError(`${what}: not a JSON object`, 'ERR_BAD_MANIFEST');
  const ct = contentType?.split(';')[0]!.trim();
  const bodyType = typeof json.mediaType === 'string' ? json.mediaType : undefined;
  let mediaType = bodyType;
  if (mediaType === undefined) {
    // OCI allows omitting mediaType; then the header decides, and without one the shape does.
    if (ct && ct !== 'application/json' && ct !== 'text/plain' && ct !== 'application/octet-stream') mediaType = ct;
    else if (Array.isArray(json.manifests)) mediaType = MediaType.OciIndex;
    else if (json.schemaVersion === 1) mediaType = MediaType.DockerSchema1;
    else mediaType = MediaType.OciManifest;
  } else if (
    ct &&
    (ct === MediaType.DockerManifest || ct === MediaType.DockerManifestList || ct === MediaType.OciManifest || ct === MediaType.OciIndex) &&
    ct !== bodyType
  ) {
    throw new FormatError(`${what}: Content-Type ${ct} disagrees with mediaType ${bodyType}`, 'ERR_BAD_MANIFEST');
  }
  switch (mediaType) {
    case MediaType.DockerManifest:
    case MediaType.OciManifest: {
      if (json.schemaVersion !== 2)
        throw new FormatError(`${what}: unsupported schemaVersion ${String(json.schemaVersion)}`, 'ERR_BAD_MANIFEST');
      const config = parseDescriptor(json.config, `${what} config`);
      if (!Array.isArray(json.layers)) throw new FormatError(`${what}: layers is not an array`, 'ERR_BAD_MANIFEST');
      const layers = json.layers.map((l, i) => parseDescriptor(l, `${what} layer ${i}`));
      for (const l of layers) {
        if (!LAYER_MEDIA_TYPES.has(l.mediaType)) {
          throw new FormatError(`${what}: unsupported layer media type ${l.mediaType} (${l.digest})`, 'ERR_UNSUPPORTED_MEDIA_TYPE');
        }
      }
      if (!CONFIG_MEDIA_TYPES.has(config.mediaType)) {
        throw new FormatError(`${what}: unsupported config media type ${config.mediaType}`, 'ERR_UNSUPPORTED_MEDIA_TYPE');
      }
      return { kind: 'manifest', mediaType, config, layers };
    }
    case MediaType.DockerManifestList:
    case MediaType.OciIndex: {
      if (json.schemaVersion !== 2)
        throw new FormatError(`${what}: unsupported schemaVersion ${String(json.schemaVersion)}`, 'ERR_BAD_MANIFEST');
      if (!Array.isArray(json.manifests)) throw new FormatError(`${what}: manifests is not an array`, 'ERR_BAD_MANIFEST');
      return { kind: 'index', mediaType, manifests: json.manifests.map((m, i) => parseDescriptor(m, `${what} entry ${i}`)) };
    }
    case MediaType.DockerSchema1:
    case MediaType.DockerSchema1Signed:
      throw new FormatError(
        `${what}: Docker image manifest schema 1 is not supported (deprecated by Docker)`,
        'ERR_UNSUPPORTED_MEDIA_TYPE',
      );
    default:
      throw new FormatError(`${what}: unsupported manifest media type ${mediaType}`, 'ERR_UNSUPPORTED_MEDIA_TYPE');
  }
}

/** The platform this daemon runs images for, in OCI's architecture names. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = {
    x64: 'amd64',
    arm64: 'arm64',
    arm: 'arm',
    ia32: '386',
    ppc64: 'ppc64le',
    s390x: 's390x',
    riscv64: 'riscv64',
  };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** Picks the index entry for `want`; variant must match only when both sides name one. */
export function selectPlatform(index: ImageIndex, want: Platform): Descriptor {
  const candidates = index.manifests.filter(
    (m) =>
      (m.mediaType === MediaType.DockerManifest || m.mediaType === MediaType.OciManifest) &&
      m.platform !== undefined &&
      m.platform.os === want.os &&
      m.platform.architecture === want.architecture &&
      (want.variant === undefined || m.platform.variant === undefined || m.platform.variant === want.variant),
  );
  const exact = candidates.find((m) => m.platform?.variant === want.variant);
  const pick = exact ?? candidates[0];
  if (!pick)
    throw new NotFoundError(`no matching manifest for ${formatPlatform(want)} in the manifest list entries`, 'ERR_NO_MATCHING_MANIFEST');
  return pick;
}

/** Parses and checks an image config blob. */
export function parseImageConfig(body: Uint8Array, what = 'image config'): ImageConfig {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch (e) {
    throw new FormatError(`${what}: not valid JSON: ${(e as Error).message}`, 'ERR_BAD_CONFIG', { cause: e });
  }
  if (!isObject(json)) throw new FormatError(`${what}: not a JSON object`, 'ERR_BAD_CONFIG');
  const rootfs = json.rootfs;
  if (!isObject(rootfs) || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids)) {
    throw new FormatError(`${what}: rootfs must be {type: "layers", diff_ids: [...]}`, 'ERR_BAD_CONFIG');
  }
  for (const d of rootfs.diff_ids) {
    if (typeof d !== 'string') throw new FormatError(`${what}: diff_id is not a string`, 'ERR_BAD_CONFIG');
    try {
      validateDigest(d);
    } catch (e) {
      throw new FormatError(`${what}: ${(e as Error).message}`, 'ERR_BAD_CONFIG', { cause: e });
    }
  }
  if (typeof json.architecture !== 'string' || typeof json.os !== 'string') {
    throw new FormatError(`${what}: architecture and os are required`, 'ERR_BAD_CONFIG');
  }
  if (json.config !== undefined && json.config !== null && !isObject(json.config)) {
    throw new FormatError(`${what}: config is not an object`, 'ERR_BAD_CONFIG');
  }
  return json as unknown as ImageConfig;
}
