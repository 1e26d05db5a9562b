/**
 * `tvm daemon --userns-remap=default` through the real docker CLI. Like dockerd, the daemon
 * creates the host user `dockremap` and its /etc/subuid + /etc/subgid ranges when they are
 * absent; on this machine that happens once (the test is idempotent: later runs reuse them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { missingRealParts, requireDocker, startTestDaemon, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';
import { parseSubIdFile, rangesOf } from '../../../src/runtime/userns.js';

describe('user namespaces: tvm daemon --userns-remap=default (docker CLI, --isolation=container)', () => {
  let d: TestDaemon;
  let tmp: string;
  let uidStart = 0;
  let gidStart = 0;
  const run = (args: string[]) => d.docker(['run', '--rm', ...args]);
  const ok = (r: { exitCode: number; stdout: string; stderr: string }) => {
    expect(r.stderr + r.stdout, r.stderr).toBeDefined();
    expect(r.exitCode, r.stderr).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    requireDocker();
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
    d = await startTestDaemon({ fake: false, daemonArgs: ['--userns-remap', 'default'] });
    const first = (file: string) => async () => rangesOf(parseSubIdFile(await readFile(file, 'utf8'), file), 'dockremap')[0]!.start;
    uidStart = await first('/etc/subuid')();
    gidStart = await first('/etc/subgid')();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tvm-userns-'));
    await chmod(tmp, 0o755);
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

  it('uses the dockremap ranges and says so in docker info', async () => {
    expect(uidStart).toBeGreaterThanOrEqual(100000);
    expect(gidStart).toBeGreaterThanOrEqual(100000);
    expect(await readFile('/etc/passwd', 'utf8')).toMatch(/^dockremap:/m);
    expect(ok(await d.docker(['info', '--format', '{{json .SecurityOptions}}']))).toContain('name=userns');
  });

  it('runs as root inside, as the range start on the host; image files show their image owners', async () => {
    expect(ok(await run(['busybox', 'id'])).trim()).toBe('uid=0(root) gid=0(root) groups=0(root)');
    expect(
      ok(await run(['busybox', 'cat', '/proc/self/uid_map']))
        .trim()
        .split(/\s+/),
    ).toEqual(['0', String(uidStart), '65536']);
    expect(
      ok(await run(['busybox', 'cat', '/proc/self/gid_map']))
        .trim()
        .split(/\s+/),
    ).toEqual(['0', String(gidStart), '65536']);
    expect(
      ok(await run(['busybox', 'ls', '-ln', '/bin/busybox']))
        .split(/\s+/)
        .slice(2, 4),
    ).toEqual(['0', '0']);
    expect(
      ok(await run(['busybox', 'ls', '-lnd', '/home/app']))
        .split(/\s+/)
        .slice(2, 4),
    ).toEqual(['1000', '1000']);

    const id = ok(await d.docker(['run', '-d', 'busybox', 'sleep', '300'])).trim();
    const pid = Number(ok(await d.docker(['inspect', '--format', '{{.State.Pid}}', id])).trim());
    expect(pid).toBeGreaterThan(0);
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    expect(status).toMatch(new RegExp(`^Uid:\\s+${uidStart}\\s+${uidStart}\\s+${uidStart}\\s+${uidStart}$`, 'm'));
    expect(status).toMatch(new RegExp(`^Gid:\\s+${gidStart}\\s`, 'm'));
    // exec joins the user namespace first and is root in it too
    expect(ok(await d.docker(['exec', id, 'id', '-u'])).trim()).toBe('0');
    expect(
      ok(await d.docker(['exec', id, 'cat', '/proc/self/uid_map']))
        .trim()
        .split(/\s+/),
    ).toEqual(['0', String(uidStart), '65536']);
    expect(ok(await d.docker(['exec', '-u', '1000:1000', id, 'id'])).trim()).toBe('uid=1000(app) gid=1000(app) groups=1000(app)');
    // the rest of the lifecycle works on it: top, stats, pause/unpause, a privileged exec (all capabilities, of its namespace)
    expect(ok(await d.docker(['top', id]))).toContain('sleep 300');
    expect(ok(await d.docker(['stats', '--no-stream', '--format', '{{.Name}}', id])).trim()).not.toBe('');
    ok(await d.docker(['pause', id]));
    ok(await d.docker(['unpause', id]));
    expect(ok(await d.docker(['exec', '--privileged', id, 'grep', '^CapEff', '/proc/self/status'])).trim()).toMatch(
      /^CapEff:\s+0*1ffffffffff$/,
    );
    expect(
      ok(await d.docker(['exec', '--privileged', id, 'cat', '/proc/self/uid_map']))
        .trim()
        .split(/\s+/),
    ).toEqual(['0', String(uidStart), '65536']);
    // a daemon restart finds it running, in its user namespace
    await d.stop();
    await d.start();
    expect(ok(await d.docker(['inspect', '--format', '{{.State.Status}}', id])).trim()).toBe('running');
    expect(
      ok(await d.docker(['exec', id, 'cat', '/proc/1/uid_map']))
        .trim()
        .split(/\s+/),
    ).toEqual(['0', String(uidStart), '65536']);
    ok(await d.docker(['rm', '-f', id]));
  });

  it('writes to a bind mount as the shifted ids; the writable layer, /etc files and volumes belong to the container root', async () => {
    const out = path.join(tmp, 'out');
    await mkdir(out, { mode: 0o777 });
    await chmod(out, 0o777);
    ok(
      await run([
        '-v',
        `${out}:/out`,
        'busybox',
        'sh',
        '-c',
        'echo hi > /out/root-file && chown 1000:1000 /out/root-file && echo x > /out/root2',
      ]),
    );
    expect((await stat(path.join(out, 'root-file'))).uid).toBe(uidStart + 1000);
    expect((await stat(path.join(out, 'root-file'))).gid).toBe(gidStart + 1000);
    expect((await stat(path.join(out, 'root2'))).uid).toBe(uidStart);
    // the rootfs: new files, replacing a directory of the image (an opaque dir in the upper layer)
    const rootfs = ok(
      await run([
        'busybox',
        'sh',
        '-c',
        'touch /newfile && rm -rf /home && mkdir /home && echo one > /home/only && ls /home && echo 127.0.0.1 x >> /etc/hosts; echo hosts=$?',
      ]),
    );
    expect(rootfs).toContain('only');
    expect(rootfs).not.toContain('app');
    expect(rootfs).toContain('hosts=0');
    expect(
      ok(await run(['-v', 'userns-vol:/data', 'busybox', 'sh', '-c', 'echo v > /data/f && ls -ln /data/f']))
        .split(/\s+/)
        .slice(2, 4),
    ).toEqual(['0', '0']);
    expect(ok(await run(['-v', 'userns-vol:/data', 'busybox', 'cat', '/data/f'])).trim()).toBe('v');
    ok(await d.docker(['volume', 'rm', 'userns-vol']));
  });

  it('read-only rootfs, read-only binds, tmpfs and a sized writable layer work from inside the user namespace', async () => {
    const ro = path.join(tmp, 'ro');
    await mkdir(ro, { mode: 0o755 });
    await writeFile(path.join(ro, 'f'), 'r\n');
    const out = ok(
      await run([
        '--read-only',
        '-v',
        `${ro}:/ro:ro`,
        '--tmpfs',
        '/scratch',
        'busybox',
        'sh',
        '-c',
        'touch /x 2>/dev/null; echo root=$?; touch /ro/y 2>/dev/null; echo ro=$?; cat /ro/f; touch /scratch/z && echo tmpfs=0',
      ]),
    );
    expect(out.split('\n').map((l) => l.trim())).toEqual(['root=1', 'ro=1', 'r', 'tmpfs=0']);
    // a sized writable layer (its own loop-mounted ext4) is the container root's too
    expect(
      ok(await run(['--storage-opt', 'size=64m', 'busybox', 'sh', '-c', 'rm -rf /home && mkdir /home && touch /home/x && ls /home'])),
    ).toBe('x');
  });

  it("docker cp shows and takes container ids; a stopped container's view keeps its opaque directories", async () => {
    const id = ok(await d.docker(['run', '-d', 'busybox', 'sleep', '300'])).trim();
    const src = path.join(tmp, 'cp-in');
    await writeFile(src, 'copied\n');
    ok(await d.docker(['cp', src, `${id}:/tmp/in`]));
    expect(
      ok(await d.docker(['exec', id, 'ls', '-ln', '/tmp/in']))
        .split(/\s+/)
        .slice(2, 4),
    ).toEqual(['0', '0']);
    const pid = Number(ok(await d.docker(['inspect', '--format', '{{.State.Pid}}', id])).trim());
    expect((await stat(`/proc/${pid}/root/tmp/in`)).uid).toBe(uidStart);
    ok(await d.docker(['rm', '-f', id]));

    const stopped = ok(await d.docker(['create', 'busybox', 'sh', '-c', 'rm -rf /home && mkdir /home && echo in > /home/new'])).trim();
    ok(await d.docker(['start', '-a', stopped]));
    const dest = path.join(tmp, 'cp-out');
    ok(await d.docker(['cp', `${stopped}:/home`, dest]));
    expect(await readdir(dest)).toEqual(['new']);
    // docker diff reads the overlay's own (trusted.*) marks, as without remapping
    const diff = ok(await d.docker(['diff', stopped])).split('\n');
    expect(diff).toContain('A /home/new');
    expect(diff).toContain('D /home/app');
    ok(await d.docker(['rm', stopped]));
  });

  it('--userns=host opts out (real root, privileged allowed); privileged or host network without it are refused as Docker does', async () => {
    expect(
      ok(await run(['--userns=host', 'busybox', 'cat', '/proc/self/uid_map']))
        .trim()
        .split(/\s+/),
    ).toEqual(['0', '0', '4294967295']);
    const hid = ok(await d.docker(['create', '--userns=host', 'busybox', 'true'])).trim();
    expect(ok(await d.docker(['inspect', '--format', '{{.HostConfig.UsernsMode}}', hid])).trim()).toBe('host');
    ok(await d.docker(['rm', hid]));
    expect(ok(await run(['--userns=host', '--privileged', 'busybox', 'id', '-u'])).trim()).toBe('0');
    const priv = await run(['--privileged', 'busybox', 'true']);
    expect(priv.exitCode).not.toBe(0);
    expect(priv.stderr).toContain(
      'privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode',
    );
    const net = await run(['--network', 'host', 'busybox', 'true']);
    expect(net.exitCode).not.toBe(0);
    expect(net.stderr).toContain("cannot share the host's network namespace when user namespaces are enabled");
    expect(ok(await run(['--userns=host', '--network', 'host', 'busybox', 'true']))).toBe('');
    // the refused creates leave nothing behind (--rm of the runs that did run is asynchronous)
    expect(ok(await d.docker(['ps', '-aq', '--filter', 'status=created'])).trim()).toBe('');
  });
});
