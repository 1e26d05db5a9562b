/**
 * A regular-expression matcher that runs in time linear in the input (a Thompson NFA simulated
 * Pike-style: every position is visited once with a bounded set of states), for patterns users
 * send (`docker ps --filter name=REGEX`). dockerd matches those with Go's RE2; JavaScript's
 * backtracking RegExp would let one pattern like `(a+)+$` stall the event loop, and every
 * client with it.
 *
 * The syntax is RE2's common core: literals, `.`, `[...]` classes with ranges and negation,
 * `\d \w \s` (and their negations), escaped punctuation, `^ $`, groups `(...)` and `(?:...)`,
 * `|`, and the quantifiers `* + ? {n} {n,} {n,m}` (counts up to 1000, as RE2; a lazy `?` after
 * a quantifier is accepted: it cannot change whether a match exists). Anything else
 * (backreferences, lookaround, flags, word boundaries, POSIX classes) is refused with
 * RegexSyntaxError, as RE2 refuses what it does not implement.
 */

export class RegexSyntaxError extends Error {}

type Pred = (c: number) => boolean;
type Node =
  | { k: 'char'; p: Pred }
  | { k: 'bol' }
  | { k: 'eol' }
  | { k: 'cat'; xs: Node[] }
  | { k: 'alt'; xs: Node[] }
  | { k: 'rep'; x: Node; min: number; max: number }; // max -1: unbounded

type Inst =
  | { op: 'char'; p: Pred }
  | { op: 'split'; x: number; y: number }
  | { op: 'jmp'; x: number }
  | { op: 'bol' }
  | { op: 'eol' }
  | { op: 'match' };

const MAX_REPEAT = 1000;
const MAX_PROGRAM = 20_000;

const isDigit: Pred = (c) => c >= 48 && c <= 57;
const isWord: Pred = (c) => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isSpace: Pred = (c) => c === 32 || (c >= 9 && c <= 13);

class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  parse(): Node {
    const n = this.alt();
    if (this.i < this.s.length) throw new RegexSyntaxError(`unexpected ${JSON.stringify(this.s[this.i])} at ${this.i}`);
    return n;
  }

  private peek(): string | undefined {
    return this.s[this.i];
  }

  private alt(): Node {
    const xs = [this.cat()];
    while (this.peek() === '|') {
      this.i++;
      xs.push(this.cat());
    }
    return xs.length === 1 ? xs[0]! : { k: 'alt', xs };
  }

  private cat(): Node {
    const xs: Node[] = [];
    for (let c = this.peek(); c !== undefined && c !== '|' && c !== ')'; c = this.peek()) xs.push(this.repeat());
    return { k: 'cat', xs };
  }

  private repeat(): Node {
    let x = this.atom();
    for (;;) {
      const c = this.peek();
      let min: number;
      let max: number;
      if (c === '*') [min, max] = [0, -1];
      else if (c === '+') [min, max] = [1, -1];
      else if (c === '?') [min, max] = [0, 1];
      else if (c === '{' && /^\{\d+(,\d*)?\}/.test(this.s.slice(this.i))) {
        const m = /^\{(\d+)(?:(,)(\d*))?\}/.exec(this.s.slice(this.i))!;
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? -1 : Number(m[3]);
        if (min > MAX_REPEAT || max > MAX_REPEAT || (max !== -1 && max < min)) throw new RegexSyntaxError(`invalid repeat count ${m[0]}`);
        this.i += m[0].length - 1;
      } else return x;
      this.i++;
      if (x.k === 'bol' || x.k === 'eol') throw new RegexSyntaxError('missing argument to repetition operator');
      if (this.peek() === '?') this.i++; // lazy: same language
      x = { k: 'rep', x, min, max };
    }
  }

  private atom(): Node {
    const c = this.s[this.i++];
    switch (c) {
      case '(': {
        if (this.peek() === '?') {
          if (this.s[this.i + 1] !== ':') throw new RegexSyntaxError('only (?:...) groups are supported');
          this.i += 2;
        }
        const n = this.alt();
        if (this.s[this.i++] !== ')') throw new RegexSyntaxError('missing )');
        return n;
      }
      case ')':
        throw new RegexSyntaxError('unexpected )');
      case '*':
      case '+':
      case '?':
        throw new RegexSyntaxError(`missing argument to repetition operator ${c}`);
      case '[':
        return { k: 'char', p: this.cls() };
      case '.':
        return { k: 'char', p: (ch) => ch !== 10 };
      case '^':
        return { k: 'bol' };
      case '$':
        return { k: 'eol' };
      case '\\':
        return { k: 'char', p: this.escape(false) };
      case undefined:
        throw new RegexSyntaxError('unexpected end');
      default: {
        const code = c.charCodeAt(0);
        return { k: 'char', p: (ch) => ch === code };
      }
    }
  }

  /** After a backslash: a class shorthand, a control escape, or an escaped punctuation mark. */
  private escape(inClass: boolean): Pred {
    const c = this.s[this.i++];
    if (c === undefined) throw new RegexSyntaxError('trailing backslash');
    switch (c) {
      case 'd':
        return isDigit;
      case 'D':
        return (ch) => !isDigit(ch);
      case 'w':
        return isWord;
      case 'W':
        return (ch) => !isWord(ch);
      case 's':
        return isSpace;
      case 'S':
        return (ch) => !isSpace(ch);
      case 't':
        return (ch) => ch === 9;
      case 'n':
        return (ch) => ch === 10;
      case 'r':
        return (ch) => ch === 13;
      case 'f':
        return (ch) => ch === 12;
      case 'v':
        return (ch) => ch === 11;
    }
    if (/[A-Za-z0-9]/.test(c)) throw new RegexSyntaxError(`unsupported escape \\${c}${inClass ? ' in a class' : ''}`);
    const code = c.charCodeAt(0);
    return (ch) => ch === code;
  }

  private cls(): Pred {
    let negate = false;
    if (this.peek() === '^') {
      negate = true;
      this.i++;
    }
    const parts: Pred[] = [];
    let first = true;
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined) throw new RegexSyntaxError('missing ]');
      if (c === ']' && !first) {
        this.i++;
        break;
      }
      first = false;
      if (c === '[' && this.s[this.i + 1] === ':') throw new RegexSyntaxError('POSIX classes are not supported');
      let lo: number | undefined;
      if (c === '\\') {
        this.i++;
        const p = this.escape(true);
        const esc = this.s[this.i - 1]!;
        if (/[dDwWsS]/.test(esc)) {
          parts.push(p);
          continue;
        }
        lo = { t: 9, n: 10, r: 13, f: 12, v: 11 }[esc] ?? esc.charCodeAt(0);
      } else {
        lo = c.charCodeAt(0);
        this.i++;
      }
      if (this.peek() === '-' && this.s[this.i + 1] !== undefined && this.s[this.i + 1] !== ']') {
        this.i++;
        let hi: number;
        if (this.peek() === '\\') {
          this.i++;
          const esc = this.s[this.i++];
          if (esc === undefined || /[A-Za-z0-9]/.test(esc)) throw new RegexSyntaxError('invalid range end');
          hi = esc.charCodeAt(0);
        } else hi = this.s.charCodeAt(this.i++);
        if (hi < lo) throw new RegexSyntaxError('invalid character class range');
        const a = lo;
        parts.push((ch) => ch >= a && ch <= hi);
      } else {
        const a = lo;
        parts.push((ch) => ch === a);
      }
    }
    return negate ? (ch) => !parts.some((p) => p(ch)) : (ch) => parts.some((p) => p(ch));
  }
}

