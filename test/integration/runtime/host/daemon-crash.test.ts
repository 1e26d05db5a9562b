/** The supervisor outlives a daemon killed with SIGKILL; a new daemon recovers the container. */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSpec, setup, Sink, type Env } from './harness.js';
import { until } from '../../../fixtures/wait.js';

let env: Env;
beforeAll(async () => {
  env = await setup();
});
afterAll(() => {
  rmSync(env.root, { recursive: true, force: true });
});

function crashingDaemon(arg: unknown): Promise<{ stdout: string; signal: NodeJS.Signals | null }> {
  const child = path.join(import.meta.dirname, 'daemon-crash.child.ts');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', child, JSON.stringify(arg)],
      { cwd: path.resolve(import.meta.dirname, '../../../..') },
      (err, stdout, stderr) => {
        if (err && !err.signal) throw new Error(`child daemon failed: ${stderr}`);
        resolve({ stdout, signal: err?.signal ?? null });
      },
    );
  });
}

describe('daemon crash', () => {
  it('keeps the container running, logging and collectable after the daemon is SIGKILLed', async () => {
    const s = makeSpec(env, ['sh', '-c', 'echo before; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo after; exit 9']);
    const r = await crashingDaemon({ spec: s, dataRoot: env.dataRoot, runRoot: env.runRoot, disk: env.disk });
    expect(r.signal).toBe('SIGKILL');
    const info = JSON.parse(r.stdout) as { pid: number };
    expect(() => process.kill(info.pid, 0)).not.toThrow();
    await until('first log line', () => existsSync(s.logPath) && readFileSync(s.logPath, 'utf8').includes('before'));

    const iso = env.newIsolation();
    const rec = await iso.recover(s);
    expect(rec).toEqual({ running: { pid: info.pid, startedAt: expect.any(String) } });
    // a new daemon can attach and exec as if nothing happened
    const out = new Sink();
    const att = await iso.attach(s, { stdout: out, stderr: new Sink() });
    const e = await iso.exec(
      s,
      { process: { args: ['touch', '/tmp/go'], env: [], cwd: '/', user: '', tty: false, openStdin: false }, privileged: false },
      { stdout: new Sink(), stderr: new Sink() },
    );
    expect((await e.wait()).exitCode).toBe(0);
    const st = await iso.wait(s);
    await att.done;
    expect(st.exitCode).toBe(9);
    expect(out.text).toBe('after\n');
    const lines = readFileSync(s.logPath, 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { log: string }).log);
    expect(lines).toEqual(['before\n', 'after\n']);
    await iso.remove(s);
    expect(existsSync(s.stateDir)).toBe(false);
  });
});
