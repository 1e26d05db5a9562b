import { describe, expect, it } from 'vitest';
import { containerToHost, hostToContainer } from '../../../src/runtime/host/remap-ids.js';

const maps = {
  uidMap: [
    { containerID: 0, hostID: 200000, size: 1000 },
    { containerID: 1000, hostID: 300000, size: 64536 },
  ],
  gidMap: [{ containerID: 0, hostID: 200000, size: 65536 }],
};

describe('id translation for docker cp under --userns-remap', () => {
  it('shows host-owned files with their container ids, unmapped ones as 65534', () => {
    const out = hostToContainer(maps);
    expect(out(200000, 200000, 'a')).toEqual({ uid: 0, gid: 0 });
    expect(out(300000, 201000, 'a')).toEqual({ uid: 1000, gid: 1000 });
    expect(out(364535, 265535, 'a')).toEqual({ uid: 65535, gid: 65535 });
    expect(out(0, 5, 'a')).toEqual({ uid: 65534, gid: 65534 });
    expect(out(201000, 265536, 'a')).toEqual({ uid: 65534, gid: 65534 });
  });

  it('gives copied-in files the host ids of their container ids, and refuses ids outside the maps', () => {
    const into = containerToHost(maps);
    expect(into(0, 0, 'a')).toEqual({ uid: 200000, gid: 200000 });
    expect(into(999, 50, 'a')).toEqual({ uid: 200999, gid: 200050 });
    expect(into(1000, 1000, 'a')).toEqual({ uid: 300000, gid: 201000 });
    expect(() => into(65536, 0, 'big')).toThrow(/big: container uid 65536 cannot be mapped to a host uid/);
    expect(() => into(0, 70000, 'g')).toThrow(/g: container gid 70000/);
  });
});
