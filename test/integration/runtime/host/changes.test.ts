/**
 * `docker diff`'s walk (src/runtime/host/changes.ts): on a synthetic upper/lower pair (whiteout
 * devices made with mknod, overlay xattrs faked), and on what the kernel's overlayfs really
 * writes into an upper directory (its whiteouts and trusted.overlay.opaque, read with lgetxattr).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync, appendFileSync, unlinkSync, rmdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { overlayChanges, OVERLAY_OPAQUE_XATTR, OVERLAY_WHITEOUT_XATTR } from '../../../../src/runtime/host/changes.js';
import { lgetxattr } from '../../../../src/runtime/host/xattr.js';
import { mountPoints } from '../../../../src/runtime/host/base-mounts.js';

let root: string;

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('these tests need root (mknod of whiteouts, overlay mounts)');
  for (const t of ['mknod', 'mount', 'umount']) {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'pipe' });
    } catch {
      throw new Error(`missing tool: ${t}`);
    }
  }
  root = mkdtempSync(path.join(os.tmpdir(), 'tvm-changes-'));
});

afterAll(async () => {
  if (!root) return;
  for (const m of [...(await mountPoints())].filter((p) => p.startsWith(root + '/'))) execFileSync('umount', [m]);
  rmSync(root, { recursive: true, force: true });
});

const T0 = new Date('2024-01-01T00:00:00Z');

function dir(p: string): void {
  mkdirSync(p, { recursive: true });
}
function file(p: string, content = 'x'): void {
  writeFileSync(p, content);
  utimesSync(p, T0, T0);
}
function whiteout(p: string): void {
  execFileSync('mknod', [p, 'c', '0', '0']);
}
const lines = (cs: { Path: string; Kind: number }[]) => cs.map((c) => `${'CAD'[c.Kind]} ${c.Path}`);

describe('overlayChanges on a synthetic upper over a lower', () => {
  it('added, modified, deleted, opaque, ancestors, hidden runtime paths, byte order', async () => {
    const lower = path.join(root, 'syn-lower');
    const upper = path.join(root, 'syn-upper');
    for (const d of ['etc', 'usr/lib', 'usr/share/doc', 'var/cache', 'opt', 'srv', 'a']) dir(path.join(lower, d));
    file(path.join(lower, 'etc/passwd'));
    file(path.join(lower, 'etc/group'));
    file(path.join(lower, 'usr/lib/libc.so'));
    file(path.join(lower, 'usr/share/doc/README'));
    file(path.join(lower, 'var/cache/old'));
    symlinkSync('/etc', path.join(lower, 'lnk')); // absolute: must never be followed to the host's /etc

    // /etc: passwd modified, group deleted; the runtime's hosts file is not a change
    dir(path.join(upper, 'etc'));
    file(path.join(upper, 'etc/passwd'), 'changed');
    whiteout(path.join(upper, 'etc/group'));
    file(path.join(upper, 'etc/hosts'));
    // runtime mount points (Docker's init layer): never reported
    dir(path.join(upper, 'proc'));
    dir(path.join(upper, 'dev/pts'));
    // a copied-up file identical to the image's is no change; a new one two levels down is
    dir(path.join(upper, 'usr/lib'));
    file(path.join(upper, 'usr/lib/libc.so'));
    file(path.join(upper, 'usr/lib/new.so'));
    // /var/cache replaced: deleted then made again (opaque), with a new file: the old one is gone
    dir(path.join(upper, 'var/cache'));
    file(path.join(upper, 'var/cache/fresh'));
    // /opt gains a file (its mtime is no change by itself)
    dir(path.join(upper, 'opt'));
    file(path.join(upper, 'opt/tool'));
    // /srv: mode changed only
    dir(path.join(upper, 'srv'));
    execFileSync('chmod', ['0700', path.join(upper, 'srv')]);
    // a new tree, and names whose byte order differs from a per-directory walk
    dir(path.join(upper, 'new/deep'));
    file(path.join(upper, 'new/deep/f'));
    file(path.join(upper, 'a-b'));
    dir(path.join(upper, 'a'));
    file(path.join(upper, 'a/z'));
    // the lower's /lnk symlink replaced by a directory holding a file
    dir(path.join(upper, 'lnk'));
    file(path.join(upper, 'lnk/passwd'));
    // an xwhiteout: a plain file marked as whiteout, in a directory marked opaque=x
    dir(path.join(upper, 'usr/share/doc'));
    file(path.join(upper, 'usr/share/doc/README'), '');

    const xattrs = new Map<string, Buffer>([
      [`${path.join(upper, 'var/cache')}|${OVERLAY_OPAQUE_XATTR}`, Buffer.from('y')],
      [`${path.join(upper, 'usr/share/doc')}|${OVERLAY_OPAQUE_XATTR}`, Buffer.from('x')],
      [`${path.join(upper, 'usr/share/doc/README')}|${OVERLAY_WHITEOUT_XATTR}`, Buffer.alloc(0)],
    ]);
    const getxattr = (f: string, n: string) => xattrs.get(`${f}|${n}`);
    const out = await overlayChanges(upper, lower, {
      hidden: ['/dev', '/proc', '/sys', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf'],
      getxattr,
    });
    expect(lines(out)).toEqual([
      'C /a',
      'A /a-b', // byte order: '-' sorts before '/'
      'A /a/z',
      'C /etc',
      'D /etc/group',
      'C /etc/passwd',
      'C /lnk',
      'A /lnk/passwd',
      'A /new',
      'A /new/deep',
      'A /new/deep/f',
      'C /opt',
      'A /opt/tool',
      'C /srv',
      'C /usr',
      'C /usr/lib',
      'A /usr/lib/new.so',
      'C /usr/share',
      'C /usr/share/doc',
      'D /usr/share/doc/README',
      'C /var',
      'C /var/cache',
      'A /var/cache/fresh',
      'D /var/cache/old',
    ]);
    expect(out.find((c) => c.Path === '/etc/group')!.Kind).toBe(2);
  });

  it('a file or directory replaced by the other kind is modified, with nothing reported below the old one', async () => {
    const lower = path.join(root, 'kind-lower');
    const upper = path.join(root, 'kind-upper');
    dir(path.join(lower, 'd/sub'));
    file(path.join(lower, 'd/sub/f'));
    file(path.join(lower, 'f'));
    dir(upper);
    file(path.join(upper, 'd'));
    dir(path.join(upper, 'f'));
    file(path.join(upper, 'f/inner'));
    expect(lines(await overlayChanges(upper, lower, { getxattr: () => undefined }))).toEqual(['C /d', 'C /f', 'A /f/inner']);
  });

  it('an empty upper has no changes, nor one holding only runtime mount points; a missing one is a clear error', async () => {
    const lower = path.join(root, 'empty-lower');
    const upper = path.join(root, 'empty-upper');
    dir(lower);
    dir(upper);
    expect(await overlayChanges(upper, lower)).toEqual([]);
    // an image without /etc: the runtime makes /etc for its hosts file; only a file of the workload there shows
    dir(path.join(upper, 'etc'));
    file(path.join(upper, 'etc/hosts'));
    expect(await overlayChanges(upper, lower, { hidden: ['/etc/hosts'] })).toEqual([]);
    file(path.join(upper, 'etc/app.conf'));
    expect(lines(await overlayChanges(upper, lower, { hidden: ['/etc/hosts'] }))).toEqual(['C /etc', 'A /etc/app.conf']);
    await expect(overlayChanges(path.join(root, 'nope'), lower)).rejects.toThrow(/writable layer .* is missing/);
  });
});

describe('overlayChanges on what the kernel wrote', () => {
  it('reads real whiteouts and trusted.overlay.opaque from an overlayfs upper directory', async () => {
    const lower = path.join(root, 'k-lower');
    const upper = path.join(root, 'k-upper');
    const work = path.join(root, 'k-work');
    const merged = path.join(root, 'k-merged');
    for (const d of ['etc', 'var/log', 'home/app', 'bin']) dir(path.join(lower, d));
    file(path.join(lower, 'etc/passwd'));
    file(path.join(lower, 'etc/group'));
    file(path.join(lower, 'var/log/old.log'));
    file(path.join(lower, 'bin/sh'));
    for (const d of [upper, work, merged]) dir(d);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
    try {
      appendFileSync(path.join(merged, 'etc/passwd'), 'more\n');
      unlinkSync(path.join(merged, 'etc/group'));
      rmSync(path.join(merged, 'var/log'), { recursive: true });
      mkdirSync(path.join(merged, 'var/log'));
      writeFileSync(path.join(merged, 'var/log/new.log'), 'n');
      mkdirSync(path.join(merged, 'home/app/a/b'), { recursive: true });
      rmdirSync(path.join(merged, 'home/app/a/b'));
      writeFileSync(path.join(merged, 'made'), 'm');
    } finally {
      execFileSync('umount', [merged]);
    }
    expect(lgetxattr(path.join(upper, 'var/log'), OVERLAY_OPAQUE_XATTR)?.toString()).toBe('y');
    expect(lgetxattr(path.join(upper, 'etc'), OVERLAY_OPAQUE_XATTR)).toBeUndefined();
    const out = await overlayChanges(upper, lower);
    expect(lines(out)).toEqual([
      'C /etc',
      'D /etc/group',
      'C /etc/passwd',
      'C /home',
      'C /home/app',
      'A /home/app/a',
      'A /made',
      'C /var',
      'C /var/log',
      'A /var/log/new.log',
      'D /var/log/old.log',
    ]);
  });
});
