/**
 * `docker login`, `docker pull` and `docker run` against a private registry (Debian's
 * docker-registry with htpasswd auth, on loopback) through tvm: POST /auth checks the
 * credentials, the docker CLI keeps them and sends them with the pull (X-Registry-Auth).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, type RunningRegistry } from '../../fixtures/registry.js';
import { busyboxImage, pushImage } from '../../fixtures/oci.js';
import { startTestDaemon, requireDocker, missingRealParts, type TestDaemon } from '../../fixtures/daemon.js';
import { RegistryClient } from '../../../src/images/registry.js';
import { loginDomain } from '../../../src/images/store.js';

const alice = { username: 'alice', password: 'wonder land' };

describe('docker login / pull / run from a private registry through tvm', () => {
  let reg: RunningRegistry;
  let d: TestDaemon;
  let dockerConfig: string;

  beforeAll(async () => {
    requireDocker();
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
    reg = await startRegistry({ auth: { kind: 'htpasswd', users: [alice] } });
    const pusher = new RegistryClient(reg.host, { credentials: alice });
    await pushImage(pusher, 'private/app', 'v1', await busyboxImage());
    await pusher.close();
    // one download at a time: the daemon takes Docker's flag, and pulls still complete
    d = await startTestDaemon({ daemonArgs: ['--max-concurrent-downloads', '1'] });
    dockerConfig = await mkdtemp(path.join(os.tmpdir(), 'tvm-docker-config-'));
  });
  afterAll(async () => {
    await d?.destroy();
    await reg?.stop();
    if (dockerConfig) await rm(dockerConfig, { recursive: true, force: true });
  });

  const docker = (args: string[], input?: string) =>
    d.docker(args, { env: { DOCKER_CONFIG: dockerConfig }, ...(input !== undefined && { input }) });

  it('refuses a pull without credentials and a login with a wrong password', async () => {
    const anon = await docker(['pull', `${reg.host}/private/app:v1`]);
    expect(anon.exitCode).not.toBe(0);
    expect(anon.stderr).toMatch(/no basic auth credentials/);
    const wrong = await docker(['login', '-u', 'alice', '--password-stdin', reg.host], 'nope\n');
    expect(wrong.exitCode).not.toBe(0);
    expect(wrong.stderr).toMatch(/unauthorized/i);
  });

  it('logs in, then pulls and runs the private image', async () => {
    const ok = await docker(['login', '-u', 'alice', '--password-stdin', reg.host], `${alice.password}\n`);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('Login Succeeded');
    const pull = await docker(['pull', `${reg.host}/private/app:v1`]);
    expect(pull.exitCode, pull.stderr).toBe(0);
    expect(pull.stdout).toContain(`Status: Downloaded newer image for ${reg.host}/private/app:v1`);
    const run = await docker(['run', '--rm', `${reg.host}/private/app:v1`, 'echo', 'from the private registry']);
    expect([run.exitCode, run.stdout]).toEqual([0, 'from the private registry']);
  });

  it('names the registry a login server address means, as Docker does', () => {
    expect(loginDomain('')).toBe('docker.io');
    expect(loginDomain('https://index.docker.io/v1/')).toBe('docker.io');
    expect(loginDomain('http://127.0.0.1:5000/v2/')).toBe('127.0.0.1:5000');
    expect(loginDomain('Registry.Example.com:443')).toBe('registry.example.com:443');
  });
});
