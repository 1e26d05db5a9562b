/** Builds the API on fakes for inject-based tests. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buildApi } from '../../../src/api/server.js';
import { ContainerManager } from '../../../src/runtime/manager.js';
import { MemoryIsolation } from '../../fixtures/fake-isolation.js';
import { FakeImageStore, busyboxDockerArchive } from '../../fixtures/fake-images.js';

let archive: Buffer | undefined;

export async function apiOnFakes() {
  const dataRoot = await mkdtemp(path.join(tmpdir(), 'tvm-api-'));
  const images = new FakeImageStore();
  archive ??= await busyboxDockerArchive();
  await images.load(Readable.from([archive]));
  const iso = new MemoryIsolation();
  const manager = new ContainerManager({ dataRoot, images, isolations: { container: iso }, defaultIsolation: 'container' });
  await manager.init();
  const errors: string[] = [];
  const app = await buildApi({
    manager,
    images,
    info: { dataRoot, execRoot: dataRoot, version: '0.1.0', id: 'test', name: 'test' },
    log: (m) => errors.push(m),
  });
  return { app, manager, iso, images, dataRoot, errors };
}
