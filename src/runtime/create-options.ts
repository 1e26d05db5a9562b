/**
 * The container-create options of Docker's HostConfig that are about the workload's security
 * and process environment: parsed and validated with Docker's rules before anything is created.
 */
import { InvalidParameterError } from '../errors.js';
import type { CreateBody } from './container-config.js';
import { validateProcessOptions } from './process-options.js';
import { parseSecurityOpt } from './security-opt.js';
import type { ProcessOptions, SecuritySpec } from './types.js';

export interface HostOptions {
  security?: SecuritySpec;
  processOptions?: ProcessOptions;
}

/** Docker's create warnings for options that are valid but probably not what was meant. */
export function createWarnings(body: CreateBody): string[] {
  const hc = body.HostConfig ?? {};
  const out: string[] = [];
  if (hc.OomKillDisable === true && !(hc.Memory && hc.Memory > 0)) {
    out.push(
      'OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.',
    );
  }
  return out;
}

export function validateHostOptions(body: CreateBody, network: 'none' | 'host' | 'bridge' | 'container'): HostOptions {
  refuseUnsupported(body);
  const hc = body.HostConfig ?? {};
  const out: HostOptions = {};
  const security = parseSecurityOpt(hc.SecurityOpt as string[] | null | undefined);
  if (security.seccomp !== 'default' || security.noNewPrivileges) out.security = security;
  // a bridge-networked container has its own network namespace, as with none
  const processOptions = validateProcessOptions(hc, network === 'host' ? 'host' : 'none', body.Domainname);
  if (Object.keys(processOptions).length > 0) out.processOptions = processOptions;
  return out;
}

/**
 * Every field of Docker API v1.47 ContainerCreate (Config, HostConfig, NetworkingConfig), and
 * what tvm does with it. A client always sends many of them with empty values (the docker CLI
 * sends Dns: [], MemorySwappiness: -1, ConsoleSize: [0, 0], ...): only a value other than
 * Docker's "unset" is refused, with a 400 naming the option.
 *
 * honoured, validated elsewhere (container-config.ts, security-opt.ts, process-options.ts,
 * manager.ts): Hostname Domainname User Attach* Tty OpenStdin StdinOnce Env Cmd Entrypoint Image Volumes
 * WorkingDir Labels StopSignal StopTimeout | Binds Mounts Tmpfs VolumesFrom LogConfig NetworkMode
 * PortBindings PublishAllPorts RestartPolicy AutoRemove CapAdd CapDrop Privileged ReadonlyRootfs
 * SecurityOpt StorageOpt Isolation UsernsMode Memory MemorySwap MemoryReservation NanoCpus
 * CpuShares CpuQuota CpuPeriod CpusetCpus PidsLimit Ulimits Sysctls ShmSize Init GroupAdd
 * OomScoreAdj OomKillDisable Devices Dns DnsSearch DnsOptions ExtraHosts MaskedPaths ReadonlyPaths.
 *
 * Mounts: BindOptions (propagation other than rprivate, non-recursive, create-src),
 * VolumeOptions (a driver, driver options, subpath) and TmpfsOptions.Options are refused; so is
 * -v propagation shared/slave. VolumeOptions.NoCopy turns the copy-up off, as with Docker;
 * VolumeOptions.Labels are metadata; Consistency is for macOS; the z/Z relabel modes need SELinux,
 * which is not enabled, so there is nothing to relabel.
 *
 * ignored because harmless (no effect on the workload in Docker either, or metadata Docker
 * only stores): ExposedPorts (EXPOSE metadata; -P publishes them), ArgsEscaped (Windows), OnBuild and Shell (build
 * metadata), NetworkDisabled (the docker CLI sends it only with --network none), ContainerIDFile (the
 * CLI writes that file itself), ConsoleSize (the client resizes the tty right after start),
 * Annotations (stored, shown by inspect), VolumeDriver "local" (the only driver).
 */
interface Rule {
  /** where the field lives in the create body */
  at: 'Config' | 'HostConfig';
  field: string;
  /** how a user asks for it */
  option: string;
  /** is this value Docker's "unset"? */
  unset: (v: unknown) => boolean;
  why?: string;
}

