/**
 * Docker's security and process options through the real docker CLI against a real tvm daemon
 * (--isolation=container): each one honoured inside the container, or refused with a clear
 * error; never silently ignored. Few containers: each `docker run` checks several things.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { REPO, startDaemonWithBusybox, type TestDaemon } from '../../fixtures/daemon.js';

describe('security and process options (docker CLI, --isolation=container)', () => {
  let d: TestDaemon;
  let tmp: string;
  const run = (args: string[]) => d.docker(['run', '--rm', '--isolation=container', ...args]);

  beforeAll(async () => {
    d = await startDaemonWithBusybox();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tvm-secopt-'));
  });
  afterAll(async () => {
    if (d) await d.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("default: Docker's seccomp allow-list is installed (unshare -U refused), no_new_privs is off", async () => {
    const r = await run(['busybox', 'sh', '-c', 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; unshare -U true; echo "unshare=$?"']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('NoNewPrivs:\t0');
    expect(r.stdout).toContain('Seccomp:\t2');
    expect(r.stdout).toContain('unshare=1');
    expect(r.stderr).toMatch(/unshare.*Operation not permitted/);
    const info = await d.docker(['info', '--format', '{{json .SecurityOptions}}']);
    expect(info.stdout).toContain('name=seccomp,profile=builtin');
  });

  it('a custom profile (seccomp=<file>) that denies mkdir makes mkdir fail with EPERM; unconfined and --privileged install nothing', async () => {
    const profile = path.join(tmp, 'no-mkdir.json');
    await writeFile(
      profile,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
      }),
    );
    const denied = await run([
      '--security-opt',
      `seccomp=${profile}`,
      'busybox',
      'sh',
      '-c',
      'mkdir /x; echo "mkdir=$?"; grep ^Seccomp: /proc/self/status',
    ]);
    expect(denied.exitCode, denied.stderr).toBe(0);
    expect(denied.stdout).toContain('mkdir=1');
    expect(denied.stderr).toMatch(/mkdir.*Operation not permitted/);
    expect(denied.stdout).toContain('Seccomp:\t2');
    const open = await run([
      '--security-opt',
      'seccomp=unconfined',
      'busybox',
      'sh',
      '-c',
      'mkdir /x && echo made; grep ^Seccomp: /proc/self/status; unshare -U true && echo unshared',
    ]);
    expect(open.stdout, open.stderr).toBe('made\nSeccomp:\t0\nunshared');
    // Docker's masked and read-only /proc paths are mounts over /proc; systempaths=unconfined: none
    const paths = 'grep " /proc/sys " /proc/mounts | cut -d" " -f4 | cut -d, -f1; grep -c " /proc/[a-z_]" /proc/mounts';
    const masked = await run(['busybox', 'sh', '-c', paths]);
    expect(masked.stdout.split('\n')[0], masked.stderr).toBe('ro');
    expect(Number(masked.stdout.split('\n')[1])).toBeGreaterThan(1);
    const sys = await run(['--security-opt', 'systempaths=unconfined', 'busybox', 'sh', '-c', paths]);
    expect(sys.stdout, sys.stderr).toBe('0');
    const priv = await run(['--privileged', 'busybox', 'grep', '^Seccomp:', '/proc/self/status']);
    expect(priv.stdout, priv.stderr).toBe('Seccomp:\t0');
  });

  it("--security-opt no-new-privileges sets no_new_privs; bad options are refused with Docker's messages", async () => {
    const nnp = await run(['--security-opt', 'no-new-privileges', 'busybox', 'grep', '^NoNewPrivs:', '/proc/self/status']);
    expect(nnp.stdout, nnp.stderr).toBe('NoNewPrivs:\t1');
    const nnp2 = await run([
      '--security-opt',
      'no-new-privileges=false',
      '--security-opt',
      'apparmor=unconfined',
      '--security-opt',
      'label=disable',
      'busybox',
      'grep',
      '^NoNewPrivs:',
      '/proc/self/status',
    ]);
    expect(nnp2.stdout, nnp2.stderr).toBe('NoNewPrivs:\t0');
    const bad = await run(['--security-opt', 'foo=bar', 'busybox', 'true']);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain('invalid --security-opt 2: "foo=bar"');
    const aa = await run(['--security-opt', 'apparmor=docker-default', 'busybox', 'true']);
    expect(aa.stderr).toContain('AppArmor is not enabled');
    const badProfile = path.join(tmp, 'bad.json');
    await writeFile(badProfile, '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOPE"}]}');
    const bp = await run(['--security-opt', `seccomp=${badProfile}`, 'busybox', 'true']);
    expect(bp.stderr).toContain('invalid seccomp profile: syscalls[0].action: unknown action "SCMP_ACT_NOPE"');
    expect((await d.docker(['ps', '-aq'])).stdout).toBe('');
  });

  it('--ulimit, --sysctl, --shm-size, --group-add, --oom-score-adj, --device, --memory-reservation, --oom-kill-disable and --init, in the container and its exec processes', async () => {
    const r = await d.docker([
      'run',
      '-d',
      '--isolation=container',
      '--init',
      '--ulimit',
      'nofile=1000:2000',
      '--ulimit',
      'nproc=300:400',
      '--ulimit',
      'core=-1',
      '--sysctl',
      'net.ipv4.ip_forward=1',
      '--sysctl',
      'kernel.shmmax=123456789',
      '--sysctl',
      'fs.mqueue.msg_max=20',
      '--shm-size',
      '32m',
      '--group-add',
      'staff',
      '--group-add',
      '4242',
      '--oom-score-adj',
      '300',
      '--device',
      '/dev/kmsg:/dev/mykmsg:r',
      '--memory',
      '128m',
      '--memory-reservation',
      '64m',
      '--oom-kill-disable',
      '--dns',
      '10.0.0.53',
      '--dns-search',
      'example.com',
      '--dns-option',
      'ndots:2',
      '--add-host',
      'db:10.1.2.3',
      '--domainname',
      'example.org',
      'busybox',
      'sleep',
      '300',
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const id = r.stdout.trim();
    // exec processes get the container's filter, --privileged ones too (as in Docker)
    for (const priv of [[], ['--privileged']]) {
      const ex = await d.docker([
        'exec',
        ...priv,
        id,
        'sh',
        '-c',
        'grep ^Seccomp: /proc/self/status; unshare -U true 2>/dev/null || echo refused',
      ]);
      expect(ex.stdout, ex.stderr).toBe('Seccomp:\t2\nrefused');
    }
    const check = await d.docker([
      'exec',
      id,
      'sh',
      '-c',
      [
        'ulimit -n; ulimit -Hn; ulimit -u; ulimit -c',
        'cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax /proc/sys/fs/mqueue/msg_max',
        'df -k /dev/shm | tail -1 | awk \'{print "shm", $2}\'',
        'id -G',
        'cat /proc/self/oom_score_adj /proc/1/oom_score_adj',
        'ls -l /dev/mykmsg | cut -c1-10',
        'echo tvm-test > /dev/mykmsg 2>/dev/null || echo write-refused',
        'ps -o pid,comm | grep -E "^ *1 "',
        'grep -v "^#" /etc/resolv.conf',
        'tail -1 /etc/hosts',
        'cat /proc/sys/kernel/domainname',
      ].join('; '),
    ]);
    expect(check.exitCode, check.stderr).toBe(0);
    expect(check.stdout.split('\n')).toEqual([
      '1000',
      '2000',
      '300',
      'unlimited',
      '1',
      '123456789',
      '20',
      'shm 32768',
      '0 50 4242',
      '300',
      '300',
      'crw-r--r--',
      'write-refused',
      expect.stringMatching(/^\s*1 docker-init$/),
      'nameserver 10.0.0.53',
      'search example.com',
      'options ndots:2',
      '10.1.2.3\tdb',
      'example.org',
    ]);
    // the cgroup knobs, seen from the host
    const pid = (await d.docker(['inspect', '-f', '{{.State.Pid}}', id])).stdout.trim();
    const memLine = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').find((l) => /:memory:/.test(l))!;
    const memDir = path.join('/sys/fs/cgroup/memory', memLine.split(':')[2]!);
    expect((await readFile(path.join(memDir, 'memory.soft_limit_in_bytes'), 'utf8')).trim()).toBe(String(64 * 1024 * 1024));
    expect(await readFile(path.join(memDir, 'memory.oom_control'), 'utf8')).toContain('oom_kill_disable 1');
    const devDir = memDir.replace('/sys/fs/cgroup/memory', '/sys/fs/cgroup/devices');
    expect((await readFile(path.join(devDir, 'devices.list'), 'utf8')).split('\n')).toContain('c 1:11 r');
    // docker-init forwards SIGTERM to its child and exits with the child's status, at once
    const stop = await d.docker(['stop', '-t', '30', id]);
    expect(stop.exitCode, stop.stderr).toBe(0);
    expect((await d.docker(['inspect', '-f', '{{.State.ExitCode}}', id])).stdout.trim()).toBe('143');
    await d.docker(['rm', id]);
    // a user tmpfs at /dev/shm wins over --shm-size, as in Docker
    const shm = await run([
      '--shm-size',
      '32m',
      '--tmpfs',
      '/dev/shm:size=8m',
      'busybox',
      'sh',
      '-c',
      "df -k /dev/shm | tail -1 | awk '{print $2}'",
    ]);
    expect(shm.stdout, shm.stderr).toBe('8192');
    // docker-init is mounted after the user's mounts: a bind over /sbin does not hide it
    await mkdir(path.join(tmp, 'sbin'), { recursive: true });
    const over = await run(['--init', '-v', `${path.join(tmp, 'sbin')}:/sbin`, 'busybox', 'sh', '-c', 'ps -o pid,comm | grep -E "^ *1 "']);
    expect(over.stdout, over.stderr).toMatch(/^\s*1 docker-init$/);
    const code = await run(['--init', 'busybox', 'sh', '-c', 'exit 7']);
    expect(code.exitCode).toBe(7);
    // with a tty the command is the terminal's foreground process group, under docker-init
    const tty = await run(['--init', '-t', 'busybox', 'sh', '-c', 'ps -o pid,comm | grep -c docker-init; exit 3']);
    expect([tty.exitCode, tty.stdout.trim()]).toEqual([3, '1']);
  });

  it("refuses bad values with Docker's messages", async () => {
    const cases: [string[], string][] = [
      [['--sysctl', 'net.ipv4.ip_forward=1', '--network', 'host'], 'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'],
      [['--oom-score-adj', '1001'], 'Invalid value 1001, range for oom score adj is [-1000, 1000]'],
      [['--device', '/dev/nope'], 'error gathering device information while adding custom device "/dev/nope"'],
      [['--memory-reservation', '1m'], 'Minimum memory reservation allowed is 6MB'],
      [['--group-add', 'nosuchgroup'], 'Unable to find group nosuchgroup'],
      [['--cgroup-parent', 'mine'], '--cgroup-parent mine is not supported by tvm'],
      [['--pid', 'host'], '--pid host is not supported by tvm'],
      // the test daemon runs without a default bridge (--bridge none): no gateway to point at
      [['--add-host', 'db:host-gateway'], 'unable to derive the IP value for host-gateway'],
    ];
    const warned = await run(['--oom-kill-disable', 'busybox', 'true']);
    expect(warned.exitCode).toBe(0);
    expect(warned.stderr).toContain('OOM killer is disabled for the container, but no memory limit is set');
    for (const [args, msg] of cases) {
      const r = await run([...args, 'busybox', 'true']);
      expect([args, r.exitCode === 0, r.stderr]).toEqual([args, false, expect.stringContaining(msg)]);
    }
  });

  it('tvm run takes the same flags', async () => {
    const profile = path.join(tmp, 'no-mkdir2.json');
    await writeFile(
      profile,
      '{\n  "defaultAction": "SCMP_ACT_ALLOW",\n  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]\n}\n',
    );
    const r = await execa(
      process.execPath,
      [
        path.join(REPO, 'bin', 'tvm.js'),
        'run',
        '--rm',
        '--isolation',
        'container',
        '--security-opt',
        `seccomp=${profile}`,
        '--security-opt',
        'no-new-privileges',
        '--ulimit',
        'nofile=900:1900',
        '--init',
        '--shm-size',
        '16m',
        'busybox',
        'sh',
        '-c',
        "mkdir /x 2>/dev/null || echo refused; ulimit -n; grep ^NoNewPrivs: /proc/self/status; df -k /dev/shm | tail -1 | awk '{print $2}'; ps -o comm | sed -n 2p",
      ],
      { reject: false, timeout: 120_000, env: { TVM_HOST: d.host } },
    );
    expect(r.stdout.split('\n'), r.stderr).toEqual(['refused', '900', 'NoNewPrivs:\t1', '16384', 'docker-init']);
    expect(r.exitCode).toBe(0);
  });

  it("the kernel gives the default profile's verdicts (a static probe: keyctl, AF_VSOCK, personality, clone3, unshare, x32)", async () => {
    const probe = path.join(tmp, 'probe');
    const cc = await execa('musl-gcc', ['-static', '-O2', '-o', probe, path.join(REPO, 'test/fixtures/seccomp/probe.c')], {
      reject: false,
    });
    if (cc.exitCode !== 0) throw new Error(`building the seccomp probe needs musl-gcc (musl-tools): ${cc.stderr || String(cc.exitCode)}`);
    const mount = ['-v', `${probe}:/probe:ro`];
    const def = await run([...mount, 'busybox', '/probe']);
    expect(def.stdout.split('\n'), def.stderr).toEqual([
      'keyctl=EPERM',
      'socket_vsock=EPERM',
      'socket_inet=ok',
      'personality_addr_no_randomize=EPERM',
      'personality_query=ok',
      'clone3=ENOSYS',
      'unshare_user=EPERM',
      'getpid=ok',
    ]);
    const admin = await run([...mount, '--cap-add', 'SYS_ADMIN', 'busybox', '/probe']);
    expect(admin.stdout.split('\n'), admin.stderr).toEqual([
      'keyctl=EPERM',
      'socket_vsock=EPERM',
      'socket_inet=ok',
      'personality_addr_no_randomize=EPERM',
      'personality_query=ok',
      'clone3=EINVAL',
      'unshare_user=ok',
      'getpid=ok',
    ]);
    const open = await run([...mount, '--security-opt', 'seccomp=unconfined', 'busybox', '/probe']);
    expect(
      open.stdout.split('\n').filter((l) => l.endsWith('=EPERM')),
      open.stdout,
    ).toEqual([]);
    // an x32 syscall number on the x86_64 entry point: the process is killed (SIGSYS, 128+31)
    const x32 = await run([...mount, 'busybox', '/probe', 'x32']);
    expect([x32.exitCode, x32.stdout]).toEqual([159, '']);
  });
});
