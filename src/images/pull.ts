/**
 * docker pull (POST /images/create?fromImage=): resolve the manifest for our platform, read
 * and verify the config, download the missing layers (a few at once, each verified against its
 * blob digest, diff ID and tar checks in one pass, connection failures retried), keep the
 * manifests, and commit the image under its digest and tag. Words and progress as dockerd's.
 */
import { Readable } from 'node:stream';
import { FormatError, TvmError } from '../errors.js';
import type { WriteOptions } from './blob-store.js';
import { openBlobBody, type OpenedBody } from './blob-fetch.js';
import { LayerBodySink } from './layer-download.js';
import { SizeMismatchError, verifyBuffer } from './digest.js';
import { inspectLayer, type LayerFacts } from './layer-inspect.js';
import { inspectionFor } from './inspect-pool.js';
import { checkDeferredLinks } from '../tar-safety.js';
import { parseImageConfig, hostPlatform, type Descriptor, type ImageConfig, type Platform } from './manifest.js';
import { Semaphore, mapLimit } from './mutex.js';
import { ProgressThrottle, progress } from './progress.js';
import { familiarString, formatReference, parseNormalized, repositoryName } from './reference.js';
import { RegistryClient, RegistryError } from './registry.js';
import type { Credentials } from './auth.js';
import { translatePullError } from './registry-errors.js';
import type { ImageRecord, PullProgress } from './types.js';
import type { ImageMeta, LayerMeta, Lease, Store } from './store.js';

export async function pullImage(
  store: Store,
  ref: string,
  opts: { auth?: Credentials; onProgress?: (p: PullProgress) => void; platform?: Platform } = {},
): Promise<ImageRecord> {
  const r = parseNormalized(ref);
  const emit = opts.onProgress ?? (() => {});
  const client = store.registryClient(r.domain, opts.auth);
  const written: string[] = [];
  const lease = store.lease();
  let configStored: Promise<void> | undefined;
  try {
    const reference = r.digest ?? r.tag!;
    const resolved = await client.resolveImage(r.path, reference, opts.platform ?? store.opts.platform ?? hostPlatform());
    // as Docker: nothing is reported before the manifest is found, so a failure to find it
    // can still be answered with its own HTTP status
    emit(progress.pullingFrom(r.path, reference));
    const manifest = resolved.manifest.manifest;
    const id = manifest.config.digest;

    // Config first: it names the diff IDs the layers must have. A new one is read into memory
    // and verified there, and stored while the layers download.
    let cfg: ImageConfig;
    if (await store.pinIfPresent(lease, id, manifest.config.size)) cfg = await store.config(id);
    else {
      const what = `image config ${id}`;
      const body = await readSmallBlob(client, r.path, manifest.config, what);
      cfg = parseImageConfig(body, what);
      configStored = store.blobs
        .write(Readable.from([body]), { expected: manifest.config, what, syncDir: false })
        .then(() => void written.push(id));
      // observed only so an early rejection is not 'unhandled': it is awaited, and its error reported, where it is used
      configStored.catch(() => {});
    }
    const diffIds = cfg.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length) {
      throw new FormatError(
        `image ${id}: manifest has ${manifest.layers.length} layers, config has ${diffIds.length} diff IDs`,
        'ERR_DIFF_ID_MISMATCH',
      );
    }
    const existing = await store.readMeta(id);
    const layers: LayerMeta[] = [];
    let downloaded = false;
    if (existing && (await allBlobsPresent(store, existing, lease))) {
      layers.push(...existing.layers);
    } else {
      // As dockerd: a layer already here (pulled before, or stored by an import or a load
      // with the same digest) says only "Already exists" (from fetchLayer); announcing it as
      // "Pulling fs layer" first read as a download starting again.
      const present = await Promise.all(manifest.layers.map((l) => store.pinIfPresent(lease, l.digest, l.size)));
      manifest.layers.forEach((l, i) => {
        if (!present[i]) emit(progress.layer('Pulling fs layer', l.digest));
      });
      // at most this many downloads at once (Docker's --max-concurrent-downloads); a layer's
      // slot is free again when its last byte arrived, not after it was verified and synced
      const slots = new Semaphore(store.opts.maxConcurrentDownloads ?? 3);
      const fetched = await mapLimit(manifest.layers, manifest.layers.length, async (l, i) => {
        const m = await fetchLayer(store, client, r.path, l, diffIds[i]!, emit, written, lease, slots);
        if (m.downloaded) downloaded = true;
        return m;
      });
      // Hard links into lower layers could only be checked once all layers were here.
      await checkDeferredLinks(
        fetched.map((f) => ({ what: `layer ${f.meta.digest}`, dangling: f.dangling ?? [] })),
        async (j) =>
          fetched[j]!.paths ??
          (fetched[j]!.paths = (
            await inspectLayer(await store.blobs.open(fetched[j]!.meta.digest), `layer ${fetched[j]!.meta.digest}`)
          ).paths),
      );
      layers.push(...fetched.map((f) => f.meta));
    }
    // Keep the manifests too, so `save`/`push` can reproduce what was pulled.
    for (const m of [resolved.index, resolved.manifest]) {
      if (m && !(await store.pinIfPresent(lease, m.digest))) await store.blobs.writeBuffer(m.body, { digest: m.digest });
    }
    const refs = [`${repositoryName(r)}@${resolved.digest}`];
    if (r.tag && !r.digest) refs.push(formatReference(r));
    const before = existing ? await store.taggedId(r) : undefined;
    await configStored;
    const rec = await store.commitImage(id, layers, refs);
    emit(progress.digest(resolved.digest));
    const shown = familiarString(r);
    emit(downloaded || before !== id ? progress.downloadedNewer(shown) : progress.upToDate(shown));
    return rec;
  } catch (e) {
    // the pull's own error is thrown below; this only waits for the config write to settle
    await configStored?.catch(() => {});
    lease.release();
    // the pull's error is thrown below; unreferenced blobs left behind are collected at the next daemon start
    await store.discardBlobs(written).catch(() => {});
    throw translatePullError(e, r);
  } finally {
    lease.release();
    await client.close();
  }
}

