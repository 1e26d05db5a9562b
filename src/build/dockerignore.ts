/**
 * `.dockerignore`, with moby's patternmatcher rules:
 *
 * - one pattern per line, blanks trimmed; lines starting with `#` are comments; `!` makes an
 *   exception (a path it matches is included again);
 * - patterns are cleaned (`a/./b/` -> `a/b`) and a leading `/` dropped: all are relative to the
 *   context root;
 * - `*` matches within one path component, `?` one character but `/`, `**` any number of
 *   components (also none), `[...]` a character class, `\` escapes the next character;
 * - a pattern matching a directory excludes everything below it;
 * - the last pattern that matches a path (or one of its parent directories) decides.
 */
import path from 'node:path';

interface Pattern {
  re: RegExp;
  exclusion: boolean;
}

function compile(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') i++;
        re += i + 1 >= pattern.length ? '.*' : '(.*/)?';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if ('.+(){}|$^'.includes(c)) re += `\\${c}`;
    else if (c === '\\') {
      if (i + 1 < pattern.length) re += `\\${pattern[++i]}`;
      else re += '\\\\';
    } else re += c;
  }
  try {
    return new RegExp(re + '$', 's');
  } catch {
    // a malformed class: match it literally rather than fail the whole build on it
    return new RegExp('^' + pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '$');
  }
}

/** The patterns of a .dockerignore file's text. */
export function parseDockerignore(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let invert = '';
    if (line.startsWith('!')) {
      invert = '!';
      line = line.slice(1).trim();
      if (line === '') continue;
    }
    let p = path.posix.normalize(line);
    if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
    if (p.length > 1 && p.startsWith('/')) p = p.slice(1);
    out.push(invert + p);
  }
  return out;
}

export class IgnoreMatcher {
  private readonly patterns: Pattern[];
  readonly hasExceptions: boolean;

  constructor(patterns: string[]) {
    this.patterns = patterns.map((p) =>
      p.startsWith('!') ? { re: compile(p.slice(1)), exclusion: true } : { re: compile(p), exclusion: false },
    );
    this.hasExceptions = this.patterns.some((p) => p.exclusion);
  }

  /** Whether the context path (relative, `/`-separated) is excluded. */
  matches(file: string): boolean {
    const parts = file.split('/');
    let matched = false;
    for (const p of this.patterns) {
      let m = p.re.test(file);
      for (let i = 1; !m && i < parts.length; i++) m = p.re.test(parts.slice(0, i).join('/'));
      if (m) matched = !p.exclusion;
    }
    return matched;
  }
}
