import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ContainerManager } from '../../../src/runtime/manager.js';
import { MemoryIsolation } from '../../fixtures/fake-isolation.js';
import { FakeImageStore, busyboxDockerArchive } from '../../fixtures/fake-images.js';

let archive: Buffer | undefined;
async function setup(iso = new MemoryIsolation()) {
  const dataRoot = await mkdtemp(path.join(tmpdir(), 'tvm-mgr-'));
  const images = new FakeImageStore();
  archive ??= await busyboxDockerArchive();
  await images.load(Readable.from([archive]));
  const m = new ContainerManager({ dataRoot, images, isolations: { container: iso }, defaultIsolation: 'container' });
  await m.init();
  const actions: string[] = [];
  m.events.subscribe((e) => e.Type === 'container' && actions.push(e.Action));
  return { m, iso, images, dataRoot, actions };
}

describe('ContainerManager', () => {
  let t: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => {
    t = await setup();
  });
  afterEach(async () => {
    await rm(t.dataRoot, { recursive: true, force: true });
  });

  it('walks a container through its lifecycle with events', async () => {
    const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['sleep', '100'] }, 'web');
    expect(t.m.get('web').state.status).toBe('created');
    await t.m.start('web');
    expect(t.m.get(Id).state.status).toBe('running');
    await t.m.pause('web');
    expect(t.m.get(Id).state.status).toBe('paused');
    await t.m.unpause('web');
    await t.m.stop('web', { timeout: 1 });
    const rec = t.m.get(Id);
    expect(rec.state.status).toBe('exited');
    expect(rec.state.exitCode).toBe(143);
    await t.m.remove('web', { force: false, volumes: false });
    expect(() => t.m.get('web')).toThrow('No such container: web');
    expect(t.actions).toEqual(['create', 'start', 'pause', 'unpause', 'kill', 'die', 'stop', 'destroy']);
    expect(await readdir(path.join(t.dataRoot, 'containers'))).toEqual([]);
  });

  // Issue 16 item 9: the old name stayed reserved until a daemon restart.
  it('rename frees the old name at once', async () => {
    await t.m.create({ Image: 'busybox', Cmd: ['true'] }, 'rel-a');
    await t.m.rename('rel-a', 'rel-b');
    expect(t.m.records.nameTaken('/rel-a')).toBe(false);
    expect(() => t.m.get('rel-a')).toThrow('No such container: rel-a');
    const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['true'] }, 'rel-a');
    expect(t.m.get('rel-a').id).toBe(Id);
    await t.m.rename('rel-b', 'rel-c');
    await t.m.remove('rel-c', { force: true, volumes: false });
    expect(t.m.records.nameTaken('/rel-b')).toBe(false);
    expect(t.m.records.nameTaken('/rel-c')).toBe(false);
  });

  // Issue 16 item 19: name filters ran user regexes on the event loop with backtracking (one
  // pattern stalled every client) and an invalid one surfaced as "invalid JSON".
  it('name filters match in linear time; an invalid pattern matches nothing', async () => {
    await t.m.create({ Image: 'busybox', Cmd: ['true'] }, `${'a'.repeat(40)}-`);
    const names = (f: string) => t.m.list({ all: true, limit: -1, filters: { name: [f] } }).map((r) => r.name);
    expect(names('(a+)+$')).toEqual([]);
    expect(names('^a+-$')).toEqual([`/${'a'.repeat(40)}-`]);
    expect(names('(')).toEqual([]);
  });

  it('leaves nothing behind when create fails half-way', async () => {
    t.iso.failCreate = new Error('disk full');
    await expect(t.m.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { Binds: ['anon-vol:/data'] } }, 'half')).rejects.toThrow(
      'disk full',
    );
    expect(await readdir(path.join(t.dataRoot, 'containers'))).toEqual([]);
    expect(t.m.records.nameTaken('/half')).toBe(false);
    expect(t.m.volumes.has('anon-vol')).toBe(false);
    expect(t.m.list({ all: true, limit: -1, filters: {} })).toEqual([]);
    expect(t.actions).not.toContain('create');
  });

  it("answers 404 with Docker's message for a missing image, 409 for a taken name", async () => {
    await expect(t.m.create({ Image: 'nosuch', Cmd: ['true'] })).rejects.toMatchObject({
      status: 404,
      message: 'No such image: nosuch:latest',
    });
    await t.m.create({ Image: 'busybox', Cmd: ['true'] }, 'dup');
    await expect(t.m.create({ Image: 'busybox', Cmd: ['true'] }, 'dup')).rejects.toMatchObject({ status: 409 });
  });

  it('refuses the vm isolation where this daemon has none', async () => {
    await expect(t.m.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { Isolation: 'hyperv' } })).rejects.toMatchObject({
      status: 501,
      message: expect.stringContaining('not available in this tvm daemon'),
    });
  });

  it('resolves wait conditions', async () => {
    const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['true'] });
    expect(await t.m.wait(Id, 'not-running')).toEqual({ StatusCode: 0, Error: null });
    const next = t.m.wait(Id, 'next-exit');
    const removed = t.m.wait(Id, 'removed');
    await t.m.start(Id);
    t.iso.exit(Id, 3);
    expect(await next).toEqual({ StatusCode: 3, Error: null });
    await t.m.remove(Id, { force: false, volumes: false });
    expect((await removed).StatusCode).toBe(3);
    expect(() => t.m.wait('nope')).toThrow('No such container: nope');
  });

  it('auto-removes --rm containers when they exit', async () => {
    const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { AutoRemove: true } });
    const removed = t.m.wait(Id, 'removed');
    await t.m.start(Id);
    t.iso.exit(Id, 0);
    await removed;
    expect(t.m.records.get(Id)).toBeUndefined();
  });

  it('refuses removing a running container unless forced', async () => {
    const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['sleep', '1'] }, 'busy');
    await t.m.start(Id);
    await expect(t.m.remove(Id, { force: false, volumes: false })).rejects.toThrow('cannot remove container "/busy": container is running');
    await t.m.remove(Id, { force: true, volumes: false });
    expect(t.m.records.get(Id)).toBeUndefined();
  });

  it('recovers records after a restart and reconciles their state', async () => {
    const a = await t.m.create({ Image: 'busybox', Cmd: ['sleep', '1'] }, 'keeps');
    const b = await t.m.create({ Image: 'busybox', Cmd: ['sleep', '1'] }, 'lost');
    await t.m.start(a.Id);
    await t.m.start(b.Id);
    await new Promise((r) => setTimeout(r, 20));
    const iso2 = new MemoryIsolation();
    iso2.recoverAs = 'running';
    const m2 = new ContainerManager({
      dataRoot: t.dataRoot,
      images: t.images,
      isolations: { container: iso2 },
      defaultIsolation: 'container',
    });
    await m2.init();
    expect(m2.get('keeps').state.status).toBe('running');
    expect(m2.get('keeps').state.pid).toBe(4242);
    const w = m2.wait('keeps', 'next-exit');
    iso2.exit(a.Id, 0);
    expect((await w).StatusCode).toBe(0);
    const iso3 = new MemoryIsolation();
    iso3.recoverAs = 'lost';
    const m3 = new ContainerManager({
      dataRoot: t.dataRoot,
      images: t.images,
      isolations: { container: iso3 },
      defaultIsolation: 'container',
    });
    await m3.init();
    expect(m3.get('lost').state.status).toBe('dead');
  });

  it('filters the list like docker ps', async () => {
    const a = await t.m.create({ Image: 'busybox', Cmd: ['true'], Labels: { tier: 'web' } }, 'one');
    await t.m.create({ Image: 'busybox', Cmd: ['true'] }, 'two');
    await t.m.start(a.Id);
    t.iso.exit(a.Id, 2);
    await new Promise((r) => setTimeout(r, 20));
    const names = (f: Record<string, string[]>, all = true) =>
      t.m
        .list({ all, limit: -1, filters: f })
        .map((r) => r.name)
        .sort();
    expect(names({}, false)).toEqual([]);
    expect(names({})).toEqual(['/one', '/two']);
    expect(names({ status: ['exited'] })).toEqual(['/one']);
    expect(names({ exited: ['2'] })).toEqual(['/one']);
    expect(names({ label: ['tier=web'] })).toEqual(['/one']);
    expect(names({ name: ['tw'] })).toEqual(['/two']);
    expect(names({ ancestor: ['busybox'] })).toEqual(['/one', '/two']);
    expect(names({ id: [a.Id.slice(0, 6)] })).toEqual(['/one']);
  });

  it('runs execs and records their exit code', async () => {
    const { Id } = await t.m.create({ Image: 'busybox', Cmd: ['sleep', '1'] });
    expect(() => t.m.createExec(Id, { Cmd: ['ls'] })).toThrow(`container ${Id} is not running`);
    await t.m.start(Id);
    const ex = t.m.createExec(Id, { Cmd: ['sh', '-c', 'exit 4'], AttachStdout: true });
    const { exit } = await t.m.startExec(ex, undefined);
    expect((await exit).exitCode).toBe(4);
    expect(t.m.getExec(ex).exitCode).toBe(4);
    await expect(t.m.startExec(ex, undefined)).rejects.toThrow('has already run');
    expect(t.actions.filter((a) => a.startsWith('exec_'))).toEqual(['exec_create: sh -c exit 4', 'exec_start: sh -c exit 4', 'exec_die']);
  });
});
