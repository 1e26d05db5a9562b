/** Restart policies in the ContainerManager, driven by a scripted isolation and a fake clock. */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ContainerManager } from '../../../src/runtime/manager.js';
import type { Timers } from '../../../src/runtime/backoff.js';
import { statusText } from '../../../src/api/container-json.js';
import { MemoryIsolation } from '../../fixtures/fake-isolation.js';
import { FakeImageStore, busyboxDockerArchive } from '../../fixtures/fake-images.js';
import { until } from '../../fixtures/wait.js';

/** A clock the test advances; callbacks run when their time comes. */
class FakeClock implements Timers {
  now = 0;
  private seq = 0;
  readonly pending = new Map<number, { at: number; fn: () => void; ms: number }>();
  set(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { at: this.now + ms, fn, ms });
    return id;
  }
  clear(h: unknown): void {
    this.pending.delete(h as number);
  }
  /** the delays asked for, in order, of what is pending now */
  delays(): number[] {
    return [...this.pending.values()].map((p) => p.ms);
  }
  async advance(ms: number): Promise<void> {
    this.now += ms;
    for (const [id, p] of [...this.pending]) {
      if (p.at <= this.now) {
        this.pending.delete(id);
        p.fn();
      }
    }
    await settle();
  }
}

const settle = () => new Promise((r) => setTimeout(r, 15));

let archive: Buffer | undefined;
async function setup(iso = new MemoryIsolation(), dataRoot?: string) {
  const root = dataRoot ?? (await mkdtemp(path.join(tmpdir(), 'tvm-restart-')));
  const images = new FakeImageStore();
  archive ??= await busyboxDockerArchive();
  await images.load(Readable.from([archive]));
  const clock = new FakeClock();
  const m = new ContainerManager({ dataRoot: root, images, isolations: { container: iso }, defaultIsolation: 'container', timers: clock });
  await m.init();
  const actions: string[] = [];
  m.events.subscribe((e) => e.Type === 'container' && actions.push(e.Action));
  return { m, iso, clock, dataRoot: root, actions };
}

