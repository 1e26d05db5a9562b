/**
 * Registry credentials from a Docker client config (~/.docker/config.json, or $DOCKER_CONFIG),
 * looked up and stored as the docker CLI does:
 *   - lookup order: `credHelpers[<registry>]`, then `credsStore`, then `auths[<registry>]`;
 *   - a helper is the program `docker-credential-<name>`: `get` reads the server URL on stdin
 *     and answers {"ServerURL","Username","Secret"} (Username "<token>": Secret is an identity
 *     token, used as an OAuth2 refresh token); `store` reads that JSON on stdin;
 *   - with a helper, `auths` keeps an empty entry for the server; without, `auths.<server>.auth`
 *     is base64 "user:password".
 * Docker Hub's entries live under its v1 index URL, "https://index.docker.io/v1/".
 */
import { readFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { TvmError } from '../errors.js';
import { writeFileAtomic } from '../atomic-file.js';
import { DEFAULT_DOMAIN } from './reference.js';
import type { Credentials } from './auth.js';

/** where the docker CLI keeps Docker Hub's credentials */
export const DOCKER_HUB_INDEX_SERVER = 'https://index.docker.io/v1/';
const DOCKER_HUB_KEYS = [DOCKER_HUB_INDEX_SERVER, 'index.docker.io', 'docker.io', 'registry-1.docker.io'];
/** docker-credential-helpers' "not found" answer: no credentials, not an error */
const HELPER_NOT_FOUND = 'credentials not found in native keychain';
/** the Username a helper gives for an identity token */
const TOKEN_USERNAME = '<token>';
export const HELPER_TIMEOUT_MS = 30_000;

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

export interface DockerConfigFile {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [other: string]: unknown;
}

export class CredentialHelperError extends TvmError {
  constructor(message: string) {
    super('ERR_CREDENTIAL_HELPER', message, 500);
  }
}

export function defaultDockerConfigPath(): string {
  return path.join(process.env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json');
}

/** The key the docker CLI files a registry under: Docker Hub's index URL, else host[:port]. */
export function configKey(registry: string): string {
  return registry === DEFAULT_DOMAIN ? DOCKER_HUB_INDEX_SERVER : registry;
}

function keyHost(key: string): string {
  return key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
}

/** Whether a key of `auths`/`credHelpers` names `registry` (keys may carry a scheme and path). */
function keyMatches(key: string, registry: string): boolean {
  if (registry === DEFAULT_DOMAIN) return DOCKER_HUB_KEYS.includes(key) || DOCKER_HUB_KEYS.includes(keyHost(key));
  return key === registry || keyHost(key) === registry;
}

export async function readDockerConfig(file: string): Promise<DockerConfigFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
  try {
    const j = JSON.parse(text) as unknown;
    if (!j || typeof j !== 'object' || Array.isArray(j)) throw new Error('not an object');
    return j as DockerConfigFile;
  } catch (e) {
    throw new TvmError('ERR_BAD_DOCKER_CONFIG', `${file}: not valid JSON: ${(e as Error).message}`, 500);
  }
}

/** The credential helper configured for `registry`, if any (credHelpers before credsStore). */
export function helperFor(cfg: DockerConfigFile, registry: string): string | undefined {
  for (const [key, helper] of Object.entries(cfg.credHelpers ?? {})) if (keyMatches(key, registry) && helper) return helper;
  return cfg.credsStore || undefined;
}

/** Runs `docker-credential-<helper> <action>` with `input` on stdin; errors worded as the docker CLI words them. */
async function runHelper(helper: string, action: 'get' | 'store' | 'erase', input: string, timeoutMs: number): Promise<string> {
  const program = `docker-credential-${helper}`;
  const r = await execa(program, [action], { input, reject: false, timeout: timeoutMs, stripFinalNewline: true, env: process.env });
  const out = `${r.stdout ?? ''}`.trim() || `${r.stderr ?? ''}`.trim();
  const verb = action === 'get' ? 'getting' : action === 'store' ? 'storing' : 'erasing';
  if (r.code === 'ENOENT') {
    throw new CredentialHelperError(
      `error ${verb} credentials - err: exec: ${JSON.stringify(program)}: executable file not found in $PATH, out: \`\``,
    );
  }
  if (r.code === 'EACCES')
    throw new CredentialHelperError(`error ${verb} credentials - err: exec: ${JSON.stringify(program)}: permission denied, out: \`\``);
  if (r.timedOut)
    throw new CredentialHelperError(`error ${verb} credentials - err: ${program} timed out after ${timeoutMs} ms, out: \`${out}\``);
  if (r.exitCode !== 0) {
    if (action === 'get' && out === HELPER_NOT_FOUND) return '';
    const why = r.signal ? `signal: ${r.signal}` : `exit status ${r.exitCode}`;
    throw new CredentialHelperError(`error ${verb} credentials - err: ${why}, out: \`${out}\``);
  }
  return `${r.stdout ?? ''}`;
}

/** Credentials for `registry` (a reference's domain, e.g. 'docker.io', 'reg:5000'), or undefined. */
export async function getDockerCredentials(
  registry: string,
  o: { configPath?: string; timeoutMs?: number } = {},
): Promise<Credentials | undefined> {
  const file = o.configPath ?? defaultDockerConfigPath();
  const cfg = await readDockerConfig(file);
  const helper = helperFor(cfg, registry);
  if (helper) {
    const out = await runHelper(helper, 'get', configKey(registry), o.timeoutMs ?? HELPER_TIMEOUT_MS);
    if (out.trim() === '') return undefined;
    let j: { Username?: unknown; Secret?: unknown };
    try {
      j = JSON.parse(out) as typeof j;
    } catch {
      // the answer is not repeated: a helper's successful answer may carry the secret, and this
      // message reaches API clients (docker's own client also reports only the decode error)
      throw new CredentialHelperError(
        `error getting credentials - err: docker-credential-${helper} answered something that is not JSON (${out.length} bytes)`,
      );
    }
    const username = typeof j.Username === 'string' ? j.Username : '';
    const secret = typeof j.Secret === 'string' ? j.Secret : '';
    if (!secret && !username) return undefined;
    return username === TOKEN_USERNAME ? { identitytoken: secret } : { username, password: secret };
  }
  for (const [key, entry] of Object.entries(cfg.auths ?? {})) {
    if (!keyMatches(key, registry)) continue;
    const creds: Credentials = {};
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new TvmError('ERR_BAD_DOCKER_CONFIG', `${file}: auths.${key}.auth is not base64 "user:password"`, 500);
      creds.username = decoded.slice(0, colon);
      creds.password = decoded.slice(colon + 1);
    }
    if (entry.username) creds.username = entry.username;
    if (entry.password) creds.password = entry.password;
    if (entry.identitytoken) creds.identitytoken = entry.identitytoken;
    if (entry.registrytoken) creds.registrytoken = entry.registrytoken;
    return Object.keys(creds).length ? creds : undefined;
  }
  return undefined;
}

