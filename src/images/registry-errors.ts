/**
 * Registry failures in the words Docker 28 uses, so that scripts grepping `docker pull`
 * output keep working. Three layers, as in moby and docker/distribution:
 *   - a registry's error response becomes errcode entries ({"errors":[{code, message}]}, the
 *     bearer challenge's error="insufficient_scope"/"invalid_token", or {"details": ...} from
 *     token servers), printed as Go's errcode does: "manifest unknown: manifest unknown";
 *   - a failure below HTTP reads as Go's url.Error: `Get "https://h/v2/": dial tcp: lookup h:
 *     no such host`, `http: server gave HTTP response to HTTPS client`;
 *   - a pull turns DENIED / MANIFEST_UNKNOWN / NAME_UNKNOWN into the not-found sentences
 *     (HTTP 404, moby's notFoundError); everything else is HTTP 500 (moby's errdefs.Unknown).
 */
import type { Dispatcher } from 'undici';
import { NotFoundError, TvmError, type ErrorCode } from '../errors.js';
import { familiarName, familiarString, type Reference } from './reference.js';
import { parseWwwAuthenticate } from './www-authenticate.js';

export interface Errcode {
  /** distribution's error code: MANIFEST_UNKNOWN, NAME_UNKNOWN, DENIED, UNAUTHORIZED, ... */
  code: string;
  message: string;
}

/** default messages of the codes a client synthesises (docker/distribution errcode descriptors) */
const DEFAULT_MESSAGE: Record<string, string> = {
  UNAUTHORIZED: 'authentication required',
  DENIED: 'requested access to the resource is denied',
  TOOMANYREQUESTS: 'too many requests',
  UNKNOWN: 'unknown error',
};

/** Go's errcode.ErrorCode.Error(): the code in lower case, '_' as spaces */
function codeWords(code: string): string {
  return code.toLowerCase().replace(/_/g, ' ');
}

/** Go's errcode.Errors.Error() */
export function errcodeText(errs: Errcode[]): string {
  if (errs.length === 1) return `${codeWords(errs[0]!.code)}: ${errs[0]!.message}`;
  return 'errors:\n' + errs.map((e) => `${codeWords(e.code)}: ${e.message}\n`).join('');
}

/** Go's http.Response.Status: "404 Not Found" */
export function statusLine(status: number): string {
  const text: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
    409: 'Conflict',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    502: 'Bad Gateway',
    503: 'Service Unavailable',
    504: 'Gateway Timeout',
  };
  return `${status} ${text[status] ?? ''}`.trim();
}

/**
 * What a registry (or token server) error response says, as docker/distribution's client
 * reads it (HandleErrorResponse): a bearer challenge's error first, then the JSON body.
 * Undefined when nothing could be read: the caller reports the bare status.
 */
export function parseErrorResponse(status: number, body: string, wwwAuthenticate?: string | string[]): Errcode[] | undefined {
  const out: Errcode[] = [];
  if (status >= 400 && status < 500) {
    for (const h of [wwwAuthenticate ?? []].flat()) {
      let challenges;
      try {
        challenges = parseWwwAuthenticate(h);
      } catch {
        continue;
      }
      for (const c of challenges) {
        if (c.scheme !== 'bearer') continue;
        const code = c.params.error === 'invalid_token' ? 'UNAUTHORIZED' : c.params.error === 'insufficient_scope' ? 'DENIED' : undefined;
        if (code) out.push({ code, message: c.params.error_description || DEFAULT_MESSAGE[code]! });
      }
    }
  }
  if (status < 400 || status >= 500) return undefined;
  let j: { errors?: { code?: unknown; message?: unknown }[]; details?: unknown } | undefined;
  try {
    j = JSON.parse(body) as typeof j;
  } catch {
    j = undefined;
  }
  if (j && Array.isArray(j.errors) && j.errors.length) {
    for (const e of j.errors) {
      const code = typeof e.code === 'string' && e.code ? e.code : 'UNKNOWN';
      out.push({ code, message: typeof e.message === 'string' ? e.message : '' });
    }
  } else if (j && typeof j.details === 'string' && j.details) {
    out.push({ code: status === 401 ? 'UNAUTHORIZED' : status === 429 ? 'TOOMANYREQUESTS' : 'UNKNOWN', message: j.details });
  } else if (status === 401 && out.length === 0) {
    out.push({ code: 'UNAUTHORIZED', message: DEFAULT_MESSAGE.UNAUTHORIZED! });
  }
  return out.length ? out : undefined;
}

export class AuthError extends TvmError {
  constructor(message: string, code: ErrorCode = 'ERR_UNAUTHORIZED', status = 401) {
    super(code, message, status);
  }
}

export class RegistryError extends TvmError {
  constructor(message: string, code: ErrorCode = 'ERR_REGISTRY', status = 500) {
    super(code, message, status);
  }
}

/** An error response from a registry, with what it said. */
export class RegistryResponseError extends TvmError {
  constructor(
    message: string,
    code: ErrorCode,
    status: number,
    readonly httpStatus: number,
    readonly errcodes: Errcode[],
  ) {
    super(code, message, status);
  }
}

