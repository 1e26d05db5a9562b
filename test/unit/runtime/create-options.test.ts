import { describe, expect, it } from 'vitest';
import { InvalidParameterError } from '../../../src/errors.js';
import type { CreateBody } from '../../../src/runtime/container-config.js';
import { createWarnings, refuseUnsupported, validateHostOptions } from '../../../src/runtime/create-options.js';

/** What docker CLI 28 sends for a plain `docker run busybox true` (API 1.47). */
const PLAIN_RUN: CreateBody = {
  Hostname: '',
  Domainname: '',
  User: '',
  AttachStdin: false,
  AttachStdout: true,
  AttachStderr: true,
  Tty: false,
  OpenStdin: false,
  StdinOnce: false,
  Env: null,
  Cmd: ['true'],
  Image: 'busybox',
  Volumes: {},
  WorkingDir: '',
  Entrypoint: null,
  OnBuild: null,
  Labels: {},
  HostConfig: {
    Binds: null,
    ContainerIDFile: '',
    LogConfig: { Type: '', Config: {} },
    NetworkMode: 'default',
    PortBindings: {},
    RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
    AutoRemove: false,
    VolumeDriver: '',
    VolumesFrom: null,
    ConsoleSize: [0, 0],
    CapAdd: null,
    CapDrop: null,
    CgroupnsMode: '',
    Dns: [],
    DnsOptions: [],
    DnsSearch: [],
    ExtraHosts: null,
    GroupAdd: null,
    IpcMode: '',
    Cgroup: '',
    Links: null,
    OomScoreAdj: 0,
    PidMode: '',
    Privileged: false,
    PublishAllPorts: false,
    ReadonlyRootfs: false,
    SecurityOpt: null,
    UTSMode: '',
    UsernsMode: '',
    ShmSize: 0,
    Isolation: '',
    CpuShares: 0,
    Memory: 0,
    NanoCpus: 0,
    CgroupParent: '',
    BlkioWeight: 0,
    BlkioWeightDevice: [],
    BlkioDeviceReadBps: [],
    BlkioDeviceWriteBps: [],
    BlkioDeviceReadIOps: [],
    BlkioDeviceWriteIOps: [],
    CpuPeriod: 0,
    CpuQuota: 0,
    CpuRealtimePeriod: 0,
    CpuRealtimeRuntime: 0,
    CpusetCpus: '',
    CpusetMems: '',
    Devices: [],
    DeviceCgroupRules: null,
    DeviceRequests: null,
    MemoryReservation: 0,
    MemorySwap: 0,
    MemorySwappiness: -1,
    OomKillDisable: false,
    PidsLimit: 0,
    Ulimits: [],
    CpuCount: 0,
    CpuPercent: 0,
    IOMaximumIOps: 0,
    IOMaximumBandwidth: 0,
    MaskedPaths: null,
    ReadonlyPaths: null,
  },
  NetworkingConfig: {
    EndpointsConfig: {
      default: {
        IPAMConfig: null,
        Links: null,
        Aliases: null,
        MacAddress: '',
        DriverOpts: null,
        GwPriority: 0,
        NetworkID: '',
        EndpointID: '',
        Gateway: '',
        IPAddress: '',
        IPPrefixLen: 0,
        IPv6Gateway: '',
        GlobalIPv6Address: '',
        GlobalIPv6PrefixLen: 0,
        DNSNames: null,
      },
    },
  },
};

const withHc = (hc: Record<string, unknown>, top: Record<string, unknown> = {}): CreateBody => ({
  ...PLAIN_RUN,
  ...top,
  HostConfig: { ...(PLAIN_RUN.HostConfig as object), ...hc },
});

