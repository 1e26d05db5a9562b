/**
 * The Dockerfile parser: text -> directives and one node per instruction, with the rules of
 * buildkit's frontend/dockerfile/parser (which moby's classic builder uses):
 *
 * - parser directives (`# escape=`, `# syntax=`, `# check=`) only at the very top: the first
 *   line that is not one (a blank line, a comment, an instruction) ends them; each at most once;
 * - a line ending in the escape character (trailing blanks allowed) continues on the next; the
 *   escape is removed and the lines are joined as they are; comment lines and empty lines inside
 *   a continuation are dropped;
 * - `#` starts a comment only as a line's first non-blank character;
 * - the instruction word is case-insensitive; leading `--name[=value]` words are its flags;
 * - each instruction's arguments are split by its own rule (argsFor): JSON array or shell form,
 *   name=value pairs, whitespace-separated words, one string, or a nested instruction (ONBUILD);
 * - heredocs (`RUN <<EOF`) are a BuildKit feature: refused with a clear error.
 */
import { DockerfileParseError } from './errors.js';

export interface Directives {
  escape: string;
  syntax?: string;
}

export interface Node {
  /** lower-case instruction word */
  cmd: string;
  /** the instruction as written, continuation lines joined */
  original: string;
  startLine: number;
  endLine: number;
  /** leading `--name=value` words, quotes removed */
  flags: string[];
  /** the arguments after the flags, split by the instruction's rule */
  args: string[];
  /** arguments given as a JSON array (exec form) */
  json: boolean;
  /** ONBUILD's instruction */
  next?: Node;
}

export interface ParseResult {
  directives: Directives;
  nodes: Node[];
  warnings: string[];
}

const DIRECTIVE_RE = /^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$/;
const KNOWN_DIRECTIVES = new Set(['escape', 'syntax', 'check']);

/** The instructions Docker's classic builder knows, with how each splits its arguments. */
const ARG_RULES: Record<
  string,
  'json-or-string' | 'json-or-words' | 'name-val' | 'name-or-name-val' | 'words' | 'string' | 'health' | 'sub'
> = {
  add: 'json-or-words',
  arg: 'name-or-name-val',
  cmd: 'json-or-string',
  copy: 'json-or-words',
  entrypoint: 'json-or-string',
  env: 'name-val',
  expose: 'words',
  from: 'words',
  healthcheck: 'health',
  label: 'name-val',
  maintainer: 'string',
  onbuild: 'sub',
  run: 'json-or-string',
  shell: 'json-or-string',
  stopsignal: 'string',
  user: 'string',
  volume: 'json-or-words',
  workdir: 'string',
};

export const INSTRUCTIONS = Object.keys(ARG_RULES);

