/**
 * `docker push REPO[:TAG]` (POST /images/{name}/push): an image's layers, config and manifest
 * to a registry, with Docker's progress messages:
 *
 *   The push refers to repository [host/repo]
 *   <layer>: Preparing / Waiting / Pushing [==>  ] 1.2MB/3MB / Pushed / Layer already exists /
 *            Mounted from other/repo
 *   <tag>: digest: sha256:... size: N
 *
 * As dockerd's upload manager: the layers top first (the order the docker CLI draws them in),
 * all Preparing, then Waiting for those beyond the five uploads at once, Pushing with
 * progressDetail {current,total} as the bytes go (throttled as pulls' Downloading), and how
 * each ended. The bar counts the compressed blob's bytes (dockerd counts the uncompressed
 * ones it compresses on the fly; tvm compressed the layer before the upload began).
 *
 * Layers the builder or `docker commit` made are stored uncompressed; like dockerd they are
 * pushed gzip-compressed. The compressed blob is kept in the blob store and remembered by diff
 * ID (push-layers.json), so the next push of the same layer finds it ("Layer already exists")
 * without compressing again. A layer is mounted from another repository of the same registry
 * that this daemon knows holds it (cross-repository blob mount) instead of being uploaded.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { writeJsonAtomic } from '../atomic-file.js';
import { InvalidParameterError, NotFoundError } from '../errors.js';
import type { Credentials } from './auth.js';
import { MediaType, parseManifest } from './manifest.js';
import { Mutex, mapLimit } from './mutex.js';
import { familiarName, parseNormalized, repositoryName, type Reference } from './reference.js';
import { RegistryClient, type RegistryClientOptions } from './registry.js';
import { progress, ProgressThrottle } from './progress.js';
import type { LayerMeta, Store } from './store.js';
import type { PullProgress } from './types.js';

/** dockerd's max-concurrent-uploads default */
const MAX_CONCURRENT_UPLOADS = 5;

const UNCOMPRESSED = new Set<string>([MediaType.OciLayer, 'application/vnd.docker.image.rootfs.diff.tar']);

interface Compressed {
  digest: string;
  size: number;
}

/** diff ID -> the gzip blob pushed for it (per store) */
const indexLocks = new WeakMap<Store, Mutex>();

function indexPath(store: Store): string {
  return path.join(store.root, 'images', 'push-layers.json');
}

async function readIndex(store: Store): Promise<Record<string, Compressed>> {
  try {
    return JSON.parse(await readFile(indexPath(store), 'utf8')) as Record<string, Compressed>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
}

/** The gzip blob of an uncompressed layer: the one made before, or a new one. */
async function compressed(store: Store, l: LayerMeta): Promise<Compressed> {
  const known = (await readIndex(store))[l.diffId];
  if (known && (await store.blobs.has(known.digest, known.size))) return known;
  const info = await store.blobs.write((await store.blobs.open(l.digest)).pipe(createGzip()), { what: `gzip of layer ${l.diffId}` });
  let lock = indexLocks.get(store);
  if (!lock) indexLocks.set(store, (lock = new Mutex()));
  await lock.run(async () => {
    const idx = await readIndex(store);
    idx[l.diffId] = info;
    await writeJsonAtomic(indexPath(store), idx);
  });
  return info;
}

function clientFor(store: Store, domain: string, auth: Credentials | undefined): RegistryClient {
  const o: RegistryClientOptions = {};
  if (store.opts.insecureRegistries) o.insecureRegistries = store.opts.insecureRegistries;
  if (store.opts.dockerConfigPath) o.dockerConfigPath = store.opts.dockerConfigPath;
  if (auth && Object.values(auth).some((v) => v)) o.credentials = auth;
  return new RegistryClient(domain, o);
}

const shortId = (d: string) => d.replace(/^sha256:/, '').slice(0, 12);

interface ProgressOptions {
  /** bytes between two Pushing messages of one layer (tests); default as pulls' (see ProgressThrottle) */
  progressEveryBytes?: number;
  progressEveryMs?: number;
}

/** `body`, reporting the bytes read from it as ProgressThrottle lets through (always the last). */
function counted(body: Readable, total: number, report: (n: number) => void, o: ProgressOptions): Readable {
  const shown = new ProgressThrottle(total, { everyBytes: o.progressEveryBytes ?? undefined, everyMs: o.progressEveryMs ?? undefined });
  let seen = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (shown.due(seen, Date.now())) report(seen);
      done(null, chunk);
    },
  });
  // a failed read fails the upload that reads `t`
  body.on('error', (e) => t.destroy(e));
  return body.pipe(t);
}