const empty = (v: unknown): boolean =>
  v === undefined ||
  v === null ||
  v === '' ||
  v === 0 ||
  v === false ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);
const oneOf =
  (...ok: unknown[]) =>
  (v: unknown) =>
    empty(v) || ok.includes(v);

const REFUSED: Rule[] = [
  { at: 'Config', field: 'MacAddress', option: '--mac-address', unset: empty, why: "a container's MAC address follows its IP address" },
  {
    at: 'Config',
    field: 'Healthcheck',
    option: '--health-cmd',
    unset: (v) => empty(v) || empty((v as { Test?: unknown }).Test) || JSON.stringify((v as { Test?: unknown }).Test) === '["NONE"]',
  },
  { at: 'HostConfig', field: 'VolumeDriver', option: '--volume-driver', unset: oneOf('local'), why: 'only the local driver exists' },
  {
    at: 'HostConfig',
    field: 'CgroupnsMode',
    option: '--cgroupns',
    unset: oneOf('host'),
    why: 'containers share the host cgroup namespace',
  },
  {
    at: 'HostConfig',
    field: 'IpcMode',
    option: '--ipc',
    unset: oneOf('private', 'shareable'),
    why: 'every container has its own IPC namespace',
  },
  { at: 'HostConfig', field: 'Cgroup', option: '--cgroup', unset: empty },
  { at: 'HostConfig', field: 'Links', option: '--link', unset: empty },
  { at: 'HostConfig', field: 'PidMode', option: '--pid', unset: oneOf('private'), why: 'every container has its own PID namespace' },
  { at: 'HostConfig', field: 'UTSMode', option: '--uts', unset: oneOf('private'), why: 'every container has its own UTS namespace' },
  { at: 'HostConfig', field: 'Runtime', option: '--runtime', unset: empty, why: 'choose with --isolation' },
  { at: 'HostConfig', field: 'CgroupParent', option: '--cgroup-parent', unset: empty },
  { at: 'HostConfig', field: 'BlkioWeight', option: '--blkio-weight', unset: empty },
  { at: 'HostConfig', field: 'BlkioWeightDevice', option: '--blkio-weight-device', unset: empty },
  { at: 'HostConfig', field: 'BlkioDeviceReadBps', option: '--device-read-bps', unset: empty },
  { at: 'HostConfig', field: 'BlkioDeviceWriteBps', option: '--device-write-bps', unset: empty },
  { at: 'HostConfig', field: 'BlkioDeviceReadIOps', option: '--device-read-iops', unset: empty },
  { at: 'HostConfig', field: 'BlkioDeviceWriteIOps', option: '--device-write-iops', unset: empty },
  { at: 'HostConfig', field: 'CpuRealtimePeriod', option: '--cpu-rt-period', unset: empty },
  { at: 'HostConfig', field: 'CpuRealtimeRuntime', option: '--cpu-rt-runtime', unset: empty },
  { at: 'HostConfig', field: 'CpusetMems', option: '--cpuset-mems', unset: empty },
  { at: 'HostConfig', field: 'DeviceCgroupRules', option: '--device-cgroup-rule', unset: empty },
  { at: 'HostConfig', field: 'DeviceRequests', option: '--gpus', unset: empty },
  { at: 'HostConfig', field: 'KernelMemory', option: '--kernel-memory', unset: empty },
  { at: 'HostConfig', field: 'KernelMemoryTCP', option: '--kernel-memory-tcp', unset: empty },
  { at: 'HostConfig', field: 'MemorySwappiness', option: '--memory-swappiness', unset: oneOf(-1) },
  { at: 'HostConfig', field: 'CpuCount', option: '--cpu-count', unset: empty, why: 'a Windows option' },
  { at: 'HostConfig', field: 'CpuPercent', option: '--cpu-percent', unset: empty, why: 'a Windows option' },
  { at: 'HostConfig', field: 'IOMaximumIOps', option: '--io-maxiops', unset: empty, why: 'a Windows option' },
  { at: 'HostConfig', field: 'IOMaximumBandwidth', option: '--io-maxbandwidth', unset: empty, why: 'a Windows option' },
];

