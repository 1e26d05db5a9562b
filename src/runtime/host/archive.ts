/**
 * `docker cp` for --isolation=container: tar out of / into the container's filesystem as the
 * workload sees it. Paths are resolved inside the root by hand (symlinks included) so nothing a
 * container controls can point us at the host's files.
 */
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { lstat, stat, mkdir, readdir, readlink, symlink, link, lchown, chmod, utimes, rm, mkdtemp, rmdir } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PassThrough, type Readable } from 'node:stream';
import { promisify } from 'node:util';
import { pack as tarPack, extract as tarExtract, type Header } from 'tar-stream';
import { InvalidParameterError, NotFoundError, TvmError } from '../../errors.js';
import type { ErrnoName } from '../../error-codes.js';
import { resolveScoped } from '../../scoped-path.js';
import type { ArchiveOptions } from '../types.js';

const run = promisify(execFile);

/** Joins root and an in-container path, resolving symlinks as if root were "/". */
export async function resolveIn(root: string, unsafe: string, followLast = true): Promise<string> {
  const rel = await resolveScoped(unsafe, followLast, async (parts) => {
    const host = path.join(root, ...parts);
    // a component that does not exist is not a symlink: the caller's own access reports the error
    const st = await lstat(host).catch(() => null);
    if (!st?.isSymbolicLink()) return null;
    // A link that cannot be read from outside (the container's /proc/self: our pid is not in its
    // pid namespace) leads nowhere the caller can reach: as dockerd, the path is not found.
    return readlink(host).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw new NotFoundError(`Could not find the file ${unsafe} in container`);
      throw e;
    });
  });
  return path.join(root, ...rel);
}

/** A mounted view of the container's root, released by cleanup(). */
export interface RootView {
  root: string;
  cleanup(): Promise<void>;
}

/** Mounts lower+upper as the container would see them (for a stopped container). */
export async function mountStoppedRoot(tmpParent: string, lower: string, upper: string, work: string): Promise<RootView> {
  await mkdir(tmpParent, { recursive: true });
  const dir = await mkdtemp(path.join(tmpParent, 'cp-'));
  try {
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, dir]);
  } catch (e) {
    // the mount failed: this only tidies its empty directory; the mount's error is thrown
    await rmdir(dir).catch(() => {});
    throw new TvmError(
      'ERR_ROOTFS_MOUNT',
      `cannot mount the container's filesystem: ${(e as { stderr?: string }).stderr ?? String(e)}`,
      500,
      { cause: e },
    );
  }
  return {
    root: dir,
    async cleanup() {
      await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
      // an empty mount-point directory left behind is harmless: the next mount reuses it
      await rmdir(dir).catch(() => {});
    },
  };
}

type EntryHeader = Partial<Header> & { name: string };

const USER_INPUT_ERRNOS = new Set(['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ELOOP', 'ENAMETOOLONG', 'EXDEV', 'ENOTEMPTY']);

/**
 * A filesystem error met inside the container's view, in the container's terms: the view's host
 * prefix (/proc/<pid>/root, the temp mount) is dropped, so no answer shows the daemon's paths.
 * What a user's tar or path asks for that cannot be (a hard link to nothing) is a 400.
 */
export function inContainerTerms(e: unknown, root: string): unknown {
  const err = e as NodeJS.ErrnoException & { dest?: string };
  if (!(err instanceof Error) || typeof err.code !== 'string' || e instanceof TvmError) return e;
  const strip = (p: string) => (p === root ? '/' : p.startsWith(root + '/') ? p.slice(root.length) : p);
  const description = err.message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*$/, '');
  const where = [err.path, err.dest]
    .filter((p): p is string => typeof p === 'string')
    .map(strip)
    .join(' ');
  const status = USER_INPUT_ERRNOS.has(err.code) ? 400 : 500;
  // err.code is a Node errno name here (a system call's error)
  return new TvmError(
    `ERR_ARCHIVE_${err.code as ErrnoName}`,
    `${err.syscall ?? 'archive'}${where ? ` ${where}` : ''}: ${description}`,
    status,
    { cause: e },
  );
}

/** Translates file owners between the host and the container (a container in a user namespace). */
export type MapIds = (uid: number, gid: number, name: string) => { uid: number; gid: number };

