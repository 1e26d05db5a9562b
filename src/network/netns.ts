/**
 * A container's network namespace, made before its workload exists so the daemon can plumb it:
 * `unshare --net=<file>` bind-mounts the new namespace on a file (as `ip netns add` does), and
 * brings its `lo` up in the same process. The namespace lives until the file is unmounted and
 * the last process in it has exited.
 */
import { readFileSync } from 'node:fs';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from './exec.js';

function isMountPoint(file: string): boolean {
  // /proc/self/mounts escapes spaces as \040: our paths have none
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === file);
}

/**
 * Makes the namespace and runs `ipCommands` (ip -batch lines) inside it, after `lo` is up, in
 * the same process: a container's start pays for one process here, not one per step.
 */
export async function createNetns(file: string, ipCommands: string[] = []): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o711 });
  await writeFile(file, '', { flag: 'w', mode: 0o444 });
  try {
    await run('unshare', [`--net=${file}`, 'ip', '-batch', '-'], ['link set lo up', ...ipCommands].join('\n') + '\n');
  } catch (e) {
    await removeNetns(file);
    throw e;
  }
}

/** Idempotent: a namespace already gone (or never mounted) is fine. */
export async function removeNetns(file: string): Promise<void> {
  if (isMountPoint(file)) await run('umount', [file]);
  await unlink(file).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}

export function netnsExists(file: string): boolean {
  return isMountPoint(file);
}
