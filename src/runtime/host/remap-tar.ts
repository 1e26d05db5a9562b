/**
 * `docker cp` and export of a container in a user namespace: its files are owned by host ids
 * (the subordinate range), but the user sees and gives container ids, as Docker's remapped
 * archiver does. A tar stream is rewritten entry by entry with the ids translated; file bodies
 * are streamed through, never buffered.
 */
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract, pack as tarPack, type Header } from 'tar-stream';
import { InvalidParameterError } from '../../errors.js';
import type { IdMapEntry, IdMappings } from '../userns.js';

/** what the kernel shows for an id its namespace does not map (overflowuid) */
export const OVERFLOW_ID = 65534;

function toContainer(map: IdMapEntry[], id: number): number {
  for (const e of map) if (id >= e.hostID && id < e.hostID + e.size) return e.containerID + (id - e.hostID);
  return OVERFLOW_ID;
}

function toHost(map: IdMapEntry[], id: number, kind: string, name: string): number {
  for (const e of map) if (id >= e.containerID && id < e.containerID + e.size) return e.hostID + (id - e.containerID);
  throw new InvalidParameterError(`${name}: container ${kind} ${id} cannot be mapped to a host ${kind}`);
}

/** Header rewrite for archives out of the container: host ids -> container ids (unmapped: 65534). */
export function hostToContainer(maps: IdMappings): (h: Header) => void {
  return (h) => {
    h.uid = toContainer(maps.uidMap, h.uid ?? 0);
    h.gid = toContainer(maps.gidMap, h.gid ?? 0);
  };
}

/** Header rewrite for archives into the container: container ids -> host ids (unmapped: refused). */
export function containerToHost(maps: IdMappings): (h: Header) => void {
  return (h) => {
    h.uid = toHost(maps.uidMap, h.uid ?? 0, 'uid', h.name);
    h.gid = toHost(maps.gidMap, h.gid ?? 0, 'gid', h.name);
  };
}

/** The tar `src` with every header passed through `fix`. Errors (a bad tar, a refused id) end the output with that error. */
export function remapTar(src: Readable, fix: (h: Header) => void): Readable {
  const ex = tarExtract();
  const pk = tarPack();
  const out = new PassThrough();
  ex.on('entry', (header, body, next) => {
    // a failure anywhere reaches the caller through the extractor; the body's copy of it must not go unhandled
    body.on('error', () => {});
    try {
      // uname/gname named the old ids; numeric ids are what the other side applies
      const h: Header = { ...header, uname: '', gname: '' };
      fix(h);
      const entry = pk.entry(h, (err) => (err ? ex.destroy(err) : next()));
      body.pipe(entry);
    } catch (e) {
      ex.destroy(e as Error);
    }
  });
  ex.on('finish', () => pk.finalize());
  pipeline(src, ex).catch((e: Error) => {
    pk.destroy(e);
    out.destroy(e);
  });
  pipeline(pk, out).catch((e: Error) => out.destroy(e));
  return out;
}
