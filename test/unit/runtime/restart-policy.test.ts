import { describe, it, expect } from 'vitest';
import { parseRestartPolicy, shouldRestart, shouldStartOnBoot, type RestartPolicy } from '../../../src/runtime/restart-policy.js';
import { nextBackoff, BACKOFF_INITIAL_MS, BACKOFF_MAX_MS } from '../../../src/runtime/backoff.js';

const facts = { exitCode: 1, manuallyStopped: false, cancelled: false, restartCount: 0 };
const p = (Name: RestartPolicy['Name'], MaximumRetryCount = 0): RestartPolicy => ({ Name, MaximumRetryCount });

describe('restart policy validation (Engine API messages)', () => {
  it('normalizes the accepted forms', () => {
    expect(parseRestartPolicy(undefined)).toEqual(p('no'));
    expect(parseRestartPolicy(null)).toEqual(p('no'));
    expect(parseRestartPolicy({ Name: '', MaximumRetryCount: 5 })).toEqual(p('no'));
    expect(parseRestartPolicy({ Name: 'always' })).toEqual(p('always'));
    expect(parseRestartPolicy({ Name: 'unless-stopped' })).toEqual(p('unless-stopped'));
    expect(parseRestartPolicy({ Name: 'on-failure' })).toEqual(p('on-failure'));
    expect(parseRestartPolicy({ Name: 'on-failure', MaximumRetryCount: 2 })).toEqual(p('on-failure', 2));
  });
  it('refuses what Docker refuses, with its words', () => {
    expect(() => parseRestartPolicy({ Name: 'always', MaximumRetryCount: 3 })).toThrow(
      "invalid restart policy: maximum retry count can only be used with 'on-failure'",
    );
    expect(() => parseRestartPolicy({ Name: 'no', MaximumRetryCount: -1 })).toThrow(
      "can only be used with 'on-failure' and cannot be negative",
    );
    expect(() => parseRestartPolicy({ Name: 'on-failure', MaximumRetryCount: -1 })).toThrow(
      'invalid restart policy: maximum retry count cannot be negative',
    );
    expect(() => parseRestartPolicy({ Name: 'bogus' })).toThrow(
      "invalid restart policy: unknown policy 'bogus'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'",
    );
    expect(() => parseRestartPolicy({ Name: 'bogus' })).toThrow(expect.objectContaining({ status: 400 }));
  });
});

describe('restart decision after an exit', () => {
  it('no never restarts', () => {
    expect(shouldRestart(p('no'), facts)).toBe(false);
    expect(shouldRestart(p('no'), { ...facts, exitCode: 0 })).toBe(false);
  });
  it('always restarts whatever the exit code, unless the exit was asked for', () => {
    expect(shouldRestart(p('always'), { ...facts, exitCode: 0 })).toBe(true);
    expect(shouldRestart(p('always'), { ...facts, exitCode: 137 })).toBe(true);
    expect(shouldRestart(p('always'), { ...facts, manuallyStopped: true })).toBe(true);
    expect(shouldRestart(p('always'), { ...facts, cancelled: true })).toBe(false);
  });
  it('unless-stopped restarts until the user stops it', () => {
    expect(shouldRestart(p('unless-stopped'), { ...facts, exitCode: 0 })).toBe(true);
    expect(shouldRestart(p('unless-stopped'), { ...facts, manuallyStopped: true })).toBe(false);
  });
  it('on-failure restarts on a non-zero exit, at most N times (0 = no maximum)', () => {
    expect(shouldRestart(p('on-failure'), { ...facts, exitCode: 0 })).toBe(false);
    expect(shouldRestart(p('on-failure'), { ...facts, restartCount: 1000 })).toBe(true);
    expect(shouldRestart(p('on-failure', 2), { ...facts, restartCount: 0 })).toBe(true);
    expect(shouldRestart(p('on-failure', 2), { ...facts, restartCount: 1 })).toBe(true);
    expect(shouldRestart(p('on-failure', 2), { ...facts, restartCount: 2 })).toBe(false);
    expect(shouldRestart(p('on-failure', 2), { ...facts, cancelled: true })).toBe(false);
    // a kill with a signal other than the stop signal does not cancel: on-failure still restarts
    expect(shouldRestart(p('on-failure'), { ...facts, manuallyStopped: true })).toBe(true);
  });
  it('at daemon start: always comes back even after docker stop; unless-stopped only if not stopped', () => {
    const boot = { exitCode: 137, manuallyStopped: true, restartCount: 0 };
    expect(shouldStartOnBoot(p('always'), boot)).toBe(true);
    expect(shouldStartOnBoot(p('unless-stopped'), boot)).toBe(false);
    expect(shouldStartOnBoot(p('unless-stopped'), { ...boot, manuallyStopped: false })).toBe(true);
    // moby's restart manager reads HasBeenManuallyStopped only for unless-stopped: a stopped
    // on-failure container that exited non-zero comes back at daemon start, as Docker documents
    // ("the restart policy is ignored until the Docker daemon restarts")
    expect(shouldStartOnBoot(p('on-failure'), boot)).toBe(true);
    expect(shouldStartOnBoot(p('on-failure'), { ...boot, exitCode: 0 })).toBe(false);
    expect(shouldStartOnBoot(p('on-failure', 3), { ...boot, manuallyStopped: false, restartCount: 3 })).toBe(false);
    expect(shouldStartOnBoot(p('no'), { ...boot, manuallyStopped: false })).toBe(false);
  });
});

describe('restart back-off', () => {
  it('starts at 100 ms and doubles, capped at one minute', () => {
    const seq: number[] = [];
    let d = 0;
    for (let i = 0; i < 14; i++) seq.push((d = nextBackoff(d, 50)));
    expect(seq.slice(0, 5)).toEqual([100, 200, 400, 800, 1600]);
    expect(seq[9]).toBe(51_200);
    expect(seq[10]).toBe(BACKOFF_MAX_MS);
    expect(seq[13]).toBe(BACKOFF_MAX_MS);
  });
  it('resets after a run of 10 s or more', () => {
    expect(nextBackoff(6400, 9_999)).toBe(12_800);
    expect(nextBackoff(6400, 10_000)).toBe(BACKOFF_INITIAL_MS);
    expect(nextBackoff(BACKOFF_MAX_MS, 60_000)).toBe(BACKOFF_INITIAL_MS);
  });
});