const HEREDOC_RE = /<<-?\s*["']?[A-Za-z_][A-Za-z0-9_]*["']?/;

function isComment(line: string): boolean {
  return /^[ \t]*#/.test(line);
}

export function parseDockerfile(text: string): ParseResult {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const directives: Directives = { escape: '\\' };
  const warnings: string[] = [];
  const seen = new Set<string>();
  let i = 0;
  // directives: consecutive `# key=value` lines at the top
  for (; i < lines.length; i++) {
    const m = DIRECTIVE_RE.exec(lines[i]!);
    if (!m) break;
    const key = m[1]!.toLowerCase();
    const value = m[2]!;
    if (!KNOWN_DIRECTIVES.has(key)) continue; // an unknown directive is a comment, as in buildkit
    if (seen.has(key)) throw new DockerfileParseError(i + 1, `only one ${key} parser directive can be used`);
    seen.add(key);
    if (key === 'escape') {
      if (value !== '\\' && value !== '`') throw new DockerfileParseError(i + 1, `invalid escape token '${value}' does not match \` or \\`);
      directives.escape = value;
    } else if (key === 'syntax') directives.syntax = value;
  }
  const esc = directives.escape.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
  const continuation = new RegExp(`${esc}[ \\t]*$`);
  const nodes: Node[] = [];

  for (; i < lines.length; i++) {
    const startLine = i + 1;
    let first = lines[i]!.replace(/^[ \t]+/, '');
    if (first === '' || first.startsWith('#')) continue;
    let line = first;
    let ended = !continuation.test(line);
    if (!ended) line = line.replace(continuation, '');
    let emptyContinuation = false;
    while (!ended && i + 1 < lines.length) {
      const raw = lines[++i]!;
      if (isComment(raw)) continue;
      if (raw.trim() === '') {
        emptyContinuation = true;
        continue;
      }
      ended = !continuation.test(raw);
      line += ended ? raw : raw.replace(continuation, '');
    }
    if (emptyContinuation) warnings.push(`[WARNING]: Empty continuation line found in: ${line.trim()}`);
    first = line.trim();
    if (first === '') continue;
    nodes.push(nodeFromLine(first, directives.escape, startLine, i + 1));
  }
  return { directives, nodes, warnings };
}

/** Splits leading `--flag` words off the arguments (quotes in them removed). */
function extractFlags(rest: string): { flags: string[]; rest: string } {
  const flags: string[] = [];
  let s = rest;
  for (;;) {
    const t = s.replace(/^[ \t]+/, '');
    if (!t.startsWith('--')) return { flags, rest: t };
    let word = '';
    let quote: string | undefined;
    let j = 0;
    for (; j < t.length; j++) {
      const c = t[j]!;
      if (quote) {
        if (c === quote) quote = undefined;
        else word += c;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === ' ' || c === '\t') break;
      else word += c;
    }
    if (word === '--') return { flags, rest: t.slice(j).replace(/^[ \t]+/, '') };
    flags.push(word.slice(2));
    s = t.slice(j);
  }
}

export function nodeFromLine(line: string, escape: string, startLine: number, endLine: number): Node {
  const m = /^(\S+)(?:\s+([\s\S]*))?$/.exec(line.trim());
  const word = m?.[1] ?? '';
  const cmd = word.toLowerCase();
  const rule = ARG_RULES[cmd];
  if (!rule) throw new DockerfileParseError(startLine, `unknown instruction: ${word.toUpperCase()}`);
  const { flags, rest } = extractFlags(m?.[2] ?? '');
  const node: Node = { cmd, original: line, startLine, endLine, flags, args: [], json: false };
  if ((cmd === 'run' || cmd === 'copy' || cmd === 'add') && HEREDOC_RE.test(rest) && !rest.trimStart().startsWith('[')) {
    throw new DockerfileParseError(
      startLine,
      `heredocs (${word.toUpperCase()} <<EOF) need BuildKit; tvm builds with Docker's classic builder, which does not support them`,
    );
  }
  const body = rest.trim();
  switch (rule) {
    case 'json-or-string':
    case 'json-or-words': {
      const json = body.startsWith('[') ? parseJsonArray(body, startLine) : undefined;
      if (json) {
        node.args = json;
        node.json = true;
      } else if (body !== '') {
        node.args = rule === 'json-or-string' ? [body] : body.split(/[ \t]+/);
      }
      break;
    }
    case 'words':
      node.args = body === '' ? [] : body.split(/[ \t]+/);
      break;
    case 'string':
      node.args = body === '' ? [] : [body];
      break;
    case 'name-val':
      node.args = parseNameVal(body, cmd.toUpperCase(), escape, startLine);
      break;
    case 'name-or-name-val':
      node.args = splitWords(body, escape);
      break;
    case 'health': {
      const hm = /^(\S+)(?:\s+([\s\S]*))?$/.exec(body);
      const typ = (hm?.[1] ?? '').toUpperCase();
      if (typ === 'NONE') {
        if (hm?.[2]?.trim()) throw new DockerfileParseError(startLine, 'HEALTHCHECK NONE takes no arguments');
        node.args = ['NONE'];
      } else if (typ === 'CMD') {
        const cmdText = (hm?.[2] ?? '').trim();
        if (cmdText === '') throw new DockerfileParseError(startLine, 'Missing command after HEALTHCHECK CMD');
        const json = cmdText.startsWith('[') ? parseJsonArray(cmdText, startLine) : undefined;
        node.args = ['CMD', ...(json ?? [cmdText])];
        node.json = json !== undefined;
      } else if (typ === '') {
        node.args = [];
      } else {
        throw new DockerfileParseError(startLine, `Unknown type "${typ}" in HEALTHCHECK (try CMD)`);
      }
      break;
    }
    case 'sub': {
      if (body === '') break;
      const sub = /^(\S+)/.exec(body)![1]!.toUpperCase();
      if (sub === 'ONBUILD') throw new DockerfileParseError(startLine, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
      if (sub === 'FROM' || sub === 'MAINTAINER') throw new DockerfileParseError(startLine, `${sub} isn't allowed as an ONBUILD trigger`);
      node.next = nodeFromLine(body, escape, startLine, endLine);
      node.args = [body];
      break;
    }
  }
  return node;
}

/**
 * A JSON array of strings (exec form), or undefined when the text is not JSON (it is then the
 * shell form, as in Docker); a JSON array holding anything but strings is an error.
 */
function parseJsonArray(text: string, line: number): string[] | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v)) return undefined;
  if (!v.every((x) => typeof x === 'string'))
    throw new DockerfileParseError(line, 'when using JSON array syntax, arrays must be comprised of strings only');
  return v;
}

/**
 * Words at unquoted whitespace, quotes and escapes kept (they are removed later, when the word
 * is expanded), as buildkit's parseWords.
 */
export function splitWords(text: string, escape: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | undefined;
  for (let j = 0; j < text.length; j++) {
    const c = text[j]!;
    if (c === escape && j + 1 < text.length) {
      cur += c + text[++j];
      continue;
    }
    if (quote) {
      if (c === quote) quote = undefined;
      cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      cur += c;
    } else if (c === ' ' || c === '\t') {
      if (cur !== '') words.push(cur);
      cur = '';
    } else cur += c;
  }
  if (cur !== '') words.push(cur);
  return words;
}

/**
 * ENV and LABEL: `k=v k2="v 2"` pairs, or the legacy single `key value with spaces`; returns
 * the flat list [k, v, k2, v2, ...] with values still quoted (expanded at dispatch).
 */
function parseNameVal(text: string, instr: string, escape: string, line: number): string[] {
  if (text === '') return [];
  const words = splitWords(text, escape);
  if (!words[0]!.includes('=')) {
    const m = /^(\S+)\s+([\s\S]*)$/.exec(text);
    if (!m || m[2]!.trim() === '') throw new DockerfileParseError(line, `${instr} must have two arguments`);
    return [m[1]!, m[2]!.trim()];
  }
  const out: string[] = [];
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq < 0) throw new DockerfileParseError(line, `Syntax error - can't find = in "${w}". Must be of the form: name=value`);
    if (eq === 0) throw new DockerfileParseError(line, `${instr} names can not be blank`);
    out.push(w.slice(0, eq), w.slice(eq + 1));
  }
  return out;
}
