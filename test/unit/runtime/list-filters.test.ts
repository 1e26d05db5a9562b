import { describe, it, expect } from 'vitest';
import { matchesFilters, matchesLabelFilters, parseUntil, validateListFilters } from '../../../src/runtime/list-filters.js';
import type { ContainerRecord } from '../../../src/runtime/records.js';
import { goErrnoText, startFailedError } from '../../../src/runtime/start-error.js';
import { NotFoundError, TvmError } from '../../../src/errors.js';

function rec(over: Partial<ContainerRecord> & { labels?: Record<string, string>; status?: string; exitCode?: number }): ContainerRecord {
  return {
    id: 'a'.repeat(64),
    name: '/web',
    created: '2026-01-01T00:00:00.000Z',
    image: 'busybox',
    imageId: 'sha256:' + 'b'.repeat(64),
    config: { Labels: over.labels ?? {} },
    state: { status: over.status ?? 'running', exitCode: over.exitCode ?? 0 },
    spec: { isolation: 'container', network: 'bridge' },
    mounts: [],
    ...over,
  } as unknown as ContainerRecord;
}

describe('container list filters', () => {
  it("validates keys and values with Docker's messages", () => {
    expect(() => validateListFilters({ status: ['running'], exited: ['0'], label: ['a=b'] })).not.toThrow();
    expect(() => validateListFilters({ colour: ['red'] })).toThrow("invalid filter 'colour'");
    expect(() => validateListFilters({ status: ['asleep'] })).toThrow("invalid filter 'status=asleep'");
    expect(() => validateListFilters({ exited: ['x'] })).toThrow("invalid filter 'exited=x'");
  });

  it('matches status, name (RE2, bad patterns match nothing), id, labels, ancestor, isolation', () => {
    const r = rec({ labels: { app: 'web', tier: '' } });
    const none = () => undefined;
    expect(matchesFilters(r, { status: ['running'] }, none)).toBe(true);
    expect(matchesFilters(r, { status: ['exited'] }, none)).toBe(false);
    expect(matchesFilters(r, { name: ['^we'] }, none)).toBe(true);
    expect(matchesFilters(r, { name: ['('] }, none)).toBe(false);
    expect(matchesFilters(r, { id: ['aaa'] }, none)).toBe(true);
    expect(matchesFilters(r, { label: ['app=web', 'tier'] }, none)).toBe(true);
    expect(matchesFilters(r, { 'label!': ['app'] }, none)).toBe(false);
    expect(matchesFilters(r, { ancestor: ['busybox'] }, none)).toBe(true);
    expect(matchesFilters(r, { ancestor: ['b'.repeat(12)] }, none)).toBe(true);
    expect(matchesFilters(r, { isolation: ['process'] }, none)).toBe(true);
    expect(matchesFilters(r, { network: ['mynet'] }, none, () => ['mynet'])).toBe(true);
    expect(matchesLabelFilters(r, ['app=db'], [])).toBe(false);
  });

  it('parses until as seconds, a duration or a date', () => {
    expect(parseUntil('10')).toBe(10_000);
    expect(parseUntil('2026-01-01T00:00:00Z')).toBe(Date.parse('2026-01-01T00:00:00Z'));
    expect(() => parseUntil('soon')).toThrow("invalid filter 'until=soon'");
  });
});

describe('start errors', () => {
  it('words errno texts as Go does, so the docker CLI picks exit codes 126/127', () => {
    expect(goErrnoText('exec: No such file or directory; Permission denied')).toBe('exec: no such file or directory; permission denied');
  });

  it("keeps the isolation's code and status, else a 400 ERR_START_FAILED", () => {
    const id = 'c'.repeat(64);
    const kept = startFailedError(id, 'gone', new NotFoundError('gone', 'ERR_DISK_NOT_FOUND'));
    expect([kept.code, kept.status, kept.message]).toEqual([
      'ERR_DISK_NOT_FOUND',
      404,
      `failed to start container ${'c'.repeat(12)}: gone`,
    ]);
    const plain = startFailedError(id, 'boom', new Error('boom'));
    expect(plain).toBeInstanceOf(TvmError);
    expect([plain.code, plain.status]).toEqual(['ERR_START_FAILED', 400]);
  });
});
