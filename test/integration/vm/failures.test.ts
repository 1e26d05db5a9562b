/**
 * VM isolation when the guest does not come up: a guest whose kernel panics at boot, and one
 * that never answers within the boot bound. VmIsolation directly (no daemon), on this host's
 * backend, over a busybox base disk. Each start must fail with a clear error naming what
 * happened and leave no supervisor, QEMU or socket behind; the container stays startable.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { VmIsolation } from '../../../src/runtime/vm/isolation.js';
import { chooseVmBackend } from '../../../src/vmm/launch/backend.js';
import { buildKernel } from '../../../src/vmm/kernel-artifacts.js';
import type { ContainerSpec } from '../../../src/runtime/types.js';
import { AGENT, IMAGE_ID, fakeImages, makeBaseDisk, requireTools } from '../runtime/host/harness.js';
import { containerSpec } from '../../fixtures/spec.js';

function processesNaming(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(needle)) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

let dir = '';
let disk = '';

function spec(id: string): ContainerSpec {
  return containerSpec(
    { id, name: id, isolation: 'vm', imageId: IMAGE_ID, stateDir: path.join(dir, 'containers', id) },
    { args: ['true'], env: ['PATH=/bin'] },
  );
}

beforeAll(async () => {
  requireTools();
  await buildKernel();
  dir = mkdtempSync(path.join(tmpdir(), 'tvm-vm-fail-'));
  disk = await makeBaseDisk(dir);
}, 3_600_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('VM isolation: a guest that does not come up', () => {
  const backend = chooseVmBackend('auto')?.backend;

  it('a guest whose kernel panics at boot: start fails naming it, nothing is left running', async () => {
    if (!backend) throw new Error('no VM backend: needs /dev/kvm or qemu-system-x86_64 (apt-get install qemu-system-x86)');
    const iso = new VmIsolation({
      dataRoot: dir,
      runRoot: path.join(dir, 'run'),
      agentPath: AGENT,
      backend,
      ...fakeImages(disk),
      kernelArgs: 'rdinit=/no-such-init',
    });
    const s = spec('panic1');
    await iso.create(s);
    const err = await iso.start(s).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/the VM ended before its agent answered/);
    expect(readFileSync(path.join(s.stateDir, 'console.log'), 'utf8')).toMatch(/Kernel panic|No working init found|Failed to execute/);
    expect(processesNaming(s.stateDir)).toEqual([]);
    expect(await iso.recover(s)).toEqual({ lost: true });
    await iso.remove(s);
  });

  it('a guest that does not answer within the boot bound: a timeout, and the VM is powered off', async () => {
    if (!backend) throw new Error('no VM backend');
    const iso = new VmIsolation({
      dataRoot: dir,
      runRoot: path.join(dir, 'run'),
      agentPath: AGENT,
      backend,
      ...fakeImages(disk),
      bootTimeoutMs: 300,
    });
    const s = spec('slow1');
    await iso.create(s);
    const err = await iso.start(s).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/did not answer within|did not become ready/);
    for (let i = 0; i < 100 && processesNaming(s.stateDir).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(processesNaming(s.stateDir)).toEqual([]);
    // the same container boots with a sane bound
    const ok = new VmIsolation({ dataRoot: dir, runRoot: path.join(dir, 'run'), agentPath: AGENT, backend, ...fakeImages(disk) });
    await ok.start(s);
    expect((await ok.wait(s)).exitCode).toBe(0);
    await ok.remove(s);
  });
});
