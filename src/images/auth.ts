/**
 * Registry credentials and the token dance of the distribution auth spec: on a 401 the
 * registry names a realm; we ask it for a bearer token for the repository scope (with basic
 * credentials when we have them, or an OAuth2 refresh token), and cache it until it expires.
 */
import { request, type Dispatcher } from 'undici';
import type { Challenge } from './www-authenticate.js';
import { getDockerCredentials } from './docker-config.js';
import { AuthError, errcodeText, goNetError, goOp, parseErrorResponse, readBounded, readErrorBody, statusLine } from './registry-errors.js';

export interface Credentials {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (Docker's IdentityToken) */
  identitytoken?: string;
  /** a bearer token to send as is */
  registrytoken?: string;
}

export { AuthError };

/**
 * Credentials for `registry` from a docker config.json: its credential helpers (credHelpers,
 * credsStore) or its `auths` (see docker-config.ts).
 */
export async function loadDockerConfigCredentials(registry: string, configPath?: string): Promise<Credentials | undefined> {
  return getDockerCredentials(registry, configPath !== undefined ? { configPath } : {});
}

export function basicAuthorization(c: Credentials): string | undefined {
  if (c.username === undefined || c.password === undefined) return undefined;
  return 'Basic ' + Buffer.from(`${c.username}:${c.password}`).toString('base64');
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Docker's default when the token server gives no expires_in (docker/distribution minimumTokenLifetimeSeconds). */
const DEFAULT_TOKEN_LIFETIME_S = 60;

/** Per-registry token cache keyed by scope. */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();

  get(scope: string): string | undefined {
    const t = this.tokens.get(scope);
    if (!t) return undefined;
    if (Date.now() >= t.expiresAt) {
      this.tokens.delete(scope);
      return undefined;
    }
    return t.token;
  }

  delete(scope: string): void {
    this.tokens.delete(scope);
  }

  set(scope: string, token: string, lifetimeS: number): void {
    // renew a little early so a token does not expire in flight
    this.tokens.set(scope, { token, expiresAt: Date.now() + Math.max(1, lifetimeS - 5) * 1000 });
  }
}

/** the largest token answer read (tokens are JWTs of a few KiB) */
const MAX_TOKEN_ANSWER = 1 << 20;

/** Fetches a bearer token for `scope` from the challenge's realm. */
export async function fetchBearerToken(
  challenge: Challenge,
  scope: string,
  creds: Credentials | undefined,
  dispatcher: Dispatcher | undefined,
  userAgent: string,
): Promise<{ token: string; expiresIn: number }> {
  const realm = challenge.params.realm;
  if (!realm) throw new AuthError('bearer challenge without realm');
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new AuthError(`bearer challenge realm is not a URL: ${realm}`);
  }
  const service = challenge.params.service;
  const headers: Record<string, string> = { 'user-agent': userAgent };
  let res: Dispatcher.ResponseData;
  const method = creds?.identitytoken ? 'POST' : 'GET';
  try {
    if (creds?.identitytoken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identitytoken, client_id: 'tvm', scope });
      if (service) form.set('service', service);
      res = await request(url, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        ...(dispatcher && { dispatcher }),
      });
    } else {
      if (service) url.searchParams.set('service', service);
      // several scopes (a push that mounts from another repository) are separate parameters
      for (const sc of scope.split(' ').filter(Boolean)) url.searchParams.append('scope', sc);
      const basic = creds ? basicAuthorization(creds) : undefined;
      if (basic) {
        headers.authorization = basic;
        url.searchParams.set('account', creds!.username!);
      }
      res = await request(url, { method: 'GET', headers, ...(dispatcher && { dispatcher }) });
    }
  } catch (e) {
    throw new AuthError(`${goOp(method)} ${JSON.stringify(url.href)}: ${goNetError(e, url)}`, 'ERR_TOKEN_SERVER', 500);
  }
  let text: string;
  if (res.statusCode === 200) {
    // a token is a few KiB: an endless answer must not hang the pull or fill memory
    const got = await readBounded(res.body, MAX_TOKEN_ANSWER);
    if (got.truncated)
      throw new AuthError(`token server ${url.origin} answered more than ${MAX_TOKEN_ANSWER} bytes`, 'ERR_TOKEN_SERVER', 500);
    text = got.text;
  } else text = await readErrorBody(res.body);
  if (res.statusCode !== 200) {
    // as docker/distribution's token handler reads the answer: "unauthorized: incorrect username or password"
    const errs = parseErrorResponse(res.statusCode, text, res.headers['www-authenticate']);
    const said = errs ? errcodeText(errs) : `token server ${url.origin} answered ${statusLine(res.statusCode)}`;
    if (res.statusCode === 401 || res.statusCode === 403) throw new AuthError(said);
    throw new AuthError(said, 'ERR_TOKEN_SERVER', 500);
  }
  let json: { token?: string; access_token?: string; expires_in?: number };
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    throw new AuthError(`token server ${url.origin} answered non-JSON`, 'ERR_TOKEN_SERVER', 500);
  }
  const token = json.access_token || json.token;
  if (!token) throw new AuthError(`token server ${url.origin} answered without a token`, 'ERR_TOKEN_SERVER', 500);
  return { token, expiresIn: typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : DEFAULT_TOKEN_LIFETIME_S };
}
