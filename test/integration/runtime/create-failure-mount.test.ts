/**
 * A create whose isolation fails and leaves a mount in the container's state directory (a sized
 * writable layer it could not unmount): the manager's cleanup must not rm -rf through the mount
 * (that deleted inside it, then failed with EBUSY, which replaced the create's own error and
 * skipped the cleanup of the volumes it made). It unmounts what it can, and the caller gets the
 * isolation's error.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ContainerManager } from '../../../src/runtime/manager.js';
import type { ContainerSpec } from '../../../src/runtime/types.js';
import { MemoryIsolation } from '../../fixtures/fake-isolation.js';
import { FakeImageStore, busyboxDockerArchive } from '../../fixtures/fake-images.js';
import { mountScratch, mountedUnder } from '../../fixtures/mount-scratch.js';

/** fails its create after mounting a tmpfs in the state dir, as a layer that would not unmount */
class LeavesMountIsolation extends MemoryIsolation {
  override async create(spec: ContainerSpec): Promise<void> {
    const layer = path.join(spec.stateDir, 'layer');
    mkdirSync(layer, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', layer]);
    writeFileSync(path.join(layer, 'f'), 'x');
    throw new Error('cannot unmount the layer: boom');
  }
}

const scratch = mountScratch('tvm-createfail-');

describe('create failure with a mount left in the state dir', () => {
  it("answers the isolation's error, unmounts and removes the state dir and the new volume", async () => {
    const images = new FakeImageStore();
    await images.load(Readable.from([await busyboxDockerArchive()]));
    const m = new ContainerManager({
      dataRoot: scratch.root(),
      images,
      isolations: { container: new LeavesMountIsolation() },
      defaultIsolation: 'container',
    });
    await m.init();
    await expect(m.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { Binds: ['vol1:/data'] } }, 'c1')).rejects.toThrow('boom');
    expect(await mountedUnder(path.join(scratch.root(), 'containers'))).toEqual([]);
    const containers = path.join(scratch.root(), 'containers');
    expect(existsSync(containers) ? execFileSync('ls', [containers], { encoding: 'utf8' }) : '').toBe('');
    expect(m.volumes.list().map((v) => v.Name)).not.toContain('vol1');
  });
});
