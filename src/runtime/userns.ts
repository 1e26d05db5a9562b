/**
 * `tvm daemon --userns-remap`: which host ids a remapped container's root and users become.
 *
 * As Docker does, the remap names a host user (and group) whose subordinate ranges in
 * /etc/subuid and /etc/subgid ("name:start:count" per line) are mapped, in file order, onto
 * container ids 0, 1, 2, ... . `default` means the user `dockremap`, the name Docker uses: a host
 * that ran Docker with remapping already has its ranges, and files written by those containers
 * keep the same owners under tvm. If `dockremap` or its ranges are missing they are created (the
 * user with useradd, a 65536-id range at the first gap from 100000, as Docker does).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { writeFileAtomic } from '../atomic-file.js';
import { InvalidParameterError, TvmError } from '../errors.js';

const run = promisify(execFile);

/** One line of a uid_map/gid_map: container ids [containerID, containerID+size) are host ids [hostID, ...). */
export interface IdMapEntry {
  containerID: number;
  hostID: number;
  size: number;
}

export interface IdMappings {
  uidMap: IdMapEntry[];
  gidMap: IdMapEntry[];
}

/** One /etc/subuid or /etc/subgid entry. */
export interface SubIdRange {
  owner: string;
  start: number;
  count: number;
}

/** The daemon's remapping, resolved. */
export interface RemapConfig {
  user: string;
  group: string;
  maps: IdMappings;
}

export const DEFAULT_REMAP_USER = 'dockremap';
/** Docker's default range size and the lowest id it allocates from */
export const DEFAULT_RANGE_SIZE = 65536;
export const FIRST_SUBORDINATE_ID = 100000;
const MAX_ID = 2 ** 32 - 1;
/** the kernel accepts at most this many lines in a uid_map (since 4.15) */
export const MAX_MAP_LINES = 340;

function isId(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n <= MAX_ID;
}

/** Parses /etc/subuid or /etc/subgid. Blank lines and '#' comments are skipped; anything else malformed is an error naming file:line. */
export function parseSubIdFile(text: string, file: string): SubIdRange[] {
  const out: SubIdRange[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const f = line.split(':');
    const where = `${file}:${i + 1}`;
    if (f.length !== 3 || f[0] === '' || !/^\d+$/.test(f[1]!) || !/^\d+$/.test(f[2]!)) {
      throw new InvalidParameterError(`${where}: expected "name:start:count", got ${JSON.stringify(line)}`, 'ERR_SUBID_FORMAT');
    }
    const start = Number(f[1]);
    const count = Number(f[2]);
    if (!isId(start) || count < 1 || !isId(start + count - 1)) {
      throw new InvalidParameterError(`${where}: range ${start}+${count} is outside the 32-bit id space`, 'ERR_SUBID_FORMAT');
    }
    out.push({ owner: f[0]!, start, count });
  });
  return out;
}

export function formatSubIdLine(r: SubIdRange): string {
  return `${r.owner}:${r.start}:${r.count}\n`;
}

/** The ranges of a user, in file order: entries name it or its numeric id (shadow-utils accepts both). */
export function rangesOf(ranges: SubIdRange[], name: string, id?: number): SubIdRange[] {
  return ranges.filter((r) => r.owner === name || (id !== undefined && r.owner === String(id)));
}

/** Maps container ids 0.. onto the ranges in order, as Docker does with several ranges. */
export function idMapFromRanges(ranges: SubIdRange[]): IdMapEntry[] {
  if (ranges.length > MAX_MAP_LINES)
    throw new InvalidParameterError(`${ranges.length} subordinate ranges: the kernel maps at most ${MAX_MAP_LINES}`, 'ERR_SUBID_RANGE');
  const out: IdMapEntry[] = [];
  let next = 0;
  for (const r of ranges) {
    if (next + r.count - 1 > MAX_ID) throw new InvalidParameterError('subordinate ranges add up to more than 2^32 ids', 'ERR_SUBID_RANGE');
    out.push({ containerID: next, hostID: r.start, size: r.count });
    next += r.count;
  }
  return out;
}

