/**
 * Restart policies, `docker update` and json-file log rotation through the real docker CLI
 * against a `tvm daemon` running the real parts (host isolation, tvm-agent supervisors).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { startDaemonWithBusybox, type TestDaemon, type DockerOptions } from '../../fixtures/daemon.js';
import { until } from '../../fixtures/wait.js';

describe('restart policies, docker update, log rotation (docker CLI, real daemon)', () => {
  let d: TestDaemon;
  const run = (args: string[], opts: DockerOptions = {}) => d.docker(args, opts);
  const inspect = async (name: string, format: string) => (await run(['inspect', '-f', format, name])).stdout.trim();

  beforeAll(async () => {
    d = await startDaemonWithBusybox();
  });
  afterAll(async () => {
    await d?.destroy();
  });

  it('--restart on-failure:2 restarts a failing container twice, then leaves it exited', async () => {
    const since = String(Math.floor(Date.now() / 1000) - 1);
    const r = await run(['run', '-d', '--name', 'flaky', '--restart', 'on-failure:2', 'busybox', 'false']);
    expect(r.exitCode, r.stderr).toBe(0);
    const final = await until('flaky to give up', async () => {
      const s = await inspect(
        'flaky',
        '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}',
      );
      return s.startsWith('exited') && s.includes(' 2 ') ? s : undefined;
    });
    expect(final).toBe('exited 1 2 on-failure:2');
    const ev = await run([
      'events',
      '--since',
      since,
      '--until',
      String(Math.floor(Date.now() / 1000) + 1),
      '--filter',
      'container=flaky',
      '--format',
      '{{.Action}}',
    ]);
    expect(ev.stdout.split('\n')).toEqual(['create', 'start', 'die', 'start', 'die', 'start', 'die']);
  });

  it("refuses bad policies with Docker's messages", async () => {
    const bad = await run(['run', '-d', '--restart', 'sometimes', 'busybox', 'true']);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain("invalid restart policy: unknown policy 'sometimes'");
    const count = await run(['run', '-d', '--restart', 'always:3', 'busybox', 'true']);
    expect(count.exitCode).not.toBe(0);
    expect(count.stderr).toContain("invalid restart policy: maximum retry count can only be used with 'on-failure'");
  });

  it('--restart always restarts after any exit; docker stop stops it for good', async () => {
    const r = await run(['run', '-d', '--name', 'always', '--restart', 'always', 'busybox', 'sh', '-c', 'sleep 0.3; exit 3']);
    expect(r.exitCode, r.stderr).toBe(0);
    await until('two restarts', async () => (Number(await inspect('always', '{{.RestartCount}}')) >= 2 ? true : undefined));
    const stop = await run(['stop', '-t', '1', 'always']);
    expect(stop.exitCode, stop.stderr).toBe(0);
    const after = await inspect('always', '{{.State.Status}} {{.RestartCount}}');
    expect(after).toMatch(/^exited \d+$/);
    await new Promise((res) => setTimeout(res, 1500));
    expect(await inspect('always', '{{.State.Status}} {{.RestartCount}}')).toBe(after);
    await run(['rm', '-f', 'always']);
  });

  it("docker update changes a running container's limits live (cgroup v1 files), inspect shows them, forks beyond the pids limit fail", async () => {
    expect((await run(['run', '-d', '--name', 'upd', '-m', '64m', 'busybox', 'sleep', '1000'])).exitCode).toBe(0);
    const id = await inspect('upd', '{{.Id}}');
    const u = await run(['update', '--memory', '32m', '--pids-limit', '20', 'upd']);
    expect([u.exitCode, u.stdout, u.stderr]).toEqual([0, 'upd', '']);
    expect(await inspect('upd', '{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.PidsLimit}}')).toBe(
      `${32 * 1024 * 1024} ${128 * 1024 * 1024} 20`,
    );
    expect((await readFile(`/sys/fs/cgroup/memory/tvm/${id}/memory.limit_in_bytes`, 'utf8')).trim()).toBe(String(32 * 1024 * 1024));
    expect((await readFile(`/sys/fs/cgroup/pids/tvm/${id}/pids.max`, 'utf8')).trim()).toBe('20');
    const fork = await run([
      'exec',
      'upd',
      'sh',
      '-c',
      'i=0; while [ $i -lt 40 ]; do sleep 30 </dev/null >/dev/null 2>&1 & i=$((i+1)); done; echo started $i',
    ]);
    expect(fork.stderr).toMatch(/can't fork|Resource temporarily unavailable/);
    // raising past the current memory+swap: the agent moves memsw first, as the kernel requires
    const up = await run(['update', '--memory', '200m', '--memory-swap', '400m', 'upd']);
    expect([up.exitCode, up.stderr]).toEqual([0, '']);
    expect((await readFile(`/sys/fs/cgroup/memory/tvm/${id}/memory.limit_in_bytes`, 'utf8')).trim()).toBe(String(200 * 1024 * 1024));
    expect((await readFile(`/sys/fs/cgroup/memory/tvm/${id}/memory.memsw.limit_in_bytes`, 'utf8')).trim()).toBe(String(400 * 1024 * 1024));
    const down = await run(['update', '--memory', '32m', '--memory-swap', '64m', 'upd']);
    expect([down.exitCode, down.stderr]).toEqual([0, '']);
    expect((await readFile(`/sys/fs/cgroup/memory/tvm/${id}/memory.memsw.limit_in_bytes`, 'utf8')).trim()).toBe(String(64 * 1024 * 1024));
    // a restart keeps the new limits
    expect((await run(['restart', '-t', '0', 'upd'])).exitCode).toBe(0);
    expect((await readFile(`/sys/fs/cgroup/pids/tvm/${id}/pids.max`, 'utf8')).trim()).toBe('20');
    expect((await readFile(`/sys/fs/cgroup/memory/tvm/${id}/memory.limit_in_bytes`, 'utf8')).trim()).toBe(String(32 * 1024 * 1024));
    await run(['rm', '-f', 'upd']);
  });

  it('docker update refusals: memory without memory-swap above the recorded swap, a limit below the usage', async () => {
    expect((await run(['run', '-d', '--name', 'nolimit', 'busybox', 'sleep', '1000'])).exitCode).toBe(0);
    const id = await inspect('nolimit', '{{.Id}}');
    const swap = await run(['update', '--memory', '32m', 'nolimit']);
    expect(swap.exitCode).toBe(1);
    expect(swap.stderr).toContain(
      `Cannot update container ${id}: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time`,
    );
    // 24 MB in the container's /dev/shm (tmpfs, charged to its memory cgroup), then a limit far below it
    expect(
      (
        await run([
          'run',
          '-d',
          '--name',
          'hog',
          '-m',
          '256m',
          'busybox',
          'sh',
          '-c',
          'head -c 24000000 /dev/zero > /dev/shm/hog; echo ready; sleep 1000',
        ])
      ).exitCode,
    ).toBe(0);
    await until('hog to hold its memory', async () => ((await run(['logs', 'hog'])).stdout.includes('ready') ? true : undefined));
    const low = await run(['update', '--memory', '8m', '--memory-swap', '8m', 'hog']);
    expect(low.exitCode).toBe(1);
    expect(low.stderr).toMatch(
      /Cannot update container [0-9a-f]{64}: unable to set memory(\+swap)? limit to 8388608 \(current usage: \d+, peak usage: \d+\)/,
    );
    expect(await inspect('hog', '{{.HostConfig.Memory}}')).toBe(String(256 * 1024 * 1024));
    await run(['rm', '-f', 'nolimit', 'hog']);
  });

  it('docker update of a stopped container takes effect at its next start; --restart is updated too', async () => {
    expect((await run(['create', '--name', 'later', 'busybox', 'sleep', '1000'])).exitCode).toBe(0);
    const u = await run(['update', '--pids-limit', '7', '--cpu-shares', '512', '--restart', 'on-failure:3', 'later']);
    expect([u.exitCode, u.stderr]).toEqual([0, '']);
    expect(
      await inspect(
        'later',
        '{{.HostConfig.PidsLimit}} {{.HostConfig.CpuShares}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}',
      ),
    ).toBe('7 512 on-failure:3');
    expect((await run(['start', 'later'])).exitCode).toBe(0);
    const id = await inspect('later', '{{.Id}}');
    expect((await readFile(`/sys/fs/cgroup/pids/tvm/${id}/pids.max`, 'utf8')).trim()).toBe('7');
    expect((await readFile(`/sys/fs/cgroup/cpu/tvm/${id}/cpu.shares`, 'utf8')).trim()).toBe('512');
    const bad = await run(['update', '--restart', 'always', '--memory', '1m', 'later']);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('Minimum memory limit allowed is 6MB');
    await run(['rm', '-f', 'later']);
  });

  it('--log-opt max-size=100k max-file=3: ~1 MB of output leaves three files, none over the size; docker logs shows the newest lines in order', async () => {
    // 7000 lines of 100 bytes (~170 bytes each as json-file records)
    const script = 'i=0; while [ $i -lt 7000 ]; do printf "line %05d %088d\\n" $i 0; i=$((i+1)); done';
    const r = await run([
      'run',
      '--name',
      'chatty',
      '--log-opt',
      'max-size=100k',
      '--log-opt',
      'max-file=3',
      'busybox',
      'sh',
      '-c',
      script,
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await inspect('chatty', '{{json .HostConfig.LogConfig}}')).toBe(
      '{"Type":"json-file","Config":{"max-file":"3","max-size":"100k"}}',
    );
    const logPath = await inspect('chatty', '{{.LogPath}}');
    const files = (await readdir(path.dirname(logPath))).filter((f) => f.startsWith('log.jsonl')).sort();
    expect(files).toEqual(['log.jsonl', 'log.jsonl.1', 'log.jsonl.2']);
    for (const f of files) expect((await stat(path.join(path.dirname(logPath), f))).size).toBeLessThanOrEqual(100_000);
    const logs = (await run(['logs', 'chatty'])).stdout.split('\n');
    const nums = logs.map((l) => Number(/^line (\d{5}) /.exec(l)?.[1]));
    expect(nums.at(-1)).toBe(6999);
    expect(nums[0]).toBeGreaterThan(0);
    expect(nums).toEqual(nums.map((_, i) => nums[0]! + i));
    expect((await run(['logs', '--tail', '3', 'chatty'])).stdout.split('\n').map((l) => l.slice(0, 10))).toEqual([
      'line 06997',
      'line 06998',
      'line 06999',
    ]);
    const bad = await run(['run', '--rm', '--log-opt', 'max-sise=1m', 'busybox', 'true']);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain("unknown log opt 'max-sise' for json-file log driver");
    await run(['rm', 'chatty']);
  });

  it('docker logs -f follows across rotations: every line once, in order', async () => {
    const script = 'sleep 1; i=0; while [ $i -lt 3000 ]; do printf "line %05d %088d\\n" $i 0; i=$((i+1)); done';
    expect(
      (
        await run([
          'run',
          '-d',
          '--name',
          'rotfollow',
          '--log-opt',
          'max-size=40k',
          '--log-opt',
          'max-file=20',
          'busybox',
          'sh',
          '-c',
          script,
        ])
      ).exitCode,
    ).toBe(0);
    const f = await run(['logs', '-f', 'rotfollow']);
    expect(f.exitCode, f.stderr).toBe(0);
    const nums = f.stdout.split('\n').map((l) => Number(/^line (\d{5}) /.exec(l)?.[1]));
    expect(nums).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    const logPath = await inspect('rotfollow', '{{.LogPath}}');
    expect((await readdir(path.dirname(logPath))).filter((x) => x.startsWith('log.jsonl.')).length).toBeGreaterThan(5);
    await run(['rm', 'rotfollow']);
  });

  it('while it waits for its back-off a container shows as Restarting (docker ps, inspect)', async () => {
    expect((await run(['run', '-d', '--name', 'crashy', '--restart', 'always', 'busybox', 'sh', '-c', 'exit 1'])).exitCode).toBe(0);
    const ps = await until('crashy to be seen restarting', async () => {
      const out = (await run(['ps', '--filter', 'name=crashy', '--format', '{{.Status}}'])).stdout;
      return /^Restarting \(1\) .* ago$/.test(out) ? out : undefined;
    });
    expect(ps).toMatch(/^Restarting \(1\) (Less than a second|\d+ seconds?) ago$/);
    const st = await until('inspect to show it restarting', async () => {
      const s2 = await inspect('crashy', '{{.State.Status}} {{.State.Restarting}} {{.State.Running}}');
      return s2.startsWith('restarting') ? s2 : undefined;
    });
    expect(st).toBe('restarting true true');
    const rm = await run(['rm', '-f', 'crashy']);
    expect(rm.exitCode, rm.stderr).toBe(0);
    expect((await run(['ps', '-a', '--filter', 'name=crashy', '-q'])).stdout).toBe('');
  });

  it('after a daemon restart: always comes back if its workload died meanwhile; a stopped unless-stopped stays down', async () => {
    expect((await run(['run', '-d', '--name', 'boot', '--restart', 'always', 'busybox', 'sleep', '1000'])).exitCode).toBe(0);
    expect((await run(['run', '-d', '--name', 'parked', '--restart', 'unless-stopped', 'busybox', 'sleep', '1000'])).exitCode).toBe(0);
    expect((await run(['stop', '-t', '0', 'parked'])).exitCode).toBe(0);
    const pid = Number(await inspect('boot', '{{.State.Pid}}'));
    expect(pid).toBeGreaterThan(0);
    await d.stop();
    process.kill(pid, 'SIGKILL');
    await new Promise((res) => setTimeout(res, 300));
    await d.start();
    const back = await until('boot to run again', async () => {
      const s = await inspect('boot', '{{.State.Status}} {{.State.Pid}}');
      return s.startsWith('running') && !s.endsWith(` ${pid}`) ? s : undefined;
    });
    expect(back).toMatch(/^running \d+$/);
    expect(await inspect('parked', '{{.State.Status}}')).toBe('exited');
    await run(['rm', '-f', 'boot', 'parked']);
  });
});