async function allBlobsPresent(store: Store, meta: ImageMeta, lease: Lease): Promise<boolean> {
  for (const l of meta.layers) if (!(await store.pinIfPresent(lease, l.digest, l.size))) return false;
  return true;
}

/** Downloads one layer (unless present), verifying blob digest and diff ID in one pass. */
async function fetchLayer(
  store: Store,
  client: RegistryClient,
  repo: string,
  l: Descriptor,
  wantDiffId: string,
  emit: (p: PullProgress) => void,
  written: string[],
  lease: Lease,
  slots: Semaphore,
): Promise<{ meta: LayerMeta; downloaded: boolean; paths?: Set<string>; dangling?: { name: string; target: string }[] }> {
  if (await store.pinIfPresent(lease, l.digest, l.size)) {
    let db = await store.knownLayer(l.digest);
    let checked: LayerFacts | undefined;
    if (!db) {
      // a blob no image refers to (an archive member while a load runs, a leftover) had no
      // tar checks as a layer: it gets them here, as a download would
      checked = await inspectLayer(await store.blobs.open(l.digest), `layer ${l.digest}`, new Set(), { deferLinks: true });
      db = { diffId: checked.diffId, size: checked.size };
    }
    if (db.diffId !== wantDiffId) {
      throw new FormatError(`layer ${l.digest}: diff ID ${db.diffId} differs from the config's ${wantDiffId}`, 'ERR_DIFF_ID_MISMATCH');
    }
    emit(progress.layer('Already exists', l.digest));
    return {
      meta: { digest: l.digest, mediaType: l.mediaType, size: l.size, diffId: db.diffId, uncompressedSize: db.size },
      downloaded: false,
      ...(checked && { paths: checked.paths, dangling: checked.dangling }),
    };
  }
  const maxAttempts = store.opts.downloadAttempts ?? 3;
  const what = `layer ${l.digest}`;
  let info: { digest: string; size: number } | undefined;
  let facts: LayerFacts | undefined;
  for (let attempt = 1; !info; attempt++) {
    const shown = new ProgressThrottle(l.size, { everyBytes: store.opts.progressEveryBytes, everyMs: store.opts.progressEveryMs });
    let seen = 0;
    // blob digest and size, diff ID and tar checks all in the download's one pass
    const inspector = inspectionFor(what, l.size, { deferLinks: true, hashBlob: true });
    const digestOf = inspector.blobDigest?.bind(inspector);
    const release = await slots.acquire();
    let direct: Extract<OpenedBody, { kind: 'body' }> | undefined;
    try {
      const common: WriteOptions = {
        expected: l,
        what,
        syncDir: false,
        // a worker inspection hashes the blob too, so the downloading thread does not
        ...(digestOf && {
          digestOf: async () => {
            // ending the inspection is what makes the worker report its hash (a failed
            // inspection still reports it, so a wrong digest is named as such first)
            // a failed inspection still reports its hash (what this waits for); its own error is raised by beforeCommit
            await inspector.end().catch(() => {});
            return digestOf();
          },
        }),
        // a layer whose tar is unsafe or whose diff ID is not the config's is never stored
        beforeCommit: async () => {
          emit(progress.layer('Verifying Checksum', l.digest));
          facts = await inspector.end();
          if (facts.diffId !== wantDiffId) {
            throw new FormatError(
              `${what}: uncompressed digest ${facts.diffId} differs from the config's diff ID ${wantDiffId}`,
              'ERR_DIFF_ID_MISMATCH',
            );
          }
        },
      };
      const seenChunk = (c: Buffer) => {
        seen += c.length;
        if (shown.due(seen, performance.now())) emit(progress.downloading(l.digest, seen, l.size));
      };
      direct = await openDirect(client, repo, l);
      if (direct) {
        const body = direct;
        info = await store.blobs.writeFrom(async (file) => {
          const sink = new LayerBodySink(file, inspector);
          await body.pipe((c) => {
            seenChunk(c);
            return sink.push(c);
          });
          release();
          await sink.end();
        }, common);
      } else {
        const body = await client.getBlob(repo, l);
        info = await store.blobs.write(body, {
          ...common,
          onSourceEnd: release,
          onChunk: (c) => {
            seenChunk(c);
            return inspector.write(c);
          },
        });
      }
    } catch (e) {
      release();
      direct?.destroy();
      inspector.abort();
      // Connection trouble is retried (as Docker does); bad content never is.
      if (attempt >= maxAttempts || !isTransient(e)) throw e;
      const delay = attempt * (store.opts.retryDelayMs ?? 1000);
      emit({
        status: `Retrying in ${Math.round(delay / 1000)} second${delay === 1000 ? '' : 's'}`,
        id: l.digest.slice(7, 19),
        progressDetail: {},
      });
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  written.push(info.digest);
  const { diffId, size, paths, dangling } = facts!;
  emit(progress.layer('Download complete', l.digest));
  emit(progress.layer('Pull complete', l.digest));
  return {
    meta: { digest: l.digest, mediaType: l.mediaType, size: l.size, diffId, uncompressedSize: size },
    downloaded: true,
    paths,
    dangling,
  };
}

/** Network failures worth another try: unreachable registry, 5xx, reset or cut connections. */
function isTransient(e: unknown): boolean {
  if (e instanceof RegistryError) return e.code === 'ERR_REGISTRY_UNREACHABLE' || e.code === 'ERR_REGISTRY_SERVER';
  if (e instanceof TvmError) return false;
  const code = (e as { code?: string })?.code ?? '';
  return (
    /^(UND_ERR_(SOCKET|CLOSED|ABORTED|BODY_TIMEOUT|HEADERS_TIMEOUT|CONNECT_TIMEOUT)|ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT)$/.test(code) ||
    (e as Error)?.message === 'terminated'
  );
}

/** A small blob (an image config) read whole into memory, then checked against its descriptor. */
async function readSmallBlob(client: RegistryClient, repo: string, desc: Descriptor, what: string): Promise<Buffer> {
  const body = await client.getBlob(repo, desc);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    // a body longer than the descriptor says is cut off at once, not read to its end
    if (n > desc.size) {
      body.destroy();
      throw new SizeMismatchError(what, desc.size, n, false);
    }
    chunks.push(c as Buffer);
  }
  const data = Buffer.concat(chunks, n);
  verifyBuffer(what, data, { digest: desc.digest, size: desc.size });
  return data;
}

/**
 * A layer body read directly from its socket (blob-fetch.ts), or undefined when the registry
 * client must carry the request (its own dispatcher; any answer but a plain 200: a redirect,
 * 401, an error status, which it then words as Docker does).
 */
async function openDirect(client: RegistryClient, repo: string, l: Descriptor): Promise<Extract<OpenedBody, { kind: 'body' }> | undefined> {
  const req = await client.blobRequest(repo, l.digest);
  if (!req) return undefined;
  const opened = await openBlobBody(req);
  if (opened.kind === 'other') return undefined;
  if (opened.length !== l.size) {
    opened.destroy();
    throw new RegistryError(
      `blob ${l.digest}: Content-Length ${opened.length} differs from descriptor size ${l.size}`,
      'ERR_SIZE_MISMATCH',
      400,
    );
  }
  return opened;
}
