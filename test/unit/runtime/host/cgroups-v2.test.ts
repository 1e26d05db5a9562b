/**
 * The daemon's side of cgroups (src/runtime/host/cgroups.ts) on fake cgroupfs trees in a temp
 * dir: which hierarchy a host has, the agent's cgroup config, and the cleanup after a crashed
 * agent, for v2 (unified), v1 and hybrid layouts. The counters `docker stats` shows are read
 * by the agent (native/agent/cgroup.c, native/test/test_cgroup.c).
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cgroupDirs, cgroupFor, detectCgroupVersion, removeCgroup, V1_CONTROLLERS } from '../../../../src/runtime/host/cgroups.js';
import { TvmError } from '../../../../src/errors.js';

let root: string;

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'tvm-cgroups-v2-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A unified (v2) root as the kernel shows it. */
function unified(dir = root): void {
  writeFileSync(path.join(dir, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n');
  writeFileSync(path.join(dir, 'cgroup.subtree_control'), 'cpuset cpu io memory pids\n');
  writeFileSync(path.join(dir, 'cgroup.procs'), '1\n');
}

describe('detectCgroupVersion', () => {
  it('is 2 for a unified root (cgroup.controllers at the top)', () => {
    unified();
    expect(detectCgroupVersion(root)).toBe(2);
  });

  it('is 1 for controllers mounted one per directory, and for a hybrid host (v1 plus an empty unified/)', () => {
    for (const c of V1_CONTROLLERS) mkdirSync(path.join(root, c));
    expect(detectCgroupVersion(root)).toBe(1);
    mkdirSync(path.join(root, 'unified'));
    unified(path.join(root, 'unified'));
    expect(detectCgroupVersion(root)).toBe(1);
  });

  it('is 1 with only the pids hierarchy', () => {
    mkdirSync(path.join(root, 'pids'));
    expect(detectCgroupVersion(root)).toBe(1);
  });

  it('fails with ERR_NO_CGROUPS naming the root when there is neither', () => {
    let err: unknown;
    try {
      detectCgroupVersion(root);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TvmError);
    expect((err as TvmError).code).toBe('ERR_NO_CGROUPS');
    expect((err as TvmError).message).toContain(root);
  });
});

describe('cgroupFor and cgroupDirs on v2', () => {
  it('gives the agent tvm/<id> under the unified root, one directory', () => {
    unified();
    const cg = cgroupFor('abc123', root);
    expect(cg).toEqual({ version: 2, root, path: 'tvm/abc123' });
    // v2 lists the group whether or not it exists yet: there is only one place it can be
    expect(cgroupDirs(cg)).toEqual([path.join(root, 'tvm', 'abc123')]);
  });

  it('on v1 lists only the hierarchies where the group exists', () => {
    for (const c of V1_CONTROLLERS) mkdirSync(path.join(root, c));
    const cg = cgroupFor('abc123', root);
    expect(cg.version).toBe(1);
    expect(cgroupDirs(cg)).toEqual([]);
    mkdirSync(path.join(root, 'memory', 'tvm', 'abc123'), { recursive: true });
    mkdirSync(path.join(root, 'pids', 'tvm', 'abc123'), { recursive: true });
    expect(cgroupDirs(cg)).toEqual([path.join(root, 'memory', 'tvm', 'abc123'), path.join(root, 'pids', 'tvm', 'abc123')]);
  });
});

describe('removeCgroup on v2', () => {
  it('removes the empty group a crashed agent left and keeps the shared tvm/ parent', async () => {
    unified();
    const cg = cgroupFor('c1', root);
    const dir = path.join(root, 'tvm', 'c1');
    mkdirSync(dir, { recursive: true });
    await removeCgroup(cg);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(path.join(root, 'tvm'))).toBe(true);
  });

  it('is a no-op when the group is already gone', async () => {
    unified();
    await expect(removeCgroup(cgroupFor('gone', root))).resolves.toBeUndefined();
  });

  it('refuses a group that still has members with ERR_CGROUP_BUSY naming it', async () => {
    unified();
    const cg = cgroupFor('busy', root);
    const dir = path.join(root, 'tvm', 'busy');
    mkdirSync(dir, { recursive: true });
    // a real cgroupfs answers EBUSY for a populated group; a plain directory with an entry, ENOTEMPTY
    mkdirSync(path.join(dir, 'child'));
    await expect(removeCgroup(cg)).rejects.toMatchObject({ code: 'ERR_CGROUP_BUSY', message: expect.stringContaining(dir) });
    expect(existsSync(dir)).toBe(true);
  });
});
