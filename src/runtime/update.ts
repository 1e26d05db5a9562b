/**
 * `docker update` (POST /containers/{id}/update): Docker's validation of the new resources
 * (daemon verifyPlatformContainerResources with update=true), its merge into the container's
 * HostConfig with its conflict rules (container.UpdateContainer), and what changes for the
 * cgroup of a running container. Pure: the manager applies the plan.
 */
import { ConflictError, InvalidParameterError } from '../errors.js';
import type { Resources } from './types.js';
import { MIN_MEMORY, checkCpuset } from './container-config.js';
import { parseRestartPolicy, type RestartPolicy } from './restart-policy.js';

/** The fields of Docker's UpdateConfig (Resources + RestartPolicy); zero means "unchanged". */
export interface UpdateBody {
  Memory?: number;
  MemorySwap?: number;
  MemoryReservation?: number;
  NanoCpus?: number;
  NanoCPUs?: number;
  CpuShares?: number;
  CpuQuota?: number;
  CpuPeriod?: number;
  CpusetCpus?: string;
  CpusetMems?: string;
  PidsLimit?: number | null;
  BlkioWeight?: number;
  KernelMemory?: number;
  CpuRealtimePeriod?: number;
  CpuRealtimeRuntime?: number;
  RestartPolicy?: { Name?: string; MaximumRetryCount?: number } | null;
  [k: string]: unknown;
}

export interface UpdatePlan {
  /** the container's HostConfig after the update */
  hostConfig: Record<string, unknown>;
  /** the runtime's full resources after the update (what the next start uses) */
  resources: Resources;
  /** what a running container's cgroup must change: only these keys */
  changes: Resources;
  restartPolicy?: RestartPolicy;
  warnings: string[];
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** The body's numbers, absent or null read as 0 (Docker's "unchanged"). */
function numbersOf(b: UpdateBody) {
  return {
    mem: num(b.Memory),
    swap: num(b.MemorySwap),
    resv: num(b.MemoryReservation),
    nano: num(b.NanoCpus ?? b.NanoCPUs),
    quota: num(b.CpuQuota),
    period: num(b.CpuPeriod),
    shares: num(b.CpuShares),
  };
}

