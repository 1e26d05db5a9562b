/**
 * The build context: the request body of POST /build (a tar, plain or gzip; or a bare
 * Dockerfile), unpacked into a private directory under the data root, `.dockerignore` applied.
 *
 * Unpacking trusts nothing in the tar: names are normalized and one that climbs out of the
 * context (`../x`, or through a symlink the tar made) is refused; symlinks are kept as written
 * (COPY resolves them inside the context, never on the host); devices are not created.
 * Lookups resolve paths as if the context were `/`, and refuse a path outside it.
 */
import { chmodSync, createWriteStream, linkSync, mkdirSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract } from 'tar-stream';
import { BuildError } from './errors.js';
import { IgnoreMatcher, parseDockerignore } from './dockerignore.js';

/** files up to this size are read into memory and written in one call */
const SMALL_FILE = 1 << 20;

/** The name a context made from a bare Dockerfile gives it. */
const BARE_DOCKERFILE = 'Dockerfile';

async function firstBytes(body: Readable, n: number): Promise<{ head: Buffer; rest: Readable }> {
  const chunks: Buffer[] = [];
  let len = 0;
  const it = body[Symbol.asyncIterator]();
  let done = false;
  while (len < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    const c = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
    chunks.push(c);
    len += c.length;
  }
  const head = Buffer.concat(chunks);
  const rest = new PassThrough();
  rest.write(head);
  if (done) rest.end();
  else {
    // the pump reports its own failure, by destroying `rest`
    void (async () => {
      try {
        for (;;) {
          const r = await it.next();
          if (r.done) break;
          if (!rest.write(r.value)) await new Promise((res) => rest.once('drain', res));
        }
        rest.end();
      } catch (e) {
        rest.destroy(e as Error);
      }
    })();
  }
  return { head, rest };
}

/**
 * Pads a tar stream to a whole 512-byte block: the docker CLI's context for `-f` outside the
 * context ends right after its last file's bytes (no padding, no end blocks), which dockerd's
 * reader accepts.
 */
function blockPadded(): Transform {
  let n = 0;
  return new Transform({
    transform(c: Buffer, _e, cb) {
      n += c.length;
      cb(null, c);
    },
    flush(cb) {
      const pad = (512 - (n % 512)) % 512;
      cb(null, pad ? Buffer.alloc(pad) : undefined);
    },
  });
}

function isTar(head: Buffer): boolean {
  return head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar';
}

export class BuildContext {
  private ignore: IgnoreMatcher | undefined;

  private constructor(readonly root: string) {}

