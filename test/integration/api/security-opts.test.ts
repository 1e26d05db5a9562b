/**
 * Docker's security and process options through the real docker CLI against a real tvm daemon
 * (--isolation=container): each one honoured inside the container, or refused with a clear
 * error; never silently ignored. Few containers: each `docker run` checks several things.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { missingRealParts, requireDocker, startTestDaemon, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';

describe('security and process options (docker CLI, --isolation=container)', () => {
  let d: TestDaemon;
  let tmp: string;
  const run = (args: string[]) => d.docker(['run', '--rm', '--isolation=container', ...args]);

  beforeAll(async () => {
    requireDocker();
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
    d = await startTestDaemon({ fake: false });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tvm-secopt-'));
    await writeFile(path.join(tmp, 'busybox.tar'), await busyboxDockerArchive());
    const load = await d.docker(['load', '-i', path.join(tmp, 'busybox.tar')]);
    expect(load.stdout).toContain('Loaded image: busybox:latest');
  });
  afterAll(async () => {
    if (d) {
      const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await d.docker(['rm', '-f', ...ids]);
      await d.destroy();
    }
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("default: Docker's seccomp allow-list is installed (unshare -U refused), no_new_privs is off", async () => {
    const r = await run(['busybox', 'sh', '-c', 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; unshare -U true; echo "unshare=$?"']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('NoNewPrivs:\t0');
    expect(r.stdout).toContain('Seccomp:\t2');
    expect(r.stdout).toContain('unshare=1');
    expect(r.stderr).toMatch(/unshare.*Operation not permitted/);
  });

  it('a custom profile (seccomp=<file>) that denies mkdir makes mkdir fail with EPERM; unconfined and --privileged install nothing', async () => {
    const profile = path.join(tmp, 'no-mkdir.json');
    await writeFile(profile, JSON.stringify({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
    }));
    const denied = await run(['--security-opt', `seccomp=${profile}`, 'busybox', 'sh', '-c', 'mkdir /x; echo "mkdir=$?"; grep ^Seccomp: /proc/self/status']);
    expect(denied.exitCode, denied.stderr).toBe(0);
    expect(denied.stdout).toContain('mkdir=1');
    expect(denied.stderr).toMatch(/mkdir.*Operation not permitted/);
    expect(denied.stdout).toContain('Seccomp:\t2');
    const open = await run(['--security-opt', 'seccomp=unconfined', 'busybox', 'sh', '-c', 'mkdir /x && echo made; grep ^Seccomp: /proc/self/status; unshare -U true && echo unshared']);
    expect(open.stdout, open.stderr).toBe('made\nSeccomp:\t0\nunshared');
    const priv = await run(['--privileged', 'busybox', 'grep', '^Seccomp:', '/proc/self/status']);
    expect(priv.stdout, priv.stderr).toBe('Seccomp:\t0');
  });

  it('--security-opt no-new-privileges sets no_new_privs; bad options are refused with Docker\'s messages', async () => {
    const nnp = await run(['--security-opt', 'no-new-privileges', 'busybox', 'grep', '^NoNewPrivs:', '/proc/self/status']);
    expect(nnp.stdout, nnp.stderr).toBe('NoNewPrivs:\t1');
    const nnp2 = await run(['--security-opt', 'no-new-privileges=false', '--security-opt', 'apparmor=unconfined', '--security-opt', 'label=disable', 'busybox', 'grep', '^NoNewPrivs:', '/proc/self/status']);
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
});
