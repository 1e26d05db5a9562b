/**
 * `docker load` and `docker save`.
 *
 * Load accepts both archive shapes Docker reads:
 *  - docker-archive: manifest.json `[{Config, RepoTags, Layers}]` naming files in the tar
 *    (legacy `<id>/layer.tar`, or Docker 25+ `blobs/sha256/<hex>`), symlinks allowed between
 *    layer files as Docker writes them for shared layers;
 *  - OCI image layout: `oci-layout` + `index.json` + `blobs/<alg>/<hex>` (skopeo, buildkit).
 * Members may come in any order, so every regular file is first streamed into the blob store
 * (verified against its name when the name is a digest); then the JSON is interpreted. Blobs
 * that end up unused by a loaded image are removed again, also on failure.
 *
 * Save writes the legacy docker-archive layout, which every Docker version and skopeo's
 * `docker-archive:` transport read: `<config-hex>.json`, `<diff-id-hex>/layer.tar`
 * (uncompressed, so its digest is the diff ID) and `manifest.json`.
 */
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import { extract, pack as tarPack, type Header } from 'tar-stream';
import { FormatError, InvalidParameterError } from '../errors.js';
import { HashingStream } from './digest.js';
import { inspectLayer, layerMediaType } from './layer-inspect.js';
import { decompressLayer } from './layer.js';
import { parseManifest, selectPlatform, hostPlatform, type Descriptor, type ImageIndex } from './manifest.js';
import { progress } from './progress.js';
import { familiarString, formatReference, parseNormalized, parseReference, repositoryName } from './reference.js';
import { safeEntryName, tarError } from '../tar-safety.js';
import type { ImageRecord, PullProgress } from './types.js';
import type { Lease, LayerMeta, Store } from './store.js';

const ARCHIVE = 'archive';
const MAX_LINK_HOPS = 16;
/** JSON members we read into memory; anything bigger is not a manifest. */
const MAX_JSON = 8 * 1024 * 1024;

type Member = { kind: 'file'; digest: string; size: number } | { kind: 'link'; target: string };

/** OCI annotation holding the image name (containerd and Docker 25+ write the full reference). */
const ANNOTATION_IMAGE_NAME = 'io.containerd.image.name';
const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

async function spool(store: Store, tar: Readable, members: Map<string, Member>, written: string[], lease: Lease): Promise<void> {
  const ex = extract();
  await new Promise<void>((resolve, reject) => {
    let failed = false;
    // the member being written, so that a failure waits for its temp file to be removed
    let inflight: Promise<unknown> = Promise.resolve();
    const fail = (e: unknown) => {
      if (failed) return;
      failed = true;
      ex.destroy();
      tar.destroy();
      // waits for the in-flight write to settle; its own error is secondary to the archive's, which is reported
      void inflight.catch(() => {}).then(() => reject(tarError(e, ARCHIVE)));
    };
    ex.on('entry', (h: Header, stream, next) => {
      stream.on('error', () => {});
      inflight = (async () => {
        const name = safeEntryName(h.name, ARCHIVE);
        if (h.type === 'file' || h.type === 'contiguous-file') {
          const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
          const expected = { size: h.size ?? 0, ...(m && { digest: `sha256:${m[1]}` }) };
          const info = await store.blobs.write(stream as unknown as AsyncIterable<Uint8Array>, {
            expected,
            what: `archive member ${name}`,
            syncDir: false,
          });
          lease.pin(info.digest);
          written.push(info.digest);
          members.set(name, { kind: 'file', ...info });
          return;
        }
        if (h.type === 'symlink' || h.type === 'link') {
          const raw = h.linkname ?? '';
          if (raw.startsWith('/'))
            throw new FormatError(`${ARCHIVE}: link ${JSON.stringify(h.name)} has an absolute target`, 'ERR_UNSAFE_TAR_ENTRY');
          // symlink targets are relative to the link's directory, hard link targets to the root
          const rel = h.type === 'symlink' ? path.posix.join(path.posix.dirname(name), raw) : raw;
          members.set(name, { kind: 'link', target: safeEntryName(path.posix.normalize(rel), `${ARCHIVE}: link ${h.name}`) });
        }
        stream.resume();
        await new Promise<void>((r) => stream.on('end', () => r()));
      })();
      inflight.then(() => next(), fail);
    });
    ex.on('finish', () => {
      if (!failed) resolve();
    });
    ex.on('error', fail);
    tar.on('error', fail);
    tar.pipe(ex as unknown as Writable);
  });
}

