import { describe, it, expect } from 'vitest';
import { parseWwwAuthenticate } from '../../../src/images/www-authenticate.js';
import { FormatError } from '../../../src/errors.js';

describe('parseWwwAuthenticate', () => {
  it('parses a Docker Hub bearer challenge', () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' },
      },
    ]);
  });
  it('parses basic with token values, case and spaces', () => {
    expect(parseWwwAuthenticate('BASIC  Realm = basic-realm , charset="UTF-8"')).toEqual([
      { scheme: 'basic', params: { realm: 'basic-realm', charset: 'UTF-8' } },
    ]);
  });
  it('parses several challenges in one header and across headers', () => {
    expect(parseWwwAuthenticate('Basic realm="a", Bearer realm="b",service="s"')).toEqual([
      { scheme: 'basic', params: { realm: 'a' } },
      { scheme: 'bearer', params: { realm: 'b', service: 's' } },
    ]);
    expect(parseWwwAuthenticate(['Basic realm="a"', 'Bearer realm="b"']).map((c) => c.scheme)).toEqual(['basic', 'bearer']);
  });
  it('unescapes quoted strings and keeps commas inside them', () => {
    expect(parseWwwAuthenticate('Bearer realm="a\\"b",scope="repository:x:pull,push"')[0]!.params).toEqual({
      realm: 'a"b',
      scope: 'repository:x:pull,push',
    });
  });
  it('a scheme without params', () => {
    expect(parseWwwAuthenticate('Negotiate')).toEqual([{ scheme: 'negotiate', params: {} }]);
  });
  it('rejects malformed input', () => {
    expect(() => parseWwwAuthenticate('Bearer realm="open')).toThrow(FormatError);
    expect(() => parseWwwAuthenticate('"x"')).toThrow(FormatError);
  });
});
