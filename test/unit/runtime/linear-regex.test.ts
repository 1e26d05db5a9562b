import { describe, it, expect } from 'vitest';
import { LinearRegex, RegexSyntaxError } from '../../../src/runtime/linear-regex.js';

describe('LinearRegex (issue 16 item 19)', () => {
  const cases: [string, string, boolean][] = [
    ['web', 'my-web-1', true],
    ['^web', 'my-web-1', false],
    ['^my-web-\\d+$', 'my-web-12', true],
    ['^my-web-\\d+$', 'my-web-12x', false],
    ['a|b', 'xbx', true],
    ['(foo|bar)+baz', 'foobarfoobaz', true],
    ['(foo|bar)+baz', 'foobaz1', true],
    ['(?:ab){2,3}$', 'xababab', true],
    ['^(?:ab){2}$', 'ababab', false],
    ['[a-c]+\\.x', 'zzabc.x', true],
    ['[^a-z]', 'abc', false],
    ['[^a-z]', 'abc1', true],
    ['x?y*', '', true],
    ['^$', '', true],
    ['.', '', false],
    ['a{0}b', 'b', true],
    ['(a*)*b', 'aaab', true],
    ['[\\w-]+_1', 'my-web_1', true],
  ];
  it('agrees with JavaScript RegExp on ordinary patterns', () => {
    for (const [p, s, want] of cases) {
      expect([p, s, new LinearRegex(p).test(s)]).toEqual([p, s, want]);
      expect(new RegExp(p).test(s)).toBe(want);
    }
  });
  // A backtracking matcher takes 2^n steps on these: the test would not finish.
  it('matches catastrophic patterns in linear time', () => {
    const s = 'a'.repeat(5000) + '!';
    expect(new LinearRegex('(a+)+$').test(s)).toBe(false);
    expect(new LinearRegex('^(a|aa)*$').test(s)).toBe(false);
    expect(new LinearRegex('(a*)*b').test(s)).toBe(false);
  });
  it('refuses what RE2 does not implement and malformed patterns', () => {
    for (const p of ['(a)\\1', '(?=a)', '(?i)a', '\\bword', '[[:alpha:]]', '(', 'a)', '*a', '[z-a]', 'a{1001}', '[abc']) {
      expect(() => new LinearRegex(p), p).toThrow(RegexSyntaxError);
    }
  });
});
