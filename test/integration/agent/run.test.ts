/**
 * `tvm-agent run --spec FILE` on this host (cgroup v1; v2 is proven in our guest kernel by
 * cgroup-v2-tcg.test.ts): specs from the daemon's builder, a busybox rootfs directory, and what
 * a `runc run`-like foreground mode owes its caller: the container's stdio as its own, signals
 * forwarded, Docker's exit status (137 for an OOM kill), the state dir's pid and exit.json, and
 * no cgroup left behind.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { agentSpec, validateSpec } from '../../../src/runtime/host/spec.js';
import { V1_CONTROLLERS, type CgroupConfig } from '../../../src/runtime/host/cgroups.js';
import type { ProcessSpec, Resources } from '../../../src/runtime/types.js';
import { busyboxRootfsEntries, writeRootfs } from '../../fixtures/rootfs.js';
import { containerSpec } from '../../fixtures/spec.js';

const NATIVE = path.resolve(import.meta.dirname, '../../../native');
const MEMHOG = path.resolve(import.meta.dirname, '../../fixtures/guest-programs/memhog.c');
const CG_ROOT = '/sys/fs/cgroup';
const CG_PARENT = `tvm-run-test-${process.pid}`;

let dir: string;
let agent: string;
let lower: string;

function compiler(): string {
  for (const cc of ['musl-gcc', 'gcc']) {
    try {
      execFileSync(cc, ['--version'], { stdio: 'ignore' });
      return cc;
    } catch {
      // try the next one
    }
  }
  throw new Error('missing musl-gcc and gcc (apt-get install musl-tools gcc): needed to build the agent');
}

/** The busybox rootfs (test/fixtures/rootfs.ts) as a directory, plus the memory hog. */
function writeRootfsWithHog(to: string): void {
  writeRootfs(to, busyboxRootfsEntries());
  execFileSync(compiler(), ['-static', '-O2', '-o', path.join(to, 'memhog'), MEMHOG], { stdio: 'pipe' });
}

let seq = 0;
/** Writes a spec made by the daemon's builder; returns its path and its state dir. */
function spec(process: Partial<ProcessSpec> & { args: string[] }, resources: Resources = {}): { file: string; state: string; id: string } {
  const id = `run${++seq}`;
  const stateDir = path.join(dir, id);
  const s = containerSpec(
    { id, name: id, hostname: id, imageId: 'sha256:' + '0'.repeat(64), resources, stateDir },
    { env: ['PATH=/bin'], ...process },
  );
  validateSpec(s);
  const cg: CgroupConfig = { version: 1, root: CG_ROOT, path: `${CG_PARENT}/${id}` };
  const file = path.join(dir, `${id}.json`);
  writeFileSync(file, JSON.stringify(agentSpec(s, lower, cg)));
  return { file, state: path.join(dir, `${id}.state`), id };
}

function cgroupLeft(id: string): string[] {
  return V1_CONTROLLERS.map((c) => path.join(CG_ROOT, c, CG_PARENT, id)).filter((d) => existsSync(d));
}

beforeAll(() => {
  dir = mkdtempSync('/tmp/tvm-run-');
  const build = path.join(dir, 'build');
  execFileSync('make', ['-s', '-C', NATIVE, `BUILD=${build}`, `${build}/tvm-agent`], { stdio: 'pipe' });
  agent = path.join(build, 'tvm-agent');
  lower = path.join(dir, 'lower');
  writeRootfsWithHog(lower);
});

