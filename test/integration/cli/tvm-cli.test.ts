/**
 * The tvm CLI (bin/tvm.js) against a `tvm daemon` on the real parts: the commands users run,
 * their output shapes and exit codes.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startTestDaemon, missingRealParts, REPO, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';

describe('tvm CLI', () => {
  let d: TestDaemon;
  let tmp: string;
  const tvm = async (args: string[], o: { input?: string; host?: string } = {}) => {
    const r = await execa(process.execPath, [path.join(REPO, 'bin', 'tvm.js'), ...args], {
      reject: false,
      timeout: 120_000,
      env: { TVM_HOST: o.host ?? d.host },
      ...(o.input !== undefined && { input: o.input }),
    });
    return { code: r.exitCode ?? -1, out: String(r.stdout), err: String(r.stderr) };
  };

  beforeAll(async () => {
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
    d = await startTestDaemon();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tvm-cli-'));
    await writeFile(path.join(tmp, 'busybox.tar'), await busyboxDockerArchive());
  });
  afterAll(async () => {
    await d?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('names a missing input file instead of blaming the daemon', async () => {
    for (const args of [
      ['import', path.join(tmp, 'nope.tar'), 'x:1'],
      ['load', '-i', path.join(tmp, 'nope.tar')],
    ]) {
      const r = await tvm(args);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`open ${path.join(tmp, 'nope.tar')}: no such file or directory`);
    }
  });

  it('says how to start a daemon when none answers', async () => {
    const r = await tvm(['ps'], { host: `unix://${path.join(os.tmpdir(), 'no-such-tvm.sock')}` });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /Cannot connect to the tvm daemon at unix:\/\/.*no-such-tvm\.sock\. Is the daemon running\? Start one with: tvm daemon/,
    );
  });

  it('version, load, images', async () => {
    const v = await tvm(['version']);
    expect(v.code, v.err).toBe(0);
    expect(v.out).toMatch(/Server: tvm\n Version:\s+0\.1\.0\n API version:\s+1\.50 \(minimum version 1\.24\)/);
    const l = await tvm(['load', '-i', path.join(tmp, 'busybox.tar')]);
    expect([l.code, l.out.trim()]).toEqual([0, 'Loaded image: busybox:latest']);
    const i = await tvm(['images']);
    expect(i.out.split('\n')[0]).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    expect(i.out).toMatch(/\nbusybox\s+latest\s+[0-9a-f]{12}\s/);
  });

  it('run: output, exit codes, stdin, env/user/workdir', async () => {
    expect(await tvm(['run', '--rm', 'busybox', 'echo', 'hi'])).toEqual({ code: 0, out: 'hi', err: '' });
    const r = await tvm(['run', '--rm', 'busybox', 'sh', '-c', 'echo e >&2; exit 7']);
    expect([r.code, r.err]).toEqual([7, 'e']);
    expect((await tvm(['run', '--rm', '-i', 'busybox', 'cat'], { input: 'piped\n' })).out).toBe('piped');
    const e = await tvm(['run', '--rm', '-e', 'A=1', '-u', '1000', '-w', '/home/app', 'busybox', 'sh', '-c', 'echo $A $(id -u) $(pwd)']);
    expect(e.out).toBe('1 1000 /home/app');
  });

  it('run -d, ps, exec, logs, stop, rm, inspect', async () => {
    const r = await tvm(['run', '-d', '--name', 'bg', 'busybox', 'sh', '-c', 'echo started; sleep 60']);
    expect(r.out).toMatch(/^[0-9a-f]{64}$/);
    const ps = await tvm(['ps']);
    expect(ps.out.split('\n')[0]).toMatch(/^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
    expect(ps.out).toMatch(/\n[0-9a-f]{12}\s+busybox\s+"sh -c 'echo started…"\s+.*\s+Up .*\s+bg$/);
    const ex = await tvm(['exec', 'bg', 'sh', '-c', 'echo x; exit 2']);
    expect([ex.code, ex.out]).toEqual([2, 'x']);
    for (let i = 0; i < 50 && !(await tvm(['logs', 'bg'])).out.includes('started'); i++) await new Promise((res) => setTimeout(res, 100));
    expect((await tvm(['logs', 'bg'])).out).toBe('started');
    const insp = JSON.parse((await tvm(['inspect', 'bg'])).out) as { Name: string; HostConfig: { Isolation: string } }[];
    expect([insp[0]!.Name, insp[0]!.HostConfig.Isolation]).toEqual(['/bg', 'container']);
    expect((await tvm(['stop', '-t', '1', 'bg'])).out).toBe('bg');
    expect((await tvm(['ps', '-a', '-q', '--no-trunc'])).out).toBe(r.out);
    expect((await tvm(['rm', 'bg'])).code).toBe(0);
    const gone = await tvm(['rm', 'bg']);
    expect([gone.code, gone.err]).toEqual([1, 'Error response from daemon: No such container: bg']);
  });

  it('run -it through a pty', async () => {
    const r = await execa(
      'script',
      ['-qec', `${process.execPath} ${path.join(REPO, 'bin', 'tvm.js')} run --rm -it busybox sh -c 'tty; exit 4'`, '/dev/null'],
      {
        env: { TVM_HOST: d.host },
        reject: false,
        timeout: 60_000,
        input: '',
      },
    );
    expect(r.exitCode).toBe(4);
    expect(String(r.stdout)).toMatch(/\/dev\/pts\/\d+/);
  });

  it("runs --isolation=vm in its own kernel; refuses bad limits with the daemon's message", async () => {
    const vm = await tvm(['run', '--rm', '--isolation=vm', 'busybox', 'sh', '-c', 'uname -r; exit 5']);
    expect(vm.code, vm.err).toBe(5);
    expect(vm.out).toMatch(/^6\.1\.\d+$/);
    const mem = await tvm(['run', '--rm', '-m', '1k', 'busybox', 'true']);
    expect(mem.err).toMatch(/Minimum memory limit allowed is 6MB/);
  });

  it('import a rootfs tar', async () => {
    const tarPath = path.join(tmp, 'rootfs.tar');
    await execa('tar', ['-C', REPO, '-cf', tarPath, 'package.json']);
    const r = await tvm(['import', tarPath, 'imported:v1']);
    expect([r.code, r.out]).toEqual([0, expect.stringMatching(/^sha256:[0-9a-f]{64}$/)]);
    expect((await tvm(['images'])).out).toMatch(/\nimported\s+v1\s/);
  });
});