describe('restart policies', () => {
  let t: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => {
    t = await setup();
  });
  afterEach(async () => {
    await rm(t.dataRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
  });

  it('on-failure:2 restarts a failing container twice with a doubling back-off, then leaves it exited', async () => {
    const { Id } = await t.m.create(
      { Image: 'busybox', Cmd: ['false'], HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 } } },
      'flaky',
    );
    await t.m.start(Id);
    t.iso.exit(Id, 1);
    await until('restarting', () => t.m.get(Id).state.status === 'restarting');
    const rec = t.m.get(Id);
    expect(rec.state.status).toBe('restarting');
    expect(rec.restartCount).toBe(1);
    expect(statusText(rec)).toMatch(/^Restarting \(1\) /);
    expect(t.clock.delays()).toEqual([100]);
    await t.clock.advance(99);
    expect(t.m.get(Id).state.status).toBe('restarting');
    await t.clock.advance(1);
    await until('running', () => t.m.get(Id).state.status === 'running');
    t.iso.exit(Id, 1);
    await until('a restart timer', () => t.clock.pending.size === 1);
    expect(t.clock.delays()).toEqual([200]);
    await t.clock.advance(200);
    await until('running', () => t.m.get(Id).state.status === 'running');
    t.iso.exit(Id, 1);
    await until('exited', () => t.m.get(Id).state.status === 'exited');
    expect(t.clock.pending.size).toBe(0);
    expect(t.m.get(Id).state).toMatchObject({ status: 'exited', exitCode: 1 });
    expect(t.m.get(Id).restartCount).toBe(2);
    // Docker emits die then start for a policy restart; no `restart` event
    expect(t.actions).toEqual(['create', 'start', 'die', 'start', 'die', 'start', 'die']);
  });

  it('on-failure does not restart after exit 0', async () => {
    const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { RestartPolicy: { Name: 'on-failure' } } });
    await t.m.start(Id);
    t.iso.exit(Id, 0);
    await settle();
    expect(t.m.get(Id).state.status).toBe('exited');
    expect(t.clock.pending.size).toBe(0);
  });

  it('always restarts any exit; docker stop during the back-off cancels it for good', async () => {
    const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['sh'], HostConfig: { RestartPolicy: { Name: 'always' } } }, 'svc');
    await t.m.start(Id);
    t.iso.exit(Id, 0);
    await settle();
    expect(t.m.get(Id).state.status).toBe('restarting');
    // wait(not-running) on a restarting container waits: Docker counts it as running
    let waited = false;
    const w = t.m.wait(Id, 'not-running').then((r) => ((waited = true), r));
    await settle();
    expect(waited).toBe(false);
    await t.m.stop('svc', {});
    expect(t.m.get(Id).state.status).toBe('exited');
    expect(t.m.get(Id).manuallyStopped).toBe(true);
    expect((await w).StatusCode).toBe(0);
    await t.clock.advance(60_000);
    expect(t.m.get(Id).state.status).toBe('exited');
    expect(t.actions.slice(-2)).toEqual(['die', 'stop']);
  });

  it('docker stop of a running always container does not restart it; docker start resets the count', async () => {
    const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['sh'], HostConfig: { RestartPolicy: { Name: 'always' } } });
    await t.m.start(Id);
    t.iso.exit(Id, 3);
    await settle();
    await t.clock.advance(100);
    expect(t.m.get(Id).restartCount).toBe(1);
    await t.m.stop(Id, { timeout: 1 });
    await settle();
    expect(t.m.get(Id).state.status).toBe('exited');
    expect(t.clock.pending.size).toBe(0);
    await t.m.start(Id);
    expect(t.m.get(Id).restartCount).toBe(0);
    expect(t.m.get(Id).manuallyStopped).toBe(false);
  });

  it('docker kill of an unless-stopped container keeps it down', async () => {
    const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['sh'], HostConfig: { RestartPolicy: { Name: 'unless-stopped' } } });
    await t.m.start(Id);
    await t.m.kill(Id, 'SIGKILL');
    await settle();
    expect(t.m.get(Id).state).toMatchObject({ status: 'exited', exitCode: 137 });
    expect(t.clock.pending.size).toBe(0);
  });

  it('docker restart and rm -f of a restarting container', async () => {
    const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['sh'], HostConfig: { RestartPolicy: { Name: 'always' } } });
    await t.m.start(Id);
    t.iso.exit(Id, 2);
    await settle();
    await expect(t.m.start(Id)).rejects.toMatchObject({ status: 304 });
    await expect(t.m.pause(Id)).rejects.toThrow('is restarting, wait until the container is running');
    await expect(t.m.remove(Id, { force: false, volumes: false })).rejects.toThrow(
      'container is restarting: stop the container before removing or force remove',
    );
    await t.m.restart(Id, {});
    expect(t.m.get(Id).state.status).toBe('running');
    expect(t.m.get(Id).restartCount).toBe(0);
    t.iso.exit(Id, 2);
    await settle();
    expect(t.m.get(Id).state.status).toBe('restarting');
    await t.m.remove(Id, { force: true, volumes: false });
    expect(t.m.records.get(Id)).toBeUndefined();
    await t.clock.advance(60_000);
    expect(t.iso.calls.filter((c) => c.op === 'start')).toHaveLength(2);
  });

  it('docker kill with a signal other than the stop signal leaves always in charge', async () => {
    const { Id } = await t.m.create({
      Image: 'busybox',
      Cmd: ['sh'],
      StopSignal: 'SIGUSR1',
      HostConfig: { RestartPolicy: { Name: 'always' } },
    });
    await t.m.start(Id);
    await t.m.kill(Id, 'SIGHUP');
    expect(t.m.get(Id).manuallyStopped).toBe(true);
    t.iso.exit(Id, 129);
    await until('restarting', () => t.m.get(Id).state.status === 'restarting');
    // with the stop signal (or SIGKILL) the exit is final
    await t.clock.advance(100);
    await until('running', () => t.m.get(Id).state.status === 'running');
    await t.m.kill(Id, 'SIGUSR1');
    t.iso.exit(Id, 138);
    await until('exited', () => t.m.get(Id).state.status === 'exited');
    expect(t.clock.pending.size).toBe(0);
  });

  it('a failed restart leaves the container exited with the error', async () => {
    const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['sh'], HostConfig: { RestartPolicy: { Name: 'always' } } });
    await t.m.start(Id);
    t.iso.failStart = new Error('exec: "sh": executable file not found in $PATH');
    t.iso.exit(Id, 5);
    await until('a restart timer', () => t.clock.pending.size === 1);
    await t.clock.advance(100);
    await until('exited', () => t.m.get(Id).state.status === 'exited');
    expect(t.m.get(Id).state).toMatchObject({ status: 'exited', exitCode: 5, error: expect.stringContaining('executable file not found') });
  });
});

