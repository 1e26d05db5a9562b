/**
 * COPY and ADD sources -> the tar that is unpacked at `/` in the step's container, with the
 * classic builder's rules (moby builder/dockerfile/copy.go):
 *
 * - a source is a path or a glob (`*`, `?`, `[...]` within one component) in the context (or,
 *   for --from, in the other image's files); none matching is an error;
 * - with several sources the destination must be a directory ending in `/`;
 * - a directory source copies its contents (not itself) into the destination;
 * - a file source lands at `dest/<name>` when dest ends in `/` or is a directory already,
 *   else at dest itself;
 * - a relative destination is relative to WORKDIR;
 * - owner 0:0 unless --chown; modes and modification times kept (--chmod replaces the mode);
 * - ADD unpacks a local tar (plain or gzip) into the destination directory instead.
 */
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract } from 'tar-stream';
import { tarStream, type TarEntryHeader as EntryHeader } from '../tar-stream-writer.js';
import { BuildError } from './errors.js';

export interface CopySource {
  /** the source as written (for messages) */
  shown: string;
  /** host path of the source (symlinks followed inside its root) */
  host: string;
  /** its path relative to the root */
  rel: string;
}

export interface CopyPlan {
  /** entries to pack: host file -> container path */
  items: { host: string; dest: string; hostIsTarForAdd?: boolean }[];
  /** directories to make when missing (the destination itself) */
  mkdirs: string[];
}

const GLOB_RE = /[*?[]/;

export function isGlob(s: string): boolean {
  return GLOB_RE.test(s);
}

/** Go's filepath.Match for one component, as a regular expression. */
function componentRe(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) throw new BuildError(`syntax error in pattern: ${pattern}`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^') || cls.startsWith('!')) cls = '^' + cls.slice(1);
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) re += `\\${pattern[++i]}`;
    else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(re + '$', 's');
}

/** Paths (relative to root) matching a glob, component by component, sorted; symlinked directories are not entered. */
export async function globIn(root: string, pattern: string): Promise<string[]> {
  const comps = pattern.split('/').filter((c) => c && c !== '.');
  let found = [''];
  for (const comp of comps) {
    const next: string[] = [];
    for (const dir of found) {
      // as moby's walk: a symlink is never descended (one in another image's files would lead
      // out of them, into the daemon's own filesystem)
      if (
        !(await lstat(path.join(root, dir)).then(
          (st) => st.isDirectory(),
          () => false,
        ))
      )
        continue;
      if (!isGlob(comp)) {
        const rel = dir ? `${dir}/${comp}` : comp;
        // a path that cannot be stat'ed matches nothing: the COPY then fails as for a missing file
        if (
          await lstat(path.join(root, rel)).then(
            () => true,
            () => false,
          )
        )
          next.push(rel);
        continue;
      }
      const re = componentRe(comp);
      let names: string[];
      try {
        names = await readdir(path.join(root, dir));
      } catch {
        continue; // gone meanwhile: a pattern component cannot match inside it
      }
      for (const n of names.sort()) if (re.test(n)) next.push(dir ? `${dir}/${n}` : n);
    }
    found = next;
  }
  return found.filter((f) => f !== '');
}

