/**
 * `docker cp` needs the stat of a container path (`X-Docker-Container-Path-Stat`: base64 JSON
 * {name, size, mode, mtime, linkTarget}, mode as Go's os.FileMode). We take it from the first
 * header of the archive the isolation produces, so both isolations answer alike.
 */
import path from 'node:path';
import type { Readable } from 'node:stream';
import { extract, type Header } from 'tar-stream';
import { NotFoundError } from '../errors.js';

/** Go os.FileMode type bits */
const MODE_DIR = 2 ** 31;
const MODE_SYMLINK = 2 ** 27;
const MODE_DEVICE = 2 ** 26;
const MODE_NAMED_PIPE = 2 ** 25;
const MODE_SETUID = 2 ** 23;
const MODE_SETGID = 2 ** 22;
const MODE_CHAR_DEVICE = 2 ** 21;
const MODE_STICKY = 2 ** 20;

export interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

export function goFileMode(h: Pick<Header, 'type' | 'mode'>): number {
  const unixMode = h.mode ?? 0;
  let m = unixMode & 0o777;
  if (unixMode & 0o4000) m += MODE_SETUID;
  if (unixMode & 0o2000) m += MODE_SETGID;
  if (unixMode & 0o1000) m += MODE_STICKY;
  switch (h.type) {
    case 'directory':
      return m + MODE_DIR;
    case 'symlink':
      return m + MODE_SYMLINK;
    case 'fifo':
      return m + MODE_NAMED_PIPE;
    case 'character-device':
      return m + MODE_DEVICE + MODE_CHAR_DEVICE;
    case 'block-device':
      return m + MODE_DEVICE;
    default:
      return m;
  }
}

export function encodeStat(s: PathStat): string {
  return Buffer.from(JSON.stringify(s)).toString('base64');
}

/**
 * Reads the archive until its first header; returns the stat and a stream replaying every byte
 * (the consumed prefix, then the rest).
 */
export async function statFromArchive(
  containerPath: string,
  archive: Readable,
): Promise<{ stat: PathStat; replay: AsyncIterable<Buffer> }> {
  const consumed: Buffer[] = [];
  const ex = extract();
  const first = new Promise<Header>((resolve, reject) => {
    ex.on('entry', (h, stream, next) => {
      resolve(h);
      stream.resume();
      next();
    });
    ex.on('finish', () => reject(new NotFoundError(`Could not find the file ${containerPath} in container`)));
    ex.on('error', reject);
  });
  const it = archive[Symbol.asyncIterator]();
  let header: Header | undefined;
  // only records the header: a failure of `first` is seen by the race below
  void first.then(
    (h) => (header = h),
    () => {},
  );
  let ended = false;
  while (!header) {
    const r = await Promise.race([it.next(), first.then(() => undefined)]);
    if (r === undefined) break;
    if (r.done) {
      ended = true;
      (ex as unknown as NodeJS.WritableStream).end();
      break;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
    consumed.push(chunk);
    ex.write(chunk);
    await new Promise((res) => setImmediate(res));
  }
  const h = await first;
  ex.destroy();
  const stat: PathStat = {
    name: containerPath === '/' ? '/' : path.posix.basename(containerPath),
    size: h.size ?? 0,
    mode: goFileMode(h),
    mtime: (h.mtime ?? new Date(0)).toISOString(),
    linkTarget: h.linkname ?? '',
  };
  async function* replay(): AsyncIterable<Buffer> {
    for (const c of consumed) yield c;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
    }
  }
  return { stat, replay: replay() };
}
