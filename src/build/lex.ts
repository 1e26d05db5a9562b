/**
 * Dockerfile variable substitution and quote removal, as buildkit's frontend/dockerfile/shell
 * lexer (which moby's classic builder uses too):
 *
 * - `$name` and `${name}`; `${name:-word}` (word if unset or empty), `${name-word}` (if unset),
 *   `${name:+word}` (word if set and non-empty), `${name+word}` (if set), `${name:?msg}` and
 *   `${name?msg}` (an error if unset [or empty]); the word is itself expanded;
 * - single quotes keep everything literally; double quotes group and still expand `$`; the
 *   escape character (`\` or the `# escape=` directive's) escapes the next character; inside
 *   double quotes it escapes only `"`, `$` and itself;
 * - processWords splits at unquoted whitespace, including whitespace a variable expanded to.
 */
import { BuildError } from './errors.js';

export type Env = ReadonlyMap<string, string>;

/** `KEY=value` lists (an image's Env) as a lookup map; the first definition of a key wins. */
export function envMap(...lists: (readonly string[])[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const list of lists) {
    for (const e of list) {
      const eq = e.indexOf('=');
      const k = eq < 0 ? e : e.slice(0, eq);
      if (!m.has(k)) m.set(k, eq < 0 ? '' : e.slice(eq + 1));
    }
  }
  return m;
}

class Lexer {
  private i = 0;
  /** words as split so far; `cur` is the word being built, `inWord` whether one is open */
  readonly words: string[] = [];
  private cur = '';
  private inWord = false;

  constructor(
    private readonly s: string,
    private readonly env: Env,
    private readonly escape: string,
  ) {}

  private peek(): string | undefined {
    return this.s[this.i];
  }

  private addChar(c: string, quoted: boolean): void {
    if (!quoted && /\s/.test(c)) {
      if (this.inWord) {
        this.words.push(this.cur);
        this.cur = '';
        this.inWord = false;
      }
      return;
    }
    this.cur += c;
    this.inWord = true;
  }

  private addString(s: string, quoted: boolean): void {
    for (const c of s) this.addChar(c, quoted);
  }

  /** Processes up to `stop` (not consumed) or the end; returns the text (quotes removed, variables expanded). */
  process(stop?: string): string {
    let out = '';
    while (this.i < this.s.length) {
      const c = this.s[this.i]!;
      if (stop !== undefined && c === stop) break;
      if (c === "'") {
        const t = this.singleQuoted();
        out += t;
        this.inWord = true;
        this.addString(t, true);
      } else if (c === '"') {
        const t = this.doubleQuoted();
        out += t;
        this.inWord = true;
        this.addString(t, true);
      } else if (c === '$') {
        const t = this.dollar();
        out += t;
        this.addString(t, false);
      } else if (c === this.escape) {
        this.i++;
        const n = this.peek();
        if (n === undefined) {
          out += c; // a trailing escape stays literal
          this.addChar(c, true);
        } else {
          this.i++;
          out += n;
          this.addChar(n, true);
        }
      } else {
        this.i++;
        out += c;
        this.addChar(c, false);
      }
    }
    return out;
  }

  finish(): string[] {
    if (this.inWord) this.words.push(this.cur);
    return this.words;
  }

  private singleQuoted(): string {
    const end = this.s.indexOf("'", this.i + 1);
    if (end < 0) throw new BuildError(`unexpected end of statement while looking for matching single-quote`);
    const t = this.s.slice(this.i + 1, end);
    this.i = end + 1;
    return t;
  }

  private doubleQuoted(): string {
    this.i++;
    let out = '';
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined) throw new BuildError('unexpected end of statement while looking for matching double-quote');
      if (c === '"') {
        this.i++;
        return out;
      }
      if (c === '$') {
        out += this.dollar();
        continue;
      }
      if (c === this.escape) {
        const n = this.s[this.i + 1];
        if (n === '"' || n === '$' || n === this.escape) {
          out += n;
          this.i += 2;
          continue;
        }
      }
      out += c;
      this.i++;
    }
  }

  private name(): string {
    const m = /^[A-Za-z0-9_]+/.exec(this.s.slice(this.i));
    if (!m) return '';
    // a name starting with a digit is one character (a positional parameter)
    const n = /^[0-9]/.test(m[0]) ? m[0][0]! : m[0];
    this.i += n.length;
    return n;
  }

  private dollar(): string {
    this.i++; // '$'
    const c = this.peek();
    if (c !== '{') {
      const n = this.name();
      if (n === '') return '$';
      return this.env.get(n) ?? '';
    }
    this.i++; // '{'
    const n = this.name();
    if (n === '') throw new BuildError(`bad substitution: missing or invalid variable name in \${...}`);
    const value = this.env.get(n);
    const next = this.peek();
    if (next === undefined) throw new BuildError(`syntax error: missing '}'`);
    if (next === '}') {
      this.i++;
      return value ?? '';
    }
    let colon = false;
    if (next === ':') {
      colon = true;
      this.i++;
    }
    const mod = this.peek();
    if (mod === undefined || !'-+?'.includes(mod)) {
      throw new BuildError(`unsupported modifier (${colon ? ':' : ''}${mod ?? ''}) in substitution`);
    }
    this.i++;
    const word = this.sub();
    const unset = value === undefined || (colon && value === '');
    switch (mod) {
      case '-':
        return unset ? word : value;
      case '+':
        return unset ? '' : word;
      default:
        if (unset) throw new BuildError(`${n}: ${word || 'is not allowed to be unset'}`);
        return value;
    }
  }

  /** The word of a `${name:-word}`, expanded, up to the closing brace. */
  private sub(): string {
    const inner = new Lexer(this.s, this.env, this.escape);
    inner.i = this.i;
    const t = inner.process('}');
    if (inner.peek() !== '}') throw new BuildError(`syntax error: missing '}'`);
    this.i = inner.i + 1;
    return t;
  }
}

/** One word: variables expanded, quotes and escapes removed (ENV values, WORKDIR, USER, ...). */
export function processWord(word: string, env: Env, escape = '\\'): string {
  const l = new Lexer(word, env, escape);
  return l.process();
}

/** Words split at unquoted whitespace after expansion (EXPOSE, VOLUME, COPY sources, ...). */
export function processWords(text: string, env: Env, escape = '\\'): string[] {
  const l = new Lexer(text, env, escape);
  l.process();
  return l.finish();
}
