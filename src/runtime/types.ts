/**
 * The contract between the daemon (src/api, container records) and the isolations that run
 * containers (src/runtime/host for --isolation=container, later src/runtime/vm). Both
 * isolations implement `Isolation` so the API never branches on which one runs a container.
 *
 * Additive changes only: the API and the runtimes are written against this file in parallel.
 */
import type { Readable, Writable } from 'node:stream';
import type { Change } from '../fs-changes.js';

export type IsolationKind = 'vm' | 'container';

/** How `archive` names its entries. */
export interface ArchiveOptions {
  /** `docker export`: the root's contents as `bin/`, `etc/passwd` (no `./` prefix, no root entry) */
  export?: boolean;
}

export interface Mount {
  /** 'bind': host path; 'volume': a named volume's host directory (resolved by the daemon); 'tmpfs'. */
  type: 'bind' | 'volume' | 'tmpfs';
  source: string;
  destination: string;
  readonly: boolean;
  /**
   * volume only: fill the volume from the image's directory at this destination when the
   * volume is still empty at start (Docker's copy-up; off with `nocopy`)
   */
  copyUp?: boolean;
  /** tmpfs only, e.g. 'size=64m' */
  options?: string[];
}

export interface Resources {
  /** bytes; 0 or undefined = unlimited */
  memory?: number;
  memorySwap?: number;
  /** CPU quota in units of 1e-9 CPUs (Docker's NanoCpus) */
  nanoCpus?: number;
  cpuShares?: number;
  pidsLimit?: number;
  cpusetCpus?: string;
  /** soft memory limit (Docker's MemoryReservation) */
  memoryReservation?: number;
}

export interface ProcessSpec {
  args: string[];
  env: string[];
  cwd: string;
  /** as given by the user: '', 'name', 'uid', 'name:group', 'uid:gid'; resolved in the rootfs */
  user: string;
  tty: boolean;
  openStdin: boolean;
}

export interface ContainerSpec {
  id: string;
  name: string;
  hostname: string;
  isolation: IsolationKind;
  /** image ID (sha256:...) whose base disk is the container's lower layer */
  imageId: string;
  process: ProcessSpec;
  mounts: Mount[];
  resources: Resources;
  capAdd: string[];
  capDrop: string[];
  privileged: boolean;
  readonlyRootfs: boolean;
  /**
   * none: a namespace with only lo; host: the host's; bridge: the namespace the daemon's
   * networks prepare at each start (`netns`), with an endpoint on each of its networks;
   * container: another running container's namespace (`netns`: its /proc/<pid>/ns/net)
   */
  network: 'none' | 'host' | 'bridge' | 'container';
  /** bridge, container: the namespace to join for the current run and the container's primary address */
  netns?: { path: string; ip: string; nameservers?: string[]; dnsServer?: string };
  /** directory owned by this container: containers/<id>/ under the data root */
  stateDir: string;
  /** json-file log, written by the supervisor so logs outlive the daemon */
  logPath: string;
  /** json-file max-size/max-file: the writer rotates to logPath.1.. (unset: never) */
  logRotate?: { maxSize: number; maxFiles: number };
  /**
   * HostConfig.UsernsMode: 'host' opts the container out of the daemon's `--userns-remap` (it then
   * runs in the host's user namespace); unset: the daemon's choice
   */
  usernsMode?: 'host';
  /** `--security-opt` (seccomp, no-new-privileges); absent: Docker's defaults */
  security?: SecuritySpec;
  /** process options Docker's HostConfig carries (--ulimit, --sysctl, --shm-size, --init, ...) */
  processOptions?: ProcessOptions;
  /** `--storage-opt size=`: usable bytes of the container's writable layer (unset: unlimited) */
  storage?: { sizeBytes: number };
}

/** Docker's change kinds for `docker diff`: shared with src/disks, so defined below both */
export { CHANGE_MODIFIED, CHANGE_ADDED, CHANGE_DELETED, type Change } from '../fs-changes.js';

export interface SecuritySpec {
  /** 'default': Docker's default profile; or a custom profile's JSON text */
  seccomp: 'default' | 'unconfined' | { profile: string };
  noNewPrivileges: boolean;
}

export interface Ulimit {
  /** Docker's name: nofile, nproc, core, ... */
  name: string;
  soft: number;
  hard: number;
}

export interface DeviceMapping {
  pathOnHost: string;
  pathInContainer: string;
  /** Docker's cgroup permissions: a combination of r, w, m */
  permissions: string;
}

export interface ProcessOptions {
  ulimits?: Ulimit[];
  /** already validated against Docker's namespaced-sysctl rules */
  sysctls?: Record<string, string>;
  /** /dev/shm size in bytes (Docker's default 64 MiB when unset) */
  shmSize?: number;
  /** run the command under the agent's init (docker-init) as PID 1 */
  init?: boolean;
  /** extra groups: names (resolved in the container's /etc/group) or numeric gids */
  groupAdd?: string[];
  oomScoreAdj?: number;
  devices?: DeviceMapping[];
  oomKillDisable?: boolean;
  /** --dns, --dns-search, --dns-option: replace the host's in the container's resolv.conf */
  dns?: { nameservers?: string[]; search?: string[]; options?: string[] };
  /** --add-host name:ip lines for the container's /etc/hosts */
  extraHosts?: { name: string; ip: string }[];
  /** --domainname (the UTS namespace's NIS domain name) */
  domainname?: string;
  /** HostConfig.MaskedPaths / ReadonlyPaths when given (empty with systempaths=unconfined); absent: Docker's lists */
  maskedPaths?: string[];
  readonlyPaths?: string[];
}

