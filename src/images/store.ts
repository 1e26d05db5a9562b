/**
 * The image store: images identified by their config digest (as Docker does), their layer
 * blobs kept as pulled (compressed) in the blob store, and a repositories index mapping
 * `repo:tag` and `repo@digest` references to image IDs.
 *
 * Layout under the data root:
 *   blobs/sha256/<hex>                 configs, manifests, layers (verified on write)
 *   images/repositories.json           {"Repositories": {repo: {ref: imageId}}} (atomic writes)
 *   images/meta/<hex>.json             per image: its layers (blob digest, media type, diff ID, sizes)
 *
 * An image appears only after all its blobs are verified and its meta is written; the index
 * is updated last, so a crash leaves at worst unreferenced blobs, never a broken image.
 */
import { readFile, readdir, unlink, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable, PassThrough } from 'node:stream';
import { writeJsonAtomic } from '../atomic-file.js';
import { ConflictError, InvalidParameterError, NotFoundError, FormatError } from '../errors.js';
import { BlobStore } from './blob-store.js';
import { HashingStream, digestHex, sha256Digest } from './digest.js';
import { decompressLayer } from './layer.js';
import { parseImageConfig, type ImageConfig, type Platform } from './manifest.js';
import { Mutex } from './mutex.js';
import {
  DEFAULT_DOMAIN,
  LEGACY_DEFAULT_DOMAIN,
  familiarString,
  formatReference,
  parseNormalized,
  parseReference,
  repositoryName,
  type Reference,
} from './reference.js';
import { RegistryClient, type RegistryClientOptions } from './registry.js';
import { AuthError, type Credentials } from './auth.js';
import { storeDockerCredentials } from './docker-config.js';
import { RegistryResponseError, statusLine } from './registry-errors.js';
import type { ImageRecord, ImageStore, PullProgress } from './types.js';
import { loadArchive, planSave, saveArchive } from './docker-archive.js';
import { importRootfs } from './import.js';
import { pushImage } from './push.js';
import { pullImage } from './pull.js';

export interface LayerMeta {
  /** digest of the blob as stored (compressed or not) */
  digest: string;
  mediaType: string;
  /** stored blob size */
  size: number;
  diffId: string;
  uncompressedSize: number;
}

export interface ImageMeta {
  id: string;
  layers: LayerMeta[];
  /** when this daemon stored the image */
  stored: string;
  /** the image this one was built or committed on (Docker's Parent; set by the builder and commit) */
  parent?: string;
}

interface RepositoriesFile {
  Repositories: Record<string, Record<string, string>>;
}

/** One row of GET /images/{name}/history, in Docker's field names. */
export interface ImageHistoryEntry {
  Id: string;
  Created: number;
  CreatedBy: string;
  Tags: string[] | null;
  Size: number;
  Comment: string;
}

export interface Lease {
  pin(digest: string): void;
  release(): void;
}

export interface StoreOptions {
  /** registries (host[:port]) allowed over plain HTTP besides loopback */
  insecureRegistries?: string[];
  /** docker config.json with `auths`, `credsStore`, `credHelpers` (default $DOCKER_CONFIG/config.json or ~/.docker/config.json) */
  dockerConfigPath?: string;
  /**
   * `login` also saves the credentials in that config, where `docker login` would (through its
   * credential helper, or base64 in `auths`), for later pulls without X-Registry-Auth. Off by
   * default: a shared daemon that remembered one user's login would serve it to every client
   * (Docker's daemon keeps nothing; its CLI stores).
   */
  saveLogins?: boolean;
  /** platform to pull from manifest lists (default linux/<host arch>) */
  platform?: Platform;
  /** parallel layer downloads (Docker's max-concurrent-downloads default: 3) */
  maxConcurrentDownloads?: number;
  /** bytes between two Downloading progress messages of one layer (see ProgressThrottle) */
  progressEveryBytes?: number;
  /** least time between two Downloading messages of one layer, except the last (default 100 ms) */
  progressEveryMs?: number;
  /**
   * Called (under the store's lock) once an image is deleted, to reclaim what is derived from
   * it outside the store (its base disks). A failure fails the removal's answer, not the removal.
   */
  onImageDeleted?: (id: string) => Promise<void>;
  /** tries per layer download when the connection fails (default 3) */
  downloadAttempts?: number;
  /** delay before retry n is n times this (default 1000 ms) */
  retryDelayMs?: number;
}

