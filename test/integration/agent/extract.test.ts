/**
 * `docker cp` into a running container through the agent's extract connection (the path a
 * microVM needs, as only its guest can write its disk), run here against a host container: the
 * entries land inside the container's root, symlinks resolve there, and bad input is refused.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pack as tarPack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, unixConnector } from '../../../src/guest-agent/client.js';
import { FrameDecoder, encodeFrame } from '../../../src/guest-agent/framing.js';
import { decodeReply, encodeMessage } from '../../../src/guest-agent/protocol.js';
import { spawnSupervisor } from '../../../src/runtime/host/supervisor.js';
import { agentSpec, validateSpec } from '../../../src/runtime/host/spec.js';
import { V1_CONTROLLERS, type CgroupConfig } from '../../../src/runtime/host/cgroups.js';
import { extractThroughAgent } from '../../../src/runtime/vm/guest-extract.js';
import { busyboxRootfsEntries, writeRootfs } from '../../fixtures/rootfs.js';
import { containerSpec } from '../../fixtures/spec.js';

const NATIVE = path.resolve(import.meta.dirname, '../../../native');
const CG_ROOT = '/sys/fs/cgroup';
const CG_PARENT = `tvm-extract-test-${process.pid}`;
let dir: string;
let lower: string;
let client: AgentClient;

function tar(
  entries: {
    name: string;
    type?: 'file' | 'directory' | 'symlink' | 'link';
    content?: Buffer | string;
    mode?: number;
    linkname?: string;
    uid?: number;
  }[],
): Readable {
  const p = tarPack();
  for (const e of entries) {
    const { content, ...h } = e;
    if (content !== undefined) p.entry(h, content);
    else p.entry(h);
  }
  p.finalize();
  return p as unknown as Readable;
}

/** The raw connection, for what the daemon's code never sends. */
async function rawExtract(dest: string, frames: Buffer[]): Promise<unknown[]> {
  const s = net.createConnection({ path: path.join(dir, 'state', 'agent.sock') });
  const dec = new FrameDecoder();
  const got: unknown[] = [];
  s.on('data', (d) => {
    for (const f of dec.push(d)) {
      got.push(decodeReply(f));
      // once the refusal is in, our side ends so the helper can exit
      if ((decodeReply(f) as { type: string }).type === 'error') s.end();
    }
  });
  s.write(encodeMessage({ v: 1, type: 'hello', versions: [1], kind: 'extract', path: dest }));
  for (const f of frames) s.write(f);
  await new Promise((r) => s.on('close', r));
  return got;
}

beforeAll(async () => {
  dir = mkdtempSync('/tmp/tvm-extract-');
  const build = path.join(dir, 'build');
  execFileSync('make', ['-s', '-C', NATIVE, `BUILD=${build}`, `${build}/tvm-agent`], { stdio: 'pipe' });
  lower = path.join(dir, 'lower');
  writeRootfs(lower, busyboxRootfsEntries());
  const state = path.join(dir, 'state');
  mkdirSync(state);
  const s = containerSpec({ id: 'x1', name: 'x1', hostname: 'x1', stateDir: state }, { args: ['sleep', '60'], env: ['PATH=/bin'] });
  validateSpec(s);
  const cg: CgroupConfig = { version: 1, root: CG_ROOT, path: `${CG_PARENT}/x1` };
  const aspec = agentSpec(s, lower, cg);
  // no upper layer: the lower directory is the container's writable root, so the test reads
  // what the copy wrote straight from it
  aspec.rootfs = { lower, target: path.join(dir, 'target') };
  mkdirSync(aspec.rootfs.target);
  await spawnSupervisor(path.join(build, 'tvm-agent'), state, 30);
  client = await AgentClient.connect(unixConnector(path.join(state, 'agent.sock')));
  await client.create(aspec);
});

