import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import net from 'node:net';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { apiOnFakes } from './helpers.js';
import { FrameDecoder } from '../../../src/api/stream-header.js';

type T = Awaited<ReturnType<typeof apiOnFakes>>;
let t: T;
beforeEach(async () => {
  t = await apiOnFakes();
});
afterEach(async () => {
  await t.app.close();
  await rm(t.dataRoot, { recursive: true, force: true });
});

const create = (body: Record<string, unknown>, name?: string) =>
  t.app.inject({ method: 'POST', url: `/v1.50/containers/create${name ? `?name=${name}` : ''}`, payload: body });

describe('system endpoints', () => {
  it('answers /_ping (GET and HEAD) with the negotiation headers', async () => {
    for (const method of ['GET', 'HEAD'] as const) {
      const r = await t.app.inject({ method, url: '/_ping' });
      expect(r.statusCode).toBe(200);
      expect(r.headers['api-version']).toBe('1.50');
      expect(r.headers['ostype']).toBe('linux');
      expect(r.headers['docker-experimental']).toBe('false');
      expect(r.headers['builder-version']).toBe('1');
      if (method === 'GET') expect(r.body).toBe('OK');
    }
  });
  it('serves /version on any supported prefix and refuses others', async () => {
    const v = (await t.app.inject({ url: '/v1.24/version' })).json();
    expect(v).toMatchObject({ ApiVersion: '1.50', MinAPIVersion: '1.24', Os: 'linux' });
    const bad = await t.app.inject({ url: '/v1.99/version' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/too new/);
    expect(bad.headers['content-type']).toBe('application/json');
  });
  it("answers unknown routes with Docker's 404 shape", async () => {
    const r = await t.app.inject({ url: '/v1.50/nope' });
    expect(r.statusCode).toBe(404);
    expect(r.json()).toEqual({ message: 'page not found' });
  });
  it('reports info with isolation facts', async () => {
    const i = (await t.app.inject({ url: '/info' })).json();
    expect(i).toMatchObject({ Images: 1, Containers: 0, Isolation: 'container', OSType: 'linux' });
  });
});

describe('container create validation', () => {
  it('creates (201) and refuses a taken name (409)', async () => {
    const r = await create({ Image: 'busybox', Cmd: ['true'] }, 'web');
    expect(r.statusCode).toBe(201);
    expect(r.json().Id).toMatch(/^[0-9a-f]{64}$/);
    const again = await create({ Image: 'busybox', Cmd: ['true'] }, 'web');
    expect(again.statusCode).toBe(409);
    expect(again.json().message).toMatch(/^Conflict\. The container name "\/web" is already in use/);
  });
  it('answers 404 No such image', async () => {
    const r = await create({ Image: 'ghost', Cmd: ['true'] });
    expect(r.statusCode).toBe(404);
    expect(r.json().message).toBe('No such image: ghost:latest');
  });
  it('rejects bad JSON and wrong types with 400', async () => {
    const bad = await t.app.inject({
      method: 'POST',
      url: '/containers/create',
      headers: { 'content-type': 'application/json' },
      payload: '{"Image": ',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/invalid JSON/);
    for (const body of [
      { Image: 5 },
      { Image: 'busybox', Cmd: [1] },
      { Image: 'busybox', Env: 'A=1' },
      { Image: 'busybox', HostConfig: { Memory: 'lots' } },
      { Image: 'busybox', HostConfig: { Binds: '/a:/b' } },
      { Image: 'busybox', Tty: 'yes' },
      {},
    ]) {
      const r = await create(body);
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expect(typeof r.json().message).toBe('string');
    }
  });
  it('refuses impossible limits, unknown isolation, vm isolation, port publishing', async () => {
    let r = await create({ Image: 'busybox', Cmd: ['true'], HostConfig: { Memory: 1 } });
    expect([r.statusCode, r.json().message]).toEqual([400, 'Minimum memory limit allowed is 6MB']);
    r = await create({ Image: 'busybox', Cmd: ['true'], HostConfig: { Isolation: 'gvisor' } });
    expect(r.statusCode).toBe(400);
    r = await create({ Image: 'busybox', Cmd: ['true'], HostConfig: { Isolation: 'hyperv' } });
    expect(r.statusCode).toBe(501);
    expect(r.json().message).toMatch(
      /isolation "vm" \(hyperv\) is not available in this tvm daemon: it needs a usable \/dev\/kvm or qemu-system-x86_64/,
    );
    r = await create({ Image: 'busybox', Cmd: ['true'], HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '80' }] } } });
    expect([r.statusCode, r.json().message]).toEqual([
      400,
      'port publishing is not supported yet: tvm containers run with --network none or host',
    ]);
    r = await create({ Image: 'busybox', Cmd: ['true'] }, 'bad%20name');
    expect(r.statusCode).toBe(400);
    expect((await t.app.inject({ url: '/containers/json?all=1' })).json()).toEqual([]);
  });
});

