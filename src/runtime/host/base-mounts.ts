/**
 * Each image's base disk (raw ext4) loop-mounted read-only once under runRoot/base/<image-hex>,
 * shared by every container of that image as its overlay lower layer. Nothing is counted in
 * memory: whether a mount is still needed is decided from which containers reference it on disk
 * (the caller passes that in), so a daemon restart loses nothing.
 */
import { execFile } from 'node:child_process';
import { readFile, readdir, mkdir, realpath, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { InvalidParameterError, TvmError, type ErrorCode } from '../../errors.js';

const run = promisify(execFile);

export function imageHex(imageId: string): string {
  const m = /^(?:sha256:)?([0-9a-f]{64})$/.exec(imageId);
  if (!m) throw new InvalidParameterError(`invalid image ID ${JSON.stringify(imageId)}: expected sha256:<64 hex>`);
  return m[1]!;
}

/** Mount points from /proc/self/mountinfo (octal escapes decoded). */
export async function mountPoints(): Promise<Set<string>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length > 4) out.add(f[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/**
 * Loop-mounts an ext4 image file at mp (created if needed; removed again if the mount fails).
 * `mount -o loop` sets autoclear: the loop device is released with the last unmount.
 */
export async function loopMount(diskPath: string, mp: string, options: string[], code: ErrorCode): Promise<void> {
  await mkdir(mp, { recursive: true });
  try {
    await run('mount', ['-t', 'ext4', '-o', ['loop', ...options].join(','), diskPath, mp]);
  } catch (e) {
    // the mount failed: this only tidies its empty directory, and the mount's error is thrown
    await rmdir(mp).catch(() => {});
    const err = e as { stderr?: string; message: string };
    throw new TvmError(code, `cannot mount ${diskPath} at ${mp}: ${(err.stderr || err.message).trim()}`, 500, { cause: e });
  }
}

/**
 * Is p a mount point? mountinfo names mount points by their real path, so p is resolved first
 * (a data root reached through a symlink must not look unmounted).
 */
export async function isMountPoint(p: string): Promise<boolean> {
  let real: string;
  try {
    real = await realpath(p);
  } catch {
    return false; // no such path: nothing is mounted there
  }
  return (await mountPoints()).has(real);
}

/** Unmounts mp if it is a mount point (its loop device goes with it); a no-op otherwise. */
export async function unmountLoop(mp: string, code: ErrorCode): Promise<void> {
  if (!(await isMountPoint(mp))) return;
  try {
    await run('umount', [mp]);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new TvmError(code, `cannot unmount ${mp}: ${(err.stderr || err.message).trim()}`, 500, { cause: e });
  }
}

export class BaseMounts {
  private locks = new Map<string, Promise<unknown>>();

  constructor(private readonly runRoot: string) {}

  /** Image IDs with a mount point directory here (mounted or a leftover). */
  async mountedImages(): Promise<string[]> {
    try {
      return (await readdir(path.join(this.runRoot, 'base'))).filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => `sha256:${n}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  mountPoint(imageId: string): string {
    return path.join(this.runRoot, 'base', imageHex(imageId));
  }

  /** Serializes mount/unmount of one image within this process. */
  private async locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    // the chain only orders the work: each caller awaits its own promise and gets its own error
    const settled = next.catch(() => {});
    this.locks.set(key, settled);
    return next;
  }

  /**
   * Mounts the disk (once) and returns the mount point. `record`, if given, runs under the same
   * lock as release(): a container recording its use of the mount cannot race an unmount.
   */
  async acquire(imageId: string, diskPath: string, record?: (mountPoint: string) => Promise<void>): Promise<string> {
    const mp = this.mountPoint(imageId);
    return this.locked(mp, async () => {
      await this.mount(mp, diskPath);
      if (record) await record(mp);
      return mp;
    });
  }

  private async mount(mp: string, diskPath: string): Promise<void> {
    if (await isMountPoint(mp)) return;
    // noload: never replay a journal on a disk that must stay byte-identical
    await loopMount(diskPath, mp, ['ro', 'noload'], 'ERR_BASE_MOUNT');
  }

  /** Unmounts the image's base disk when stillUsed() says no container references it. */
  async release(imageId: string, stillUsed: () => Promise<boolean>): Promise<void> {
    const mp = this.mountPoint(imageId);
    await this.locked(mp, async () => {
      if (await stillUsed()) return;
      await unmountLoop(mp, 'ERR_BASE_UNMOUNT');
      // an empty mount-point directory left behind is harmless: the next mount reuses it
      await rmdir(mp).catch(() => {});
    });
  }
}

/** Mount sources (e.g. /dev/loop3) of every mount in this namespace. */
async function mountSources(): Promise<Set<string>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const src = line.slice(sep + 3).split(' ')[1];
    if (src) out.add(src);
  }
  return out;
}

/**
 * Loop devices whose backing file is in `diskDir` (deleted or not) and that nothing in this
 * mount namespace has mounted: what a daemon killed between attaching and mounting, or
 * between unmounting and the kernel's autoclear, leaves behind.
 */
export async function unmountedLoopsOver(diskDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir('/sys/block')).filter((n) => /^loop\d+$/.test(n));
  } catch {
    return [];
  }
  const mounted = await mountSources();
  const out: string[] = [];
  for (const n of names) {
    let backing: string;
    try {
      backing = (await readFile(`/sys/block/${n}/loop/backing_file`, 'utf8')).trim().replace(/ \(deleted\)$/, '');
    } catch {
      continue; // not attached
    }
    if (path.dirname(backing) === diskDir && !mounted.has(`/dev/${n}`)) out.push(`/dev/${n}`);
  }
  return out;
}

/** Detaches a loop device (a busy one is only marked to detach on its last close). */
export async function detachLoop(dev: string): Promise<void> {
  await run('losetup', ['-d', dev]);
}