describe('create options tvm does not implement are refused, never ignored', () => {
  it("accepts everything the docker CLI sends by default, and the values that mean Docker's default", () => {
    expect(() => refuseUnsupported(PLAIN_RUN)).not.toThrow();
    expect(validateHostOptions(PLAIN_RUN, 'none')).toEqual({});
    expect(() =>
      refuseUnsupported(
        withHc({
          IpcMode: 'private',
          PidMode: 'private',
          UTSMode: '',
          CgroupnsMode: 'host',
          VolumeDriver: 'local',
          MemorySwappiness: -1,
          MaskedPaths: null,
        }),
      ),
    ).not.toThrow();
    expect(() =>
      refuseUnsupported(withHc({}, { Healthcheck: { Test: ['NONE'] }, ExposedPorts: { '80/tcp': {} }, NetworkDisabled: true })),
    ).not.toThrow();
    expect(() =>
      refuseUnsupported(
        withHc({
          Binds: ['/a:/b:ro,z', 'v:/c:rprivate'],
          Mounts: [
            { Type: 'bind', Source: '/a', Target: '/d', BindOptions: { Propagation: 'rprivate' } },
            {
              Type: 'volume',
              Source: 'v',
              Target: '/e',
              VolumeOptions: { NoCopy: true, Labels: { a: 'b' }, DriverConfig: { Name: 'local' } },
            },
          ],
        }),
      ),
    ).not.toThrow();
  });

  it.each([
    [{ CgroupParent: 'mygroup' }, '--cgroup-parent mygroup is not supported by tvm'],
    [{ IpcMode: 'host' }, '--ipc host is not supported by tvm'],
    [{ PidMode: 'host' }, '--pid host is not supported by tvm'],
    [{ PidMode: 'container:abc' }, '--pid container:abc'],
    [{ UTSMode: 'host' }, '--uts host'],
    [{ CgroupnsMode: 'private' }, '--cgroupns private'],
    [{ Links: ['a:b'] }, '--link'],
    [{ VolumeDriver: 'nfs' }, '--volume-driver nfs'],
    [{ Runtime: 'runsc' }, '--runtime runsc'],
    [{ BlkioWeight: 300 }, '--blkio-weight 300'],
    [{ BlkioDeviceReadBps: [{ Path: '/dev/sda', Rate: 1 }] }, '--device-read-bps'],
    [{ BlkioDeviceWriteIOps: [{ Path: '/dev/sda', Rate: 1 }] }, '--device-write-iops'],
    [{ CpuRealtimeRuntime: 1000 }, '--cpu-rt-runtime'],
    [{ CpusetMems: '0' }, '--cpuset-mems'],
    [{ DeviceCgroupRules: ['c 1:3 rwm'] }, '--device-cgroup-rule'],
    [{ DeviceRequests: [{ Count: -1 }] }, '--gpus'],
    [{ KernelMemory: 1 << 20 }, '--kernel-memory'],
    [{ MemorySwappiness: 10 }, '--memory-swappiness 10'],
    [{ CpuCount: 2 }, '--cpu-count'],
    [{ Cgroup: 'x' }, '--cgroup x'],
    [{ Binds: ['/a:/b:ro,rshared'] }, 'bind propagation "rshared" is not supported'],
    [
      { Mounts: [{ Type: 'bind', Source: '/a', Target: '/b', BindOptions: { Propagation: 'shared' } }] },
      '--mount target=/b: bind-propagation=shared',
    ],
    [{ Mounts: [{ Type: 'bind', Source: '/a', Target: '/b', BindOptions: { NonRecursive: true } }] }, 'bind-recursive=disabled'],
    [{ Mounts: [{ Type: 'bind', Source: '/a', Target: '/b', BindOptions: { CreateMountpoint: true } }] }, 'bind-create-src'],
    [{ Mounts: [{ Type: 'volume', Source: 'v', Target: '/b', VolumeOptions: { DriverConfig: { Name: 'nfs' } } }] }, 'volume-driver=nfs'],
    [{ Mounts: [{ Type: 'volume', Source: 'v', Target: '/b', VolumeOptions: { Subpath: 'x' } }] }, 'volume-subpath'],
    [{ Mounts: [{ Type: 'tmpfs', Target: '/b', TmpfsOptions: { Options: [['exec']] } }] }, 'tmpfs options'],
  ])('HostConfig %j', (hc, msg) => {
    expect(() => refuseUnsupported(withHc(hc))).toThrow(InvalidParameterError);
    expect(() => refuseUnsupported(withHc(hc))).toThrow(msg);
  });

  it.each([
    [{ MacAddress: '02:42:ac:11:00:02' }, '--mac-address'],
    [{ Healthcheck: { Test: ['CMD', 'true'] } }, '--health-cmd'],
    // --network-alias and --ip are the networks' to check (test/integration/network); these stay refused
    [{ NetworkingConfig: { EndpointsConfig: { db: { Links: ['a:b'] } } } }, '--link (network db)'],
    [{ NetworkingConfig: { EndpointsConfig: { db: { IPAMConfig: { IPv6Address: 'fd00::2' } } } } }, '--ip6 (network db)'],
  ])('Config %j', (top, msg) => {
    expect(() => refuseUnsupported(withHc({}, top))).toThrow(msg);
  });
});

describe('create warnings', () => {
  it("Docker's warning for --oom-kill-disable without a memory limit", () => {
    expect(createWarnings(PLAIN_RUN)).toEqual([]);
    expect(createWarnings(withHc({ OomKillDisable: true }))).toEqual([
      'OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.',
    ]);
    expect(createWarnings(withHc({ OomKillDisable: true, Memory: 64 << 20 }))).toEqual([]);
  });
});
