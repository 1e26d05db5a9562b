/**
 * The agent's cgroup v2 path. This host is v1 for controllers, but a cgroup2 hierarchy is
 * mounted (hybrid, no controllers): membership, freeze/thaw, process listing and removal are
 * core v2 features and work there, as does the eBPF device filter. Limits need controllers.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostIsolation } from '../../../../src/runtime/host/isolation.js';
import { AGENT, fakeImages, makeSpec, run, setup, Sink, type Env } from './harness.js';
import { until } from '../../../fixtures/wait.js';

function cgroup2Mount(): string {
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2') return f[1]!;
  }
  throw new Error("no cgroup2 hierarchy is mounted on this host (needed to test the agent's v2 path)");
}

let env: Env;
let root: string;
let iso: HostIsolation;

beforeAll(async () => {
  env = await setup();
  root = cgroup2Mount();
  iso = new HostIsolation({
    dataRoot: env.dataRoot,
    runRoot: env.runRoot,
    agentPath: AGENT,
    ...fakeImages(env.disk),
    cgroup: { version: 2, root },
  });
});

afterAll(() => {
  rmSync(env.root, { recursive: true, force: true });
});

describe('HostIsolation on a cgroup v2 hierarchy', () => {
  // Issue 16 item 10: the container's own group is its /sys/fs/cgroup, read-only, as Docker's
  // cgroup namespace gives it (runtimes read their limits there).
  it('shows the container its own group at /sys/fs/cgroup, read-only', async () => {
    const s = makeSpec(env, [
      'sh',
      '-c',
      'cat /sys/fs/cgroup/cgroup.procs; ls /sys/fs/cgroup | grep -c "^cgroup.freeze$"; echo 1 > /sys/fs/cgroup/cgroup.freeze || echo refused',
    ]);
    const r = await run(env, s, iso);
    const out = r.stdout.trim().split('\n');
    expect(out[0]).toBe('1');
    expect(out).toContain('refused');
    expect(r.stderr).toContain('Read-only file system');
    await iso.remove(s);
  });

  it('puts the workload in <root>/tvm/<id>, freezes and thaws it with cgroup.freeze, lists and removes it', async () => {
    const s = makeSpec(env, ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/c; sleep 0.02; done']);
    await iso.create(s);
    const info = await iso.start(s);
    const dir = path.join(root, 'tvm', s.id);
    const procs = readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number);
    expect(procs).toContain(info.pid);
    const counter = path.join(s.stateDir, 'upper/tmp/c');
    const read = () => {
      try {
        return Number(readFileSync(counter, 'utf8'));
      } catch {
        return 0;
      }
    };
    await until('the counter to run', () => read() > 2);
    await iso.pause(s);
    expect(readFileSync(path.join(dir, 'cgroup.events'), 'utf8')).toContain('frozen 1');
    const a = read();
    await new Promise((r) => setTimeout(r, 200));
    expect(read()).toBe(a);
    await iso.resume(s);
    await until('the counter to advance', () => read() > a);
    expect((await iso.top(s)).some((p) => p.pid === info.pid)).toBe(true);
    // the eBPF device filter (the v1 devices controller is not in play for this container)
    const out = new Sink();
    const e = await iso.exec(
      s,
      {
        process: {
          args: [
            'sh',
            '-c',
            'mknod /tmp/disk b 7 0 && echo made; head -c 1 /tmp/disk >/dev/null; echo read=$?; head -c 1 /dev/urandom | wc -c',
          ],
          env: [],
          cwd: '/',
          user: '',
          tty: false,
          openStdin: false,
        },
        privileged: false,
      },
      { stdout: out, stderr: new Sink() },
    );
    await e.wait();
    await e.attachment.done;
    expect(out.text).toBe('made\nread=1\n1\n');
    await iso.kill(s, 'KILL');
    expect((await iso.wait(s)).exitCode).toBe(137);
    await iso.remove(s);
    expect(existsSync(dir)).toBe(false);
  });
});
