/**
 * lgetxattr(2), which Node lacks, bound with koffi: `docker diff` reads overlayfs's markers
 * (trusted.overlay.opaque, trusted.overlay.whiteout) in a container's upper directory.
 * Never follows a symlink.
 */
import koffi from 'koffi';
import { constants as osConstants } from 'node:os';
import { TvmError } from '../../errors.js';

const ENODATA = osConstants.errno.ENODATA;
const ENOTSUP = osConstants.errno.ENOTSUP;
const ERANGE = osConstants.errno.ERANGE;
/** XATTR_SIZE_MAX: no value is longer */
const XATTR_SIZE_MAX = 65536;

let lgetxattrFn: ((path: string, name: string, value: Buffer | null, size: number) => number) | undefined;

function bind(): NonNullable<typeof lgetxattrFn> {
  lgetxattrFn ??= koffi
    .load('libc.so.6')
    .func('intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)') as NonNullable<typeof lgetxattrFn>;
  return lgetxattrFn;
}

/** The attribute's value, or undefined when the file has no such attribute (or the filesystem none at all). */
export function lgetxattr(file: string, name: string): Buffer | undefined {
  const fn = bind();
  let size = 64;
  for (;;) {
    const buf = Buffer.alloc(size);
    const n = fn(file, name, buf, size);
    if (n >= 0) return buf.subarray(0, n);
    const errno = koffi.errno();
    if (errno === ENODATA || errno === ENOTSUP) return undefined;
    if (errno === ERANGE && size < XATTR_SIZE_MAX) {
      size = XATTR_SIZE_MAX;
      continue;
    }
    const code = Object.entries(osConstants.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;
    throw new TvmError('ERR_XATTR', `lgetxattr ${file} ${name}: ${code}`, 500);
  }
}
