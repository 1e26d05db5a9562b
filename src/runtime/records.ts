/**
 * Container records: one `containers/<id>/config.json` per container (written atomically), the
 * name registry and ID/name/prefix resolution. The record is the daemon's truth about a
 * container; the supervisor's state directory is the isolation's.
 */
import { mkdir, readdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { writeJsonAtomic } from '../atomic-file.js';
import { ConflictError, InvalidParameterError, NotFoundError, TvmError } from '../errors.js';
import type { ContainerSpec } from './types.js';
import type { ContainerStatus } from './state-machine.js';
import { mountPoints, unmountLoop } from './host/base-mounts.js';

export const RECORD_VERSION = 1;

export interface ContainerState {
  status: ContainerStatus;
  pid: number;
  exitCode: number;
  error: string;
  oomKilled: boolean;
  startedAt: string;
  finishedAt: string;
}

export interface MountPoint {
  Type: 'bind' | 'volume' | 'tmpfs';
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
  /** anonymous volumes are removed with `rm -v` */
  anonymous?: boolean;
}

export interface ContainerRecord {
  version: number;
  id: string;
  /** canonical '/name' */
  name: string;
  created: string;
  /** the image reference the user gave (Config.Image) */
  image: string;
  imageId: string;
  path: string;
  args: string[];
  /** Docker's Config, as merged with the image config */
  config: Record<string, unknown>;
  /** Docker's HostConfig, as given (normalized) */
  hostConfig: Record<string, unknown>;
  state: ContainerState;
  restartCount: number;
  /** `docker stop`/`kill` since the last start (Docker's HasBeenManuallyStopped): restart policies honour it */
  manuallyStopped?: boolean;
  mounts: MountPoint[];
  spec: ContainerSpec;
}

export const CONFIG_FILE = 'config.json';

/**
 * Removes a container directory that has no record (a create that failed or was cut short):
 * whatever is still mounted below it (its writable layer) is unmounted first, so nothing is
 * deleted through a mount; throws, leaving the directory, when a mount cannot go.
 */
export async function removeUnrecordedDir(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  await unmountBelow(dir);
  await rm(dir, { recursive: true, force: true });
}

/** Unmounts every mount below dir, deepest first (stacked mounts one by one). */
async function unmountBelow(dir: string): Promise<void> {
  const real = await realpath(dir);
  for (let pass = 0; pass < 8; pass++) {
    const below = [...(await mountPoints())].filter((m) => m.startsWith(`${real}/`)).sort((a, b) => b.length - a.length);
    if (below.length === 0) return;
    for (const m of below) await unmountLoop(m, 'ERR_LEFTOVER_UNMOUNT');
  }
  throw new TvmError('ERR_LEFTOVER_UNMOUNT', `mounts below ${dir} keep coming back`, 500);
}

export class RecordStore {
  readonly dir: string;
  private readonly byId = new Map<string, ContainerRecord>();
  private readonly byName = new Map<string, string>();
  /**
   * The name each record is indexed under. Not `byId.get(id).name`: callers (rename) change the
   * record object in place before saving it, so that would already be the new name and the
   * old one would stay taken until a daemon restart.
   */
  private readonly indexedName = new Map<string, string>();
  /** names held by creates still in progress, so two creates cannot take the same name */
  private readonly reserved = new Map<string, string>();

  constructor(dataRoot: string) {
    this.dir = path.join(dataRoot, 'containers');
  }

  stateDir(id: string): string {
    return path.join(this.dir, id);
  }

  /**
   * Loads every record. Directories without a readable config.json are leftovers of a create
   * that crashed half-way: they are removed, never shown as containers. Returns the names of
   * directories it removed, and records it could not parse (kept on disk for inspection).
   */
  async load(): Promise<{ removed: string[]; broken: { id: string; error: string }[] }> {
    await mkdir(this.dir, { recursive: true });
    const removed: string[] = [];
    const broken: { id: string; error: string }[] = [];
    for (const entry of await readdir(this.dir)) {
      const dir = path.join(this.dir, entry);
      if (!(await stat(dir)).isDirectory()) continue;
      let text: string;
      try {
        text = await readFile(path.join(dir, CONFIG_FILE), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        // a create cut short may have left its writable layer mounted: never rm through a mount
        try {
          await unmountBelow(dir);
        } catch (err) {
          broken.push({ id: entry, error: `leftover of an interrupted create, kept: ${(err as Error).message}` });
          continue;
        }
        await rm(dir, { recursive: true, force: true });
        removed.push(entry);
        continue;
      }
      try {
        const rec = parseRecord(text, entry);
        this.byId.set(rec.id, rec);
        this.byName.set(rec.name, rec.id);
        this.indexedName.set(rec.id, rec.name);
      } catch (e) {
        broken.push({ id: entry, error: (e as Error).message });
      }
    }
    return { removed, broken };
  }

  all(): ContainerRecord[] {
    return [...this.byId.values()];
  }

  get(id: string): ContainerRecord | undefined {
    return this.byId.get(id);
  }

  nameTaken(name: string): boolean {
    return this.byName.has(name) || this.reserved.has(name);
  }

  /** Holds a name for a create in progress; throws Docker's 409 when it is taken. */
  reserveName(name: string, id: string): void {
    const holder = this.byName.get(name) ?? this.reserved.get(name);
    if (holder !== undefined) {
      throw new ConflictError(
        `Conflict. The container name "${name}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`,
      );
    }
    this.reserved.set(name, id);
  }

  releaseName(name: string): void {
    this.reserved.delete(name);
  }

  /** Persists a record atomically and indexes it (also the first write of a new record). */
  async save(rec: ContainerRecord): Promise<void> {
    await writeJsonAtomic(path.join(this.stateDir(rec.id), CONFIG_FILE), rec);
    const prev = this.indexedName.get(rec.id);
    if (prev !== undefined && prev !== rec.name && this.byName.get(prev) === rec.id) this.byName.delete(prev);
    this.byId.set(rec.id, rec);
    this.byName.set(rec.name, rec.id);
    this.indexedName.set(rec.id, rec.name);
    this.reserved.delete(rec.name);
  }

  /** Forgets the record and deletes its directory. */
  async delete(id: string): Promise<void> {
    const rec = this.byId.get(id);
    // Delete config.json first: a crash after it leaves a directory that load() cleans up.
    await rm(path.join(this.stateDir(id), CONFIG_FILE), { force: true });
    await rm(this.stateDir(id), { recursive: true, force: true });
    if (rec) {
      this.byId.delete(id);
      const name = this.indexedName.get(id) ?? rec.name;
      if (this.byName.get(name) === id) this.byName.delete(name);
      this.indexedName.delete(id);
    }
  }

  /** Docker's lookup order: full ID, exact name, unique ID prefix. */
  resolve(ref: string): ContainerRecord {
    const found = this.find(ref);
    if (!found) throw new NotFoundError(`No such container: ${ref}`);
    return found;
  }

  find(ref: string): ContainerRecord | undefined {
    if (ref === '') return undefined;
    const exact = this.byId.get(ref);
    if (exact) return exact;
    const byName = this.byName.get(ref.startsWith('/') ? ref : `/${ref}`);
    if (byName) return this.byId.get(byName);
    if (!/^[0-9a-f]+$/.test(ref)) return undefined;
    const matches = [...this.byId.keys()].filter((id) => id.startsWith(ref));
    if (matches.length > 1) throw new InvalidParameterError(`multiple IDs found with provided prefix: ${ref}`, 'ERR_AMBIGUOUS');
    return matches.length === 1 ? this.byId.get(matches[0]!) : undefined;
  }
}

export function parseRecord(text: string, dirName: string): ContainerRecord {
  const v = JSON.parse(text) as Partial<ContainerRecord>;
  if (typeof v !== 'object' || v === null) throw new Error('record is not an object');
  if (v.version !== RECORD_VERSION) throw new Error(`unsupported record version ${String(v.version)}`);
  if (v.id !== dirName) throw new Error(`record id ${String(v.id)} does not match its directory ${dirName}`);
  for (const k of ['name', 'created', 'imageId', 'path'] as const) {
    if (typeof v[k] !== 'string') throw new Error(`record field ${k} missing`);
  }
  if (!v.state || typeof v.state.status !== 'string') throw new Error('record state missing');
  if (!v.spec || typeof v.spec !== 'object') throw new Error('record spec missing');
  return v as ContainerRecord;
}
