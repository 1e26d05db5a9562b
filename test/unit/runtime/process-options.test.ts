import { describe, expect, it } from 'vitest';
import { InvalidParameterError } from '../../../src/errors.js';
import {
  agentProcessOptions,
  validateDns,
  validateExtraHosts,
  validateMemoryReservation,
  validateProcessOptions,
  validateSysctls,
  validateUlimits,
} from '../../../src/runtime/process-options.js';

describe('--ulimit', () => {
  it("accepts Docker's names with -1 as unlimited", () => {
    expect(
      validateUlimits([
        { Name: 'nofile', Soft: 1024, Hard: 2048 },
        { Name: 'core', Soft: -1, Hard: -1 },
        { Name: 'nproc', Soft: 5, Hard: -1 },
      ]),
    ).toEqual([
      { name: 'nofile', soft: 1024, hard: 2048 },
      { name: 'core', soft: -1, hard: -1 },
      { name: 'nproc', soft: 5, hard: -1 },
    ]);
  });
  it.each([
    [[{ Name: 'fds', Soft: 1, Hard: 1 }], 'invalid ulimit type: fds'],
    [[{ Name: 'nofile', Soft: 10, Hard: 5 }], 'ulimit soft limit must be less than or equal to hard limit: 10 > 5'],
    [[{ Name: 'nofile', Soft: -1, Hard: 5 }], 'ulimit soft limit must be less than or equal to hard limit: -1 > 5'],
    [[{ Name: 'nofile', Soft: -2, Hard: 5 }], 'integers >= -1'],
  ])('refuses %j', (u, msg) => {
    expect(() => validateUlimits(u)).toThrow(InvalidParameterError);
    expect(() => validateUlimits(u)).toThrow(msg);
  });
});

describe('--sysctl (runc: only namespaced sysctls the container owns)', () => {
  it('accepts IPC sysctls always and net.* with a private network namespace', () => {
    expect(
      validateSysctls({ 'kernel.shmmax': '1', 'kernel.sem': '1 2 3 4', 'fs.mqueue.msg_max': '20', 'net/ipv4/ip_forward': '1' }, 'none'),
    ).toEqual({
      'kernel.shmmax': '1',
      'kernel.sem': '1 2 3 4',
      'fs.mqueue.msg_max': '20',
      'net.ipv4.ip_forward': '1',
    });
    expect(validateSysctls({ 'kernel.msgmax': '8192' }, 'host')).toEqual({ 'kernel.msgmax': '8192' });
  });
  it.each([
    [{ 'net.ipv4.ip_forward': '1' }, 'host', 'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'],
    [{ 'kernel.hostname': 'x' }, 'none', 'conflicts with the OCI "hostname" field'],
    [{ 'kernel.domainname': 'x' }, 'none', 'conflicts with the OCI "domainname" field'],
    [{ 'vm.swappiness': '1' }, 'none', 'sysctl "vm.swappiness" is not in a separate kernel namespace'],
    [{ 'kernel.pid_max': '1' }, 'none', 'is not in a separate kernel namespace'],
    [{ 'net..x': '1' }, 'none', 'not a valid sysctl name'],
    [{ 'net.ipv4.ip_forward': 1 }, 'none', 'value must be a string'],
  ] as [Record<string, unknown>, 'none' | 'host', string][])('refuses %j (network %s)', (s, net, msg) => {
    expect(() => validateSysctls(s, net)).toThrow(msg);
  });
});

