/**
 * --isolation=vm: each container runs in its own microVM with its own kernel. A per-container
 * supervisor process (supervisor-main.ts) runs the guest on the host's backend (kvm: tvm's VMM;
 * tcg: QEMU's software CPU with tvm's devices over vhost-user) and outlives the daemon; the
 * guest's PID 1 is the same agent as the host supervisor of --isolation=container, so
 * everything after "reach the agent" is the shared agent session (../agent-session.ts).
 *
 * Disks: the image's base disk (ext4, built once per image) is the read-only backing file of a
 * per-container qcow2 overlay (STATE/rootfs.qcow2), the guest's /dev/vda. The base disk is
 * never written; the overlay holds every change, survives stop/start, and is read offline
 * (docker cp, export, diff) while the container is stopped.
 *
 * State dir: vm.json (this record), rootfs.qcow2, launch.json, initrd.cpio, hostname/hosts/
 * resolv.conf, and the supervisor's files (launch-config.ts).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { writeJsonAtomic } from '../../atomic-file.js';
import { ConflictError, InvalidParameterError, NotFoundError, TvmError } from '../../errors.js';
import { AgentClient, vsockConnector } from '../../guest-agent/client.js';
import type { BaseDisks, ImageStore } from '../../images/types.js';
import { Qcow2Image } from '../../disks/qcow2/image.js';
import { Ext4Reader } from '../../disks/ext4/reader.js';
import { Ext4Editor } from '../../disks/ext4/editor.js';
import { archiveFromDisk, diffDisks, exportDisk } from '../../disks/ext4/disk-archive.js';
import { diskChangesTar } from '../../disks/ext4/changes-tar.js';
import { findKernel } from '../../vmm/kernel-artifacts.js';
import type { VmBackendKind } from '../../vmm/launch/types.js';
import { AgentSessionIsolation, readExitStatus, readStateRecord, SIGKILL, toExit } from '../agent-session.js';
import { parseSignal } from '../signals.js';
import { agentSpec, validateSpec } from '../host/spec.js';
import { embeddedResolvConfOfHost, prepareEtcFiles } from '../host/etc-files.js';
import { DOCKER_INIT_PATHS } from '../host/changes.js';
import type { Change, ContainerSpec, ExitStatus, Isolation, RunningInfo, Stats } from '../types.js';
import { extractThroughAgent } from './guest-extract.js';
import { agentInitramfs, writeVmInitramfs } from './initrd.js';
import { AGENT_VSOCK_PORT, EXIT_FILE, LAUNCH_FILE, vsockSocketPath, type VmLaunchConfig } from './launch-config.js';
import { spawnVmSupervisor, vmSupervisorPid } from './supervisor.js';
import { buildSupervisorBundle } from './supervisor-bundle.js';
import { StandbySupervisor } from './standby.js';
import { reachableSocketPath } from '../socket-path.js';
import { guestNameservers, guestNetArg, nicSetting, plumbGuestNic, plumbGuestNics, unplugGuestNic, type GuestNic } from './guest-net.js';

export const MiB = 1024 * 1024;
/** guest RAM without --memory */
export const DEFAULT_GUEST_MEMORY_MIB = 256;
/** guest RAM beyond the container's --memory: the guest kernel, the agent, page cache headroom */
export const GUEST_MEMORY_MARGIN_MIB = 96;
/** where the guest agent mounts /dev/vda (native/agent/guest.h) */
const GUEST_DISK_DIR = '/run/tvm/disk';
const GUEST_ROOTFS_TARGET = '/run/tvm/rootfs';
/** the VM's own files in its initramfs (hostname, hosts, resolv.conf) */
const GUEST_FILES_DIR = '/tvm/files';