function compile(n: Node, prog: Inst[]): void {
  if (prog.length > MAX_PROGRAM) throw new RegexSyntaxError('pattern too large');
  switch (n.k) {
    case 'char':
      prog.push({ op: 'char', p: n.p });
      return;
    case 'bol':
    case 'eol':
      prog.push({ op: n.k });
      return;
    case 'cat':
      for (const x of n.xs) compile(x, prog);
      return;
    case 'alt': {
      // split L1, next; L1: x0; jmp end; next: split ... ; last alternative falls through
      const jumps: Inst[] = [];
      for (let k = 0; k < n.xs.length; k++) {
        if (k < n.xs.length - 1) {
          const split: Inst = { op: 'split', x: prog.length + 1, y: -1 };
          prog.push(split);
          compile(n.xs[k]!, prog);
          const j: Inst = { op: 'jmp', x: -1 };
          prog.push(j);
          jumps.push(j);
          (split as { y: number }).y = prog.length;
        } else compile(n.xs[k]!, prog);
      }
      for (const j of jumps) (j as { x: number }).x = prog.length;
      return;
    }
    case 'rep': {
      for (let k = 0; k < n.min; k++) compile(n.x, prog);
      if (n.max === -1) {
        // L: split body, end; body; jmp L
        const l = prog.length;
        const split: Inst = { op: 'split', x: l + 1, y: -1 };
        prog.push(split);
        compile(n.x, prog);
        prog.push({ op: 'jmp', x: l });
        (split as { y: number }).y = prog.length;
      } else {
        const splits: Inst[] = [];
        for (let k = n.min; k < n.max; k++) {
          const split: Inst = { op: 'split', x: prog.length + 1, y: -1 };
          prog.push(split);
          splits.push(split);
          compile(n.x, prog);
        }
        for (const s of splits) (s as { y: number }).y = prog.length;
      }
      return;
    }
  }
}

export class LinearRegex {
  private readonly prog: Inst[];

  constructor(readonly source: string) {
    this.prog = [];
    compile(new Parser(source).parse(), this.prog);
    this.prog.push({ op: 'match' });
  }

  /** Whether the pattern matches anywhere in `s` (Go's regexp.MatchString). */
  test(s: string): boolean {
    const n = this.prog.length;
    const mark = new Int32Array(n).fill(-1);
    let cur: number[] = [];
    let next: number[] = [];
    // Follows jumps, splits and assertions from pc at position i; adds the char/match states.
    const add = (list: number[], pc0: number, i: number, gen: number): boolean => {
      const stack = [pc0];
      while (stack.length) {
        const pc = stack.pop()!;
        if (mark[pc] === gen) continue;
        mark[pc] = gen;
        const ins = this.prog[pc]!;
        switch (ins.op) {
          case 'jmp':
            stack.push(ins.x);
            break;
          case 'split':
            stack.push(ins.y, ins.x);
            break;
          case 'bol':
            if (i === 0) stack.push(pc + 1);
            break;
          case 'eol':
            if (i === s.length) stack.push(pc + 1);
            break;
          case 'match':
            return true;
          case 'char':
            list.push(pc);
            break;
        }
      }
      return false;
    };
    for (let i = 0; ; i++) {
      // unanchored: a new thread may start at every position (gen i for this position's closure)
      if (add(cur, 0, i, i)) return true;
      if (i === s.length) return false;
      const ch = s.charCodeAt(i);
      next = [];
      for (const pc of cur) {
        const ins = this.prog[pc] as { op: 'char'; p: Pred };
        if (ins.p(ch) && add(next, pc + 1, i + 1, i + 1)) return true;
      }
      cur = next;
    }
  }
}
