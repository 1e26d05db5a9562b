/** Docker's JSON views of a container record: inspect (`/containers/{id}/json`) and list (`ps`). */
import { NetworkManager } from '../network/manager.js';
import { portsJson } from '../network/ports.js';
import type { ContainerRecord } from '../runtime/records.js';
import { humanDuration } from './human-duration.js';
import { goMap } from './go-map.js';

// the CLI's tables use it too, from its own module (which keeps the network stack off the CLI's imports)
export { humanDuration };

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

function endpointJson(
  networkId: string,
  e?: { id: string; ip: string; mac: string },
  gateway = '',
  prefix = 0,
  extra: Record<string, unknown> = {},
) {
  return {
    IPAMConfig: null,
    Links: null,
    Aliases: null,
    MacAddress: e?.mac ?? '',
    DriverOpts: null,
    GwPriority: 0,
    NetworkID: networkId,
    EndpointID: e?.id ?? '',
    Gateway: e ? gateway : '',
    IPAddress: e?.ip ?? '',
    IPPrefixLen: e ? prefix : 0,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    DNSNames: null,
    ...extra,
  };
}

/** NetworkSettings.Networks: the pseudo network (none, host), or each bridge network with its endpoint while running. */
function networks(rec: ContainerRecord, net?: NetworkManager): Record<string, unknown> {
  // Docker shows no networks for a container in another's namespace
  if (rec.spec.network === 'container') return {};
  if (rec.spec.network !== 'bridge' || !net) {
    const name = rec.spec.network;
    return { [name]: endpointJson(net && name !== 'bridge' ? NetworkManager.pseudo(name).Id : name) };
  }
  const out: Record<string, unknown> = {};
  for (const { net: n, member: m } of net.networksOf(rec.id)) {
    const cfg = n.IPAM.Config[0]!;
    const user = n.Name !== 'bridge';
    out[n.Name] = endpointJson(n.Id, m.endpoint, cfg.Gateway, Number(cfg.Subnet.split('/')[1]), {
      ...(m.ipv4 && { IPAMConfig: { IPv4Address: m.ipv4 } }),
      ...(user && { Aliases: m.aliases.length > 0 ? m.aliases : null, DNSNames: [m.name, rec.id.slice(0, 12), ...m.aliases] }),
    });
  }
  return out;
}

/** The top-level (legacy) NetworkSettings fields: the default bridge's endpoint, as Docker fills them. */
function legacySettings(rec: ContainerRecord, net?: NetworkManager): Record<string, unknown> {
  const onBridge = net?.networksOf(rec.id).find((x) => x.net.Name === 'bridge');
  const e = onBridge?.member.endpoint;
  const cfg = onBridge?.net.IPAM.Config[0];
  return {
    EndpointID: e?.id ?? '',
    Gateway: e ? cfg!.Gateway : '',
    IPAddress: e?.ip ?? '',
    IPPrefixLen: e ? Number(cfg!.Subnet.split('/')[1]) : 0,
    MacAddress: e?.mac ?? '',
  };
}

function portsList(rec: ContainerRecord, net?: NetworkManager): Record<string, unknown>[] {
  const mapped = net?.publishedPorts(rec.id) ?? [];
  const out: Record<string, unknown>[] = mapped.map((p) => ({
    IP: p.hostIp || '0.0.0.0',
    PrivatePort: p.containerPort,
    PublicPort: p.hostPort,
    Type: p.proto,
  }));
  for (const k of Object.keys((rec.config.ExposedPorts as Record<string, unknown> | undefined) ?? {})) {
    const [port, proto = 'tcp'] = k.split('/');
    if (!mapped.some((p) => String(p.containerPort) === port && p.proto === proto)) out.push({ PrivatePort: Number(port), Type: proto });
  }
  return out;
}

export function inspectJson(rec: ContainerRecord, execIds: string[], net?: NetworkManager): Record<string, unknown> {
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
    Config: { ...rec.config, Labels: goMap(rec.config.Labels as Record<string, string> | null | undefined) },
    NetworkSettings: {
      Bridge: '',
      SandboxID: rec.spec.netns && rec.state.pid ? rec.id : '',
      SandboxKey: rec.spec.netns && rec.state.pid ? rec.spec.netns.path : '',
      Ports:
        rec.spec.network === 'bridge'
          ? portsJson(rec.config.ExposedPorts as Record<string, unknown> | undefined, net?.publishedPorts(rec.id) ?? [])
          : {},
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPv6Gateway: '',
      ...legacySettings(rec, net),
      Networks: networks(rec, net),
    },
  };
}

export function listJson(rec: ContainerRecord, sizes?: { rw: number; rootFs: number }, net?: NetworkManager): Record<string, unknown> {
  const argv = [rec.path, ...rec.args].map((a) => (/\s/.test(a) ? `'${a}'` : a));
  return {
    Id: rec.id,
    Names: [rec.name],
    Image: rec.image,
    ImageID: rec.imageId,
    Command: argv.join(' '),
    Created: Math.floor(Date.parse(rec.created) / 1000),
    Ports: portsList(rec, net),
    Labels: goMap((rec.config.Labels as Record<string, string> | null | undefined) ?? {}),
    State: rec.state.status,
    Status: statusText(rec),
    HostConfig: { NetworkMode: rec.hostConfig.NetworkMode ?? rec.spec.network },
    NetworkSettings: { Networks: networks(rec, net) },
    Mounts: mountsJson(rec).map((m) => ({ ...m })),
    ...(sizes && { SizeRw: sizes.rw, SizeRootFs: sizes.rootFs }),
  };
}
