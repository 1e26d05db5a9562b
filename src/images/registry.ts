/**
 * OCI distribution client (https://github.com/opencontainers/distribution-spec), on undici.
 * One client per registry host: it keeps the auth challenge and the bearer tokens per scope,
 * follows redirects itself (dropping credentials when the origin changes), and never buffers
 * a blob: blob bodies are handed out as streams for the caller to verify and store.
 */
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { InvalidParameterError } from '../errors.js';
import { RegistryError, goNetError, goOp, readErrorBody, responseError } from './registry-errors.js';
import { AuthError, TokenCache, basicAuthorization, fetchBearerToken, loadDockerConfigCredentials, type Credentials } from './auth.js';
import { parseWwwAuthenticate, type Challenge } from './www-authenticate.js';
import {
  MANIFEST_ACCEPT,
  MAX_MANIFEST_SIZE,
  parseManifest,
  selectPlatform,
  hostPlatform,
  type Descriptor,
  type ImageManifest,
  type ParsedManifest,
  type Platform,
  MediaType,
} from './manifest.js';
import { DigestMismatchError, sha256Digest } from './digest.js';
import { DEFAULT_DOMAIN } from './reference.js';

export const DOCKER_HUB_REGISTRY_HOST = 'registry-1.docker.io';
const MAX_REDIRECTS = 10;
const USER_AGENT = 'tvm/0.1 (+https://github.com/tvm)';

export { RegistryError };

export interface RegistryClientOptions {
  /** hosts (host[:port]) reachable over plain HTTP besides loopback ones */
  insecureRegistries?: string[];
  /** credentials for this registry; when absent, looked up in ~/.docker/config.json */
  credentials?: Credentials;
  /** path of a docker config.json to read credentials from */
  dockerConfigPath?: string;
  dispatcher?: Dispatcher;
  userAgent?: string;
  /** overrides the scheme chosen by host (a loopback TLS endpoint, tests) */
  scheme?: 'https' | 'http';
}

/** Loopback registries speak HTTP, as Docker allows for 127.0.0.0/8 and localhost. */
export function isLoopbackHost(domain: string): boolean {
  const host = domain.startsWith('[') ? domain.slice(0, domain.indexOf(']') + 1) : domain.replace(/:\d+$/, '');
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  body: Buffer;
  manifest: ParsedManifest;
}

export interface ResolvedImage {
  /** digest of what the tag points to (index or manifest): the repo digest Docker shows */
  digest: string;
  /** the index, when the tag named one */
  index?: FetchedManifest;
  /** the platform manifest */
  manifest: FetchedManifest & { manifest: ImageManifest };
}

function isFetched(m: FetchedManifest | { digest: string }): m is FetchedManifest {
  return 'body' in m;
}

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface SendOptions {
  method: Method;
  url: string | URL;
  scope: string;
  headers?: Record<string, string>;
  body?: string | Buffer | Readable;
  /** false for bodies that cannot be sent twice (streams): authorize before sending */
  retryable?: boolean;
}

export class RegistryClient {
  readonly domain: string;
  readonly baseUrl: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownDispatcher: boolean;
  private readonly userAgent: string;
  private readonly tokens = new TokenCache();
  /** token requests in flight per scope, so parallel layer requests share one */
  private readonly tokenFetches = new Map<string, Promise<string>>();
  private challenge: Challenge | undefined;
  private credsLoaded = false;
  private probed = false;
  private creds: Credentials | undefined;

  constructor(
    domain: string,
    private readonly opts: RegistryClientOptions = {},
  ) {
    this.domain = domain;
    const host = domain === DEFAULT_DOMAIN ? DOCKER_HUB_REGISTRY_HOST : domain;
    const plain = isLoopbackHost(domain) || (opts.insecureRegistries ?? []).includes(domain);
    this.baseUrl = `${opts.scheme ?? (plain ? 'http' : 'https')}://${host}`;
    // A reference's grammar allows any port digits (localhost:99999/x): the URL refuses them.
    // That is the user's input, a 400 as with dockerd, not a 500 "Invalid URL".
    if (!URL.canParse(this.baseUrl))
      throw new InvalidParameterError(
        `invalid registry address ${JSON.stringify(domain)}: not a valid host[:port]`,
        'ERR_INVALID_REFERENCE',
      );
    this.ownDispatcher = opts.dispatcher === undefined;
    this.dispatcher = opts.dispatcher ?? new Agent({ connections: 16, pipelining: 1, keepAliveTimeout: 10_000 });
    this.userAgent = opts.userAgent ?? USER_AGENT;
    if (opts.credentials) {
      this.creds = opts.credentials;
      this.credsLoaded = true;
    }
  }

