/**
 * Which cgroup hierarchy this host has, for the agent's spec: v2 when /sys/fs/cgroup is the
 * unified tree (cgroup.controllers at its root), v1 when controllers are mounted one per
 * directory. The agent creates `tvm/<id>` under it.
 */
import { existsSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import path from 'node:path';
import { TvmError } from '../../errors.js';

export const CGROUP_ROOT = '/sys/fs/cgroup';
export const V1_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'pids', 'cpuset', 'freezer', 'blkio', 'devices'] as const;

export interface CgroupConfig {
  version: 1 | 2;
  root: string;
  path: string;
}

export function detectCgroupVersion(root = CGROUP_ROOT): 1 | 2 {
  if (existsSync(path.join(root, 'cgroup.controllers'))) return 2;
  if (existsSync(path.join(root, 'memory')) || existsSync(path.join(root, 'pids'))) return 1;
  throw new TvmError(
    'ERR_NO_CGROUPS',
    `no cgroup hierarchy found at ${root} (neither v2 cgroup.controllers nor v1 controller directories)`,
  );
}

export function cgroupFor(containerId: string, root = CGROUP_ROOT): CgroupConfig {
  return { version: detectCgroupVersion(root), root, path: `tvm/${containerId}` };
}

/** Every directory the agent may have created for this container. */
export function cgroupDirs(cg: CgroupConfig): string[] {
  if (cg.version === 2) return [path.join(cg.root, cg.path)];
  return V1_CONTROLLERS.map((c) => path.join(cg.root, c, cg.path)).filter((d) => existsSync(d));
}

/** Removes what a crashed agent left behind; the groups must be empty. */
export async function removeCgroup(cg: CgroupConfig): Promise<void> {
  for (const d of cgroupDirs(cg)) {
    try {
      await rmdir(d);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new TvmError('ERR_CGROUP_BUSY', `cannot remove cgroup ${d}: ${code}`, 500, { cause: e });
    }
  }
}