afterAll(async () => {
  await client?.shutdown().catch((e: Error) => console.error(`agent shutdown: ${e.message}`));
  client?.close();
  for (const c of V1_CONTROLLERS) {
    const d = path.join(CG_ROOT, c, CG_PARENT);
    if (existsSync(d)) rmdirSync(d);
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('agent extract connection', () => {
  it('is refused before the container runs', async () => {
    await expect(extractThroughAgent(client, '/tmp', tar([{ name: 'a', content: 'x' }]))).rejects.toMatchObject({ status: 409 });
    await client.start();
  });

  it('writes files, directories, symlinks and hard links inside the container root, with modes and owners', async () => {
    const big = randomBytes(2 * 1024 * 1024 + 5);
    await extractThroughAgent(
      client,
      '/tmp',
      tar([
        { name: 'd', type: 'directory', mode: 0o750 },
        { name: 'd/f', content: 'deep\n', mode: 0o4751, uid: 1000 },
        { name: 'd/ln', type: 'symlink', linkname: 'f' },
        { name: 'hard', type: 'link', linkname: 'd/f' },
        { name: 'big', content: big },
        { name: 'new/parent/file', content: 'p' },
      ]),
    );
    const t = path.join(lower, 'tmp');
    expect(statSync(path.join(t, 'd')).mode & 0o7777).toBe(0o750);
    const f = statSync(path.join(t, 'd', 'f'));
    expect([f.mode & 0o7777, f.uid, readFileSync(path.join(t, 'd', 'f'), 'utf8')]).toEqual([0o4751, 1000, 'deep\n']);
    expect(readlinkSync(path.join(t, 'd', 'ln'))).toBe('f');
    expect(statSync(path.join(t, 'hard')).ino).toBe(f.ino);
    expect(readFileSync(path.join(t, 'big')).equals(big)).toBe(true);
    expect(readFileSync(path.join(t, 'new', 'parent', 'file'), 'utf8')).toBe('p');
  });

  it("resolves symlinks in the container: an absolute link leads to its root, not the host's", async () => {
    const marker = `tvm-extract-escape-${process.pid}`;
    await extractThroughAgent(client, '/tmp', tar([{ name: 'esc', type: 'symlink', linkname: '/' }]));
    await extractThroughAgent(client, '/tmp', tar([{ name: `esc/${marker}`, content: 'inside' }]));
    expect(existsSync(`/${marker}`)).toBe(false);
    expect(readFileSync(path.join(lower, marker), 'utf8')).toBe('inside');
    expect(lstatSync(path.join(lower, 'tmp', 'esc')).isSymbolicLink()).toBe(true);
  });

  it("answers Docker's errors for a missing destination and one that is not a directory", async () => {
    await expect(extractThroughAgent(client, '/nope', tar([{ name: 'a', content: 'x' }]))).rejects.toMatchObject({
      status: 404,
      message: 'Could not find the file /nope in container',
    });
    await expect(extractThroughAgent(client, '/tmp/big', tar([{ name: 'a', content: 'x' }]))).rejects.toMatchObject({
      status: 400,
      message: 'extraction point /tmp/big is not a directory',
    });
    await expect(extractThroughAgent(client, '/tmp', tar([{ name: '../../etc/x', content: 'x' }]))).rejects.toMatchObject({ status: 400 });
  });

  it('refuses entries the daemon never sends: a climbing path, an unknown kind, data on a directory, a cut-off file', async () => {
    const entry = (o: object) =>
      encodeMessage({ v: 1, type: 'entry', path: 'a', kind: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, ...o } as never);
    for (const frames of [
      [entry({ path: '../a' })],
      [entry({ path: 'a/../../b' })],
      [entry({ kind: 'fifo' })],
      [entry({ kind: 'dir', size: 3 }), Buffer.from('abc')],
      [encodeFrame(Buffer.from('not json'))],
    ]) {
      const got = await rawExtract('/tmp', frames);
      expect(got[0]).toMatchObject({ type: 'hello' });
      expect(got[1]).toMatchObject({ type: 'error', code: 'ERR_PROTOCOL' });
    }
    // a file whose bytes never all come: the helper reports it once the connection ends
    const s = net.createConnection({ path: path.join(dir, 'state', 'agent.sock') });
    const dec = new FrameDecoder();
    const got: unknown[] = [];
    s.on('data', (d) => got.push(...dec.push(d).map((f) => decodeReply(f))));
    s.write(encodeMessage({ v: 1, type: 'hello', versions: [1], kind: 'extract', path: '/tmp' }));
    s.end(Buffer.concat([entry({ path: 'cut', size: 100 }), Buffer.from('short')]));
    await new Promise((r) => s.on('close', r));
    expect(got[1]).toMatchObject({ type: 'error', code: 'ERR_PROTOCOL' });
    // and the agent still serves its control connection
    expect((await client.state()).status).toBe('running');
  });
});
