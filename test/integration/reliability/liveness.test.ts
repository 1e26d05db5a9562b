/**
 * Item 5: liveness must not be fooled by a zombie. A SIGKILLed supervisor whose parent does not
 * reap (tvm daemon as PID 1 of a container, a subreaper) stays a zombie: kill(pid, 0) succeeds
 * on it, so `--restart always` found the old supervisor "alive" and never started a new one.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { processAlive, processAliveSync, procState } from '../../../src/process-alive.js';
import { supervisorPid } from '../../../src/runtime/host/supervisor.js';
import { REPO } from '../../fixtures/daemon.js';
import { until } from '../../fixtures/wait.js';

const AGENT = path.join(REPO, 'native/build/tvm-agent');

/** A zombie: `sleep 0.3` exits, and its parent (exec'ed into sleep) never reaps it. */
async function zombie(): Promise<{ pid: number; parent: ChildProcess }> {
  const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const pid = await new Promise<number>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  await until('the child to become a zombie', async () => procState(await readFile(`/proc/${pid}/stat`, 'utf8')) === 'Z');
  return { pid, parent };
}

describe('process liveness (zombies are dead)', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });

  it('processAlive: a zombie is not alive, though kill(pid, 0) says it is', async () => {
    const z = await zombie();
    cleanup.push(async () => void z.parent.kill('SIGKILL'));
    expect(() => process.kill(z.pid, 0)).not.toThrow();
    expect(await processAlive(z.pid)).toBe(false);
    expect(processAliveSync(z.pid)).toBe(false);
    expect(await processAlive(process.pid)).toBe(true);
    expect(procState('12 (a) b) c) S 1 2')).toBe('S');
  });

  it('a supervisor pid file naming a zombie: the daemon and the agent both start a new supervisor', async () => {
    if (!existsSync(AGENT)) throw new Error(`missing ${AGENT}: run make -C native`);
    const z = await zombie();
    cleanup.push(async () => void z.parent.kill('SIGKILL'));
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rel-live-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(path.join(dir, 'agent.pid'), `${z.pid}\n`);
    expect(await supervisorPid(dir)).toBeUndefined();
    const r = await execa(AGENT, ['supervise', '--state-dir', dir, '--linger', '1'], { reject: false, timeout: 30_000 });
    expect(r.stderr).not.toContain('already running');
    expect(r.exitCode).toBe(0);
    const fresh = Number((await readFile(path.join(dir, 'agent.pid'), 'utf8')).trim());
    expect(fresh).not.toBe(z.pid);
    cleanup.unshift(async () => {
      // the supervisor we started: ended by its pid
      if (await processAlive(fresh)) process.kill(fresh, 'SIGKILL');
    });
    expect(await supervisorPid(dir)).toBe(fresh);
  });
});