/** The first start >= `from` where `size` ids overlap no existing range (of any owner). */
export function findFreeRange(ranges: SubIdRange[], size = DEFAULT_RANGE_SIZE, from = FIRST_SUBORDINATE_ID): number {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  let start = from;
  for (const r of sorted) {
    const end = r.start + r.count;
    if (end <= start) continue;
    if (r.start >= start + size) break;
    start = end;
  }
  if (!isId(start + size - 1)) throw new TvmError('ERR_SUBID_FULL', `no free range of ${size} subordinate ids above ${from}`, 500);
  return start;
}

/** Host id of container id `id` under `map`, or undefined when it is not mapped. */
export function toHost(map: IdMapEntry[], id: number): number | undefined {
  for (const e of map) if (id >= e.containerID && id < e.containerID + e.size) return e.hostID + (id - e.containerID);
  return undefined;
}

/** Number of container ids a map covers from 0 without a gap (what an id-shifted disk can hold). */
export function contiguousSize(map: IdMapEntry[]): number {
  let n = 0;
  for (;;) {
    const e = map.find((m) => m.containerID === n);
    if (!e) return n;
    n += e.size;
  }
}

export function rootOf(maps: IdMappings): { uid: number; gid: number } {
  const uid = toHost(maps.uidMap, 0);
  const gid = toHost(maps.gidMap, 0);
  if (uid === undefined || gid === undefined)
    throw new InvalidParameterError('the id maps do not map container root (0)', 'ERR_SUBID_RANGE');
  return { uid, gid };
}

/** Validates a map before it reaches the kernel: ids in range, no overlap on either side. */
export function validateIdMap(map: IdMapEntry[], what: string): void {
  if (map.length === 0) throw new InvalidParameterError(`${what}: empty`, 'ERR_SUBID_RANGE');
  if (map.length > MAX_MAP_LINES) throw new InvalidParameterError(`${what}: more than ${MAX_MAP_LINES} lines`, 'ERR_SUBID_RANGE');
  for (const e of map) {
    if (
      !isId(e.containerID) ||
      !isId(e.hostID) ||
      !Number.isSafeInteger(e.size) ||
      e.size < 1 ||
      !isId(e.containerID + e.size - 1) ||
      !isId(e.hostID + e.size - 1)
    ) {
      throw new InvalidParameterError(`${what}: invalid entry ${JSON.stringify(e)}`, 'ERR_SUBID_RANGE');
    }
  }
  const overlap = (k: 'containerID' | 'hostID') => {
    const s = [...map].sort((a, b) => a[k] - b[k]);
    for (let i = 1; i < s.length; i++) if (s[i - 1]![k] + s[i - 1]!.size > s[i]![k]) return true;
    return false;
  };
  if (overlap('containerID') || overlap('hostID')) throw new InvalidParameterError(`${what}: ranges overlap`, 'ERR_SUBID_RANGE');
  // a subordinate range over host id 0 would give the container the host's root
  if (map.some((e) => e.hostID === 0))
    throw new InvalidParameterError(`${what}: a range includes host id 0 (root); fix /etc/subuid and /etc/subgid`, 'ERR_SUBID_RANGE');
}

/** `--userns-remap` value: 'default', 'user', 'user:group', 'uid', 'uid:gid'. */
export function parseRemapSpec(spec: string): { user: string; group?: string } {
  const s = spec.trim();
  if (s === '') throw new InvalidParameterError('--userns-remap: empty value');
  if (s === 'default') return { user: DEFAULT_REMAP_USER, group: DEFAULT_REMAP_USER };
  const parts = s.split(':');
  const ok = (p: string) => /^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(p);
  if (parts.length > 2 || !parts.every(ok))
    throw new InvalidParameterError(`--userns-remap ${JSON.stringify(spec)}: expected default, user, user:group, uid or uid:gid`);
  if (parts[0] === 'root' || parts[0] === '0')
    throw new InvalidParameterError('--userns-remap: remapping to root is not allowed (it would not isolate anything)');
  return parts.length === 2 ? { user: parts[0]!, group: parts[1]! } : { user: parts[0]! };
}

interface Entry {
  name: string;
  id: number;
}

/** name:x:id:... lines of /etc/passwd or /etc/group */
export function parseNameIdFile(text: string): Entry[] {
  const out: Entry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0] !== '' && /^\d+$/.test(f[2]!)) out.push({ name: f[0]!, id: Number(f[2]) });
  }
  return out;
}

