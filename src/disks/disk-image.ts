/**
 * Opens a disk image file as a BlockBackend, whatever its format: a qcow2 overlay (with its
 * backing chain) or a raw file. Tools that work on a container's disk offline (docker cp,
 * export, diff on a stopped VM container) go through this, so they see exactly the bytes the
 * guest sees.
 */
import { openSync, readSync, closeSync } from 'node:fs';
import type { SyncBlockBackend } from './block-backend.js';
import { Qcow2Image } from './qcow2/image.js';
import { QCOW2_MAGIC } from './qcow2/header.js';
import { RawFile } from './raw.js';
import { NotFoundError, TvmError } from '../errors.js';

export type DiskFormat = 'qcow2' | 'raw';

/** The format by content, never by file name: qcow2's magic is its first four bytes. */
export function detectDiskFormat(path: string): DiskFormat {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`${path}: no such disk image`, 'ERR_DISK_NOT_FOUND');
    throw new TvmError('ERR_DISK_IO', `${path}: open failed: ${(e as Error).message}`, 500, { cause: e });
  }
  try {
    const head = Buffer.alloc(4);
    const n = readSync(fd, head, 0, 4, 0);
    return n === 4 && head.readUInt32BE(0) === QCOW2_MAGIC ? 'qcow2' : 'raw';
  } finally {
    closeSync(fd);
  }
}

/**
 * `format`: what the caller knows the file to be. Pass it whenever a guest can write the file's
 * first bytes (a raw disk): detection would then let the guest turn its disk into a qcow2 header
 * whose backing file names a host path. Detection is for files the host made (tools, tests).
 */
export async function openDiskImage(
  path: string,
  opts: { readOnly: boolean; format?: DiskFormat },
): Promise<SyncBlockBackend & { readonly path: string }> {
  return (opts.format ?? detectDiskFormat(path)) === 'qcow2'
    ? Qcow2Image.open(path, { readOnly: opts.readOnly })
    : RawFile.open(path, { readOnly: opts.readOnly });
}
