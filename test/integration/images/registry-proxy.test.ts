import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, type RunningRegistry } from '../../fixtures/registry.js';
import { busyboxImage, pushImage } from '../../fixtures/oci.js';
import { RegistryClient } from '../../../src/images/registry.js';
import { Store } from '../../../src/images/store.js';
import type { PullProgress } from '../../../src/images/types.js';

/**
 * A proxy in front of the registry that cuts the first `cuts` blob responses halfway, the
 * way a dropped connection does; everything else passes through.
 */
let reg: RunningRegistry;
let proxy: Server;
let proxyHost: string;
let cutsLeft = 0;
/** when set, blob GETs are answered with a 307 to the registry itself (another origin), like S3-backed registries */
let redirectBlobs = false;
const roots: string[] = [];

beforeAll(async () => {
  reg = await startRegistry();
  proxy = createServer((req, res) => {
    if (redirectBlobs && req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '')) {
      res.writeHead(307, { location: `http://${reg.host}${req.url}` }).end();
      return;
    }
    const up = httpRequest(
      { host: '127.0.0.1', port: Number(reg.host.split(':')[1]), path: req.url, method: req.method, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        const cut =
          req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '') && cutsLeft > 0 && Number(ur.headers['content-length']) > 100_000;
        if (!cut) {
          ur.pipe(res);
          return;
        }
        cutsLeft--;
        let sent = 0;
        const half = Number(ur.headers['content-length']) / 2;
        ur.on('data', (c: Buffer) => {
          if (sent >= half) return;
          sent += c.length;
          res.write(c);
          if (sent >= half) {
            ur.destroy();
            res.socket?.destroy();
          }
        });
      },
    );
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  proxyHost = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => proxy?.close(() => r()));
  await reg?.stop();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function newStore(attempts: number): Store {
  const root = mkdtempSync(path.join(os.tmpdir(), 'tvm-flaky-'));
  roots.push(root);
  return new Store(root, { downloadAttempts: attempts, retryDelayMs: 50 });
}

describe('redirected blob downloads', () => {
  it('follows a 307 to another origin', async () => {
    const c = new RegistryClient(reg.host);
    const img = await busyboxImage({ config: { config: { Cmd: ['redirected'] } } });
    await pushImage(c, 'redirect/app', 'v1', img);
    await c.close();
    redirectBlobs = true;
    try {
      const rec = await newStore(1).pull(`${proxyHost}/redirect/app:v1`);
      expect(rec.id).toBe(img.config.digest);
    } finally {
      redirectBlobs = false;
    }
  });
});

describe('dropped connections during a pull', () => {
  it('retries a cut layer download and completes', async () => {
    const c = new RegistryClient(reg.host);
    const img = await busyboxImage();
    await pushImage(c, 'flaky/app', 'v1', img);
    await c.close();
    cutsLeft = 1;
    const msgs: PullProgress[] = [];
    const rec = await newStore(3).pull(`${proxyHost}/flaky/app:v1`, { onProgress: (p) => msgs.push(p) });
    expect(rec.id).toBe(img.config.digest);
    expect(msgs.some((m) => /^Retrying in \d+ seconds?$/.test(m.status))).toBe(true);
    expect(cutsLeft).toBe(0);
  });

  it('gives up after the last attempt, storing nothing', async () => {
    cutsLeft = 2;
    const store = newStore(2);
    await expect(store.pull(`${proxyHost}/flaky/app:v1`)).rejects.toThrow();
    expect(await store.list()).toEqual([]);
    expect(await store.blobs.list()).toEqual([]);
  });
});
