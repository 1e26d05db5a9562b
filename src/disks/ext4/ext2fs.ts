/**
 * The `ext2fs` package (libext2fs compiled to WASM by emscripten), loaded without the
 * process-wide handlers its emscripten glue installs at load:
 * `process.on('uncaughtException', (ex) => { throw ex })` and the same for `unhandledRejection`.
 * A handler that throws makes Node exit at once with code 7, whatever other handlers say; in
 * the daemon that turned any stray error of any request (a client hanging up mid-copy, say)
 * into the whole API going away, with libext2fs.js's one 370 KB source line as the only trace.
 * What the daemon does with an uncaught error is the daemon's decision (src/daemon/daemon.ts).
 */
import { createRequire } from 'node:module';
import type * as Ext2FsModule from 'ext2fs';

export type { Ext2Disk, Ext2Fs } from 'ext2fs';

/** Requires `id` and removes the uncaughtException/unhandledRejection listeners it added. */
export function requireWithoutProcessHandlers<T>(id: string, from: string = import.meta.url): T {
  const exceptions = new Set(process.listeners('uncaughtException'));
  const rejections = new Set(process.listeners('unhandledRejection'));
  try {
    return createRequire(from)(id) as T;
  } finally {
    for (const l of process.listeners('uncaughtException')) if (!exceptions.has(l)) process.off('uncaughtException', l);
    for (const l of process.listeners('unhandledRejection')) if (!rejections.has(l)) process.off('unhandledRejection', l);
  }
}

const ext2fs = requireWithoutProcessHandlers<typeof Ext2FsModule>('ext2fs');

export const mount = ext2fs.mount;
export const umount = ext2fs.umount;
