/**
 * The create plan (moby's daemon/create.go and its verifyContainerSettings): HostConfig's
 * settings checked against each other with Docker's messages, then the ContainerSpec the
 * isolation gets, the HostConfig `inspect` shows and the new record, all built from them.
 * Nothing here touches the host: the manager does that, in an order it can undo.
 */
import { InvalidParameterError } from '../errors.js';
import type { NetworkAttach } from '../network/manager.js';
import { parseBindings } from '../network/ports.js';
import {
  validateResources,
  validateRestartPolicy,
  validateStorageOpt,
  validateUsernsMode,
  type CreateBody,
  type HostConfigBody,
} from './container-config.js';
import { validateHostOptions, type HostOptions } from './create-options.js';
import { resolveLogConfig } from './log-opts.js';
import { RECORD_VERSION, type ContainerRecord, type MountPoint } from './records.js';
import type { RestartPolicy } from './restart-policy.js';
import type { ContainerSpec, IsolationKind, Mount, Resources } from './types.js';

export const ZERO_TIME = '0001-01-01T00:00:00Z';

export interface CreatePlan {
  hc: HostConfigBody;
  kind: IsolationKind;
  attach: NetworkAttach;
  network: NetworkAttach['mode'];
  resources: Resources;
  storage: { sizeBytes: number } | undefined;
  restartPolicy: RestartPolicy;
  log: ReturnType<typeof resolveLogConfig>;
  usernsMode: 'host' | undefined;
  hostOptions: HostOptions;
  warnings: string[];
}

export interface PlanContext {
  /** NetworkMode and EndpointsConfig resolved against the daemon's networks (may throw) */
  attachNetwork: () => NetworkAttach;
  /** the daemon's json-file options */
  logOpts: Record<string, string>;
  /** the address `host-gateway` stands for, when the daemon has one */
  hostGatewayIp: () => string | undefined;
}

/** Checks the request's HostConfig (in Docker's order, so the first problem is Docker's); changes nothing on the host. */
export function planCreate(body: CreateBody, kind: IsolationKind, ctx: PlanContext): CreatePlan {
  const hc = body.HostConfig ?? {};
  const resources = validateResources(hc);
  const attach = ctx.attachNetwork();
  const network = attach.mode;
  const storage = validateStorageOpt(hc);
  const restartPolicy = validateRestartPolicy(hc);
  const log = resolveLogConfig(hc.LogConfig, ctx.logOpts);
  const usernsMode = validateUsernsMode(hc);
  const hostOptions = validateHostOptions(body, network);
  const warnings: string[] = [];
  if (network === 'bridge') {
    parseBindings(hc.PortBindings, hc.PublishAllPorts === true, body.ExposedPorts);
  } else if (Object.keys(hc.PortBindings ?? {}).length > 0 || hc.PublishAllPorts) {
    if (network === 'none') throw new InvalidParameterError('conflicting options: port publishing and the container type network mode');
    warnings.push('Published ports are discarded when using host network mode');
  }
  for (const h of hostOptions.processOptions?.extraHosts ?? []) {
    if (h.ip !== 'host-gateway') continue;
    const gw = ctx.hostGatewayIp();
    if (!gw) throw new InvalidParameterError('unable to derive the IP value for host-gateway');
    h.ip = gw;
  }
  return { hc, kind, attach, network, resources, storage, restartPolicy, log, usernsMode, hostOptions, warnings };
}

/** What the isolation runs. */
export function containerSpec(
  plan: CreatePlan,
  c: {
    id: string;
    name: string;
    hostname: string;
    imageId: string;
    process: ContainerSpec['process'];
    mounts: Mount[];
    stateDir: string;
    logPath: string;
  },
): ContainerSpec {
  const { hc } = plan;
  return {
    id: c.id,
    name: c.name,
    hostname: c.hostname,
    isolation: plan.kind,
    imageId: c.imageId,
    process: c.process,
    mounts: c.mounts,
    resources: plan.resources,
    capAdd: hc.CapAdd ?? [],
    capDrop: hc.CapDrop ?? [],
    privileged: hc.Privileged === true,
    readonlyRootfs: hc.ReadonlyRootfs === true,
    network: plan.network,
    stateDir: c.stateDir,
    logPath: c.logPath,
    ...(plan.log.rotate && { logRotate: plan.log.rotate }),
    ...(plan.usernsMode && { usernsMode: plan.usernsMode }),
    ...plan.hostOptions,
    ...(plan.storage && { storage: plan.storage }),
  };
}

/** The HostConfig `docker inspect` shows: the request's, with what the daemon decided filled in. */
export function recordedHostConfig(plan: CreatePlan, backend: string | undefined): Record<string, unknown> {
  const { hc, kind, network, resources } = plan;
  return {
    ...hc,
    NetworkMode:
      network === 'bridge' || network === 'container'
        ? hc.NetworkMode && hc.NetworkMode !== 'default'
          ? hc.NetworkMode
          : 'bridge'
        : network,
    Isolation: kind,
    // who runs it: Docker names the OCI runtime here; ours is the isolation and its backend
    Runtime: backend ? `tvm-${kind}-${backend}` : `tvm-${kind}`,
    Memory: resources.memory ?? 0,
    // Docker records the implied swap limit: twice the memory when only memory is set
    MemorySwap: resources.memorySwap ?? (resources.memory ? 2 * resources.memory : 0),
    // what the user set: a quota given as CpuQuota/CpuPeriod stays there (docker update can change it)
    NanoCpus: hc.NanoCpus ? (resources.nanoCpus ?? 0) : 0,
    CpuShares: resources.cpuShares ?? 0,
    PidsLimit: resources.pidsLimit ?? null,
    CpusetCpus: resources.cpusetCpus ?? '',
    Binds: hc.Binds ?? null,
    AutoRemove: hc.AutoRemove === true,
    Privileged: hc.Privileged === true,
    ReadonlyRootfs: hc.ReadonlyRootfs === true,
    CapAdd: hc.CapAdd ?? null,
    CapDrop: hc.CapDrop ?? null,
    RestartPolicy: plan.restartPolicy,
    LogConfig: plan.log.logConfig,
  };
}

/** A new record in `created`. */
export function newContainerRecord(c: {
  id: string;
  name: string;
  created: string;
  image: string;
  imageId: string;
  path: string;
  args: string[];
  config: Record<string, unknown>;
  hostConfig: Record<string, unknown>;
  mounts: MountPoint[];
  spec: ContainerSpec;
}): ContainerRecord {
  return {
    version: RECORD_VERSION,
    id: c.id,
    name: c.name,
    created: c.created,
    image: c.image,
    imageId: c.imageId,
    path: c.path,
    args: c.args,
    config: c.config,
    hostConfig: c.hostConfig,
    state: { status: 'created', pid: 0, exitCode: 0, error: '', oomKilled: false, startedAt: ZERO_TIME, finishedAt: ZERO_TIME },
    restartCount: 0,
    mounts: c.mounts,
    spec: c.spec,
  };
}
