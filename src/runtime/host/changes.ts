/**
 * `docker diff` for an overlayfs container: what Docker reports, computed from the upper
 * directory alone (plus lookups in the lower) instead of walking the whole root.
 *
 * The answer is Docker's diff of the container's root against its image (moby's
 * archive.ChangesDirs, which dockerd's overlay2 driver uses on current kernels, checked against
 * dockerd 20.10 on this machine's 6.x kernel):
 *
 * - a path the image lacks is added (1), and so is everything below an added directory;
 * - a path the container lacks is deleted (2): a whiteout (a 0/0 character device, or a file
 *   marked trusted.overlay.whiteout in a directory marked trusted.overlay.opaque=x), or, in an
 *   opaque directory (trusted.overlay.opaque=y), a name the image has there and the upper does
 *   not; below a deleted or replaced directory nothing more is reported;
 * - a path in both is modified (0) when its type, mode, owner or device differ, or, for
 *   anything but a directory, its mtime or size (moby's statDifferent: a directory's mtime and
 *   size say nothing), or its security.capability;
 * - every directory holding a change is modified too, up to (not including) /;
 * - sorted by path, byte-wise (moby's changesByPath; dockerd's own order is a map's).
 *
 * Only what the upper directory holds can differ from the image (everything else is the lower's
 * own file), so the walk visits the upper tree and looks each name up in the lower with one
 * lstat per component, never following a lower symlink (nothing outside the lower is read).
 *
 * Docker keeps the mount points its runtime makes (/proc, /sys, /dev, /etc/hosts, ...) in an
 * "init" layer under the container's own, so they never show in `docker diff`; here the agent
 * makes them in the upper directory, so they are left out by name (DOCKER_INIT_PATHS), and a
 * directory the runtime made only to hold one (an image without /etc) counts as the image's.
 */
import { lstat, readdir } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import path from 'node:path';
import { NotFoundError } from '../../errors.js';
import { CHANGE_ADDED, CHANGE_DELETED, CHANGE_MODIFIED, type Change } from '../types.js';
import { lgetxattr } from './xattr.js';

export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';
export const OVERLAY_WHITEOUT_XATTR = 'trusted.overlay.whiteout';
const CAPABILITY_XATTR = 'security.capability';
const S_IFDIR = 0o040000n;

/** What moby's init layer holds (daemon/initlayer): never part of a container's changes. */
export const DOCKER_INIT_PATHS: readonly string[] = [
  '/dev',
  '/proc',
  '/sys',
  '/.dockerenv',
  '/etc/hosts',
  '/etc/hostname',
  '/etc/resolv.conf',
  '/etc/mtab',
];

export interface ChangesOptions {
  /** container paths the runtime made: neither reported nor walked */
  hidden?: readonly string[];
  /** reads an extended attribute without following links (tests pass a fake: trusted.* needs root) */
  getxattr?: (file: string, name: string) => Buffer | undefined;
}

/** Go's sameFsTimeSpec: equal seconds, and equal nanoseconds unless one side has none. */
function sameTime(a: bigint, b: bigint): boolean {
  const NS = 1_000_000_000n;
  return a / NS === b / NS && (a % NS === b % NS || a % NS === 0n || b % NS === 0n);
}

