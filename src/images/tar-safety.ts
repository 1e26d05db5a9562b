/**
 * Checks on tar entries before we trust them: archive member names (docker load) and layer
 * contents (import, load). A name that is absolute or climbs out with `..`, a hard link to a
 * path that does not exist yet, or a truncated/corrupt tar is a FormatError naming the entry.
 */
import { Writable } from 'node:stream';
import { extract, type Header } from 'tar-stream';
import { FormatError } from '../errors.js';

/** Normalises a member name ('./a//b/' -> 'a/b'); refuses absolute paths and '..' components. */
export function safeEntryName(name: string, what: string): string {
  if (name.includes('\0')) throw new FormatError(`${what}: entry name contains NUL: ${JSON.stringify(name)}`, 'ERR_UNSAFE_TAR_ENTRY');
  if (name.startsWith('/')) throw new FormatError(`${what}: entry ${JSON.stringify(name)} has an absolute path`, 'ERR_UNSAFE_TAR_ENTRY');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new FormatError(`${what}: entry ${JSON.stringify(name)} contains '..'`, 'ERR_UNSAFE_TAR_ENTRY');
  return parts.join('/');
}

/** tar-stream's error for a short archive, or any parse error, as a FormatError. */
export function tarError(e: unknown, what: string): FormatError {
  if (e instanceof FormatError) return e;
  const msg = (e as Error)?.message ?? String(e);
  return new FormatError(`${what}: corrupt or truncated tar: ${msg}`, 'ERR_BAD_TAR', { cause: e });
}

/**
 * A Writable that parses a layer tar and checks every entry. `known` carries the paths of
 * lower layers (for hard links that point into them) and receives this layer's paths.
 */
export interface LayerTarFacts {
  entries: number;
  /** this layer's paths (plus `known` when one was passed) */
  paths: Set<string>;
  /** hard links whose targets were not seen (only with deferLinks): they must be in lower layers */
  dangling: { name: string; target: string }[];
}

export function layerTarValidator(
  what: string,
  known: Set<string> = new Set(),
  opts: { deferLinks?: boolean } = {},
): { sink: Writable; done: Promise<LayerTarFacts> } {
  const ex = extract();
  let entries = 0;
  const dangling: { name: string; target: string }[] = [];
  const done = new Promise<LayerTarFacts>((resolve, reject) => {
    ex.on('entry', (h: Header, stream, next) => {
      // the extractor reports the error; the entry stream repeats it
      stream.on('error', () => {});
      try {
        const name = safeEntryName(h.name, what);
        if (h.type === 'link') {
          const target = safeEntryName(h.linkname ?? '', `${what}: hard link ${JSON.stringify(h.name)}`);
          if (!known.has(target) && opts.deferLinks) dangling.push({ name: h.name, target });
          else if (!known.has(target)) {
            throw new FormatError(`${what}: hard link ${JSON.stringify(h.name)} points to missing ${JSON.stringify(h.linkname)}`, 'ERR_UNSAFE_TAR_ENTRY');
          }
        }
        if (name !== '') known.add(name);
        entries++;
      } catch (e) {
        stream.resume();
        ex.destroy(e as Error);
        return;
      }
      stream.on('end', () => next());
      stream.resume();
    });
    ex.on('finish', () => resolve({ entries, paths: known, dangling }));
    ex.on('error', (e) => reject(tarError(e, what)));
  });
  done.catch(() => {});
  // tar-stream is built on streamx; a node Writable in front keeps node's pipeline semantics.
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      if (ex.write(chunk)) cb(null);
      else ex.once('drain', () => cb(null));
    },
    final(cb) {
      ex.end(undefined);
      done.then(() => cb(null), (e: Error) => cb(e));
    },
    destroy(err, cb) {
      ex.destroy(err ?? undefined);
      cb(err);
    },
  });
  done.catch((e: Error) => sink.destroy(e));
  return { sink, done };
}

/**
 * Layers checked separately (concurrent downloads) may hard-link into lower layers: each
 * dangling target must exist in some layer below. `pathsOf` supplies a lower layer's paths.
 */
export async function checkDeferredLinks(
  layers: { what: string; dangling: { name: string; target: string }[] }[],
  pathsOf: (index: number) => Promise<Set<string>>,
): Promise<void> {
  for (let i = 0; i < layers.length; i++) {
    for (const d of layers[i]!.dangling) {
      let found = false;
      for (let j = i - 1; j >= 0 && !found; j--) found = (await pathsOf(j)).has(d.target);
      if (!found) {
        throw new FormatError(`${layers[i]!.what}: hard link ${JSON.stringify(d.name)} points to missing ${JSON.stringify(d.target)}`, 'ERR_UNSAFE_TAR_ENTRY');
      }
    }
  }
}