async function headerFor(hostPath: string, name: string, follow = false, mapIds?: MapIds): Promise<EntryHeader | undefined> {
  const st = follow ? await stat(hostPath) : await lstat(hostPath);
  const ids = mapIds ? mapIds(st.uid, st.gid, name) : { uid: st.uid, gid: st.gid };
  const base = { name, mode: st.mode & 0o7777, uid: ids.uid, gid: ids.gid, mtime: st.mtime };
  if (st.isDirectory()) return { ...base, type: 'directory' };
  if (st.isFile()) return { ...base, type: 'file', size: st.size };
  if (st.isSymbolicLink()) return { ...base, type: 'symlink', linkname: await readlink(hostPath) };
  if (st.isCharacterDevice() || st.isBlockDevice()) {
    return {
      ...base,
      type: st.isCharacterDevice() ? 'character-device' : 'block-device',
      devmajor: Math.floor(st.rdev / 256) & 0xfff,
      devminor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00),
    };
  }
  if (st.isFIFO()) return { ...base, type: 'fifo' };
  return undefined; // sockets are not archived
}

/**
 * Tar of containerPath (named by its base name, as Docker's archive endpoint does). The view is
 * released exactly once, whatever ends the stream: the last byte read, an error while walking,
 * or the reader going away early (destroying the returned stream). A view of a running
 * container is frozen until released, so a leak here leaves a workload stopped under a
 * "running" record.
 */
export async function archiveFrom(view: RootView, containerPath: string, mapIds?: MapIds, opts: ArchiveOptions = {}): Promise<Readable> {
  let released: Promise<void> | undefined;
  const release = () => (released ??= view.cleanup());
  let start: string;
  let rootDev: number;
  try {
    // The last component is not followed: a symlink is archived (and stat'ed) as the link, as
    // dockerd does; the client resolves it (docker cp FILE ctr:/link-to-file writes the target).
    start = await resolveIn(view.root, containerPath, false);
    try {
      await lstat(start);
    } catch {
      throw new NotFoundError(`Could not find the file ${containerPath} in container`);
    }
    // The view's root of a running container is /proc/<pid>/root, itself a symlink: the top
    // of the walk is always followed, everything below is archived as it is.
    // (A symlink start is the link itself: stat() would follow it out of the container.)
    rootDev = (start === view.root ? await stat(start) : await lstat(start)).dev;
  } catch (e) {
    await release();
    throw inContainerTerms(e, view.root);
  }
  const top = path.basename(path.resolve('/', containerPath)) || '.';
  const pack = tarPack();
  const out = new PassThrough();
  // Set when the reader is gone or the walk failed: the walk stops at its next step, and a
  // file being copied is closed now (its fd would otherwise wait for a pack no one reads).
  const stop = new AbortController();
  let ended = false;
  pack.on('data', (chunk: unknown) => {
    if (!out.write(chunk)) pack.pause();
  });
  out.on('drain', () => pack.resume());
  // The walk's rejection below is the one place that reports an error (through `out`); the
  // pack re-emits it, and destroying it on abort emits nothing worth reporting.
  pack.on('error', () => {});
  pack.on('end', () => {
    ended = true;
    // the stream ends only once the view is released (a frozen container thawed again); a
    // release that fails is the reader's error: the container may be left frozen
    release().then(
      () => out.end(),
      (e: unknown) => out.destroy(e as Error),
    );
  });
  out.on('close', () => {
    if (ended) return;
    stop.abort();
    pack.destroy();
    // no reader is left to tell: a failed release reaches the daemon's unhandledRejection log
    void release();
  });
  // Like `tar --one-file-system`: mount points inside (the container's /proc, /sys, /dev,
  // volumes) are archived as empty directories. Pseudo files report sizes that differ from
  // what a read returns, and Docker's export holds only the container's own filesystem.
  const walk = async (host: string, name: string, isTop = false): Promise<void> => {
    if (stop.signal.aborted) throw new Error('archive reader went away');
    const h = await headerFor(host, name, isTop, mapIds);
    if (!h) return;
    const crossesMount = h.type === 'directory' && !isTop && (await lstat(host)).dev !== rootDev;
    if (h.type === 'file') {
      let rs: ReadStream | undefined;
      try {
        await new Promise<void>((resolve, reject) => {
          const onAbort = () => reject(new Error('archive reader went away'));
          stop.signal.addEventListener('abort', onAbort, { once: true });
          // throws once the pack is destroyed (the reader went away): before any file is opened
          const entry = pack.entry(h, (err) => {
            stop.signal.removeEventListener('abort', onAbort);
            if (err) reject(err);
            else resolve();
          });
          // The listener comes with the stream: destroyed while its open is in flight, a stream
          // still reports the open's failure (ENOENT once the view is unmounted), and an
          // 'error' nobody listens to is an uncaught exception in the daemon.
          rs = createReadStream(host).on('error', reject);
          rs.pipe(entry);
        });
      } finally {
        rs?.destroy();
      }
      return;
    }
    // tar's convention, and dockerd's: a directory's name ends with '/'. An export has no
    // entry for the root itself and names what is in it from there (bin/, etc/passwd).
    const rootOfExport = opts.export === true && isTop;
    if (!rootOfExport) pack.entry(h.type === 'directory' ? { ...h, name: `${name}/` } : h);
    if (h.type === 'directory' && !crossesMount) {
      for (const child of (await readdir(host)).sort()) await walk(path.join(host, child), rootOfExport ? child : `${name}/${child}`);
    }
  };
  walk(start, top, start === view.root)
    .then(() => pack.finalize())
    .catch((e: unknown) => {
      stop.abort();
      pack.destroy();
      // before the first header this is the request's answer (a status): in the container's terms.
      // The walk's error is the one the reader gets; a failed release as well goes unreported
      // only here, where there is a better error to give.
      const fail = () => void out.destroy(inContainerTerms(e, view.root) as Error);
      release().then(fail, fail);
    });
  return out;
}

