/**
 * Docker's HostConfig process options (--ulimit, --sysctl, --shm-size, --init, --group-add,
 * --oom-score-adj, --device, --oom-kill-disable, --dns*, --add-host, --domainname): validated with Docker's
 * (and runc's) rules and messages, then turned into the agent spec's fields.
 */
import { statSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { InvalidParameterError } from '../errors.js';
import type { HostConfigBody } from './container-config.js';
import type { DeviceMapping, ProcessOptions, Ulimit } from './types.js';

/** go-units' ulimit names (docker run --ulimit NAME=SOFT[:HARD]) */
export const ULIMIT_NAMES = [
  'core',
  'cpu',
  'data',
  'fsize',
  'locks',
  'memlock',
  'msgqueue',
  'nice',
  'nofile',
  'nproc',
  'rss',
  'rtprio',
  'rttime',
  'sigpending',
  'stack',
] as const;

/** Docker's /dev/shm size when ShmSize is 0 or unset */
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;
const MIN_MEMORY = 6 * 1024 * 1024;

/** sysctls that live in the IPC namespace (runc's list) */
const IPC_SYSCTLS = new Set([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);

const bad = (msg: string): never => {
  throw new InvalidParameterError(msg);
};

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

export function validateUlimits(list: unknown): Ulimit[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) return bad('Ulimits: expected an array');
  return list.map((u: unknown): Ulimit => {
    const o = (u ?? {}) as { Name?: unknown; Soft?: unknown; Hard?: unknown };
    const name = o.Name;
    if (typeof name !== 'string' || !(ULIMIT_NAMES as readonly string[]).includes(name)) bad(`invalid ulimit type: ${String(name)}`);
    const soft = o.Soft ?? 0;
    const hard = o.Hard ?? 0;
    if (!isInt(soft) || !isInt(hard) || soft < -1 || hard < -1)
      return bad(`invalid ulimit ${String(name)}: soft and hard must be integers >= -1 (-1: unlimited)`);
    // -1 is unlimited: the largest value
    const big = (v: number) => (v === -1 ? Infinity : v);
    if (big(soft) > big(hard)) bad(`ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
    return { name: name as string, soft, hard };
  });
}

/**
 * runc's rule: only sysctls of a namespace the container has its own copy of. tvm containers
 * always get their own IPC and UTS namespaces; the network one only with --network none.
 */
export function validateSysctls(sysctls: unknown, network: 'none' | 'host'): Record<string, string> {
  if (sysctls === undefined || sysctls === null) return {};
  if (typeof sysctls !== 'object' || Array.isArray(sysctls)) return bad('Sysctls: expected an object of strings');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(sysctls as Record<string, unknown>)) {
    if (typeof v !== 'string') bad(`sysctl "${k}": value must be a string`);
    const key = k.replace(/\//g, '.');
    if (!/^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$/.test(key)) bad(`sysctl "${k}" is not a valid sysctl name`);
    if (key === 'kernel.hostname') bad(`sysctl "${k}" is not allowed as it conflicts with the OCI "hostname" field (use --hostname)`);
    if (key === 'kernel.domainname') bad(`sysctl "${k}" is not allowed as it conflicts with the OCI "domainname" field (use --domainname)`);
    if (IPC_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) {
      out[key] = v as string;
    } else if (key.startsWith('net.')) {
      if (network === 'host') bad(`sysctl "${k}" not allowed in host network namespace`);
      out[key] = v as string;
    } else {
      bad(`sysctl "${k}" is not in a separate kernel namespace`);
    }
  }
  return out;
}

function validateDevices(list: unknown): DeviceMapping[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) return bad('Devices: expected an array');
  return list.map((d: unknown): DeviceMapping => {
    const o = (d ?? {}) as { PathOnHost?: unknown; PathInContainer?: unknown; CgroupPermissions?: unknown };
    const host = o.PathOnHost;
    if (typeof host !== 'string' || !path.isAbsolute(host)) return bad(`invalid device path on host: ${JSON.stringify(host)}`);
    const inCtr = typeof o.PathInContainer === 'string' && o.PathInContainer !== '' ? o.PathInContainer : host;
    if (!path.isAbsolute(inCtr) || inCtr.split('/').includes('..')) bad(`invalid device path in container: ${JSON.stringify(inCtr)}`);
    const perms = typeof o.CgroupPermissions === 'string' && o.CgroupPermissions !== '' ? o.CgroupPermissions : 'rwm';
    if (perms.length > 3 || !/^[rwm]+$/.test(perms) || new Set(perms).size !== perms.length) bad(`${host} invalid device mode: ${perms}`);
    let st;
    try {
      st = statSync(host);
    } catch (e) {
      return bad(
        `error gathering device information while adding custom device "${host}": ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`,
      );
    }
    if (st.isDirectory()) bad(`--device ${host}: a directory of devices is not supported by tvm; name each device`);
    if (!st.isCharacterDevice() && !st.isBlockDevice())
      bad(`error gathering device information while adding custom device "${host}": not a device node`);
    return { pathOnHost: host, pathInContainer: path.posix.normalize(inCtr), permissions: perms };
  });
}

const strList = (v: unknown, what: string): string[] | undefined => {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x === '' || /[\s\n]/.test(x)))
    return bad(`${what}: expected a list of words`);
  return v.length > 0 ? (v as string[]) : undefined;
};

/** --dns, --dns-search, --dns-option (Docker: nameservers must be IP addresses). */
export function validateDns(hc: HostConfigBody): ProcessOptions['dns'] {
  const nameservers = strList(hc.Dns, 'Dns');
  for (const n of nameservers ?? []) if (!isIP(n)) bad(`${n} is not an ip address`);
  const search = strList(hc.DnsSearch, 'DnsSearch');
  for (const d of search ?? []) if (d !== '.' && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,253})$/.test(d)) bad(`${d} is not a valid domain`);
  const options = strList(hc.DnsOptions, 'DnsOptions');
  if (!nameservers && !search && !options) return undefined;
  // `--dns-search .` means: no search list
  return { ...(nameservers && { nameservers }), ...(search && { search: search.filter((d) => d !== '.') }), ...(options && { options }) };
}

/** --add-host NAME:IP (or NAME=IP); Docker's messages. */
export function validateExtraHosts(list: unknown): { name: string; ip: string }[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) return bad('ExtraHosts: expected a list of "host:ip"');
  return list.map((e: unknown) => {
    if (typeof e !== 'string') return bad('ExtraHosts: expected a list of "host:ip"');
    const m = /^([^:=\s]+)[:=](.+)$/.exec(e);
    if (!m) return bad(`bad format for add-host: "${e}"`);
    const ip = m[2]!.replace(/^\[(.*)\]$/, '$1');
    // the default bridge's gateway, resolved by the container manager
    if (ip === 'host-gateway') return { name: m[1]!, ip };
    if (!isIP(ip)) bad(`invalid IP address in add-host: "${m[2]}"`);
    return { name: m[1]!, ip };
  });
}

/**
 * --memory-reservation, Docker's checks. The value belongs to Resources (the cgroup's soft
 * limit, which `docker update` changes too): validateResources records it there.
 */
export function validateMemoryReservation(hc: HostConfigBody): number | undefined {
  const resv = hc.MemoryReservation ?? 0;
  if (!isInt(resv) || resv < 0) return bad('invalid memory reservation: must be a positive number');
  if (resv === 0) return undefined;
  if (resv < MIN_MEMORY) bad('Minimum memory reservation allowed is 6MB');
  const mem = hc.Memory ?? 0;
  if (mem > 0 && mem < resv) bad('Minimum memory limit can not be less than memory reservation limit, see usage');
  return resv;
}

export function validateProcessOptions(hc: HostConfigBody, network: 'none' | 'host', domainname?: string): ProcessOptions {
  const out: ProcessOptions = {};
  const dns = validateDns(hc);
  if (dns) out.dns = dns;
  const extraHosts = validateExtraHosts(hc.ExtraHosts);
  if (extraHosts.length > 0) out.extraHosts = extraHosts;
  if (domainname !== undefined && domainname !== '') {
    if (domainname.length > 64 || !/^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(domainname))
      bad(`invalid domainname format: ${JSON.stringify(domainname)}`);
    out.domainname = domainname;
  }
  const ulimits = validateUlimits(hc.Ulimits);
  if (ulimits.length > 0) out.ulimits = ulimits;
  const sysctls = validateSysctls(hc.Sysctls, network);
  if (Object.keys(sysctls).length > 0) out.sysctls = sysctls;
  const shm = hc.ShmSize ?? 0;
  if (!isInt(shm)) bad('ShmSize: expected an integer');
  if ((shm as number) < 0) bad('SHM size can not be less than 0');
  if ((shm as number) > 0) out.shmSize = shm as number;
  if (hc.Init === true) out.init = true;
  const groups = hc.GroupAdd ?? [];
  if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string' || g === '' || g.includes(':') || g.includes('\n')))
    bad('GroupAdd: expected group names or ids');
  if ((groups as string[]).length > 0) out.groupAdd = groups as string[];
  const adj = hc.OomScoreAdj ?? 0;
  if (!isInt(adj) || adj < -1000 || adj > 1000)
    bad(`Invalid value ${typeof adj === 'number' ? adj : JSON.stringify(adj)}, range for oom score adj is [-1000, 1000]`);
  if (adj !== 0) out.oomScoreAdj = adj as number;
  const devices = validateDevices(hc.Devices);
  if (devices.length > 0) out.devices = devices;
  if (hc.OomKillDisable === true) out.oomKillDisable = true;
  // given lists replace Docker's masked and read-only /proc and /sys paths; the docker CLI sends
  // both empty for --security-opt systempaths=unconfined
  for (const [field, key] of [
    ['MaskedPaths', 'maskedPaths'],
    ['ReadonlyPaths', 'readonlyPaths'],
  ] as const) {
    const v = hc[field];
    if (v === undefined || v === null) continue;
    if (
      !Array.isArray(v) ||
      v.some((p) => typeof p !== 'string' || !path.posix.isAbsolute(p) || p.split('/').includes('..') || p.includes('\0'))
    ) {
      bad(`${field}: expected a list of absolute paths`);
    }
    out[key] = v as string[];
  }
  return out;
}

/** The agent spec's fields for these options. */
export function agentProcessOptions(o: ProcessOptions | undefined): Record<string, unknown> {
  if (!o) return {};
  // --domainname lives in the UTS namespace: the agent writes it like a sysctl
  const sysctls = { ...(o.sysctls ?? {}), ...(o.domainname && { 'kernel.domainname': o.domainname }) };
  return {
    ...(o.ulimits && { ulimits: o.ulimits.map((u) => ({ name: u.name, soft: u.soft, hard: u.hard })) }),
    ...(Object.keys(sysctls).length > 0 && { sysctls }),
    ...(o.shmSize && { shmSize: o.shmSize }),
    ...(o.init && { init: true }),
    ...(o.groupAdd && { groupAdd: o.groupAdd }),
    ...(o.oomScoreAdj !== undefined && { oomScoreAdj: o.oomScoreAdj }),
    ...(o.devices && {
      devices: o.devices.map((d) => ({ path: d.pathOnHost, containerPath: d.pathInContainer, permissions: d.permissions })),
    }),
    ...(o.oomKillDisable && { oomKillDisable: true }),
    ...(o.maskedPaths && { maskedPaths: o.maskedPaths }),
    ...(o.readonlyPaths && { readonlyPaths: o.readonlyPaths }),
  };
}
