/**
 * COPY straight into a container's mounted root filesystem (Isolation.withRoot): the same
 * result as unpacking copy.ts's tar with `docker cp` (extractTo), without a tar in between and
 * with one synchronous call per file operation (a 10,000-file COPY is per-file overhead).
 *
 * Paths are resolved inside the root as `docker cp` resolves them (resolveIn: symlinks the
 * image has are followed as if the root were `/`, never to the host's files); a directory this
 * writer made itself is trusted for what follows below it.
 */
import {
  chmodSync,
  createReadStream,
  createWriteStream,
  lchownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { resolveIn } from '../runtime/host/archive.js';
import type { CopyOwner, CopyPlan } from './copy.js';

const SMALL_FILE = 1 << 20;

export async function writePlan(
  root: string,
  plan: CopyPlan,
  owner: CopyOwner,
  chmod: number | undefined,
  missingDirs: Set<string>,
  toHost: (uid: number, gid: number) => { uid: number; gid: number },
): Promise<void> {
  const ids = toHost(owner.uid, owner.gid);
  /** container directories (absolute) known to resolve to themselves under root */
  const trusted = new Set<string>();
  let n = 0;
  const parentOf = async (dest: string): Promise<string> => {
    const dir = path.posix.dirname(dest);
    if (trusted.has(dir)) return path.join(root, dir);
    const host = await resolveIn(root, dir);
    mkdirSync(host, { recursive: true });
    if (host === path.join(root, dir)) trusted.add(dir);
    return host;
  };
  const clear = (target: string) => {
    const st = lstatSync(target, { throwIfNoEntry: false });
    if (st && !st.isDirectory()) rmSync(target, { force: true });
  };
  const modeOf = (m: number) => (chmod !== undefined ? chmod : m & 0o7777);
  /** directories this writer made in this run: nothing was in them before */
  const fresh = new Set<string>();
  // what a new file already has without a chmod/chown: the mode (less the umask) and root's ids
  const umask = process.umask();
  const rootIds = ids.uid === process.getuid?.() && ids.gid === process.getgid?.();
  const one = async (host: string, dest: string): Promise<void> => {
    if (++n % 256 === 0) await new Promise((r) => setImmediate(r));
    const st = lstatSync(host);
    const parentDir = path.posix.dirname(dest);
    const target = path.join(await parentOf(dest), path.posix.basename(dest));
    const inFresh = fresh.has(parentDir);
    if (st.isDirectory()) {
      const existed = !inFresh && lstatSync(target, { throwIfNoEntry: false }) !== undefined;
      mkdirSync(target, { recursive: true });
      chmodSync(target, modeOf(st.mode));
      lchownSync(target, ids.uid, ids.gid);
      utimesSync(target, st.mtime, st.mtime);
      if (target === path.join(root, dest)) {
        trusted.add(dest);
        if (!existed) fresh.add(dest);
      }
      for (const c of readdirSync(host).sort()) await one(path.join(host, c), path.posix.join(dest, c));
    } else if (st.isSymbolicLink()) {
      if (!inFresh) clear(target);
      symlinkSync(readlinkSync(host), target);
      if (!rootIds) lchownSync(target, ids.uid, ids.gid);
    } else if (st.isFile()) {
      if (!inFresh) clear(target);
      const mode = modeOf(st.mode);
      if (st.size <= SMALL_FILE) writeFileSync(target, readFileSync(host), { mode });
      else await pipeline(createReadStream(host), createWriteStream(target, { mode }));
      if ((mode & umask) !== 0 || (mode & 0o7000) !== 0 || !inFresh) chmodSync(target, mode);
      if (!rootIds) lchownSync(target, ids.uid, ids.gid);
      utimesSync(target, st.mtime, st.mtime);
    }
  };
  for (const d of plan.mkdirs) {
    if (!missingDirs.has(d) || d === '/') continue;
    const target = path.join(await parentOf(d), path.posix.basename(d));
    mkdirSync(target, { recursive: true });
    chmodSync(target, 0o755);
    lchownSync(target, ids.uid, ids.gid);
    if (target === path.join(root, d)) trusted.add(d);
  }
  for (const it of plan.items) {
    const st = lstatSync(it.host);
    if (st.isDirectory()) for (const c of readdirSync(it.host).sort()) await one(path.join(it.host, c), path.posix.join(it.dest, c));
    else await one(it.host, it.dest);
  }
}