/** The error a registry's non-success response stands for (message as Go prints it). */
export function responseError(httpStatus: number, body: string, wwwAuthenticate?: string | string[]): RegistryResponseError {
  const errs = parseErrorResponse(httpStatus, body, wwwAuthenticate) ?? [];
  const message = errs.length ? errcodeText(errs) : `received unexpected HTTP status: ${statusLine(httpStatus)}`;
  const first = errs[0]?.code;
  const code =
    httpStatus >= 500
      ? 'ERR_REGISTRY_SERVER'
      : first === 'UNAUTHORIZED'
        ? 'ERR_UNAUTHORIZED'
        : first === 'DENIED'
          ? 'ERR_DENIED'
          : httpStatus === 404
            ? 'ERR_REGISTRY_NOT_FOUND'
            : httpStatus === 429
              ? 'ERR_TOO_MANY_REQUESTS'
              : 'ERR_REGISTRY';
  const status = httpStatus === 401 || httpStatus === 404 || httpStatus === 429 ? httpStatus : 500;
  return new RegistryResponseError(message, code, status, httpStatus, errs);
}

/** Go's url.Error operation: "Get", "Head", "Post" */
export function goOp(method: string): string {
  return method.charAt(0).toUpperCase() + method.slice(1).toLowerCase();
}

interface NetErrorLike {
  code?: string;
  message?: string;
  hostname?: string;
  address?: string;
  port?: number;
  errors?: NetErrorLike[];
  cause?: NetErrorLike;
}

const TLS_VERIFY: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'x509: certificate signed by unknown authority',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'x509: certificate signed by unknown authority',
  SELF_SIGNED_CERT_IN_CHAIN: 'x509: certificate signed by unknown authority',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'x509: certificate signed by unknown authority',
  CERT_HAS_EXPIRED: 'x509: certificate has expired or is not yet valid',
  CERT_NOT_YET_VALID: 'x509: certificate has expired or is not yet valid',
};

/** A Node/undici connection error as Go's net/http would word it. */
export function goNetError(e: unknown, url: URL): string {
  let err = e as NetErrorLike;
  // happy-eyeballs connects report every address tried; the first one speaks for them
  if (err?.errors?.length && !err.hostname && !err.address) err = { ...err.errors[0]!, code: err.code ?? err.errors[0]!.code };
  const code = err?.code ?? err?.cause?.code ?? '';
  const msg = err?.message ?? String(e);
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const target = `${err.address ?? url.hostname.replace(/^\[|\]$/g, '')}:${err.port ?? port}`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `dial tcp: lookup ${err.hostname ?? url.hostname}: no such host`;
  if (code === 'ECONNREFUSED') return `dial tcp ${target}: connect: connection refused`;
  if (code === 'EHOSTUNREACH') return `dial tcp ${target}: connect: no route to host`;
  if (code === 'ENETUNREACH') return `dial tcp ${target}: connect: network is unreachable`;
  if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return `dial tcp ${target}: i/o timeout`;
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return `read tcp ${target}: read: connection reset by peer`;
  // a TLS client hello answered by a plain HTTP server
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long|http request/i.test(msg)) {
    return 'http: server gave HTTP response to HTTPS client';
  }
  if (TLS_VERIFY[code]) return `tls: failed to verify certificate: ${TLS_VERIFY[code]}`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return `tls: failed to verify certificate: x509: certificate is valid for other names, not ${url.hostname}`;
  return msg;
}

/**
 * The error a whole pull ends with (moby's translatePullError): the registry's DENIED,
 * MANIFEST_UNKNOWN and NAME_UNKNOWN read as not found (404); anything else keeps its words
 * and answers 500.
 */
export function translatePullError(e: unknown, ref: Reference): unknown {
  if (e instanceof RegistryResponseError) {
    const first = e.errcodes[0];
    const cause = first ? `${codeWords(first.code)}: ${first.message}` : e.message;
    if (first?.code === 'DENIED') {
      return new NotFoundError(
        `pull access denied for ${familiarName(ref)}, repository does not exist or may require 'docker login': ${cause}`,
        'ERR_PULL_ACCESS_DENIED',
      );
    }
    if (first?.code === 'MANIFEST_UNKNOWN')
      return new NotFoundError(`manifest for ${familiarString(ref)} not found: ${cause}`, 'ERR_MANIFEST_UNKNOWN');
    if (first?.code === 'NAME_UNKNOWN') return new NotFoundError(`repository ${familiarName(ref)} not found: ${cause}`, 'ERR_NAME_UNKNOWN');
    return new RegistryResponseError(e.message, e.code, 500, e.httpStatus, e.errcodes);
  }
  // moby answers every other registry failure of a pull as errdefs.Unknown (500)
  if (e instanceof AuthError && e.status !== 500) return new AuthError(e.message, e.code, 500);
  if (e instanceof RegistryError && e.status !== 500 && e.status !== 400) return new RegistryError(e.message, e.code, 500);
  return e;
}

/** error bodies are read up to this size: a registry's error is a short JSON document */
export const MAX_ERROR_BODY = 64 << 10;

/** Up to `limit` bytes of a body (the rest is dropped, the body destroyed), and whether there was more. */
export async function readBounded(body: Dispatcher.ResponseData['body'], limit: number): Promise<{ text: string; truncated: boolean }> {
  const parts: Buffer[] = [];
  let len = 0;
  for await (const c of body) {
    const b = c as Buffer;
    if (len + b.length > limit) {
      parts.push(b.subarray(0, limit - len));
      body.on('error', () => {}).destroy();
      return { text: Buffer.concat(parts).toString('utf8'), truncated: true };
    }
    parts.push(b);
    len += b.length;
  }
  return { text: Buffer.concat(parts).toString('utf8'), truncated: false };
}

/** The start of an error body (the rest is dropped): an endless body must not hang or fill memory. */
export async function readErrorBody(body: Dispatcher.ResponseData['body']): Promise<string> {
  return (await readBounded(body, MAX_ERROR_BODY)).text;
}