/** Whether a file starts like a tar archive (plain or gzip), for ADD's auto-extraction. */
export async function looksLikeTar(host: string): Promise<'tar' | 'gzip' | undefined> {
  const fh = await open(host, 'r');
  try {
    const b = Buffer.alloc(512);
    const { bytesRead } = await fh.read(b, 0, 512, 0);
    if (bytesRead >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (bytesRead >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
    return undefined;
  } finally {
    await fh.close();
  }
}

/** files up to this size are read in one synchronous call (see context.ts) */
const SMALL_FILE = 1 << 20;

/** lets the event loop run every few hundred files of a long synchronous walk */
function yielder(): () => Promise<void> {
  let n = 0;
  return async () => {
    if (++n % 256 === 0) await new Promise((r) => setImmediate(r));
  };
}

/** The checksum of what a source contributes (names, modes, sizes, link targets, contents; no times). */
async function sourceHash(host: string): Promise<string> {
  const h = createHash('sha256');
  const pause = yielder();
  const visit = async (p: string, rel: string): Promise<void> => {
    await pause();
    const st = lstatSync(p);
    h.update(`${rel}\0${st.mode}\0`);
    if (st.isSymbolicLink()) h.update(`l${readlinkSync(p)}\0`);
    else if (st.isFile()) {
      h.update(`f${st.size}\0`);
      if (st.size <= SMALL_FILE) h.update(readFileSync(p));
      else for await (const c of createReadStream(p)) h.update(c as Buffer);
    } else if (st.isDirectory()) {
      for (const n of readdirSync(p).sort()) await visit(path.join(p, n), `${rel}/${n}`);
    }
  };
  await visit(host, '.');
  return h.digest('hex');
}

/**
 * Where each source goes. `destIsDir` tells whether the destination exists as a directory in
 * the image (asked only when it matters: one file source, dest without a trailing slash).
 */
export async function planCopy(
  instr: 'COPY' | 'ADD',
  sources: CopySource[],
  destRaw: string,
  workdir: string,
  destIsDir: (p: string) => Promise<boolean>,
): Promise<CopyPlan> {
  const endsSlash = destRaw.endsWith('/') || destRaw.endsWith('/.') || destRaw === '.';
  let dest = path.posix.isAbsolute(destRaw) ? destRaw : path.posix.join(workdir || '/', destRaw);
  dest = path.posix.normalize(dest);
  if (sources.length > 1 && !endsSlash)
    throw new BuildError(`When using ${instr} with more than one source file, the destination must be a directory and end with a /`);
  const items: CopyPlan['items'] = [];
  const mkdirs: string[] = [];
  for (const s of sources) {
    const st = await lstat(s.host);
    if (st.isDirectory()) {
      items.push({ host: s.host, dest });
      mkdirs.push(dest);
      continue;
    }
    if (instr === 'ADD' && st.isFile() && (await looksLikeTar(s.host))) {
      items.push({ host: s.host, dest, hostIsTarForAdd: true });
      mkdirs.push(dest);
      continue;
    }
    const toDir = endsSlash || (sources.length === 1 && dest !== '/' && (await destIsDir(dest))) || dest === '/';
    items.push({ host: s.host, dest: toDir ? path.posix.join(dest, path.posix.basename(s.rel)) : dest });
  }
  return { items, mkdirs: [...new Set(mkdirs)] };
}

/** `file:<sha>`, `dir:<sha>` or `multi:<sha>` of the sources, for the history and the cache key (as moby names them). */
export async function copyHash(sources: CopySource[]): Promise<string> {
  const hashes: string[] = [];
  let kind = 'file';
  for (const s of sources) {
    if ((await lstat(s.host)).isDirectory()) kind = 'dir';
    hashes.push(await sourceHash(s.host));
  }
  const all = hashes.length === 1 ? hashes[0]! : createHash('sha256').update(hashes.join('\n')).digest('hex');
  return `${sources.length > 1 ? 'multi' : kind}:${all}`;
}

export interface CopyOwner {
  uid: number;
  gid: number;
}

/** The tar of a plan, names relative to `/`. */
export function copyTar(plan: CopyPlan, owner: CopyOwner, chmod: number | undefined, missingDirs: Set<string>): Readable {
  return tarStream(async ({ entry, entryBuffer }) => {
    const name = (p: string) => p.replace(/^\/+/, '') || '.';
    // the mode as stored, with the type bits so a mode of 0 is not replaced by tar-stream's default
    const modeOf = (m: number, isDir: boolean) => (chmod !== undefined ? chmod | (isDir ? 0o040000 : 0o100000) : m);
    const pause = yielder();
    const one = async (host: string, dest: string): Promise<void> => {
      await pause();
      const st = lstatSync(host);
      const base = { name: name(dest), uid: owner.uid, gid: owner.gid, mtime: st.mtime };
      if (st.isDirectory()) {
        await entry({ ...base, type: 'directory', mode: modeOf(st.mode, true) });
        for (const n of readdirSync(host).sort()) await one(path.join(host, n), path.posix.join(dest, n));
      } else if (st.isSymbolicLink()) {
        await entry({ ...base, type: 'symlink', linkname: readlinkSync(host), mode: st.mode });
      } else if (st.isFile()) {
        const h: EntryHeader = { ...base, type: 'file', size: st.size, mode: modeOf(st.mode, false) };
        if (st.size <= SMALL_FILE) await entryBuffer(h, readFileSync(host));
        else await entry(h, createReadStream(host));
      }
    };
    const untar = async (host: string, dest: string): Promise<void> => {
      const kind = await looksLikeTar(host);
      const ex = tarExtract();
      ex.on('entry', (h, stream, next) => {
        const rel = path.posix.normalize(h.name.replace(/^\/+/, ''));
        if (rel === '..' || rel.startsWith('../')) {
          stream.resume();
          ex.destroy(new BuildError(`ADD: archive entry ${JSON.stringify(h.name)} is outside of the destination`));
          return;
        }
        const target = rel === '.' ? dest : path.posix.join(dest, rel);
        const hh: EntryHeader = { ...h, name: name(target), mode: h.mode ?? 0o644 };
        if (h.type === 'link' && h.linkname)
          hh.linkname = name(path.posix.join(dest, path.posix.normalize(h.linkname.replace(/^\/+/, ''))));
        if (hh.type === 'file' || hh.type === 'contiguous-file') {
          hh.type = 'file';
          entry(hh, stream as unknown as Readable).then(
            () => next(),
            (e: unknown) => ex.destroy(e as Error),
          );
        } else {
          stream.resume();
          entry(hh).then(
            () => next(),
            (e: unknown) => ex.destroy(e as Error),
          );
        }
      });
      const src = createReadStream(host);
      await pipeline(kind === 'gzip' ? src.pipe(createGunzip()) : src, ex);
    };
    for (const d of plan.mkdirs) {
      if (missingDirs.has(d) && d !== '/')
        await entry({ name: name(d), type: 'directory', mode: 0o40755, uid: owner.uid, gid: owner.gid, mtime: new Date() });
    }
    for (const it of plan.items) {
      if (it.hostIsTarForAdd) await untar(it.host, it.dest);
      else if ((await lstat(it.host)).isDirectory()) {
        for (const n of (await readdir(it.host)).sort()) await one(path.join(it.host, n), path.posix.join(it.dest, n));
      } else await one(it.host, it.dest);
    }
  });
}