  async close(): Promise<void> {
    if (this.ownDispatcher) await this.dispatcher.close();
  }

  private async credentials(): Promise<Credentials | undefined> {
    if (!this.credsLoaded) {
      this.creds = await loadDockerConfigCredentials(this.domain, this.opts.dockerConfigPath);
      this.credsLoaded = true;
    }
    return this.creds;
  }

  static scope(repo: string, actions: string): string {
    return `repository:${repo}:${actions}`;
  }

  /** One token serves a whole push: push on the target, pull on the repository blobs are mounted from. */
  static pushScope(repo: string, mountFrom?: string): string {
    const own = RegistryClient.scope(repo, 'pull,push');
    return mountFrom && mountFrom !== repo ? `${own} ${RegistryClient.scope(mountFrom, 'pull')}` : own;
  }

  /** The Authorization header for `scope`, fetching a token if the registry wants bearer auth. */
  private async authorization(scope: string): Promise<string | undefined> {
    const creds = await this.credentials();
    if (creds?.registrytoken) return `Bearer ${creds.registrytoken}`;
    const ch = this.challenge;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      const b = creds ? basicAuthorization(creds) : undefined;
      // docker/distribution's auth.ErrNoBasicAuthCredentials
      if (!b) throw new AuthError('no basic auth credentials');
      return b;
    }
    if (ch.scheme === 'bearer') {
      const cached = this.tokens.get(scope);
      if (cached) return `Bearer ${cached}`;
      let inflight = this.tokenFetches.get(scope);
      if (!inflight) {
        inflight = fetchBearerToken(ch, scope, creds, this.dispatcher, this.userAgent)
          .then(({ token, expiresIn }) => {
            this.tokens.set(scope, token, expiresIn);
            return token;
          })
          .finally(() => this.tokenFetches.delete(scope));
        this.tokenFetches.set(scope, inflight);
      }
      return `Bearer ${await inflight}`;
    }
    throw new AuthError(`${this.domain}: unsupported authentication scheme ${ch.scheme}`);
  }

  private absolute(u: string | URL): URL {
    return new URL(u, this.baseUrl + '/');
  }

  /**
   * One request with auth and redirects. A 401 records the challenge and retries once with
   * fresh authorization (only for bodies we can resend).
   */
  private async send(o: SendOptions): Promise<Dispatcher.ResponseData & { url: URL }> {
    let url = this.absolute(o.url);
    let method = o.method;
    let body = o.body;
    let authTried = false;
    const origin = this.absolute('/').origin;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...o.headers };
      // Credentials never leave the registry's origin (blob storage redirects carry their own signatures).
      // failures below HTTP read as Go's url.Error, as in Docker: Head "https://h/v2/...": <cause>
      const op = `${goOp(method)} ${JSON.stringify(url.href)}`;
      if (url.origin === origin) {
        let auth: string | undefined;
        try {
          auth = await this.authorization(o.scope);
        } catch (e) {
          if (e instanceof AuthError) throw new AuthError(`${op}: ${e.message}`, e.code, e.status);
          throw e;
        }
        if (auth) headers.authorization = auth;
      }
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, { method, headers, ...(body !== undefined && { body }), dispatcher: this.dispatcher });
      } catch (e) {
        throw new RegistryError(`${op}: ${goNetError(e, url)}`, 'ERR_REGISTRY_UNREACHABLE', 500);
      }
      if (res.statusCode === 401 && url.origin === origin && !authTried) {
        const header = res.headers['www-authenticate'];
        await res.body.dump();
        if (!header) throw new AuthError(`${op}: unauthorized: the registry answered 401 without WWW-Authenticate`);
        const challenges = parseWwwAuthenticate(header);
        const pick = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
        if (!pick) throw new AuthError(`${op}: no supported authentication scheme in ${JSON.stringify(header)}`);
        this.challenge = pick;
        // a cached token the registry no longer accepts (revoked, clock skew) is dropped
        this.tokens.delete(o.scope);
        authTried = true;
        if (body instanceof Readable) throw new AuthError(`${this.domain}: authentication required mid-upload`);
        continue;
      }
      if ([301, 302, 303, 307, 308].includes(res.statusCode) && res.headers.location) {
        await res.body.dump();
        if (body instanceof Readable)
          throw new RegistryError(`${this.domain}: ${method} ${url.pathname} redirected after its body was sent`, 'ERR_REGISTRY', 502);
        if (hop >= MAX_REDIRECTS) throw new RegistryError(`${this.domain}: too many redirects`, 'ERR_TOO_MANY_REDIRECTS', 502);
        const loc = Array.isArray(res.headers.location) ? res.headers.location[0]! : res.headers.location;
        const next = new URL(loc, url);
        if (next.protocol === 'http:' && url.protocol === 'https:' && !isLoopbackHost(next.host)) {
          throw new RegistryError(
            `${this.domain}: refusing redirect from HTTPS to plain HTTP ${next.origin}`,
            'ERR_INSECURE_REDIRECT',
            502,
          );
        }
        url = next;
        if (res.statusCode === 303) {
          method = 'GET';
          body = undefined;
        }
        continue;
      }
      return Object.assign(res, { url });
    }
  }

  /** A non-success answer as the registry worded it (see registry-errors.ts). */
  private async fail(res: Dispatcher.ResponseData, _what: string): Promise<never> {
    // the status code alone still makes the error: a body that cannot be read only loses its wording
    const text = await readErrorBody(res.body).catch(() => '');
    throw responseError(res.statusCode, text, res.headers['www-authenticate']);
  }

  /** GET /v2/: checks the registry speaks the v2 API (and learns its auth challenge). */
  async ping(): Promise<void> {
    const res = await this.send({ method: 'GET', url: '/v2/', scope: '' });
    if (res.statusCode !== 200) await this.fail(res, `${this.domain} /v2/`);
    await res.body.dump();
  }

  /** Reads a manifest body, bounded, and checks its digest against what we asked for or were told. */
  async getManifest(repo: string, reference: string, accept: string[] = MANIFEST_ACCEPT): Promise<FetchedManifest> {
    const what = `manifest ${this.domain}/${repo}:${reference}`;
    const res = await this.send({
      method: 'GET',
      url: `/v2/${repo}/manifests/${reference}`,
      scope: RegistryClient.scope(repo, 'pull'),
      headers: { accept: accept.join(', ') },
    });
    if (res.statusCode !== 200) await this.fail(res, what);
    const len = Number(res.headers['content-length'] ?? 0);
    if (len > MAX_MANIFEST_SIZE) {
      await res.body.dump();
      throw new RegistryError(`${what}: manifest larger than ${MAX_MANIFEST_SIZE} bytes`, 'ERR_BAD_MANIFEST', 400);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const c of res.body) {
      total += (c as Buffer).length;
      if (total > MAX_MANIFEST_SIZE) {
        res.body.on('error', () => {}).destroy();
        throw new RegistryError(`${what}: manifest larger than ${MAX_MANIFEST_SIZE} bytes`, 'ERR_BAD_MANIFEST', 400);
      }
      chunks.push(c as Buffer);
    }
    const body = Buffer.concat(chunks);
    const digest = sha256Digest(body);
    if (reference.includes(':') && reference !== digest) throw new DigestMismatchError(what, reference, digest);
    const headerDigest = res.headers['docker-content-digest'];
    if (typeof headerDigest === 'string' && headerDigest.startsWith('sha256:') && headerDigest !== digest) {
      throw new DigestMismatchError(`${what} (Docker-Content-Digest)`, headerDigest, digest);
    }
    const ct = res.headers['content-type'];
    const manifest = parseManifest(body, typeof ct === 'string' ? ct : undefined, what);
    return { digest, mediaType: manifest.mediaType, body, manifest };
  }

  /**
   * Docker's first request to a registry: GET /v2/ without credentials. 200 and 401 (whose
   * challenge is kept, saving the first authorized request a round trip) both mean "a v2
   * registry is here"; a failure reads as Docker's (`Get "https://h/v2/": ...`).
   */
  async probe(): Promise<void> {
    if (this.probed) return;
    const url = this.absolute('/v2/');
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: 'GET', headers: { 'user-agent': this.userAgent }, dispatcher: this.dispatcher });
    } catch (e) {
      throw new RegistryError(`Get ${JSON.stringify(url.href)}: ${goNetError(e, url)}`, 'ERR_REGISTRY_UNREACHABLE', 500);
    }
    await res.body.dump();
    if (res.statusCode === 401) {
      const header = res.headers['www-authenticate'];
      const challenges = header ? parseWwwAuthenticate(header) : [];
      this.challenge ??= challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    } else if (res.statusCode !== 200) {
      throw responseError(res.statusCode, '', undefined);
    }
    this.probed = true;
  }

  /**
   * The digest a tag points to, as Docker learns it: HEAD, then a GET when the HEAD did not
   * say (some registries answer HEAD without Docker-Content-Digest; error details need a body).
   */
  private async resolveTag(repo: string, tag: string): Promise<FetchedManifest | { digest: string }> {
    const res = await this.send({
      method: 'HEAD',
      url: `/v2/${repo}/manifests/${tag}`,
      scope: RegistryClient.scope(repo, 'pull'),
      headers: { accept: MANIFEST_ACCEPT.join(', ') },
    });
    await res.body.dump();
    const digest = res.headers['docker-content-digest'];
    if (res.statusCode === 200 && typeof digest === 'string' && /^sha256:[a-f0-9]{64}$/.test(digest)) return { digest };
    return this.getManifest(repo, tag);
  }

  /** Tag or digest -> the platform's image manifest, through an index if there is one. */
  async resolveImage(repo: string, reference: string, platform: Platform = hostPlatform()): Promise<ResolvedImage> {
    await this.probe();
    const found: FetchedManifest | { digest: string } = reference.includes(':')
      ? { digest: reference }
      : await this.resolveTag(repo, reference);
    const top = isFetched(found) ? found : await this.getManifest(repo, found.digest);
    if (top.manifest.kind === 'manifest') {
      return { digest: top.digest, manifest: top as FetchedManifest & { manifest: ImageManifest } };
    }
    const entry = selectPlatform(top.manifest, platform);
    const m = await this.getManifest(repo, entry.digest, [entry.mediaType]);
    if (m.manifest.kind !== 'manifest')
      throw new RegistryError(`${this.domain}/${repo}@${entry.digest}: index entry is itself an index`, 'ERR_BAD_MANIFEST', 400);
    if (m.body.length !== entry.size) {
      throw new RegistryError(
        `${this.domain}/${repo}@${entry.digest}: size ${m.body.length} differs from index entry ${entry.size}`,
        'ERR_BAD_MANIFEST',
        400,
      );
    }
    return { digest: top.digest, index: top, manifest: m as FetchedManifest & { manifest: ImageManifest } };
  }

  /** The raw body of a blob; the caller verifies it (HashingStream) while storing it. */
  /**
   * What a blob GET sends first: its URL and headers, with the authorization the registry asked
   * for. For the direct body read of blob-fetch.ts; undefined when a caller's own dispatcher
   * (proxy, custom TLS) must carry every request.
   */
  async blobRequest(repo: string, digest: string): Promise<{ url: URL; headers: Record<string, string> } | undefined> {
    if (!this.ownDispatcher) return undefined;
    const url = this.absolute(`/v2/${repo}/blobs/${digest}`);
    const headers: Record<string, string> = { 'user-agent': this.userAgent };
    try {
      const auth = await this.authorization(RegistryClient.scope(repo, 'pull'));
      if (auth) headers.authorization = auth;
    } catch (e) {
      if (e instanceof AuthError) throw new AuthError(`${goOp('GET')} ${JSON.stringify(url.href)}: ${e.message}`, e.code, e.status);
      throw e;
    }
    return { url, headers };
  }

  async getBlob(repo: string, desc: Pick<Descriptor, 'digest' | 'size'>): Promise<Readable> {
    const what = `blob ${desc.digest}`;
    const res = await this.send({ method: 'GET', url: `/v2/${repo}/blobs/${desc.digest}`, scope: RegistryClient.scope(repo, 'pull') });
    if (res.statusCode !== 200) await this.fail(res, what);
    const len = res.headers['content-length'];
    if (typeof len === 'string' && Number(len) !== desc.size) {
      res.body.on('error', () => {}).destroy();
      throw new RegistryError(`${what}: Content-Length ${len} differs from descriptor size ${desc.size}`, 'ERR_SIZE_MISMATCH', 400);
    }
    return res.body;
  }

  /** Size of the blob if the registry has it in `repo`. */
  async headBlob(repo: string, digest: string, actions = 'pull', scope = RegistryClient.scope(repo, actions)): Promise<number | undefined> {
    const res = await this.send({ method: 'HEAD', url: `/v2/${repo}/blobs/${digest}`, scope });
    await res.body.dump();
    if (res.statusCode === 200) return Number(res.headers['content-length'] ?? 0);
    if (res.statusCode === 404) return undefined;
    return this.fail(res, `blob ${digest}`);
  }

  /**
   * Monolithic upload (POST to open a session, PUT with ?digest=); skipped if present. With
   * `mountFrom` (another repository of this registry holding the blob) the registry is first
   * asked to link it across (201) instead of receiving the bytes again.
   */
  async pushBlob(
    repo: string,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    open: () => Promise<Readable> | Readable,
    mountFrom?: string,
  ): Promise<'exists' | 'mounted' | 'pushed'> {
    const scope = RegistryClient.pushScope(repo, mountFrom);
    if ((await this.headBlob(repo, desc.digest, 'pull,push', scope)) !== undefined) return 'exists';
    let startUrl = `/v2/${repo}/blobs/uploads/`;
    if (mountFrom && mountFrom !== repo) startUrl += `?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(mountFrom)}`;
    const start = await this.send({ method: 'POST', url: startUrl, scope, headers: { 'content-length': '0' } });
    if (start.statusCode === 201) {
      await start.body.dump();
      return 'mounted';
    }
    if (start.statusCode !== 202) await this.fail(start, `upload of ${desc.digest}`);
    await start.body.dump();
    const loc = start.headers.location;
    if (typeof loc !== 'string') throw new RegistryError(`upload of ${desc.digest}: no Location in 202`, 'ERR_REGISTRY', 502);
    const put = new URL(loc, start.url);
    put.searchParams.set('digest', desc.digest);
    const res = await this.send({
      method: 'PUT',
      url: put,
      scope,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: await open(),
    });
    if (res.statusCode !== 201) await this.fail(res, `upload of ${desc.digest}`);
    await res.body.dump();
    return 'pushed';
  }

  /** PUT a manifest under a tag or its digest; returns its digest. */
  async putManifest(repo: string, reference: string, mediaType: string, body: Buffer, mountFrom?: string): Promise<string> {
    if (![MediaType.DockerManifest, MediaType.DockerManifestList, MediaType.OciManifest, MediaType.OciIndex].includes(mediaType as never)) {
      throw new InvalidParameterError(`cannot push manifest of media type ${mediaType}`);
    }
    const res = await this.send({
      method: 'PUT',
      url: `/v2/${repo}/manifests/${reference}`,
      scope: RegistryClient.pushScope(repo, mountFrom),
      headers: { 'content-type': mediaType },
      body,
    });
    if (res.statusCode !== 201) await this.fail(res, `manifest ${repo}:${reference}`);
    await res.body.dump();
    return sha256Digest(body);
  }
}
