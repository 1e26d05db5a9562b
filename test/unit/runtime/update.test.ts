import { describe, it, expect, afterEach } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { planUpdate, validateUpdate } from '../../../src/runtime/update.js';
import { ContainerManager } from '../../../src/runtime/manager.js';
import type { ContainerSpec, Resources } from '../../../src/runtime/types.js';
import { MemoryIsolation } from '../../fixtures/fake-isolation.js';
import { FakeImageStore, busyboxDockerArchive } from '../../fixtures/fake-images.js';

const MB = 1024 * 1024;

describe("docker update validation (Docker's messages)", () => {
  const v = (b: Parameters<typeof validateUpdate>[0]) => () => validateUpdate(b, 2);
  it('refuses bad values before anything changes', () => {
    expect(v({ Memory: 4 * MB })).toThrow('Minimum memory limit allowed is 6MB');
    expect(v({ Memory: 64 * MB, MemorySwap: 32 * MB })).toThrow('Minimum memoryswap limit should be larger than memory limit, see usage');
    expect(v({ MemoryReservation: MB })).toThrow('Minimum memory reservation allowed is 6MB');
    expect(v({ Memory: 16 * MB, MemoryReservation: 32 * MB })).toThrow(
      'Minimum memory limit can not be less than memory reservation limit, see usage',
    );
    expect(v({ NanoCpus: 1e9, CpuPeriod: 100000 })).toThrow('Conflicting options: Nano CPUs and CPU Period cannot both be set');
    expect(v({ NanoCpus: 1e9, CpuQuota: 50000 })).toThrow('Conflicting options: Nano CPUs and CPU Quota cannot both be set');
    expect(v({ NanoCpus: 3e9 })).toThrow('Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available');
    expect(v({ CpuPeriod: 500 })).toThrow('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
    expect(v({ CpuQuota: 500 })).toThrow('CPU cfs quota can not be less than 1ms (i.e. 1000)');
    expect(v({ CpusetCpus: '0-7' })).toThrow('Requested CPUs are not available - requested 0-7, available: 0-1');
    expect(v({ CpusetCpus: 'x' })).toThrow('Invalid value x for cpuset cpus');
    expect(v({ BlkioWeight: 300 })).toThrow('updating BlkioWeight is not supported by tvm');
    expect(v({ RestartPolicy: { Name: 'bogus' } })).toThrow("invalid restart policy: unknown policy 'bogus'");
    expect(v({ Memory: 4 * MB })).toThrow(expect.objectContaining({ status: 400 }));
    expect(v({ Memory: 32 * MB, MemorySwap: 64 * MB, PidsLimit: 20, CpuShares: 512, CpusetCpus: '0' })).not.toThrow();
  });
});

describe('docker update merge', () => {
  const hc = (x: Record<string, unknown> = {}) => ({
    Memory: 0,
    MemorySwap: 0,
    NanoCpus: 0,
    CpuShares: 0,
    PidsLimit: null,
    CpusetCpus: '',
    AutoRemove: false,
    RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
    ...x,
  });
  it('a memory limit above the recorded memory+swap needs --memory-swap too (as Docker)', () => {
    expect(() => planUpdate(hc(), {}, { Memory: 32 * MB })).toThrow(
      'Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time',
    );
    expect(() => planUpdate(hc(), {}, { Memory: 32 * MB })).toThrow(expect.objectContaining({ status: 409 }));
    const p = planUpdate(
      hc({ Memory: 64 * MB, MemorySwap: 128 * MB }),
      { memory: 64 * MB, memorySwap: 128 * MB },
      { Memory: 32 * MB, PidsLimit: 20 },
    );
    expect(p.hostConfig).toMatchObject({ Memory: 32 * MB, MemorySwap: 128 * MB, PidsLimit: 20 });
    expect(p.changes).toEqual({ memory: 32 * MB, memorySwap: 128 * MB, pidsLimit: 20 });
    expect(p.resources).toEqual({ memory: 32 * MB, memorySwap: 128 * MB, pidsLimit: 20 });
  });
  it('changes only what is given; zero means unchanged', () => {
    const p = planUpdate(
      hc({ CpuShares: 256, Memory: 64 * MB, MemorySwap: 128 * MB }),
      { cpuShares: 256, memory: 64 * MB, memorySwap: 128 * MB },
      { Memory: 0, CpuShares: 0, CpusetCpus: '0' },
    );
    expect(p.changes).toEqual({ cpusetCpus: '0' });
    expect(p.resources).toEqual({ cpuShares: 256, memory: 64 * MB, memorySwap: 128 * MB, cpusetCpus: '0' });
  });
  it('pids-limit -1 lifts the limit', () => {
    const p = planUpdate(hc({ PidsLimit: 20 }), { pidsLimit: 20 }, { PidsLimit: -1 });
    expect(p.changes).toEqual({ pidsLimit: -1 });
    expect(p.resources).toEqual({});
    expect(p.hostConfig.PidsLimit).toBe(-1);
  });
  it('NanoCpus and CpuQuota/CpuPeriod exclude each other across updates', () => {
    expect(() => planUpdate(hc({ NanoCpus: 5e8 }), { nanoCpus: 5e8 }, { CpuQuota: 50000 })).toThrow(
      'Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set',
    );
    expect(() => planUpdate(hc({ CpuPeriod: 50000 }), {}, { NanoCpus: 1e9 })).toThrow(
      'Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set',
    );
    const p = planUpdate(hc(), {}, { CpuQuota: 50000, CpuPeriod: 200000 });
    expect(p.hostConfig).toMatchObject({ CpuQuota: 50000, CpuPeriod: 200000 });
    expect(p.changes).toEqual({ nanoCpus: 250_000_000 });
  });
  it('restart policy: validated, and refused with AutoRemove', () => {
    expect(planUpdate(hc(), {}, { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 3 } }).hostConfig.RestartPolicy).toEqual({
      Name: 'on-failure',
      MaximumRetryCount: 3,
    });
    expect(() => planUpdate(hc({ AutoRemove: true }), {}, { RestartPolicy: { Name: 'always' } })).toThrow(
      'Restart policy cannot be updated because AutoRemove is enabled for the container',
    );
  });
});