export interface VmIsolationOptions {
  dataRoot: string;
  /** the daemon's run root: short links to sockets whose paths are too long (socket-path.ts) */
  runRoot: string;
  agentPath: string;
  baseDisks: BaseDisks;
  images: ImageStore;
  backend: VmBackendKind;
  /** kernel artifacts; default: the cached build (findKernel) */
  kernel?: { bzImage: string; vmlinux: string };
  /** launch to agent-ready bound (default 120 s: TCG on a loaded 2-core machine is slow) */
  bootTimeoutMs?: number;
  log?: (msg: string) => void;
  /** more guest kernel arguments (diagnostics: `ignore_loglevel`, tests: a broken init) */
  kernelArgs?: string;
}

interface VmRecord {
  version: 1;
  imageId: string;
  baseDisk: string;
  disk: string;
}

const RECORD = 'vm.json';

/** Guest RAM for a container: its memory limit plus the margin, or the default; 2 MiB aligned. */
export function guestMemoryMiB(memoryLimit: number | undefined): number {
  const mib = memoryLimit ? Math.ceil(memoryLimit / MiB) + GUEST_MEMORY_MARGIN_MIB : DEFAULT_GUEST_MEMORY_MIB;
  return Math.max(128, Math.ceil(mib / 2) * 2);
}

/** vCPUs for a container: --cpus rounded up, at least 1, at most the host's. */
export function guestCpus(nanoCpus: number | undefined, hostCpus = os.cpus().length): number {
  if (!nanoCpus) return 1;
  return Math.max(1, Math.min(hostCpus, Math.ceil(nanoCpus / 1e9)));
}

/** What VM isolation cannot honour yet: refused with a 400 naming the option, never ignored. */
export function validateVmSpec(spec: ContainerSpec): void {
  for (const m of spec.mounts) {
    if (m.type !== 'tmpfs') {
      throw new InvalidParameterError(
        `${m.type === 'volume' ? 'named volumes' : 'bind mounts'} (${m.destination}) are not supported with --isolation=vm yet: the guest cannot see host directories`,
      );
    }
  }
  // a VM has its own kernel and stack: it cannot share the host's or another container's
  if (spec.network === 'host' || spec.network === 'container') {
    throw new InvalidParameterError(
      `--network ${spec.network === 'host' ? 'host' : 'container:<name|id>'} is not supported with --isolation=vm: a microVM has its own network stack (use a bridge network or none)`,
    );
  }
  if (spec.processOptions?.devices?.length)
    throw new InvalidParameterError('--device is not supported with --isolation=vm: host devices are not in the guest');
  if (spec.processOptions?.oomKillDisable)
    throw new InvalidParameterError('--oom-kill-disable is not supported with --isolation=vm (the guest has cgroup v2)');
}

/**
 * The overlay's virtual size: the image's disk, or larger with `--storage-opt size=` (the guest
 * agent grows the filesystem to it at boot). A VM's disk cannot be smaller than its image's.
 */
export function vmDiskSize(baseBytes: number, wanted: number | undefined): number {
  if (wanted === undefined) return baseBytes;
  if (wanted < baseBytes) {
    throw new InvalidParameterError(
      `--storage-opt size=${wanted} is smaller than the image's disk (${baseBytes} bytes): with --isolation=vm the container's disk can only be larger`,
    );
  }
  return Math.ceil(wanted / MiB) * MiB;
}

/**
 * `tar` as the caller's stream; `done` (releasing the disk view the tar reads) runs once it has
 * been read, or abandoned by a client that went away (then the tar is stopped too).
 */
function holdUntilRead(tar: Readable, done: () => Promise<void>): Readable {
  const out = new PassThrough();
  tar.on('error', (e) => out.destroy(e));
  out.on('close', () => {
    if (!tar.readableEnded) tar.destroy();
    // no one is left to tell: done() logs what fails in it (see archive and layerTar)
    void done();
  });
  return tar.pipe(out);
}

export class VmIsolation extends AgentSessionIsolation implements Isolation {
  readonly kind = 'vm' as const;
  private kernel?: Promise<{ bzImage: string; vmlinux: string }>;
  /** the supervisor bundled from these sources (undefined: run them through tsx) */
  private readonly bundle: Promise<string | undefined>;
  /** a supervisor started ahead of the next VM (standby.ts) */
  private readonly standby: StandbySupervisor;