async function lstatOrUndefined(p: string): Promise<BigIntStats | undefined> {
  try {
    return await lstat(p, { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw e;
  }
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** moby's statDifferent */
function statDifferent(a: BigIntStats, b: BigIntStats): boolean {
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.rdev !== b.rdev) return true;
  return (a.mode & S_IFDIR) !== S_IFDIR && (!sameTime(a.mtimeNs, b.mtimeNs) || a.size !== b.size);
}

/** The changes of an overlay `upper` directory over `lower`, as `docker diff` reports them. */
export async function overlayChanges(upper: string, lower: string, opts: ChangesOptions = {}): Promise<Change[]> {
  const getxattr = opts.getxattr ?? lgetxattr;
  const hidden = new Set(opts.hidden ?? []);
  const out: Change[] = [];

  const sameCapability = (a: string, b: string) => {
    const x = getxattr(a, CAPABILITY_XATTR);
    const y = getxattr(b, CAPABILITY_XATTR);
    return x === undefined || y === undefined ? x === y : x.equals(y);
  };

  /** the directory (absent from the image) holds a runtime mount point: the runtime made it */
  const holdsRuntimePaths = async (p: string, dir: string): Promise<boolean> => (await readdir(dir)).some((n) => hidden.has(`${p}/${n}`));

  /**
   * Reports the changes below directory `rel` (upper: upperDir; the image's directory at that
   * path: lowerDir, if it has one); returns whether there were any.
   */
  const walk = async (
    rel: string,
    upperDir: string,
    lowerDir: string | undefined,
    opaque: boolean,
    xwhiteouts: boolean,
  ): Promise<boolean> => {
    const before = out.length;
    const names = await readdir(upperDir);
    // one directory's lstats at once (the thread pool runs them side by side), then in order
    const entries = await Promise.all(
      names.map(async (name) => {
        const p = `${rel}/${name}`;
        if (hidden.has(p)) return undefined;
        const up = path.join(upperDir, name);
        const lowPath = lowerDir === undefined ? undefined : path.join(lowerDir, name);
        const [st, low] = await Promise.all([lstatOrUndefined(up), lowPath === undefined ? undefined : lstatOrUndefined(lowPath)]);
        return st && { p, up, st, low, lowPath }; // no st: gone since readdir (a running container)
      }),
    );
    for (const e of entries) {
      if (!e) continue;
      const { p, up, st, low, lowPath } = e;
      if ((st.isCharacterDevice() && st.rdev === 0n) || (xwhiteouts && st.isFile() && getxattr(up, OVERLAY_WHITEOUT_XATTR) !== undefined)) {
        if (low) out.push({ Path: p, Kind: CHANGE_DELETED });
        continue;
      }
      if (!st.isDirectory()) {
        if (!low) out.push({ Path: p, Kind: CHANGE_ADDED });
        else if (statDifferent(low, st) || !sameCapability(lowPath!, up)) out.push({ Path: p, Kind: CHANGE_MODIFIED });
        continue;
      }
      const marker = getxattr(up, OVERLAY_OPAQUE_XATTR)?.toString('latin1');
      let self: Change['Kind'] | undefined;
      let childLower: string | undefined;
      if (!low) {
        if (!(await holdsRuntimePaths(p, up))) self = CHANGE_ADDED;
      } else if (low.isDirectory()) {
        childLower = lowPath;
        if (statDifferent(low, st)) self = CHANGE_MODIFIED;
      } else {
        self = CHANGE_MODIFIED; // a non-directory replaced by a directory
      }
      if (self !== undefined) out.push({ Path: p, Kind: self });
      const inner = await walk(p, up, childLower, marker === 'y', marker === 'x');
      if (inner && self === undefined) out.push({ Path: p, Kind: CHANGE_MODIFIED });
    }
    if (opaque && lowerDir !== undefined) {
      // an opaque directory hides what the image has in it: whatever the upper lacks is gone
      const inUpper = new Set(names);
      for (const name of await readdir(lowerDir)) {
        const p = `${rel}/${name}`;
        if (!inUpper.has(name) && !hidden.has(p)) out.push({ Path: p, Kind: CHANGE_DELETED });
      }
    }
    return out.length > before;
  };

  const root = await lstatOrUndefined(upper);
  if (!root?.isDirectory()) throw new NotFoundError(`the container's writable layer ${upper} is missing`);
  await walk('', upper, lower, false, false);
  // moby's changesByPath order: a plain byte-wise sort, which puts a directory before its contents
  return out.sort((a, b) => byteOrder(a.Path, b.Path));
}