afterAll(() => {
  // the per-container groups are the agent's to remove (checked above); the parent is ours
  for (const c of V1_CONTROLLERS) {
    const d = path.join(CG_ROOT, c, CG_PARENT);
    if (existsSync(d)) rmdirSync(d);
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('tvm-agent run (foreground, host cgroup v1)', () => {
  it('gives the container its stdin, stdout and stderr, and exits with its code', async () => {
    const s = spec({ args: ['sh', '-c', 'echo out; echo err >&2; cat; exit 3'], openStdin: true }, { memory: 64 << 20 });
    const r = await execa(agent, ['run', '--spec', s.file, '--state-dir', s.state], { input: 'from stdin\n', reject: false });
    expect(r.stdout).toBe('out\nfrom stdin');
    expect(r.stderr).toBe('err');
    expect(r.exitCode).toBe(3);
    expect(JSON.parse(readFileSync(path.join(s.state, 'exit.json'), 'utf8'))).toMatchObject({ exitCode: 3, oomKilled: false });
    expect(Number(readFileSync(path.join(s.state, 'pid'), 'utf8'))).toBeGreaterThan(0);
    expect(cgroupLeft(s.id)).toEqual([]);
  });

  it('without an open stdin the container reads /dev/null', async () => {
    const s = spec({ args: ['sh', '-c', 'cat; echo done'] });
    const r = await execa(agent, ['run', '--spec', s.file], { input: 'not for the container\n', reject: false });
    expect(r.stdout).toBe('done');
    expect(r.exitCode).toBe(0);
  });

  it('with a tty the container gets a terminal and its output comes through the pty', async () => {
    const s = spec({ args: ['sh', '-c', 'test -t 0 && test -t 1 && echo on-a-tty'], tty: true });
    const r = await execa(agent, ['run', '--spec', s.file], { stdin: 'ignore', reject: false, stripFinalNewline: false });
    // the pty's line discipline turns \n into \r\n, as docker run -t shows it
    expect(r.stdout).toBe('on-a-tty\r\n');
    expect(r.exitCode).toBe(0);
  });

  it('with a tty and an open stdin our input reaches the container through the pty', async () => {
    const s = spec({ args: ['sh', '-c', 'read line; echo "got $line"'], tty: true, openStdin: true });
    const r = await execa(agent, ['run', '--spec', s.file], { input: 'hello\n', reject: false, stripFinalNewline: false });
    // the terminal echoes the input line, then the container answers
    expect(r.stdout).toBe('hello\r\ngot hello\r\n');
    expect(r.exitCode).toBe(0);
  });

  it('forwards SIGTERM to the container, whose exit status is the result', async () => {
    const s = spec({ args: ['sh', '-c', 'trap "exit 7" TERM; echo ready; while :; do sleep 0.05; done'] });
    const p = execa(agent, ['run', '--spec', s.file], { reject: false });
    await new Promise<void>((resolve) => {
      p.stdout?.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
    });
    p.kill('SIGTERM');
    const r = await p;
    expect(r.exitCode).toBe(7);
    expect(cgroupLeft(s.id)).toEqual([]);
  });

  it('--memory: an OOM-killed container exits 137 and exit.json says oomKilled', async () => {
    const s = spec({ args: ['/memhog', '256'] }, { memory: 16 << 20, memorySwap: 16 << 20 });
    const r = await execa(agent, ['run', '--spec', s.file, '--state-dir', s.state], { reject: false });
    expect(r.stdout).not.toContain('MEMHOG survived');
    expect(r.exitCode).toBe(137);
    expect(JSON.parse(readFileSync(path.join(s.state, 'exit.json'), 'utf8'))).toMatchObject({ exitCode: 137, oomKilled: true });
    expect(cgroupLeft(s.id)).toEqual([]);
  });

  it("a missing executable is Docker's 127 with its message, and leaves no cgroup", async () => {
    const s = spec({ args: ['no-such-program'] }, { pidsLimit: 10 });
    const r = await execa(agent, ['run', '--spec', s.file], { reject: false });
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toContain('exec: "no-such-program": executable file not found in $PATH');
    expect(cgroupLeft(s.id)).toEqual([]);
  });

  it('a bad spec is an agent error (125) naming the field; bad arguments are usage errors (2)', async () => {
    const file = path.join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ id: 'x', surprise: true }));
    const r = await execa(agent, ['run', '--spec', file], { reject: false });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toContain('surprise');
    const u = await execa(agent, ['run', '--spec'], { reject: false });
    expect(u.exitCode).toBe(2);
    expect(u.stderr).toContain('--spec needs a value');
  });

  it('the container inherits no descriptor of its caller beyond stdio (as runc: only 0, 1, 2)', async () => {
    const s = spec({ args: ['sh', '-c', 'ls /proc/$$/fd; true'] }); // ls lists the shell's descriptors, not its own
    // fd 3 of the agent: a pipe without FD_CLOEXEC, as a caller's stray descriptor would be
    const r = await execa(agent, ['run', '--spec', s.file], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], reject: false });
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual(['0', '1', '2']);
    expect(r.exitCode).toBe(0);
  });

  it('a container running as another user still dies with its agent (the parent-death signal survives the uid change)', async () => {
    const s = spec({ args: ['sh', '-c', 'echo ready; exec sleep 1000'], user: '1000:1000' });
    const p = execa(agent, ['run', '--spec', s.file, '--state-dir', s.state], { reject: false });
    await new Promise<void>((resolve) => {
      p.stdout?.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
    });
    const pid = Number(readFileSync(path.join(s.state, 'pid'), 'utf8'));
    p.kill('SIGKILL');
    await p;
    const alive = (): boolean => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    // the kernel delivers the signal as the agent exits; give the orphan's reaper a moment
    for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
    const survived = alive();
    if (survived) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
    // the killed agent could not remove its cgroup: ours to clean
    for (const d of cgroupLeft(s.id)) rmdirSync(d);
    expect(survived).toBe(false);
  });

  it('in a user namespace the init can still write its own /proc/self files (--oom-score-adj)', async () => {
    const s = spec({ args: ['sh', '-c', 'cat /proc/self/oom_score_adj'] });
    // becoming the namespace's root makes the process undumpable, and an undumpable process's
    // /proc/self belongs to the host's root, which the namespace cannot write
    const map = [{ containerID: 0, hostID: 300000, size: 65536 }];
    const a = JSON.parse(readFileSync(s.file, 'utf8'));
    writeFileSync(s.file, JSON.stringify({ ...a, oomScoreAdj: 500, userns: { uidMap: map, gidMap: map } }));
    // the remapped root must reach the rootfs through our (mkdtemp: 0700) directory
    chmodSync(dir, 0o755);
    const r = await execa(agent, ['run', '--spec', s.file], { reject: false });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('500');
    expect(r.exitCode).toBe(0);
    expect(cgroupLeft(s.id)).toEqual([]);
  });

  it('the container starts with no signal ignored (the agent ignores SIGPIPE for itself only)', async () => {
    const s = spec({ args: ['grep', 'SigIgn', '/proc/self/status'] });
    // a caller's ignored SIGHUP (nohup) must not reach the container either
    const r = await execa('sh', ['-c', 'trap "" HUP; exec "$0" "$@"', agent, 'run', '--spec', s.file], { reject: false });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('SigIgn:\t0000000000000000');
    expect(r.exitCode).toBe(0);
  });

  it('pause and resume freeze and thaw the container of a running `run`', async () => {
    const s = spec({ args: ['sh', '-c', 'trap "exit 0" TERM; echo ready; while :; do sleep 0.05; done'] });
    const p = execa(agent, ['run', '--spec', s.file], { reject: false });
    await new Promise<void>((resolve) => {
      p.stdout?.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
    });
    const state = path.join(CG_ROOT, 'freezer', CG_PARENT, s.id, 'freezer.state');
    await execa(agent, ['pause', '--spec', s.file]);
    expect(readFileSync(state, 'utf8').trim()).toBe('FROZEN');
    await execa(agent, ['resume', '--spec', s.file]);
    expect(readFileSync(state, 'utf8').trim()).toBe('THAWED');
    p.kill('SIGTERM');
    expect((await p).exitCode).toBe(0);
    expect(cgroupLeft(s.id)).toEqual([]);
  });
});