/**
 * Saves credentials for `registry` where `docker login` would: through the configured helper
 * (`store`), keeping an empty `auths` entry; otherwise base64 in `auths`. The config file is
 * rewritten atomically, mode 0600, other keys untouched.
 */
export async function storeDockerCredentials(
  registry: string,
  creds: Credentials,
  o: { configPath?: string; timeoutMs?: number } = {},
): Promise<'helper' | 'file'> {
  const file = o.configPath ?? defaultDockerConfigPath();
  const cfg = await readDockerConfig(file);
  const key = configKey(registry);
  const helper = helperFor(cfg, registry);
  const auths = (cfg.auths ??= {});
  for (const k of Object.keys(auths)) if (k !== key && keyMatches(k, registry)) delete auths[k];
  if (helper) {
    const payload = creds.identitytoken
      ? { ServerURL: key, Username: TOKEN_USERNAME, Secret: creds.identitytoken }
      : { ServerURL: key, Username: creds.username ?? '', Secret: creds.password ?? '' };
    await runHelper(helper, 'store', JSON.stringify(payload), o.timeoutMs ?? HELPER_TIMEOUT_MS);
    auths[key] = {};
  } else {
    const entry: AuthEntry = {};
    if (creds.username !== undefined && creds.password !== undefined)
      entry.auth = Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
    if (creds.identitytoken) entry.identitytoken = creds.identitytoken;
    auths[key] = entry;
  }
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, JSON.stringify(cfg, null, '\t') + '\n', 0o600);
  return helper ? 'helper' : 'file';
}
