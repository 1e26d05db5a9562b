/**
 * API version negotiation: the docker CLI pinned to older API versions (DOCKER_API_VERSION)
 * drives the everyday commands against tvm, as clients of older Docker releases would.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestDaemon, missingRealParts, requireDocker, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';

describe('older API clients', () => {
  let d: TestDaemon;
  let tmp: string;
  beforeAll(async () => {
    requireDocker();
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
    d = await startTestDaemon();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tvm-oldcli-'));
    await writeFile(path.join(tmp, 'busybox.tar'), await busyboxDockerArchive());
    expect((await d.docker(['load', '-i', path.join(tmp, 'busybox.tar')])).stdout).toContain('Loaded image: busybox:latest');
  });
  afterAll(async () => {
    await d?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it.each(['1.24', '1.30', '1.41', '1.44'])('API %s: run, run -d, ps, inspect, exec, logs, rm -f', async (v) => {
    const env = { DOCKER_API_VERSION: v };
    const run = await d.docker(['run', '--rm', 'busybox', 'echo', `hi-${v}`], { env });
    expect([run.exitCode, run.stdout, run.stderr]).toEqual([0, `hi-${v}`, '']);
    const name = `old${v.replace('.', '')}`;
    const det = await d.docker(['run', '-d', '--name', name, 'busybox', 'sh', '-c', 'echo started; sleep 30'], { env });
    expect(det.exitCode, det.stderr).toBe(0);
    expect((await d.docker(['ps', '--format', '{{.Names}}'], { env })).stdout).toBe(name);
    expect((await d.docker(['inspect', '-f', '{{.State.Status}} {{.HostConfig.Isolation}}', name], { env })).stdout).toBe('running container');
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
});