  constructor(private readonly opts: VmIsolationOptions) {
    super();
    this.standby = new StandbySupervisor(opts.backend, path.join(opts.dataRoot, 'vm', 'standby.log'), opts.log);
    this.bundle = import.meta.url.endsWith('.ts')
      ? buildSupervisorBundle().then(
          (b) => b.main,
          (e: Error) => {
            opts.log?.(`VM supervisor runs from sources (slower start): bundling failed: ${e.message}`);
            return undefined;
          },
        )
      : Promise.resolve(undefined);
  }

  get backend(): VmBackendKind {
    return this.opts.backend;
  }

  private readRecord(spec: ContainerSpec): Promise<VmRecord> {
    return readStateRecord<VmRecord>(spec, RECORD);
  }

  protected async checkRecord(spec: ContainerSpec): Promise<void> {
    await this.readRecord(spec);
  }

  private readExitFile(spec: ContainerSpec): Promise<ExitStatus | undefined> {
    return readExitStatus(spec);
  }

  protected async connectAgent(spec: ContainerSpec): Promise<AgentClient | undefined> {
    if (!(await vmSupervisorPid(spec.stateDir))) return undefined;
    try {
      return await this.connectGuest(spec);
    } catch {
      return undefined; // booting, or powering off: the exit file is the truth
    }
  }

  private async connectGuest(spec: ContainerSpec): Promise<AgentClient> {
    const sock = await reachableSocketPath(vsockSocketPath(spec.stateDir), this.opts.runRoot);
    return AgentClient.connect(vsockConnector(sock, AGENT_VSOCK_PORT));
  }

  private kernelArtifacts(): Promise<{ bzImage: string; vmlinux: string }> {
    if (this.opts.kernel) return Promise.resolve(this.opts.kernel);
    this.kernel ??= findKernel().catch((e: Error) => {
      this.kernel = undefined;
      throw new TvmError(
        'ERR_KERNEL_NOT_BUILT',
        `--isolation=vm needs the guest kernel: ${e.message} (bash scripts/setup.sh --kernel)`,
        500,
        { cause: e },
      );
    });
    return this.kernel;
  }

  async create(spec: ContainerSpec): Promise<void> {
    validateSpec(spec);
    validateVmSpec(spec);
    if (existsSync(path.join(spec.stateDir, RECORD))) throw new ConflictError(`container ${spec.id} already exists`);
    const image = await this.opts.images.resolve(spec.imageId);
    const baseDisk = await this.opts.baseDisks.ensure(image);
    const stateDirExisted = existsSync(spec.stateDir);
    const disk = path.join(spec.stateDir, 'rootfs.qcow2');
    try {
      await mkdir(spec.stateDir, { recursive: true, mode: 0o700 });
      // the overlay names its backing file by absolute path: the base disk never moves
      const size = vmDiskSize((await stat(baseDisk)).size, spec.storage?.sizeBytes);
      Qcow2Image.createSync(disk, { size, backingFile: baseDisk, backingFormat: 'raw' }).closeSync();
      await writeJsonAtomic(path.join(spec.stateDir, RECORD), { version: 1, imageId: image.id, baseDisk, disk } satisfies VmRecord);
    } catch (e) {
      if (stateDirExisted) {
        for (const f of ['rootfs.qcow2', RECORD]) await rm(path.join(spec.stateDir, f), { force: true });
      } else {
        await rm(spec.stateDir, { recursive: true, force: true });
      }
      throw e;
    }
  }

