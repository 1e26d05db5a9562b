/**
 * RFC 7235 `WWW-Authenticate` challenges: `Bearer realm="...",service="...",scope="..."`,
 * possibly several per header (`Basic realm="a", Bearer realm="b"`). Parameter names are
 * case-insensitive; values are tokens or quoted strings with backslash escapes.
 */
import { FormatError } from '../errors.js';

export interface Challenge {
  /** lower-cased: 'bearer', 'basic' */
  scheme: string;
  /** lower-cased names */
  params: Record<string, string>;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

export function parseWwwAuthenticate(header: string | string[]): Challenge[] {
  if (Array.isArray(header)) return header.flatMap((h) => parseWwwAuthenticate(h));
  const s = header;
  let i = 0;
  const out: Challenge[] = [];
  const fail = (why: string) => new FormatError(`malformed WWW-Authenticate header (${why}): ${JSON.stringify(s)}`, 'ERR_BAD_CHALLENGE');
  const skipWs = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  const quoted = (): string => {
    // at opening quote
    i++;
    let v = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) i++;
      v += s[i];
      i++;
    }
    if (i >= s.length) throw fail('unterminated quoted string');
    i++;
    return v;
  };
  while (i < s.length) {
    skipWs();
    if (s[i] === ',') {
      i++;
      continue;
    }
    if (i >= s.length) break;
    const scheme = token();
    if (!scheme) throw fail(`unexpected character at ${i}`);
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    // auth-params: name=value pairs separated by commas, until the next scheme
    for (;;) {
      skipWs();
      while (s[i] === ',') {
        i++;
        skipWs();
      }
      if (i >= s.length) break;
      const save = i;
      const name = token();
      skipWs();
      if (!name || s[i] !== '=') {
        // a new challenge starts here (or token68, which registries do not use)
        i = save;
        if (!name) throw fail(`unexpected character at ${i}`);
        break;
      }
      i++;
      skipWs();
      const value = s[i] === '"' ? quoted() : token();
      challenge.params[name.toLowerCase()] = value;
    }
  }
  return out;
}