describe('container lifecycle over HTTP', () => {
  it('start/stop answer 304 when already there; unknown IDs 404', async () => {
    const { Id } = (await create({ Image: 'busybox', Cmd: ['sleep', '9'] }, 'c1')).json();
    expect((await t.app.inject({ method: 'POST', url: `/containers/${Id}/start` })).statusCode).toBe(204);
    expect((await t.app.inject({ method: 'POST', url: `/containers/c1/start` })).statusCode).toBe(304);
    const rm = await t.app.inject({ method: 'DELETE', url: '/containers/c1' });
    expect(rm.statusCode).toBe(409);
    expect(rm.json().message).toMatch(/container is running: stop the container before removing or force remove/);
    expect((await t.app.inject({ method: 'POST', url: '/containers/c1/stop?t=1' })).statusCode).toBe(204);
    expect((await t.app.inject({ method: 'POST', url: '/containers/c1/stop' })).statusCode).toBe(304);
    const kill = await t.app.inject({ method: 'POST', url: '/containers/c1/kill' });
    expect(kill.statusCode).toBe(409);
    expect(kill.json().message).toMatch(/is not running/);
    const nf = await t.app.inject({ method: 'POST', url: '/containers/nope/start' });
    expect([nf.statusCode, nf.json().message]).toEqual([404, 'No such container: nope']);
    expect((await t.app.inject({ method: 'DELETE', url: '/containers/c1' })).statusCode).toBe(204);
  });

  it('inspects with the isolation used and lists with Docker fields', async () => {
    const { Id } = (await create({ Image: 'busybox', Cmd: ['sh', '-c', 'echo hi'], Labels: { a: 'b' } }, 'insp')).json();
    const i = (await t.app.inject({ url: '/containers/insp/json' })).json();
    expect(i).toMatchObject({
      Id,
      Name: '/insp',
      Path: 'sh',
      Args: ['-c', 'echo hi'],
      State: { Status: 'created', Running: false },
      HostConfig: { Isolation: 'container', NetworkMode: 'none' },
      RestartCount: 0,
    });
    expect(i.LogPath).toBe(path.join(t.dataRoot, 'containers', Id, 'log.jsonl'));
    const l = (await t.app.inject({ url: '/containers/json?all=1&filters=' + encodeURIComponent('{"label":{"a=b":true}}') })).json();
    expect(l).toHaveLength(1);
    expect(l[0]).toMatchObject({ Id, Names: ['/insp'], Image: 'busybox', Command: "sh -c 'echo hi'", State: 'created', Status: 'Created' });
    const bad = await t.app.inject({ url: '/containers/json?filters=' + encodeURIComponent('{"status":{"sleepy":true}}') });
    expect([bad.statusCode, bad.json().message]).toEqual([400, "invalid filter 'status=sleepy'"]);
  });

  it('streams logs with the multiplexed header, tail and timestamps', async () => {
    const { Id } = (await create({ Image: 'busybox', Cmd: ['true'] })).json();
    await t.app.inject({ method: 'POST', url: `/containers/${Id}/start` });
    const spec = t.manager.get(Id).spec;
    t.iso.emit(spec, 'stdout', 'one\n');
    t.iso.emit(spec, 'stderr', 'two\n');
    t.iso.emit(spec, 'stdout', 'three\n');
    t.iso.exit(Id, 0);
    await t.manager.wait(Id, 'not-running');
    const r = await t.app.inject({ url: `/containers/${Id}/logs?stdout=1&stderr=1&tail=2` });
    expect(r.headers['content-type']).toBe('application/vnd.docker.multiplexed-stream');
    const frames = new FrameDecoder().push(r.rawPayload);
    expect(frames.map((f) => [f.stream, f.payload.toString()])).toEqual([
      [2, 'two\n'],
      [1, 'three\n'],
    ]);
    const ts = await t.app.inject({ url: `/containers/${Id}/logs?stdout=1&timestamps=1` });
    expect(new FrameDecoder().push(ts.rawPayload)[0]!.payload.toString()).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z one\n$/);
    const none = await t.app.inject({ url: `/containers/${Id}/logs` });
    expect([none.statusCode, none.json().message]).toEqual([400, 'Bad parameters: you must choose at least one stream']);
  });

  it('waits with headers first and the status at exit', async () => {
    const { Id } = (await create({ Image: 'busybox', Cmd: ['true'] })).json();
    await t.app.inject({ method: 'POST', url: `/containers/${Id}/start` });
    const w = t.app.inject({ method: 'POST', url: `/containers/${Id}/wait?condition=next-exit` });
    setTimeout(() => t.iso.exit(Id, 3), 30);
    const r = await w;
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ StatusCode: 3, Error: null });
    const bad = await t.app.inject({ method: 'POST', url: `/containers/${Id}/wait?condition=soon` });
    expect(bad.statusCode).toBe(400);
    expect((await t.app.inject({ method: 'POST', url: `/containers/nope/wait` })).statusCode).toBe(404);
  });

  it('renames, pauses, execs, lists events', async () => {
    const { Id } = (await create({ Image: 'busybox', Cmd: ['sleep', '9'] }, 'old')).json();
    await t.app.inject({ method: 'POST', url: `/containers/${Id}/start` });
    expect((await t.app.inject({ method: 'POST', url: `/containers/old/rename?name=new` })).statusCode).toBe(204);
    expect((await t.app.inject({ url: `/containers/new/json` })).json().Name).toBe('/new');
    expect((await t.app.inject({ method: 'POST', url: `/containers/new/pause` })).statusCode).toBe(204);
    const ex = await t.app.inject({ method: 'POST', url: `/containers/new/exec`, payload: { Cmd: ['ls'] } });
    expect(ex.statusCode).toBe(409);
    expect(ex.json().message).toMatch(/is paused, unpause the container before exec/);
    await t.app.inject({ method: 'POST', url: `/containers/new/unpause` });
    const badExec = await t.app.inject({ method: 'POST', url: `/containers/new/exec`, payload: { Cmd: [] } });
    expect(badExec.statusCode).toBe(400);
    const e2 = (await t.app.inject({ method: 'POST', url: `/containers/new/exec`, payload: { Cmd: ['sh', '-c', 'exit 5'] } })).json();
    expect((await t.app.inject({ method: 'POST', url: `/exec/${e2.Id}/start`, payload: { Detach: true } })).statusCode).toBe(200);
    await new Promise((r) => setTimeout(r, 20));
    expect((await t.app.inject({ url: `/exec/${e2.Id}/json` })).json()).toMatchObject({ ExitCode: 5, Running: false, ContainerID: Id });
    expect((await t.app.inject({ url: `/exec/nope/json` })).statusCode).toBe(404);
    // until now, to the millisecond: the stream ends at once (a whole second ahead kept it open up to 2 s)
    const ev = await t.app.inject({
      url: `/events?since=0&until=${(Date.now() / 1000).toFixed(3)}&filters=` + encodeURIComponent('{"type":["container"]}'),
    });
    const actions = ev.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).Action);
    expect(actions.slice(0, 5)).toEqual(['create', 'start', 'rename', 'pause', 'unpause']);
    expect(actions).toContain('exec_die');
  });

  it('manages volumes', async () => {
    const c = await t.app.inject({ method: 'POST', url: '/volumes/create', payload: { Name: 'data', Labels: { x: 'y' } } });
    expect(c.statusCode).toBe(201);
    expect(c.json()).toMatchObject({ Name: 'data', Driver: 'local', Labels: { x: 'y' } });
    expect((await t.app.inject({ url: '/volumes' })).json().Volumes).toHaveLength(1);
    const { Id } = (await create({ Image: 'busybox', Cmd: ['true'], HostConfig: { Binds: ['data:/d'] } })).json();
    const inUse = await t.app.inject({ method: 'DELETE', url: '/volumes/data' });
    expect(inUse.statusCode).toBe(409);
    await t.app.inject({ method: 'DELETE', url: `/containers/${Id}` });
    expect((await t.app.inject({ method: 'DELETE', url: '/volumes/data' })).statusCode).toBe(204);
    expect((await t.app.inject({ url: '/volumes/data' })).statusCode).toBe(404);
    const bad = await t.app.inject({ method: 'POST', url: '/volumes/create', payload: { Name: 'a/b' } });
    expect(bad.statusCode).toBe(400);
  });

  it('lists and inspects images', async () => {
    const l = (await t.app.inject({ url: '/images/json' })).json();
    expect(l[0]).toMatchObject({ RepoTags: ['busybox:latest'] });
    const i = (await t.app.inject({ url: '/images/busybox/json' })).json();
    expect(i).toMatchObject({ Os: 'linux', Config: { Cmd: ['sh'] } });
    expect((await t.app.inject({ url: '/images/ghost/json' })).statusCode).toBe(404);
  });
});