/** What an endpoint of NetworkingConfig may not carry (Aliases and IPAMConfig.IPv4Address are the networks' to check). */
const ENDPOINT_OPTIONS: [string, string][] = [
  ['Links', '--link'],
  ['MacAddress', '--mac-address'],
  ['DriverOpts', '--network driver options'],
  ['GlobalIPv6Address', '--ip6'],
];

/** Mount propagation other than Docker's default (rprivate) is refused: every tvm mount is private. */
const PROPAGATION = new Set(['shared', 'rshared', 'slave', 'rslave']);

function refuseMountOptions(hc: Record<string, unknown>): void {
  for (const b of (hc.Binds as unknown[] | null | undefined) ?? []) {
    if (typeof b !== 'string') continue;
    const mode = b.split(':')[2] ?? '';
    for (const m of mode.split(',')) {
      if (PROPAGATION.has(m))
        throw new InvalidParameterError(`-v ${b}: bind propagation "${m}" is not supported by tvm (mounts are rprivate)`);
    }
  }
  for (const m of (hc.Mounts as Record<string, unknown>[] | null | undefined) ?? []) {
    const bo = (m?.BindOptions ?? {}) as Record<string, unknown>;
    const vo = (m?.VolumeOptions ?? {}) as Record<string, unknown>;
    const to = (m?.TmpfsOptions ?? {}) as Record<string, unknown>;
    const target = typeof m?.Target === 'string' ? m.Target : '';
    const refuse = (what: string): never => {
      throw new InvalidParameterError(`--mount target=${target}: ${what} is not supported by tvm`);
    };
    if (typeof bo.Propagation === 'string' && PROPAGATION.has(bo.Propagation)) refuse(`bind-propagation=${bo.Propagation}`);
    if (bo.NonRecursive === true) refuse('bind-recursive=disabled');
    if (bo.ReadOnlyNonRecursive === true || bo.ReadOnlyForceRecursive === true) refuse('bind-recursive=writable/readonly');
    if (bo.CreateMountpoint === true) refuse('bind-create-src');
    const driver = (vo.DriverConfig as { Name?: unknown } | null | undefined)?.Name;
    if (typeof driver === 'string' && driver !== '' && driver !== 'local') refuse(`volume-driver=${driver}`);
    if (!empty((vo.DriverConfig as { Options?: unknown } | null | undefined)?.Options)) refuse('volume-opt');
    if (typeof vo.Subpath === 'string' && vo.Subpath !== '') refuse('volume-subpath');
    if (!empty(to.Options)) refuse('tmpfs options beyond size and mode');
  }
}

export function refuseUnsupported(body: CreateBody): void {
  const hc = (body.HostConfig ?? {}) as Record<string, unknown>;
  refuseMountOptions(hc);
  for (const r of REFUSED) {
    const v = r.at === 'Config' ? (body as Record<string, unknown>)[r.field] : hc[r.field];
    if (!r.unset(v)) {
      const shown = typeof v === 'string' || typeof v === 'number' ? ` ${v}` : '';
      throw new InvalidParameterError(`${r.option}${shown} is not supported by tvm${r.why ? ` (${r.why})` : ''}`);
    }
  }
  const endpoints =
    ((body.NetworkingConfig ?? {}) as { EndpointsConfig?: Record<string, Record<string, unknown> | null> }).EndpointsConfig ?? {};
  for (const [net, ep] of Object.entries(endpoints)) {
    for (const [field, option] of ENDPOINT_OPTIONS) {
      if (!empty(ep?.[field])) throw new InvalidParameterError(`${option} (network ${net}) is not supported by tvm`);
    }
    const ipam = (ep?.IPAMConfig ?? {}) as Record<string, unknown>;
    if (!empty(ipam.IPv6Address)) throw new InvalidParameterError(`--ip6 (network ${net}) is not supported by tvm: networks are IPv4 only`);
    if (!empty(ipam.LinkLocalIPs)) throw new InvalidParameterError(`--link-local-ip (network ${net}) is not supported by tvm`);
  }
}
