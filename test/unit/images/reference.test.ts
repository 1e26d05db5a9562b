import { describe, it, expect } from 'vitest';
import {
  parseReference,
  parseNormalized,
  formatReference,
  familiarName,
  familiarString,
  validateDigest,
  repositoryName,
} from '../../../src/images/reference.js';
import { InvalidParameterError } from '../../../src/errors.js';

const D = 'sha256:' + 'a'.repeat(64);

describe('parseNormalized', () => {
  const cases: [string, string][] = [
    ['alpine', 'docker.io/library/alpine:latest'],
    ['alpine:3.20', 'docker.io/library/alpine:3.20'],
    ['library/alpine', 'docker.io/library/alpine:latest'],
    ['docker.io/alpine', 'docker.io/library/alpine:latest'],
    ['index.docker.io/library/alpine', 'docker.io/library/alpine:latest'],
    ['index.docker.io/alpine:edge', 'docker.io/library/alpine:edge'],
    ['team/app', 'docker.io/team/app:latest'],
    ['team/sub/app:v1', 'docker.io/team/sub/app:v1'],
    [`alpine@${D}`, `docker.io/library/alpine@${D}`],
    [`alpine:3.20@${D}`, `docker.io/library/alpine:3.20@${D}`],
    ['127.0.0.1:5000/team/app:1', '127.0.0.1:5000/team/app:1'],
    ['127.0.0.1:5000/app', '127.0.0.1:5000/app:latest'],
    ['localhost/x', 'localhost/x:latest'],
    ['localhost:5000/x:y', 'localhost:5000/x:y'],
    ['registry.example.com/a/b', 'registry.example.com/a/b:latest'],
    ['Registry.example/a', 'Registry.example/a:latest'],
    ['UPPERHOST/a', 'UPPERHOST/a:latest'],
    ['[::1]:5000/app:1', '[::1]:5000/app:1'],
    ['a-b.c-d/e', 'a-b.c-d/e:latest'],
    ['foo/a__b', 'docker.io/foo/a__b:latest'],
    ['foo/a---b', 'docker.io/foo/a---b:latest'],
    ['foo:tag_With.Dots-1', 'docker.io/library/foo:tag_With.Dots-1'],
  ];
  for (const [input, want] of cases) {
    it(`${input} -> ${want}`, () => {
      expect(formatReference(parseNormalized(input))).toBe(want);
    });
  }

  it('splits domain and path', () => {
    expect(parseReference('127.0.0.1:5000/team/app:1')).toEqual({ domain: '127.0.0.1:5000', path: 'team/app', tag: '1' });
    expect(parseReference('alpine')).toEqual({ domain: 'docker.io', path: 'library/alpine' });
    expect(repositoryName(parseReference('alpine'))).toBe('docker.io/library/alpine');
  });

  it('a name with a port but no tag has no tag', () => {
    expect(parseReference('host:5000/app').tag).toBeUndefined();
  });

  const bad: [string, RegExp][] = [
    ['', /at least one component/],
    ['Alpine', /must be lowercase/],
    ['team/App', /must be lowercase/],
    ['a'.repeat(64), /64-byte hexadecimal/],
    ['alpine:', /invalid tag/],
    ['alpine:-x', /invalid tag/],
    ['alpine:' + 'x'.repeat(129), /invalid tag/],
    ['alpine@sha256:abc', /invalid digest/],
    ['alpine@sha256:' + 'A'.repeat(64), /invalid checksum/],
    ['alpine@md5:' + 'a'.repeat(32), /unsupported digest algorithm/],
    ['alpine@sha256:' + 'a'.repeat(63), /invalid checksum/],
    ['-alpine', /invalid repository name/],
    ['alpine-', /invalid repository name/],
    ['a//b', /invalid repository name/],
    ['a/b/', /invalid repository name/],
    ['host:5000/', /at least one component/],
    ['a..b/c', /invalid domain/],
    ['a_b.c/e', /invalid domain/],
    ['-host.com/c', /invalid domain/],
    ['foo/a_-b', /invalid repository name/],
    ['a b', /invalid/],
    ['docker.io/' + 'a'.repeat(250), /255/],
  ];
  for (const [input, re] of bad) {
    it(`rejects ${JSON.stringify(input.length > 40 ? input.slice(0, 40) + '...' : input)}`, () => {
      let err: unknown;
      try {
        parseNormalized(input);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidParameterError);
      expect((err as Error).message).toMatch(re);
      expect((err as InvalidParameterError).status).toBe(400);
    });
  }
});

describe('familiar names', () => {
  const cases: [string, string, string][] = [
    ['alpine', 'alpine', 'alpine:latest'],
    ['docker.io/library/alpine:3', 'alpine', 'alpine:3'],
    ['team/app:1', 'team/app', 'team/app:1'],
    ['library/a/b', 'library/a/b', 'library/a/b:latest'],
    ['127.0.0.1:5000/app', '127.0.0.1:5000/app', '127.0.0.1:5000/app:latest'],
    [`alpine@${D}`, 'alpine', `alpine@${D}`],
  ];
  for (const [input, name, str] of cases) {
    it(`${input}`, () => {
      const r = parseNormalized(input);
      expect(familiarName(r)).toBe(name);
      expect(familiarString(r)).toBe(str);
    });
  }
});

describe('validateDigest', () => {
  it('accepts sha256 and sha512', () => {
    expect(validateDigest(D)).toBe(D);
    expect(validateDigest('sha512:' + 'b'.repeat(128))).toBeTruthy();
  });
  it('rejects bad ones', () => {
    for (const d of ['sha256', 'sha256:', 'sha256:xyz', ':' + 'a'.repeat(64), 'sha256:' + 'a'.repeat(65), 'foo:' + 'a'.repeat(64)]) {
      expect(() => validateDigest(d)).toThrow(InvalidParameterError);
    }
  });
});
