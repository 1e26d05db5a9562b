/**
 * A tar produced by an async walk (docker cp/export from a disk, a commit's layer, a COPY
 * step): tar-stream's pack behind a PassThrough, so the reader's backpressure pauses the pack,
 * and a walk that fails, or a reader that goes away, ends the stream with its error instead of
 * crashing the process through an entry sink nobody listens to.
 */
import { PassThrough, type Readable } from 'node:stream';
import { pack as tarPack, type Header } from 'tar-stream';

export type TarEntryHeader = Partial<Header> & { name: string };

export interface TarWriter {
  /** one entry; a body streams its content; a file without one is empty */
  entry: (h: TarEntryHeader, body?: Readable) => Promise<void>;
  /** one entry whose content is in memory */
  entryBuffer: (h: TarEntryHeader, data: Buffer) => Promise<void>;
}

export function tarStream(write: (w: TarWriter) => Promise<void>): Readable {
  const pack = tarPack();
  const out = new PassThrough();
  pack.on('data', (c: unknown) => {
    if (!out.write(c)) pack.pause();
  });
  out.on('drain', () => pack.resume());
  // errors reach the caller through `out`; without a listener the pack's own would crash the daemon
  pack.on('error', (e) => out.destroy(e));
  pack.on('end', () => out.end());
  // a reader that goes away: stop the pack, so the walk's next entry fails and it ends
  out.on('close', () => {
    if (!pack.destroyed && !out.writableFinished) pack.destroy();
  });
  const w: TarWriter = {
    entry: (h, body) =>
      new Promise<void>((resolve, reject) => {
        const done = (err?: Error | null) => (err ? reject(err) : resolve());
        if (body) {
          const sink = pack.entry(h, done);
          // a destroyed pack destroys the entry's sink too
          sink.on('error', reject);
          body.on('error', reject).pipe(sink);
        } else if (h.type === 'file') {
          // an empty buffer, not none: tar-stream waits for the body of a file entry given none
          pack.entry(h, Buffer.alloc(0), done);
        } else pack.entry(h, done);
      }),
    entryBuffer: (h, data) => new Promise<void>((resolve, reject) => void pack.entry(h, data, (err) => (err ? reject(err) : resolve()))),
  };
  write(w).then(
    () => pack.finalize(),
    (e: unknown) => {
      pack.destroy(e as Error);
      out.destroy(e as Error);
    },
  );
  return out;
}
