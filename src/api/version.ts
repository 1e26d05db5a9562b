/**
 * Docker API version negotiation: clients prefix paths with `/v1.xx/`; unversioned paths mean
 * the newest version we speak. The docker CLI pings first and then uses min(its, ours).
 */
import { InvalidParameterError } from '../errors.js';

export const API_VERSION = '1.50';
export const MIN_API_VERSION = '1.24';

const PREFIX_RE = /^\/v(\d+\.\d+)(\/.*)?$/;

export function compareVersions(a: string, b: string): number {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am !== bm ? am - bm : an - bn;
}

/** Splits `/v1.50/containers/json?x` into the version and the unversioned URL. */
export function splitVersion(url: string): { version: string | undefined; url: string } {
  const q = url.indexOf('?');
  const p = q < 0 ? url : url.slice(0, q);
  const m = PREFIX_RE.exec(p);
  if (!m) return { version: undefined, url };
  return { version: m[1], url: (m[2] ?? '/') + (q < 0 ? '' : url.slice(q)) };
}

/** Docker's messages for a version outside [MIN, MAX]; undefined when acceptable. */
export function versionError(version: string | undefined): InvalidParameterError | undefined {
  if (version === undefined) return undefined;
  if (compareVersions(version, API_VERSION) > 0) {
    return new InvalidParameterError(
      `client version ${version} is too new. Maximum supported API version is ${API_VERSION}`,
      'ERR_API_VERSION',
    );
  }
  if (compareVersions(version, MIN_API_VERSION) < 0) {
    return new InvalidParameterError(
      `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`,
      'ERR_API_VERSION',
    );
  }
  return undefined;
}

/** The version a request speaks: its prefix, or ours when unversioned. */
export function effectiveVersion(version: string | undefined): string {
  return version ?? API_VERSION;
}

/** Headers Docker puts on every response; the CLI reads them from /_ping. */
export function commonHeaders(serverVersion: string): Record<string, string> {
  return {
    'Api-Version': API_VERSION,
    'Docker-Experimental': 'false',
    Ostype: 'linux',
    Server: `tvm/${serverVersion} (linux)`,
  };
}
