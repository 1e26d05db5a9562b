import { describe, it, expect } from 'vitest';
import { mkdtemp, stat, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { startDaemon } from '../../../src/daemon/daemon.js';
import { MemoryIsolation } from '../../fixtures/fake-isolation.js';
import { FakeImageStore } from '../../fixtures/fake-images.js';

const components = () => {
  const images = new FakeImageStore();
  return { images, isolations: { container: new MemoryIsolation() } };
};

function get(socketPath: string, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: p }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('tvm daemon', () => {
  it('serves a 0660 unix socket, writes a pid file, refuses a second daemon, cleans up', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'tvm-d-'));
    const sock = path.join(base, 'tvm.sock');
    const o = {
      hosts: [`unix://${sock}`],
      dataRoot: path.join(base, 'data'),
      execRoot: path.join(base, 'run'),
      defaultIsolation: 'container' as const,
      components: components(),
      log: () => {},
    };
    const d = await startDaemon(o);
    expect((await stat(sock)).mode & 0o777).toBe(0o660);
    expect((await readFile(path.join(base, 'run', 'tvm.pid'), 'utf8')).trim()).toBe(String(process.pid));
    expect(await get(sock, '/v1.50/_ping')).toEqual({ status: 200, body: 'OK' });
    await expect(
      startDaemon({ ...o, hosts: [`unix://${path.join(base, 'other.sock')}`], execRoot: path.join(base, 'run2') }).then(() => 'started'),
    ).rejects.toThrow(`a tvm daemon is already running (pid ${process.pid}, pid file ${path.join(base, 'data', 'tvm.pid')})`);
    await expect(
      startDaemon({ ...o, dataRoot: path.join(base, 'data3'), execRoot: path.join(base, 'run3') }).then(() => 'started'),
    ).rejects.toThrow(`another daemon is listening on ${sock}`);
    await d.close();
    await expect(stat(sock)).rejects.toThrow();
    await rm(base, { recursive: true, force: true });
  });

  it('refuses plain TCP unless forced', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'tvm-d-'));
    const o = {
      hosts: ['tcp://127.0.0.1:0'],
      dataRoot: path.join(base, 'data'),
      execRoot: path.join(base, 'run'),
      defaultIsolation: 'container' as const,
      components: components(),
      log: () => {},
    };
    await expect(startDaemon(o)).rejects.toThrow(/refusing to listen on tcp:\/\/127\.0\.0\.1:0 without TLS/);
    const d = await startDaemon({ ...o, insecureTcp: true });
    expect(d.addresses[0]).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    await d.close();
    await rm(base, { recursive: true, force: true });
  });
});
