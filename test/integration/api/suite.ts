/**
 * The docker CLI suite, run against a `tvm daemon` on a temp socket. Parameterised by
 * isolation (add 'vm' when it exists) and by whether the daemon runs the real parts or the
 * fakes (the fakes cannot enforce limits nor survive a daemon restart: those cases need real).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { writeFile, readFile, mkdtemp, mkdir, rm, symlink } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startTestDaemon, missingRealParts, requireDocker, type TestDaemon, type DockerOptions } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';
import { until } from '../../fixtures/wait.js';

function rawRequest(socket: string, req: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socket);
    let out = '';
    s.on('connect', () => s.write(req));
    s.on('data', (d) => {
      out += d.toString();
      if (out.includes('\r\n\r\n') && /\r\n\r\n[\s\S]*\}\n?$/.test(out)) s.end();
    });
    s.on('close', () => resolve(out));
    s.on('error', reject);
  });
}

export function dockerCliSuite(isolations: string[], o: { fake: boolean }): void {
  describe.each(isolations)('docker CLI against tvm daemon (--isolation=%s)', (isolation) => {
    let d: TestDaemon;
    let tmp: string;
    const run = (args: string[], opts: DockerOptions = {}) => d.docker(args, opts);
    const runIso = (args: string[], opts: DockerOptions = {}) => d.docker(['run', `--isolation=${isolation}`, ...args], opts);
    // what differs between the isolations is declared only where it applies (nothing is skipped)
    const vm = isolation === 'vm';
    const when = (cond: boolean, name: string, fn: () => Promise<void>) => {
      if (cond) it(name, fn);
    };

    beforeAll(async () => {
      requireDocker();
      if (!o.fake) {
        const missing = missingRealParts();
        if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
      }
      d = await startTestDaemon({ fake: o.fake });
      tmp = await mkdtemp(path.join(os.tmpdir(), 'tvm-cli-'));
      await writeFile(path.join(tmp, 'busybox.tar'), await busyboxDockerArchive());
      const load = await run(['load', '-i', path.join(tmp, 'busybox.tar')]);
      expect(load.stderr).toBe('');
      expect(load.stdout).toContain('Loaded image: busybox:latest');
    });
    afterAll(async () => {
      if (d) {
        const ids = (await run(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
        if (ids.length > 0) await run(['rm', '-f', ...ids]);
        await d.destroy();
      }
      if (tmp) await rm(tmp, { recursive: true, force: true });
    });

    it('docker version and info talk to tvm', async () => {
      const v = await run(['version', '--format', '{{.Server.Version}} {{.Server.APIVersion}} {{.Client.APIVersion}}']);
      expect(v.exitCode, v.stderr).toBe(0);
      expect(v.stdout.trim()).toBe('0.1.0 1.50 1.50');
      const i = await run(['info', '--format', '{{.Driver}} {{.OSType}} {{.Images}}']);
      expect(i.stdout.trim()).toBe('tvm linux 1');
      const imgs = await run(['images', '--format', '{{.Repository}}:{{.Tag}}']);
      expect(imgs.stdout.trim()).toBe('busybox:latest');
    });

    it('docker run --rm busybox echo hi', async () => {
      const r = await runIso(['--rm', 'busybox', 'echo', 'hi']);
      expect([r.exitCode, r.stdout, r.stderr]).toEqual([0, 'hi', '']);
      expect((await run(['ps', '-aq'])).stdout).toBe('');
    });

    it('passes exit codes and stderr through', async () => {
      const r = await runIso(['--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
      expect([r.exitCode, r.stdout, r.stderr]).toEqual([3, 'out', 'err']);
      const missing = await runIso(['--rm', 'busybox', '/nonexistent']);
      expect(missing.exitCode).toBe(127);
    });

    it('-d, exec, logs -f, stop, rm', async () => {
      const r = await runIso([
        '-d',
        '--name',
        'ticker',
        'busybox',
        'sh',
        '-c',
        'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done',
      ]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^[0-9a-f]{64}$/);
      const ex = await run(['exec', 'ticker', 'sh', '-c', 'echo in-exec; exit 4']);
      expect([ex.exitCode, ex.stdout]).toEqual([4, 'in-exec']);
      const follow = run(['logs', '-f', 'ticker']);
      await until('two ticks in the log', async () => ((await run(['logs', 'ticker'])).stdout.includes('tick 2') ? true : undefined));
      const ps = await run(['ps', '--format', '{{.Names}} {{.Status}}']);
      expect(ps.stdout).toMatch(/^ticker Up /);
      const stop = await run(['stop', '-t', '2', 'ticker']);
      expect(stop.stdout).toBe('ticker');
      const f = await follow;
      expect(f.exitCode).toBe(0);
      expect(f.stdout).toContain('tick 0\ntick 1\ntick 2');
      const tail = await run(['logs', '--tail', '1', 'ticker']);
      expect(tail.stdout.split('\n')).toHaveLength(1);
      const state = await run(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}} {{.HostConfig.Isolation}}', 'ticker']);
      // In its own PID namespace the shell is PID 1 and ignores SIGTERM: stop ends in SIGKILL,
      // as with Docker. The fakes run it as an ordinary process, which SIGTERM ends.
      expect(state.stdout).toBe(`exited ${o.fake ? 143 : 137} ${isolation}`);
      expect((await run(['rm', 'ticker'])).exitCode).toBe(0);
      expect((await run(['inspect', 'ticker'])).exitCode).toBe(1);
    });

    it('env, user and workdir', async () => {
      const r = await runIso(['--rm', '-e', 'FOO=bar', '-u', 'app', '-w', '/tmp', 'busybox', 'sh', '-c', 'echo $FOO; id -u; pwd']);
      expect([r.exitCode, r.stdout]).toEqual([0, 'bar\n1000\n/tmp']);
    });

    it('stdin with -i', async () => {
      const r = await runIso(['--rm', '-i', 'busybox', 'sh', '-c', 'cat; echo end'], { input: 'from stdin\n' });
      expect([r.exitCode, r.stdout]).toEqual([0, 'from stdin\nend']);
    });

    when(vm, 'docker cp both ways (a VM: in before it starts, both ways while it runs and after it stopped)', async () => {
      const c = await run([
        'create',
        `--isolation=${isolation}`,
        '--name',
        'cpbox',
        'busybox',
        'sh',
        '-c',
        'cat /tmp/in.txt; echo made > /tmp/made; sleep 60',
      ]);
      expect(c.exitCode, c.stderr).toBe(0);
      await writeFile(path.join(tmp, 'in.txt'), 'copied in\n');
      const cin = await run(['cp', path.join(tmp, 'in.txt'), 'cpbox:/tmp/']);
      expect(cin.exitCode, cin.stderr).toBe(0);
      expect((await run(['start', 'cpbox'])).exitCode).toBe(0);
      await until('the copied file in the log', async () => ((await run(['logs', 'cpbox'])).stdout === 'copied in' ? true : undefined));
      // out of a running VM: through its frozen disk
      await until('the made file', async () => ((await run(['exec', 'cpbox', 'cat', '/tmp/made'])).stdout === 'made' ? true : undefined));
      const live = await run(['cp', 'cpbox:/tmp/made', path.join(tmp, 'made.live')]);
      expect(live.exitCode, live.stderr).toBe(0);
      expect(await readFile(path.join(tmp, 'made.live'), 'utf8')).toBe('made\n');
      expect((await run(['exec', 'cpbox', 'echo', 'thawed'])).stdout).toBe('thawed');
      // in while it runs: through the guest agent, a file under a new name, a tree with a
      // symlink and a mode, and a file big enough to need many frames
      const cinLive = await run(['cp', path.join(tmp, 'in.txt'), 'cpbox:/tmp/again.txt']);
      expect(cinLive.exitCode, cinLive.stderr).toBe(0);
      await mkdir(path.join(tmp, 'tree', 'sub'), { recursive: true });
      await writeFile(path.join(tmp, 'tree', 'sub', 'f'), 'deep\n', { mode: 0o751 });
      await symlink('sub/f', path.join(tmp, 'tree', 'ln'));
      const big = randomBytes(3 * 1024 * 1024 + 17);
      await writeFile(path.join(tmp, 'tree', 'big'), big);
      const ctree = await run(['cp', path.join(tmp, 'tree'), 'cpbox:/tmp/']);
      expect(ctree.exitCode, ctree.stderr).toBe(0);
      const seen = await run([
        'exec',
        'cpbox',
        'sh',
        '-c',
        'cat /tmp/again.txt /tmp/tree/ln; stat -c %a /tmp/tree/sub/f; readlink /tmp/tree/ln; md5sum < /tmp/tree/big',
      ]);
      expect(seen.stdout).toBe(`copied in\ndeep\n751\nsub/f\n${createHash('md5').update(big).digest('hex')}  -`);
      const cinMissing = await run(['cp', path.join(tmp, 'in.txt'), 'cpbox:/nope/x']);
      expect(cinMissing.exitCode).toBe(1);
      expect(cinMissing.stderr).toMatch(/Could not find the file \/nope in container/);
      await run(['stop', '-t', '1', 'cpbox']);
      const cout = await run(['cp', 'cpbox:/tmp/made', path.join(tmp, 'made.out')]);
      expect(cout.exitCode, cout.stderr).toBe(0);
      expect(await readFile(path.join(tmp, 'made.out'), 'utf8')).toBe('made\n');
      const missing = await run(['cp', 'cpbox:/nope', tmp]);
      expect(missing.exitCode).toBe(1);
      expect(missing.stderr).toMatch(/Could not find the file \/nope in container/);
      await run(['rm', '-f', 'cpbox']);
    });

    when(!vm, 'docker cp both ways', async () => {
      await runIso(['-d', '--name', 'cpbox', 'busybox', 'sleep', '60']);
      await writeFile(path.join(tmp, 'in.txt'), 'copied in\n');
      const cin = await run(['cp', path.join(tmp, 'in.txt'), 'cpbox:/tmp/']);
      expect(cin.exitCode, cin.stderr).toBe(0);
      expect((await run(['exec', 'cpbox', 'cat', '/tmp/in.txt'])).stdout).toBe('copied in');
      const cout = await run(['cp', 'cpbox:/etc/passwd', path.join(tmp, 'passwd.out')]);
      expect(cout.exitCode, cout.stderr).toBe(0);
      expect(await readFile(path.join(tmp, 'passwd.out'), 'utf8')).toMatch(/^root:x:0:0/);
      const missing = await run(['cp', 'cpbox:/nope', tmp]);
      expect(missing.exitCode).toBe(1);
      expect(missing.stderr).toMatch(/Could not find the file \/nope in container/);
      await run(['rm', '-f', 'cpbox']);
    });

    it('docker events reports the lifecycle', async () => {
      const since = String(Math.floor(Date.now() / 1000) - 1);
      const r = await runIso(['--name', 'evt', 'busybox', 'true']);
      expect(r.exitCode).toBe(0);
      await run(['rm', 'evt']);
      const ev = await run([
        'events',
        '--since',
        since,
        '--until',
        String(Math.floor(Date.now() / 1000) + 1),
        '--filter',
        'container=evt',
        '--format',
        '{{.Action}}',
      ]);
      expect(ev.stdout.split('\n')).toEqual(['create', 'attach', 'start', 'die', 'destroy']);
    });

    when(o.fake, 'refuses --isolation=vm clearly where it is not available', async () => {
      const r = await run(['run', '--rm', '--isolation=hyperv', 'busybox', 'true']);
      expect(r.exitCode).toBe(125);
      expect(r.stderr).toMatch(
        /isolation "vm" \(hyperv\) is not available in this tvm daemon: it needs a usable \/dev\/kvm or qemu-system-x86_64/,
      );
    });

    it('bad input: unknown container 404, name conflict 409, bad JSON 400, unknown image', async () => {
      const nf = await run(['stop', 'nosuchthing']);
      expect(nf.exitCode).toBe(1);
      expect(nf.stderr).toMatch(/No such container: nosuchthing/);
      await run(['create', '--name', 'taken', 'busybox', 'true']);
      const dup = await run(['create', '--name', 'taken', 'busybox', 'true']);
      expect(dup.exitCode).not.toBe(0);
      expect(dup.stderr).toMatch(/Conflict\. The container name "\/taken" is already in use by container/);
      await run(['rm', 'taken']);
      const bad = await rawRequest(
        d.socket,
        'POST /v1.50/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{"Image":',
      );
      expect(bad).toMatch(/^HTTP\/1\.1 400/);
      expect(bad).toMatch(/"message":"invalid JSON/);
      const mem = await runIso(['--rm', '-m', '1', 'busybox', 'true']);
      expect(mem.stderr).toMatch(/Minimum memory limit allowed is 6MB/);
      const port = await runIso(['--rm', '-p', '8080:80', 'busybox', 'true']);
      // the fakes have no networks; the real test daemon has no default bridge (--bridge none)
      expect(port.stderr).toMatch(
        o.fake ? /port publishing is not supported yet/ : /conflicting options: port publishing and the container type network mode/,
      );
      const noimg = await runIso(['--rm', 'ghost:1', 'true']);
      expect(noimg.exitCode).toBe(125);
      expect(noimg.stderr).toMatch(/ghost/);
    });

    if (!o.fake) {
      it('run -it and exec -it through a pty', async () => {
        const r = await execa(
          'script',
          ['-qec', `docker run --rm -it --isolation=${isolation} busybox sh -c 'tty; echo tty-ok'`, '/dev/null'],
          {
            env: { DOCKER_HOST: d.host },
            reject: false,
            timeout: 60_000,
            input: '',
          },
        );
        expect(r.exitCode, r.stderr).toBe(0);
        expect(String(r.stdout)).toMatch(/\/dev\/pts\/\d+/);
        expect(String(r.stdout)).toContain('tty-ok');
        await runIso(['-d', '--name', 'ttybox', 'busybox', 'sleep', '60']);
        const ex = await execa('script', ['-qec', `docker exec -it ttybox sh -c 'tty; exit 3'`, '/dev/null'], {
          env: { DOCKER_HOST: d.host },
          reject: false,
          timeout: 60_000,
          input: '',
        });
        expect(ex.exitCode).toBe(3);
        expect(String(ex.stdout)).toMatch(/\/dev\/pts\/\d+/);
        await run(['rm', '-f', 'ttybox']);
      });

      when(vm, 'volumes and binds are refused for VMs (not ignored)', async () => {
        const v = await runIso(['--rm', '-v', 'vmvol:/data', 'busybox', 'true']);
        expect(v.exitCode).toBe(125);
        expect(v.stderr).toMatch(/named volumes \(\/data\) are not supported with --isolation=vm yet/);
        const b = await runIso(['--rm', '-v', `${tmp}:/host:ro`, 'busybox', 'true']);
        expect(b.stderr).toMatch(/bind mounts \(\/host\) are not supported with --isolation=vm yet/);
        expect((await run(['ps', '-aq'])).stdout).toBe('');
        await run(['volume', 'rm', 'vmvol']);
      });

      when(!vm, 'volumes: created on use, persistent, read-only, binds; anonymous ones go with --rm', async () => {
        const w = await runIso(['--rm', '-v', 'vol1:/data', 'busybox', 'sh', '-c', 'echo persisted > /data/x']);
        expect(w.exitCode, w.stderr).toBe(0);
        const ro = await runIso(['--rm', '-v', 'vol1:/data:ro', 'busybox', 'sh', '-c', 'cat /data/x; touch /data/y']);
        expect([ro.exitCode, ro.stdout]).toEqual([1, 'persisted']);
        expect(ro.stderr).toMatch(/Read-only file system/);
        await writeFile(path.join(tmp, 'bound.txt'), 'from host\n');
        expect((await runIso(['--rm', '-v', `${tmp}:/host:ro`, 'busybox', 'cat', '/host/bound.txt'])).stdout).toBe('from host');
        await runIso(['--rm', '-v', '/anon', 'busybox', 'true']);
        expect((await run(['volume', 'ls', '-q'])).stdout).toBe('vol1');
        expect((await run(['volume', 'rm', 'vol1'])).exitCode).toBe(0);
      });

      it('docker export of a running and a stopped container holds its own filesystem only', async () => {
        await runIso(['-d', '--name', 'exp', 'busybox', 'sh', '-c', 'echo mine > /tmp/mark; sleep 60']);
        await until('the mark file', async () => ((await run(['exec', 'exp', 'cat', '/tmp/mark'])).stdout === 'mine' ? true : undefined));
        for (const phase of ['running', 'stopped']) {
          const out = path.join(tmp, `export-${phase}.tar`);
          const ex = await run(['export', '-o', out, 'exp']);
          expect(ex.exitCode, ex.stderr).toBe(0);
          const names = String((await execa('tar', ['-tf', out])).stdout)
            .split('\n')
            .map((n) => n.replace(/^\.\//, ''));
          expect(names).toContain('bin/busybox');
          expect(names).toContain('tmp/mark');
          // mount points are there, their pseudo-filesystem contents are not
          expect(names.filter((n) => n.startsWith('proc/') && n !== 'proc/')).toEqual([]);
          if (phase === 'running') await run(['stop', '-t', '1', 'exp']);
        }
        await run(['rm', 'exp']);
      });

      it('a killed agent ends its container with a clear status, never a hang', async () => {
        const id = (await runIso(['-d', 'busybox', 'sleep', '60'])).stdout;
        // the container's supervisor: the host agent, or the VM's supervisor (QEMU dies with it)
        const agentPid = Number(await readFile(path.join(d.dataRoot, 'containers', id, vm ? 'supervisor.pid' : 'agent.pid'), 'utf8'));
        process.kill(agentPid, 'SIGKILL');
        const w = await run(['wait', id], { timeout: 30_000 });
        expect([w.exitCode, w.stdout]).toEqual([0, '255']);
        expect((await run(['inspect', '-f', '{{.State.Status}}|{{.State.Error}}', id])).stdout).toBe(
          'exited|lost track of the container: agent connection closed',
        );
        expect((await run(['rm', id])).exitCode).toBe(0);
      });

      it('rm -f of a paused container', async () => {
        await runIso(['-d', '--name', 'frozen', 'busybox', 'sleep', '60']);
        expect((await run(['pause', 'frozen'])).exitCode).toBe(0);
        const rm = await run(['rm', '-f', 'frozen']);
        expect(rm.exitCode, rm.stderr).toBe(0);
        expect((await run(['ps', '-aq', '-f', 'name=frozen'])).stdout).toBe('');
      });

      it('enforces memory and pids limits', async () => {
        const oom = await runIso([
          '--name',
          'oomer',
          '-m',
          '16m',
          'busybox',
          'sh',
          '-c',
          'x=$(head -c 80000000 /dev/zero | tr "\\0" a); echo ${#x}',
        ]);
        expect(oom.exitCode).toBe(137);
        expect((await run(['inspect', '-f', '{{.State.OOMKilled}}', 'oomer'])).stdout).toBe('true');
        await run(['rm', 'oomer']);
        const pids = await runIso([
          '--rm',
          '--pids-limit',
          '5',
          'busybox',
          'sh',
          '-c',
          'for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; wait',
        ]);
        expect(pids.stderr).toMatch(/can't fork|Resource temporarily unavailable/);
      });

      it('a running container survives a daemon restart', async () => {
        await runIso(['-d', '--name', 'survivor', 'busybox', 'sh', '-c', 'i=0; while true; do echo beat $i; i=$((i+1)); sleep 0.2; done']);
        await d.stop();
        await new Promise((r) => setTimeout(r, 500));
        await d.start();
        const st = await run(['inspect', '-f', '{{.State.Status}}', 'survivor']);
        expect(st.stdout).toBe('running');
        const before = (await run(['logs', 'survivor'])).stdout.split('\n').length;
        await until('more beats after the restart', async () =>
          (await run(['logs', 'survivor'])).stdout.split('\n').length > before + 2 ? true : undefined,
        );
        const stop = await run(['stop', '-t', '2', 'survivor']);
        expect(stop.exitCode, stop.stderr).toBe(0);
        expect((await run(['inspect', '-f', '{{.State.Status}}', 'survivor'])).stdout).toBe('exited');
        await run(['rm', 'survivor']);
      });
    }
  });
}
