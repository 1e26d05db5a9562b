import { describe, it, expect } from 'vitest';
import { cpus } from 'node:os';
import {
  mapIsolation,
  validateResources,
  validateNetwork,
  validateStorageOpt,
  effectiveConfig,
  parseMounts,
  mergeEnv,
  displayRef,
  validateRestartPolicy,
} from '../../../src/runtime/container-config.js';
import { parseSignal } from '../../../src/runtime/signals.js';
import type { ImageRecord } from '../../../src/images/types.js';

const image = (config: ImageRecord['config'] = {}): ImageRecord => ({
  id: 'sha256:' + 'b'.repeat(64),
  repoTags: ['busybox:latest'],
  repoDigests: [],
  created: '2024-01-01T00:00:00Z',
  architecture: 'amd64',
  os: 'linux',
  config,
  diffIds: [],
  size: 0,
});
const ID = 'c'.repeat(64);

describe('isolation names', () => {
  it('maps Docker names to ours', () => {
    expect(mapIsolation('hyperv', 'container')).toBe('vm');
    expect(mapIsolation('vm', 'container')).toBe('vm');
    expect(mapIsolation('process', 'vm')).toBe('container');
    expect(mapIsolation('container', 'vm')).toBe('container');
    expect(mapIsolation('default', 'vm')).toBe('vm');
    expect(mapIsolation('', 'container')).toBe('container');
    expect(mapIsolation(undefined, 'vm')).toBe('vm');
    expect(mapIsolation('HyperV', 'container')).toBe('vm');
  });
  it('rejects unknown isolations with 400', () => {
    expect(() => mapIsolation('gvisor', 'container')).toThrow(/invalid isolation "gvisor"/);
    try {
      mapIsolation('x', 'container');
    } catch (e) {
      expect((e as { status: number }).status).toBe(400);
    }
  });
});

describe('resource limits', () => {
  it("refuses impossible memory with Docker's message", () => {
    expect(() => validateResources({ Memory: 1 })).toThrow('Minimum memory limit allowed is 6MB');
    expect(() => validateResources({ Memory: -5 })).toThrow();
    expect(validateResources({ Memory: 6 * 1024 * 1024 }).memory).toBe(6 * 1024 * 1024);
    expect(() => validateResources({ Memory: 64 << 20, MemorySwap: 32 << 20 })).toThrow(
      'Minimum memoryswap limit should be larger than memory limit',
    );
    expect(() => validateResources({ MemorySwap: 32 << 20 })).toThrow('You should always set the Memory limit when using Memoryswap limit');
  });
  it('checks the CPU range against this host', () => {
    const n = cpus().length;
    expect(() => validateResources({ NanoCpus: (n + 1) * 1e9 })).toThrow(
      `Range of CPUs is from 0.01 to ${n}.00, as there are only ${n} CPUs available`,
    );
    expect(validateResources({ NanoCpus: 5e8 }).nanoCpus).toBe(5e8);
    expect(() => validateResources({ NanoCpus: 1e9, CpuQuota: 50000 })).toThrow('Conflicting options');
    expect(validateResources({ CpuQuota: 50000, CpuPeriod: 100000 }).nanoCpus).toBe(5e8);
  });
  it('keeps pids limits and cpusets', () => {
    expect(validateResources({ PidsLimit: 20 }).pidsLimit).toBe(20);
    expect(validateResources({ PidsLimit: -1 }).pidsLimit).toBeUndefined();
    expect(validateResources({ CpusetCpus: '0' }).cpusetCpus).toBe('0');
    expect(() => validateResources({ CpusetCpus: 'x' })).toThrow('Invalid value x for cpuset cpus');
  });
});

describe('network and policies', () => {
  it("per-container --storage-opt: size only (Docker's overlay2 keys), parsed as Docker does", () => {
    expect(validateStorageOpt({ StorageOpt: { size: '10G' } })).toEqual({ sizeBytes: 10 * 1024 ** 3 });
    expect(validateStorageOpt({ StorageOpt: { SIZE: '64m' } })).toEqual({ sizeBytes: 64 * 1024 ** 2 });
    expect(() => validateStorageOpt({ StorageOpt: { inodes: '5' } })).toThrow('Unknown option inodes');
    expect(validateStorageOpt({ StorageOpt: {} })).toBeUndefined();
    expect(validateStorageOpt({})).toBeUndefined();
  });

  it('allows none and host only; refuses port publishing clearly', () => {
    expect(validateNetwork({})).toBe('none');
    expect(validateNetwork({ NetworkMode: 'default' })).toBe('none');
    expect(validateNetwork({ NetworkMode: 'host' })).toBe('host');
    expect(() => validateNetwork({ PortBindings: { '80/tcp': [{ HostPort: '8080' }] } })).toThrow('port publishing is not supported yet');
    expect(() => validateNetwork({ NetworkMode: 'bridge' })).toThrow(/not supported yet/);
    expect(() => validateNetwork({ NetworkMode: 'mynet' })).toThrow(/network mynet not found/);
  });
  it('validates restart policies; refuses foreign log drivers and --rm with a policy', () => {
    expect(validateRestartPolicy({ RestartPolicy: { Name: 'always' } })).toEqual({ Name: 'always', MaximumRetryCount: 0 });
    expect(validateRestartPolicy({ RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 3 } })).toEqual({
      Name: 'on-failure',
      MaximumRetryCount: 3,
    });
    expect(validateRestartPolicy({})).toEqual({ Name: 'no', MaximumRetryCount: 0 });
    expect(() => validateRestartPolicy({ RestartPolicy: { Name: 'sometimes' } })).toThrow(
      "invalid restart policy: unknown policy 'sometimes'",
    );
    expect(() => validateRestartPolicy({ AutoRemove: true, RestartPolicy: { Name: 'always' } })).toThrow(
      "can't create 'AutoRemove' container with restart policy",
    );
    expect(() => validateRestartPolicy({ LogConfig: { Type: 'syslog' } })).toThrow(/json-file/);
    expect(() => validateRestartPolicy({ RestartPolicy: { Name: 'no' } })).not.toThrow();
  });
});