function lookup(members: Map<string, Member>, name: string, what: string): { digest: string; size: number } {
  let n = safeEntryName(name, what);
  for (let hop = 0; hop < MAX_LINK_HOPS; hop++) {
    const m = members.get(n);
    if (!m) throw new FormatError(`${what}: archive has no member ${JSON.stringify(name)}`, 'ERR_BAD_ARCHIVE');
    if (m.kind === 'file') return m;
    n = m.target;
  }
  throw new FormatError(`${what}: too many links resolving ${JSON.stringify(name)}`, 'ERR_BAD_ARCHIVE');
}

async function readJson(store: Store, digest: string, size: number, what: string): Promise<unknown> {
  if (size > MAX_JSON) throw new FormatError(`${what}: too large (${size} bytes)`, 'ERR_BAD_ARCHIVE');
  const text = (await store.blobs.readBuffer(digest)).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(`${what}: not valid JSON: ${(e as Error).message}`, 'ERR_BAD_ARCHIVE', { cause: e });
  }
}

/** Checks each layer blob (safe tar, diff ID) bottom first. */
async function layerMetas(
  store: Store,
  blobs: { digest: string; size: number; mediaType?: string }[],
  onProgress?: (p: PullProgress) => void,
): Promise<LayerMeta[]> {
  const known = new Set<string>();
  const out: LayerMeta[] = [];
  for (const b of blobs) {
    const facts = await inspectLayer(await store.blobs.open(b.digest), `layer ${b.digest}`, known);
    onProgress?.(progress.loading(b.digest, b.size, b.size));
    out.push({
      digest: b.digest,
      mediaType: b.mediaType ?? layerMediaType(facts.compression),
      size: b.size,
      diffId: facts.diffId,
      uncompressedSize: facts.size,
    });
  }
  return out;
}

function normalizeTags(tags: unknown, what: string): string[] {
  if (tags === null || tags === undefined) return [];
  if (!Array.isArray(tags)) throw new FormatError(`${what}: RepoTags is not an array`, 'ERR_BAD_ARCHIVE');
  return tags.map((t) => {
    if (typeof t !== 'string') throw new FormatError(`${what}: RepoTags entry is not a string`, 'ERR_BAD_ARCHIVE');
    try {
      const r = parseNormalized(t);
      if (r.digest) throw new Error('a digest is not a tag');
      return formatReference(r);
    } catch (e) {
      throw new FormatError(`${what}: invalid tag ${JSON.stringify(t)}: ${(e as Error).message}`, 'ERR_BAD_ARCHIVE', { cause: e });
    }
  });
}

async function loadDockerArchive(
  store: Store,
  members: Map<string, Member>,
  onProgress?: (p: PullProgress) => void,
): Promise<ImageRecord[]> {
  const mf = lookup(members, 'manifest.json', ARCHIVE);
  const json = await readJson(store, mf.digest, mf.size, 'manifest.json');
  if (!Array.isArray(json)) throw new FormatError('manifest.json: not an array', 'ERR_BAD_ARCHIVE');
  const out: ImageRecord[] = [];
  for (const [i, entry] of json.entries()) {
    const what = `manifest.json entry ${i}`;
    if (typeof entry !== 'object' || entry === null) throw new FormatError(`${what}: not an object`, 'ERR_BAD_ARCHIVE');
    const { Config, RepoTags, Layers } = entry as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
    if (typeof Config !== 'string') throw new FormatError(`${what}: Config is not a string`, 'ERR_BAD_ARCHIVE');
    if (!Array.isArray(Layers) || Layers.some((l) => typeof l !== 'string'))
      throw new FormatError(`${what}: Layers is not a list of paths`, 'ERR_BAD_ARCHIVE');
    const tags = normalizeTags(RepoTags, what);
    const config = lookup(members, Config, what);
    await store.config(config.digest);
    const layers = await layerMetas(
      store,
      (Layers as string[]).map((l) => lookup(members, l, what)),
      onProgress,
    );
    // 'Loaded image: ...' lines are the API's to write (Docker sends them as `stream`), from the records.
    // The archive's tags only: an image already known under other tags is reported as loaded
    // under the archive's, as dockerd does.
    const rec = await store.commitImage(config.digest, layers, tags);
    out.push({ ...rec, repoTags: tags.map((t) => familiarString(parseReference(t))).sort() });
  }
  return out;
}

