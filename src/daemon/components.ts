/**
 * The real parts the daemon runs on: the image store (src/images), the per-image base disks
 * (src/disks) and the isolations (src/runtime/host; src/runtime/vm later). Loaded by path so
 * the daemon names precisely which part is missing instead of failing to import.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TvmError } from '../errors.js';
import type { ImageStore, BaseDisks } from '../images/types.js';
import type { Isolation, IsolationKind } from '../runtime/types.js';

export interface Components {
  images: ImageStore;
  isolations: Partial<Record<IsolationKind, Isolation>>;
}

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..');
export const AGENT_PATH = path.join(REPO_ROOT, 'native', 'build', 'tvm-agent');

async function importPart(rel: string, what: string): Promise<Record<string, unknown>> {
  const file = path.join(REPO_ROOT, 'src', rel.replace(/\.js$/, '.ts'));
  if (!existsSync(file) && !existsSync(file.replace(/\.ts$/, '.js'))) {
    throw new TvmError('ERR_PART_MISSING', `${what} is not available: ${path.relative(REPO_ROOT, file)} does not exist in this build`, 500);
  }
  return (await import(path.join('..', rel))) as Record<string, unknown>;
}

export async function loadComponents(o: { dataRoot: string; execRoot: string; insecureRegistries?: string[] }): Promise<Components> {
  const storeMod = await importPart('images/store.js', 'the image store');
  const openImageStore = storeMod.openImageStore as ((x: { dataRoot: string; insecureRegistries?: string[] }) => Promise<ImageStore>) | undefined;
  const Store = storeMod.Store as (new (root: string, opts: { insecureRegistries?: string[] }) => ImageStore) | undefined;
  let images: ImageStore;
  if (typeof openImageStore === 'function') {
    images = await openImageStore({ dataRoot: o.dataRoot, ...(o.insecureRegistries && { insecureRegistries: o.insecureRegistries }) });
  } else if (typeof Store === 'function') {
    images = new Store(o.dataRoot, { ...(o.insecureRegistries && { insecureRegistries: o.insecureRegistries }) });
  } else {
    throw new TvmError('ERR_PART_MISSING', 'src/images/store.ts exports neither openImageStore nor Store', 500);
  }

  const diskMod = await importPart('disks/base-disk.js', 'the base-disk cache');
  const BaseDiskCache = diskMod.BaseDiskCache as (new (x: { dataRoot: string; layerStreams: (id: string) => AsyncIterable<NodeJS.ReadableStream> }) => BaseDisks) | undefined;
  if (typeof BaseDiskCache !== 'function') throw new TvmError('ERR_PART_MISSING', 'src/disks/base-disk.ts does not export BaseDiskCache yet', 500);
  const baseDisks = new BaseDiskCache({ dataRoot: o.dataRoot, layerStreams: (id: string) => images.layerStreams(id) });

  const hostMod = await importPart('runtime/host/isolation.js', 'the container isolation');
  const HostIsolation = hostMod.HostIsolation as (new (x: { dataRoot: string; runRoot: string; agentPath: string; baseDisks: BaseDisks; images: ImageStore }) => Isolation) | undefined;
  if (typeof HostIsolation !== 'function') throw new TvmError('ERR_PART_MISSING', 'src/runtime/host/isolation.ts does not export HostIsolation yet', 500);
  if (!existsSync(AGENT_PATH)) throw new TvmError('ERR_PART_MISSING', `the agent binary ${AGENT_PATH} is missing: run scripts/setup.sh (make -C native)`, 500);
  const container = new HostIsolation({ dataRoot: o.dataRoot, runRoot: o.execRoot, agentPath: AGENT_PATH, baseDisks, images });
  return { images, isolations: { container } };
}
