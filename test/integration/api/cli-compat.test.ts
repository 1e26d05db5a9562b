/**
 * What docker CLI users do beyond the main suite: clients pinned to older API versions
 * (DOCKER_API_VERSION) drive the everyday commands, and `docker start -a` re-runs an exited
 * container attached (the CLI attaches before it starts).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startDaemonWithBusybox, type TestDaemon } from '../../fixtures/daemon.js';

describe('docker CLI compatibility', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemonWithBusybox();
  });
  afterAll(async () => {
    await d?.destroy();
  });

  it.each(['1.24', '1.30', '1.41', '1.44'])('API %s: run, run -d, ps, inspect, exec, logs, rm -f', async (v) => {
    const env = { DOCKER_API_VERSION: v };
    const run = await d.docker(['run', '--rm', 'busybox', 'echo', `hi-${v}`], { env });
    expect([run.exitCode, run.stdout, run.stderr]).toEqual([0, `hi-${v}`, '']);
    const name = `old${v.replace('.', '')}`;
    const det = await d.docker(['run', '-d', '--name', name, 'busybox', 'sh', '-c', 'echo started; sleep 30'], { env });
    expect(det.exitCode, det.stderr).toBe(0);
    expect((await d.docker(['ps', '--format', '{{.Names}}'], { env })).stdout).toBe(name);
    expect((await d.docker(['inspect', '-f', '{{.State.Status}} {{.HostConfig.Isolation}}', name], { env })).stdout).toBe(
      'running container',
    );
    expect((await d.docker(['exec', name, 'echo', 'ex'], { env })).stdout).toBe('ex');
    let logs = '';
    for (let i = 0; i < 50 && logs === ''; i++) {
      logs = (await d.docker(['logs', name], { env })).stdout;
      if (logs === '') await new Promise((r) => setTimeout(r, 100));
    }
    expect(logs).toBe('started');
    const rm = await d.docker(['rm', '-f', name], { env });
    expect([rm.exitCode, rm.stdout]).toEqual([0, name]);
  });

  it('docker start -a on an exited container runs it again with its output attached', async () => {
    const first = await d.docker(['run', '--name', 'again', 'busybox', 'sh', '-c', 'echo run; exit 3']);
    expect([first.exitCode, first.stdout]).toEqual([3, 'run']);
    const again = await d.docker(['start', '-a', 'again']);
    expect([again.exitCode, again.stdout, again.stderr]).toEqual([3, 'run', '']);
    expect((await d.docker(['logs', 'again'])).stdout).toBe('run\nrun');
    await d.docker(['rm', 'again']);
  });
});
