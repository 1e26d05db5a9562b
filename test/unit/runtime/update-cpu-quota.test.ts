/**
 * A container created with --cpu-quota/--cpu-period keeps them as Docker does: its HostConfig
 * shows NanoCpus 0 (the quota is what the user set), and docker update can change the quota or
 * the period later (Docker refuses that only when NanoCpus, i.e. --cpus, was set).
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ContainerManager } from '../../../src/runtime/manager.js';
import type { ContainerSpec, Resources } from '../../../src/runtime/types.js';
import { MemoryIsolation } from '../../fixtures/fake-isolation.js';
import { FakeImageStore, busyboxDockerArchive } from '../../fixtures/fake-images.js';

class UpdatingIsolation extends MemoryIsolation {
  readonly updates: Resources[] = [];
  async update(_spec: ContainerSpec, changes: Resources): Promise<void> {
    this.updates.push(changes);
  }
}

describe('CPU quota set at create, then docker update', () => {
  let dataRoot: string;
  afterEach(async () => {
    await rm(dataRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
  });
  async function setup() {
    dataRoot = await mkdtemp(path.join(tmpdir(), 'tvm-updq-'));
    const images = new FakeImageStore();
    await images.load(Readable.from([await busyboxDockerArchive()]));
    const iso = new UpdatingIsolation();
    const m = new ContainerManager({ dataRoot, images, isolations: { container: iso }, defaultIsolation: 'container' });
    await m.init();
    return { m, iso };
  }

  it('records the quota, not a derived NanoCpus, and lets update change quota and period', async () => {
    const { m, iso } = await setup();
    const { Id } = await m.create({ Image: 'busybox', Cmd: ['sleep', '100'], HostConfig: { CpuQuota: 50_000, CpuPeriod: 100_000 } });
    expect(m.get(Id).hostConfig).toMatchObject({ NanoCpus: 0, CpuQuota: 50_000, CpuPeriod: 100_000 });
    expect(m.get(Id).spec.resources.nanoCpus).toBe(5e8);
    await m.start(Id);
    await m.update(Id, { CpuQuota: 25_000 });
    expect(iso.updates).toEqual([{ nanoCpus: 2.5e8 }]);
    expect(m.get(Id).hostConfig).toMatchObject({ NanoCpus: 0, CpuQuota: 25_000 });
    await m.update(Id, { CpuPeriod: 50_000 });
    expect(iso.updates.at(-1)).toEqual({ nanoCpus: 5e8 });
    // --cpus on top of a quota stays refused, as in Docker
    await expect(m.update(Id, { NanoCpus: 1e9 })).rejects.toThrow(
      'Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set',
    );
  });
});