export interface ExitStatus {
  /** Docker's convention: the exit code, or 128+N when killed by signal N */
  exitCode: number;
  /** ISO time */
  finishedAt: string;
  oomKilled: boolean;
  /** set when the runtime itself failed (e.g. executable not found: exitCode 127, error text) */
  error?: string;
}

export interface StdioStreams {
  /** present only when the caller attaches stdin */
  stdin?: Readable;
  stdout: Writable;
  /** ignored with a TTY: the pty merges both */
  stderr: Writable;
}

export interface Attachment {
  /** resolves when the process's output has ended (all bytes delivered) */
  done: Promise<void>;
  detach(): void;
}

export interface ExecSpec {
  process: ProcessSpec;
  privileged: boolean;
}

export interface ExecHandle {
  pid: number;
  attachment: Attachment;
  resize(rows: number, cols: number): Promise<void>;
  wait(): Promise<ExitStatus>;
}

export interface Stats {
  read: string;
  memory: { usage: number; limit: number; maxUsage?: number };
  cpu: { totalUsageNs: number; systemUsageNs: number; onlineCpus: number };
  pids: { current: number; limit?: number };
}

export interface RunningInfo {
  /** PID of the workload's init as seen from the host (VM isolation: the VMM's PID) */
  pid: number;
  startedAt: string;
}

/** One isolation. Every method is idempotent where Docker's semantics allow it. */
export interface Isolation {
  readonly kind: IsolationKind;
  /** who runs it, for `docker info` and inspect (VM isolation: 'kvm' or 'tcg') */
  readonly backend?: string;
  /** prepares rootfs and state; leaves nothing behind if it throws */
  create(spec: ContainerSpec): Promise<void>;
  /** starts the supervisor and the workload; the supervisor outlives the daemon */
  start(spec: ContainerSpec): Promise<RunningInfo>;
  attach(spec: ContainerSpec, stdio: StdioStreams): Promise<Attachment>;
  resize(spec: ContainerSpec, rows: number, cols: number): Promise<void>;
  /** resolves when the workload has exited (also for containers started before a daemon restart) */
  wait(spec: ContainerSpec): Promise<ExitStatus>;
  kill(spec: ContainerSpec, signal: string | number): Promise<void>;
  pause(spec: ContainerSpec): Promise<void>;
  resume(spec: ContainerSpec): Promise<void>;
  exec(spec: ContainerSpec, exec: ExecSpec, stdio: StdioStreams): Promise<ExecHandle>;
  top(spec: ContainerSpec): Promise<{ pid: number; ppid: number; cmd: string }[]>;
  stats(spec: ContainerSpec): Promise<Stats>;
  /** removes rootfs upper layer, supervisor state; the container must be stopped */
  remove(spec: ContainerSpec): Promise<void>;
  /** after a daemon restart: is the supervisor of this container alive, and its status */
  recover(spec: ContainerSpec): Promise<{ running: RunningInfo } | { exited: ExitStatus } | { lost: true }>;
  /**
   * Daemon start, after every container was recovered: releases host resources no container
   * holds any more (mounts, loop devices) that a daemon killed mid-operation left; returns one
   * line per thing released, for the log.
   */
  reconcile?(): Promise<string[]>;
  /** `docker cp` and export: a path inside the container's filesystem, as seen by the workload */
  archive(spec: ContainerSpec, containerPath: string, opts?: ArchiveOptions): Promise<Readable>;
  /**
   * `docker update` of a running or paused container: applies the limits in `changes` (only
   * those keys; pidsLimit <= 0 = unlimited) to its cgroup. Absent: the isolation cannot.
   */
  update?(spec: ContainerSpec, changes: Resources): Promise<void>;
  /**
   * `docker network connect` of a running (or paused) container, once the network manager has
   * made endpoint `ifname` in its namespace: puts the workload on it. Absent: the namespace's
   * endpoint already is the workload's (a host container lives in that namespace).
   */
  networkConnected?(spec: ContainerSpec, ifname: string): Promise<void>;
  /**
   * A running container's namespace now answers at 127.0.0.11 (connected to its first
   * user-defined network): its resolv.conf names the embedded server, as Docker rebuilds it.
   * Absent: the isolation cannot change it while the container runs.
   */
  embeddedDnsStarted?(spec: ContainerSpec): Promise<void>;
  /** `docker network disconnect` of a running (or paused) container, before its endpoint `ifname` goes. */
  networkDisconnecting?(spec: ContainerSpec, ifname: string): Promise<void>;
  extract(spec: ContainerSpec, containerPath: string, tar: Readable): Promise<void>;
  /** `docker diff`: the writable layer against the image, in Docker's order; optional for isolations that cannot tell */
  changes?(spec: ContainerSpec): Promise<Change[]>;
  /**
   * `docker commit` and the builder: the writable layer as an image layer tar (whiteouts for
   * deletions), from the same changes as `changes`; optional for isolations that cannot tell
   */
  layerTar?(spec: ContainerSpec): Promise<Readable>;
  /**
   * The builder's COPY: runs `fn` with the (created, not running) container's root filesystem
   * at a host path, as the workload would see it; `toHost` maps the container's owner ids to
   * the ids to write (a user namespace's). Optional: without it the builder goes through `extract`.
   */
  withRoot?<T>(
    spec: ContainerSpec,
    fn: (root: string, toHost: (uid: number, gid: number) => { uid: number; gid: number }) => Promise<T>,
  ): Promise<T>;
  /** bytes in the container's writable layer (SizeRw of `docker ps -s`, `inspect --size`) */
  sizeRw?(spec: ContainerSpec): Promise<number>;
}
