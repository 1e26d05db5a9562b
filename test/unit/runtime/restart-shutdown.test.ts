/**
 * A daemon that shuts down (ContainerManager.shutdown, called by the daemon's close) leaves
 * pending policy restarts to the next daemon: a back-off timer that fires afterwards, or an exit
 * seen afterwards, must not start the container from the departed daemon (the next daemon
 * restarts it at init, and two daemons would both start it); an exit after shutdown is recorded
 * and its policy applied by the next daemon's init.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ContainerManager } from '../../../src/runtime/manager.js';
import type { Timers } from '../../../src/runtime/backoff.js';
import { MemoryIsolation } from '../../fixtures/fake-isolation.js';
import { FakeImageStore, busyboxDockerArchive } from '../../fixtures/fake-images.js';
import { until } from '../../fixtures/wait.js';

/** A clock the test fires by hand. */
class ManualClock implements Timers {
  private seq = 0;
  readonly pending = new Map<number, () => void>();
  set(fn: () => void): unknown {
    const id = ++this.seq;
    this.pending.set(id, fn);
    return id;
  }
  clear(h: unknown): void {
    this.pending.delete(h as number);
  }
  fireAll(): void {
    const fns = [...this.pending.values()];
    this.pending.clear();
    for (const fn of fns) fn();
  }
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('restart policies at daemon shutdown', () => {
  let dataRoot: string;
  afterEach(async () => {
    await rm(dataRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
  });
  async function setup() {
    dataRoot = await mkdtemp(path.join(tmpdir(), 'tvm-rshut-'));
    const images = new FakeImageStore();
    await images.load(Readable.from([await busyboxDockerArchive()]));
    const iso = new MemoryIsolation();
    const clock = new ManualClock();
    const m = new ContainerManager({ dataRoot, images, isolations: { container: iso }, defaultIsolation: 'container', timers: clock });
    await m.init();
    return { m, iso, clock };
  }
  const starts = (iso: MemoryIsolation, id: string) => iso.calls.filter((c) => c.op === 'start' && c.id === id).length;

  it('a back-off pending at shutdown does not start the container afterwards', async () => {
    const { m, iso, clock } = await setup();
    const { Id } = await m.create({ Image: 'busybox', Cmd: ['sh'], HostConfig: { RestartPolicy: { Name: 'always' } } });
    await m.start(Id);
    iso.exit(Id, 1);
    await until('restarting', () => m.get(Id).state.status === 'restarting');
    expect(clock.pending.size).toBe(1);
    m.shutdown();
    expect(clock.pending.size).toBe(0);
    clock.fireAll();
    await settle();
    expect(starts(iso, Id)).toBe(1);
    // the record still says restarting: the next daemon's init restarts it
    expect(m.get(Id).state.status).toBe('restarting');
  });

  it('an exit seen after shutdown is recorded and schedules no restart', async () => {
    const { m, iso, clock } = await setup();
    const { Id } = await m.create({ Image: 'busybox', Cmd: ['sh'], HostConfig: { RestartPolicy: { Name: 'always' } } });
    await m.start(Id);
    m.shutdown();
    iso.exit(Id, 1);
    await until('exited', () => m.get(Id).state.status === 'exited');
    expect(clock.pending.size).toBe(0);
    clock.fireAll();
    await settle();
    expect(starts(iso, Id)).toBe(1);
  });
});