function lookup(entries: Entry[], nameOrId: string): Entry | undefined {
  if (/^\d+$/.test(nameOrId)) return entries.find((e) => e.id === Number(nameOrId)) ?? { name: nameOrId, id: Number(nameOrId) };
  return entries.find((e) => e.name === nameOrId);
}

async function readOr(file: string, fallback: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw e;
  }
}

export interface ResolveRemapOptions {
  /** directory holding passwd, group, subuid, subgid (tests use a temp one) */
  etcDir?: string;
  /** creates the `default` user when absent; default: useradd --system */
  createUser?: (name: string) => Promise<void>;
}

async function useradd(name: string): Promise<void> {
  try {
    await run('useradd', ['--system', '--no-create-home', '--shell', '/bin/false', '--user-group', name]);
  } catch (e) {
    const err = e as { stderr?: string; message: string; code?: string };
    if (err.code === 'ENOENT')
      throw new TvmError('ERR_PART_MISSING', `--userns-remap=default needs useradd (package passwd) to create the ${name} user`, 500);
    throw new TvmError('ERR_USERADD', `cannot create the ${name} user: ${(err.stderr || err.message).trim()}`, 500, { cause: e });
  }
}

/**
 * Resolves a `--userns-remap` value to id maps. For `default`, creates the dockremap user and
 * its subordinate ranges if absent (idempotent: a second run finds and reuses them).
 */
export async function resolveRemap(spec: string, o: ResolveRemapOptions = {}): Promise<RemapConfig> {
  const etc = o.etcDir ?? '/etc';
  const want = parseRemapSpec(spec);
  const isDefault = spec.trim() === 'default';
  let users = parseNameIdFile(await readOr(path.join(etc, 'passwd'), ''));
  let user = lookup(users, want.user);
  if (!user && isDefault) {
    await (o.createUser ?? useradd)(want.user);
    users = parseNameIdFile(await readOr(path.join(etc, 'passwd'), ''));
    user = lookup(users, want.user);
  }
  if (!user)
    throw new InvalidParameterError(
      `--userns-remap: no such user ${JSON.stringify(want.user)} in ${path.join(etc, 'passwd')}`,
      'ERR_NO_SUCH_USER',
    );
  const groups = parseNameIdFile(await readOr(path.join(etc, 'group'), ''));
  // Docker: with only a user given, the group of the same name
  const groupName = want.group ?? user.name;
  const group = lookup(groups, groupName);
  if (!group)
    throw new InvalidParameterError(
      `--userns-remap: no such group ${JSON.stringify(groupName)} in ${path.join(etc, 'group')}`,
      'ERR_NO_SUCH_GROUP',
    );

  // subgid lines are keyed by login name like subuid: the group's own entries if it has any, else the user's
  const mapFor = async (file: string, owner: Entry, fallback?: Entry): Promise<IdMapEntry[]> => {
    const full = path.join(etc, file);
    const text = await readOr(full, '');
    const all = parseSubIdFile(text, full);
    let mine = rangesOf(all, owner.name, owner.id);
    if (mine.length === 0 && fallback) mine = rangesOf(all, fallback.name, fallback.id);
    if (mine.length === 0 && isDefault) {
      const r = { owner: owner.name, start: findFreeRange(all), count: DEFAULT_RANGE_SIZE };
      await writeFileAtomic(full, (text === '' || text.endsWith('\n') ? text : `${text}\n`) + formatSubIdLine(r), 0o644);
      mine = [r];
    }
    if (mine.length === 0) {
      throw new InvalidParameterError(
        `--userns-remap: no subordinate ids for ${owner.name} in ${full} (add a line "${owner.name}:100000:65536")`,
        'ERR_NO_SUBIDS',
      );
    }
    return idMapFromRanges(mine);
  };
  const maps = { uidMap: await mapFor('subuid', user), gidMap: await mapFor('subgid', group, user) };
  validateIdMap(maps.uidMap, `subordinate uids of ${user.name}`);
  validateIdMap(maps.gidMap, `subordinate gids of ${group.name}`);
  return { user: user.name, group: group.name, maps };
}
