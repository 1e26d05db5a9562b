import { describe, it, expect } from 'vitest';
import { parseDockerfile, splitWords } from '../../../src/build/parser.js';
import { parseInstructions } from '../../../src/build/instructions.js';
import { envMap, processWord, processWords } from '../../../src/build/lex.js';

const nodes = (t: string) => parseDockerfile(t).nodes;

describe('Dockerfile parser', () => {
  it('joins continuation lines as written, dropping comments and empty lines inside', () => {
    const n = nodes('FROM busybox\nRUN echo a \\\n  b \\\n# a comment\n\n  c\nCMD x');
    expect(n.map((x) => x.cmd)).toEqual(['from', 'run', 'cmd']);
    expect(n[1]!.args).toEqual(['echo a   b   c']);
    expect([n[1]!.startLine, n[1]!.endLine]).toEqual([2, 6]);
    expect(parseDockerfile('FROM a\nRUN x \\\n\n y').warnings[0]).toMatch(/Empty continuation line/);
  });

  it('a trailing escape with blanks after it still continues; a # inside a line is no comment', () => {
    expect(nodes('FROM a\nRUN echo 1 \\  \n 2 # not a comment')[1]!.args).toEqual(['echo 1  2 # not a comment']);
  });

  it('instruction words are case-insensitive; comments and blank lines are skipped', () => {
    const n = nodes('# hello\n\nfrom busybox\n  # indented comment\nRuN true');
    expect(n.map((x) => [x.cmd, x.startLine])).toEqual([
      ['from', 3],
      ['run', 5],
    ]);
  });

  it('the escape directive changes the continuation and escape character', () => {
    const r = parseDockerfile('# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo ok');
    expect(r.directives.escape).toBe('`');
    expect(r.nodes[1]!.args).toEqual(['dir c:\\   && echo ok']);
  });

  it('directives only count at the top; syntax is recorded; duplicates and bad escapes are refused', () => {
    expect(parseDockerfile('# syntax=docker/dockerfile:1\n# escape=`\nFROM a').directives).toEqual({
      escape: '`',
      syntax: 'docker/dockerfile:1',
    });
    expect(parseDockerfile('FROM a\n# escape=`\nRUN x \\\n y').directives.escape).toBe('\\');
    expect(parseDockerfile('\n# escape=`\nFROM a').directives.escape).toBe('\\');
    expect(() => parseDockerfile('# escape=\\\n# escape=`\nFROM a')).toThrow(/only one escape parser directive/);
    expect(() => parseDockerfile('# escape=x\nFROM a')).toThrow(/invalid escape token 'x'/);
  });

  it('JSON form vs shell form', () => {
    const n = nodes('FROM a\nCMD ["echo", "hi there"]\nENTRYPOINT echo hi\nRUN [not json\nCOPY ["a b", "/c"]\nCOPY a b /c/');
    expect([n[1]!.json, n[1]!.args]).toEqual([true, ['echo', 'hi there']]);
    expect([n[2]!.json, n[2]!.args]).toEqual([false, ['echo hi']]);
    expect([n[3]!.json, n[3]!.args]).toEqual([false, ['[not json']]);
    expect([n[4]!.json, n[4]!.args]).toEqual([true, ['a b', '/c']]);
    expect(n[5]!.args).toEqual(['a', 'b', '/c/']);
    expect(() => nodes('FROM a\nCMD ["a", 1]')).toThrow(/arrays must be comprised of strings only/);
  });

  it('flags, ENV/LABEL pairs and the legacy ENV form', () => {
    const n = nodes('FROM a\nCOPY --from=build --chown="1:2" a /b\nENV A=1 B="two words" C=x\\ y\nENV D the rest of it\nLABEL "k"=v');
    expect(n[1]!.flags).toEqual(['from=build', 'chown=1:2']);
    expect(n[1]!.args).toEqual(['a', '/b']);
    expect(n[2]!.args).toEqual(['A', '1', 'B', '"two words"', 'C', 'x\\ y']);
    expect(n[3]!.args).toEqual(['D', 'the rest of it']);
    expect(n[4]!.args).toEqual(['"k"', 'v']);
    expect(() => nodes('FROM a\nENV A=1 B')).toThrow(/can't find = in "B"/);
    expect(() => nodes('FROM a\nENV A')).toThrow(/ENV must have two arguments/);
  });

  it('HEALTHCHECK, ONBUILD and heredocs', () => {
    const n = nodes('FROM a\nHEALTHCHECK --interval=5s CMD ["true"]\nHEALTHCHECK NONE\nONBUILD RUN echo hi');
    expect([n[1]!.flags, n[1]!.args, n[1]!.json]).toEqual([['interval=5s'], ['CMD', 'true'], true]);
    expect(n[2]!.args).toEqual(['NONE']);
    expect(n[3]!.next?.cmd).toBe('run');
    expect(() => nodes('FROM a\nONBUILD ONBUILD RUN x')).toThrow(/Chaining ONBUILD/);
    expect(() => nodes('FROM a\nONBUILD FROM b')).toThrow(/FROM isn't allowed as an ONBUILD trigger/);
    expect(() => nodes('FROM a\nHEALTHCHECK FOO x')).toThrow(/Unknown type "FOO" in HEALTHCHECK/);
    expect(() => nodes('FROM a\nRUN <<EOF\necho\nEOF')).toThrow(/line 2: heredocs .* need BuildKit/);
    expect(nodes('FROM a\nRUN echo $((1<<2))')[1]!.args).toEqual(['echo $((1<<2))']);
  });

  it('unknown instructions are named with their line', () => {
    expect(() => nodes('FROM a\n\nFOO bar')).toThrow('dockerfile parse error on line 3: unknown instruction: FOO');
  });

  it('splitWords keeps quotes for later expansion', () => {
    expect(splitWords(`a "b c" 'd e' f\\ g`, '\\')).toEqual(['a', '"b c"', "'d e'", 'f\\ g']);
  });
});

describe('instructions', () => {
  it('stages, names, meta ARGs', () => {
    const d = parseInstructions('ARG V=1\nFROM busybox:${V} AS Build\nRUN true\nFROM scratch\nCOPY --from=build /a /a');
    expect(d.metaArgs.map((a) => a.node.args)).toEqual([['V=1']]);
    expect(d.stages.map((s) => [s.name, s.base, s.instructions.length])).toEqual([
      ['build', 'busybox:${V}', 1],
      [undefined, 'scratch', 1],
    ]);
    expect(d.stages[1]!.instructions[0]!.flags).toEqual({ from: 'build' });
  });

  it('argument counts and flags are checked before anything runs', () => {
    expect(() => parseInstructions('FROM a b')).toThrow('FROM requires either one or three arguments');
    expect(() => parseInstructions('FROM a\nCOPY x')).toThrow(/COPY requires at least two arguments/);
    expect(() => parseInstructions('FROM a\nWORKDIR')).toThrow(/WORKDIR requires exactly one argument/);
    expect(() => parseInstructions('FROM a\nRUN')).toThrow(/RUN requires at least one argument/);
    expect(() => parseInstructions('FROM a\nCOPY --bogus=1 a b')).toThrow(/unknown flag: bogus/);
    expect(() => parseInstructions('FROM a\nRUN --mount=type=cache,target=/x true')).toThrow(/--mount option requires BuildKit/);
    expect(() => parseInstructions('FROM a\nCOPY --from a b')).toThrow(/missing a value on flag: from/);
    expect(() => parseInstructions('FROM a\nSHELL /bin/bash')).toThrow(/SHELL requires the arguments to be in JSON form/);
    expect(() => parseInstructions('RUN x')).toThrow(/no build stage in current context/);
    expect(() => parseInstructions('FROM a AS x\nFROM b AS X')).toThrow(/duplicate name x/);
    expect(() => parseInstructions('')).toThrow(/file with no instructions/);
    expect(() => parseInstructions('FROM base AS base')).toThrow(/circular dependency detected on stage: base/);
    expect(() => parseInstructions('FROM a AS one\nCOPY --from=one /x /y')).toThrow(
      /invalid from flag value one: refers to current build stage/,
    );
    expect(() => parseInstructions('FROM a\nCOPY --from=0 /x /y')).toThrow(/refers to current build stage/);
  });
});

describe('variable substitution', () => {
  const env = envMap(['A=1', 'EMPTY=', 'SP=a b', 'A=ignored']);
  it('plain, braced and modifiers', () => {
    expect(processWord('$A-${A}', env)).toBe('1-1');
    expect(processWord('${NOPE:-dflt} ${EMPTY:-dflt} ${EMPTY-dflt} ${NOPE-d2}', env)).toBe('dflt dflt  d2');
    expect(processWord('${A:+set} ${EMPTY:+set} ${EMPTY+set} ${NOPE+set}', env)).toBe('set  set ');
    expect(processWord('${NOPE:-${A}x}', env)).toBe('1x');
    expect(() => processWord('${NOPE:?must be set}', env)).toThrow('NOPE: must be set');
    expect(() => processWord('${A', env)).toThrow(/missing '}'/);
    expect(processWord('cost $ 5 $', env)).toBe('cost $ 5 $');
  });

  it('quotes and escapes', () => {
    expect(processWord(`'$A' "$A" \\$A "a\\"b" 'x\\y'`, env)).toBe(`$A 1 $A a"b x\\y`);
    expect(processWord('`$A', env, '`')).toBe('$A');
    expect(() => processWord('"open', env)).toThrow(/matching double-quote/);
  });

  it('words split at unquoted whitespace, including expanded whitespace', () => {
    expect(processWords('$SP "$SP" c\\ d', env)).toEqual(['a', 'b', 'a b', 'c d']);
    expect(processWords('""', env)).toEqual(['']);
  });
});
