/**
 * The container manager: owns container records, drives each container through the lifecycle
 * state machine by calling its Isolation, publishes events, and recovers everything at daemon
 * start. The API layer is a thin translation of HTTP onto these methods.
 */
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { ConflictError, InvalidParameterError, NotFoundError, NotImplementedError, TvmError } from '../errors.js';
import type { ImageRecord, ImageStore } from '../images/types.js';
import { parseNormalized } from '../images/reference.js';
import { failedStartExitCode } from '../guest-agent/protocol.js';
import type { ArchiveOptions, Attachment, ExecHandle, ExitStatus, Isolation, IsolationKind, Mount, Stats, StdioStreams } from './types.js';
import { RecordStore, removeUnrecordedDir, type ContainerRecord, type MountPoint } from './records.js';
import { assertRunning, isActive, NotModifiedError, transition } from './state-machine.js';
import { EventBus } from './events.js';
import { VolumeStore } from './volumes.js';
import { newId, randomName, validateName } from './ids.js';
import { createWarnings } from './create-options.js';
import {
  displayRef,
  effectiveConfig,
  mapIsolation,
  parseMounts,
  volumesFromBinds,
  validateNetwork,
  type CreateBody,
} from './container-config.js';
import { parseSignal } from './signals.js';
import { containerSpec, newContainerRecord, planCreate, recordedHostConfig, ZERO_TIME } from './create-plan.js';
import { ExecStore, type ExecCreateBody, type ExecRecord } from './exec-store.js';
import { RestartScheduler, type RestartSlot } from './restart-scheduler.js';
import { matchesFilters, matchesLabelFilters, parseUntil } from './list-filters.js';
import { goErrnoText, startFailedError } from './start-error.js';
import { policyOf, shouldRestart, shouldStartOnBoot } from './restart-policy.js';
import { nextBackoff, realTimers, type Timers } from './backoff.js';
import { planUpdate, validateUpdate, type UpdateBody } from './update.js';
import { cpus } from 'node:os';
import { readLog, logSize, type LogEntry, type ReadLogOptions } from './log-file.js';
import type { EndpointConfigBody, NetworkAttach, NetworkManager } from '../network/manager.js';
import { EMBEDDED_DNS_ADDRESS } from '../network/dns-netns.js';
import type { RunningInfo } from './types.js';

export type { ExecConfig, ExecCreateBody, ExecRecord } from './exec-store.js';
export { validateListFilters, matchesFilters } from './list-filters.js';
export { goErrnoText } from './start-error.js';

export interface ManagerOptions {
  dataRoot: string;
  isolations: Partial<Record<IsolationKind, Isolation>>;
  images: ImageStore;
  defaultIsolation: IsolationKind;
  events?: EventBus;
  volumes?: VolumeStore;
  /** diagnostics (recovery problems, background failures) */
  log?: (msg: string) => void;
  /** schedules restart-policy back-offs (tests pass a fake clock) */
  timers?: Timers;
  /** the daemon's json-file options (`tvm daemon --log-opt`), under each container's own */
  logOpts?: Record<string, string>;
  /** bridge networks (absent: containers get --network none or host only) */
  network?: NetworkManager;
}

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

export interface WaitResult {
  StatusCode: number;
  Error: { Message: string } | null;
}

export interface AttachOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /** replay the log before streaming */
  logs: boolean;
  stream: boolean;
}

export interface ListOptions {
  all: boolean;
  limit: number;
  filters: Record<string, string[]>;
}

interface Live extends RestartSlot {
  /** bumps at each start so a stale exit report cannot end a newer run */
  runGen: number;
  exit?: Promise<ExitStatus>;
  exitWaiters: ((r: WaitResult) => void)[];
  removedWaiters: ((r: WaitResult) => void)[];
  lock: Promise<unknown>;
  saving: Promise<unknown>;
  removing: boolean;
  /** set while stop/kill/restart drive the exit, so `die` is followed by `stop` */
  stopping: boolean;
  /** the exit in progress was asked for (stop, kill, rm -f): no policy restart (Docker's ExitOnNext) */
  exitOnNext: boolean;
  /** the last restart back-off (ms); 0 before the first */
  backoffMs: number;
}

const discard = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
const now = (): string => new Date().toISOString();

/**
 * States in which an attach waits for the next start instead of failing: `docker run` attaches
 * to a created container, `docker start -a` to an exited one (Docker's API allows both).
 */
const ATTACH_BEFORE_START = new Set(['created', 'exited']);

export class ContainerManager {
  readonly records: RecordStore;
  readonly events: EventBus;
  readonly volumes: VolumeStore;
  readonly images: ImageStore;
  readonly dataRoot: string;
  defaultIsolation: IsolationKind;
  private readonly isolations: Partial<Record<IsolationKind, Isolation>>;
  private readonly live = new Map<string, Live>();
  private readonly execs = new ExecStore();
  private readonly restarts: RestartScheduler;
  private readonly log: (msg: string) => void;
  private readonly timers: Timers;
  private readonly logOpts: Record<string, string>;
  readonly network: NetworkManager | undefined;
  /** set by shutdown(): exits and pending restarts are left to the next daemon */
  private closed = false;

  constructor(o: ManagerOptions) {
    this.dataRoot = o.dataRoot;
    this.records = new RecordStore(o.dataRoot);
    this.events = o.events ?? new EventBus();
    this.volumes = o.volumes ?? new VolumeStore(o.dataRoot);
    this.images = o.images;
    this.isolations = o.isolations;
    this.defaultIsolation = o.defaultIsolation;
    this.log = o.log ?? (() => {});
    this.timers = o.timers ?? realTimers;
    this.restarts = new RestartScheduler(this.timers);
    this.logOpts = o.logOpts ?? {};
    this.network = o.network;
  }

  availableIsolations(): IsolationKind[] {
    return (Object.keys(this.isolations) as IsolationKind[]).filter((k) => this.isolations[k] !== undefined);
  }

  isolationFor(kind: IsolationKind): Isolation {
    const iso = this.isolations[kind];
    if (!iso) {
      if (kind === 'vm') {
        throw new NotImplementedError(
          'isolation "vm" (hyperv) is not available in this tvm daemon: it needs a usable /dev/kvm or qemu-system-x86_64 (apt-get install qemu-system-x86); use --isolation=container',
          'ERR_ISOLATION_UNAVAILABLE',
        );
      }
      throw new NotImplementedError(`isolation "${kind}" is not available in this tvm daemon`, 'ERR_ISOLATION_UNAVAILABLE');
    }
    return iso;
  }

