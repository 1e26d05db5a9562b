/**
 * `docker diff` for an overlayfs container: the upper directory against the lower (the image's
 * base disk), with Docker's rules (moby's archive.OverlayChanges):
 *
 * - the result is sorted by path, byte-wise (moby's changesByPath), so a directory comes before
 *   what is in it;
 * - a whiteout (a 0/0 character device, or a file marked trusted.overlay.whiteout in a directory
 *   marked trusted.overlay.opaque=x) is a deletion (Kind 2) of its path;
 * - an opaque directory (trusted.overlay.opaque=y) hides everything below it in the lower: Docker
 *   reports it as deleted when the lower had it, and what is under it is compared against
 *   nothing (so it is all added);
 * - anything else is modified (0) when the lower has that path, added (1) otherwise; a directory
 *   present in both with the same size, mode and mtime is not a change by itself;
 * - an addition or deletion brings its parent directory along as modified (once; not /), even
 *   when the parent's own attributes are unchanged (moby PR 13590).
 *
 * The lower is looked up one lstat per component from the lower root and a lower symlink is
 * never followed, so nothing outside the lower is ever consulted (moby's os.Stat would follow
 * an absolute link to the host's files).
 *
 * Docker keeps the mount points its runtime makes (/proc, /sys, /dev, /etc/hosts, ...) in an
 * "init" layer under the container's own, so they never show in `docker diff`; here the agent
 * makes them in the upper directory, so they are left out by name (DOCKER_INIT_PATHS), and a
 * directory whose only change is holding one of them (or that the runtime made to hold one, in
 * an image without it) is not reported by itself.
 */
import { lstat, readdir } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import path from 'node:path';
import { NotFoundError } from '../../errors.js';
import { CHANGE_ADDED, CHANGE_DELETED, CHANGE_MODIFIED, type Change } from '../types.js';
import { lgetxattr } from './xattr.js';

export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';
export const OVERLAY_WHITEOUT_XATTR = 'trusted.overlay.whiteout';

/** What moby's init layer holds (daemon/initlayer): never part of a container's changes. */
export const DOCKER_INIT_PATHS: readonly string[] = [
  '/dev', '/proc', '/sys', '/.dockerenv', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/etc/mtab',
];

export interface ChangesOptions {
  /** container paths the runtime made: neither reported nor walked */
  hidden?: readonly string[];
  /** reads an extended attribute without following links (tests pass a fake: trusted.* needs root) */
  getxattr?: (file: string, name: string) => Buffer | undefined;
}

type Kind = Change['Kind'];

/** Go's sameFsTime: equal, or equal seconds where one side has no nanoseconds. */
function sameTime(a: bigint, b: bigint): boolean {
  if (a === b) return true;
  const NS = 1_000_000_000n;
  return a / NS === b / NS && (a % NS === 0n || b % NS === 0n);
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

function isWhiteoutDevice(st: BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The changes of an overlay `upper` directory over `lower`, in Docker's order and kinds. */
export async function overlayChanges(upper: string, lower: string, opts: ChangesOptions = {}): Promise<Change[]> {
  const getxattr = opts.getxattr ?? lgetxattr;
  const hidden = new Set(opts.hidden ?? []);
  const out: Change[] = [];
  const changedDirs = new Set<string>();

  const record = (p: string, kind: Kind, isDir: boolean) => {
    if (isDir) changedDirs.add(p);
    const parent = path.posix.dirname(p);
    if (kind !== CHANGE_MODIFIED && parent !== '/' && !changedDirs.has(parent)) {
      changedDirs.add(parent);
      out.push({ Path: parent, Kind: CHANGE_MODIFIED });
    }
    out.push({ Path: p, Kind: kind });
  };

  const sameAttrs = (a: BigIntStats, b: BigIntStats) => a.size === b.size && sameTime(a.mtimeNs, b.mtimeNs);
  /** the directory directly holds a runtime mount point (which changed its mtime, and maybe its size) */
  const holdsHidden = async (p: string, dir: string): Promise<boolean> => {
    for (const h of hidden) {
      if (path.posix.dirname(h) === p && (await lstatOrUndefined(path.join(dir, path.posix.basename(h))))) return true;
    }
    return false;
  };

  const walk = async (rel: string, upperDir: string, lowerDir: string | undefined, xwhiteouts: boolean): Promise<void> => {
    const names = (await readdir(upperDir)).sort(byteOrder);
    for (const name of names) {
      const p = `${rel}/${name}`;
      if (hidden.has(p)) continue;
      const up = path.join(upperDir, name);
      const st = await lstatOrUndefined(up);
      if (!st) continue; // gone since readdir (a running container)
      const low = lowerDir === undefined ? undefined : await lstatOrUndefined(path.join(lowerDir, name));
      const isDir = st.isDirectory();
      if (isWhiteoutDevice(st) || (xwhiteouts && st.isFile() && getxattr(up, OVERLAY_WHITEOUT_XATTR) !== undefined)) {
        record(p, CHANGE_DELETED, false);
        continue;
      }
      if (!isDir) {
        record(p, low ? CHANGE_MODIFIED : CHANGE_ADDED, false);
        continue;
      }
      const opaque = getxattr(up, OVERLAY_OPAQUE_XATTR)?.toString('latin1');
      let childLower = low?.isDirectory() ? path.join(lowerDir!, name) : undefined;
      if (opaque === 'y') {
        childLower = undefined;
        record(p, low ? CHANGE_DELETED : CHANGE_ADDED, true);
      } else if (!low && !(await holdsHidden(p, up))) {
        record(p, CHANGE_ADDED, true);
      } else if (!low) {
        // made by the runtime for its mount points (an image without /etc): Docker's init layer has it
      } else if (low.isDirectory() && low.mode === st.mode && (sameAttrs(st, low) || (await holdsHidden(p, up)))) {
        // unchanged by itself: reported only as the parent of a change below it
      } else {
        record(p, CHANGE_MODIFIED, true);
      }
      await walk(p, up, childLower, opaque === 'x');
    }
  };

  const root = await lstatOrUndefined(upper);
  if (!root?.isDirectory()) throw new NotFoundError(`the container's writable layer ${upper} is missing`);
  await walk('', upper, lower, false);
  // moby's changesByPath order (a plain byte-wise sort, which puts a directory before its contents)
  return out.sort((a, b) => byteOrder(a.Path, b.Path));
}
