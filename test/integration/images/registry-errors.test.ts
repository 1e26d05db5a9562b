/**
 * Pull failures against a real registry (Debian's docker-registry) read as Docker 28's, with
 * Docker's HTTP statuses: not found 404, everything else 500. The auth cases (no basic auth
 * credentials, unauthorized, pull access denied) are in registry-auth.test.ts.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, freePort, type RunningRegistry } from '../../fixtures/registry.js';
import { busyboxImage, pushImage } from '../../fixtures/oci.js';
import { RegistryClient } from '../../../src/images/registry.js';
import { Store } from '../../../src/images/store.js';
import { NotFoundError } from '../../../src/errors.js';

describe("pull errors in Docker's words", () => {
  let reg: RunningRegistry;
  let dir: string;
  let store: Store;
  const failure = async (ref: string) => {
    const e = (await store.pull(ref).catch((x: unknown) => x)) as Error & { status: number };
    expect(e).toBeInstanceOf(Error);
    return e;
  };

  beforeAll(async () => {
    reg = await startRegistry();
    const c = new RegistryClient(reg.host);
    await pushImage(c, 'test/app', 'v1', await busyboxImage());
    await c.close();
    dir = mkdtempSync(path.join(os.tmpdir(), 'tvm-registry-errors-'));
    store = new Store(dir, { dockerConfigPath: path.join(dir, 'no-config.json') });
  });
  afterAll(async () => {
    await reg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a missing tag, repository or digest: manifest ... not found, 404', async () => {
    for (const [ref, shown] of [
      [`${reg.host}/test/app:nope`, `${reg.host}/test/app:nope`],
      [`${reg.host}/test/none:v1`, `${reg.host}/test/none:v1`],
      [`${reg.host}/test/app@sha256:${'0'.repeat(64)}`, `${reg.host}/test/app@sha256:${'0'.repeat(64)}`],
    ]) {
      const e = await failure(ref!);
      expect(e).toBeInstanceOf(NotFoundError);
      expect([e.message, e.status]).toEqual([`manifest for ${shown} not found: manifest unknown: manifest unknown`, 404]);
    }
    expect(await store.list()).toEqual([]);
  });

  it('an unknown host: Get "https://h/v2/": dial tcp: lookup h: no such host, 500', async () => {
    const e = await failure('nosuchhost.invalid/team/app:v1');
    expect([e.message, e.status]).toEqual(['Get "https://nosuchhost.invalid/v2/": dial tcp: lookup nosuchhost.invalid: no such host', 500]);
  });

  it('nothing listening: connect: connection refused, 500', async () => {
    const port = await freePort();
    const e = await failure(`127.0.0.1:${port}/team/app:v1`);
    expect([e.message, e.status]).toEqual([
      `Get "http://127.0.0.1:${port}/v2/": dial tcp 127.0.0.1:${port}: connect: connection refused`,
      500,
    ]);
  });

  it('TLS to a plain HTTP registry: http: server gave HTTP response to HTTPS client', async () => {
    const c = new RegistryClient(reg.host, { scheme: 'https' });
    try {
      await expect(c.resolveImage('test/app', 'v1')).rejects.toMatchObject({
        message: `Get "https://${reg.host}/v2/": http: server gave HTTP response to HTTPS client`,
        status: 500,
      });
    } finally {
      await c.close();
    }
  });
});

describe('error bodies from a hostile registry', () => {
  it('reads at most a bounded prefix of an error body (an endless one does not hang or fill memory)', async () => {
    const http = await import('node:http');
    const server = http.createServer((req, res) => {
      if (req.url === '/v2/') {
        res.writeHead(200).end();
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.write('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"');
      const chunk = Buffer.alloc(64 << 10, 0x61);
      const pump = () => {
        while (res.write(chunk));
      };
      res.on('drain', pump);
      pump();
      req.socket.on('close', () => res.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const c = new RegistryClient(`127.0.0.1:${port}`);
    try {
      const err = await c.getManifest('test/endless', 'v1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as { status?: number }).status).toBe(404);
    } finally {
      await c.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }, 20_000);
});

describe('token answers from a hostile token server', () => {
  it('an endless 200 token answer is refused after a bounded read, not read forever', async () => {
    const http = await import('node:http');
    const { fetchBearerToken } = await import('../../../src/images/auth.js');
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"token":"');
      const chunk = Buffer.alloc(64 << 10, 0x61);
      const pump = () => {
        while (res.write(chunk));
      };
      res.on('drain', pump);
      pump();
      req.socket.on('close', () => res.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    try {
      const err = await fetchBearerToken(
        { scheme: 'bearer', params: { realm: `http://127.0.0.1:${port}/token` } },
        'repository:x:pull',
        undefined,
        undefined,
        'tvm-test',
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/token server http:\/\/127\.0\.0\.1:\d+ answered more than \d+ bytes/);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }, 20_000);
});
