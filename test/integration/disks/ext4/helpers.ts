/**
 * Helpers for the ext4 writer's integration tests: build disks from in-memory layers, check
 * them with e2fsck, mount them read-only and compare the mounted tree with an independent
 * reference merge of the layers.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { sha256Hex as sha } from '../../../fixtures/hash.js';
import { existsSync, mkdtempSync, readFileSync, readdirSync, lstatSync, readlinkSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { expect } from 'vitest';
import { writeExt4FromLayers, type Ext4Stats, type Ext4WriteOptions } from '../../../../src/disks/ext4/writer.js';
import type { TarEntry } from '../../../fixtures/rootfs.js';

export function requireTool(name: string, pkg: string): string {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new Error(`missing tool ${name}: apt-get install ${pkg}`);
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `tvm-ext4-${prefix}-`));
}

export async function buildDisk(layers: Buffer[], out: string, opts: Ext4WriteOptions = {}): Promise<Ext4Stats> {
  async function* gen() {
    for (const l of layers) {
      // deliver in odd-sized chunks so block and header boundaries fall mid-chunk
      const chunks: Buffer[] = [];
      for (let i = 0; i < l.length; i += 7001) chunks.push(l.subarray(i, i + 7001));
      yield Readable.from(chunks);
    }
  }
  return writeExt4FromLayers(gen(), out, opts);
}

/** e2fsck -fn must be clean (exit 0) */
export function fsck(image: string): string {
  const e2fsck = requireTool('e2fsck', 'e2fsprogs');
  const r = spawnSync(e2fsck, ['-fn', image], { encoding: 'utf8' });
  const out = `${r.stdout}\n${r.stderr}`;
  expect(r.status, `e2fsck -fn ${image}:\n${out}`).toBe(0);
  return out;
}