const ID_RE = /^sha256:[a-f0-9]{64}$/;
const ID_PREFIX_RE = /^(?:sha256:)?([a-f0-9]{1,64})$/;

export class Store implements ImageStore {
  readonly blobs: BlobStore;
  private readonly imagesDir: string;
  private readonly metaDir: string;
  private readonly reposPath: string;
  private readonly lock = new Mutex();
  private readonly configCache = new Map<string, ImageConfig>();
  /** blobs that operations in progress wrote or rely on: never deleted as unreferenced */
  private readonly pins = new Map<string, number>();

  constructor(
    readonly root: string,
    readonly opts: StoreOptions = {},
  ) {
    this.blobs = new BlobStore(root);
    this.imagesDir = path.join(root, 'images');
    this.metaDir = path.join(this.imagesDir, 'meta');
    this.reposPath = path.join(this.imagesDir, 'repositories.json');
  }

  /**
   * Daemon start: removes temp files of blob writes a crash interrupted. Images themselves
   * need no repair: a blob, a meta file and the index each appear atomically.
   */
  async recover(): Promise<void> {
    await this.blobs.cleanTemp();
  }

  // ---- index and meta files ----

  private async readRepos(): Promise<RepositoriesFile> {
    try {
      const j = JSON.parse(await readFile(this.reposPath, 'utf8')) as RepositoriesFile;
      return { Repositories: j.Repositories ?? {} };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { Repositories: {} };
      throw e;
    }
  }

  private async writeRepos(r: RepositoriesFile): Promise<void> {
    for (const [repo, refs] of Object.entries(r.Repositories)) if (Object.keys(refs).length === 0) delete r.Repositories[repo];
    await writeJsonAtomic(this.reposPath, r);
  }

  private metaPath(id: string): string {
    return path.join(this.metaDir, `${digestHex(id)}.json`);
  }

