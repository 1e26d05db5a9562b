import { describe, it, expect } from 'vitest';
import {
  AuthError,
  RegistryError,
  RegistryResponseError,
  errcodeText,
  goNetError,
  goOp,
  parseErrorResponse,
  responseError,
  statusLine,
  translatePullError,
} from '../../../src/images/registry-errors.js';
import { NotFoundError } from '../../../src/errors.js';
import { parseNormalized } from '../../../src/images/reference.js';

const body = (...errors: { code: string; message: string }[]) => JSON.stringify({ errors: errors.map((e) => ({ ...e, detail: null })) });

describe("registry error responses, read as docker/distribution's client reads them", () => {
  it('errcode bodies print as Go prints errcode.Errors', () => {
    expect(responseError(404, body({ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' })).message).toBe(
      'manifest unknown: manifest unknown',
    );
    expect(errcodeText([{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }])).toBe(
      'name unknown: repository name not known to registry',
    );
    expect(
      errcodeText([
        { code: 'DENIED', message: 'a' },
        { code: 'UNAUTHORIZED', message: 'b' },
      ]),
    ).toBe('errors:\ndenied: a\nunauthorized: b\n');
  });

  it("puts a bearer challenge's error first: insufficient_scope is DENIED, invalid_token UNAUTHORIZED", () => {
    const h = 'Bearer realm="https://auth.example/token",service="reg",scope="repository:x:pull",error="insufficient_scope"';
    expect(parseErrorResponse(401, body({ code: 'UNAUTHORIZED', message: 'authentication required' }), h)).toEqual([
      { code: 'DENIED', message: 'requested access to the resource is denied' },
      { code: 'UNAUTHORIZED', message: 'authentication required' },
    ]);
    expect(parseErrorResponse(401, '', 'Bearer realm="r",error="invalid_token",error_description="token expired"')).toEqual([
      { code: 'UNAUTHORIZED', message: 'token expired' },
    ]);
  });

  it('reads token servers\' {"details"} and bare statuses', () => {
    expect(errcodeText(parseErrorResponse(401, '{"details":"incorrect username or password"}')!)).toBe(
      'unauthorized: incorrect username or password',
    );
    expect(errcodeText(parseErrorResponse(429, '{"details":"slow down"}')!)).toBe('toomanyrequests: slow down');
    expect(parseErrorResponse(401, 'not json')).toEqual([{ code: 'UNAUTHORIZED', message: 'authentication required' }]);
    expect(parseErrorResponse(500, body({ code: 'UNKNOWN', message: 'x' }))).toBeUndefined();
    expect(responseError(503, 'down').message).toBe('received unexpected HTTP status: 503 Service Unavailable');
    expect(statusLine(404)).toBe('404 Not Found');
  });

  it('keeps HTTP statuses: 401, 404 and 429 as such, everything else 500', () => {
    const cases: [number, string, string, number][] = [
      [401, '', 'ERR_UNAUTHORIZED', 401],
      [403, body({ code: 'DENIED', message: 'no' }), 'ERR_DENIED', 500],
      [404, body({ code: 'MANIFEST_UNKNOWN', message: 'm' }), 'ERR_REGISTRY_NOT_FOUND', 404],
      [429, '{"details":"x"}', 'ERR_TOO_MANY_REQUESTS', 429],
      [502, '', 'ERR_REGISTRY_SERVER', 500],
    ];
    for (const [http, text, code, status] of cases) expect(responseError(http, text)).toMatchObject({ code, status, httpStatus: http });
  });
});

describe("a pull's failure in Docker 28's words", () => {
  const ref = parseNormalized('reg.example:5000/team/app:v1');
  const hub = parseNormalized('busybox:nope');
  const t = (e: unknown, r = ref) => translatePullError(e, r) as Error & { status: number };

  it('DENIED, MANIFEST_UNKNOWN and NAME_UNKNOWN are not found (404), named as Docker names them', () => {
    const denied = t(responseError(401, '', 'Bearer realm="r",error="insufficient_scope"'));
    expect(denied).toBeInstanceOf(NotFoundError);
    expect(denied.message).toBe(
      "pull access denied for reg.example:5000/team/app, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
    );
    expect(t(responseError(404, body({ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' })), hub).message).toBe(
      'manifest for busybox:nope not found: manifest unknown: manifest unknown',
    );
    const name = t(responseError(404, body({ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' })));
    expect([name.message, name.status]).toEqual([
      'repository reg.example:5000/team/app not found: name unknown: repository name not known to registry',
      404,
    ]);
  });

  it('everything else keeps its words and answers 500 (errdefs.Unknown)', () => {
    const unauth = t(responseError(401, body({ code: 'UNAUTHORIZED', message: 'authentication required' })));
    expect([unauth.message, unauth.status]).toEqual(['unauthorized: authentication required', 500]);
    const noCreds = t(new AuthError('Head "https://reg.example:5000/v2/team/app/manifests/v1": no basic auth credentials'));
    expect(noCreds).toBeInstanceOf(AuthError);
    expect(noCreds.status).toBe(500);
    expect(t(new RegistryError('Get "https://h/v2/": dial tcp: lookup h: no such host', 'ERR_REGISTRY_UNREACHABLE', 502)).status).toBe(500);
    const other = new Error('disk full');
    expect(t(other)).toBe(other);
    expect(t(responseError(500, ''))).toBeInstanceOf(RegistryResponseError);
  });
});

describe('connection failures as Go words them', () => {
  const https = new URL('https://reg.example:5000/v2/');
  const err = (code: string, extra: object = {}) => Object.assign(new Error(`${code} happened`), { code, ...extra });

  it('names the request as url.Error does', () => {
    expect(goOp('HEAD')).toBe('Head');
    expect(goOp('GET')).toBe('Get');
  });

  it('DNS, refused, unreachable, timeout and reset', () => {
    expect(goNetError(err('ENOTFOUND', { hostname: 'reg.example' }), https)).toBe('dial tcp: lookup reg.example: no such host');
    expect(goNetError(err('ECONNREFUSED', { address: '10.0.0.1', port: 5000 }), https)).toBe(
      'dial tcp 10.0.0.1:5000: connect: connection refused',
    );
    expect(goNetError(err('ECONNREFUSED'), new URL('http://[::1]/v2/'))).toBe('dial tcp ::1:80: connect: connection refused');
    expect(goNetError(err('EHOSTUNREACH', { address: '10.0.0.1', port: 443 }), https)).toBe(
      'dial tcp 10.0.0.1:443: connect: no route to host',
    );
    expect(goNetError(err('UND_ERR_CONNECT_TIMEOUT'), https)).toBe('dial tcp reg.example:5000: i/o timeout');
    const both = Object.assign(
      new AggregateError([err('ECONNREFUSED', { address: '127.0.0.1', port: 1 }), err('ECONNREFUSED', { address: '::1', port: 1 })]),
      { code: 'ECONNREFUSED' },
    );
    expect(goNetError(both, new URL('http://localhost:1/v2/'))).toBe('dial tcp 127.0.0.1:1: connect: connection refused');
  });

  it('TLS to a plain HTTP server, and certificates', () => {
    expect(goNetError(err('ERR_SSL_WRONG_VERSION_NUMBER'), https)).toBe('http: server gave HTTP response to HTTPS client');
    expect(goNetError(err('EPROTO', { message: 'C0B7:error:0A00010B:SSL routines:ssl3_get_record:wrong version number' }), https)).toBe(
      'http: server gave HTTP response to HTTPS client',
    );
    expect(goNetError(err('DEPTH_ZERO_SELF_SIGNED_CERT'), https)).toBe(
      'tls: failed to verify certificate: x509: certificate signed by unknown authority',
    );
    expect(goNetError(err('ERR_TLS_CERT_ALTNAME_INVALID'), https)).toBe(
      'tls: failed to verify certificate: x509: certificate is valid for other names, not reg.example',
    );
  });
});
