import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtemp, mkdir, readdir, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RecordStore, RECORD_VERSION, type ContainerRecord } from '../../../src/runtime/records.js';
import { newId, validateName, randomName } from '../../../src/runtime/ids.js';

function record(id: string, name: string, stateDir: string): ContainerRecord {
  return {
    version: RECORD_VERSION,
    id,
    name,
    created: new Date().toISOString(),
    image: 'busybox',
    imageId: 'sha256:' + 'a'.repeat(64),
    path: 'sh',
    args: [],
    config: {},
    hostConfig: {},
    state: { status: 'created', pid: 0, exitCode: 0, error: '', oomKilled: false, startedAt: '', finishedAt: '' },
    restartCount: 0,
    mounts: [],
    spec: {
      id,
      name,
      hostname: id.slice(0, 12),
      isolation: 'container',
      imageId: 'sha256:' + 'a'.repeat(64),
      process: { args: ['sh'], env: [], cwd: '/', user: '', tty: false, openStdin: false },
      mounts: [],
      resources: {},
      capAdd: [],
      capDrop: [],
      privileged: false,
      readonlyRootfs: false,
      network: 'none',
      stateDir,
      logPath: path.join(stateDir, 'log.jsonl'),
    },
  };
}

describe('RecordStore', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'tvm-records-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('saves atomically and loads back', async () => {
    const s = new RecordStore(root);
    await s.load();
    const id = newId();
    await s.save(record(id, '/web', s.stateDir(id)));
    expect(await readdir(s.stateDir(id))).toEqual(['config.json']);
    const s2 = new RecordStore(root);
    await s2.load();
    expect(s2.get(id)?.name).toBe('/web');
    expect(JSON.parse(await readFile(path.join(s.stateDir(id), 'config.json'), 'utf8')).id).toBe(id);
  });

  it('removes directories of creates that never finished, keeps unreadable records aside', async () => {
    const s = new RecordStore(root);
    await s.load();
    const half = newId();
    await mkdir(path.join(s.dir, half, 'rootfs'), { recursive: true });
    const broken = newId();
    await mkdir(path.join(s.dir, broken));
    await writeFile(path.join(s.dir, broken, 'config.json'), '{"version": 1, "id": "x"');
    const r = await new RecordStore(root).load();
    expect(r.removed).toEqual([half]);
    expect(r.broken.map((b) => b.id)).toEqual([broken]);
    expect((await readdir(s.dir)).sort()).toEqual([broken]);
  });

  it('resolves by full ID, name (with or without slash) and unique prefix', async () => {
    const s = new RecordStore(root);
    await s.load();
    const a = 'ab' + newId().slice(2);
    const b = 'ac' + newId().slice(2);
    await s.save(record(a, '/alpha', s.stateDir(a)));
    await s.save(record(b, '/beta', s.stateDir(b)));
    expect(s.resolve(a).name).toBe('/alpha');
    expect(s.resolve('beta').id).toBe(b);
    expect(s.resolve('/beta').id).toBe(b);
    expect(s.resolve('ab').id).toBe(a);
    expect(() => s.resolve('a')).toThrow('multiple IDs found with provided prefix: a');
    expect(() => s.resolve('nope')).toThrow('No such container: nope');
  });

  it("refuses a taken name with Docker's 409 message, also while a create is in flight", async () => {
    const s = new RecordStore(root);
    await s.load();
    const id = newId();
    s.reserveName('/web', id);
    expect(() => s.reserveName('/web', newId())).toThrow(`Conflict. The container name "/web" is already in use by container "${id}"`);
    s.releaseName('/web');
    expect(() => s.reserveName('/web', newId())).not.toThrow();
  });

  it('deletes record and directory', async () => {
    const s = new RecordStore(root);
    await s.load();
    const id = newId();
    await s.save(record(id, '/gone', s.stateDir(id)));
    await s.delete(id);
    expect(s.get(id)).toBeUndefined();
    expect(s.nameTaken('/gone')).toBe(false);
    expect(await readdir(s.dir)).toEqual([]);
  });
});

describe('ids and names', () => {
  it('makes 64-hex IDs', () => {
    expect(newId()).toMatch(/^[0-9a-f]{64}$/);
  });
  it('validates names like Docker', () => {
    expect(validateName('web_1.x-y')).toBe('/web_1.x-y');
    expect(validateName('/web')).toBe('/web');
    expect(() => validateName('-bad')).toThrow('Invalid container name (-bad), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed');
    expect(() => validateName('a b')).toThrow();
  });
  it('generates free random names', () => {
    const n = randomName(() => false);
    expect(n).toMatch(/^\/[a-z]+_[a-z]+$/);
  });
});
