/**
 * Named volumes (local driver): `volumes/<name>/_data` on the data root plus an atomically
 * written `volume.json`. Created explicitly or on first use by `-v name:/path`.
 */
import { mkdir, readdir, readFile, rm, rename } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeJsonAtomic } from '../atomic-file.js';
import { ConflictError, InvalidParameterError, NotFoundError } from '../errors.js';
import { newId } from './ids.js';

export interface VolumeRecord {
  Name: string;
  Driver: 'local';
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Scope: 'local';
  Options: Record<string, string>;
  /** created implicitly for an anonymous `-v /path`: removed by `rm -v` and by prune */
  Anonymous?: boolean;
}

const VOLUME_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
/** the longest file name Linux filesystems take */
const NAME_MAX = 255;

/**
 * A create's or remove's temp directory: dot-prefixed (load() sweeps them after a crash) and of
 * fixed length, never derived from the volume's name, which may already be NAME_MAX long.
 */
function tempName(what: 'new' | 'rm'): string {
  return `.${what}-${randomBytes(8).toString('hex')}`;
}

export class VolumeStore {
  readonly dir: string;
  private readonly volumes = new Map<string, VolumeRecord>();

  constructor(dataRoot: string) {
    this.dir = path.join(dataRoot, 'volumes');
  }

  async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const name of await readdir(this.dir)) {
      if (name.startsWith('.')) {
        // A create or remove interrupted half-way.
        await rm(path.join(this.dir, name), { recursive: true, force: true });
        continue;
      }
      try {
        const v = JSON.parse(await readFile(path.join(this.dir, name, 'volume.json'), 'utf8')) as VolumeRecord;
        if (v.Name === name) this.volumes.set(name, v);
      } catch {
        // No metadata: never finished creating.
        await rm(path.join(this.dir, name), { recursive: true, force: true });
      }
    }
  }

  list(): VolumeRecord[] {
    return [...this.volumes.values()];
  }

  get(name: string): VolumeRecord {
    const v = this.volumes.get(name);
    if (!v) throw new NotFoundError(`get ${name}: no such volume`);
    return v;
  }

  has(name: string): boolean {
    return this.volumes.has(name);
  }

  /** Creates a volume, or returns the existing one of that name (Docker's create is idempotent). */
  async create(opts: {
    name?: string;
    labels?: Record<string, string>;
    driver?: string;
    options?: Record<string, string>;
    anonymous?: boolean;
  }): Promise<{ volume: VolumeRecord; created: boolean }> {
    if (opts.driver !== undefined && opts.driver !== '' && opts.driver !== 'local') {
      throw new NotFoundError(`error looking up volume plugin ${opts.driver}: plugin "${opts.driver}" not found`);
    }
    if (opts.options && Object.keys(opts.options).length > 0) {
      throw new InvalidParameterError('volume driver options are not supported yet (local driver without options only)');
    }
    const name = opts.name && opts.name !== '' ? opts.name : newId();
    if (!VOLUME_NAME_RE.test(name)) {
      throw new InvalidParameterError(
        `create ${name}: "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`,
      );
    }
    // The name is a directory name: past NAME_MAX the filesystem refuses it (dockerd answers
    // with its host path in a 500); say so plainly instead.
    if (Buffer.byteLength(name) > NAME_MAX) {
      throw new InvalidParameterError(`create ${name.slice(0, 32)}...: volume name is too long (at most ${NAME_MAX} characters)`);
    }
    const existing = this.volumes.get(name);
    if (existing) return { volume: existing, created: false };
    const final = path.join(this.dir, name);
    const tmp = path.join(this.dir, tempName('new'));
    const v: VolumeRecord = {
      Name: name,
      Driver: 'local',
      Mountpoint: path.join(final, '_data'),
      CreatedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      Labels: opts.labels ?? {},
      Scope: 'local',
      Options: {},
      ...(opts.anonymous && { Anonymous: true }),
    };
    try {
      await mkdir(path.join(tmp, '_data'), { recursive: true, mode: 0o755 });
      await writeJsonAtomic(path.join(tmp, 'volume.json'), v);
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
    this.volumes.set(name, v);
    return { volume: v, created: true };
  }

  /** `inUse`: names of volumes some container mounts. */
  async remove(name: string, inUse: Map<string, string[]>, force = false): Promise<void> {
    const v = this.volumes.get(name);
    if (!v) {
      if (force) return;
      throw new NotFoundError(`get ${name}: no such volume`);
    }
    const users = inUse.get(name);
    if (users && users.length > 0) {
      throw new ConflictError(`remove ${name}: volume is in use - [${users.join(', ')}]`);
    }
    const tmp = path.join(this.dir, tempName('rm'));
    await rename(path.join(this.dir, name), tmp);
    this.volumes.delete(name);
    await rm(tmp, { recursive: true, force: true });
  }
}
