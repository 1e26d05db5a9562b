/**
 * `docker cp` and export of a container in a user namespace: its files are owned by host ids
 * (the subordinate ranges), but the user sees and gives container ids, as Docker's remapped
 * archiver does. These translate one way or the other for archive.ts (applied to each entry
 * before it is packed or chowned, so host ids never pass through a tar header: tar-stream's
 * ustar fields stop at 262143).
 */
import { InvalidParameterError } from '../../errors.js';
import type { IdMapEntry, IdMappings } from '../userns.js';

/** what the kernel shows for an id its namespace does not map (overflowuid) */
export const OVERFLOW_ID = 65534;

export type MapIds = (uid: number, gid: number, name: string) => { uid: number; gid: number };

function toContainer(map: IdMapEntry[], id: number): number {
  for (const e of map) if (id >= e.hostID && id < e.hostID + e.size) return e.containerID + (id - e.hostID);
  return OVERFLOW_ID;
}

function toHost(map: IdMapEntry[], id: number, kind: string, name: string): number {
  for (const e of map) if (id >= e.containerID && id < e.containerID + e.size) return e.hostID + (id - e.containerID);
  throw new InvalidParameterError(`${name}: container ${kind} ${id} cannot be mapped to a host ${kind}`);
}

/** Out of the container: host ids -> container ids (unmapped: 65534, as the container sees them). */
export function hostToContainer(maps: IdMappings): MapIds {
  return (uid, gid) => ({ uid: toContainer(maps.uidMap, uid), gid: toContainer(maps.gidMap, gid) });
}

/** Into the container: container ids -> host ids (unmapped: refused, naming the entry). */
export function containerToHost(maps: IdMappings): MapIds {
  return (uid, gid, name) => ({ uid: toHost(maps.uidMap, uid, 'uid', name), gid: toHost(maps.gidMap, gid, 'gid', name) });
}
