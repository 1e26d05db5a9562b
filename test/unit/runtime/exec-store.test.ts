import { describe, it, expect } from 'vitest';
import { ExecStore } from '../../../src/runtime/exec-store.js';
import { InvalidParameterError, NotFoundError } from '../../../src/errors.js';

describe('ExecStore', () => {
  it("checks the request with Docker's messages and fills the defaults (null as absent)", () => {
    const s = new ExecStore();
    expect(() => s.create('c1', { Cmd: [] })).toThrow(new InvalidParameterError('No exec command specified'));
    expect(() => s.create('c1', { Cmd: ['true'], WorkingDir: 'rel' })).toThrow(/needs to be an absolute path/);
    const ex = s.create('c1', { Cmd: ['echo', 'hi'], Env: null, User: null, Tty: true });
    expect(ex.config).toEqual({
      Cmd: ['echo', 'hi'],
      Env: [],
      WorkingDir: '',
      User: '',
      Tty: true,
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Privileged: false,
      DetachKeys: '',
    });
    expect(s.get(ex.id)).toBe(ex);
    expect(() => s.get('nope')).toThrow(NotFoundError);
  });

  it('keeps 256 per container, forgetting the oldest finished one', () => {
    const s = new ExecStore();
    const first = s.create('c1', { Cmd: ['a'] });
    const running = s.create('c1', { Cmd: ['b'] });
    running.started = running.running = true;
    first.started = true;
    for (let i = 2; i < 256; i++) s.create('c1', { Cmd: ['x'] });
    expect(s.of('c1')).toHaveLength(256);
    s.create('c1', { Cmd: ['y'] });
    expect(s.of('c1')).toHaveLength(256);
    expect(() => s.get(first.id)).toThrow(NotFoundError);
    expect(s.get(running.id)).toBe(running);
  });

  it('a stopped container ends its execs; a removed one takes them along', () => {
    const s = new ExecStore();
    const a = s.create('c1', { Cmd: ['a'] });
    const b = s.create('c2', { Cmd: ['b'] });
    a.running = b.running = true;
    s.containerExited('c1');
    expect([a.running, b.running]).toEqual([false, true]);
    s.dropContainer('c1');
    expect(s.of('c1')).toEqual([]);
    expect(() => s.get(a.id)).toThrow(NotFoundError);
    expect(s.of('c2')).toEqual([b.id]);
  });
});
