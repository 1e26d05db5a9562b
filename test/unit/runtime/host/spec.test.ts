import { describe, expect, it } from 'vitest';
import { InvalidParameterError } from '../../../../src/errors.js';
import { imageHex } from '../../../../src/runtime/host/base-mounts.js';
import { parseSignal } from '../../../../src/runtime/signals.js';
import { agentSpec, validateSpec } from '../../../../src/runtime/host/spec.js';
import type { ContainerSpec } from '../../../../src/runtime/types.js';
import { containerSpec } from '../../../fixtures/spec.js';

function spec(over: Partial<ContainerSpec> = {}): ContainerSpec {
  return containerSpec(over, { env: ['A=1'], cwd: '', openStdin: true });
}

describe('host spec validation', () => {
  it('accepts a plain spec', () => {
    expect(() => validateSpec(spec())).not.toThrow();
  });

  it('a bridge-networked container joins the namespace its networks prepared', () => {
    const cg = { version: 1 as const, root: '/sys/fs/cgroup', path: 'tvm/abc123' };
    expect(agentSpec(spec({ network: 'bridge', netns: { path: '/run/tvm/netns/abc123', ip: '172.17.0.2' } }), '/l', cg).network).toEqual({
      path: '/run/tvm/netns/abc123',
    });
    expect(() => agentSpec(spec({ network: 'bridge' }), '/l', cg)).toThrow('netns');
    expect(agentSpec(spec({ network: 'host' }), '/l', cg).network).toBe('host');
  });

  it.each([
    ['id', { id: '../etc' }, 'invalid container id'],
    ['stateDir', { stateDir: 'rel' }, 'stateDir'],
    ['hostname', { hostname: 'bad host' }, 'hostname'],
    ['args', { process: { args: [], env: [], cwd: '/', user: '', tty: false, openStdin: false } }, 'a command is required'],
    ['env', { process: { args: ['x'], env: ['=x'], cwd: '/', user: '', tty: false, openStdin: false } }, 'KEY=VALUE'],
    ['cwd', { process: { args: ['x'], env: [], cwd: 'tmp', user: '', tty: false, openStdin: false } }, 'absolute'],
    ['memory', { resources: { memory: 4096 } }, '6MB'],
    ['memorySwap', { resources: { memory: 64 << 20, memorySwap: 1 << 20 } }, 'memorySwap'],
    ['pidsLimit', { resources: { pidsLimit: 1.5 } }, 'pidsLimit'],
    ['cpuset', { resources: { cpusetCpus: 'all' } }, 'cpusetCpus'],
    ['cap', { capDrop: ['CAP_FLY'] }, 'unknown capability'],
    ['mount type', { mounts: [{ type: 'nfs' as 'bind', source: '/a', destination: '/b', readonly: false }] }, 'unknown mount type'],
    ['mount dest', { mounts: [{ type: 'bind' as const, source: '/a', destination: 'b', readonly: false }] }, 'destination'],
    ['mount ..', { mounts: [{ type: 'bind' as const, source: '/a', destination: '/b/../../c', readonly: false }] }, '".."'],
    ['network', { network: 'overlay' as 'none' }, 'network'],
  ])('rejects a bad %s with InvalidParameterError', (_f, over, msg) => {
    expect(() => validateSpec(spec(over as Partial<ContainerSpec>))).toThrow(InvalidParameterError);
    expect(() => validateSpec(spec(over as Partial<ContainerSpec>))).toThrow(msg);
  });

  it('maps to the agent spec: overlay dirs in the state dir, defaults filled, empty limits left out', () => {
    const a = agentSpec(
      spec({
        resources: { memory: 32 << 20, pidsLimit: -1, nanoCpus: 0 },
        mounts: [{ type: 'tmpfs', source: '', destination: '/t', readonly: false, options: ['size=1m'] }],
      }),
      '/run/tvm/base/aa',
      { version: 1, root: '/sys/fs/cgroup', path: 'tvm/abc123' },
    );
    expect(a.rootfs).toEqual({
      lower: '/run/tvm/base/aa',
      upper: '/var/lib/tvm/containers/abc123/upper',
      work: '/var/lib/tvm/containers/abc123/work',
      target: '/var/lib/tvm/containers/abc123/rootfs',
    });
    expect(a.hostname).toBe('abc123');
    expect(a.process).toEqual({ args: ['sh'], env: ['A=1'], cwd: '/', user: '', tty: false, stdin: true });
    expect(a.resources).toEqual({ memory: 32 << 20 });
    expect(a.mounts).toEqual([{ type: 'tmpfs', destination: '/t', readonly: false, options: ['size=1m'] }]);
  });
});

describe('signals and image ids', () => {
  it('parses signal names and numbers as Docker accepts them', () => {
    expect(parseSignal('SIGKILL')).toBe(9);
    expect(parseSignal('kill')).toBe(9);
    expect(parseSignal('TERM')).toBe(15);
    expect(parseSignal('15')).toBe(15);
    expect(parseSignal(2)).toBe(2);
    expect(() => parseSignal('SIGNOPE')).toThrow(InvalidParameterError);
    expect(() => parseSignal(0)).toThrow(InvalidParameterError);
    expect(() => parseSignal(65)).toThrow(InvalidParameterError);
  });

  it('takes the hex of an image id for its mount point', () => {
    expect(imageHex(`sha256:${'ab'.repeat(32)}`)).toBe('ab'.repeat(32));
    expect(() => imageHex('sha256:../../x')).toThrow(InvalidParameterError);
  });
});
