/**
 * What a user of the real docker CLI sees when a pull through tvm fails: Docker 28's sentence
 * after "Error response from daemon:", and the HTTP status Docker's API answers with (404 for
 * an image that is not there, 500 for a registry that cannot be reached).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Agent, request } from 'undici';
import { startRegistry, freePort, type RunningRegistry } from '../../fixtures/registry.js';
import { busyboxImage, pushImage } from '../../fixtures/oci.js';
import { startTestDaemon, requireDocker, missingRealParts, type TestDaemon } from '../../fixtures/daemon.js';
import { RegistryClient } from '../../../src/images/registry.js';

describe('docker pull errors through tvm', () => {
  let reg: RunningRegistry;
  let d: TestDaemon;

  beforeAll(async () => {
    requireDocker();
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
    reg = await startRegistry();
    const c = new RegistryClient(reg.host);
    await pushImage(c, 'test/app', 'v1', await busyboxImage());
    await c.close();
    d = await startTestDaemon();
  });
  afterAll(async () => {
    await d?.destroy();
    await reg?.stop();
  });

  it("prints Docker's words", async () => {
    const missing = await d.docker(['pull', `${reg.host}/test/app:nope`]);
    expect(missing.exitCode).not.toBe(0);
    expect(missing.stderr).toContain(
      `Error response from daemon: manifest for ${reg.host}/test/app:nope not found: manifest unknown: manifest unknown`,
    );
    const port = await freePort();
    const refused = await d.docker(['pull', `127.0.0.1:${port}/test/app:v1`]);
    expect(refused.stderr).toContain(
      `Error response from daemon: Get "http://127.0.0.1:${port}/v2/": dial tcp 127.0.0.1:${port}: connect: connection refused`,
    );
  });

  it('answers POST /images/create with 404 / 500 before any progress, as Docker does', async () => {
    const agent = new Agent({ connect: { socketPath: d.socket } });
    try {
      const create = async (fromImage: string, tag: string) => {
        const res = await request(`http://tvm/v1.47/images/create?fromImage=${encodeURIComponent(fromImage)}&tag=${tag}`, {
          method: 'POST',
          dispatcher: agent,
        });
        return { status: res.statusCode, body: (await res.body.json()) as { message?: string } };
      };
      expect(await create(`${reg.host}/test/app`, 'nope')).toEqual({
        status: 404,
        body: { message: `manifest for ${reg.host}/test/app:nope not found: manifest unknown: manifest unknown` },
      });
      const unknown = await create('nosuchhost.invalid/team/app', 'v1');
      expect(unknown.status).toBe(500);
      expect(unknown.body.message).toBe('Get "https://nosuchhost.invalid/v2/": dial tcp: lookup nosuchhost.invalid: no such host');
    } finally {
      await agent.close();
    }
  });
});
