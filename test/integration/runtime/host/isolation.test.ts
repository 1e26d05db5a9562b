import { existsSync, readFileSync, rmSync } from 'node:fs';
import type { Readable } from 'node:stream';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidParameterError } from '../../../../src/errors.js';
import { mountPoints } from '../../../../src/runtime/host/base-mounts.js';
import { cgroupDirs, cgroupFor } from '../../../../src/runtime/host/cgroups.js';
import { supervisorPid } from '../../../../src/runtime/host/supervisor.js';
import { busyboxRootfsEntries } from '../../../fixtures/rootfs.js';
import { makeSpec, run, setup, Sink, type Env } from './harness.js';
import { until } from '../../../fixtures/wait.js';

let env: Env;
const made: { spec: ReturnType<typeof makeSpec> }[] = [];

beforeAll(async () => {
  env = await setup();
});

afterAll(async () => {
  for (const m of made) {
    // teardown is best effort: a test may already have killed or removed its container
    await env.iso.kill(m.spec, 'KILL').catch(() => {});
    await env.iso.wait(m.spec).catch(() => {});
    await env.iso.remove(m.spec).catch(() => {});
  }
  rmSync(env.root, { recursive: true, force: true });
});

function spec(args: string[], over = {}, proc = {}) {
  const s = makeSpec(env, args, over, proc);
  made.push({ spec: s });
  return s;
}

function logLines(s: ReturnType<typeof makeSpec>) {
  return readFileSync(s.logPath, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { log: string; stream: string; time: string });
}

