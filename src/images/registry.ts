/**
 * OCI distribution client (https://github.com/opencontainers/distribution-spec), on undici.
 * One client per registry host: it keeps the auth challenge and the bearer tokens per scope,
 * follows redirects itself (dropping credentials when the origin changes), and never buffers
 * a blob: blob bodies are handed out as streams for the caller to verify and store.
 */
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { NotFoundError, TvmError, InvalidParameterError } from '../errors.js';
import { AuthError, TokenCache, basicAuthorization, fetchBearerToken, loadDockerConfigCredentials, type Credentials } from './auth.js';
import { parseWwwAuthenticate, type Challenge } from './www-authenticate.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, parseManifest, selectPlatform, hostPlatform, type Descriptor, type ImageManifest, type ParsedManifest, type Platform, MediaType } from './manifest.js';
import { DigestMismatchError, sha256Digest } from './digest.js';
import { DEFAULT_DOMAIN } from './reference.js';

export const DOCKER_HUB_REGISTRY_HOST = 'registry-1.docker.io';
const MAX_REDIRECTS = 10;
const USER_AGENT = 'tvm/0.1 (+https://github.com/tvm)';

export class RegistryError extends TvmError {
  constructor(message: string, code = 'ERR_REGISTRY', status = 500) {
    super(code, message, status);
  }
}

export interface RegistryClientOptions {
  /** hosts (host[:port]) reachable over plain HTTP besides loopback ones */
  insecureRegistries?: string[];
  /** credentials for this registry; when absent, looked up in ~/.docker/config.json */
  credentials?: Credentials;
  /** path of a docker config.json to read credentials from */
  dockerConfigPath?: string;
  dispatcher?: Dispatcher;
  userAgent?: string;
}

/** Loopback registries speak HTTP, as Docker allows for 127.0.0.0/8 and localhost. */
export function isLoopbackHost(domain: string): boolean {
  const host = domain.startsWith('[') ? domain.slice(0, domain.indexOf(']') + 1) : domain.replace(/:\d+$/, '');
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Registry error bodies: {"errors":[{"code":"MANIFEST_UNKNOWN","message":"..."}]} */
function errorSummary(text: string): string {
  try {
    const j = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    if (Array.isArray(j.errors) && j.errors.length) {
      return j.errors.map((e) => [e.code?.toLowerCase().replace(/_/g, ' '), e.message].filter(Boolean).join(': ')).join('; ');
    }
  } catch {
    /* not JSON */
  }
  return text.slice(0, 200).trim();
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
  private creds: Credentials | undefined;

  constructor(
    domain: string,
    private readonly opts: RegistryClientOptions = {},
  ) {
    this.domain = domain;
    const host = domain === DEFAULT_DOMAIN ? DOCKER_HUB_REGISTRY_HOST : domain;
    const plain = isLoopbackHost(domain) || (opts.insecureRegistries ?? []).includes(domain);
    this.baseUrl = `${plain ? 'http' : 'https'}://${host}`;
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
      if (!b) throw new AuthError(`${this.domain}: registry requires basic authentication and no credentials are configured`);
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
      if (url.origin === origin) {
        const auth = await this.authorization(o.scope);
        if (auth) headers.authorization = auth;
      }
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, { method, headers, ...(body !== undefined && { body }), dispatcher: this.dispatcher });
      } catch (e) {
        throw new RegistryError(`${this.domain}: ${method} ${url.pathname} failed: ${(e as Error).message}`, 'ERR_REGISTRY_UNREACHABLE', 502);
      }
      if (res.statusCode === 401 && url.origin === origin && !authTried) {
        const header = res.headers['www-authenticate'];
        await res.body.dump();
        if (!header) throw new AuthError(`${this.domain}: 401 without WWW-Authenticate`);
        const challenges = parseWwwAuthenticate(header);
        const pick = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
        if (!pick) throw new AuthError(`${this.domain}: no supported authentication scheme in ${JSON.stringify(header)}`);
        this.challenge = pick;
        // a cached token the registry no longer accepts (revoked, clock skew) is dropped
        this.tokens.delete(o.scope);
        authTried = true;
        if (body instanceof Readable) throw new AuthError(`${this.domain}: authentication required mid-upload`);
        continue;
      }
      if ([301, 302, 303, 307, 308].includes(res.statusCode) && res.headers.location) {
        await res.body.dump();
        if (body instanceof Readable) throw new RegistryError(`${this.domain}: ${method} ${url.pathname} redirected after its body was sent`, 'ERR_REGISTRY', 502);
        if (hop >= MAX_REDIRECTS) throw new RegistryError(`${this.domain}: too many redirects`, 'ERR_TOO_MANY_REDIRECTS', 502);
        const loc = Array.isArray(res.headers.location) ? res.headers.location[0]! : res.headers.location;
        const next = new URL(loc, url);
        if (next.protocol === 'http:' && url.protocol === 'https:' && !isLoopbackHost(next.host)) {
          throw new RegistryError(`${this.domain}: refusing redirect from HTTPS to plain HTTP ${next.origin}`, 'ERR_INSECURE_REDIRECT', 502);
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

  private async fail(res: Dispatcher.ResponseData, what: string): Promise<never> {
    const text = await res.body.text().catch(() => '');
    const summary = errorSummary(text);
    const s = res.statusCode;
    if (s === 401) throw new AuthError(`${what}: unauthorized: ${summary || 'authentication required'}`);
    if (s === 403) throw new AuthError(`${what}: denied: ${summary || 'access forbidden'}`, 'ERR_DENIED', 403);
    if (s === 404) throw new NotFoundError(`${what}: not found: ${summary || 'unknown'}`, 'ERR_REGISTRY_NOT_FOUND');
    if (s === 429) throw new RegistryError(`${what}: too many requests: ${summary}`, 'ERR_TOO_MANY_REQUESTS', 429);
    if (s >= 500) throw new RegistryError(`${what}: registry answered ${s}: ${summary}`, 'ERR_REGISTRY_SERVER', 502);
    throw new RegistryError(`${what}: registry answered ${s}: ${summary}`);
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

  /** Tag or digest -> the platform's image manifest, through an index if there is one. */
  async resolveImage(repo: string, reference: string, platform: Platform = hostPlatform()): Promise<ResolvedImage> {
    const top = await this.getManifest(repo, reference);
    if (top.manifest.kind === 'manifest') {
      return { digest: top.digest, manifest: top as FetchedManifest & { manifest: ImageManifest } };
    }
    const entry = selectPlatform(top.manifest, platform);
    const m = await this.getManifest(repo, entry.digest, [entry.mediaType]);
    if (m.manifest.kind !== 'manifest') throw new RegistryError(`${this.domain}/${repo}@${entry.digest}: index entry is itself an index`, 'ERR_BAD_MANIFEST', 400);
    if (m.body.length !== entry.size) {
      throw new RegistryError(`${this.domain}/${repo}@${entry.digest}: size ${m.body.length} differs from index entry ${entry.size}`, 'ERR_BAD_MANIFEST', 400);
    }
    return { digest: top.digest, index: top, manifest: m as FetchedManifest & { manifest: ImageManifest } };
  }

  /** The raw body of a blob; the caller verifies it (HashingStream) while storing it. */
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
