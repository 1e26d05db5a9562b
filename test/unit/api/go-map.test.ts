import { describe, it, expect } from 'vitest';
import { goMap } from '../../../src/api/go-map.js';

describe("goMap (Go's encoding/json map order)", () => {
  it('sorts keys bytewise, as dockerd writes labels; leaves null and undefined as they are', () => {
    const m = goMap({ 'com.docker.compose.project': 'mx', 'com.docker.compose.network': 'back', B: '1', a: '2' });
    expect(Object.keys(m)).toEqual(['B', 'a', 'com.docker.compose.network', 'com.docker.compose.project']);
    expect(JSON.stringify(goMap({ z: 1, y: 2 }))).toBe('{"y":2,"z":1}');
    expect(goMap(null)).toBeNull();
    expect(goMap(undefined)).toBeUndefined();
  });
});