  async start(spec: ContainerSpec): Promise<RunningInfo> {
    const rec = await this.readRecord(spec);
    validateVmSpec(spec);
    let client = await this.sessions.agent(spec);
    if (client) {
      // an agent that does not answer counts as not running: the start goes on below
      const st = await client.state().catch(() => undefined);
      if (st && (st.status === 'running' || st.status === 'paused') && st.pid && st.startedAt) {
        return { pid: (await vmSupervisorPid(spec.stateDir)) ?? st.pid, startedAt: st.startedAt };
      }
      client.close();
    }
    // a guest from the last run may still be powering off (docker restart, restart policies)
    if (!(await this.supervisorGone(spec, 15_000))) throw new ConflictError(`container ${spec.id} is still stopping: try again`);
    const kernel = await this.kernelArtifacts();
    await unlink(path.join(spec.stateDir, EXIT_FILE)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });

    const aspec = agentSpec(spec, GUEST_DISK_DIR, { version: 2, root: '/sys/fs/cgroup', path: `tvm/${spec.id}` });
    aspec.rootfs = { lower: GUEST_DISK_DIR, target: GUEST_ROOTFS_TARGET };
    // the supervisor writes the host's log from the streams; the guest keeps none
    aspec.logPath = '/dev/null';
    delete aspec.logRotate;
    // Docker's /etc files travel in the VM's initramfs, under a guest path of their own
    // on a network: the guest's own stack owns the NIC (guest-net.ts), the workload shares it
    const nics: GuestNic[] = spec.network === 'bridge' && spec.netns ? await plumbGuestNics(spec.netns.path) : [];
    const nic = nics[0];
    if (nic) aspec.network = 'host';
    const nameservers = nic && spec.netns ? guestNameservers(spec.netns.nameservers, spec.netns.dnsServer) : undefined;
    const net = spec.netns && { ...spec.netns, ...(nameservers && { nameservers }) };
    const etc = await prepareEtcFiles(
      spec.stateDir,
      aspec.hostname,
      spec.network,
      spec.mounts.map((m) => m.destination),
      spec.processOptions,
      net,
    );
    const files = await Promise.all(
      etc.map(async (m) => ({ path: path.posix.join(GUEST_FILES_DIR, path.basename(m.source!)), data: await readFile(m.source!) })),
    );
    aspec.mounts.unshift(...etc.map((m, i) => ({ ...m, source: files[i]!.path })));
    const baseInitrd = await agentInitramfs(this.opts.agentPath, path.join(this.opts.dataRoot, 'vm'));
    const initrd = path.join(spec.stateDir, 'initrd.cpio');
    await writeVmInitramfs(baseInitrd, files, initrd);