describe('HostIsolation: run', () => {
  it('runs echo hi: stdout captured and log.jsonl in json-file format', async () => {
    const s = spec(['echo', 'hi']);
    const r = await run(env, s);
    expect(r.status.exitCode).toBe(0);
    expect(r.status.oomKilled).toBe(false);
    expect(r.stdout).toBe('hi\n');
    expect(r.info.pid).toBeGreaterThan(1);
    const lines = logLines(s);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.log).toBe('hi\n');
    expect(lines[0]!.stream).toBe('stdout');
    expect(lines[0]!.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  });

  it('separates stderr from stdout, in the log too', async () => {
    const s = spec(['sh', '-c', 'echo out; echo err >&2']);
    const r = await run(env, s);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toBe('err\n');
    expect(
      logLines(s)
        .map((l) => `${l.stream}:${l.log}`)
        .sort(),
    ).toEqual(['stderr:err\n', 'stdout:out\n']);
  });

  it('reports exit codes', async () => {
    const r = await run(env, spec(['sh', '-c', 'exit 3']));
    expect(r.status.exitCode).toBe(3);
  });

  it('reports 128+N for a workload killed by signal N (SIGKILL -> 137)', async () => {
    const s = spec(['sleep', '1000']);
    await env.iso.create(s);
    await env.iso.start(s);
    await env.iso.kill(s, 'SIGKILL');
    const st = await env.iso.wait(s);
    expect(st.exitCode).toBe(137);
  });

  it("fails start with Docker's error and exit 127 for a missing executable", async () => {
    const s = spec(['nosuchcmd']);
    await env.iso.create(s);
    await expect(env.iso.start(s)).rejects.toThrow('exec: "nosuchcmd": executable file not found in $PATH');
    const st = await env.iso.wait(s);
    expect(st.exitCode).toBe(127);
    expect(st.error).toContain('executable file not found in $PATH');
  });

  it('reports 126 for a file that is not executable', async () => {
    const s = spec(['/etc/passwd']);
    await env.iso.create(s);
    await expect(env.iso.start(s)).rejects.toThrow('permission denied');
    expect((await env.iso.wait(s)).exitCode).toBe(126);
  });

  it('resolves --user from the image, sets HOME, supplementary groups and creates the workdir', async () => {
    const r = await run(env, spec(['sh', '-c', 'id; pwd; echo $HOME; echo $HOSTNAME'], {}, { user: 'app', cwd: '/tmp/work' }));
    const [id, pwd, home, hostname] = r.stdout.trim().split('\n');
    expect(id).toBe('uid=1000(app) gid=1000(app) groups=50(staff),1000(app)');
    expect(pwd).toBe('/tmp/work');
    expect(home).toBe('/home/app');
    expect(hostname).toBe('box');
  });

  it('accepts uid:gid and fails clearly for an unknown user', async () => {
    const r = await run(env, spec(['id'], {}, { user: '4242:50' }));
    expect(r.stdout.trim()).toBe('uid=4242 gid=50(staff) groups=50(staff)');
    const s = spec(['id'], {}, { user: 'ghost' });
    await env.iso.create(s);
    await expect(env.iso.start(s)).rejects.toThrow('unable to find user ghost');
    // the failed start is an exit status, and the supervisor and its cgroup go away
    expect(await env.iso.wait(s)).toMatchObject({ exitCode: 126, error: expect.stringContaining('unable to find user ghost') });
    await until(
      'the supervisor to go',
      async () => (await supervisorPid(s.stateDir)) === undefined && cgroupDirs(cgroupFor(s.id)).length === 0,
    );
  });

  it('sets the hostname and makes the workload PID 1 of a pid namespace that shows only its own processes', async () => {
    const r = await run(env, spec(['sh', '-c', 'hostname; echo $$; ls /proc | grep -c "^[0-9]"']));
    const [host, pid, count] = r.stdout.trim().split('\n');
    expect(host).toBe('box');
    expect(pid).toBe('1');
    // sh, ls and grep at most
    expect(Number(count)).toBeLessThanOrEqual(3);
  });

  it('writes /etc/hostname, /etc/hosts, /etc/resolv.conf and brings up lo in its own network namespace', async () => {
    const r = await run(
      env,
      spec([
        'sh',
        '-c',
        'cat /etc/hostname; grep -c localhost /etc/hosts; grep -c nameserver /etc/resolv.conf; cat /sys/class/net/lo/operstate; ls /sys/class/net',
      ]),
    );
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('box');
    expect(Number(lines[1])).toBeGreaterThan(0);
    expect(Number(lines[2])).toBeGreaterThan(0);
    expect(lines[3]).toMatch(/unknown|up/);
    expect(lines.slice(4)).toEqual(['lo']);
  });

  it('has a private /dev with the standard nodes and /dev/pts, /dev/shm', async () => {
    const r = await run(env, spec(['sh', '-c', 'ls /dev; echo x > /dev/null && head -c 4 /dev/zero | wc -c; readlink /dev/ptmx']));
    for (const n of [
      'null',
      'zero',
      'full',
      'random',
      'urandom',
      'tty',
      'pts',
      'shm',
      'mqueue',
      'ptmx',
      'fd',
      'stdin',
      'stdout',
      'stderr',
    ]) {
      expect(r.stdout.split('\n')).toContain(n);
    }
    expect(r.stdout).toContain('\n4\n');
    expect(r.stdout.trim().endsWith('pts/ptmx')).toBe(true);
  });

  it('OOM-kills a workload beyond --memory and says so', async () => {
    const s = spec(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'], { resources: { memory: 32 * 1024 * 1024 } });
    const r = await run(env, s);
    expect(r.status.exitCode).toBe(137);
    expect(r.status.oomKilled).toBe(true);
  });

  it('stops a fork loop at --pids-limit', async () => {
    // every iteration leaves one more sleep behind and prints the count (echo is a builtin)
    const s = spec(['sh', '-c', 'i=0; while [ $i -lt 60 ]; do sleep 60 & i=$((i+1)); echo $i; done'], { resources: { pidsLimit: 20 } });
    const r = await run(env, s);
    expect(r.stderr).toContain("can't fork: Resource temporarily unavailable");
    expect(r.status.exitCode).toBe(2);
    const last = Number(r.stdout.trim().split('\n').pop());
    // pid 1 (sh) + 19 sleeps = 20
    expect(last).toBe(19);
  });

  it('writes every resource limit into the cgroup as Docker does', async () => {
    const s = spec(['sleep', '1000'], {
      resources: { memory: 64 << 20, memorySwap: 96 << 20, nanoCpus: 500_000_000, cpuShares: 512, pidsLimit: 30, cpusetCpus: '0' },
    });
    await env.iso.create(s);
    await env.iso.start(s);
    const cg = (ctrl: string, file: string) => readFileSync(path.join('/sys/fs/cgroup', ctrl, 'tvm', s.id, file), 'utf8').trim();
    expect(cg('memory', 'memory.limit_in_bytes')).toBe(String(64 << 20));
    expect(cg('memory', 'memory.memsw.limit_in_bytes')).toBe(String(96 << 20));
    expect(cg('cpu', 'cpu.cfs_period_us')).toBe('100000');
    expect(cg('cpu', 'cpu.cfs_quota_us')).toBe('50000');
    expect(cg('cpu', 'cpu.shares')).toBe('512');
    expect(cg('pids', 'pids.max')).toBe('30');
    expect(cg('cpuset', 'cpuset.cpus')).toBe('0');
    expect(cg('devices', 'devices.list')).toContain('c 136:* rwm');
    await env.iso.kill(s, 'KILL');
    await env.iso.wait(s);
    // the supervisor removes the group when it goes
    await until('the cgroup to be removed', () => !existsSync(path.join('/sys/fs/cgroup/memory/tvm', s.id)));
  });

  it('shares the host network namespace with network=host', async () => {
    const r = await run(env, spec(['sh', '-c', 'ls /sys/class/net | wc -l'], { network: 'host' }));
    const { readdirSync } = await import('node:fs');
    expect(Number(r.stdout.trim())).toBe(readdirSync('/sys/class/net').length);
  });

  it('drops capabilities: chown works by default and fails with --cap-drop CHOWN', async () => {
    const ok = await run(env, spec(['chown', '1000', '/tmp']));
    expect(ok.status.exitCode).toBe(0);
    const r = await run(env, spec(['chown', '1000', '/tmp'], { capDrop: ['CHOWN'] }));
    expect(r.status.exitCode).not.toBe(0);
    expect(r.stderr).toContain('Operation not permitted');
  });

  it('applies the default capability set and a seccomp filter', async () => {
    const r = await run(env, spec(['sh', '-c', 'grep -E "^(CapBnd|CapEff|Seccomp|NoNewPrivs):" /proc/self/status']));
    expect(r.stdout).toContain('CapBnd:\t00000000a80425fb');
    expect(r.stdout).toContain('CapEff:\t00000000a80425fb');
    expect(r.stdout).toContain('Seccomp:\t2');
    // Docker's default: no_new_privs only with --security-opt no-new-privileges (security-opts.test.ts)
    expect(r.stdout).toContain('NoNewPrivs:\t0');
    const lim = await run(env, spec(['sh', '-c', 'ulimit -n; ulimit -Hn']));
    // as dockerd (no rlimits in its OCI spec): the daemon's own, inherited through the supervisor
    const [, soft, hard] = /Max open files\s+(\d+)\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))!;
    expect(lim.stdout.trim().split('\n')).toEqual([soft, hard]);
  });

  it('seccomp refuses unshare(CLONE_NEWUSER) (no capability needed) and mount; privileged allows them', async () => {
    const r = await run(env, spec(['sh', '-c', 'unshare -U true; echo u=$?; mount -t tmpfs none /mnt; echo m=$?']));
    expect(r.stdout).toContain('u=1');
    expect(r.stdout).toContain('m=');
    expect(r.stdout).not.toContain('m=0');
    expect(r.stderr).toMatch(/Operation not permitted|Permission denied/);
    const p = await run(env, spec(['sh', '-c', 'unshare -U true; echo u=$?; mount -t tmpfs none /mnt; echo m=$?'], { privileged: true }));
    expect(p.stdout).toContain('u=0');
    expect(p.stdout).toContain('m=0');
  });

  it('lets mknod make a block device but not open it (device cgroup allowlist)', async () => {
    const r = await run(env, spec(['sh', '-c', 'mknod /tmp/disk b 7 0 && echo made; head -c 1 /tmp/disk > /dev/null; echo read=$?']));
    expect(r.stdout).toContain('made');
    expect(r.stdout).toContain('read=1');
    expect(r.stderr).toContain('Operation not permitted');
  });

  it('honours bind mounts, read-only bind mounts, tmpfs and a read-only rootfs', async () => {
    const host = path.join(env.root, 'vol');
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(host, { recursive: true });
    writeFileSync(path.join(host, 'f'), 'from host\n');
    const r = await run(
      env,
      spec(
        [
          'sh',
          '-c',
          'cat /data/f; echo w > /data/w; echo rw=$?; echo x > /ro/x; echo ro=$?; echo t > /scratch/t && cat /scratch/t; touch /newfile; echo root=$?',
        ],
        {
          readonlyRootfs: true,
          mounts: [
            { type: 'bind', source: host, destination: '/data', readonly: false },
            { type: 'bind', source: host, destination: '/ro', readonly: true },
            { type: 'tmpfs', source: '', destination: '/scratch', readonly: false, options: ['size=1m'] },
          ],
        },
      ),
    );
    expect(r.stdout).toContain('from host');
    expect(r.stdout).toContain('rw=0');
    expect(r.stdout).not.toContain('ro=0');
    expect(r.stdout).toContain('\nt\n');
    expect(r.stdout).not.toContain('root=0');
    expect(readFileSync(path.join(host, 'w'), 'utf8')).toBe('w\n');
  });
});