  async readMeta(id: string): Promise<ImageMeta | undefined> {
    try {
      return JSON.parse(await readFile(this.metaPath(id), 'utf8')) as ImageMeta;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  private async allIds(): Promise<string[]> {
    try {
      return (await readdir(this.metaDir)).filter((n) => /^[a-f0-9]{64}\.json$/.test(n)).map((n) => `sha256:${n.slice(0, 64)}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /** Diff ID and uncompressed size of a stored layer blob, from any image that uses it. */
  async knownLayer(blobDigest: string): Promise<{ diffId: string; size: number } | undefined> {
    for (const id of await this.allIds()) {
      const l = (await this.readMeta(id))?.layers.find((x) => x.digest === blobDigest);
      if (l) return { diffId: l.diffId, size: l.uncompressedSize };
    }
    return undefined;
  }

  async config(id: string): Promise<ImageConfig> {
    let c = this.configCache.get(id);
    if (!c) {
      c = parseImageConfig(await this.blobs.readBuffer(id), `image config ${id}`);
      this.configCache.set(id, c);
    }
    return c;
  }

  private async record(id: string, repos?: RepositoriesFile): Promise<ImageRecord> {
    const meta = await this.readMeta(id);
    if (!meta) throw new NotFoundError(`No such image: ${id}`, 'ERR_NO_SUCH_IMAGE');
    const cfg = await this.config(id);
    const r = repos ?? (await this.readRepos());
    const repoTags: string[] = [];
    const repoDigests: string[] = [];
    for (const refs of Object.values(r.Repositories)) {
      for (const [ref, target] of Object.entries(refs)) {
        if (target !== id) continue;
        const parsed = parseReference(ref);
        (parsed.digest ? repoDigests : repoTags).push(familiarString(parsed));
      }
    }
    return {
      id,
      repoTags: repoTags.sort(),
      repoDigests: repoDigests.sort(),
      created: cfg.created ?? new Date(0).toISOString(),
      architecture: cfg.architecture,
      os: cfg.os,
      config: cfg.config ?? {},
      diffIds: cfg.rootfs.diff_ids,
      size: meta.layers.reduce((s, l) => s + l.uncompressedSize, 0),
      ...(meta.parent && { parent: meta.parent }),
      ...(typeof cfg.author === 'string' && cfg.author && { author: cfg.author }),
      ...(typeof cfg.comment === 'string' && cfg.comment && { comment: cfg.comment }),
    };
  }

  // ---- lookups ----

  /** Image ID for a reference, without reading configs. */
  async resolveId(ref: string, repos?: RepositoriesFile): Promise<string> {
    const r = repos ?? (await this.readRepos());
    if (ID_RE.test(ref)) {
      if (await this.readMeta(ref)) return ref;
      throw new NotFoundError(`No such image: ${ref}`, 'ERR_NO_SUCH_IMAGE');
    }
    let parsed: Reference | undefined;
    try {
      parsed = parseNormalized(ref);
    } catch {
      parsed = undefined;
    }
    if (parsed) {
      const repo = r.Repositories[repositoryName(parsed)];
      // name:tag@digest resolves by digest, as Docker does
      const key = parsed.digest ? `${repositoryName(parsed)}@${parsed.digest}` : formatReference(parsed);
      const id = repo?.[key];
      if (id) return id;
    }
    const m = ID_PREFIX_RE.exec(ref);
    if (m && (!parsed || (parsed.domain === 'docker.io' && parsed.tag === 'latest' && !ref.includes(':')) || ref.startsWith('sha256:'))) {
      const hits = (await this.allIds()).filter((id) => id.slice(7).startsWith(m[1]!));
      if (hits.length === 1) return hits[0]!;
      if (hits.length > 1) throw new InvalidParameterError(`short image ID ${ref} is ambiguous`, 'ERR_AMBIGUOUS_ID');
    }
    throw new NotFoundError(`No such image: ${parsed ? familiarString(parsed) : ref}`, 'ERR_NO_SUCH_IMAGE');
  }

  async resolve(ref: string): Promise<ImageRecord> {
    const repos = await this.readRepos();
    return this.record(await this.resolveId(ref, repos), repos);
  }

  async list(): Promise<ImageRecord[]> {
    const repos = await this.readRepos();
    const out: ImageRecord[] = [];
    for (const id of await this.allIds()) out.push(await this.record(id, repos));
    return out;
  }

  async inspectMeta(ref: string): Promise<ImageMeta> {
    const id = await this.resolveId(ref);
    return (await this.readMeta(id))!;
  }

  /**
   * `docker history`: the config's history, newest first, each non-empty-layer entry paired
   * with its layer's uncompressed size; only the top entry carries the image ID, as in Docker.
   */
  async history(ref: string): Promise<ImageHistoryEntry[]> {
    const rec = await this.resolve(ref);
    const cfg = await this.config(rec.id);
    const meta = (await this.readMeta(rec.id))!;
    const hist = cfg.history?.length ? cfg.history : meta.layers.map((): NonNullable<ImageConfig['history']>[number] => ({}));
    let layer = 0;
    const out: ImageHistoryEntry[] = hist.map((h) => {
      const size = h.empty_layer ? 0 : (meta.layers[layer++]?.uncompressedSize ?? 0);
      return {
        Id: '<missing>',
        Created: h.created ? Math.floor(Date.parse(h.created) / 1000) || 0 : 0,
        CreatedBy: h.created_by ?? '',
        Tags: null,
        Size: size,
        Comment: h.comment ?? '',
      };
    });
    out.reverse();
    if (out[0]) {
      out[0].Id = rec.id;
      out[0].Tags = rec.repoTags.length ? rec.repoTags : null;
    }
    // images this one was built on (the builder's steps, a committed container's image) are
    // here too: their rows carry their IDs, as in Docker
    const seen = new Set<string>([rec.id]);
    for (let parent = meta.parent; parent && !seen.has(parent);) {
      seen.add(parent);
      const pm = await this.readMeta(parent);
      if (!pm) break;
      const row = out[hist.length - ((await this.config(parent)).history?.length ?? pm.layers.length)];
      if (row) {
        const pr = await this.record(parent);
        row.Id = parent;
        row.Tags = pr.repoTags.length ? pr.repoTags : null;
      }
      parent = pm.parent;
    }
    return out;
  }

  // ---- tagging and removal ----

  private static tagKey(newRef: string): { repo: string; key: string } {
    const r = parseNormalized(newRef);
    if (r.digest) throw new InvalidParameterError(`refusing to create a tag with a digest reference: ${newRef}`, 'ERR_INVALID_REFERENCE');
    return { repo: repositoryName(r), key: formatReference(r) };
  }

  async tag(ref: string, newRef: string): Promise<void> {
    const { repo, key } = Store.tagKey(newRef);
    await this.lock.run(async () => {
      const repos = await this.readRepos();
      const id = await this.resolveId(ref, repos);
      (repos.Repositories[repo] ??= {})[key] = id;
      await this.writeRepos(repos);
    });
  }

  /** Adds references (full normalised strings) for an image, replacing where they pointed before. */
  async addRefs(id: string, refs: string[]): Promise<void> {
    if (!refs.length) return;
    await this.lock.run(async () => {
      const repos = await this.readRepos();
      for (const ref of refs) {
        const p = parseReference(ref);
        (repos.Repositories[repositoryName(p)] ??= {})[formatReference(p)] = id;
      }
      await this.writeRepos(repos);
    });
  }

  async remove(ref: string, opts: { force: boolean; inUse: Set<string> }): Promise<{ Untagged?: string; Deleted?: string }[]> {
    return this.lock.run(async () => {
      const repos = await this.readRepos();
      const id = await this.resolveId(ref, repos);
      const refsOf = () =>
        Object.values(repos.Repositories).flatMap((refs) =>
          Object.entries(refs)
            .filter(([, t]) => t === id)
            .map(([k]) => k),
        );
      const tagsOf = () => refsOf().filter((k) => !parseReference(k).digest);
      const out: { Untagged?: string; Deleted?: string }[] = [];
      const untag = (k: string) => {
        const p = parseReference(k);
        delete repos.Repositories[repositoryName(p)]![k];
        out.push({ Untagged: familiarString(p) });
      };
      const short = id.slice(7, 19);
      const manifestDigests = refsOf().flatMap((k) => parseReference(k).digest ?? []);
      const byId = ID_RE.test(ref) || (ID_PREFIX_RE.test(ref) && !refsOf().some((k) => refMatches(k, ref)));
      const inUse = opts.inUse.has(id);
      // images built or committed on this one (their parent chain points here), as dockerd's imageStore.Children
      const hasChildren = async () => {
        for (const other of await this.allIds()) if ((await this.readMeta(other))?.parent === id) return true;
        return false;
      };
      if (!byId) {
        const p = parseNormalized(ref);
        const key = p.digest ? `${repositoryName(p)}@${p.digest}` : formatReference(p);
        const isLast = refsOf().filter((k) => k !== key && !parseReference(k).digest).length === 0;
        if (isLast && inUse && !opts.force) {
          throw new ConflictError(
            `conflict: unable to remove repository reference "${familiarString(p)}" (must force) - container is using its referenced image ${short}`,
            'ERR_IMAGE_IN_USE',
          );
        }
        untag(key);
        // Removing the last tag also drops the image's digest references and then the image.
        if (tagsOf().length > 0 || inUse) {
          await this.writeRepos(repos);
          return out;
        }
        for (const k of refsOf()) untag(k);
        // a parent keeps its layers for its children: untagged, not deleted (dockerd's quiet conflict)
        if (await hasChildren()) {
          await this.writeRepos(repos);
          return out;
        }
      } else {
        if (await hasChildren()) {
          throw new ConflictError(
            `conflict: unable to delete ${short} (cannot be forced) - image has dependent child images`,
            'ERR_IMAGE_HAS_CHILDREN',
          );
        }
        if (inUse && !opts.force) {
          throw new ConflictError(
            `conflict: unable to delete ${short} (must be forced) - image is being used by a container`,
            'ERR_IMAGE_IN_USE',
          );
        }
        const tags = tagsOf();
        if (tags.length > 1 && !opts.force) {
          throw new ConflictError(
            `conflict: unable to delete ${short} (must be forced) - image is referenced in multiple repositories`,
            'ERR_IMAGE_MULTIPLE_REFS',
          );
        }
        for (const k of refsOf()) untag(k);
      }
      await this.writeRepos(repos);
      const meta = await this.readMeta(id);
      // the meta file may already be gone (an interrupted removal); the index no longer names the image either way
      await unlink(this.metaPath(id)).catch(() => {});
      this.configCache.delete(id);
      out.push({ Deleted: id });
      // Blobs no other image uses go too, the manifests its digest references named included.
      const candidates = [id, ...(meta?.layers.map((l) => l.digest) ?? []), ...manifestDigests];
      for (const d of await this.unreferenced(candidates)) {
        await this.blobs.delete(d);
        if (d !== id && !manifestDigests.includes(d)) out.push({ Deleted: d });
      }
      await this.opts.onImageDeleted?.(id);
      return out;
    });
  }

  /**
   * A set of pins for one operation (pull, load, import): what it wrote or found present
   * stays until it commits its image or gives up, even if a concurrent remove or failed
   * operation would otherwise delete it as unreferenced.
   */
  lease(): Lease {
    const mine: string[] = [];
    let released = false;
    return {
      pin: (d: string) => {
        if (released) throw new Error('lease already released');
        mine.push(d);
        this.pins.set(d, (this.pins.get(d) ?? 0) + 1);
      },
      release: () => {
        if (released) return;
        released = true;
        for (const d of mine) {
          const n = (this.pins.get(d) ?? 1) - 1;
          if (n <= 0) this.pins.delete(d);
          else this.pins.set(d, n);
        }
      },
    };
  }

  /** Pins `digest` and tells whether the blob is present, atomically with respect to removals. */
  async pinIfPresent(lease: Lease, digest: string, size?: number): Promise<boolean> {
    return this.lock.run(async () => {
      lease.pin(digest);
      return this.blobs.has(digest, size);
    });
  }

  /** Those of `digests` that no stored image uses as config or layer and nothing pins. */
  private async unreferenced(digests: string[]): Promise<string[]> {
    const used = new Set<string>(this.pins.keys());
    for (const other of await this.allIds()) {
      used.add(other);
      const m = await this.readMeta(other);
      for (const l of m?.layers ?? []) used.add(l.digest);
    }
    return digests.filter((d) => !used.has(d));
  }

  // ---- adding images ----

  /**
   * Records an image whose config and layer blobs are already in the blob store and verified
   * (config digest = id; layer diff IDs match the config). Then points `refs` at it.
   */
  async commitImage(configDigest: string, layers: LayerMeta[], refs: string[], opts: { parent?: string } = {}): Promise<ImageRecord> {
    const cfg = await this.config(configDigest);
    const diffIds = cfg.rootfs.diff_ids;
    if (diffIds.length !== layers.length || diffIds.some((d, i) => d !== layers[i]!.diffId)) {
      throw new FormatError(
        `image ${configDigest}: layer diff IDs [${layers.map((l) => l.diffId).join(', ')}] do not match the config's rootfs.diff_ids [${diffIds.join(', ')}]`,
        'ERR_DIFF_ID_MISMATCH',
      );
    }
    // blobs were renamed into place without a directory fsync each; one covers them all
    await this.blobs.syncDir();
    if (!(await this.readMeta(configDigest))) {
      await mkdir(this.metaDir, { recursive: true });
      await writeJsonAtomic(this.metaPath(configDigest), {
        id: configDigest,
        layers,
        stored: new Date().toISOString(),
        ...(opts.parent && { parent: opts.parent }),
      } satisfies ImageMeta);
    }
    await this.addRefs(configDigest, refs);
    return this.resolve(configDigest);
  }

  /**
   * Daemon start: deletes every blob no image uses (as config, layer, or a manifest one of its
   * references names), left by a load or pull that a crash or a cut connection interrupted
   * between writing blobs and recording the image. Returns the digests deleted.
   */
  async collectGarbage(): Promise<string[]> {
    return this.lock.run(async () => {
      const repos = await this.readRepos();
      const named = Object.values(repos.Repositories).flatMap((refs) => Object.keys(refs).flatMap((k) => parseReference(k).digest ?? []));
      const unused = new Set(await this.unreferenced(await this.blobs.list()));
      for (const d of named) unused.delete(d);
      for (const d of unused) await this.blobs.delete(d);
      return [...unused];
    });
  }

  /** IDs of every stored image. */
  async imageIds(): Promise<string[]> {
    return this.allIds();
  }

  /** Deletes blobs written by a failed operation unless some image uses them. */
  async discardBlobs(digests: string[]): Promise<void> {
    await this.lock.run(async () => {
      for (const d of await this.unreferenced(digests)) await this.blobs.delete(d);
    });
  }

  /**
   * `docker login` (POST /auth): checks the credentials against the registry's /v2/ (through
   * its Basic or token challenge). The client keeps its credentials and sends them with each
   * pull or push; with `saveLogins` they are also saved in the docker config.
   */
  async login(serverAddress: string, creds: Credentials): Promise<void> {
    const domain = loginDomain(serverAddress);
    const client = this.registryClient(domain, creds);
    try {
      await client.ping();
      if (this.opts.saveLogins && Object.values(creds).some((v) => v)) {
        await storeDockerCredentials(
          domain,
          creds,
          this.opts.dockerConfigPath !== undefined ? { configPath: this.opts.dockerConfigPath } : {},
        );
      }
    } catch (e) {
      // Docker's words for credentials the registry refused (errdefs.Unauthorized: 401)
      if (e instanceof RegistryResponseError && e.httpStatus === 401) {
        throw new AuthError(`login attempt to ${client.baseUrl}/v2/ failed with status: ${statusLine(401)}`);
      }
      throw e;
    } finally {
      await client.close();
    }
  }

  /** A client for `domain` with the daemon's registry options and, when given, these credentials. */
  registryClient(domain: string, auth: Credentials | undefined): RegistryClient {
    const o: RegistryClientOptions = {};
    if (this.opts.insecureRegistries) o.insecureRegistries = this.opts.insecureRegistries;
    if (this.opts.dockerConfigPath) o.dockerConfigPath = this.opts.dockerConfigPath;
    if (auth && Object.values(auth).some((v) => v)) o.credentials = auth;
    return new RegistryClient(domain, o);
  }

  /** docker pull (pull.ts). */
  async pull(
    ref: string,
    opts: { auth?: Credentials; onProgress?: (p: PullProgress) => void; platform?: Platform } = {},
  ): Promise<ImageRecord> {
    return pullImage(this, ref, opts);
  }

  /** The image ID a tag reference names now, if any. */
  async taggedId(r: Reference): Promise<string | undefined> {
    return (await this.readRepos()).Repositories[repositoryName(r)]?.[formatReference(r)];
  }

  /** Pushes an image's blobs and a manifest for it under `ref` (docker push: push.ts). */
  async push(ref: string, opts: { auth?: Credentials; onProgress?: (p: PullProgress) => void } = {}): Promise<string> {
    const [digest] = await pushImage(this, ref, parseNormalized(ref).tag ?? 'latest', opts);
    return digest!;
  }

  // ---- reading layers ----

  /**
   * Each stream is checked against the layer's diff ID and size as it is read, so a blob
   * damaged on disk fails the consumer (at the end of that stream) instead of building a
   * silently different root filesystem.
   */
  async *layerStreams(imageId: string): AsyncIterable<Readable> {
    const id = await this.resolveId(imageId);
    const meta = (await this.readMeta(id))!;
    for (const l of meta.layers) {
      const raw = await this.blobs.open(l.digest);
      const verify = new HashingStream(`layer ${l.digest} (stored)`, { digest: l.diffId, size: l.uncompressedSize });
      const tar = decompressLayer(raw, `layer ${l.digest}`);
      tar.on('error', (e) => verify.destroy(e));
      // the consumer closing its end early releases the decompressor and, through it, the file
      verify.once('close', () => tar.destroy());
      yield tar.pipe(verify);
    }
  }

  async load(tar: Readable, onProgress?: (p: PullProgress) => void): Promise<ImageRecord[]> {
    return loadArchive(this, tar, onProgress);
  }

  async save(refs: string[]): Promise<Readable> {
    // Resolve first, so an unknown ref is a 404 rather than a broken stream.
    const plan = await planSave(this, refs);
    const out = new PassThrough();
    saveArchive(this, plan, out).catch((e: Error) => out.destroy(e));
    return out;
  }

  async importRootfs(tar: Readable, opts: { ref?: string; changes?: string[]; message?: string }): Promise<ImageRecord> {
    return importRootfs(this, tar, opts);
  }

  /** Stores a config blob from memory and returns its digest. */
  async putConfig(config: object | Buffer): Promise<string> {
    const body = Buffer.isBuffer(config) ? config : Buffer.from(JSON.stringify(config));
    parseImageConfig(body);
    const digest = sha256Digest(body);
    if (!(await this.blobs.has(digest))) await this.blobs.writeBuffer(body, { digest });
    return digest;
  }
}

/** The daemon's entry point: a store under `dataRoot`, with crash leftovers cleaned. */
export async function openImageStore(o: { dataRoot: string } & StoreOptions): Promise<Store> {
  const { dataRoot, ...opts } = o;
  const store = new Store(dataRoot, opts);
  await store.recover();
  return store;
}

/** Whether a stored full reference is what a user string names (for rmi by name vs by ID). */
function refMatches(stored: string, user: string): boolean {
  try {
    const p = parseNormalized(user);
    return formatReference(p) === stored || `${repositoryName(p)}@${p.digest}` === stored;
  } catch {
    return false;
  }
}

/** The registry a `docker login` server address names: scheme and path dropped; Docker Hub's aliases -> docker.io. */
export function loginDomain(serverAddress: string): string {
  const host = serverAddress
    .trim()
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  if (host === '' || host === LEGACY_DEFAULT_DOMAIN || host === 'registry-1.docker.io') return DEFAULT_DOMAIN;
  return host;
}