    const bootTimeoutMs = this.opts.bootTimeoutMs ?? 120_000;
    const launch: VmLaunchConfig = {
      version: 1,
      backend: this.opts.backend,
      // both backends enter the ELF vmlinux at its PVH entry: under TCG a bzImage costs QEMU's
      // option ROM and the kernel's self-decompression, emulated (about 150 ms of every boot)
      kernel: kernel.vmlinux,
      initrd,
      // quiet: every console byte is an emulated port write under TCG; the agent prints its own markers
      cmdline: `quiet tvm.time=${Date.now()}${nic ? ` ${guestNetArg(nic)}` : ''}${this.opts.kernelArgs ? ` ${this.opts.kernelArgs}` : ''}`,
      memMiB: guestMemoryMiB(spec.resources.memory),
      cpus: guestCpus(spec.resources.nanoCpus),
      disk: rec.disk,
      diskId: spec.id.slice(0, 20),
      cid: 3,
      spec: aspec,
      logPath: spec.logPath,
      ...(spec.logRotate && { logRotate: spec.logRotate }),
      bootTimeoutMs,
      ...(nic && { net: { netns: spec.netns!.path, tap: nic.tap, mac: nic.mac } }),
    };
    await writeJsonAtomic(path.join(spec.stateDir, LAUNCH_FILE), launch);
    let ready;
    try {
      const bundle = await this.bundle;
      try {
        ready = await spawnVmSupervisor(spec.stateDir, bootTimeoutMs + 15_000, bundle, launch.net?.netns, this.standby.take());
      } finally {
        this.standby.fill(bundle);
      }
    } catch (e) {
      // the user gets the reason; the daemon log also gets what the guest printed last
      const tail = (e as { consoleTail?: string }).consoleTail;
      this.opts.log?.(`VM of ${spec.id.slice(0, 12)} did not start: ${(e as Error).message}${tail ? `\nconsole tail:\n${tail}` : ''}`);
      throw e;
    }
    let guest: AgentClient | undefined;
    try {
      guest = await this.connectGuest(spec);
      // networks beyond the first (connected while the container was created): before the workload runs
      for (const n of nics.slice(1)) await guest.netUp(n.ifname, nicSetting(n));
    } catch (e) {
      guest?.close();
      process.kill(ready.pid, 'SIGTERM');
      throw e;
    }
    client = guest;
    this.sessions.live(spec.id).client = client;
    await this.sessions.connectPending(spec, client);
    const info = await this.sessions.startWorkload(spec, client);
    // the host pid of a VM container is its supervisor's (Docker's State.Pid for a VM)
    return { pid: ready.pid, startedAt: info.startedAt };
  }

  /** `docker network connect` while it runs: the endpoint joins the tap, the guest makes ethN (guest-net.ts). */
  async networkConnected(spec: ContainerSpec, ifname: string): Promise<void> {
    const netns = spec.netns?.path;
    if (!netns) throw new ConflictError(`container ${spec.id} has no network namespace of its own to connect`);
    const c = await this.sessions.running(spec);
    const nic = await plumbGuestNic(netns, ifname);
    try {
      await c.netUp(ifname, nicSetting(nic));
    } catch (e) {
      await unplugGuestNic(netns, ifname).catch((err) => this.opts.log?.(`undoing ${ifname} of ${spec.id.slice(0, 12)}: ${String(err)}`));
      throw e;
    }
  }

  /** The container's first user network while it runs: the guest's resolv.conf names that network's server (on its gateway address). */
  async embeddedDnsStarted(spec: ContainerSpec): Promise<void> {
    const server = spec.netns?.dnsServer;
    if (!server || spec.mounts.some((m) => m.destination === '/etc/resolv.conf')) return;
    await (await this.sessions.running(spec)).resolvConf(await embeddedResolvConfOfHost(spec.processOptions, server));
  }

  /** `docker network disconnect` while it runs: the guest's ethN goes, then the tap's way to the endpoint. */
  async networkDisconnecting(spec: ContainerSpec, ifname: string): Promise<void> {
    const netns = spec.netns?.path;
    if (!netns) return;
    const c = await this.sessions.running(spec);
    await c.netDown(ifname);
    await unplugGuestNic(netns, ifname);
  }

  override async kill(spec: ContainerSpec, signal: string | number): Promise<void> {
    const sig = parseSignal(signal);
    try {
      await this.sessions.kill(spec, sig);
    } catch (e) {
      // a guest that no longer answers still gets powered off by SIGKILL
      const pid = sig === SIGKILL ? await vmSupervisorPid(spec.stateDir) : undefined;
      if (!pid) throw e;
      process.kill(pid, 'SIGTERM');
    }
  }

  override async stats(spec: ContainerSpec): Promise<Stats> {
    // no launch file (created but never started): the default memory size is the limit
    const launch = JSON.parse(await readFile(path.join(spec.stateDir, LAUNCH_FILE), 'utf8').catch(() => '{}')) as Partial<VmLaunchConfig>;
    return this.sessions.stats(spec, (launch.memMiB ?? DEFAULT_GUEST_MEMORY_MIB) * MiB);
  }

  async remove(spec: ContainerSpec): Promise<void> {
    try {
      await this.readRecord(spec);
    } catch (e) {
      if (e instanceof NotFoundError) {
        await rm(spec.stateDir, { recursive: true, force: true });
        return;
      }
      throw e;
    }
    if (await this.isRunning(spec)) {
      throw new ConflictError(
        `You cannot remove a running container ${spec.id}. Stop the container before attempting removal or force remove`,
      );
    }
    const pid = await vmSupervisorPid(spec.stateDir);
    if (pid) {
      // exited but not yet powered off: nothing of the guest outlives this removal (its disk
      // and log go with the state dir), so it is ended at once rather than shut down
      // gracefully (--rm waits on this); QEMU dies with its supervisor (PDEATHSIG)
      process.kill(pid, 'SIGKILL');
      if (!(await this.supervisorGone(spec, 5_000))) throw new ConflictError(`the VM of ${spec.id} did not end: try again`);
    }
    this.sessions.forget(spec, new NotFoundError(`No such container: ${spec.id}`));
    await rm(spec.stateDir, { recursive: true, force: true });
  }

  async recover(spec: ContainerSpec): Promise<{ running: RunningInfo } | { exited: ExitStatus } | { lost: true }> {
    if (!(await this.recorded(spec))) return { lost: true };
    const pid = await vmSupervisorPid(spec.stateDir);
    const client = pid ? await this.sessions.agent(spec) : undefined;
    if (client) {
      const st = await client.state();
      if ((st.status === 'running' || st.status === 'paused') && st.startedAt) {
        this.adopt(spec, client);
        return { running: { pid: pid!, startedAt: st.startedAt } };
      }
      if (st.exit) return { exited: toExit(st.exit) };
    }
    const f = await this.readExitFile(spec);
    if (f) return { exited: f };
    return { lost: true };
  }

  /**
   * Is the workload running or paused? A guest that is powering off answers on a closing
   * connection, or not at all: that is "not running".
   */
  private async isRunning(spec: ContainerSpec): Promise<boolean> {
    const client = await this.sessions.agent(spec);
    if (!client) return false;
    // an agent that does not answer has no running workload
    const st = await client.state().catch(() => undefined);
    return st?.status === 'running' || st?.status === 'paused';
  }

  /** Waits up to `ms` for the supervisor to exit; true when it has. */
  private async supervisorGone(spec: ContainerSpec, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (await vmSupervisorPid(spec.stateDir)) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  }

  /**
   * Writing the overlay needs the guest gone: it owns the disk while it runs. A guest whose
   * workload has exited is given the moment it takes to power off.
   */
  private async stoppedDisk(spec: ContainerSpec, what: string): Promise<VmRecord> {
    const rec = await this.readRecord(spec);
    if (await vmSupervisorPid(spec.stateDir)) {
      if (!(await this.isRunning(spec)) && (await this.supervisorGone(spec, 15_000))) return rec;
      // it was not running a moment ago (the caller asked): it has just been started
      throw new ConflictError(`${what} container ${spec.id}: it started during the copy, try again`, 'ERR_VM_RUNNING');
    }
    return rec;
  }

  /**
   * The disk's filesystem as the workload sees it, for reading. Stopped: the overlay itself.
   * Running: the workload is paused (nothing changes under the copy: the docker cp race,
   * CVE-2018-15664, as host containers are frozen) and the guest freezes its filesystem, which
   * flushes it to the overlay; both are undone when `release` runs. One copy at a time per VM.
   */
  private async diskView(spec: ContainerSpec): Promise<{ rec: VmRecord; release: () => Promise<void> }> {
    const rec = await this.readRecord(spec);
    if (!(await vmSupervisorPid(spec.stateDir))) return { rec, release: async () => {} };
    if (!(await this.isRunning(spec)) && (await this.supervisorGone(spec, 15_000))) return { rec, release: async () => {} };
    const unlock = await this.copyLock(spec.id);
    try {
      const c = await this.sessions.running(spec);
      const pauseIt = (await c.state()).status === 'running';
      if (pauseIt) await c.pause();
      try {
        await c.freezeFs();
      } catch (e) {
        if (pauseIt) await c.resume();
        throw e;
      }
      return {
        rec,
        release: async () => {
          try {
            await c.thawFs();
            if (pauseIt) await c.resume();
          } catch (e) {
            // the agent thaws by itself when this connection goes; say why the container may lag
            this.opts.log?.(`after a copy from ${spec.id.slice(0, 12)}: ${(e as Error).message}`);
          } finally {
            unlock();
          }
        },
      };
    } catch (e) {
      unlock();
      throw e;
    }
  }

  private readonly copyLocks = new Map<string, Promise<void>>();
  private async copyLock(id: string): Promise<() => void> {
    const before = this.copyLocks.get(id) ?? Promise.resolve();
    let unlock!: () => void;
    const mine = new Promise<void>((r) => (unlock = r));
    const chained = before.then(() => mine);
    this.copyLocks.set(id, chained);
    await before;
    return () => {
      unlock();
      if (this.copyLocks.get(id) === chained) this.copyLocks.delete(id);
    };
  }

  async archive(spec: ContainerSpec, containerPath: string): Promise<Readable> {
    const { rec, release } = await this.diskView(spec);
    let reader: Ext4Reader | undefined;
    const done = async () => {
      await reader?.close().catch((e: Error) => this.opts.log?.(`closing the disk of ${spec.id.slice(0, 12)} after a copy: ${e.message}`));
      await release().catch((e: Error) => this.opts.log?.(`releasing the disk of ${spec.id.slice(0, 12)} after a copy: ${e.message}`));
    };
    try {
      reader = await Ext4Reader.open(rec.disk, { format: 'qcow2' });
      const tar = containerPath.replace(/\/+$/, '') === '' ? await exportDisk(reader) : await archiveFromDisk(reader, containerPath);
      return holdUntilRead(tar, done);
    } catch (e) {
      await done();
      throw e;
    }
  }

  /**
   * Running: the guest agent applies the entries (the guest owns the disk). Stopped: the overlay
   * is edited offline. One copy at a time per VM, so a copy out never freezes the disk under it.
   */
  async extract(spec: ContainerSpec, containerPath: string, tar: Readable): Promise<void> {
    await this.readRecord(spec);
    if ((await vmSupervisorPid(spec.stateDir)) && (await this.isRunning(spec))) {
      const unlock = await this.copyLock(spec.id);
      try {
        await extractThroughAgent(await this.sessions.running(spec), containerPath, tar);
      } finally {
        unlock();
      }
      return;
    }
    const rec = await this.stoppedDisk(spec, 'copying files into');
    await Ext4Editor.edit(rec.disk, (ed) => ed.extractTar(containerPath, tar), { format: 'qcow2' });
  }

  /** `docker commit` and the builder: the disk's changes (as `changes`) as a layer tar, read offline. */
  async layerTar(spec: ContainerSpec): Promise<Readable> {
    const { rec, release } = await this.diskView(spec);
    let top: Ext4Reader | undefined;
    const done = async () => {
      await top?.close().catch((e: Error) => this.opts.log?.(`closing the disk of ${spec.id.slice(0, 12)} after a commit: ${e.message}`));
      await release().catch((e: Error) => this.opts.log?.(`releasing the disk of ${spec.id.slice(0, 12)} after a commit: ${e.message}`));
    };
    try {
      const base = await Ext4Reader.open(rec.baseDisk, { format: 'raw' });
      let changes: Change[];
      try {
        top = await Ext4Reader.open(rec.disk, { format: 'qcow2' });
        changes = await diffDisks(base, top, DOCKER_INIT_PATHS);
      } finally {
        await base.close();
      }
      return holdUntilRead(diskChangesTar(top, changes), done);
    } catch (e) {
      await done();
      throw e;
    }
  }

  async changes(spec: ContainerSpec): Promise<Change[]> {
    const { rec, release } = await this.diskView(spec);
    try {
      const base = await Ext4Reader.open(rec.baseDisk, { format: 'raw' });
      try {
        const top = await Ext4Reader.open(rec.disk, { format: 'qcow2' });
        try {
          return await diffDisks(base, top, DOCKER_INIT_PATHS);
        } finally {
          await top.close();
        }
      } finally {
        await base.close();
      }
    } finally {
      await release();
    }
  }
}