describe('restart policies across a daemon restart', () => {
  it('starts always containers and unless-stopped ones not stopped by the user; leaves the rest', async () => {
    const t = await setup();
    try {
      const mk = async (name: string, policy: string, stop: boolean) => {
        const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['sh'], HostConfig: { RestartPolicy: { Name: policy } } }, name);
        await t.m.start(Id);
        if (stop) await t.m.stop(Id, { timeout: 1 });
        return Id;
      };
      await mk('always-stopped', 'always', true);
      await mk('unless-stopped-stopped', 'unless-stopped', true);
      await mk('no-running', 'no', false);
      await mk('always-running', 'always', false);
      await mk('unless-running', 'unless-stopped', false);
      const never = await t.m.create({ Image: 'busybox', Cmd: ['sh'], HostConfig: { RestartPolicy: { Name: 'always' } } }, 'never-started');
      expect(never.Id).toBeTruthy();
      await settle();
      // the new daemon finds every supervisor gone (host reboot)
      const iso2 = new MemoryIsolation();
      iso2.recoverAs = 'lost';
      const t2 = await setup(iso2, t.dataRoot);
      await settle();
      await t2.clock.advance(100);
      const status = (n: string) => t2.m.get(n).state.status;
      expect(status('always-stopped')).toBe('running');
      expect(status('unless-stopped-stopped')).toBe('exited');
      expect(status('no-running')).toBe('dead');
      expect(status('always-running')).toBe('running');
      expect(status('unless-running')).toBe('running');
      expect(status('never-started')).toBe('created');
    } finally {
      await rm(t.dataRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
    }
  });

  it('a restart pending when the daemon went away happens at the next daemon start', async () => {
    const t = await setup();
    try {
      const { Id } = await t.m.create({
        Image: 'busybox',
        Cmd: ['sh'],
        HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 5 } },
      });
      await t.m.start(Id);
      t.iso.exit(Id, 1);
      await until('restarting', () => t.m.get(Id).state.status === 'restarting');
      // the next daemon reads the record: wait for the write, not for a guess at how long it takes
      await until('the restarting record on disk', async () => {
        const rec = JSON.parse(await readFile(path.join(t.dataRoot, 'containers', Id, 'config.json'), 'utf8')) as {
          state: { status: string };
        };
        return rec.state.status === 'restarting';
      });
      const iso2 = new MemoryIsolation();
      iso2.recoverAs = 'exited';
      const t2 = await setup(iso2, t.dataRoot);
      expect(t2.m.get(Id).state.status).toBe('running');
      expect(iso2.calls.filter((c) => c.op === 'start')).toHaveLength(1);
    } finally {
      await rm(t.dataRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
    }
  });

  it('re-attaches a container still running, without restarting it', async () => {
    const t = await setup();
    try {
      const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['sh'], HostConfig: { RestartPolicy: { Name: 'always' } } });
      await t.m.start(Id);
      const iso2 = new MemoryIsolation();
      iso2.recoverAs = 'running';
      const t2 = await setup(iso2, t.dataRoot);
      expect(t2.m.get(Id).state.status).toBe('running');
      expect(iso2.calls.filter((c) => c.op === 'start')).toHaveLength(0);
      // and its policy still applies to the next exit
      iso2.exit(Id, 1);
      await settle();
      expect(t2.m.get(Id).state.status).toBe('restarting');
    } finally {
      await rm(t.dataRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
    }
  });
});
