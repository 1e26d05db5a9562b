/**
 * Checks on tar entries before we trust them: archive member names (docker load) and layer
 * contents (import, load). A name that is absolute or climbs out with `..`, a hard link to a
 * path that does not exist yet, or a truncated/corrupt tar is a FormatError naming the entry.
 */
import { Writable } from 'node:stream';
import { TarWalker, type TarEntryInfo } from './tar-walker.js';
import { FormatError } from './errors.js';

/**
 * Linux's PATH_MAX: no longer name can be created or opened, so none is accepted (names are
 * kept for the hard link checks, and a gzip bomb of 64 MiB long names would grow that set
 * without limit)
 */
export const MAX_ENTRY_NAME = 4096;

/** Normalises a member name ('./a//b/' -> 'a/b'); refuses absolute paths and '..' components. */
export function safeEntryName(name: string, what: string): string {
  // names are latin1 strings of the raw bytes: length is the byte count
  if (name.length > MAX_ENTRY_NAME)
    throw new FormatError(
      `${what}: entry name ${JSON.stringify(name.slice(0, 64) + '...')} is longer than ${MAX_ENTRY_NAME} bytes`,
      'ERR_UNSAFE_TAR_ENTRY',
    );
  if (name.includes('\0')) throw new FormatError(`${what}: entry name contains NUL: ${JSON.stringify(name)}`, 'ERR_UNSAFE_TAR_ENTRY');
  if (name.startsWith('/')) throw new FormatError(`${what}: entry ${JSON.stringify(name)} has an absolute path`, 'ERR_UNSAFE_TAR_ENTRY');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new FormatError(`${what}: entry ${JSON.stringify(name)} contains '..'`, 'ERR_UNSAFE_TAR_ENTRY');
  return parts.join('/');
}

/** Any parse error as a FormatError naming the layer. */
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

/** Checks entries as a TarWalker reports them; `push`/`end` throw FormatError on the first bad one. */
export class LayerTarChecker {
  private readonly walker: TarWalker;
  readonly dangling: { name: string; target: string }[] = [];

  constructor(
    private readonly what: string,
    readonly paths: Set<string> = new Set(),
    private readonly deferLinks = false,
  ) {
    this.walker = new TarWalker(what, (e) => this.entry(e));
  }

  private entry(e: TarEntryInfo): void {
    const name = safeEntryName(e.name, this.what);
    if (e.type === '1') {
      const target = safeEntryName(e.linkname, `${this.what}: hard link ${JSON.stringify(e.name)}`);
      if (!this.paths.has(target)) {
        if (!this.deferLinks) {
          throw new FormatError(
            `${this.what}: hard link ${JSON.stringify(e.name)} points to missing ${JSON.stringify(e.linkname)}`,
            'ERR_UNSAFE_TAR_ENTRY',
          );
        }
        this.dangling.push({ name: e.name, target });
      }
    }
    if (name !== '') this.paths.add(name);
  }

  push(chunk: Buffer): void {
    this.walker.push(chunk);
  }

  end(): LayerTarFacts {
    this.walker.end();
    return { entries: this.walker.entries, paths: this.paths, dangling: this.dangling };
  }
}

export function layerTarValidator(
  what: string,
  known: Set<string> = new Set(),
  opts: { deferLinks?: boolean } = {},
): { sink: Writable; done: Promise<LayerTarFacts> } {
  const checker = new LayerTarChecker(what, known, opts.deferLinks ?? false);
  let resolve!: (f: LayerTarFacts) => void;
  let reject!: (e: Error) => void;
  const done = new Promise<LayerTarFacts>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // observed only so an early rejection is not 'unhandled': it is awaited, and its error reported, where it is used
  done.catch(() => {});
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      try {
        checker.push(chunk);
        cb();
      } catch (e) {
        cb(tarError(e, what));
      }
    },
    final(cb) {
      try {
        resolve(checker.end());
        cb();
      } catch (e) {
        cb(tarError(e, what));
      }
    },
  });
  sink.on('error', (e) => reject(e));
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
        throw new FormatError(
          `${layers[i]!.what}: hard link ${JSON.stringify(d.name)} points to missing ${JSON.stringify(d.target)}`,
          'ERR_UNSAFE_TAR_ENTRY',
        );
      }
    }
  }
}
