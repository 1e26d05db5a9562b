/**
 * A supervisor that dies while a child is still waiting for its sync byte (between the clone and
 * the cgroup join) must not leave that child behind for ever. The window is held open with a fake
 * cgroup v1 tree whose cgroup.procs is a FIFO: the agent's join blocks opening it, the child waits
 * on the sync pipe, and the test SIGKILLs the agent there.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, unixConnector } from '../../../src/guest-agent/client.js';
import { spawnSupervisor, supervisorPid } from '../../../src/runtime/host/supervisor.js';
import { agentSpec, validateSpec } from '../../../src/runtime/host/spec.js';
import type { CgroupConfig } from '../../../src/runtime/host/cgroups.js';
import { until } from '../../fixtures/wait.js';
import { containerSpec } from '../../fixtures/spec.js';

const NATIVE = path.resolve(import.meta.dirname, '../../../native');
let dir: string;
let agent: string;

beforeAll(() => {
  dir = mkdtempSync('/tmp/tvm-window-');
  const build = path.join(dir, 'build');
  execFileSync('make', ['-s', '-C', NATIVE, `BUILD=${build}`, `${build}/tvm-agent`], { stdio: 'pipe' });
  agent = path.join(build, 'tvm-agent');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('agent death during container setup', () => {
  it('the waiting child exits instead of blocking on the sync pipe for ever', async () => {
    const state = path.join(dir, 'state');
    const cgRoot = path.join(dir, 'cgroup');
    mkdirSync(state);
    mkdirSync(path.join(cgRoot, 'memory'), { recursive: true });
    const s = containerSpec(
      { id: 'w1', name: 'w1', hostname: 'w1', imageId: 'sha256:' + '0'.repeat(64), stateDir: state },
      { args: ['true'], env: ['PATH=/bin'] },
    );
    validateSpec(s);
    const cg: CgroupConfig = { version: 1, root: cgRoot, path: 'tvm/w1' };
    await spawnSupervisor(agent, state, 30);
    const pid = (await supervisorPid(state))!;
    const c = await AgentClient.connect(unixConnector(path.join(state, 'agent.sock')));
    let child = 0;
    try {
      await c.create(agentSpec(s, path.join(dir, 'lower'), cg));
      const group = path.join(cgRoot, 'memory', 'tvm', 'w1');
      expect(existsSync(group)).toBe(true);
      // the join's open(O_WRONLY) of this FIFO blocks until a reader comes: none will
      execFileSync('mkfifo', [path.join(group, 'cgroup.procs')]);
      // never settles while the FIFO blocks the join; the test watches the child, not this call
      c.start().catch(() => {});
      await until('the agent to fork', () => children(pid).length > 0);
      child = children(pid)[0] ?? 0;
      expect(child).toBeGreaterThan(0);
      process.kill(pid, 'SIGKILL');
      await until('the agent to die', () => !alive(pid));
      await until('the waiting child to exit', () => !alive(child));
      expect(alive(child)).toBe(false);
    } finally {
      c.close();
      if (child && alive(child)) process.kill(child, 'SIGKILL');
    }
  });
});