describe('effective config', () => {
  it('falls back to the image Cmd, and a user Entrypoint resets it', () => {
    const img = image({ Cmd: ['sh'], Entrypoint: ['/init'], Env: ['PATH=/bin', 'A=1'], WorkingDir: '/w', User: 'app' });
    let e = effectiveConfig({ Image: 'x' }, img, ID);
    expect(e.process.args).toEqual(['/init', 'sh']);
    expect(e.process.cwd).toBe('/w');
    expect(e.process.user).toBe('app');
    e = effectiveConfig({ Image: 'x', Entrypoint: ['/bin/echo'] }, img, ID);
    expect(e.process.args).toEqual(['/bin/echo']);
    e = effectiveConfig({ Image: 'x', Entrypoint: [''], Cmd: ['ls'] }, img, ID);
    expect(e.process.args).toEqual(['ls']);
    e = effectiveConfig({ Image: 'x', Cmd: 'echo' }, img, ID);
    expect(e.process.args).toEqual(['/init', 'echo']);
    expect(() => effectiveConfig({ Image: 'x' }, image({}), ID)).toThrow('no command specified');
  });
  it('merges env with user overrides, adds HOSTNAME and TERM with a tty', () => {
    const e = effectiveConfig({ Image: 'x', Env: ['A=2', 'B=3'], Tty: true, Cmd: ['sh'] }, image({ Env: ['PATH=/bin', 'A=1'] }), ID);
    expect(e.process.env).toEqual([`HOSTNAME=${ID.slice(0, 12)}`, 'TERM=xterm', 'PATH=/bin', 'A=2', 'B=3']);
    expect(mergeEnv([], ['X=1'])[0]).toMatch(/^PATH=/);
  });
  it('rejects relative working directories and bad stop signals', () => {
    expect(() => effectiveConfig({ Image: 'x', Cmd: ['sh'], WorkingDir: 'rel' }, image(), ID)).toThrow(
      "the working directory 'rel' is invalid",
    );
    expect(() => effectiveConfig({ Image: 'x', Cmd: ['sh'], StopSignal: 'SIGNOPE' }, image(), ID)).toThrow('Invalid signal: SIGNOPE');
  });
});

describe('mounts', () => {
  it('parses binds, named and anonymous volumes, tmpfs and image volumes', () => {
    const m = parseMounts(
      {
        Binds: ['/srv:/data:ro', 'cache:/cache', '/anon'],
        Tmpfs: { '/run': 'size=1m' },
        Mounts: [{ Type: 'bind', Source: '/etc', Target: '/hostetc', ReadOnly: true }],
      },
      { '/var/lib/x': {} },
    );
    expect(
      m.map((x) => [x.mount.type, x.mount.destination, x.mount.readonly, x.volumeName ?? (x.anonymous ? 'anon' : x.mount.source)]),
    ).toEqual([
      ['bind', '/data', true, '/srv'],
      ['volume', '/cache', false, 'cache'],
      ['volume', '/anon', false, 'anon'],
      ['bind', '/hostetc', true, '/etc'],
      ['tmpfs', '/run', false, 'tmpfs'],
      ['volume', '/var/lib/x', false, 'anon'],
    ]);
  });
  it('rejects bad specs', () => {
    expect(() => parseMounts({ Binds: ['/a:/b:/c:/d'] }, {})).toThrow(/invalid volume specification/);
    expect(() => parseMounts({ Binds: ['/a:rel'] }, {})).toThrow(/must be absolute/);
    expect(() => parseMounts({ Binds: ['/a:/x', '/b:/x'] }, {})).toThrow('Duplicate mount point: /x');
    expect(() => parseMounts({ Binds: ['/a:/x:bogus'] }, {})).toThrow('invalid mode: bogus');
    expect(() => parseMounts({ Mounts: [{ Type: 'npipe', Target: '/x' }] }, {})).toThrow(/mount type unknown/);
  });
});

describe('signals and refs', () => {
  it('parses signals like Docker', () => {
    expect(parseSignal('SIGTERM')).toBe(15);
    expect(parseSignal('term')).toBe(15);
    expect(parseSignal('9')).toBe(9);
    expect(parseSignal('SIGRTMIN+1')).toBe(35);
    expect(() => parseSignal('SIGFOO')).toThrow('Invalid signal: SIGFOO');
    expect(() => parseSignal('99')).toThrow('Invalid signal: 99');
  });
  it('normalizes refs for messages', () => {
    expect(displayRef('busybox')).toBe('busybox:latest');
    expect(displayRef('localhost:5000/app')).toBe('localhost:5000/app:latest');
    expect(displayRef('app:1')).toBe('app:1');
    expect(displayRef('app@sha256:' + 'a'.repeat(64))).toBe('app@sha256:' + 'a'.repeat(64));
  });
});
