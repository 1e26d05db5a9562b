/** bin/tvm.js runs dist/ only while it is the build of the sources as they are. */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { distIsFresh } from '../../../bin/dist-fresh.js';
import { STAMP, type BuildStamp } from '../../../scripts/build-js.js';

let root: string;
const fresh = (): boolean => distIsFresh(root);
const source = (rel: string, mtimeMs: number) => {
  const f = path.join(root, 'src', rel);
  mkdirSync(path.dirname(f), { recursive: true });
  writeFileSync(f, 'export {};\n');
  utimesSync(f, mtimeMs / 1000, mtimeMs / 1000);
};
const stamp = (s: BuildStamp) => writeFileSync(path.join(root, 'dist', STAMP), JSON.stringify(s));

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'tvm-cli-dist-fresh-'));
  mkdirSync(path.join(root, 'dist'));
  source('a.ts', 1_000_000);
  source('cli/b.ts', 2_000_000);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('distIsFresh', () => {
  it('is fresh when the build started after every source changed and saw them all', () => {
    stamp({ startedMs: 3_000_000, sources: 2 });
    expect(fresh()).toBe(true);
  });
  it('is stale without a build, with a source changed since, or with one added or removed', () => {
    expect(fresh()).toBe(false);
    stamp({ startedMs: 1_500_000, sources: 2 });
    expect(fresh()).toBe(false);
    stamp({ startedMs: 3_000_000, sources: 3 });
    expect(fresh()).toBe(false);
    stamp({ startedMs: 3_000_000, sources: 1 });
    expect(fresh()).toBe(false);
  });
  it('counts .ts files only', () => {
    writeFileSync(path.join(root, 'src', 'README.md'), '');
    stamp({ startedMs: 3_000_000, sources: 2 });
    expect(fresh()).toBe(true);
  });
});