describe('HostIsolation: interactive and running containers', () => {
  it('allocates a pty for tty mode and resizes it', async () => {
    const s = spec(['sh', '-c', 'read x; stty size'], {}, { tty: true, openStdin: true });
    await env.iso.create(s);
    const stdout = new Sink();
    const { PassThrough } = await import('node:stream');
    const stdin = new PassThrough();
    const att = await env.iso.attach(s, { stdin, stdout, stderr: new Sink() });
    await env.iso.start(s);
    await env.iso.resize(s, 33, 101);
    stdin.write('go\n');
    const st = await env.iso.wait(s);
    await att.done;
    expect(st.exitCode).toBe(0);
    expect(stdout.text).toContain('33 101');
    // the tty merges both streams into the log as stdout
    expect(logLines(s).every((l) => l.stream === 'stdout')).toBe(true);
  });

  it('feeds stdin and closes it at end of input', async () => {
    const s = spec(['sh', '-c', 'cat; echo done'], {}, { openStdin: true });
    await env.iso.create(s);
    const stdout = new Sink();
    const { Readable } = await import('node:stream');
    const att = await env.iso.attach(s, { stdin: Readable.from([Buffer.from('a\nb\n')]), stdout, stderr: new Sink() });
    await env.iso.start(s);
    expect((await env.iso.wait(s)).exitCode).toBe(0);
    await att.done;
    expect(stdout.text).toBe('a\nb\ndone\n');
  });

  it('execs into a running container: same pid namespace and filesystem', async () => {
    const s = spec(['sleep', '1000']);
    await env.iso.create(s);
    await env.iso.start(s);
    const out1 = new Sink();
    const e1 = await env.iso.exec(
      s,
      {
        process: {
          args: ['sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "; echo; echo shared > /tmp/x'],
          env: [],
          cwd: '/',
          user: '',
          tty: false,
          openStdin: false,
        },
        privileged: false,
      },
      { stdout: out1, stderr: new Sink() },
    );
    expect(e1.pid).toBeGreaterThan(1);
    expect((await e1.wait()).exitCode).toBe(0);
    await e1.attachment.done;
    expect(out1.text).toBe('sleep 1000 \n');
    const out2 = new Sink();
    const e2 = await env.iso.exec(
      s,
      {
        process: { args: ['sh', '-c', 'cat /tmp/x; hostname; exit 4'], env: [], cwd: '/', user: 'app', tty: false, openStdin: false },
        privileged: false,
      },
      { stdout: out2, stderr: new Sink() },
    );
    expect((await e2.wait()).exitCode).toBe(4);
    await e2.attachment.done;
    expect(out2.text).toBe('shared\nbox\n');
    const ttyOut = new Sink();
    const e3 = await env.iso.exec(
      s,
      { process: { args: ['sh', '-c', 'tty; stty size'], env: [], cwd: '/', user: '', tty: true, openStdin: false }, privileged: false },
      { stdout: ttyOut, stderr: new Sink() },
    );
    await e3.resize(12, 34).catch(() => {}); // may race with a fast exit; the size below is from before
    expect((await e3.wait()).exitCode).toBe(0);
    await e3.attachment.done;
    expect(ttyOut.text).toMatch(/^\/dev\/pts\/\d+\r\n/);
    const top = await env.iso.top(s);
    expect(top.map((p) => p.cmd)).toContain('sleep 1000');
    const missing = await env.iso.exec(
      s,
      { process: { args: ['nope'], env: [], cwd: '/', user: '', tty: false, openStdin: false }, privileged: false },
      { stdout: new Sink(), stderr: new Sink() },
    );
    const ms = await missing.wait();
    expect(ms.exitCode).toBe(127);
    expect(ms.error).toContain('executable file not found');
    await env.iso.kill(s, 'KILL');
    await env.iso.wait(s);
  });

  it('pauses and resumes through the freezer', async () => {
    const s = spec(['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/c; usleep 20000 2>/dev/null || sleep 0.02; done']);
    await env.iso.create(s);
    await env.iso.start(s);
    const counter = path.join(s.stateDir, 'upper/tmp/c');
    const read = () => {
      try {
        return Number(readFileSync(counter, 'utf8'));
      } catch {
        return 0;
      }
    };
    await until('the counter to run', () => read() > 2);
    await env.iso.pause(s);
    const a = read();
    await new Promise((r) => setTimeout(r, 300));
    expect(read()).toBe(a);
    await expect(env.iso.pause(s)).rejects.toThrow('already paused');
    await env.iso.resume(s);
    await until('the counter to advance after resume', () => read() > a);
    await env.iso.kill(s, 'KILL');
    expect((await env.iso.wait(s)).exitCode).toBe(137);
  });

  it('reports stats from the cgroup', async () => {
    const s = spec(['sleep', '1000'], { resources: { memory: 64 * 1024 * 1024, pidsLimit: 50 } });
    await env.iso.create(s);
    await env.iso.start(s);
    const st = await env.iso.stats(s);
    expect(st.memory.limit).toBe(64 * 1024 * 1024);
    expect(st.memory.usage).toBeGreaterThan(0);
    expect(st.pids).toEqual({ current: 1, limit: 50 });
    expect(st.cpu.onlineCpus).toBeGreaterThan(0);
    expect(st.cpu.systemUsageNs).toBeGreaterThan(0);
    await env.iso.kill(s, 'KILL');
    await env.iso.wait(s);
  });
});

