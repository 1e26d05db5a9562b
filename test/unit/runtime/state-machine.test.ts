import { describe, it, expect } from 'vitest';
import {
  transition,
  canTransition,
  assertRunning,
  NotModifiedError,
  type ContainerStatus,
  type LifecycleEvent,
} from '../../../src/runtime/state-machine.js';
import { ConflictError } from '../../../src/errors.js';

const ALL: ContainerStatus[] = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];
const ALLOWED: Record<LifecycleEvent, Partial<Record<ContainerStatus, ContainerStatus>>> = {
  start: { created: 'running', exited: 'running', dead: 'running' },
  pause: { running: 'paused' },
  unpause: { paused: 'running' },
  exit: { running: 'exited', paused: 'exited', restarting: 'exited' },
  remove: { created: 'removing', exited: 'removing', dead: 'removing' },
  lost: { running: 'dead', paused: 'dead', restarting: 'dead', removing: 'dead' },
  'remove-failed': { removing: 'dead' },
  'restart-wait': { running: 'restarting', paused: 'restarting' },
  'restart-start': { restarting: 'running' },
  'restart-cancel': { restarting: 'exited' },
};

describe('container state machine', () => {
  for (const ev of Object.keys(ALLOWED) as LifecycleEvent[]) {
    for (const from of ALL) {
      const to = ALLOWED[ev][from];
      it(`${from} --${ev}--> ${to ?? 'refused'}`, () => {
        expect(canTransition(from, ev)).toBe(to !== undefined);
        if (to !== undefined) expect(transition(from, ev, '/c')).toBe(to);
        else expect(() => transition(from, ev, '/c')).toThrow();
      });
    }
  }

  it('answers 304 for starting a running container', () => {
    const e = (() => {
      try {
        transition('running', 'start', 'abc');
      } catch (x) {
        return x;
      }
    })();
    expect(e).toBeInstanceOf(NotModifiedError);
    expect((e as NotModifiedError).status).toBe(304);
  });

  it("uses Docker's messages for forbidden operations", () => {
    expect(() => transition('paused', 'start', 'c')).toThrow('cannot start a paused container, try unpause instead');
    expect(() => transition('paused', 'pause', 'c')).toThrow('Container c is already paused');
    expect(() => transition('exited', 'pause', 'c')).toThrow('Container c is not running');
    expect(() => transition('running', 'unpause', 'c')).toThrow('Container c is not paused');
    expect(() => transition('running', 'remove', '/web')).toThrow(
      'cannot remove container "/web": container is running: stop the container before removing or force remove',
    );
    expect(() => transition('removing', 'remove', '/web')).toThrow('removal of container web is already in progress');
    try {
      transition('running', 'remove', '/web');
    } catch (e) {
      expect(e).toBeInstanceOf(ConflictError);
      expect((e as ConflictError).status).toBe(409);
    }
  });

  it('checks operations that need a running container', () => {
    expect(() => assertRunning('exited', 'abc', 'kill')).toThrow('Cannot kill container: abc: Container abc is not running');
    expect(() => assertRunning('paused', 'abc', 'exec')).toThrow('container abc is paused, unpause the container before exec');
    expect(() => assertRunning('created', 'abc', 'exec')).toThrow('container abc is not running');
    expect(() => assertRunning('exited', 'abc', 'attach')).toThrow('You cannot attach to a stopped container, start it first');
    expect(() => assertRunning('running', 'abc', 'kill')).not.toThrow();
    expect(() => assertRunning('paused', 'abc', 'top')).not.toThrow();
  });

  it("treats a restarting container as running, with Docker's restarting messages", () => {
    expect(() => transition('restarting', 'start', 'abc')).toThrow(NotModifiedError);
    expect(() => transition('restarting', 'pause', 'abc')).toThrow('Container abc is restarting, wait until the container is running');
    expect(() => assertRunning('restarting', 'abc', 'exec')).toThrow('Container abc is restarting, wait until the container is running');
    expect(() => assertRunning('restarting', 'abc', 'top')).toThrow('Container abc is restarting, wait until the container is running');
    expect(() => assertRunning('restarting', 'abc', 'attach')).toThrow('container abc is restarting, wait until the container is running');
    expect(() => transition('restarting', 'remove', '/web')).toThrow(
      'cannot remove container "/web": container is restarting: stop the container before removing or force remove',
    );
  });
});
