/**
 * ContainerSpec -> the agent's create spec, with the validation that must happen before anything
 * is created (so a bad spec leaves nothing behind). The agent validates again.
 */
import path from 'node:path';
import { InvalidParameterError } from '../../errors.js';
import type { AgentMount, AgentProcess, AgentResources, AgentSpec } from '../../guest-agent/protocol.js';
import type { ContainerSpec, ProcessSpec, Resources } from '../types.js';
import type { CgroupConfig } from './cgroups.js';
import { agentSecurity } from '../seccomp.js';
import { agentProcessOptions } from '../process-options.js';

export const CAPABILITIES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL',
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE',
] as const;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** Docker's minimum memory limit */
export const MIN_MEMORY = 6 * 1024 * 1024;

function fail(spec: { id: string }, field: string, msg: string): never {
  throw new InvalidParameterError(`container ${spec.id}: ${field}: ${msg}`);
}

function validCap(c: string): boolean {
  const n = c.toUpperCase().replace(/^CAP_/, '');
  return n === 'ALL' || (CAPABILITIES as readonly string[]).includes(n);
}

export function validateProcess(owner: { id: string }, p: ProcessSpec, field: string): void {
  if (!Array.isArray(p.args) || p.args.length === 0 || !p.args[0]) fail(owner, `${field}.args`, 'a command is required');
  for (const a of p.args)
    if (typeof a !== 'string' || a.includes('\0')) fail(owner, `${field}.args`, 'arguments must be strings without NUL');
  for (const e of p.env) {
    if (typeof e !== 'string' || e.includes('\0') || e.indexOf('=') < 1)
      fail(owner, `${field}.env`, `${JSON.stringify(e)} is not KEY=VALUE`);
  }
  if (p.cwd && !path.isAbsolute(p.cwd)) fail(owner, `${field}.cwd`, `${JSON.stringify(p.cwd)} is not an absolute path`);
  if (typeof p.user !== 'string' || p.user.includes('\0')) fail(owner, `${field}.user`, 'must be a string');
}

export function validateSpec(spec: ContainerSpec): void {
  if (!ID_RE.test(spec.id)) throw new InvalidParameterError(`invalid container id ${JSON.stringify(spec.id)}`);
  if (!path.isAbsolute(spec.stateDir)) fail(spec, 'stateDir', 'must be an absolute path');
  if (!path.isAbsolute(spec.logPath)) fail(spec, 'logPath', 'must be an absolute path');
  if (spec.hostname && (spec.hostname.length > 64 || !/^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(spec.hostname))) {
    fail(spec, 'hostname', `${JSON.stringify(spec.hostname)} is not a valid hostname`);
  }
  validateProcess(spec, spec.process, 'process');
  spec.mounts.forEach((m, i) => {
    const f = `mounts[${i}]`;
    if (!['bind', 'volume', 'tmpfs'].includes(m.type)) fail(spec, `${f}.type`, `unknown mount type ${JSON.stringify(m.type)}`);
    if (!path.isAbsolute(m.destination)) fail(spec, `${f}.destination`, `${JSON.stringify(m.destination)} is not an absolute path`);
    if (m.destination.split('/').includes('..')) fail(spec, `${f}.destination`, 'must not contain ".."');
    if (m.type !== 'tmpfs' && !path.isAbsolute(m.source)) fail(spec, `${f}.source`, `${JSON.stringify(m.source)} is not an absolute path`);
    for (const o of m.options ?? []) if (o.includes(',')) fail(spec, `${f}.options`, `${JSON.stringify(o)} must not contain ","`);
  });
  const r = spec.resources;
  if (r.memory && r.memory < MIN_MEMORY) fail(spec, 'resources.memory', 'minimum memory limit allowed is 6MB');
  if (r.memorySwap && r.memorySwap > 0 && (!r.memory || r.memorySwap < r.memory)) {
    fail(spec, 'resources.memorySwap', 'must be at least the memory limit (and needs one)');
  }
  for (const k of ['memory', 'nanoCpus', 'cpuShares'] as const) {
    const v = r[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) fail(spec, `resources.${k}`, 'must be a non-negative integer');
  }
  if (r.pidsLimit !== undefined && (!Number.isSafeInteger(r.pidsLimit) || r.pidsLimit < -1))
    fail(spec, 'resources.pidsLimit', 'must be an integer >= -1');
  if (r.cpusetCpus && !/^[0-9,-]+$/.test(r.cpusetCpus)) fail(spec, 'resources.cpusetCpus', `invalid ${JSON.stringify(r.cpusetCpus)}`);
  for (const c of [...spec.capAdd, ...spec.capDrop])
    if (!validCap(c)) fail(spec, 'capabilities', `unknown capability: ${JSON.stringify(c)}`);
  if (!['none', 'host', 'bridge', 'container'].includes(spec.network))
    fail(spec, 'network', `unsupported network mode ${JSON.stringify(spec.network)}`);
}

