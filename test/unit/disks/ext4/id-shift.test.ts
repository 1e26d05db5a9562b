import { describe, expect, it } from 'vitest';
import { shiftId, shiftXattr, type IdShift } from '../../../../src/disks/ext4/id-shift.js';

const shift: IdShift = {
  uidMap: [{ containerID: 0, hostID: 100000, size: 65536 }],
  gidMap: [
    { containerID: 0, hostID: 200000, size: 1000 },
    { containerID: 1000, hostID: 500000, size: 10 },
  ],
};

function acl(entries: [tag: number, perm: number, id: number][]): Buffer {
  const b = Buffer.alloc(4 + 8 * entries.length);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + 8 * i);
    b.writeUInt16LE(perm, 6 + 8 * i);
    b.writeUInt32LE(id, 8 + 8 * i);
  });
  return b;
}

describe('id shift', () => {
  it('maps ids through the ranges and refuses ids outside them', () => {
    expect(shiftId(shift.uidMap, 0, 'uid', '/x')).toBe(100000);
    expect(shiftId(shift.uidMap, 65535, 'uid', '/x')).toBe(165535);
    expect(shiftId(shift.gidMap, 1005, 'gid', '/x')).toBe(500005);
    expect(() => shiftId(shift.uidMap, 65536, 'uid', 'etc/shadow')).toThrow(/etc\/shadow: container uid 65536 cannot be mapped/);
    expect(() => shiftId(shift.gidMap, 1010, 'gid', 'a')).toThrow(/gid 1010/);
  });

  it('shifts the user and group entries of POSIX ACLs, not the others', () => {
    // USER_OBJ, USER 1000, GROUP_OBJ, GROUP 7, MASK, OTHER (ids of tag-only entries are 0xffffffff)
    const v = acl([
      [0x01, 7, 0xffffffff],
      [0x02, 6, 1000],
      [0x04, 5, 0xffffffff],
      [0x08, 4, 7],
      [0x10, 7, 0xffffffff],
      [0x20, 0, 0xffffffff],
    ]);
    const out = shiftXattr('system.posix_acl_access', v, shift, 'f');
    expect(out.readUInt32LE(8)).toBe(0xffffffff);
    expect(out.readUInt32LE(16)).toBe(101000);
    expect(out.readUInt32LE(32)).toBe(200007);
    expect(out.readUInt32LE(48)).toBe(0xffffffff);
    expect(v.readUInt32LE(16)).toBe(1000); // the input is not changed
    expect(
      shiftXattr(
        'system.posix_acl_default',
        acl([[0x02, 6, 70000]]),
        { ...shift, uidMap: [{ containerID: 0, hostID: 1, size: 100000 }] },
        'f',
      ).readUInt32LE(8),
    ).toBe(70001);
    expect(() => shiftXattr('system.posix_acl_access', acl([[0x02, 6, 70000]]), shift, 'd/f')).toThrow(
      /d\/f \(system.posix_acl_access\): container uid 70000/,
    );
    expect(() => shiftXattr('system.posix_acl_access', Buffer.from([2, 0, 0, 0, 1]), shift, 'f')).toThrow(/malformed POSIX ACL/);
  });

  it('turns v2 file capabilities into v3 with the mapped root as rootid', () => {
    const v2 = Buffer.alloc(20);
    v2.writeUInt32LE(0x02000001, 0); // revision 2, effective
    v2.writeUInt32LE(1 << 13, 4); // permitted: CAP_NET_RAW
    const v3 = shiftXattr('security.capability', v2, shift, 'bin/ping');
    expect(v3.length).toBe(24);
    expect(v3.readUInt32LE(0)).toBe(0x03000001);
    expect(v3.readUInt32LE(4)).toBe(1 << 13);
    expect(v3.readUInt32LE(20)).toBe(100000);
    // v3 already: its rootid is shifted like any uid
    const again = Buffer.from(v3);
    again.writeUInt32LE(5, 20);
    expect(shiftXattr('security.capability', again, shift, 'f').readUInt32LE(20)).toBe(100005);
    // v1 (12 bytes) is left alone; other xattrs are returned as they are
    const v1 = Buffer.alloc(12);
    v1.writeUInt32LE(0x01000000, 0);
    expect(shiftXattr('security.capability', v1, shift, 'f')).toBe(v1);
    const other = Buffer.from('text/plain');
    expect(shiftXattr('user.mime', other, shift, 'f')).toBe(other);
    expect(() => shiftXattr('security.capability', Buffer.alloc(2), shift, 'f')).toThrow(/malformed security.capability/);
  });
});
