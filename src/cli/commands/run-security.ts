/**
 * `tvm run` flags for Docker's security and process options (and --dns*, --add-host), turned into HostConfig fields the
 * way the docker CLI does it (seccomp=<file> sends the file's compact JSON; --ulimit
 * NAME=SOFT[:HARD]; --device SRC[:DST][:MODE]; ...). The daemon validates the values.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { collect } from '../options.js';
import { parseBytes, parseIntFlag } from '../units.js';

export interface SecurityFlags {
  securityOpt: string[];
  ulimit: string[];
  sysctl: string[];
  shmSize?: string;
  init?: boolean;
  groupAdd: string[];
  oomScoreAdj?: string;
  device: string[];
  memoryReservation?: string;
  oomKillDisable?: boolean;
  privileged?: boolean;
  capAdd: string[];
  capDrop: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOption: string[];
  addHost: string[];
}

export function addSecurityFlags(cmd: Command): Command {
  return cmd
    .option(
      '--security-opt <opt>',
      'security option: seccomp=<profile.json>|unconfined, no-new-privileges, apparmor=unconfined, label=disable (repeatable)',
      collect,
      [],
    )
    .option('--ulimit <name=soft[:hard]>', 'resource limit, e.g. nofile=1024:2048 (repeatable)', collect, [])
    .option('--sysctl <k=v>', 'namespaced kernel parameter, e.g. net.ipv4.ip_forward=1 (repeatable)', collect, [])
    .option('--shm-size <bytes>', 'size of /dev/shm (default 64m)')
    .option('--init', 'run an init (docker-init) as PID 1 that forwards signals and reaps zombies')
    .option('--group-add <group>', 'additional group (name or id; repeatable)', collect, [])
    .option('--oom-score-adj <n>', 'OOM score adjustment (-1000..1000)')
    .option('--device <src[:dst][:rwm]>', 'add a host device (repeatable)', collect, [])
    .option('--memory-reservation <bytes>', 'soft memory limit')
    .option('--oom-kill-disable', 'disable the OOM killer (cgroup v1)')
    .option('--privileged', 'all capabilities, no seccomp filter, devices allowed')
    .option('--cap-add <cap>', 'add a capability (repeatable)', collect, [])
    .option('--cap-drop <cap>', 'drop a capability (repeatable)', collect, [])
    .option('--dns <ip>', "nameserver for the container's resolv.conf (repeatable)", collect, [])
    .option('--dns-search <domain>', 'search domain (repeatable)', collect, [])
    .option('--dns-option <opt>', 'resolver option (repeatable)', collect, [])
    .option('--add-host <host:ip>', "line for the container's /etc/hosts (repeatable)", collect, []);
}

/** docker CLI: seccomp=<path> (other than unconfined/builtin) carries the file's compact JSON. */
export function parseSecurityOptFlag(opt: string): string {
  const m = /^seccomp[=:](.*)$/s.exec(opt);
  if (!m || m[1] === 'unconfined' || m[1] === 'builtin') return opt;
  let text: string;
  try {
    text = readFileSync(m[1]!, 'utf8');
  } catch (e) {
    throw new Error(`opening seccomp profile (${m[1]}) failed: ${(e as Error).message}`);
  }
  try {
    return `seccomp=${JSON.stringify(JSON.parse(text))}`;
  } catch (e) {
    throw new Error(`compacting json for seccomp profile (${m[1]}) failed: ${(e as Error).message}`);
  }
}

function limit(v: string, flag: string): number {
  if (v === 'unlimited' || v === '-1') return -1;
  if (!/^\d+$/.test(v)) throw new Error(`invalid ${flag} value: ${v}`);
  return Number(v);
}

/** go-units ParseUlimit: NAME=SOFT[:HARD], "unlimited" or -1 for no limit. */
export function parseUlimitFlag(s: string): { Name: string; Soft: number; Hard: number } {
  const eq = s.indexOf('=');
  if (eq <= 0) throw new Error(`invalid ulimit argument: ${s}`);
  const [soft, hard, extra] = s.slice(eq + 1).split(':');
  if (extra !== undefined || soft === undefined || soft === '')
    throw new Error(`too many limit value arguments - ${s.slice(eq + 1)}, can only have up to two, \`soft[:hard]\``);
  const Soft = limit(soft, '--ulimit');
  return { Name: s.slice(0, eq), Soft, Hard: hard === undefined ? Soft : limit(hard, '--ulimit') };
}

const DEVICE_MODE = /^[rwm]{1,3}$/;

/** docker's parseDevice: SRC, SRC:MODE, SRC:DST, SRC:DST:MODE. */
export function parseDeviceFlag(s: string): { PathOnHost: string; PathInContainer: string; CgroupPermissions: string } {
  const parts = s.split(':');
  let src = parts[0] ?? '';
  let dst = '';
  let mode = 'rwm';
  if (parts.length === 2) {
    if (DEVICE_MODE.test(parts[1]!)) mode = parts[1]!;
    else dst = parts[1]!;
  } else if (parts.length === 3) {
    dst = parts[1]!;
    mode = parts[2]!;
  } else if (parts.length !== 1) {
    throw new Error(`invalid device specification: ${s}`);
  }
  if (src === '') throw new Error(`invalid device specification: ${s}`);
  if (!src.startsWith('/')) src = `/dev/${src}`;
  return { PathOnHost: src, PathInContainer: dst === '' ? src : dst, CgroupPermissions: mode };
}

export function securityHostConfig(o: SecurityFlags): Record<string, unknown> {
  const kv = (s: string) => {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new Error(`invalid value "${s}": expected key=value`);
    return [s.slice(0, eq), s.slice(eq + 1)] as const;
  };
  return {
    ...(o.securityOpt.length > 0 && { SecurityOpt: o.securityOpt.map(parseSecurityOptFlag) }),
    ...(o.ulimit.length > 0 && { Ulimits: o.ulimit.map(parseUlimitFlag) }),
    ...(o.sysctl.length > 0 && { Sysctls: Object.fromEntries(o.sysctl.map(kv)) }),
    ...(o.shmSize !== undefined && { ShmSize: parseBytes(o.shmSize) }),
    ...(o.init && { Init: true }),
    ...(o.groupAdd.length > 0 && { GroupAdd: o.groupAdd }),
    ...(o.oomScoreAdj !== undefined && { OomScoreAdj: parseIntFlag(o.oomScoreAdj, '--oom-score-adj') }),
    ...(o.device.length > 0 && { Devices: o.device.map(parseDeviceFlag) }),
    ...(o.memoryReservation !== undefined && { MemoryReservation: parseBytes(o.memoryReservation) }),
    ...(o.oomKillDisable && { OomKillDisable: true }),
    ...(o.privileged && { Privileged: true }),
    ...(o.capAdd.length > 0 && { CapAdd: o.capAdd }),
    ...(o.capDrop.length > 0 && { CapDrop: o.capDrop }),
    ...(o.dns.length > 0 && { Dns: o.dns }),
    ...(o.dnsSearch.length > 0 && { DnsSearch: o.dnsSearch }),
    ...(o.dnsOption.length > 0 && { DnsOptions: o.dnsOption }),
    ...(o.addHost.length > 0 && { ExtraHosts: o.addHost }),
  };
}