function netnsOf(spec: ContainerSpec): string {
  if (!spec.netns) fail(spec, 'netns', 'a bridge-networked container starts in the namespace its networks prepared');
  return spec.netns.path;
}

export function agentProcess(p: ProcessSpec): AgentProcess {
  return { args: p.args, env: p.env, cwd: p.cwd || '/', user: p.user ?? '', tty: p.tty, stdin: p.openStdin };
}

/** `docker update`: the keys of `changes` as the agent's `update` resources (the same names). */
export function agentResourceChanges(changes: Resources): AgentResources {
  const out: AgentResources = {};
  for (const k of ['memory', 'memorySwap', 'memoryReservation', 'nanoCpus', 'cpuShares', 'pidsLimit'] as const) {
    const v = changes[k];
    if (v !== undefined) out[k] = v;
  }
  if (changes.cpusetCpus !== undefined) out.cpusetCpus = changes.cpusetCpus;
  return out;
}

export function agentSpec(spec: ContainerSpec, lower: string, cgroup: CgroupConfig): AgentSpec {
  const r = spec.resources;
  const resources: AgentSpec['resources'] = {};
  if (r.memory) resources.memory = r.memory;
  if (r.memorySwap) resources.memorySwap = r.memorySwap;
  if (r.nanoCpus) resources.nanoCpus = r.nanoCpus;
  if (r.cpuShares) resources.cpuShares = r.cpuShares;
  if (r.pidsLimit && r.pidsLimit > 0) resources.pidsLimit = r.pidsLimit;
  if (r.cpusetCpus) resources.cpusetCpus = r.cpusetCpus;
  if (r.memoryReservation) resources.memoryReservation = r.memoryReservation;
  const mounts = spec.mounts.map((m): AgentMount => {
    const out: AgentMount = { type: m.type, destination: m.destination, readonly: m.readonly };
    if (m.type !== 'tmpfs') out.source = m.source;
    if (m.options?.length) out.options = m.options;
    return out;
  });
  return {
    id: spec.id,
    hostname: spec.hostname || spec.id.slice(0, 12),
    privileged: spec.privileged,
    readonlyRootfs: spec.readonlyRootfs,
    network: spec.network === 'bridge' || spec.network === 'container' ? { path: netnsOf(spec) } : spec.network,
    rootfs: {
      lower,
      upper: path.join(spec.stateDir, 'upper'),
      work: path.join(spec.stateDir, 'work'),
      target: path.join(spec.stateDir, 'rootfs'),
    },
    process: agentProcess(spec.process),
    mounts,
    resources,
    capAdd: spec.capAdd,
    capDrop: spec.capDrop,
    cgroup,
    logPath: spec.logPath,
    ...(spec.logRotate && { logRotate: spec.logRotate }),
    ...agentSecurity(spec, CAPABILITIES),
    ...agentProcessOptions(spec.processOptions),
  };
}
