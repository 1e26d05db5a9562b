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
import { mkdir, readFile, readdir, rm, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { writeJsonAtomic } from '../../atomic-file.js';
import { ConflictError, InvalidParameterError, NotFoundError, TvmError } from '../../errors.js';
import type { AgentClient } from '../../guest-agent/client.js';
import { AgentError } from '../../guest-agent/protocol.js';
import type { BaseDisks, ImageStore } from '../../images/types.js';
import type { ArchiveOptions, Change, ContainerSpec, ExitStatus, Isolation, RunningInfo } from '../types.js';
import { BaseMounts, detachLoop, isMountPoint, unmountLoop, unmountedLoopsOver } from './base-mounts.js';
import { containerUserns, giveToRoot, overlayDirsOf, ownStateForRoot } from './remap.js';
import type { IdMappings } from '../userns.js';
import { containerToHost, hostToContainer } from './remap-ids.js';
import { idShiftTag } from '../../disks/base-disk.js';
import { cgroupFor, removeCgroup, type CgroupConfig } from './cgroups.js';
import { agentSpec, validateSpec } from './spec.js';
import { prepareEtcFiles, rewriteResolvConfForEmbeddedDns } from './etc-files.js';
import { EMBEDDED_DNS_ADDRESS } from '../../network/dns-netns.js';
import { connectSupervisor, spawnSupervisor, supervisorPid } from './supervisor.js';
import { archiveFrom, extractTo, mountStoppedRoot, type RootView } from './archive.js';
import { createSizedLayer, layerDirs, mountSizedLayer, removeSizedLayer } from './writable-layer.js';
import { DOCKER_INIT_PATHS, overlayChanges } from './changes.js';
import { treeSize } from './tree-size.js';
import { hideLostFound, LOST_FOUND } from './lost-found.js';
import { copyUpVolumes } from './copy-up.js';
import { AgentSessionIsolation, readExitStatus, readStateRecord, toExit } from '../agent-session.js';
import { changesTar } from './layer-tar.js';

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
  /** where failures nobody waits for go (a thaw or unmount after a copy); default: stderr */
  log?: (msg: string) => void;
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

const RECORD = 'host.json';

/** `docker cp`/export views open on a running container, and whether they froze it */
interface CopyFreeze {
  views: number;
  froze: boolean;
  freezing?: Promise<void>;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class HostIsolation extends AgentSessionIsolation implements Isolation {
  readonly kind = 'container' as const;
  private readonly baseMounts: BaseMounts;
  /** mounts of id-shifted base disks, one directory per set of maps */
  private readonly remappedMounts = new Map<string, BaseMounts>();
  private readonly copyFreezes = new Map<string, CopyFreeze>();

  constructor(private readonly opts: HostIsolationOptions) {
    super();
    this.baseMounts = new BaseMounts(opts.runRoot);
  }

  private log(msg: string): void {
    (this.opts.log ?? ((m: string) => process.stderr.write(`tvm daemon: ${m}\n`)))(msg);
  }

  private readRecord(spec: ContainerSpec): Promise<HostRecord> {
    return readStateRecord<HostRecord>(spec, RECORD);
  }

  protected async checkRecord(spec: ContainerSpec): Promise<void> {
    await this.readRecord(spec);
  }

  /** the host supervisor lingers until the status is collected: let it go */
  protected override async afterExit(_spec: ContainerSpec, client: AgentClient): Promise<void> {
    // one that went away by itself meanwhile has nothing left to let go of
    await client.shutdown().catch(() => {});
  }

  private readExitFile(spec: ContainerSpec): Promise<ExitStatus | undefined> {
    return readExitStatus(spec);
  }

  /** A client of the container's supervisor if one is alive (connecting after a daemon restart). */
  protected async connectAgent(spec: ContainerSpec): Promise<AgentClient | undefined> {
    if (!(await supervisorPid(spec.stateDir))) return undefined;
    try {
      return await connectSupervisor(spec.stateDir, this.opts.runRoot);
    } catch {
      return undefined; // exiting right now: its exit file is the truth
    }
  }

  private agent(spec: ContainerSpec): Promise<AgentClient | undefined> {
    return this.sessions.agent(spec);
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
    throw new TvmError(
      'ERR_USERNS_MISMATCH',
      'this container was created by a daemon with another --userns-remap: start the daemon with that remapping to run it',
      409,
    );
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
        const rec: HostRecord = {
          imageId: image.id,
          lower,
          cgroup,
          ...(userns && { userns }),
          ...(sized && { layer: { sizeBytes: sized } }),
        };
        if (userns) await ownStateForRoot(spec.stateDir, await overlayDirsOf(spec.stateDir), userns);
        await hideLostFound(lower, layerDirs(spec.stateDir, Boolean(sized)).upper);
        await writeJsonAtomic(path.join(spec.stateDir, RECORD), rec);
      });
    } catch (e) {
      // never delete through a live mount: if the layer cannot be unmounted, the state dir stays
      if (
        await removeSizedLayer(spec.stateDir).then(
          () => true,
          () => false,
        )
      ) {
        if (stateDirExisted) {
          for (const d of ['upper', 'work', 'rootfs', RECORD]) await rm(path.join(spec.stateDir, d), { recursive: true, force: true });
        } else {
          await rm(spec.stateDir, { recursive: true, force: true });
        }
      }
      await mounts
        .release(image.id, () => this.imageInUse(image.id, spec.stateDir, mounts.mountPoint(image.id)))
        .catch((err: unknown) =>
          this.log(`create of ${spec.id} failed; its base disk stays mounted until the next daemon start: ${errText(err)}`),
        );
      throw e;
    }
  }

  async start(spec: ContainerSpec): Promise<RunningInfo> {
    const rec = await this.readRecord(spec);
    const l = this.sessions.live(spec.id);
    let client = await this.agent(spec);
    if (client) {
      const st = await client.state();
      if ((st.status === 'running' || st.status === 'paused') && st.pid && st.startedAt) {
        return { pid: st.pid, startedAt: st.startedAt };
      }
      // a supervisor from an earlier run (exited) or a start interrupted half-way: replace it
      // the supervisor may already be gone; one left over exits by itself after its linger time
      await client.shutdown().catch(() => {});
      client.close();
      client = undefined;
    }
    const lower = await this.acquireBase(rec);
    // no exit file from an earlier run is the usual case
    await unlink(path.join(spec.stateDir, 'exit.json')).catch(() => {});
    // a stale group from an earlier run, if any: the agent creates the group afresh and fails loudly if it cannot
    await removeCgroup(rec.cgroup).catch(() => {});
    // still mounted after a daemon restart; mounted again after a host reboot
    if (rec.layer) await mountSizedLayer(spec.stateDir);
    await copyUpVolumes(spec.mounts, lower);
    await spawnSupervisor(this.opts.agentPath, spec.stateDir, this.opts.supervisorLinger);
    client = await connectSupervisor(spec.stateDir, this.opts.runRoot);
    l.client = client;
    const aspec = agentSpec(spec, lower, rec.cgroup);
    if (rec.userns) aspec.userns = rec.userns;
    Object.assign(aspec.rootfs, layerDirs(spec.stateDir, rec.layer !== undefined));
    // Docker's per-container /etc files go first: user mounts may be nested below /etc
    aspec.mounts.unshift(
      ...(await prepareEtcFiles(
        spec.stateDir,
        aspec.hostname,
        spec.network,
        spec.mounts.map((m) => m.destination),
        spec.processOptions,
        spec.netns,
      )),
    );
    // the container's root owns its /etc files and fresh volumes, as with Docker's remapping
    if (rec.userns)
      await giveToRoot(
        aspec.mounts
          .filter((m) => m.type === 'volume' || (m.type === 'bind' && path.dirname(m.source ?? '') === spec.stateDir))
          .map((m) => m.source!),
        rec.userns,
      );
    try {
      await client.create(aspec);
    } catch (e) {
      // the supervisor may already be gone; one left over exits by itself after its linger time
      await client.shutdown().catch(() => {});
      client.close();
      if (e instanceof AgentError && e.agentCode === 'ERR_BAD_SPEC') throw new InvalidParameterError(e.message);
      throw e;
    }
    // attach requests made before start get every byte
    await this.sessions.connectPending(spec, client);
    return this.sessions.startWorkload(spec, client);
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
        throw new ConflictError(
          `You cannot remove a running container ${spec.id}. Stop the container before attempting removal or force remove`,
        );
      }
      // the supervisor may already be gone; one left over exits by itself after its linger time
      await client.shutdown().catch(() => {});
      client.close();
    }
    this.sessions.forget(spec, new NotFoundError(`No such container: ${spec.id}`));
    await removeCgroup(rec.cgroup);
    await removeSizedLayer(spec.stateDir);
    await rm(spec.stateDir, { recursive: true, force: true });
    await this.mountsFor(rec.userns).release(rec.imageId, () => this.imageInUse(rec.imageId, spec.stateDir, rec.lower));
  }

  /**
   * Daemon start: a daemon killed mid-copy leaves its overlay view mounted, one killed during
   * `rm -f` of many containers leaves base disks mounted (or their loop devices attached) that
   * no container references any more. Views go first: they pin the base mounts under them.
   */
  async reconcile(): Promise<string[]> {
    const done: string[] = [];
    const tmp = path.join(this.opts.runRoot, 'tmp');
    // no tmp directory: no copy view was left behind
    for (const name of await readdir(tmp).catch(() => [] as string[])) {
      if (!name.startsWith('cp-')) continue;
      const dir = path.join(tmp, name);
      await unmountLoop(dir, 'ERR_VIEW_UNMOUNT');
      await rmdir(dir);
      done.push(`copy view ${dir}`);
    }
    const sets = [this.baseMounts];
    // no run root yet: nothing was mounted to adopt
    for (const name of await readdir(this.opts.runRoot).catch(() => [] as string[])) {
      if (!name.startsWith('userns-')) continue;
      const tag = name.slice('userns-'.length);
      let m = this.remappedMounts.get(tag);
      if (!m) {
        m = new BaseMounts(path.join(this.opts.runRoot, name));
        this.remappedMounts.set(tag, m);
      }
      sets.push(m);
    }
    const nobody = path.join(this.opts.dataRoot, 'containers', '.none');
    for (const mounts of sets) {
      for (const id of await mounts.mountedImages()) {
        const mp = mounts.mountPoint(id);
        const was = await isMountPoint(mp);
        await mounts.release(id, () => this.imageInUse(id, nobody, mp));
        if (was && !(await isMountPoint(mp))) done.push(`base disk mount ${mp}`);
      }
    }
    for (const dev of await unmountedLoopsOver(path.join(this.opts.dataRoot, 'disks', 'base'))) {
      await detachLoop(dev);
      done.push(`loop device ${dev}`);
    }
    return done;
  }

  async recover(spec: ContainerSpec): Promise<{ running: RunningInfo } | { exited: ExitStatus } | { lost: true }> {
    if (!(await this.recorded(spec))) return { lost: true };
    const client = await this.agent(spec);
    if (client) {
      const st = await client.state();
      if ((st.status === 'running' || st.status === 'paused') && st.pid && st.startedAt) {
        this.adopt(spec, client);
        return { running: { pid: st.pid, startedAt: st.startedAt } };
      }
      if (st.exit) {
        // nothing left to supervise: collect the status and let the supervisor go
        // the supervisor may already be gone; one left over exits by itself after its linger time
        await client.shutdown().catch(() => {});
        client.close();
        return { exited: toExit(st.exit) };
      }
    }
    const f = await this.readExitFile(spec);
    if (f) return { exited: f };
    return { lost: true };
  }

  /** The embedded DNS now answers in the container's namespace: its resolv.conf says so (unless the user mounted their own). */
  async embeddedDnsStarted(spec: ContainerSpec): Promise<void> {
    if (spec.mounts.some((m) => m.destination === '/etc/resolv.conf')) return;
    await rewriteResolvConfForEmbeddedDns(spec.stateDir, spec.processOptions, EMBEDDED_DNS_ADDRESS);
  }

  async archive(spec: ContainerSpec, containerPath: string, opts?: ArchiveOptions): Promise<Readable> {
    const rec = await this.readRecord(spec);
    // a remapped container's files are owned by host ids: the user sees container ids
    return archiveFrom(await this.rootView(spec, rec), containerPath, rec.userns && hostToContainer(rec.userns), opts);
  }

  async extract(spec: ContainerSpec, containerPath: string, tar: Readable): Promise<void> {
    const rec = await this.readRecord(spec);
    await extractTo(await this.rootView(spec, rec), containerPath, tar, rec.userns && containerToHost(rec.userns));
  }

  /** The container's filesystem as the workload sees it: live through /proc/<pid>/root, or, for
   * a stopped container, its overlay mounted on the host for the duration of the copy. The
   * view's cleanup never rejects (a failure is logged): callers release it on every path. */
  private async rootView(spec: ContainerSpec, rec: HostRecord): Promise<RootView> {
    const c = await this.agent(spec);
    if (c) {
      const st = await c.state();
      if ((st.status === 'running' || st.status === 'paused') && st.pid) {
        // frozen while we walk it, so that no path we resolved can be swapped for a symlink
        // under us (the docker cp race, CVE-2018-15664, fixed the same way in Docker). Copies
        // at once share one freeze: the last one done thaws, and a user's pause is left alone.
        let f = this.copyFreezes.get(spec.id);
        if (!f) {
          f = { views: 0, froze: false };
          this.copyFreezes.set(spec.id, f);
        }
        const freeze = f;
        const first = freeze.views === 0;
        freeze.views += 1;
        if (first) freeze.freezing = st.status === 'running' ? c.pause().then(() => void (freeze.froze = true)) : Promise.resolve();
        try {
          await freeze.freezing;
        } catch (e) {
          freeze.views -= 1;
          throw e;
        }
        let done = false;
        return {
          root: `/proc/${st.pid}/root`,
          cleanup: async () => {
            if (done) return;
            done = true;
            freeze.views -= 1;
            if (freeze.views > 0 || !freeze.froze) return;
            freeze.froze = false;
            this.copyFreezes.delete(spec.id);
            await c.resume().catch((e: unknown) => this.log(`container ${spec.id}: cannot thaw after a copy: ${errText(e)}`));
          },
        };
      }
    }
    await this.acquireBase(rec);
    if (rec.layer) await mountSizedLayer(spec.stateDir);
    const dirs = layerDirs(spec.stateDir, rec.layer !== undefined);
    const view = await mountStoppedRoot(path.join(this.opts.runRoot, 'tmp'), rec.lower, dirs.upper, dirs.work);
    return {
      root: view.root,
      cleanup: () =>
        view.cleanup().catch((e: unknown) => this.log(`container ${spec.id}: cannot unmount the copy's view ${view.root}: ${errText(e)}`)),
    };
  }

  /** SizeRw: the apparent size of what the container wrote (its overlay upper), hard links once. */
  async sizeRw(spec: ContainerSpec): Promise<number> {
    const rec = await this.readRecord(spec);
    if (rec.layer) await mountSizedLayer(spec.stateDir);
    return treeSize(layerDirs(spec.stateDir, rec.layer !== undefined).upper);
  }

  /** `docker diff`: the upper directory against the image's base disk (running or stopped). */
  async changes(spec: ContainerSpec): Promise<Change[]> {
    const rec = await this.readRecord(spec);
    await this.acquireBase(rec);
    if (rec.layer) await mountSizedLayer(spec.stateDir);
    return overlayChanges(layerDirs(spec.stateDir, rec.layer !== undefined).upper, rec.lower, {
      hidden: [...DOCKER_INIT_PATHS, LOST_FOUND],
    });
  }

  /** The builder's COPY: the container's filesystem mounted for `fn` (see Isolation.withRoot). */
  async withRoot<T>(
    spec: ContainerSpec,
    fn: (root: string, toHost: (uid: number, gid: number) => { uid: number; gid: number }) => Promise<T>,
  ): Promise<T> {
    const rec = await this.readRecord(spec);
    const map = rec.userns && containerToHost(rec.userns);
    const view = await this.rootView(spec, rec);
    try {
      return await fn(view.root, (uid, gid) => (map ? map(uid, gid, spec.id) : { uid, gid }));
    } finally {
      await view.cleanup();
    }
  }

  /** `docker commit`: the changes above as a layer tar, read from the upper directory. */
  async layerTar(spec: ContainerSpec): Promise<Readable> {
    const rec = await this.readRecord(spec);
    const changes = await this.changes(spec);
    return changesTar(layerDirs(spec.stateDir, rec.layer !== undefined).upper, changes, rec.userns && hostToContainer(rec.userns));
  }
}