describe('process options', () => {
  it("Docker's defaults give nothing to send", () => {
    expect(
      validateProcessOptions(
        {
          ShmSize: 0,
          OomScoreAdj: 0,
          GroupAdd: null,
          Ulimits: null,
          Sysctls: null,
          Devices: [],
          Init: null,
          MemoryReservation: 0,
          OomKillDisable: false,
        },
        'none',
      ),
    ).toEqual({});
    expect(agentProcessOptions({})).toEqual({});
  });
  it('converts each option to the agent spec', () => {
    const o = validateProcessOptions(
      {
        ShmSize: 1 << 20,
        Init: true,
        GroupAdd: ['staff', '42'],
        OomScoreAdj: -500,
        Memory: 1 << 30,
        MemoryReservation: 1 << 28,
        OomKillDisable: true,
        Devices: [{ PathOnHost: '/dev/null', PathInContainer: '/dev/n2', CgroupPermissions: 'rw' }],
        Ulimits: [{ Name: 'nofile', Soft: 1, Hard: 2 }],
      },
      'none',
    );
    expect(agentProcessOptions(o)).toEqual({
      ulimits: [{ name: 'nofile', soft: 1, hard: 2 }],
      shmSize: 1 << 20,
      init: true,
      groupAdd: ['staff', '42'],
      oomScoreAdj: -500,
      devices: [{ path: '/dev/null', containerPath: '/dev/n2', permissions: 'rw' }],
      oomKillDisable: true,
    });
    expect(agentProcessOptions(validateProcessOptions({ MaskedPaths: [], ReadonlyPaths: ['/proc/sys'] }, 'none'))).toEqual({
      maskedPaths: [],
      readonlyPaths: ['/proc/sys'],
    });
    expect(() => validateProcessOptions({ MaskedPaths: ['proc/kcore'] }, 'none')).toThrow('MaskedPaths: expected a list of absolute paths');
    // a resource: recorded in Resources by validateResources, where docker update changes it
    expect(validateMemoryReservation({ Memory: 1 << 30, MemoryReservation: 1 << 28 })).toBe(1 << 28);
    expect(validateMemoryReservation({ MemoryReservation: 0 })).toBeUndefined();
    expect(validateProcessOptions({ Devices: [{ PathOnHost: '/dev/null' }] }, 'none').devices).toEqual([
      { pathOnHost: '/dev/null', pathInContainer: '/dev/null', permissions: 'rwm' },
    ]);
  });
  it.each([
    [{ MemoryReservation: 1024 }, 'Minimum memory reservation allowed is 6MB'],
    [{ Memory: 8 << 20, MemoryReservation: 16 << 20 }, 'Minimum memory limit can not be less than memory reservation limit'],
  ])('refuses the reservation %j', (hc, msg) => {
    expect(() => validateMemoryReservation(hc)).toThrow(msg);
  });
  it.each([
    [{ ShmSize: -1 }, 'SHM size can not be less than 0'],
    [{ OomScoreAdj: -1001 }, 'Invalid value -1001, range for oom score adj is [-1000, 1000]'],
    [{ Devices: [{ PathOnHost: '/dev/null', CgroupPermissions: 'rx' }] }, '/dev/null invalid device mode: rx'],
    [
      { Devices: [{ PathOnHost: '/nonexistent-dev' }] },
      'error gathering device information while adding custom device "/nonexistent-dev": no such file or directory',
    ],
    [{ Devices: [{ PathOnHost: '/etc/hostname' }] }, 'not a device node'],
    [{ Devices: [{ PathOnHost: '/dev' }] }, 'a directory of devices is not supported'],
    [{ GroupAdd: ['a:b'] }, 'GroupAdd'],
  ])('refuses %j', (hc, msg) => {
    expect(() => validateProcessOptions(hc, 'none')).toThrow(InvalidParameterError);
    expect(() => validateProcessOptions(hc, 'none')).toThrow(msg);
  });
});

describe('--dns, --dns-search, --dns-option, --add-host, --domainname', () => {
  it("keeps host-gateway for the container manager to resolve (the default bridge's gateway)", () => {
    expect(validateExtraHosts(['gw:host-gateway'])).toEqual([{ name: 'gw', ip: 'host-gateway' }]);
  });

  it('parse into the container files and the UTS domain name', () => {
    expect(validateDns({ Dns: [], DnsSearch: [], DnsOptions: [] })).toBeUndefined();
    expect(validateDns({ Dns: ['10.0.0.53', '::1'], DnsSearch: ['example.com'], DnsOptions: ['ndots:2'] })).toEqual({
      nameservers: ['10.0.0.53', '::1'],
      search: ['example.com'],
      options: ['ndots:2'],
    });
    expect(validateDns({ DnsSearch: ['.'] })).toEqual({ search: [] });
    expect(validateExtraHosts(['db:10.1.2.3', 'v6=::1', 'w:[fe80::1]'])).toEqual([
      { name: 'db', ip: '10.1.2.3' },
      { name: 'v6', ip: '::1' },
      { name: 'w', ip: 'fe80::1' },
    ]);
    const o = validateProcessOptions({}, 'none', 'example.org');
    expect(agentProcessOptions(o)).toEqual({ sysctls: { 'kernel.domainname': 'example.org' } });
  });
  it.each([
    [() => validateDns({ Dns: ['dns.example.com'] }), 'dns.example.com is not an ip address'],
    [() => validateDns({ DnsSearch: ['bad domain'] }), 'DnsSearch'],
    [() => validateExtraHosts(['nocolon']), 'bad format for add-host: "nocolon"'],
    [() => validateExtraHosts(['db:300.1.1.1']), 'invalid IP address in add-host: "300.1.1.1"'],
    [() => validateProcessOptions({}, 'none', 'bad domain'), 'invalid domainname format'],
  ])('refuses bad values (%#)', (f, msg) => {
    expect(f).toThrow(InvalidParameterError);
    expect(f).toThrow(msg);
  });
});