  /** Loads records and volumes, then reconciles every container with its supervisor. */
  async init(): Promise<void> {
    await this.volumes.load();
    const { removed, broken } = await this.records.load();
    for (const r of removed) this.log(`removed leftover of an interrupted create: containers/${r}`);
    for (const b of broken) this.log(`container record ${b.id} is unreadable, ignored: ${b.error}`);
    await Promise.all(this.records.all().map((rec) => this.recoverOne(rec)));
    for (const [kind, iso] of Object.entries(this.isolations)) {
      try {
        for (const what of (await iso?.reconcile?.()) ?? []) this.log(`released ${what} (left by an interrupted daemon)`);
      } catch (e) {
        // The daemon still serves: what stays behind is retried at the next start.
        this.log(`reconciling ${kind} isolation resources failed: ${String(e)}`);
      }
    }
    if (this.network) {
      const all = this.records.all();
      const running = all.filter((r) => r.state.status === 'running' || r.state.status === 'paused').map((r) => r.id);
      await this.network.reconcile(new Set(all.map((r) => r.id)), new Set(running));
    }
  }

  /**
   * Starts the workload; a bridge-networked container gets its namespace and endpoints first,
   * taken down again if the start fails.
   */
  private async startIsolation(rec: ContainerRecord, iso: Isolation): Promise<RunningInfo> {
    if (rec.spec.network === 'container') {
      const ref = ((rec.hostConfig.NetworkMode as string | undefined) ?? '').slice('container:'.length);
      const target = this.records.get(ref);
      if (!target) throw new NotFoundError(`No such container: ${ref}`);
      if (!(target.state.status === 'running' || target.state.status === 'paused') || !target.state.pid) {
        throw new ConflictError(`cannot join network of a non running container: ${ref}`);
      }
      rec.spec.netns = {
        path: `/proc/${target.state.pid}/ns/net`,
        ip: target.spec.netns?.ip ?? '127.0.1.1',
        ...(target.spec.netns?.nameservers && { nameservers: target.spec.netns.nameservers }),
      };
      return iso.start(rec.spec);
    }
    if (!this.network || rec.spec.network !== 'bridge') return iso.start(rec.spec);
    const sb = await this.network.setUp({
      id: rec.id,
      portBindings: rec.hostConfig.PortBindings as Record<string, unknown> | null | undefined,
      publishAll: rec.hostConfig.PublishAllPorts === true,
      exposed: rec.config.ExposedPorts as Record<string, unknown> | null | undefined,
      dns: rec.hostConfig.Dns as string[] | null | undefined,
    });
    if (sb) rec.spec.netns = sb;
    else delete rec.spec.netns;
    try {
      // disconnected from every network: Docker runs it with only lo
      return await iso.start(sb ? rec.spec : { ...rec.spec, network: 'none' });
    } catch (e) {
      await this.network.tearDown(rec.id).catch((err) => this.log(`taking down the network of ${rec.id}: ${String(err)}`));
      throw e;
    }
  }

  private async recoverOne(rec: ContainerRecord): Promise<void> {
    const st = rec.state.status;
    if (st === 'removing') {
      // A removal interrupted by a crash: finish it.
      rec.state.status = 'dead';
    }
    if (!isActive(st)) {
      if (rec.hostConfig.AutoRemove === true && (st === 'exited' || st === 'dead')) {
        await this.remove(rec.id, { force: true, volumes: true }).catch((e) => this.log(`auto-remove of ${rec.id} failed: ${String(e)}`));
      } else if (st === 'exited') {
        await this.startOnBoot(rec);
      }
      return;
    }
    const iso = this.isolations[rec.spec.isolation];
    if (!iso) {
      this.markDead(rec, `isolation ${rec.spec.isolation} is not available in this daemon`);
      return;
    }
    let r: Awaited<ReturnType<Isolation['recover']>>;
    try {
      r = await iso.recover(rec.spec);
    } catch (e) {
      this.markDead(rec, `recovery failed: ${(e as Error).message}`);
      return;
    }
    if ('running' in r) {
      rec.state.pid = r.running.pid;
      if (rec.state.status === 'restarting') rec.state.status = 'running';
      await this.persist(rec);
      this.monitor(rec, iso);
    } else if (st === 'restarting') {
      // The daemon went away during a restart back-off: the restart is due now.
      rec.state.status = 'exited';
      await this.persist(rec);
      await this.startOnBoot(rec);
    } else if ('exited' in r) {
      this.onExit(rec.id, this.liveOf(rec.id).runGen, r.exited);
    } else if (
      shouldStartOnBoot(policyOf(rec.hostConfig), {
        exitCode: 255,
        manuallyStopped: rec.manuallyStopped === true,
        restartCount: rec.restartCount,
      })
    ) {
      // Host reboot (the supervisor is gone with its workload): the policy brings it back, as
      // Docker does with containers whose task vanished.
      this.onExit(rec.id, this.liveOf(rec.id).runGen, {
        exitCode: 255,
        finishedAt: now(),
        oomKilled: false,
        error: "the container's supervisor is gone (lost across a daemon restart)",
      });
    } else {
      this.markDead(rec, "the container's supervisor is gone (lost across a daemon restart)");
    }
  }

  /** Docker's restore: a stopped container that ran before comes back if its policy says so. */
  private async startOnBoot(rec: ContainerRecord): Promise<void> {
    if (rec.state.startedAt === ZERO_TIME) return;
    const policy = policyOf(rec.hostConfig);
    if (
      !shouldStartOnBoot(policy, {
        exitCode: rec.state.exitCode,
        manuallyStopped: rec.manuallyStopped === true,
        restartCount: rec.restartCount,
      })
    )
      return;
    await this.locked(rec.id, () => this.startLocked(rec)).catch((e) =>
      this.log(`restart policy ${policy.Name}: starting ${rec.id} at daemon start failed: ${String(e)}`),
    );
  }

  /**
   * The daemon is going away: pending policy restarts are dropped without touching the records (a
   * container in `restarting` is restarted by the next daemon's init), and an exit seen from now on
   * is recorded without a restart (the next daemon's init applies the policy to it), so a departed
   * daemon never starts a container.
   */
  shutdown(): void {
    this.closed = true;
    for (const l of this.live.values()) this.restarts.cancel(l);
  }

  private markDead(rec: ContainerRecord, error: string): void {
    rec.state.status = transition(rec.state.status, 'lost', rec.name);
    rec.state.error = error;
    rec.state.pid = 0;
    rec.state.finishedAt = now();
    this.log(`container ${rec.id}: ${error}`);
    // persist() logs its own failure (through the save chain); nothing here waits for the disk
    void this.persist(rec);
  }

  private liveOf(id: string): Live {
    let l = this.live.get(id);
    if (!l) {
      l = {
        runGen: 0,
        exitWaiters: [],
        removedWaiters: [],
        lock: Promise.resolve(),
        saving: Promise.resolve(),
        removing: false,
        stopping: false,
        exitOnNext: false,
        backoffMs: 0,
        restartToken: 0,
      };
      this.live.set(id, l);
    }
    return l;
  }

