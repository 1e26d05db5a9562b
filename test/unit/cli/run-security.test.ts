import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDeviceFlag, parseSecurityOptFlag, parseUlimitFlag, securityHostConfig } from '../../../src/cli/commands/run-security.js';

describe('tvm run security flags, parsed as the docker CLI does', () => {
  it('--ulimit NAME=SOFT[:HARD]', () => {
    expect(parseUlimitFlag('nofile=1024:2048')).toEqual({ Name: 'nofile', Soft: 1024, Hard: 2048 });
    expect(parseUlimitFlag('nproc=50')).toEqual({ Name: 'nproc', Soft: 50, Hard: 50 });
    expect(parseUlimitFlag('core=unlimited:-1')).toEqual({ Name: 'core', Soft: -1, Hard: -1 });
    expect(() => parseUlimitFlag('nofile')).toThrow('invalid ulimit argument');
    expect(() => parseUlimitFlag('nofile=1:2:3')).toThrow('can only have up to two');
    expect(() => parseUlimitFlag('nofile=lots')).toThrow('invalid --ulimit value');
  });
  it('--device SRC[:DST][:MODE]', () => {
    expect(parseDeviceFlag('/dev/fuse')).toEqual({ PathOnHost: '/dev/fuse', PathInContainer: '/dev/fuse', CgroupPermissions: 'rwm' });
    expect(parseDeviceFlag('/dev/fuse:r')).toEqual({ PathOnHost: '/dev/fuse', PathInContainer: '/dev/fuse', CgroupPermissions: 'r' });
    expect(parseDeviceFlag('/dev/fuse:/dev/f2')).toEqual({ PathOnHost: '/dev/fuse', PathInContainer: '/dev/f2', CgroupPermissions: 'rwm' });
    expect(parseDeviceFlag('/dev/fuse:/dev/f2:rw')).toEqual({
      PathOnHost: '/dev/fuse',
      PathInContainer: '/dev/f2',
      CgroupPermissions: 'rw',
    });
    expect(() => parseDeviceFlag('a:b:c:d')).toThrow('invalid device specification');
  });
  it('--security-opt seccomp=<file> sends the compact JSON; other options pass through', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tvm-seccomp-flag-'));
    try {
      const f = path.join(dir, 'p.json');
      writeFileSync(f, '{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n');
      expect(parseSecurityOptFlag(`seccomp=${f}`)).toBe('seccomp={"defaultAction":"SCMP_ACT_ALLOW"}');
      expect(parseSecurityOptFlag('seccomp=unconfined')).toBe('seccomp=unconfined');
      expect(parseSecurityOptFlag('no-new-privileges')).toBe('no-new-privileges');
      expect(() => parseSecurityOptFlag(`seccomp=${dir}/missing.json`)).toThrow('opening seccomp profile');
      writeFileSync(f, '{');
      expect(() => parseSecurityOptFlag(`seccomp=${f}`)).toThrow('compacting json');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('HostConfig: only what was given', () => {
    const none = {
      securityOpt: [],
      ulimit: [],
      sysctl: [],
      groupAdd: [],
      device: [],
      capAdd: [],
      capDrop: [],
      dns: [],
      dnsSearch: [],
      dnsOption: [],
      addHost: [],
    };
    expect(securityHostConfig(none)).toEqual({});
    expect(
      securityHostConfig({ ...none, dns: ['10.0.0.53'], dnsSearch: ['x.example'], dnsOption: ['ndots:2'], addHost: ['db:10.1.2.3'] }),
    ).toEqual({
      Dns: ['10.0.0.53'],
      DnsSearch: ['x.example'],
      DnsOptions: ['ndots:2'],
      ExtraHosts: ['db:10.1.2.3'],
    });
    expect(
      securityHostConfig({
        ...none,
        sysctl: ['net.ipv4.ip_forward=1'],
        shmSize: '32m',
        init: true,
        oomScoreAdj: '-5',
        groupAdd: ['audio'],
        memoryReservation: '64m',
        oomKillDisable: true,
      }),
    ).toEqual({
      Sysctls: { 'net.ipv4.ip_forward': '1' },
      ShmSize: 32 << 20,
      Init: true,
      OomScoreAdj: -5,
      GroupAdd: ['audio'],
      MemoryReservation: 64 << 20,
      OomKillDisable: true,
    });
  });
});