/** Unpacks a tar into containerPath, which must be an existing directory. */
export async function extractTo(view: RootView, containerPath: string, tar: Readable, mapIds?: MapIds): Promise<void> {
  try {
    const dest = await resolveIn(view.root, containerPath);
    let st;
    try {
      // a running container's root is /proc/<pid>/root, itself a symlink: follow that one only
      st = dest === view.root ? await stat(dest) : await lstat(dest);
    } catch {
      throw new NotFoundError(`Could not find the file ${containerPath} in container`);
    }
    if (!st.isDirectory()) throw new InvalidParameterError(`extraction point ${containerPath} is not a directory`);
    const ex = tarExtract();
    ex.on('entry', (h, stream, next) => {
      const fail = (e: unknown) => {
        stream.resume();
        ex.destroy(e as Error);
      };
      (async () => {
        const name = path.posix.normalize(h.name).replace(/^\/+/, '');
        if (name === '..' || name.startsWith('../'))
          throw new InvalidParameterError(`tar entry ${JSON.stringify(h.name)} escapes the destination`);
        // before anything is written: an owner the container cannot have refuses the entry
        const ids = mapIds ? mapIds(h.uid ?? 0, h.gid ?? 0, h.name) : { uid: h.uid ?? 0, gid: h.gid ?? 0 };
        const rel = path.posix.join(containerPath, name);
        const parent = await resolveIn(view.root, path.posix.dirname(rel));
        const target = path.join(parent, path.posix.basename(rel));
        await mkdir(parent, { recursive: true });
        const mode = (h.mode ?? 0o644) & 0o7777;
        switch (h.type) {
          case 'directory':
            await mkdir(target, { recursive: true });
            await chmod(target, mode);
            stream.resume();
            break;
          case 'file':
          case 'contiguous-file':
            // nothing there yet is the usual case; a real obstacle fails the write just below
            await rm(target, { force: true, recursive: false }).catch(() => {});
            await pipeline(stream, createWriteStream(target, { mode }));
            await chmod(target, mode);
            break;
          case 'symlink':
            // nothing there yet is the usual case; a real obstacle fails the symlink() just below
            await rm(target, { force: true }).catch(() => {});
            await symlink(h.linkname ?? '', target);
            stream.resume();
            break;
          case 'link': {
            const src = await resolveIn(view.root, path.posix.join(containerPath, h.linkname ?? ''), false);
            // nothing there yet is the usual case; a real obstacle fails the link() just below
            await rm(target, { force: true }).catch(() => {});
            await link(src, target);
            stream.resume();
            break;
          }
          default:
            stream.resume(); // devices and fifos are not created through cp
            return;
        }
        // as tar without privileges: owners are best effort (a remapped root cannot give away host ids)
        await lchown(target, ids.uid, ids.gid).catch(() => {});
        // as tar: times are best effort, the content is what was asked for
        if (h.type !== 'symlink' && h.mtime) await utimes(target, h.mtime, h.mtime).catch(() => {});
      })().then(() => next(), fail);
    });
    await pipeline(tar, ex);
  } catch (e) {
    throw inContainerTerms(e, view.root);
  } finally {
    await view.cleanup();
  }
}
