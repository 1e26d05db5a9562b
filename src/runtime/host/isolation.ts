/**
 * --isolation=container: each container is run by its own `tvm-agent supervise` process
 * (namespaces, cgroups, capabilities, seccomp; see docs/agent-protocol.md), which owns the
 * workload's stdio, log and exit status and outlives the daemon. This class keeps nothing that
 * cannot be rebuilt from the state directory: a new instance recovers every container.
 *
 * State dir (spec.stateDir) contents written here: host.json (image + lower dir + cgroup),
 * upper/, work/ (overlay), rootfs/ (mount point inside the container's mount namespace).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { writeJsonAtomic } from '../../atomic-file.js';
import { ConflictError, InvalidParameterError, NotFoundError, TvmError } from '../../errors.js';
import type { AgentClient } from '../../guest-agent/client.js';
import { AgentError, parseExitStatus, type AgentExitStatus } from '../../guest-agent/protocol.js';
import type { BaseDisks, ImageStore } from '../../images/types.js';
import type {
  Attachment, Change, ContainerSpec, ExecHandle, ExecSpec, ExitStatus, Isolation, RunningInfo, Stats, StdioStreams,
} from '../types.js';
import { BaseMounts } from './base-mounts.js';
import { containerUserns, giveToRoot, overlayDirsOf, ownStateForRoot } from './remap.js';
import type { IdMappings } from '../userns.js';
import { containerToHost, hostToContainer } from './remap-ids.js';
import { idShiftTag } from '../../disks/base-disk.js';
import { cgroupFor, removeCgroup, type CgroupConfig } from './cgroups.js';
import { agentProcess, agentResourceChanges, agentSpec, validateProcess, validateSpec } from './spec.js';
import type { Resources } from '../types.js';
import { attachStreams } from './stdio.js';
import { prepareEtcFiles } from './etc-files.js';
import { connectSupervisor, spawnSupervisor, supervisorPid } from './supervisor.js';
import { archiveFrom, extractTo, mountStoppedRoot, type RootView } from './archive.js';
import { createSizedLayer, layerDirs, mountSizedLayer, removeSizedLayer } from './writable-layer.js';
import { DOCKER_INIT_PATHS, overlayChanges } from './changes.js';

export interface HostIsolationOptions {
  dataRoot: string;
  runRoot: string;
  agentPath: string;
  baseDisks: BaseDisks;
  images: ImageStore;
  /** seconds an exited, unclaimed supervisor waits before exiting (the agent's default if unset) */
  supervisorLinger?: number;
  /** the cgroup hierarchy to use; default: detected under /sys/fs/cgroup */
  cgroup?: { version: 1 | 2; root: string };
  /**
   * `tvm daemon --userns-remap`: new containers (unless `--userns=host`) run in a user namespace
   * with these maps, on base disks whose owners are shifted to match (`baseDisks` built with the
   * maps as idShift)
   */
  userns?: { maps: IdMappings; baseDisks: BaseDisks };
}

interface HostRecord {
  imageId: string;
  lower: string;
  cgroup: CgroupConfig;
  /** the user namespace maps the container was created with (absent: the host's) */
  userns?: IdMappings;
  /** `--storage-opt size=`: upper/ and work/ are on a loop-mounted ext4 of this many usable bytes */
  layer?: { sizeBytes: number };
}

interface PendingAttach {
  stdio: StdioStreams;
  resolve: (a: Attachment) => void;
  reject: (e: unknown) => void;
  detached: boolean;
}

/** What this process knows about a container; all of it can be rebuilt. */
interface Live {
  client?: AgentClient;
  exited?: Promise<ExitStatus>;
  pending: PendingAttach[];
  startWaiters: (() => void)[];
}

const RECORD = 'host.json';

export function parseSignal(sig: string | number): number {
  if (typeof sig === 'number') {
    if (Number.isInteger(sig) && sig >= 1 && sig <= 64) return sig;
  } else {
    const s = sig.trim();
    if (/^\d+$/.test(s)) return parseSignal(Number(s));
    const name = s.toUpperCase().startsWith('SIG') ? s.toUpperCase() : `SIG${s.toUpperCase()}`;
    const n = (os.constants.signals as Record<string, number>)[name];
    if (n !== undefined) return n;
  }
  throw new InvalidParameterError(`invalid signal: ${JSON.stringify(sig)}`);
}