describe('HostIsolation: lifecycle', () => {
  it('supervisor outlives the daemon: a new HostIsolation recovers, waits and the log kept flowing', async () => {
    const s = spec(['sh', '-c', 'echo one; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo two; exit 5']);
    const first = env.newIsolation();
    await first.create(s);
    await first.start(s);
    await until('first line', () => existsSync(s.logPath) && readFileSync(s.logPath, 'utf8').includes('one'));
    // "daemon restart": a fresh instance with no memory of the container
    const second = env.newIsolation();
    const rec = await second.recover(s);
    expect('running' in rec).toBe(true);
    const touch = await second.exec(
      s,
      { process: { args: ['touch', '/tmp/go'], env: [], cwd: '/', user: '', tty: false, openStdin: false }, privileged: false },
      { stdout: new Sink(), stderr: new Sink() },
    );
    expect((await touch.wait()).exitCode).toBe(0);
    const st = await second.wait(s);
    expect(st.exitCode).toBe(5);
    expect(logLines(s).map((l) => l.log)).toEqual(['one\n', 'two\n']);
    const third = env.newIsolation();
    expect(await third.recover(s)).toEqual({ exited: st });
    expect(await third.wait(s)).toEqual(st);
  });

  it('restarts a stopped container keeping its filesystem changes', async () => {
    const s = spec(['sh', '-c', 'cat /tmp/n 2>/dev/null; echo again >> /tmp/n']);
    const r1 = await run(env, s);
    expect(r1.stdout).toBe('');
    const stdout = new Sink();
    const att = await env.iso.attach(s, { stdout, stderr: new Sink() });
    await env.iso.start(s);
    expect((await env.iso.wait(s)).exitCode).toBe(0);
    await att.done;
    expect(stdout.text).toBe('again\n');
  });

  it('copies files in and out (docker cp) of stopped and running containers', async () => {
    const s = spec(['sh', '-c', 'cat /tmp/in/hello.txt']);
    await env.iso.create(s);
    const { pack } = await import('tar-stream');
    const p = pack();
    p.entry({ name: 'in/hello.txt', mode: 0o644 }, 'hello from tar\n');
    p.finalize();
    await env.iso.extract(s, '/tmp', p as unknown as Readable);
    const stdout = new Sink();
    const att = await env.iso.attach(s, { stdout, stderr: new Sink() });
    await env.iso.start(s);
    await env.iso.wait(s);
    await att.done;
    expect(stdout.text).toBe('hello from tar\n');
    const tar = await env.iso.archive(s, '/etc/passwd');
    const { extract } = await import('tar-stream');
    const ex = extract();
    const names: string[] = [];
    let body = '';
    ex.on('entry', (h, stream, next) => {
      names.push(h.name);
      stream.on('data', (d: unknown) => {
        body += String(d);
      });
      stream.on('end', () => next());
    });
    await new Promise<void>((resolve, reject) => {
      ex.on('finish', () => resolve());
      ex.on('error', reject);
      tar.pipe(ex);
    });
    expect(names).toEqual(['passwd']);
    expect(body).toContain('app:x:1000:1000');
    await expect(env.iso.archive(s, '/nonexistent')).rejects.toThrow('Could not find the file');

    // running: read through the live root while the container is frozen, thawed afterwards
    const live = spec(['sh', '-c', 'ln -s / /tmp/escape; echo inside > /tmp/f; sleep 1000']);
    await env.iso.create(live);
    await env.iso.start(live);
    await until('the file to appear', async () => {
      try {
        return await env.iso.archive(live, '/tmp/f');
      } catch {
        return undefined;
      }
    });
    const t2 = await env.iso.archive(live, '/tmp/escape/etc/passwd');
    const ex2 = extract();
    let body2 = '';
    ex2.on('entry', (_h, stream, next) => {
      stream.on('data', (d: unknown) => {
        body2 += String(d);
      });
      stream.on('end', () => next());
    });
    await new Promise<void>((resolve, reject) => {
      ex2.on('finish', () => resolve());
      ex2.on('error', reject);
      t2.pipe(ex2);
    });
    // the container's /etc/passwd, not the host's: the symlink resolved inside the container
    expect(body2).toContain('app:x:1000:1000');
    expect(body2).toBe(String(busyboxRootfsEntries().find((e) => e.name === 'etc/passwd')!.content));
    await until('ps', async () => ((await env.iso.top(live)).length > 0 ? true : undefined));
    await env.iso.pause(live); // it was thawed after the copy, so this succeeds
    await env.iso.resume(live);
    await env.iso.kill(live, 'KILL');
    await env.iso.wait(live);
  });

  it('keeps the shared base mount while a concurrent create records its use and a remove releases it', async () => {
    const mp = path.join(env.runRoot, 'base', 'ab'.repeat(32));
    const a = makeSpec(env, ['true']);
    await env.iso.create(a);
    const b = spec(['echo', 'still mounted']);
    await Promise.all([env.iso.remove(a), env.iso.create(b)]);
    expect((await mountPoints()).has(mp)).toBe(true);
    const out = new Sink();
    const att = await env.iso.attach(b, { stdout: out, stderr: new Sink() });
    await env.iso.start(b);
    expect((await env.iso.wait(b)).exitCode).toBe(0);
    await att.done;
    expect(out.text).toBe('still mounted\n');
  });

  it('refuses to remove a running container; remove unmounts the base disk and deletes everything', async () => {
    const s = spec(['sleep', '1000']);
    await env.iso.create(s);
    const mp = path.join(env.runRoot, 'base', 'ab'.repeat(32));
    expect((await mountPoints()).has(mp)).toBe(true);
    await env.iso.start(s);
    await expect(env.iso.remove(s)).rejects.toThrow('cannot remove a running container');
    await env.iso.kill(s, 'KILL');
    await env.iso.wait(s);
    // every other container of this test file is gone by now except those in `made`: remove all
    for (const m of made) {
      // some of these already ended: a kill or wait that fails changes nothing here
      await env.iso.kill(m.spec, 'KILL').catch(() => {});
      await env.iso.wait(m.spec).catch(() => {});
      await env.iso.remove(m.spec);
      expect(existsSync(m.spec.stateDir)).toBe(false);
      expect(cgroupDirs(cgroupFor(m.spec.id))).toEqual([]);
    }
    made.length = 0;
    expect((await mountPoints()).has(mp)).toBe(false);
    await env.iso.remove(s); // idempotent
  });

  it('rejects a bad spec with a clear error and leaves nothing behind', async () => {
    const mp = path.join(env.runRoot, 'base', 'ab'.repeat(32));
    const bad = [
      makeSpec(env, ['true'], { resources: { memory: 1000 } }),
      makeSpec(env, ['true'], { capAdd: ['NOT_A_CAP'] }),
      makeSpec(env, [], {}),
      makeSpec(env, ['true'], { mounts: [{ type: 'bind', source: 'relative', destination: '/x', readonly: false }] }),
      makeSpec(env, ['true'], {}, { cwd: 'relative' }),
    ];
    for (const s of bad) {
      await expect(env.iso.create(s)).rejects.toBeInstanceOf(InvalidParameterError);
      expect(existsSync(s.stateDir)).toBe(false);
      expect(cgroupDirs(cgroupFor(s.id))).toEqual([]);
      expect((await mountPoints()).has(mp)).toBe(false);
    }
    await expect(env.iso.create(makeSpec(env, ['true'], { resources: { memory: 1000 } }))).rejects.toThrow(
      'minimum memory limit allowed is 6MB',
    );
  });
});