  /** Serializes state-changing operations on one container. */
  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const l = this.liveOf(id);
    const run = l.lock.then(fn, fn);
    // the chain only orders the work: each caller awaits its own promise and gets its own error
    l.lock = run.catch(() => {});
    return run;
  }

  /**
   * Writes are chained per container so they land in order; each write serializes the record
   * as it is when the write runs, so the last write always carries the newest state.
   */
  private persist(rec: ContainerRecord): Promise<void> {
    const l = this.liveOf(rec.id);
    const p = l.saving.then(() => (this.records.get(rec.id) === rec ? this.records.save(rec) : undefined));
    l.saving = p.catch((e) => this.log(`saving container ${rec.id} failed: ${String(e)}`));
    return p;
  }

  get(ref: string): ContainerRecord {
    return this.records.resolve(ref);
  }

  private emit(rec: ContainerRecord, action: string, extra: Record<string, string> = {}): void {
    const attrs: Record<string, string> = { image: rec.image, name: rec.name.slice(1), ...extra };
    for (const [k, v] of Object.entries((rec.config.Labels as Record<string, string> | undefined) ?? {})) {
      if (!(k in attrs)) attrs[k] = v;
    }
    this.events.publish('container', action, rec.id, attrs);
  }

  // ---------------------------------------------------------------------------------- create

  /** NetworkMode and EndpointsConfig: checked against the daemon's networks, nothing changed. */
  private networkAttach(body: CreateBody): NetworkAttach {
    const hc = body.HostConfig ?? {};
    if (!this.network) return { mode: validateNetwork(hc), networks: [] };
    if ((body as { NetworkDisabled?: boolean }).NetworkDisabled === true) return { mode: 'none', networks: [] };
    const mode = hc.NetworkMode ?? '';
    if (mode.startsWith('container:')) {
      // Docker's conflicts: what the other container's namespace and files decide
      const target = this.get(mode.slice('container:'.length));
      if (body.Hostname) throw new InvalidParameterError('conflicting options: hostname and the network mode');
      const some = (v: unknown) => Array.isArray(v) && v.length > 0;
      if (some(hc.Dns) || some(hc.DnsSearch) || some(hc.DnsOptions))
        throw new InvalidParameterError('conflicting options: dns and the network mode');
      if (some(hc.ExtraHosts)) throw new InvalidParameterError('conflicting options: custom host-to-IP mapping and the network mode');
      if (Object.keys(hc.PortBindings ?? {}).length > 0 || hc.PublishAllPorts)
        throw new InvalidParameterError('conflicting options: port publishing and the container type network mode');
      if (body.ExposedPorts && Object.keys(body.ExposedPorts).length > 0)
        throw new InvalidParameterError('conflicting options: port exposing and the container type network mode');
      hc.NetworkMode = `container:${target.id}`;
      // the other container's host name, as Docker gives it
      body.Hostname = (target.config.Hostname as string | undefined) ?? target.id.slice(0, 12);
    }
    const endpoints =
      ((body.NetworkingConfig ?? {}) as { EndpointsConfig?: Record<string, EndpointConfigBody | null> | null }).EndpointsConfig ??
      undefined;
    return this.network.resolveCreate(hc.NetworkMode, endpoints);
  }

  async create(body: CreateBody, nameArg?: string, platform?: string): Promise<{ Id: string; Warnings: string[] }> {
    if (platform && platform !== '' && !/^linux(\/amd64)?$/.test(platform)) {
      throw new InvalidParameterError(`image platform ${platform} is not supported: tvm runs linux/amd64`);
    }
    if (typeof body.Image !== 'string' || body.Image === '')
      throw new InvalidParameterError('config cannot be empty in order to create a container');
    const kind = mapIsolation(body.HostConfig?.Isolation, this.defaultIsolation);
    const iso = this.isolationFor(kind);
    const plan = planCreate(body, kind, {
      attachNetwork: () => this.networkAttach(body),
      logOpts: this.logOpts,
      hostGatewayIp: () => this.network?.hostGatewayIp(),
    });
    const { hc, attach, warnings } = plan;
    const name = nameArg !== undefined && nameArg !== '' ? validateName(nameArg) : randomName((n) => this.records.nameTaken(n));

    let image: ImageRecord;
    try {
      image = await this.images.resolve(body.Image);
    } catch (e) {
      if (e instanceof NotFoundError) {
        // A malformed reference (UPPER:1) names no image at all: dockerd's 400, not a 404.
        if (!/^(?:sha256:)?[0-9a-f]{1,64}$/.test(body.Image)) parseNormalized(body.Image);
        throw new NotFoundError(`No such image: ${displayRef(body.Image)}`, 'ERR_NO_SUCH_IMAGE');
      }
      throw e;
    }
    const id = newId();
    const eff = effectiveConfig(body, image, id);
    const fromBinds = volumesFromBinds(hc, (ref) => this.records.find(ref));
    const mountReqs = parseMounts(
      fromBinds.length > 0 ? { ...hc, Binds: [...(hc.Binds ?? []), ...fromBinds] } : hc,
      eff.config.Volumes as Record<string, object>,
    );
    for (const m of mountReqs) {
      if (m.mount.type === 'bind') {
        try {
          await stat(m.mount.source);
        } catch {
          throw new InvalidParameterError(`invalid mount config for type "bind": bind source path does not exist: ${m.mount.source}`);
        }
      }
    }

    this.records.reserveName(name, id);
    const stateDir = this.records.stateDir(id);
    const createdVolumes: string[] = [];
    const created = now();
    try {
      const mounts: Mount[] = [];
      const points: MountPoint[] = [];
      for (const m of mountReqs) {
        if (m.mount.type === 'volume') {
          const { volume, created: isNew } = await this.volumes.create({
            ...(m.volumeName !== undefined && { name: m.volumeName }),
            ...(m.anonymous && { anonymous: true }),
          });
          if (isNew) {
            createdVolumes.push(volume.Name);
            this.events.publish('volume', 'create', volume.Name, { driver: 'local' });
          }
          mounts.push({ ...m.mount, source: volume.Mountpoint });
          points.push({
            Type: 'volume',
            Name: volume.Name,
            Source: volume.Mountpoint,
            Destination: m.mount.destination,
            Driver: 'local',
            Mode: m.mode === '' ? 'z' : m.mode,
            RW: !m.mount.readonly,
            Propagation: '',
            ...(m.anonymous && { anonymous: true }),
          });
        } else {
          mounts.push(m.mount);
          points.push({
            Type: m.mount.type,
            Source: m.mount.source,
            Destination: m.mount.destination,
            Mode: m.mode,
            RW: !m.mount.readonly,
            Propagation: m.mount.type === 'bind' ? 'rprivate' : '',
          });
        }
      }
      const spec = containerSpec(plan, {
        id,
        name,
        hostname: eff.hostname,
        imageId: image.id,
        process: eff.process,
        mounts,
        stateDir,
        logPath: path.join(stateDir, 'log.jsonl'),
      });
      const hostConfig = recordedHostConfig(plan, iso.backend);
      const rec = newContainerRecord({
        id,
        name,
        created,
        image: body.Image,
        imageId: image.id,
        path: eff.path,
        args: eff.args,
        config: eff.config,
        hostConfig,
        mounts: points,
        spec,
      });
      await mkdir(stateDir, { recursive: true, mode: 0o710 });
      await iso.create(spec);
      try {
        await this.records.save(rec);
        if (this.network) await this.network.join(id, name, attach);
      } catch (e) {
        await this.network?.leave(id).catch((err) => this.log(`create of ${id} failed; leaving its networks: ${String(err)}`));
        await this.records
          .delete(id)
          .catch((err) => this.log(`create of ${id} failed; its record stays until the next start: ${String(err)}`));
        await iso
          .remove(spec)
          .catch((err) => this.log(`create of ${id} failed; removing what the isolation made failed too: ${String(err)}`));
        throw e;
      }
      this.liveOf(id);
      this.emit(rec, 'create');
      warnings.push(...createWarnings(body));
      return { Id: id, Warnings: warnings };
    } catch (e) {
      this.records.releaseName(name);
      this.live.delete(id);
      // never through a mount the isolation could not undo; what stays is retried at the next init
      await removeUnrecordedDir(stateDir).catch((err) => this.log(`create of ${id} failed; its state dir stays: ${String(err)}`));
      for (const v of createdVolumes)
        await this.volumes
          .remove(v, new Map(), true)
          .catch((err) => this.log(`create of ${id} failed; its new volume ${v} stays: ${String(err)}`));
      throw e;
    }
  }

  // ---------------------------------------------------------------------------------- start

  async start(ref: string): Promise<void> {
    const rec = this.get(ref);
    await this.locked(rec.id, () => this.startLocked(rec));
  }

  private async startLocked(rec: ContainerRecord): Promise<void> {
    const l = this.liveOf(rec.id);
    if (l.removing) throw new ConflictError('container is marked for removal and cannot be started');
    const next = transition(rec.state.status, 'start', rec.id);
    const iso = this.isolationFor(rec.spec.isolation);
    // A user start begins a new restart-policy series (Docker's ResetRestartManager(true)).
    this.cancelRestart(rec);
    rec.restartCount = 0;
    rec.manuallyStopped = false;
    l.exitOnNext = false;
    l.backoffMs = 0;
    let info;
    try {
      info = await this.startIsolation(rec, iso);
    } catch (e) {
      rec.state.error = goErrnoText((e as Error).message);
      rec.state.exitCode = failedStartExitCode(e, 128);
      await this.persist(rec);
      if (rec.hostConfig.AutoRemove === true) {
        // Docker removes a --rm container whose start failed; `docker run --rm` waits for it.
        // The supervisor may still be winding down the failed start: let it finish first.
        void waitFor(iso.wait(rec.spec), 10_000)
          .then(() => this.remove(rec.id, { force: true, volumes: true }))
          .catch((err) => this.log(`auto-remove of ${rec.id} failed: ${String(err)}`));
      }
      throw startFailedError(rec.id, rec.state.error, e);
    }
    rec.state = {
      status: next,
      pid: info.pid,
      exitCode: 0,
      error: '',
      oomKilled: false,
      startedAt: info.startedAt,
      finishedAt: rec.state.finishedAt,
    };
    l.runGen++;
    await this.persist(rec);
    this.monitor(rec, iso);
    this.emit(rec, 'start');
  }

  private monitor(rec: ContainerRecord, iso: Isolation): void {
    const l = this.liveOf(rec.id);
    const gen = l.runGen;
    const exit = iso.wait(rec.spec).catch((e): ExitStatus => ({
      exitCode: 255,
      finishedAt: now(),
      oomKilled: false,
      error: `lost track of the container: ${(e as Error).message}`,
    }));
    l.exit = exit;
    // exit never rejects (a failed wait is mapped to an exit status above), and onExit is synchronous
    void exit.then((st) => this.onExit(rec.id, gen, st));
  }

  private onExit(id: string, gen: number, st: ExitStatus): void {
    const rec = this.records.get(id);
    const l = this.liveOf(id);
    if (!rec || gen !== l.runGen || !isActive(rec.state.status) || rec.state.status === 'restarting') return;
    // queued before any restart's setup: the next run gets a fresh namespace
    if (this.network && rec.spec.network === 'bridge')
      void this.network.tearDown(id).catch((e) => this.log(`taking down the network of ${id}: ${String(e)}`));
    // after shutdown the exit is recorded, and the next daemon's init applies the policy
    const restart =
      !this.closed &&
      !l.removing &&
      shouldRestart(policyOf(rec.hostConfig), {
        exitCode: st.exitCode,
        manuallyStopped: rec.manuallyStopped === true,
        cancelled: l.exitOnNext || l.stopping,
        restartCount: rec.restartCount,
      });
    const runMs = Math.max(0, Date.parse(st.finishedAt) - Date.parse(rec.state.startedAt)) || 0;
    rec.state = {
      status: transition(rec.state.status, restart ? 'restart-wait' : 'exit', rec.name),
      pid: 0,
      exitCode: st.exitCode,
      error: st.error ?? '',
      oomKilled: st.oomKilled,
      startedAt: rec.state.startedAt,
      finishedAt: st.finishedAt,
    };
    if (restart) {
      rec.restartCount++;
      l.backoffMs = nextBackoff(l.backoffMs, runMs);
      this.scheduleRestart(rec, l.backoffMs);
    }
    // persist() logs its own failure (through the save chain); nothing here waits for the disk
    void this.persist(rec);
    if (st.oomKilled) this.emit(rec, 'oom');
    const started = Date.parse(rec.state.startedAt);
    const dur = Number.isNaN(started) ? 0 : Math.max(0, Math.round((Date.parse(st.finishedAt) - started) / 1000));
    this.emit(rec, 'die', { exitCode: String(st.exitCode), execDuration: String(dur) });
    this.execs.containerExited(id);
    const result: WaitResult = { StatusCode: st.exitCode, Error: st.error ? { Message: st.error } : null };
    const waiters = l.exitWaiters.splice(0);
    for (const w of waiters) w(result);
    if (rec.hostConfig.AutoRemove === true && !l.removing && !restart) {
      // Docker removes --rm containers (and their anonymous volumes) once they exit.
      void this.remove(id, { force: true, volumes: true }).catch((e) => this.log(`auto-remove of ${id} failed: ${String(e)}`));
    }
  }

  /** Restarts a container in `restarting` after `ms` (the back-off), unless cancelled first. */
  private scheduleRestart(rec: ContainerRecord, ms: number): void {
    this.restarts.schedule(this.liveOf(rec.id), ms, (token) => {
      // a timer has no caller to tell: a failed restart is logged
      void this.locked(rec.id, () => this.policyRestart(rec, token)).catch((e) => this.log(`restart of ${rec.id} failed: ${String(e)}`));
    });
  }

  private async policyRestart(rec: ContainerRecord, token: number): Promise<void> {
    const l = this.liveOf(rec.id);
    if (
      this.closed ||
      !this.restarts.isCurrent(l, token) ||
      l.removing ||
      rec.state.status !== 'restarting' ||
      this.records.get(rec.id) !== rec
    )
      return;
    const iso = this.isolationFor(rec.spec.isolation);
    let info;
    try {
      info = await this.startIsolation(rec, iso);
    } catch (e) {
      // Docker: a failed restart leaves the container stopped with the error; no further tries.
      rec.state.status = transition(rec.state.status, 'restart-cancel', rec.name);
      rec.state.error = goErrnoText((e as Error).message);
      if (rec.state.exitCode === 0) rec.state.exitCode = 128;
      this.wakeExitWaiters(rec);
      await this.persist(rec);
      this.log(`restart policy: restarting ${rec.id} failed: ${rec.state.error}`);
      return;
    }
    rec.state = {
      status: transition(rec.state.status, 'restart-start', rec.name),
      pid: info.pid,
      exitCode: 0,
      error: '',
      oomKilled: false,
      startedAt: info.startedAt,
      finishedAt: rec.state.finishedAt,
    };
    l.runGen++;
    // watched (and announced) before anything awaits: an exit right after the start is not missed
    this.monitor(rec, iso);
    this.emit(rec, 'start');
    await this.persist(rec);
  }

  /**
   * Drops a pending policy restart; a container waiting in `restarting` becomes `exited`.
   * Returns whether it was restarting. Callers hold the container's lock.
   */
  private cancelRestart(rec: ContainerRecord): boolean {
    this.restarts.cancel(this.liveOf(rec.id));
    if (rec.state.status !== 'restarting') return false;
    rec.state.status = transition(rec.state.status, 'restart-cancel', rec.name);
    rec.state.pid = 0;
    this.wakeExitWaiters(rec);
    return true;
  }

  private wakeExitWaiters(rec: ContainerRecord): void {
    const result: WaitResult = { StatusCode: rec.state.exitCode, Error: rec.state.error ? { Message: rec.state.error } : null };
    for (const w of this.liveOf(rec.id).exitWaiters.splice(0)) w(result);
  }

  // ---------------------------------------------------------------------------------- stop, kill, restart

  async stop(ref: string, opts: { signal?: string; timeout?: number }): Promise<void> {
    const rec = this.get(ref);
    await this.locked(rec.id, () => this.stopLocked(rec, opts));
  }

  private async stopLocked(rec: ContainerRecord, opts: { signal?: string; timeout?: number }): Promise<void> {
    if (!isActive(rec.state.status)) throw new NotModifiedError(`container ${rec.id} is already stopped`);
    const l = this.liveOf(rec.id);
    rec.manuallyStopped = true;
    l.exitOnNext = true;
    if (this.cancelRestart(rec)) {
      // Nothing runs during the back-off: stopping it is cancelling the pending restart.
      await this.persist(rec);
      this.emit(rec, 'stop');
      return;
    }
    const iso = this.isolationFor(rec.spec.isolation);
    const sig = opts.signal && opts.signal !== '' ? opts.signal : ((rec.config.StopSignal as string | undefined) ?? 'SIGTERM');
    const sigNum = parseSignal(sig);
    const timeout = opts.timeout ?? (rec.config.StopTimeout as number | undefined) ?? 10;
    l.stopping = true;
    try {
      if (rec.state.status === 'paused') {
        // A frozen process cannot act on its stop signal: thaw it first, as Docker does.
        // only a frozen container needs the thaw; on a running one it fails, which changes nothing
        await iso.resume(rec.spec).catch(() => {});
        rec.state.status = 'running';
      }
      const exited = l.exit;
      await iso.kill(rec.spec, sigNum).catch((e) => this.log(`stop signal to ${rec.id}: ${String(e)}`));
      this.emit(rec, 'kill', { signal: String(sigNum) });
      const ok = timeout < 0 ? (await exited, true) : await waitFor(exited, timeout * 1000);
      if (!ok) {
        await iso.kill(rec.spec, 9).catch((e) => this.log(`SIGKILL to ${rec.id}: ${String(e)}`));
        this.emit(rec, 'kill', { signal: '9' });
        await exited;
      }
      await this.settle(rec.id);
      this.emit(rec, 'stop');
    } finally {
      l.stopping = false;
    }
  }

  /** Lets onExit's synchronous state change land before returning to the caller. */
  private async settle(id: string): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    await this.liveOf(id).saving;
  }

  async kill(ref: string, signal = 'SIGKILL'): Promise<void> {
    const rec = this.get(ref);
    await this.locked(rec.id, async () => {
      const n = parseSignal(signal);
      const l = this.liveOf(rec.id);
      // Docker: a kill marks the container stopped by the user; with SIGKILL or the stop signal
      // it also cancels the restart the coming exit would trigger (ExitOnNext).
      const stopSig = (rec.config.StopSignal as string | undefined) ?? 'SIGTERM';
      const cancels = n === 9 || stopSig === 'SIGTERM' || parseSignal(stopSig) === n;
      if (rec.state.status === 'restarting') {
        rec.manuallyStopped = true;
        if (cancels) this.cancelRestart(rec);
        await this.persist(rec);
        return;
      }
      assertRunning(rec.state.status, rec.id, 'kill');
      rec.manuallyStopped = true;
      if (cancels) l.exitOnNext = true;
      const iso = this.isolationFor(rec.spec.isolation);
      if (rec.state.status === 'paused' && n === 9) {
        await iso.kill(rec.spec, n);
        // only a frozen container needs the thaw; on a running one it fails, which changes nothing
        await iso.resume(rec.spec).catch(() => {});
      } else {
        await iso.kill(rec.spec, n);
      }
      this.emit(rec, 'kill', { signal: String(n) });
      if (n === 9 && this.liveOf(rec.id).exit) {
        await waitFor(this.liveOf(rec.id).exit, 10_000);
        await this.settle(rec.id);
      }
    });
  }

  async restart(ref: string, opts: { signal?: string; timeout?: number }): Promise<void> {
    const rec = this.get(ref);
    await this.locked(rec.id, async () => {
      if (isActive(rec.state.status)) await this.stopLocked(rec, opts);
      // Docker's restart is a stop and a user start: RestartCount starts again from 0.
      await this.startLocked(rec);
      this.emit(rec, 'restart');
    });
  }

  /**
   * `docker update`: new resource limits and/or restart policy. A running (or paused) container
   * gets them live through its isolation (the agent writes its cgroup) before the record
   * changes, so a refused limit leaves everything as it was; the next start uses the record.
   */
  async update(ref: string, body: UpdateBody): Promise<{ Warnings: string[] }> {
    validateUpdate(body, cpus().length);
    const rec = this.get(ref);
    return this.locked(rec.id, async () => {
      const l = this.liveOf(rec.id);
      const st = rec.state.status;
      const cannot = (msg: string) => `Cannot update container ${rec.id}: ${msg}`;
      if (l.removing || st === 'removing' || st === 'dead') {
        throw new ConflictError(cannot('container is marked for removal and cannot be "update"'));
      }
      let plan;
      try {
        plan = planUpdate(rec.hostConfig, rec.spec.resources, body);
      } catch (e) {
        if (e instanceof TvmError) throw new TvmError(e.code, cannot(e.message), e.status);
        throw e;
      }
      if ((st === 'running' || st === 'paused') && Object.keys(plan.changes).length > 0) {
        const iso = this.isolationFor(rec.spec.isolation);
        if (!iso.update)
          throw new NotImplementedError(cannot(`--isolation=${rec.spec.isolation} cannot change the limits of a running container yet`));
        try {
          await iso.update(rec.spec, plan.changes);
        } catch (e) {
          const status = e instanceof TvmError ? e.status : 500;
          throw new TvmError(e instanceof TvmError ? e.code : 'ERR_UPDATE', cannot((e as Error).message), status, { cause: e });
        }
      }
      rec.hostConfig = plan.hostConfig;
      rec.spec = { ...rec.spec, resources: plan.resources };
      await this.persist(rec);
      this.emit(rec, 'update');
      return { Warnings: plan.warnings };
    });
  }

  async pause(ref: string): Promise<void> {
    const rec = this.get(ref);
    await this.locked(rec.id, async () => {
      const next = transition(rec.state.status, 'pause', rec.id);
      await this.isolationFor(rec.spec.isolation).pause(rec.spec);
      rec.state.status = next;
      await this.persist(rec);
      this.emit(rec, 'pause');
    });
  }

  async unpause(ref: string): Promise<void> {
    const rec = this.get(ref);
    await this.locked(rec.id, async () => {
      const next = transition(rec.state.status, 'unpause', rec.id);
      await this.isolationFor(rec.spec.isolation).resume(rec.spec);
      rec.state.status = next;
      await this.persist(rec);
      this.emit(rec, 'unpause');
    });
  }

  async rename(ref: string, newName: string): Promise<void> {
    const rec = this.get(ref);
    const name = validateName(newName);
    await this.locked(rec.id, async () => {
      if (name === rec.name) throw new ConflictError(`Renaming a container with the same name as its current name`);
      this.records.reserveName(name, rec.id);
      const old = rec.name;
      rec.name = name;
      try {
        await this.persist(rec);
      } catch (e) {
        rec.name = old;
        this.records.releaseName(name);
        throw e;
      }
      await this.network?.rename(rec.id, name).catch((e) => this.log(`renaming ${rec.id} on its networks: ${String(e)}`));
      this.emit(rec, 'rename', { oldName: old });
    });
  }

  // ---------------------------------------------------------------------------------- networks

  private requireNetworks(): NetworkManager {
    if (!this.network) throw new NotImplementedError('this tvm daemon has no networks');
    return this.network;
  }

  /** `docker network connect`: recorded; plumbed at once into a running container. */
  async connectNetwork(netRef: string, ref: string, ep: EndpointConfigBody | undefined): Promise<void> {
    const nm = this.requireNetworks();
    const rec = this.get(ref);
    await this.locked(rec.id, async () => {
      const running = rec.state.status === 'running' || rec.state.status === 'paused';
      const mode = rec.spec.network === 'bridge' ? 'bridge' : rec.spec.network;
      const { dnsServer } = await nm.connect(netRef, rec.id, rec.name, ep, mode, running);
      const n = nm.get(netRef);
      const ifname = running ? nm.endpointOf(netRef, rec.id)?.ifname : undefined;
      const iso = this.isolationFor(rec.spec.isolation);
      if (ifname && iso.networkConnected) {
        try {
          await iso.networkConnected(rec.spec, ifname);
        } catch (e) {
          await nm.disconnect(netRef, rec.id).catch((err) => this.log(`undoing the connect of ${rec.id} to ${n.Name}: ${String(err)}`));
          throw e;
        }
      }
      if (dnsServer && rec.spec.netns && !rec.spec.netns.nameservers) {
        rec.spec.netns = { ...rec.spec.netns, nameservers: [EMBEDDED_DNS_ADDRESS], dnsServer };
        await this.persist(rec);
        // the network works either way: a resolv.conf left as it was is worth a log line, not a failed connect
        await iso.embeddedDnsStarted?.(rec.spec).catch((e) => this.log(`pointing ${rec.id} at the embedded DNS: ${String(e)}`));
      }
      this.events.publish('network', 'connect', n.Id, { container: rec.id, name: n.Name, type: 'bridge' });
    });
  }

  async disconnectNetwork(netRef: string, ref: string): Promise<void> {
    const nm = this.requireNetworks();
    const rec = this.get(ref);
    await this.locked(rec.id, async () => {
      const n = nm.get(netRef);
      const running = rec.state.status === 'running' || rec.state.status === 'paused';
      const ifname = running ? nm.endpointOf(netRef, rec.id)?.ifname : undefined;
      const iso = this.isolationFor(rec.spec.isolation);
      if (ifname && iso.networkDisconnecting) await iso.networkDisconnecting(rec.spec, ifname);
      await nm.disconnect(netRef, rec.id);
      this.events.publish('network', 'disconnect', n.Id, { container: rec.id, name: n.Name, type: 'bridge' });
    });
  }

  // ---------------------------------------------------------------------------------- remove

  async remove(ref: string, opts: { force: boolean; volumes: boolean }): Promise<void> {
    const rec = this.get(ref);
    const l = this.liveOf(rec.id);
    if (l.removing) throw new ConflictError(`removal of container ${rec.id} is already in progress`);
    await this.locked(rec.id, async () => {
      if (l.removing || this.records.get(rec.id) !== rec) return;
      if (opts.force) {
        l.exitOnNext = true;
        this.cancelRestart(rec);
      }
      // A dead container is one whose removal failed: its workload may still run, so a forced
      // removal kills it again first.
      if (isActive(rec.state.status) || (opts.force && rec.state.status === 'dead')) {
        if (!opts.force) transition(rec.state.status, 'remove', rec.name);
        l.removing = true;
        const iso = this.isolationFor(rec.spec.isolation);
        await iso.kill(rec.spec, 9).catch((e) => this.log(`SIGKILL to ${rec.id}: ${String(e)}`));
        // only a frozen container needs the thaw; on a running one it fails, which changes nothing
        if (rec.state.status === 'paused') await iso.resume(rec.spec).catch(() => {});
        this.emit(rec, 'kill', { signal: '9' });
        if (l.exit && !(await waitFor(l.exit, 10_000))) {
          this.onExit(rec.id, l.runGen, {
            exitCode: 137,
            finishedAt: now(),
            oomKilled: false,
            error: 'container did not exit after SIGKILL',
          });
        }
        // A dead container has no exit watcher: ask the isolation for the end of the workload.
        if (!l.exit && rec.state.status === 'dead')
          await waitFor(
            iso.wait(rec.spec).catch(() => undefined),
            10_000,
          );
        await this.settle(rec.id);
      }
      l.removing = true;
      const prev = rec.state.status;
      rec.state.status = transition(prev, 'remove', rec.name);
      try {
        // Writes in flight land before the isolation clears the state directory.
        await l.saving;
        const iso = this.isolations[rec.spec.isolation];
        if (iso) await iso.remove(rec.spec);
        await this.network?.leave(rec.id);
        await this.records.delete(rec.id);
      } catch (e) {
        rec.state.status = transition(rec.state.status, 'remove-failed', rec.name);
        rec.state.error = `removal failed: ${(e as Error).message}`;
        l.removing = false;
        await this.persist(rec).catch((err) => this.log(`${rec.id}: recording the failed removal failed too: ${String(err)}`));
        // Nobody waiting for the removal may hang on one that failed.
        const failed: WaitResult = { StatusCode: rec.state.exitCode, Error: { Message: rec.state.error } };
        for (const w of l.removedWaiters.splice(0)) w(failed);
        throw e;
      }
      this.execs.dropContainer(rec.id);
      this.live.delete(rec.id);
      if (opts.volumes) {
        const inUse = this.volumeUsers();
        for (const m of rec.mounts) {
          if (m.Type === 'volume' && m.anonymous && m.Name) {
            await this.volumes.remove(m.Name, inUse, true).then(
              () => this.events.publish('volume', 'destroy', m.Name!, { driver: 'local' }),
              (e) => this.log(`volume ${m.Name}: ${String(e)}`),
            );
          }
        }
      }
      this.emit(rec, 'destroy');
      const result: WaitResult = { StatusCode: rec.state.exitCode, Error: null };
      for (const w of l.exitWaiters.splice(0)) w(result);
      for (const w of l.removedWaiters.splice(0)) w(result);
    });
  }

  /** volume name -> IDs of containers that mount it */
  volumeUsers(): Map<string, string[]> {
    const m = new Map<string, string[]>();
    for (const rec of this.records.all()) {
      for (const p of rec.mounts) {
        if (p.Type === 'volume' && p.Name) m.set(p.Name, [...(m.get(p.Name) ?? []), rec.id]);
      }
    }
    return m;
  }

  imagesInUse(): Set<string> {
    return new Set(this.records.all().map((r) => r.imageId));
  }

  async prune(filters: Record<string, string[]>): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let space = 0;
    for (const rec of this.records.all()) {
      if (isActive(rec.state.status) || rec.state.status === 'removing') continue;
      if (!matchesLabelFilters(rec, filters.label ?? [], filters['label!'] ?? [])) continue;
      if (filters.until?.length) {
        const until = Math.min(...filters.until.map(parseUntil));
        if (Date.parse(rec.created) >= until) continue;
      }
      space += await logSize(rec.spec.logPath);
      await this.remove(rec.id, { force: false, volumes: false }).then(
        () => deleted.push(rec.id),
        (e) => this.log(`prune ${rec.id}: ${String(e)}`),
      );
    }
    return { ContainersDeleted: deleted, SpaceReclaimed: space };
  }

  // ---------------------------------------------------------------------------------- wait

  /** Throws synchronously (404) before the caller commits to a response. */
  wait(ref: string, condition: WaitCondition = 'not-running'): Promise<WaitResult> {
    const rec = this.get(ref);
    const l = this.liveOf(rec.id);
    const current = (): WaitResult => ({ StatusCode: rec.state.exitCode, Error: rec.state.error ? { Message: rec.state.error } : null });
    if (condition === 'not-running') {
      if (!isActive(rec.state.status)) return Promise.resolve(current());
      return new Promise((resolve) => l.exitWaiters.push(resolve));
    }
    if (condition === 'next-exit') return new Promise((resolve) => l.exitWaiters.push(resolve));
    return new Promise((resolve) => l.removedWaiters.push(resolve));
  }

  // ---------------------------------------------------------------------------------- attach, logs

  /**
   * Attaches to a container. Before start (the `docker run` order: create, attach, wait,
   * start) the isolation holds the attachment and connects it when the workload starts, before
   * its first byte: that is the Isolation contract for attach on a created container.
   */
  async attach(ref: string, stdio: StdioStreams, opts: AttachOptions): Promise<Attachment> {
    const rec = this.get(ref);
    const st = rec.state.status;
    const wants: StdioStreams = {
      ...(opts.stdin && stdio.stdin && { stdin: stdio.stdin }),
      stdout: opts.stdout ? stdio.stdout : discard(),
      stderr: opts.stderr ? stdio.stderr : discard(),
    };
    if (opts.logs && rec.config.Tty !== true) {
      for await (const e of readLog(rec.spec.logPath, {})) (e.stream === 'stdout' ? wants.stdout : wants.stderr).write(e.log);
    }
    if (!opts.stream) {
      return { done: Promise.resolve(), detach: () => {} };
    }
    if (!ATTACH_BEFORE_START.has(st)) assertRunning(st, rec.id, 'attach');
    const a = await this.isolationFor(rec.spec.isolation).attach(rec.spec, wants);
    this.emit(rec, 'attach');
    return a;
  }

  /** The checks attach makes, run before a hijacked connection is upgraded (so errors are HTTP). */
  checkAttachable(ref: string): ContainerRecord {
    const rec = this.get(ref);
    if (!ATTACH_BEFORE_START.has(rec.state.status)) assertRunning(rec.state.status, rec.id, 'attach');
    return rec;
  }

  /** `docker logs`; without follow it ends at the current end of the log. */
  logs(ref: string, o: Omit<ReadLogOptions, 'finished' | 'onFinish'>): { tty: boolean; entries: AsyncGenerator<LogEntry> } {
    const rec = this.get(ref);
    const l = this.liveOf(rec.id);
    let finished = !isActive(rec.state.status);
    const exitP = l.exit ?? Promise.resolve();
    if (!finished) {
      // exitP never rejects (see watchExit): it only marks the log finished
      void exitP.then(() => {
        finished = true;
      });
    }
    return {
      tty: rec.config.Tty === true,
      entries: readLog(rec.spec.logPath, { ...o, finished: () => finished || !isActive(rec.state.status), onFinish: exitP }),
    };
  }

  async resize(ref: string, rows: number, cols: number): Promise<void> {
    const rec = this.get(ref);
    if (!isActive(rec.state.status)) throw new ConflictError(`Container ${rec.id} is not running`);
    await this.isolationFor(rec.spec.isolation).resize(rec.spec, rows, cols);
  }

  async top(ref: string): Promise<{ pid: number; ppid: number; cmd: string }[]> {
    const rec = this.get(ref);
    assertRunning(rec.state.status, rec.id, 'top');
    return this.isolationFor(rec.spec.isolation).top(rec.spec);
  }

  async stats(ref: string): Promise<Stats | undefined> {
    const rec = this.get(ref);
    if (!isActive(rec.state.status)) return undefined;
    return this.isolationFor(rec.spec.isolation).stats(rec.spec);
  }

  /** SizeRw and SizeRootFs (SizeRw plus the image's size), as `docker ps -s` shows them. */
  async sizes(ref: string): Promise<{ rw: number; rootFs: number }> {
    const rec = this.get(ref);
    const iso = this.isolations[rec.spec.isolation];
    const rw =
      (await iso?.sizeRw?.(rec.spec).catch((e: unknown) => {
        // a container mid-removal has no layer left to measure: it counts as empty
        this.log(`size of ${rec.id}'s writable layer: ${String(e)}`);
        return 0;
      })) ?? 0;
    // an image removed under the container (rmi -f) has no size left to add
    const image = await this.images.resolve(rec.imageId).catch(() => undefined);
    return { rw, rootFs: rw + (image?.size ?? 0) };
  }

  async archive(ref: string, containerPath: string, opts?: ArchiveOptions): Promise<Readable> {
    const rec = this.get(ref);
    return this.isolationFor(rec.spec.isolation).archive(rec.spec, containerPath, opts);
  }

  async extract(ref: string, containerPath: string, tar: Readable): Promise<void> {
    const rec = this.get(ref);
    if (rec.spec.readonlyRootfs) throw new ConflictError('container rootfs is marked read-only');
    await this.isolationFor(rec.spec.isolation).extract(rec.spec, containerPath, tar);
  }

  // ---------------------------------------------------------------------------------- exec

  createExec(ref: string, body: ExecCreateBody): string {
    const rec = this.get(ref);
    assertRunning(rec.state.status, rec.id, 'exec');
    const ex = this.execs.create(rec.id, body);
    this.emit(rec, `exec_create: ${ex.config.Cmd.join(' ')}`, { execID: ex.id });
    return ex.id;
  }

  getExec(id: string): ExecRecord {
    return this.execs.get(id);
  }

  /** Starts an exec; with `stdio` undefined it runs detached. Resolves once it is running. */
  async startExec(id: string, stdio: StdioStreams | undefined): Promise<{ attachment: Attachment; exit: Promise<ExitStatus> }> {
    const ex = this.getExec(id);
    if (ex.started) throw new ConflictError(`Error: Exec command ${id} has already run`);
    const rec = this.records.get(ex.containerId);
    if (!rec) throw new NotFoundError(`No such container: ${ex.containerId}`);
    assertRunning(rec.state.status, rec.id, 'exec');
    ex.started = true;
    ex.running = true;
    const cfg = ex.config;
    const process = {
      args: cfg.Cmd,
      env: [...rec.spec.process.env.filter((e) => !cfg.Env.some((x) => x.split('=')[0] === e.split('=')[0])), ...cfg.Env],
      cwd: cfg.WorkingDir !== '' ? cfg.WorkingDir : rec.spec.process.cwd,
      user: cfg.User !== '' ? cfg.User : rec.spec.process.user,
      tty: cfg.Tty,
      openStdin: cfg.AttachStdin,
    };
    const streams: StdioStreams = stdio
      ? {
          ...(cfg.AttachStdin && stdio.stdin && { stdin: stdio.stdin }),
          stdout: cfg.AttachStdout ? stdio.stdout : discard(),
          stderr: cfg.AttachStderr ? stdio.stderr : discard(),
        }
      : { stdout: discard(), stderr: discard() };
    let handle: ExecHandle;
    try {
      handle = await this.isolationFor(rec.spec.isolation).exec(rec.spec, { process, privileged: cfg.Privileged }, streams);
    } catch (e) {
      ex.running = false;
      ex.exitCode = failedStartExitCode(e, 126);
      throw e;
    }
    ex.handle = handle;
    ex.pid = handle.pid;
    this.emit(rec, `exec_start: ${cfg.Cmd.join(' ')}`, { execID: id });
    const exit = handle.wait().then(
      (st) => {
        ex.running = false;
        ex.exitCode = st.exitCode;
        this.emit(rec, 'exec_die', { execID: id, exitCode: String(st.exitCode) });
        return st;
      },
      (e) => {
        ex.running = false;
        ex.exitCode = 126;
        throw e;
      },
    );
    ex.exit = exit;
    return { attachment: handle.attachment, exit };
  }

  async resizeExec(id: string, rows: number, cols: number): Promise<void> {
    const ex = this.getExec(id);
    if (!ex.handle || !ex.running) throw new ConflictError(`Exec ${id} is not running`);
    await ex.handle.resize(rows, cols);
  }

  execsOf(containerId: string): string[] {
    return this.execs.of(containerId);
  }

  // ---------------------------------------------------------------------------------- list

  list(o: ListOptions): ContainerRecord[] {
    let recs = this.records.all().sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
    const f = o.filters;
    const all = o.all || o.limit > 0 || (f.status?.length ?? 0) > 0 || (f.exited?.length ?? 0) > 0;
    if (!all) recs = recs.filter((r) => isActive(r.state.status));
    const nets = this.network;
    // --filter network=: a network's name or id, the ones the container is on
    const onNetworks = nets ? (r: ContainerRecord) => nets.networksOf(r.id).flatMap((x) => [x.net.Name, x.net.Id]) : undefined;
    recs = recs.filter((r) => matchesFilters(r, f, (ref) => this.records.find(ref), onNetworks));
    if (o.limit > 0) recs = recs.slice(0, o.limit);
    return recs;
  }
}

/** Resolves true when `p` settles within `ms`, false on timeout. */
function waitFor(p: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  if (!p) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    p.then(
      () => {
        clearTimeout(t);
        resolve(true);
      },
      () => {
        clearTimeout(t);
        resolve(true);
      },
    );
  });
}
