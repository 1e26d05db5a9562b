/** Docker's JSON views of a container record: inspect (`/containers/{id}/json`) and list (`ps`). */
import type { ContainerRecord } from '../runtime/records.js';

/** Docker's human durations ("Less than a second", "5 seconds", "About a minute", "3 hours"). */
export function humanDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.round(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.round(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.round(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.round(h / 24 / 30)} months`;
  return `${Math.round(h / 24 / 365)} years`;
}

export function statusText(rec: ContainerRecord, now = Date.now()): string {
  const st = rec.state;
  switch (st.status) {
    case 'running':
      return `Up ${humanDuration(now - Date.parse(st.startedAt))}`;
    case 'paused':
      return `Up ${humanDuration(now - Date.parse(st.startedAt))} (Paused)`;
    case 'restarting':
      return `Restarting (${st.exitCode}) ${humanDuration(now - Date.parse(st.finishedAt))} ago`;
    case 'removing':
      return 'Removal In Progress';
    case 'dead':
      return 'Dead';
    case 'created':
      return 'Created';
    case 'exited':
      return `Exited (${st.exitCode}) ${humanDuration(now - Date.parse(st.finishedAt))} ago`;
  }
}

function mountsJson(rec: ContainerRecord) {
  return rec.mounts.map((m) => ({
    Type: m.Type,
    ...(m.Name !== undefined && { Name: m.Name }),
    Source: m.Source,
    Destination: m.Destination,
    ...(m.Driver !== undefined && { Driver: m.Driver }),
    Mode: m.Mode,
    RW: m.RW,
    Propagation: m.Propagation,
  }));
}

function networks(rec: ContainerRecord) {
  const name = rec.spec.network;
  return {
    [name]: {
      IPAMConfig: null, Links: null, Aliases: null, MacAddress: '', DriverOpts: null, GwPriority: 0,
      NetworkID: name, EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '',
      GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, DNSNames: null,
    },
  };
}

export function inspectJson(rec: ContainerRecord, execIds: string[]): Record<string, unknown> {
  const st = rec.state;
  return {
    Id: rec.id,
    Created: rec.created,
    Path: rec.path,
    Args: rec.args,
    State: {
      Status: st.status,
      // Docker: a container waiting to be restarted by its policy counts as running
      Running: st.status === 'running' || st.status === 'paused' || st.status === 'restarting',
      Paused: st.status === 'paused',
      Restarting: st.status === 'restarting',
      OOMKilled: st.oomKilled,
      Dead: st.status === 'dead',
      Pid: st.pid,
      ExitCode: st.exitCode,
      Error: st.error,
      StartedAt: st.startedAt,
      FinishedAt: st.finishedAt,
    },
    Image: rec.imageId,
    ResolvConfPath: '',
    HostnamePath: '',
    HostsPath: '',
    LogPath: rec.spec.logPath,
    Name: rec.name,
    RestartCount: rec.restartCount,
    Driver: rec.spec.isolation === 'vm' ? 'qcow2' : 'overlay2',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: execIds.length > 0 ? execIds : null,
    HostConfig: rec.hostConfig,
    GraphDriver: { Name: rec.spec.isolation === 'vm' ? 'qcow2' : 'overlay2', Data: null },
    Mounts: mountsJson(rec),
    Config: rec.config,
    NetworkSettings: {
      Bridge: '', SandboxID: '', SandboxKey: '', Ports: {}, HairpinMode: false, LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0, SecondaryIPAddresses: null, SecondaryIPv6Addresses: null, EndpointID: '',
      Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, IPAddress: '', IPPrefixLen: 0,
      IPv6Gateway: '', MacAddress: '', Networks: networks(rec),
    },
  };
}

export function listJson(rec: ContainerRecord, sizes?: { rw: number; rootFs: number }): Record<string, unknown> {
  const argv = [rec.path, ...rec.args].map((a) => (/\s/.test(a) ? `'${a}'` : a));
  return {
    Id: rec.id,
    Names: [rec.name],
    Image: rec.image,
    ImageID: rec.imageId,
    Command: argv.join(' '),
    Created: Math.floor(Date.parse(rec.created) / 1000),
    Ports: [],
    Labels: rec.config.Labels ?? {},
    State: rec.state.status,
    Status: statusText(rec),
    HostConfig: { NetworkMode: rec.spec.network },
    NetworkSettings: { Networks: networks(rec) },
    Mounts: mountsJson(rec).map((m) => ({ ...m })),
    ...(sizes && { SizeRw: sizes.rw, SizeRootFs: sizes.rootFs }),
  };
}
