import { describe, it, expect } from 'vitest';
import { applyChanges, splitWords } from '../../../src/images/changes.js';
import { InvalidParameterError } from '../../../src/errors.js';

describe('splitWords', () => {
  it('handles quotes and escapes', () => {
    expect(splitWords(`a "b c" 'd e' f\\ g "h\\"i"`)).toEqual(['a', 'b c', 'd e', 'f g', 'h"i']);
    expect(splitWords('  ')).toEqual([]);
    expect(splitWords('x=""')).toEqual(['x=']);
  });
  it('rejects unterminated quotes', () => {
    expect(() => splitWords('"abc')).toThrow(InvalidParameterError);
    expect(() => splitWords("'abc")).toThrow(InvalidParameterError);
  });
});

describe('applyChanges', () => {
  it('applies each instruction', () => {
    const c = applyChanges({ Env: ['PATH=/bin', 'A=old'] }, [
      'CMD echo hello',
      'entrypoint ["/init", "--"]',
      'ENV A=new B="x y"',
      'ENV C spaced value',
      'EXPOSE 8080 9000-9001/udp',
      'LABEL "com.example"="v 1" other=2',
      'USER 1000:1000',
      'WORKDIR /app',
      'WORKDIR sub',
      'VOLUME ["/data", "/logs"]',
      'VOLUME /cache',
      'STOPSIGNAL SIGINT',
    ]);
    expect(c).toEqual({
      Cmd: ['/bin/sh', '-c', 'echo hello'],
      Entrypoint: ['/init', '--'],
      Env: ['PATH=/bin', 'A=new', 'B=x y', 'C=spaced value'],
      ExposedPorts: { '8080/tcp': {}, '9000/udp': {}, '9001/udp': {} },
      Labels: { 'com.example': 'v 1', other: '2' },
      User: '1000:1000',
      WorkingDir: '/app/sub',
      Volumes: { '/data': {}, '/logs': {}, '/cache': {} },
      StopSignal: 'SIGINT',
    });
  });
  it('does not modify its input', () => {
    const base = { Env: ['A=1'] };
    applyChanges(base, ['ENV A=2']);
    expect(base).toEqual({ Env: ['A=1'] });
  });
  const bad: [string, RegExp][] = [
    ['RUN echo', /RUN is not supported/],
    ['FROM x', /FROM is not supported/],
    ['CMD', /missing command/],
    ['EXPOSE 70000', /invalid port range/],
    ['EXPOSE abc', /invalid port/],
    ['ENV =x', /must be followed by '='|requires/],
    ['USER', /requires an argument/],
    ['', /expected "INSTRUCTION arguments"/],
  ];
  for (const [change, re] of bad) {
    it(`rejects ${JSON.stringify(change)}`, () => {
      expect(() => applyChanges({}, [change])).toThrow(re);
    });
  }
});
