/**
 * Ownership shift for a base disk used under a user namespace (`tvm daemon --userns-remap`):
 * every uid/gid of the image becomes the host id the container's map gives it, as Docker's
 * remapped layer store chowns its layers, so that inside the namespace files show their image
 * owners. Ids stored inside xattrs follow: POSIX ACL user/group entries, and the root id of
 * file capabilities (a v2 `security.capability` becomes v3 with the mapped root as its rootid,
 * which is what the kernel itself writes when a namespaced root sets one; without it the
 * capabilities would be ignored inside the namespace).
 */
import { FormatError } from '../../errors.js';

/** container ids [containerID, containerID + size) are host ids [hostID, hostID + size) */
export interface IdShiftRange {
  containerID: number;
  hostID: number;
  size: number;
}

export interface IdShift {
  uidMap: IdShiftRange[];
  gidMap: IdShiftRange[];
}

/** POSIX ACL tags carrying an id (include/uapi/linux/posix_acl.h) */
const ACL_USER = 0x02;
const ACL_GROUP = 0x08;
const POSIX_ACL_XATTR_VERSION = 2;
const POSIX_ACL_HEADER = 4;
const POSIX_ACL_ENTRY = 8;

/** include/uapi/linux/capability.h: vfs_cap_data / vfs_ns_cap_data */
const VFS_CAP_REVISION_MASK = 0xff000000;
const VFS_CAP_REVISION_2 = 0x02000000;
const VFS_CAP_REVISION_3 = 0x03000000;
const XATTR_CAPS_SZ_2 = 20;
const XATTR_CAPS_SZ_3 = 24;
const VFS_CAP_ROOTID_OFFSET = 20;

function mapId(map: IdShiftRange[], id: number): number | undefined {
  for (const e of map) if (id >= e.containerID && id < e.containerID + e.size) return e.hostID + (id - e.containerID);
  return undefined;
}

/** Host id for a container id; an id outside the map fails the build, as Docker's chown does. */
export function shiftId(map: IdShiftRange[], id: number, kind: 'uid' | 'gid', where: string): number {
  const h = mapId(map, id);
  if (h === undefined) {
    throw new FormatError(
      `${where}: container ${kind} ${id} cannot be mapped to a host ${kind} (the remapped range does not cover it)`,
      'ERR_ID_UNMAPPED',
    );
  }
  return h;
}

/** The xattr value with its ids shifted (a new Buffer), or the value itself when it holds none. */
export function shiftXattr(name: string, value: Buffer, shift: IdShift, where: string): Buffer {
  if (name === 'system.posix_acl_access' || name === 'system.posix_acl_default') {
    if (
      value.length < POSIX_ACL_HEADER ||
      (value.length - POSIX_ACL_HEADER) % POSIX_ACL_ENTRY !== 0 ||
      value.readUInt32LE(0) !== POSIX_ACL_XATTR_VERSION
    ) {
      throw new FormatError(`${where}: malformed POSIX ACL in ${name}`, 'ERR_TAR_FORMAT');
    }
    const out = Buffer.from(value);
    for (let i = POSIX_ACL_HEADER; i < out.length; i += POSIX_ACL_ENTRY) {
      const tag = out.readUInt16LE(i);
      if (tag === ACL_USER) out.writeUInt32LE(shiftId(shift.uidMap, out.readUInt32LE(i + 4), 'uid', `${where} (${name})`), i + 4);
      else if (tag === ACL_GROUP) out.writeUInt32LE(shiftId(shift.gidMap, out.readUInt32LE(i + 4), 'gid', `${where} (${name})`), i + 4);
    }
    return out;
  }
  if (name === 'security.capability') {
    if (value.length < 4) throw new FormatError(`${where}: malformed security.capability`, 'ERR_TAR_FORMAT');
    const rev = (value.readUInt32LE(0) & VFS_CAP_REVISION_MASK) >>> 0;
    if (rev === VFS_CAP_REVISION_2 && value.length === XATTR_CAPS_SZ_2) {
      const out = Buffer.alloc(XATTR_CAPS_SZ_3);
      value.copy(out);
      // same flags (effective bit) with the revision raised to 3
      out.writeUInt32LE(((value.readUInt32LE(0) & ~VFS_CAP_REVISION_MASK) | VFS_CAP_REVISION_3) >>> 0, 0);
      out.writeUInt32LE(shiftId(shift.uidMap, 0, 'uid', `${where} (security.capability)`), VFS_CAP_ROOTID_OFFSET);
      return out;
    }
    if (rev === VFS_CAP_REVISION_3 && value.length === XATTR_CAPS_SZ_3) {
      const out = Buffer.from(value);
      out.writeUInt32LE(
        shiftId(shift.uidMap, value.readUInt32LE(VFS_CAP_ROOTID_OFFSET), 'uid', `${where} (security.capability rootid)`),
        VFS_CAP_ROOTID_OFFSET,
      );
      return out;
    }
    // v1 or an unknown layout: kept as it is; the kernel ignores what it cannot read
    return value;
  }
  return value;
}