function toExit(s: AgentExitStatus): ExitStatus {
  const out: ExitStatus = { exitCode: s.exitCode, finishedAt: s.finishedAt, oomKilled: s.oomKilled };
  if (s.error) out.error = s.error;
  return out;
}

const SIGKILL = 9;

export class HostIsolation implements Isolation {
  readonly kind = 'container' as const;
  private readonly baseMounts: BaseMounts;
  /** mounts of id-shifted base disks, one directory per set of maps */
  private readonly remappedMounts = new Map<string, BaseMounts>();
  private readonly lives = new Map<string, Live>();

  constructor(private readonly opts: HostIsolationOptions) {
    this.baseMounts = new BaseMounts(opts.runRoot);
  }

  private live(id: string): Live {
    let l = this.lives.get(id);
    if (!l) {
      l = { pending: [], startWaiters: [] };
      this.lives.set(id, l);
    }
    return l;
  }

  private async readRecord(spec: ContainerSpec): Promise<HostRecord> {
    try {
      return JSON.parse(await readFile(path.join(spec.stateDir, RECORD), 'utf8')) as HostRecord;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`No such container: ${spec.id}`);
      throw e;
    }
  }

  private async readExitFile(spec: ContainerSpec): Promise<ExitStatus | undefined> {
    try {
      return toExit(parseExitStatus(JSON.parse(await readFile(path.join(spec.stateDir, 'exit.json'), 'utf8'))));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** The supervisor's client if one is alive (connecting after a daemon restart). */
  private async agent(spec: ContainerSpec): Promise<AgentClient | undefined> {
    const l = this.live(spec.id);
    if (l.client && !l.client.closed) return l.client;
    l.client = undefined;
    if (!(await supervisorPid(spec.stateDir))) return undefined;
    try {
      l.client = await connectSupervisor(spec.stateDir, this.opts.runRoot);
    } catch {
      return undefined; // exiting right now: its exit file is the truth
    }
    return l.client;
  }

  private async running(spec: ContainerSpec): Promise<AgentClient> {
    const c = await this.agent(spec);
    if (c) {
      const st = await c.state();
      if (st.status === 'running' || st.status === 'paused') return c;
    }
    await this.readRecord(spec);
    throw new ConflictError(`Container ${spec.id} is not running`);
  }

  /** Resolves with the exit status once the main process has exited; then lets the supervisor go. */
  private watchExit(spec: ContainerSpec, client: AgentClient): Promise<ExitStatus> {
    const p = client.wait().then(
      async (s) => {
        await client.shutdown().catch(() => {});
        client.close();
        return toExit(s);
      },
      async (e) => {
        // connection lost: the supervisor wrote the status before it went away, or it crashed
        const f = await this.readExitFile(spec);
        if (f) return f;
        throw e instanceof TvmError ? e : new TvmError('ERR_SUPERVISOR_LOST', `supervisor of ${spec.id} lost`, 500, { cause: e });
      },
    );
    p.catch(() => {});
    return p;
  }

  /** Where a container with these maps has its base disks mounted (a user namespace's are id-shifted). */
  private mountsFor(userns: IdMappings | undefined): BaseMounts {
    if (!userns) return this.baseMounts;
    const tag = idShiftTag(userns);
    let m = this.remappedMounts.get(tag);
    if (!m) {
      m = new BaseMounts(path.join(this.opts.runRoot, `userns-${tag}`));
      this.remappedMounts.set(tag, m);
    }
    return m;
  }

  private disksFor(userns: IdMappings | undefined): BaseDisks {
    if (!userns) return this.opts.baseDisks;
    if (this.opts.userns && idShiftTag(this.opts.userns.maps) === idShiftTag(userns)) return this.opts.userns.baseDisks;
    throw new TvmError('ERR_USERNS_MISMATCH', 'this container was created by a daemon with another --userns-remap: start the daemon with that remapping to run it', 409);
  }

  /** Mounts (once) a recorded container's base disk; returns the lower dir. */
  private async acquireBase(rec: HostRecord): Promise<string> {
    const disk = await this.disksFor(rec.userns).ensure(await this.opts.images.resolve(rec.imageId));
    return this.mountsFor(rec.userns).acquire(rec.imageId, disk);
  }

  async create(spec: ContainerSpec): Promise<void> {
    validateSpec(spec);
    if (existsSync(path.join(spec.stateDir, RECORD))) throw new ConflictError(`container ${spec.id} already exists`);
    const userns = containerUserns(this.opts.userns?.maps, spec);
    const image = await this.opts.images.resolve(spec.imageId);
    const disk = await this.disksFor(userns).ensure(image);
    const mounts = this.mountsFor(userns);
    const stateDirExisted = existsSync(spec.stateDir);
    try {
      // host.json is what keeps the base mount in use: written under the mount's lock
      await mounts.acquire(image.id, disk, async (lower) => {
        await mkdir(spec.stateDir, { recursive: true, mode: 0o700 });
        const sized = spec.storage?.sizeBytes;
        if (sized) await createSizedLayer(spec.stateDir, sized);
        for (const d of sized ? ['rootfs'] : ['upper', 'work', 'rootfs']) await mkdir(path.join(spec.stateDir, d), { mode: 0o755 });
        const cgroup = this.opts.cgroup ? { ...this.opts.cgroup, path: `tvm/${spec.id}` } : cgroupFor(spec.id);
        const rec: HostRecord = { imageId: image.id, lower, cgroup, ...(userns && { userns }), ...(sized && { layer: { sizeBytes: sized } }) };
        if (userns) await ownStateForRoot(spec.stateDir, await overlayDirsOf(spec.stateDir), userns);
        await writeJsonAtomic(path.join(spec.stateDir, RECORD), rec);
      });
    } catch (e) {
      // never delete through a live mount: if the layer cannot be unmounted, the state dir stays
      if (await removeSizedLayer(spec.stateDir).then(() => true, () => false)) {
        if (stateDirExisted) {
          for (const d of ['upper', 'work', 'rootfs', RECORD]) await rm(path.join(spec.stateDir, d), { recursive: true, force: true });
        } else {
          await rm(spec.stateDir, { recursive: true, force: true });
        }
      }
      await mounts.release(image.id, () => this.imageInUse(image.id, spec.stateDir, mounts.mountPoint(image.id))).catch(() => {});
      throw e;
    }
  }

  async start(spec: ContainerSpec): Promise<RunningInfo> {
    const rec = await this.readRecord(spec);
    const l = this.live(spec.id);
    let client = await this.agent(spec);
    if (client) {
      const st = await client.state();
      if ((st.status === 'running' || st.status === 'paused') && st.pid && st.startedAt) {
        return { pid: st.pid, startedAt: st.startedAt };
      }
      // a supervisor from an earlier run (exited) or a start interrupted half-way: replace it
      await client.shutdown().catch(() => {});
      client.close();
      client = undefined;
    }
    const lower = await this.acquireBase(rec);
    await unlink(path.join(spec.stateDir, 'exit.json')).catch(() => {});
    await removeCgroup(rec.cgroup).catch(() => {});
    // still mounted after a daemon restart; mounted again after a host reboot
    if (rec.layer) await mountSizedLayer(spec.stateDir);
    await spawnSupervisor(this.opts.agentPath, spec.stateDir, this.opts.supervisorLinger);
    client = await connectSupervisor(spec.stateDir, this.opts.runRoot);
    l.client = client;
    const aspec = agentSpec(spec, lower, rec.cgroup);
    if (rec.userns) aspec.userns = rec.userns;
    Object.assign(aspec.rootfs, layerDirs(spec.stateDir, rec.layer !== undefined));
    // Docker's per-container /etc files go first: user mounts may be nested below /etc
    aspec.mounts.unshift(...(await prepareEtcFiles(spec.stateDir, aspec.hostname, spec.network, spec.mounts.map((m) => m.destination), spec.processOptions, spec.netns)));
    // the container's root owns its /etc files and fresh volumes, as with Docker's remapping
    if (rec.userns) await giveToRoot(aspec.mounts.filter((m) => m.type === 'volume' || (m.type === 'bind' && path.dirname(m.source ?? '') === spec.stateDir)).map((m) => m.source!), rec.userns);
    try {
      await client.create(aspec);
    } catch (e) {
      await client.shutdown().catch(() => {});
      client.close();
      if (e instanceof AgentError && e.agentCode === 'ERR_BAD_SPEC') throw new InvalidParameterError(e.message);
      throw e;
    }
    // attach requests made before start get every byte
    const pending = l.pending.splice(0);
    for (const p of pending) {
      if (p.detached) continue;
      try {
        p.resolve(await attachStreams(client, p.stdio, { tty: spec.process.tty, openStdin: spec.process.openStdin }));
      } catch (e) {
        p.reject(e);
      }
    }
    l.exited = undefined;
    let info: RunningInfo;
    try {
      info = await client.start();
    } catch (e) {
      l.exited = this.watchExit(spec, client);
      this.wakeStartWaiters(l);
      if (e instanceof AgentError && e.agentCode === 'ERR_EXEC') {
        // Docker: the start fails, and the container records exit 127/126 with the message
        throw new TvmError('ERR_EXEC', e.message, 400, { cause: e });
      }
      throw e;
    }
    l.exited = this.watchExit(spec, client);
    this.wakeStartWaiters(l);
    return info;
  }

  private wakeStartWaiters(l: Live): void {
    for (const w of l.startWaiters.splice(0)) w();
  }

  async attach(spec: ContainerSpec, stdio: StdioStreams): Promise<Attachment> {
    await this.readRecord(spec);
    const client = await this.agent(spec);
    if (client) {
      const st = await client.state();
      if (st.status === 'running' || st.status === 'paused') {
        return attachStreams(client, stdio, { tty: spec.process.tty, openStdin: spec.process.openStdin });
      }
    }
    // not running: connected at the next start (docker run / start -a attach first)
    const l = this.live(spec.id);
    return new Promise<Attachment>((resolve, reject) => {
      const entry: PendingAttach = { stdio, resolve, reject, detached: false };
      l.pending.push(entry);
      // the caller gets an Attachment now; its streams appear at start
      let inner: Attachment | undefined;
      let doneResolve!: () => void;
      const done = new Promise<void>((r) => (doneResolve = r));
      entry.resolve = (a) => {
        inner = a;
        a.done.then(doneResolve, doneResolve);
      };
      entry.reject = () => doneResolve();
      resolve({
        done,
        detach() {
          entry.detached = true;
          inner?.detach();
          doneResolve();
        },
      });
    });
  }

  async resize(spec: ContainerSpec, rows: number, cols: number): Promise<void> {
    const c = await this.running(spec);
    await c.resize(rows, cols);
  }

  async wait(spec: ContainerSpec): Promise<ExitStatus> {
    await this.readRecord(spec);
    const l = this.live(spec.id);
    for (;;) {
      if (l.exited) return l.exited;
      const client = await this.agent(spec);
      if (client) {
        const st = await client.state();
        if (st.status !== 'created') {
          l.exited = this.watchExit(spec, client);
          continue;
        }
      }
      const f = await this.readExitFile(spec);
      if (f) return f;
      // created, never started: Docker's wait blocks until it has run
      await new Promise<void>((r) => l.startWaiters.push(r));
    }
  }

  async kill(spec: ContainerSpec, signal: string | number): Promise<void> {
    const sig = parseSignal(signal);
    const c = await this.running(spec);
    await c.signal(sig);
    // A SIGKILL stays pending in a frozen cgroup (a pause, or a copy in progress): thaw so it lands.
    if (sig === SIGKILL) {
      const st = await c.state().catch(() => undefined);
      if (st?.status === 'paused') await c.resume().catch(() => {});
    }
  }

  async pause(spec: ContainerSpec): Promise<void> {
    const c = await this.running(spec);
    try {
      await c.pause();
    } catch (e) {
      if (e instanceof AgentError && e.agentCode === 'ERR_STATE') throw new ConflictError(`Container ${spec.id} is already paused`);
      throw e;
    }
  }

  async resume(spec: ContainerSpec): Promise<void> {
    const c = await this.running(spec);
    try {
      await c.resume();
    } catch (e) {
      if (e instanceof AgentError && e.agentCode === 'ERR_STATE') throw new ConflictError(`Container ${spec.id} is not paused`);
      throw e;
    }
  }

  async exec(spec: ContainerSpec, exec: ExecSpec, stdio: StdioStreams): Promise<ExecHandle> {
    validateProcess(spec, exec.process, 'exec.process');
    const c = await this.running(spec);
    const id = randomBytes(16).toString('hex');
    await c.exec(id, agentProcess(exec.process), exec.privileged);
    const attachment = await attachStreams(c, stdio, { tty: exec.process.tty, openStdin: exec.process.openStdin, exec: id });
    let pid = 0;
    try {
      pid = (await c.startExec(id)).pid;
    } catch (e) {
      // a failed exec reports 126/127 and its message through wait(), as Docker's exec inspect does
      if (!(e instanceof AgentError && e.agentCode === 'ERR_EXEC')) {
        attachment.detach();
        throw e;
      }
    }
    const status = c.wait(id).then(toExit);
    status.catch(() => {});
    return {
      pid,
      attachment,
      resize: (rows, cols) => c.resize(rows, cols, id),
      wait: () => status,
    };
  }

  async update(spec: ContainerSpec, changes: Resources): Promise<void> {
    const c = await this.running(spec);
    try {
      await c.update(agentResourceChanges(changes));
    } catch (e) {
      // the kernel's refusal (a limit below the usage, ...) is the user's to fix: Docker's 500 text
      if (e instanceof AgentError && e.agentCode === 'ERR_SYSTEM') throw new TvmError('ERR_UPDATE', e.message, 500, { cause: e });
      if (e instanceof AgentError && e.agentCode === 'ERR_BAD_SPEC') throw new InvalidParameterError(e.message);
      throw e;
    }
  }

  async top(spec: ContainerSpec): Promise<{ pid: number; ppid: number; cmd: string }[]> {
    const c = await this.running(spec);
    return c.ps();
  }

  async stats(spec: ContainerSpec): Promise<Stats> {
    const c = await this.running(spec);
    const r = await c.stats();
    const mem = r.memory as { usage: number; limit: number; maxUsage: number };
    const cpu = r.cpu as { totalUsageNs: number; systemUsageNs: number; onlineCpus: number };
    const pids = r.pids as { current: number; limit: number };
    // v1 reports "unlimited" as a huge number, v2 as max (-1): Docker shows the host's memory
    const total = os.totalmem();
    const limit = mem.limit < 0 || mem.limit > total ? total : mem.limit;
    const out: Stats = {
      read: new Date().toISOString(),
      memory: { usage: mem.usage, limit, maxUsage: mem.maxUsage },
      cpu: { totalUsageNs: cpu.totalUsageNs, systemUsageNs: cpu.systemUsageNs, onlineCpus: cpu.onlineCpus },
      pids: { current: pids.current },
    };
    if (pids.limit > 0) out.pids.limit = pids.limit;
    return out;
  }

  /** Does any other container's record still use this image's base mount? */
  private async imageInUse(imageId: string, exceptStateDir: string, lower?: string): Promise<boolean> {
    const parents = new Set([path.join(this.opts.dataRoot, 'containers'), path.dirname(exceptStateDir)]);
    for (const parent of parents) {
      let names: string[];
      try {
        names = await readdir(parent);
      } catch {
        continue;
      }
      for (const n of names) {
        const dir = path.join(parent, n);
        if (path.resolve(dir) === path.resolve(exceptStateDir)) continue;
        try {
          const rec = JSON.parse(await readFile(path.join(dir, RECORD), 'utf8')) as HostRecord;
          // a plain and an id-shifted mount of one image are separate: `lower` tells which
          if (rec.imageId === imageId && (lower === undefined || rec.lower === lower)) return true;
        } catch {
          // not a container of ours
        }
      }
    }
    return false;
  }

  async remove(spec: ContainerSpec): Promise<void> {
    let rec: HostRecord;
    try {
      rec = await this.readRecord(spec);
    } catch (e) {
      if (e instanceof NotFoundError) {
        // a create cut short (daemon killed) may have left its layer mounted: never rm through it
        await removeSizedLayer(spec.stateDir);
        await rm(spec.stateDir, { recursive: true, force: true });
        return; // already gone: remove is idempotent
      }
      throw e;
    }
    const client = await this.agent(spec);
    if (client) {
      const st = await client.state();
      if (st.status === 'running' || st.status === 'paused') {
        throw new ConflictError(`You cannot remove a running container ${spec.id}. Stop the container before attempting removal or force remove`);
      }
      await client.shutdown().catch(() => {});
      client.close();
    }
    const l = this.live(spec.id);
    for (const p of l.pending.splice(0)) p.reject(new NotFoundError(`No such container: ${spec.id}`));
    this.lives.delete(spec.id);
    await removeCgroup(rec.cgroup);
    await removeSizedLayer(spec.stateDir);
    await rm(spec.stateDir, { recursive: true, force: true });
    await this.mountsFor(rec.userns).release(rec.imageId, () => this.imageInUse(rec.imageId, spec.stateDir, rec.lower));
  }

  async recover(spec: ContainerSpec): Promise<{ running: RunningInfo } | { exited: ExitStatus } | { lost: true }> {
    try {
      await this.readRecord(spec);
    } catch (e) {
      if (e instanceof NotFoundError) return { lost: true };
      throw e;
    }
    const client = await this.agent(spec);
    if (client) {
      const st = await client.state();
      if ((st.status === 'running' || st.status === 'paused') && st.pid && st.startedAt) {
        const l = this.live(spec.id);
        if (!l.exited) l.exited = this.watchExit(spec, client);
        return { running: { pid: st.pid, startedAt: st.startedAt } };
      }
      if (st.exit) {
        // nothing left to supervise: collect the status and let the supervisor go
        await client.shutdown().catch(() => {});
        client.close();
        return { exited: toExit(st.exit) };
      }
    }
    const f = await this.readExitFile(spec);
    if (f) return { exited: f };
    return { lost: true };
  }

  async archive(spec: ContainerSpec, containerPath: string): Promise<Readable> {
    const rec = await this.readRecord(spec);
    // a remapped container's files are owned by host ids: the user sees container ids
    return archiveFrom(await this.rootView(spec, rec), containerPath, rec.userns && hostToContainer(rec.userns));
  }

  async extract(spec: ContainerSpec, containerPath: string, tar: Readable): Promise<void> {
    const rec = await this.readRecord(spec);
    await extractTo(await this.rootView(spec, rec), containerPath, tar, rec.userns && containerToHost(rec.userns));
  }

  /** The container's filesystem as the workload sees it: live through /proc/<pid>/root, or, for
   * a stopped container, its overlay mounted on the host for the duration of the copy. */
  private async rootView(spec: ContainerSpec, rec: HostRecord): Promise<RootView> {
    const c = await this.agent(spec);
    if (c) {
      const st = await c.state();
      if ((st.status === 'running' || st.status === 'paused') && st.pid) {
        // frozen while we walk it, so that no path we resolved can be swapped for a symlink
        // under us (the docker cp race, CVE-2018-15664, fixed the same way in Docker)
        const freeze = st.status === 'running';
        if (freeze) await c.pause();
        return { root: `/proc/${st.pid}/root`, cleanup: async () => { if (freeze) await c.resume().catch(() => {}); } };
      }
    }
    await this.acquireBase(rec);
    if (rec.layer) await mountSizedLayer(spec.stateDir);
    const dirs = layerDirs(spec.stateDir, rec.layer !== undefined);
    return mountStoppedRoot(path.join(this.opts.runRoot, 'tmp'), rec.lower, dirs.upper, dirs.work);
  }

  /** `docker diff`: the upper directory against the image's base disk (running or stopped). */
  async changes(spec: ContainerSpec): Promise<Change[]> {
    const rec = await this.readRecord(spec);
    await this.acquireBase(rec);
    if (rec.layer) await mountSizedLayer(spec.stateDir);
    return overlayChanges(layerDirs(spec.stateDir, rec.layer !== undefined).upper, rec.lower, { hidden: DOCKER_INIT_PATHS });
  }
}