function ociBlob(members: Map<string, Member>, d: Descriptor, what: string): { digest: string; size: number } {
  const hex = d.digest.replace(/^sha256:/, '');
  if (!d.digest.startsWith('sha256:')) throw new FormatError(`${what}: unsupported digest algorithm ${d.digest}`, 'ERR_BAD_ARCHIVE');
  const b = lookup(members, `blobs/sha256/${hex}`, what);
  if (b.digest !== d.digest || b.size !== d.size) {
    throw new FormatError(`${what}: blob ${d.digest} does not match its descriptor (size ${b.size}, want ${d.size})`, 'ERR_BAD_ARCHIVE');
  }
  return b;
}

/** The name an OCI index entry carries, as Docker reads it. A bare tag has no repository: untagged. */
function ociName(d: Descriptor): string | undefined {
  const a = d.annotations ?? {};
  const name = a[ANNOTATION_IMAGE_NAME] ?? a[ANNOTATION_REF_NAME];
  if (!name || !/[:/]/.test(name)) return undefined;
  try {
    const r = parseNormalized(name);
    return r.digest ? undefined : formatReference(r);
  } catch {
    return undefined;
  }
}

async function loadOciLayout(store: Store, members: Map<string, Member>, onProgress?: (p: PullProgress) => void): Promise<ImageRecord[]> {
  const layoutFile = lookup(members, 'oci-layout', ARCHIVE);
  const layout = (await readJson(store, layoutFile.digest, layoutFile.size, 'oci-layout')) as { imageLayoutVersion?: string };
  if (layout?.imageLayoutVersion !== '1.0.0')
    throw new FormatError(`oci-layout: unsupported imageLayoutVersion ${String(layout?.imageLayoutVersion)}`, 'ERR_BAD_ARCHIVE');
  const idx = lookup(members, 'index.json', ARCHIVE);
  const index = parseManifest(await store.blobs.readBuffer(idx.digest), undefined, 'index.json');
  if (index.kind !== 'index') throw new FormatError('index.json: not an image index', 'ERR_BAD_ARCHIVE');
  const out: ImageRecord[] = [];
  for (const top of index.manifests) {
    const name = ociName(top);
    let desc = top;
    // A nested index (multi-platform image): pick our platform.
    for (let depth = 0; desc.mediaType.endsWith('index.v1+json') || desc.mediaType.endsWith('list.v2+json'); depth++) {
      if (depth > 4) throw new FormatError('index.json: indexes nested too deeply', 'ERR_BAD_ARCHIVE');
      const b = ociBlob(members, desc, 'index.json');
      const nested = parseManifest(await store.blobs.readBuffer(b.digest), desc.mediaType, `index ${desc.digest}`) as ImageIndex;
      desc = selectPlatform(
        { ...nested, manifests: nested.manifests.filter((m) => members.has(`blobs/sha256/${m.digest.slice(7)}`)) },
        hostPlatform(),
      );
    }
    const mb = ociBlob(members, desc, 'index.json');
    const m = parseManifest(await store.blobs.readBuffer(mb.digest), desc.mediaType, `manifest ${desc.digest}`);
    if (m.kind !== 'manifest') throw new FormatError(`manifest ${desc.digest}: not an image manifest`, 'ERR_BAD_ARCHIVE');
    const config = ociBlob(members, m.config, `manifest ${desc.digest}`);
    await store.config(config.digest);
    const layers = await layerMetas(
      store,
      m.layers.map((l) => ({ ...ociBlob(members, l, `manifest ${desc.digest}`), mediaType: l.mediaType })),
      onProgress,
    );
    const rec = await store.commitImage(config.digest, layers, name ? [name] : []);
    out.push({ ...rec, repoTags: name ? [familiarString(parseReference(name))] : [] });
  }
  return out;
}

