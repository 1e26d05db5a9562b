import { describe, expect, it } from 'vitest';
import { validateUsernsMode } from '../../../src/runtime/container-config.js';
import { containerUserns, HOST_NETWORK_WITH_REMAP, PRIVILEGED_WITH_REMAP } from '../../../src/runtime/host/remap.js';
import type { ContainerSpec } from '../../../src/runtime/types.js';
import { idShiftTag, baseDiskUuid } from '../../../src/disks/base-disk.js';
import { containerSpec } from '../../fixtures/spec.js';

const maps = { uidMap: [{ containerID: 0, hostID: 100000, size: 65536 }], gidMap: [{ containerID: 0, hostID: 100000, size: 65536 }] };

function spec(over: Partial<ContainerSpec> = {}): ContainerSpec {
  return containerSpec({ id: 'c1', hostname: 'h', stateDir: '/s', logPath: '/s/log', ...over });
}

describe('HostConfig.UsernsMode', () => {
  it('accepts "" and "host", refuses anything else as Docker does', () => {
    expect(validateUsernsMode({})).toBeUndefined();
    expect(validateUsernsMode({ UsernsMode: '' })).toBeUndefined();
    expect(validateUsernsMode({ UsernsMode: 'host' })).toBe('host');
    expect(() => validateUsernsMode({ UsernsMode: 'private' })).toThrow(/invalid USER mode "private"/);
    expect(() => validateUsernsMode({ UsernsMode: 'container:abc' })).toThrow(/invalid USER mode/);
  });
});

describe('which containers get a user namespace', () => {
  it('none without --userns-remap, whatever the container asks', () => {
    expect(containerUserns(undefined, spec())).toBeUndefined();
    expect(containerUserns(undefined, spec({ privileged: true, network: 'host' }))).toBeUndefined();
  });
  it("the daemon's maps with remapping, unless --userns=host", () => {
    expect(containerUserns(maps, spec())).toBe(maps);
    expect(containerUserns(maps, spec({ usernsMode: 'host', privileged: true, network: 'host' }))).toBeUndefined();
  });
  it("refuses privileged and host network with remapping, with Docker's messages", () => {
    expect(() => containerUserns(maps, spec({ privileged: true }))).toThrow(PRIVILEGED_WITH_REMAP);
    expect(PRIVILEGED_WITH_REMAP).toMatch(/^privileged mode is incompatible with user namespaces/);
    expect(() => containerUserns(maps, spec({ network: 'host' }))).toThrow(HOST_NETWORK_WITH_REMAP);
  });
});

describe('id-shifted base disks', () => {
  it('have their own stable tag and filesystem identity per set of maps', () => {
    const id = 'sha256:' + 'b'.repeat(64);
    expect(idShiftTag(maps)).toMatch(/^u100000-g100000-[0-9a-f]{8}$/);
    expect(idShiftTag(maps)).toBe(idShiftTag(JSON.parse(JSON.stringify(maps))));
    const other = { ...maps, gidMap: [{ containerID: 0, hostID: 200000, size: 65536 }] };
    expect(idShiftTag(other)).not.toBe(idShiftTag(maps));
    expect(baseDiskUuid(id, 1, undefined, maps).equals(baseDiskUuid(id, 1))).toBe(false);
    expect(baseDiskUuid(id, 1, undefined, maps).equals(baseDiskUuid(id, 1, undefined, maps))).toBe(true);
  });
});