class UpdatingIsolation extends MemoryIsolation {
  readonly updates: Resources[] = [];
  failUpdate: Error | undefined;
  async update(_spec: ContainerSpec, changes: Resources): Promise<void> {
    if (this.failUpdate) throw this.failUpdate;
    this.updates.push(changes);
  }
}

describe('ContainerManager.update', () => {
  let dataRoot: string;
  afterEach(async () => {
    await rm(dataRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
  });
  async function setup() {
    dataRoot = await mkdtemp(path.join(tmpdir(), 'tvm-upd-'));
    const images = new FakeImageStore();
    await images.load(Readable.from([await busyboxDockerArchive()]));
    const iso = new UpdatingIsolation();
    const m = new ContainerManager({ dataRoot, images, isolations: { container: iso }, defaultIsolation: 'container' });
    await m.init();
    const actions: string[] = [];
    m.events.subscribe((e) => e.Type === 'container' && actions.push(e.Action));
    return { m, iso, images, actions };
  }

  it('updates a running container live, then its record (which the next start and a new daemon use)', async () => {
    const { m, iso, images, actions } = await setup();
    const { Id } = await m.create({ Image: 'busybox', Cmd: ['sleep', '100'], HostConfig: { Memory: 64 * MB } });
    expect(m.get(Id).hostConfig.MemorySwap).toBe(128 * MB);
    await m.start(Id);
    expect(await m.update(Id, { Memory: 32 * MB, PidsLimit: 20, RestartPolicy: { Name: 'unless-stopped' } })).toEqual({ Warnings: [] });
    expect(iso.updates).toEqual([{ memory: 32 * MB, memorySwap: 128 * MB, pidsLimit: 20 }]);
    expect(m.get(Id).hostConfig).toMatchObject({
      Memory: 32 * MB,
      PidsLimit: 20,
      RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: 0 },
    });
    expect(m.get(Id).spec.resources).toMatchObject({ memory: 32 * MB, pidsLimit: 20 });
    expect(actions).toContain('update');
    const m2 = new ContainerManager({ dataRoot, images, isolations: { container: new MemoryIsolation() }, defaultIsolation: 'container' });
    await m2.init();
    expect(m2.get(Id).spec.resources).toMatchObject({ memory: 32 * MB, pidsLimit: 20 });
  });

  it('a stopped container only gets its record changed', async () => {
    const { m, iso } = await setup();
    const { Id } = await m.create({ Image: 'busybox', Cmd: ['true'] });
    await m.update(Id, { CpuShares: 512 });
    expect(iso.updates).toEqual([]);
    expect(m.get(Id).spec.resources.cpuShares).toBe(512);
  });

  it("a refused cgroup write leaves the record as it was, with Docker's prefix", async () => {
    const { m, iso } = await setup();
    const { Id } = await m.create({ Image: 'busybox', Cmd: ['sleep', '100'], HostConfig: { Memory: 64 * MB } });
    await m.start(Id);
    iso.failUpdate = new Error('unable to set memory limit to 8388608 (current usage: 30000000, peak usage: 31000000)');
    await expect(m.update(Id, { Memory: 8 * MB })).rejects.toThrow(`Cannot update container ${Id}: unable to set memory limit to 8388608`);
    expect(m.get(Id).hostConfig.Memory).toBe(64 * MB);
    await expect(m.update(Id, { Memory: 512 * MB })).rejects.toThrow(
      `Cannot update container ${Id}: Memory limit should be smaller than already set memoryswap limit`,
    );
  });
});