describe('hijacked attach', () => {
  it('upgrades, streams multiplexed output of a workload started after attach, then closes', async () => {
    const sock = path.join(t.dataRoot, 'api.sock');
    await new Promise<void>((r) => t.app.server.listen(sock, () => r()));
    const { Id } = (await create({ Image: 'busybox', Cmd: ['echo', 'hi'], AttachStdout: true, AttachStderr: true })).json();
    const s = net.connect(sock);
    s.write(
      `POST /v1.50/containers/${Id}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n`,
    );
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    await new Promise((r) => setTimeout(r, 50));
    await t.manager.start(Id);
    const spec = t.manager.get(Id).spec;
    t.iso.emit(spec, 'stdout', 'hi\n');
    t.iso.emit(spec, 'stderr', 'oops\n');
    t.iso.exit(Id, 0);
    await closed;
    const all = Buffer.concat(chunks);
    const headEnd = all.indexOf('\r\n\r\n');
    const head = all.subarray(0, headEnd).toString();
    expect(head).toMatch(/^HTTP\/1\.1 101 UPGRADED/);
    expect(head).toMatch(/Content-Type: application\/vnd\.docker\.multiplexed-stream/);
    const frames = new FrameDecoder().push(all.subarray(headEnd + 4));
    expect(frames.map((f) => [f.stream, f.payload.toString()])).toEqual([
      [1, 'hi\n'],
      [2, 'oops\n'],
    ]);
  });

  it('answers an unknown container with a plain HTTP 404 before upgrading', async () => {
    const sock = path.join(t.dataRoot, 'api2.sock');
    await new Promise<void>((r) => t.app.server.listen(sock, () => r()));
    const s = net.connect(sock);
    s.write(
      `POST /v1.50/containers/nope/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n`,
    );
    let data = '';
    s.on('data', (c: Buffer) => (data += c.toString()));
    await new Promise<void>((r) => s.on('close', () => r()));
    expect(data).toMatch(/^HTTP\/1\.1 404 Not Found/);
    expect(data).toMatch(/\{"message":"No such container: nope"\}/);
  });
});
