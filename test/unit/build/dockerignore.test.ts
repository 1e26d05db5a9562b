import { describe, it, expect } from 'vitest';
import { IgnoreMatcher, parseDockerignore } from '../../../src/build/dockerignore.js';

const m = (text: string) => new IgnoreMatcher(parseDockerignore(text));

describe('.dockerignore (moby patternmatcher rules)', () => {
  it('cleans patterns: comments, blanks, leading slash, ./ and trailing slash', () => {
    expect(parseDockerignore('# comment\n\n  /a/./b/  \n!c\n! d\n')).toEqual(['a/b', '!c', '!d']);
  });

  it('* stays in one component, ? is one character, ** spans any number', () => {
    const x = m('*.log\na?c\n**/tmp\ndocs/**/*.md');
    expect(x.matches('x.log')).toBe(true);
    expect(x.matches('sub/x.log')).toBe(false);
    expect(x.matches('abc')).toBe(true);
    expect(x.matches('a/c')).toBe(false);
    expect(x.matches('tmp')).toBe(true);
    expect(x.matches('a/b/tmp')).toBe(true);
    expect(x.matches('docs/x.md')).toBe(true);
    expect(x.matches('docs/a/b/x.md')).toBe(true);
    expect(x.matches('docs/x.txt')).toBe(false);
  });

  it('a matching directory excludes everything below it', () => {
    const x = m('node_modules');
    expect(x.matches('node_modules/a/b.js')).toBe(true);
    expect(x.matches('src/node_modules')).toBe(false);
  });

  it('the last matching pattern wins; exceptions bring paths back', () => {
    const x = m('*.md\n!README.md\nREADME*.md');
    expect(x.matches('CHANGES.md')).toBe(true);
    expect(x.matches('README.md')).toBe(true); // excluded again by the last line
    const y = m('logs\n!logs/keep.log');
    expect(y.matches('logs/x.log')).toBe(true);
    expect(y.matches('logs/keep.log')).toBe(false);
    expect(y.hasExceptions).toBe(true);
  });

  it('regexp characters are literal, \\ escapes, [] is a class', () => {
    const x = m('a+b.(c)\n\\*star\nfile[0-9]');
    expect(x.matches('a+b.(c)')).toBe(true);
    expect(x.matches('aab.(c)')).toBe(false);
    expect(x.matches('*star')).toBe(true);
    expect(x.matches('xstar')).toBe(false);
    expect(x.matches('file7')).toBe(true);
    expect(x.matches('filex')).toBe(false);
  });
});