/** Pushes one tag of a repository; returns the manifest digest. */
async function pushTag(
  store: Store,
  client: RegistryClient,
  r: Reference,
  emit: (p: PullProgress) => void,
  opts: ProgressOptions,
): Promise<string> {
  const ref = `${repositoryName(r)}:${r.tag}`;
  const id = await store.resolveId(ref);
  const meta = (await store.readMeta(id))!;
  const cfgInfo = await store.blobs.stat(id);
  if (!cfgInfo) throw new NotFoundError(`image config ${id} is missing from the store`);
  const oci = meta.layers.some((l) => l.mediaType.startsWith('application/vnd.oci.') && !UNCOMPRESSED.has(l.mediaType));
  // a repository of the same registry that this daemon pulled or pushed the image to lends its blobs
  const mountFrom = (await store.list())
    .find((img) => img.id === id)
    ?.repoDigests.map((d) => parseNormalized(d))
    .find((p) => p.domain === r.domain && p.path !== r.path)?.path;
  // top layer first, as dockerd lists (and uploads) them
  const top = [...meta.layers].reverse();
  for (const l of top) emit({ status: 'Preparing', id: shortId(l.diffId), progressDetail: {} });
  for (const l of top.slice(MAX_CONCURRENT_UPLOADS)) emit({ status: 'Waiting', id: shortId(l.diffId), progressDetail: {} });
  const pushed = await mapLimit(top, MAX_CONCURRENT_UPLOADS, async (l) => {
    const id = shortId(l.diffId);
    const desc = UNCOMPRESSED.has(l.mediaType)
      ? { mediaType: oci ? MediaType.OciLayerGzip : MediaType.DockerLayerGzip, ...(await compressed(store, l)) }
      : { mediaType: l.mediaType, digest: l.digest, size: l.size };
    // opened only when the registry has the blob nowhere: the upload itself
    const open = async () => counted(await store.blobs.open(desc.digest), desc.size, (n) => emit(progress.pushing(id, n, desc.size)), opts);
    const res = await client.pushBlob(r.path, desc, open, mountFrom);
    emit({
      status: res === 'exists' ? 'Layer already exists' : res === 'mounted' ? `Mounted from ${mountFrom}` : 'Pushed',
      id,
      progressDetail: {},
    });
    return desc;
  });
  // the manifest lists them bottom first, as the image's rootfs does
  const layers = pushed.reverse();
  await client.pushBlob(r.path, cfgInfo, () => store.blobs.open(id), mountFrom);
  const manifest = {
    schemaVersion: 2,
    mediaType: oci ? MediaType.OciManifest : MediaType.DockerManifest,
    config: { mediaType: oci ? MediaType.OciConfig : MediaType.DockerConfig, size: cfgInfo.size, digest: id },
    layers,
  };
  const body = Buffer.from(JSON.stringify(manifest, null, 3));
  parseManifest(body, manifest.mediaType, `manifest for ${ref}`);
  const digest = await client.putManifest(r.path, r.tag!, manifest.mediaType, body, mountFrom);
  if (!(await store.blobs.has(digest))) await store.blobs.writeBuffer(body, { digest });
  await store.addRefs(id, [`${repositoryName(r)}@${digest}`]);
  emit({ status: `${r.tag}: digest: ${digest} size: ${body.length}` });
  emit({ progressDetail: {}, aux: { Tag: r.tag, Digest: digest, Size: body.length } } as unknown as PullProgress);
  return digest;
}

/**
 * `docker push name[:tag]`; without a tag (`--all-tags`) every tag of the repository. Throws
 * before anything is sent (404) when the image or repository is unknown.
 */
export async function pushImage(
  store: Store,
  name: string,
  tag: string | undefined,
  opts: { auth?: Credentials; onProgress?: (p: PullProgress) => void } & ProgressOptions = {},
): Promise<string[]> {
  const emit = opts.onProgress ?? (() => {});
  const parsed = parseNormalized(name);
  // the repository; a tag in the name counts when no tag parameter is given (POST /images/repo:tag/push)
  const base: Reference = { ...parsed, tag: undefined };
  if (!tag && /:[^/:]+$/.test(name) && parsed.tag) tag = parsed.tag;
  if (parsed.digest) throw new InvalidParameterError(`cannot push a digest reference: ${name}`);
  let refs: Reference[];
  if (tag) {
    refs = [{ ...base, tag }];
    await store.resolveId(`${repositoryName(base)}:${tag}`).catch((e: unknown) => {
      throw e instanceof NotFoundError
        ? new NotFoundError(`An image does not exist locally with the tag: ${familiarName(base)}`, 'ERR_NO_SUCH_IMAGE')
        : e;
    });
  } else {
    const repo = repositoryName(base);
    const tags = (await store.list())
      .flatMap((img) => img.repoTags)
      .map((t) => parseNormalized(t))
      .filter((p) => repositoryName(p) === repo && p.tag !== undefined);
    if (tags.length === 0)
      throw new NotFoundError(`An image does not exist locally with the tag: ${familiarName(base)}`, 'ERR_NO_SUCH_IMAGE');
    refs = tags.sort((a, b) => (a.tag! < b.tag! ? -1 : 1));
  }
  const client = clientFor(store, base.domain, opts.auth);
  try {
    emit({ status: `The push refers to repository [${repositoryName(base)}]` });
    const out: string[] = [];
    // the daemon's Downloading throttle (tests set it small) unless the caller gives its own
    const every = opts.progressEveryBytes ?? store.opts.progressEveryBytes;
    const ms = opts.progressEveryMs ?? store.opts.progressEveryMs;
    const po: ProgressOptions = {
      ...(every !== undefined && { progressEveryBytes: every }),
      ...(ms !== undefined && { progressEveryMs: ms }),
    };
    for (const r of refs) out.push(await pushTag(store, client, r, emit, po));
    return out;
  } finally {
    await client.close();
  }
}