export async function loadArchive(store: Store, tar: Readable, onProgress?: (p: PullProgress) => void): Promise<ImageRecord[]> {
  const members = new Map<string, Member>();
  const written: string[] = [];
  const lease = store.lease();
  try {
    await spool(store, tar, members, written, lease);
    if (members.has('manifest.json')) return await loadDockerArchive(store, members, onProgress);
    if (members.has('index.json')) return await loadOciLayout(store, members, onProgress);
    throw new FormatError('archive: neither manifest.json (docker-archive) nor index.json (OCI layout) found', 'ERR_BAD_ARCHIVE');
  } finally {
    // Archive members that are not part of a loaded image (manifest.json, repositories, ...) go.
    lease.release();
    await store.discardBlobs([...new Set(written)]);
  }
}

export interface SavePlan {
  images: { id: string; tags: string[] }[];
}

/** Resolves refs as `docker save` does: a bare repository name saves all of its tags. */
export async function planSave(store: Store, refs: string[]): Promise<SavePlan> {
  if (!refs.length) throw new InvalidParameterError('no images to save');
  const byId = new Map<string, Set<string>>();
  const all = await store.list();
  for (const ref of refs) {
    let parsed: ReturnType<typeof parseReference> | undefined;
    try {
      parsed = parseReference(ref);
    } catch {
      parsed = undefined;
    }
    if (parsed && !parsed.tag && !parsed.digest) {
      const repo = repositoryName(parsed);
      const hits = all.flatMap((img) =>
        img.repoTags.filter((t) => repositoryName(parseReference(t)) === repo).map((t) => [img.id, t] as const),
      );
      if (hits.length) {
        for (const [id, t] of hits) (byId.get(id) ?? byId.set(id, new Set()).get(id)!).add(formatReference(parseNormalized(t)));
        continue;
      }
    }
    const rec = await store.resolve(ref);
    const tags = byId.get(rec.id) ?? byId.set(rec.id, new Set()).get(rec.id)!;
    if (parsed?.tag && !parsed.digest) tags.add(formatReference(parsed));
  }
  return { images: [...byId].map(([id, tags]) => ({ id, tags: [...tags] })) };
}

export async function saveArchive(store: Store, plan: SavePlan, out: Writable): Promise<void> {
  const pack = tarPack();
  const piped = pipeline(pack as unknown as Readable, out);
  const mtime = new Date(0);
  const addBuffer = (name: string, data: Buffer) =>
    new Promise<void>((resolve, reject) =>
      pack.entry({ name, size: data.length, mode: 0o644, mtime }, data, (e) => (e ? reject(e) : resolve())),
    );
  const dirs = new Set<string>();
  const manifest: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
  try {
    for (const img of plan.images) {
      const meta = await store.readMeta(img.id);
      if (!meta) throw new InvalidParameterError(`No such image: ${img.id}`);
      const configName = `${img.id.slice(7)}.json`;
      if (!dirs.has(configName)) {
        await addBuffer(configName, await store.blobs.readBuffer(img.id));
        dirs.add(configName);
      }
      const layers: string[] = [];
      for (const l of meta.layers) {
        const dir = l.diffId.slice(7);
        const name = `${dir}/layer.tar`;
        layers.push(name);
        if (dirs.has(dir)) continue;
        dirs.add(dir);
        await new Promise<void>((resolve, reject) =>
          pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755, mtime }, (e) => (e ? reject(e) : resolve())),
        );
        await addBuffer(`${dir}/VERSION`, Buffer.from('1.0'));
        // The uncompressed tar is re-verified against its diff ID as it is written.
        const verify = new HashingStream(`layer ${l.digest}`, { digest: l.diffId, size: l.uncompressedSize });
        const entry = pack.entry({ name, size: l.uncompressedSize, mode: 0o644, mtime });
        await pipeline(decompressLayer(await store.blobs.open(l.digest), `layer ${l.digest}`), verify, entry as unknown as Writable);
      }
      manifest.push({
        Config: configName,
        RepoTags: img.tags.length ? img.tags.map((t) => familiarString(parseReference(t))) : null,
        Layers: layers,
      });
    }
    await addBuffer('manifest.json', Buffer.from(JSON.stringify(manifest)));
    pack.finalize();
  } catch (e) {
    pack.destroy(e as Error);
    throw e;
  }
  await piped;
}