export function debugfs(image: string, cmd: string): string {
  const bin = requireTool('debugfs', 'e2fsprogs');
  return execFileSync(bin, ['-R', cmd, image], { encoding: 'latin1', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
}

/** mounts read-only via a loop device for the duration of fn */
export async function withMount<T>(image: string, fn: (dir: string) => Promise<T> | T): Promise<T> {
  requireTool('mount', 'mount');
  const dir = tempDir('mnt');
  execFileSync('mount', ['-o', 'loop,ro', image, dir]);
  try {
    return await fn(dir);
  } finally {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Expect {
  type: 'file' | 'directory' | 'symlink' | 'character-device' | 'block-device' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  mtimeSec: number;
  sha256?: string;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** paths sharing one inode have the same group name */
  linkGroup?: string;
}

function isUnder(p: string, dir: string): boolean {
  return dir === '' || p.startsWith(dir + '/');
}

/** An independent, simple model of OCI layer merging used as the test oracle. */
export function referenceMerge(layers: TarEntry[][]): Map<string, Expect> {
  const out = new Map<string, Expect & { layer: number }>();
  const norm = (n: string) => n.replace(/^\.\//, '').replace(/\/+$/, '');
  layers.forEach((entries, layer) => {
    for (const e of entries) {
      const p = norm(e.name);
      if (p === '' || p === '.') continue;
      const base = path.posix.basename(p);
      const dir = path.posix.dirname(p) === '.' ? '' : path.posix.dirname(p);
      if (base === '.wh..wh..opq') {
        for (const k of [...out.keys()]) if (isUnder(k, dir) && out.get(k)!.layer < layer) out.delete(k);
        continue;
      }
      if (base.startsWith('.wh.')) {
        const victim = dir ? `${dir}/${base.slice(4)}` : base.slice(4);
        if (out.has(victim) && out.get(victim)!.layer < layer) {
          out.delete(victim);
          for (const k of [...out.keys()]) if (isUnder(k, victim)) out.delete(k);
        }
        continue;
      }
      const type = e.type ?? 'file';
      if (type !== 'directory') for (const k of [...out.keys()]) if (isUnder(k, p)) out.delete(k);
      const mtimeSec = Math.floor((e.mtime ?? new Date('2024-01-01T00:00:00Z')).getTime() / 1000);
      if (type === 'link') {
        const target = out.get(norm(e.linkname!))!;
        const group = target.linkGroup ?? norm(e.linkname!);
        target.linkGroup = group;
        out.set(p, { ...target, linkGroup: group, layer });
        continue;
      }
      const prev = out.get(p);
      const exp: Expect & { layer: number } = {
        type,
        mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        mtimeSec,
        layer,
      };
      if (type === 'file') exp.sha256 = sha(e.content === undefined ? '' : e.content);
      if (type === 'symlink') exp.linkname = e.linkname!;
      if (type === 'character-device' || type === 'block-device') {
        exp.devmajor = e.devmajor ?? 0;
        exp.devminor = e.devminor ?? 0;
      }
      if (prev && prev.type === 'directory' && type === 'directory') exp.layer = layer;
      out.set(p, exp);
    }
  });
  const result = new Map<string, Expect>();
  for (const [k, v] of out) {
    const { layer: _layer, ...rest } = v;
    result.set(k, rest);
  }
  return result;
}

/** walks a mounted tree and compares it, file by file, with the expectation */
export function expectTreeEquals(root: string, expected: Map<string, Expect>, ignore: string[] = ['lost+found']): void {
  const seen = new Map<string, Expect & { ino: number }>();
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      if (ignore.includes(r)) continue;
      const full = path.join(root, r);
      const st = lstatSync(full);
      const type = st.isDirectory()
        ? 'directory'
        : st.isSymbolicLink()
          ? 'symlink'
          : st.isCharacterDevice()
            ? 'character-device'
            : st.isBlockDevice()
              ? 'block-device'
              : st.isFIFO()
                ? 'fifo'
                : 'file';
      const got: Expect & { ino: number } = {
        type,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtimeSec: Math.floor(st.mtimeMs / 1000),
        ino: st.ino,
      };
      if (type === 'file') got.sha256 = sha(readFileSync(full));
      if (type === 'symlink') got.linkname = readlinkSync(full);
      if (type === 'character-device' || type === 'block-device') {
        got.devmajor = Number((BigInt(st.rdev) >> 8n) & 0xfffn);
        got.devminor = Number((BigInt(st.rdev) & 0xffn) | ((BigInt(st.rdev) >> 12n) & 0xfff00n));
      }
      seen.set(r, got);
      if (type === 'directory') walk(r);
    }
  };
  walk('');
  expect([...seen.keys()].sort()).toEqual([...expected.keys()].sort());
  const groups = new Map<string, number>();
  for (const [p, exp] of expected) {
    const got = seen.get(p)!;
    const { linkGroup, ...want } = exp;
    const { ino, ...have } = got;
    if (want.type === 'symlink') {
      // symlink permissions are not meaningful on Linux (always 0777 through lstat)
      want.mode = have.mode;
    }
    expect(have, p).toEqual(want);
    if (linkGroup) {
      if (groups.has(linkGroup)) expect(ino, `${p} shares the inode of ${linkGroup}`).toBe(groups.get(linkGroup));
      else groups.set(linkGroup, ino);
    }
  }
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function makeDir(p: string): string {
  mkdirSync(p, { recursive: true });
  return p;
}

/**
 * A minimal tar writer for inputs tar-stream cannot produce: binary pax values, nanosecond pax
 * times, GNU sparse maps, and deliberately broken archives.
 */
export function rawTarHeader(h: {
  name: string;
  type?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}): Buffer {
  const b = Buffer.alloc(512);
  const oct = (v: number, len: number) => v.toString(8).padStart(len - 1, '0') + '\0';
  b.write(h.name, 0, 100, 'latin1');
  b.write(oct(h.mode ?? 0o644, 8), 100, 'latin1');
  b.write(oct(h.uid ?? 0, 8), 108, 'latin1');
  b.write(oct(h.gid ?? 0, 8), 116, 'latin1');
  b.write(oct(h.size ?? 0, 12), 124, 'latin1');
  b.write(oct(h.mtime ?? 1704067200, 12), 136, 'latin1');
  b.write(h.type ?? '0', 156, 'latin1');
  b.write(h.linkname ?? '', 157, 100, 'latin1');
  b.write('ustar\0', 257, 'latin1');
  b.write('00', 263, 'latin1');
  b.write(oct(h.devmajor ?? 0, 8), 329, 'latin1');
  b.write(oct(h.devminor ?? 0, 8), 337, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}

export function paxRecords(records: [string, Buffer | string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of records) {
    const val = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    const body = Buffer.concat([Buffer.from(` ${k}=`, 'utf8'), val, Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(Buffer.concat([Buffer.from(String(len)), body]));
  }
  return Buffer.concat(parts);
}

export function padBlock(b: Buffer): Buffer {
  const rem = b.length % 512;
  return rem === 0 ? b : Buffer.concat([b, Buffer.alloc(512 - rem)]);
}

/** one raw tar member: optional pax header + header + padded body */
export function rawMember(
  h: Parameters<typeof rawTarHeader>[0],
  body: Buffer = Buffer.alloc(0),
  pax?: [string, Buffer | string][],
): Buffer {
  const parts: Buffer[] = [];
  if (pax) {
    const p = paxRecords(pax);
    parts.push(rawTarHeader({ name: 'PaxHeaders/x', type: 'x', size: p.length }), padBlock(p));
  }
  parts.push(rawTarHeader({ ...h, size: h.size ?? body.length }), padBlock(body));
  return Buffer.concat(parts);
}

export const TAR_END = Buffer.alloc(1024);
