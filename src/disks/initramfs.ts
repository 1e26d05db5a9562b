/**
 * Uncompressed initramfs images for the guest kernel.
 *
 * Uncompressed on purpose: on PVM-backed KVM the kernel's decompressor runs as emulated kernel
 * code (about a minute per compressed megabyte), and our kernel is built without RD_* support.
 *
 * The kernel's unpacker needs parents before children and opens /dev/console for init before
 * any devtmpfs exists, so buildInitramfs adds missing parent directories and a /dev/console
 * node, and orders entries by path so the same inputs always give the same bytes.
 */
import { writeCpio, normalizeCpioPath, type CpioEntry } from './cpio.js';
import { InvalidParameterError } from '../errors.js';

/** Major/minor of /dev/console (Documentation/admin-guide/devices.txt: char 5:1). */
export const DEV_CONSOLE = { major: 5, minor: 1 } as const;

export interface InitramfsOptions {
  /** Contents of /init: a script (with #!) or a static binary. Installed mode 0755. */
  init: string | Uint8Array;
  /** Further entries; parents are created as needed (mode 0755, root-owned). */
  files?: CpioEntry[];
  /** Directories to create empty (e.g. "proc", "sys", "dev", "tmp"). */
  dirs?: string[];
  /** Add /dev/console (default true): without it init starts with no stdin/stdout/stderr. */
  devConsole?: boolean;
}

/** Entries of a busybox root: /bin/busybox plus one symlink per applet (bin/<applet> -> busybox). */
export function busyboxEntries(busybox: Uint8Array, applets: readonly string[]): CpioEntry[] {
  const entries: CpioEntry[] = [{ path: 'bin/busybox', type: 'file', mode: 0o755, data: busybox }];
  for (const a of applets) {
    if (a === 'busybox' || a.includes('/'))
      throw new InvalidParameterError(`busybox applet name "${a}" is not a plain name`, 'ERR_INITRAMFS_APPLET');
    entries.push({ path: `bin/${a}`, type: 'symlink', target: 'busybox' });
  }
  return entries;
}

/** Adds missing parent directories and sorts by path (a parent sorts before its children). */
export function completeTree(entries: CpioEntry[]): CpioEntry[] {
  const byPath = new Map<string, CpioEntry>();
  for (const e of entries) {
    const path = normalizeCpioPath(e.path);
    if (byPath.has(path)) throw new InvalidParameterError(`initramfs: "${path}" given twice`, 'ERR_INITRAMFS_DUPLICATE');
    byPath.set(path, { ...e, path });
  }
  for (const path of [...byPath.keys()]) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const existing = byPath.get(parent);
      if (existing === undefined) byPath.set(parent, { path: parent, type: 'directory', mode: 0o755 });
      else if (existing.type !== 'directory') {
        throw new InvalidParameterError(
          `initramfs: "${path}" needs "${parent}" to be a directory, but it is a ${existing.type}`,
          'ERR_INITRAMFS_PARENT',
        );
      }
    }
  }
  // Byte order, so "a" < "a/b" always and the result does not depend on locale or input order.
  return [...byPath.values()].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

/** The entries of an initramfs: /init, the given files and dirs, /dev/console, parents. */
export function initramfsEntries(opts: InitramfsOptions): CpioEntry[] {
  const entries: CpioEntry[] = [{ path: 'init', type: 'file', mode: 0o755, data: opts.init }];
  for (const d of opts.dirs ?? []) entries.push({ path: d, type: 'directory', mode: 0o755 });
  if (opts.devConsole ?? true) {
    entries.push({ path: 'dev/console', type: 'char-device', mode: 0o600, rdevMajor: DEV_CONSOLE.major, rdevMinor: DEV_CONSOLE.minor });
  }
  entries.push(...(opts.files ?? []));
  return completeTree(entries);
}

/** Builds an uncompressed newc initramfs image. Deterministic for the same options. */
export function buildInitramfs(opts: InitramfsOptions): Buffer {
  return writeCpio(initramfsEntries(opts));
}