/** Validation before anything changes: 400s with Docker's words. */
export function validateUpdate(b: UpdateBody, ncpu: number): void {
  const { mem, swap, resv, nano, quota, period, shares } = numbersOf(b);
  for (const [k, v] of [
    ['Memory', mem],
    ['MemoryReservation', resv],
    ['CpuShares', shares],
    ['NanoCpus', nano],
  ] as const) {
    if (v < 0) throw new InvalidParameterError(`invalid ${k}: must be a positive number`);
  }
  if (swap < -1) throw new InvalidParameterError('invalid MemorySwap: -1 (unlimited) or a positive number');
  if (mem !== 0 && mem < MIN_MEMORY) throw new InvalidParameterError('Minimum memory limit allowed is 6MB');
  if (mem > 0 && swap > 0 && swap < mem)
    throw new InvalidParameterError('Minimum memoryswap limit should be larger than memory limit, see usage');
  if (resv !== 0 && resv < MIN_MEMORY) throw new InvalidParameterError('Minimum memory reservation allowed is 6MB');
  if (mem > 0 && resv > 0 && mem < resv)
    throw new InvalidParameterError('Minimum memory limit can not be less than memory reservation limit, see usage');
  if (nano > 0 && period > 0) throw new InvalidParameterError('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (nano > 0 && quota > 0) throw new InvalidParameterError('Conflicting options: Nano CPUs and CPU Quota cannot both be set');
  if (nano !== 0 && (nano < 1e7 || nano > ncpu * 1e9)) {
    throw new InvalidParameterError(`Range of CPUs is from 0.01 to ${ncpu}.00, as there are only ${ncpu} CPUs available`);
  }
  if (period !== 0 && (period < 1000 || period > 1_000_000)) {
    throw new InvalidParameterError('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  }
  if (quota > 0 && quota < 1000) throw new InvalidParameterError('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  if (b.CpusetCpus) checkCpuset(b.CpusetCpus, ncpu);
  // Settings tvm's cgroup setup does not manage: refused rather than stored and ignored.
  for (const k of ['BlkioWeight', 'KernelMemory', 'CpuRealtimePeriod', 'CpuRealtimeRuntime'] as const) {
    if (num(b[k]) !== 0) throw new InvalidParameterError(`updating ${k} is not supported by tvm`);
  }
  if (b.CpusetMems) throw new InvalidParameterError('updating CpusetMems is not supported by tvm');
  if (b.RestartPolicy?.Name) parseRestartPolicy(b.RestartPolicy);
}

/**
 * Merges a validated update into the container's HostConfig as Docker does (zero = unchanged,
 * NanoCpus and CpuQuota/CpuPeriod exclude each other across updates, a memory limit above the
 * recorded memory+swap needs a new MemorySwap too). Conflicts are 409s with Docker's words
 * (the caller prefixes "Cannot update container <id>: ").
 */
export function planUpdate(hostConfig: Record<string, unknown>, resources: Resources, b: UpdateBody): UpdatePlan {
  const hc = { ...hostConfig };
  const cur = {
    nano: num(hc.NanoCpus),
    quota: num(hc.CpuQuota),
    period: num(hc.CpuPeriod),
    swap: num(hc.MemorySwap),
  };
  const { mem, swap, resv, nano, quota, period, shares } = numbersOf(b);
  if (nano > 0 && cur.period > 0)
    throw new ConflictError('Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set');
  if (nano > 0 && cur.quota > 0)
    throw new ConflictError('Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set');
  if (period > 0 && cur.nano > 0)
    throw new ConflictError('Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set');
  if (quota > 0 && cur.nano > 0)
    throw new ConflictError('Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');

  const next: Resources = { ...resources };
  const changes: Resources = {};
  if (shares !== 0) {
    hc.CpuShares = shares;
    next.cpuShares = changes.cpuShares = shares;
  }
  if (nano !== 0) {
    hc.NanoCpus = nano;
    next.nanoCpus = changes.nanoCpus = nano;
  }
  if (period !== 0) hc.CpuPeriod = period;
  if (quota !== 0) hc.CpuQuota = quota;
  if (period !== 0 || quota !== 0) {
    // The agent's CFS period is fixed (100 ms): the same CPU share as quota/period.
    const q = num(hc.CpuQuota);
    const p = num(hc.CpuPeriod) || 100_000;
    const rate = q > 0 ? Math.round((q / p) * 1e9) : 0;
    next.nanoCpus = changes.nanoCpus = rate;
  }
  if (b.CpusetCpus) {
    hc.CpusetCpus = b.CpusetCpus;
    next.cpusetCpus = changes.cpusetCpus = b.CpusetCpus;
  }
  if (mem !== 0) {
    if (mem > cur.swap && swap === 0) {
      throw new ConflictError('Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time');
    }
    hc.Memory = mem;
  }
  if (swap !== 0) hc.MemorySwap = swap;
  if (mem !== 0 || swap !== 0) {
    const m = num(hc.Memory);
    const s = num(hc.MemorySwap);
    if (m === 0 && s > 0) throw new ConflictError('You should always set the Memory limit when using Memoryswap limit, see usage');
    if (m > 0 && s > 0 && s < m) throw new ConflictError('Minimum memoryswap limit should be larger than memory limit, see usage');
    next.memory = changes.memory = m;
    next.memorySwap = changes.memorySwap = s;
  }
  if (resv !== 0) {
    const m = num(hc.Memory);
    if (m > 0 && resv > m) throw new ConflictError('Minimum memory limit can not be less than memory reservation limit, see usage');
    hc.MemoryReservation = resv;
    next.memoryReservation = changes.memoryReservation = resv;
  }
  if (b.PidsLimit !== undefined && b.PidsLimit !== null) {
    hc.PidsLimit = b.PidsLimit;
    changes.pidsLimit = b.PidsLimit;
    if (b.PidsLimit > 0) next.pidsLimit = b.PidsLimit;
    else delete next.pidsLimit;
  }
  for (const k of Object.keys(next) as (keyof Resources)[]) {
    if (next[k] === 0) delete next[k];
  }
  const plan: UpdatePlan = { hostConfig: hc, resources: next, changes, warnings: [] };
  if (b.RestartPolicy?.Name) {
    const policy = parseRestartPolicy(b.RestartPolicy);
    if (policy.Name !== 'no' && hc.AutoRemove === true) {
      throw new ConflictError('Restart policy cannot be updated because AutoRemove is enabled for the container');
    }
    hc.RestartPolicy = policy;
    plan.restartPolicy = policy;
  }
  return plan;
}