  /** Unpacks `body` into a new directory under `parent`; removes it again if that fails. */
  static async open(body: Readable, parent: string, o: { dockerignore?: boolean; dockerfile?: string } = {}): Promise<BuildContext> {
    await mkdir(parent, { recursive: true });
    const root = await mkdtemp(path.join(parent, 'ctx-'));
    const ctx = new BuildContext(root);
    try {
      const { head, rest } = await firstBytes(body, 512);
      if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) await ctx.unpack(rest.pipe(createGunzip()).pipe(blockPadded()));
      else if (isTar(head) || head.length === 0) await ctx.unpack(rest.pipe(blockPadded()));
      else if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68)
        throw new BuildError('bzip2-compressed build contexts are not supported: send a plain or gzip tar');
      else if (head[0] === 0xfd && head.subarray(1, 6).toString('latin1') === '7zXZ\0')
        throw new BuildError('xz-compressed build contexts are not supported: send a plain or gzip tar');
      else {
        // not an archive: the body is the Dockerfile itself (a context of just that file)
        const w = createWriteStream(path.join(root, BARE_DOCKERFILE));
        await pipeline(rest, w);
      }
      if (o.dockerignore !== false) await ctx.applyDockerignore(o.dockerfile);
      return ctx;
    } catch (e) {
      await ctx.close();
      throw e;
    }
  }

  async close(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }

  private async unpack(tar: Readable): Promise<void> {
    /**
     * context directories known to be real directories we made (no symlink on their path):
     * entries below them need no lookup. Small files are written with synchronous calls (the
     * thread-pool round trips of a 10,000-file context cost far more than the writes), with a
     * yield to the event loop every few hundred entries.
     */
    const dirs = new Set<string>(['.']);
    let sinceYield = 0;
    const parentOf = async (name: string, shown: string): Promise<string> => {
      const rel = path.posix.dirname(name);
      if (dirs.has(rel)) return rel === '.' ? this.root : path.join(this.root, rel);
      const host = await this.resolve(rel, true, shown);
      mkdirSync(host, { recursive: true });
      if (host === path.join(this.root, rel)) for (let d = rel; d !== '.' && !dirs.has(d); d = path.posix.dirname(d)) dirs.add(d);
      return host;
    };
    const clear = (target: string) => {
      try {
        unlinkSync(target);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'EISDIR' && code !== 'EPERM') throw e;
      }
    };
    const ex = tarExtract();
    ex.on('entry', (h, stream, next) => {
      (async () => {
        const name = path.posix.normalize(h.name.replace(/^(\.\/)+/, '').replace(/^\/+/, '')).replace(/\/+$/, '');
        if (name === '..' || name.startsWith('../'))
          throw new BuildError(`invalid build context: tar entry ${JSON.stringify(h.name)} is outside of the context`);
        if (name === '.' || name === '') {
          stream.resume();
          return;
        }
        if (++sinceYield >= 256) {
          sinceYield = 0;
          await new Promise((r) => setImmediate(r));
        }
        const parent = await parentOf(name, h.name);
        const target = path.join(parent, path.posix.basename(name));
        const mode = (h.mode ?? 0o644) & 0o7777;
        switch (h.type) {
          case 'directory':
            mkdirSync(target, { recursive: true });
            chmodSync(target, mode | 0o700);
            if (parent === path.join(this.root, path.posix.dirname(name)) || path.posix.dirname(name) === '.') dirs.add(name);
            stream.resume();
            break;
          case 'file':
          case 'contiguous-file': {
            clear(target);
            if ((h.size ?? 0) <= SMALL_FILE) {
              const chunks: Buffer[] = [];
              for await (const c of stream) chunks.push(c as Buffer);
              writeFileSync(target, Buffer.concat(chunks), { mode: mode | 0o600 });
            } else {
              await pipeline(stream, createWriteStream(target, { mode: mode | 0o600 }));
            }
            if ((mode | 0o600) !== mode || (mode & 0o022) !== 0) chmodSync(target, mode);
            if (h.mtime) utimesSync(target, h.mtime, h.mtime);
            break;
          }
          case 'symlink':
            clear(target);
            dirs.delete(name);
            symlinkSync(h.linkname ?? '', target);
            stream.resume();
            break;
          case 'link': {
            const lname = path.posix.normalize((h.linkname ?? '').replace(/^\/+/, ''));
            if (lname === '..' || lname.startsWith('../'))
              throw new BuildError(`invalid build context: hard link ${JSON.stringify(h.name)} points outside of the context`);
            const src = await this.resolve(lname, false, h.linkname ?? '');
            clear(target);
            linkSync(src, target);
            stream.resume();
            break;
          }
          default:
            stream.resume(); // devices, fifos: never part of a COPY
        }
      })().then(
        () => next(),
        (e: unknown) => {
          stream.resume();
          ex.destroy(e as Error);
        },
      );
    });
    try {
      await pipeline(tar, ex);
    } catch (e) {
      if (e instanceof BuildError) throw e;
      throw new BuildError(`invalid build context: ${(e as Error).message}`, 'ERR_BUILD_CONTEXT', { cause: e });
    }
  }

  /**
   * The host path of a context path, symlinks followed inside the context; a path that
   * leaves the context is refused with Docker's "Forbidden path outside the build context".
   */
  async resolve(rel: string, followLast = true, shown = rel): Promise<string> {
    const outside = (why: string) =>
      new BuildError(`Forbidden path outside the build context: ${shown} (${why})`, 'ERR_BUILD_CONTEXT_PATH');
    let todo = rel.split('/').filter((c) => c && c !== '.');
    const parts: string[] = [];
    let links = 0;
    while (todo.length) {
      const comp = todo.shift()!;
      if (comp === '..') {
        if (parts.length === 0) throw outside('it climbs above the context');
        parts.pop();
        continue;
      }
      const host = path.join(this.root, ...parts, comp);
      // nothing there: the rest of the path is taken literally (the caller finds it missing)
      const st = followLast || todo.length ? await lstat(host).catch(() => null) : null;
      if (st?.isSymbolicLink()) {
        if (++links > 40) throw new BuildError(`too many symlinks resolving ${shown}`);
        const t = await readlink(host);
        // an absolute target names a host path: never followed out of the context
        if (t.startsWith('/')) throw outside(`the symlink ${[...parts, comp].join('/')} points to ${t}`);
        todo = [...t.split('/').filter((c) => c && c !== '.'), ...todo];
        continue;
      }
      parts.push(comp);
    }
    return path.join(this.root, ...parts);
  }

  /** Removes what .dockerignore excludes, except the Dockerfile (named `dockerfile`) and .dockerignore, which the builder reads. */
  private async applyDockerignore(dockerfile = BARE_DOCKERFILE): Promise<void> {
    let text: string;
    try {
      text = await readFile(path.join(this.root, '.dockerignore'), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const m = new IgnoreMatcher(parseDockerignore(text));
    this.ignore = m;
    // the Dockerfile and .dockerignore stay readable for the builder; COPY never sees them if excluded
    const walk = async (rel: string): Promise<void> => {
      for (const name of await readdir(path.join(this.root, rel))) {
        const r = rel ? `${rel}/${name}` : name;
        const host = path.join(this.root, r);
        if (m.matches(r)) {
          if (r === '.dockerignore' || r === BARE_DOCKERFILE || r === path.posix.normalize(dockerfile)) continue;
          // an exception below an excluded directory can bring a child back: walk into it
          if (m.hasExceptions && (await lstat(host)).isDirectory()) await walk(r);
          else await rm(host, { recursive: true, force: true });
          continue;
        }
        if ((await lstat(host)).isDirectory()) await walk(r);
      }
    };
    await walk('');
  }

  /** Whether .dockerignore excludes a context path (the builder's own files). */
  ignored(rel: string): boolean {
    return this.ignore?.matches(rel) ?? false;
  }

  /** The Dockerfile's text: `name` is a context path (the CLI puts an outside -f in as `.dockerfile.<random>`). */
  async dockerfile(name: string): Promise<string> {
    const candidates = name === '' || name === BARE_DOCKERFILE ? [BARE_DOCKERFILE, 'dockerfile'] : [name];
    for (const c of candidates) {
      try {
        const host = await this.resolve(c, true);
        return await readFile(host, 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'EISDIR') throw e;
      }
    }
    throw new BuildError(`Cannot locate specified Dockerfile: ${name || BARE_DOCKERFILE}`, 'ERR_NO_DOCKERFILE');
  }
}
