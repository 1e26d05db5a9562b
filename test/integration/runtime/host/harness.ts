/**
 * Test harness for HostIsolation: a busybox base disk made with mke2fs -d from the shared
 * fixture, fake ImageStore/BaseDisks returning it, short temp roots (unix socket paths), and
 * helpers to build specs and collect output.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { busyboxRootfsEntries, packTar } from '../../../fixtures/rootfs.js';
import { containerSpec } from '../../../fixtures/spec.js';
import type { BaseDisks, ImageRecord, ImageStore } from '../../../../src/images/types.js';
import type { ContainerSpec, ProcessSpec } from '../../../../src/runtime/types.js';
import { HostIsolation } from '../../../../src/runtime/host/isolation.js';

export const REPO = path.resolve(import.meta.dirname, '../../../..');
export const AGENT = path.join(REPO, 'native/build/tvm-agent');
export const IMAGE_ID = `sha256:${'ab'.repeat(32)}`;

export function requireTools(): void {
  if (process.getuid?.() !== 0) throw new Error('these tests need root (namespaces, cgroups, loop mounts)');
  for (const t of ['mke2fs', 'tar', 'mount', 'umount', 'make']) {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'pipe' });
    } catch {
      throw new Error(`missing tool: ${t}`);
    }
  }
}

export function buildAgent(): string {
  execFileSync('make', ['-s', '-C', path.join(REPO, 'native')], { stdio: 'pipe' });
  if (!existsSync(AGENT)) throw new Error(`make -C native did not produce ${AGENT}`);
  return AGENT;
}

/** Busybox rootfs plus the applets these tests use, as an ext4 base disk. */
export async function makeBaseDisk(dir: string): Promise<string> {
  const extra = ['unshare', 'stty', 'setpriv', 'cat', 'sleep', 'tar'];
  const entries = busyboxRootfsEntries();
  const have = new Set(entries.map((e) => e.name));
  for (const a of extra) if (!have.has(`bin/${a}`)) entries.push({ name: `bin/${a}`, type: 'symlink', linkname: 'busybox' });
  entries.push({ name: 'mnt/', type: 'directory' });
  const tar = await packTar(entries);
  const tree = path.join(dir, 'tree');
  mkdirSync(tree, { recursive: true });
  const tarPath = path.join(dir, 'rootfs.tar');
  writeFileSync(tarPath, tar);
  execFileSync('tar', ['-x', '-p', '-f', tarPath, '-C', tree]);
  const disk = path.join(dir, 'base.ext4');
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', tree, disk, '64M'], { stdio: 'pipe' });
  rmSync(tree, { recursive: true, force: true });
  return disk;
}

export function fakeImages(disk: string): { images: ImageStore; baseDisks: BaseDisks } {
  const rec: ImageRecord = {
    id: IMAGE_ID,
    repoTags: ['busybox:test'],
    repoDigests: [],
    created: '2024-01-01T00:00:00Z',
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['sh'] },
    diffIds: [],
    size: 0,
  };
  const nope = () => Promise.reject(new Error('not used by these tests'));
  const images: ImageStore = {
    resolve: async (ref) => {
      if (ref !== IMAGE_ID && ref !== 'busybox:test') throw new Error(`no such image ${ref}`);
      return rec;
    },
    list: async () => [rec],
    pull: nope,
    load: nope,
    save: nope,
    importRootfs: nope,
    tag: nope,
    remove: nope,
    layerStreams: () => ({ [Symbol.asyncIterator]: () => ({ next: nope }) }),
  };
  return { images, baseDisks: { ensure: async () => disk } };
}

export interface Env {
  root: string;
  dataRoot: string;
  runRoot: string;
  disk: string;
  iso: HostIsolation;
  newIsolation(): HostIsolation;
}

export async function setup(): Promise<Env> {
  requireTools();
  buildAgent();
  const root = mkdtempSync('/tmp/tvmh-');
  const dataRoot = path.join(root, 'd');
  const runRoot = path.join(root, 'r');
  mkdirSync(path.join(dataRoot, 'containers'), { recursive: true });
  const disk = await makeBaseDisk(root);
  const newIsolation = () => new HostIsolation({ dataRoot, runRoot, agentPath: AGENT, ...fakeImages(disk) });
  return { root, dataRoot, runRoot, disk, iso: newIsolation(), newIsolation };
}

let seq = 0;
export function makeSpec(env: Env, args: string[], over: Partial<ContainerSpec> = {}, proc: Partial<ProcessSpec> = {}): ContainerSpec {
  const id = `t${process.pid}x${++seq}${Math.random().toString(16).slice(2, 8)}`;
  return containerSpec(
    { id, name: id, hostname: 'box', imageId: IMAGE_ID, stateDir: path.join(env.dataRoot, 'containers', id), ...over },
    { args, env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], ...proc },
  );
}

export class Sink extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk);
    cb();
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** create + attach + start + wait: the `docker run` sequence. */
export async function run(env: Env, spec: ContainerSpec, iso = env.iso) {
  await iso.create(spec);
  const stdout = new Sink();
  const stderr = new Sink();
  const att = await iso.attach(spec, { stdout, stderr });
  const info = await iso.start(spec);
  const status = await iso.wait(spec);
  await att.done;
  return { info, status, stdout: stdout.text, stderr: stderr.text };
}
