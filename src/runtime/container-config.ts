/**
 * Turns Docker's container-create body (Config + HostConfig) plus the image config into the
 * container's effective Config and the runtime's ContainerSpec pieces, validating what Docker
 * validates with Docker's messages.
 */
import { cpus } from 'node:os';
import path from 'node:path';
import { InvalidParameterError, NotFoundError, NotImplementedError } from '../errors.js';
import type { ImageRecord } from '../images/types.js';
import type { IsolationKind, Mount, ProcessSpec, Resources } from './types.js';
import { parseSignal } from './signals.js';
import { validateMemoryReservation } from './process-options.js';
import { parseRestartPolicy, type RestartPolicy } from './restart-policy.js';

export interface CreateBody {
  Hostname?: string;
  Domainname?: string;
  User?: string;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  Env?: string[] | null;
  Cmd?: string[] | string | null;
  Entrypoint?: string[] | string | null;
  Image?: string;
  Labels?: Record<string, string> | null;
  Volumes?: Record<string, object> | null;
  WorkingDir?: string;
  StopSignal?: string;
  StopTimeout?: number | null;
  ExposedPorts?: Record<string, object> | null;
  HostConfig?: HostConfigBody | null;
  NetworkingConfig?: unknown;
  [k: string]: unknown;
}

export interface HostConfigBody {
  Binds?: string[] | null;
  Mounts?:
    | {
        Type?: string;
        Source?: string;
        Target?: string;
        ReadOnly?: boolean;
        TmpfsOptions?: { SizeBytes?: number; Mode?: number };
        VolumeOptions?: { NoCopy?: boolean } | null;
      }[]
    | null;
  VolumesFrom?: string[] | null;
  Tmpfs?: Record<string, string> | null;
  Memory?: number;
  MemorySwap?: number;
  MemoryReservation?: number;
  NanoCpus?: number;
  CpuShares?: number;
  CpuQuota?: number;
  CpuPeriod?: number;
  CpusetCpus?: string;
  PidsLimit?: number | null;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  Privileged?: boolean;
  ReadonlyRootfs?: boolean;
  NetworkMode?: string;
  PortBindings?: Record<string, unknown> | null;
  StorageOpt?: Record<string, string> | null;
  PublishAllPorts?: boolean;
  AutoRemove?: boolean;
  Isolation?: string;
  RestartPolicy?: { Name?: string; MaximumRetryCount?: number } | null;
  LogConfig?: { Type?: string; Config?: Record<string, string> | null } | null;
  UsernsMode?: string;
  [k: string]: unknown;
}

/** Docker's isolation names -> ours. '' and 'default' take the daemon's default. */
export function mapIsolation(name: string | undefined, defaultKind: IsolationKind): IsolationKind {
  switch ((name ?? '').toLowerCase()) {
    case '':
    case 'default':
      return defaultKind;
    case 'vm':
    case 'hyperv':
      return 'vm';
    case 'container':
    case 'process':
      return 'container';
    default:
      throw new InvalidParameterError(
        `invalid isolation "${name}": tvm supports 'default', 'container' (or 'process') and 'vm' (or 'hyperv')`,
      );
  }
}

/** Docker's Isolation field value for a kind, as shown by inspect. */
export function isolationLabel(kind: IsolationKind): string {
  return kind;
}

export const MIN_MEMORY = 6 * 1024 * 1024;

export function validateResources(hc: HostConfigBody): Resources {
  const r: Resources = {};
  const mem = hc.Memory ?? 0;
  if (mem < 0) throw new InvalidParameterError('invalid memory limit: must be a positive number');
  if (mem > 0 && mem < MIN_MEMORY) throw new InvalidParameterError('Minimum memory limit allowed is 6MB');
  if (mem > 0) r.memory = mem;
  const swap = hc.MemorySwap ?? 0;
  if (swap > 0) {
    if (mem === 0) throw new InvalidParameterError('You should always set the Memory limit when using Memoryswap limit, see usage');
    if (swap < mem) throw new InvalidParameterError('Minimum memoryswap limit should be larger than memory limit, see usage');
    r.memorySwap = swap;
  } else if (swap === -1) {
    r.memorySwap = -1;
  }
  const ncpu = cpus().length;
  const nano = hc.NanoCpus ?? 0;
  if (nano !== 0) {
    if ((hc.CpuQuota ?? 0) > 0 || (hc.CpuPeriod ?? 0) > 0) {
      throw new InvalidParameterError('Conflicting options: Nano CPUs and CPU Period cannot both be set');
    }
    if (nano < 0 || nano > ncpu * 1e9 || nano < 1e7) {
      throw new InvalidParameterError(`Range of CPUs is from 0.01 to ${ncpu}.00, as there are only ${ncpu} CPUs available`);
    }
    r.nanoCpus = nano;
  } else if ((hc.CpuQuota ?? 0) > 0) {
    const period = hc.CpuPeriod && hc.CpuPeriod > 0 ? hc.CpuPeriod : 100_000;
    if ((hc.CpuQuota ?? 0) < 1000) throw new InvalidParameterError('CPU cfs quota can not be less than 1ms (i.e. 1000)');
    r.nanoCpus = Math.round((hc.CpuQuota! / period) * 1e9);
  }
  if ((hc.CpuShares ?? 0) < 0) throw new InvalidParameterError('invalid CPU shares: must be a positive number');
  if (hc.CpuShares) r.cpuShares = hc.CpuShares;
  if (hc.PidsLimit !== undefined && hc.PidsLimit !== null && hc.PidsLimit > 0) r.pidsLimit = hc.PidsLimit;
  // --memory-reservation: a resource (the cgroup's soft limit), which docker update changes too
  const resv = validateMemoryReservation(hc);
  if (resv) r.memoryReservation = resv;
  if (hc.CpusetCpus) {
    checkCpuset(hc.CpusetCpus, ncpu);
    r.cpusetCpus = hc.CpusetCpus;
  }
  return r;
}

/** Docker's cpuset syntax ("0-2,4"), each CPU existing on this host (create and update). */
export function checkCpuset(v: string, ncpu: number): void {
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(v)) throw new InvalidParameterError(`Invalid value ${v} for cpuset cpus`);
  for (const part of v.split(',')) {
    for (const n of part.split('-').map(Number)) {
      if (n >= ncpu) throw new InvalidParameterError(`Requested CPUs are not available - requested ${v}, available: 0-${ncpu - 1}`);
    }
  }
}

/** Docker's RAMInBytes multiples (go-units' binary map): k, m, g, t, p, with optional b / ib. */
const STORAGE_UNITS: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * A size as Docker's daemon parses `--storage-opt size=` (go-units RAMInBytes): a decimal
 * number, an optional space, then an optional suffix among b, k, kb, kib, m, ... p (any case);
 * fractions are truncated to whole bytes. Docker's own messages for bad input.
 */
export function parseStorageSize(s: string): number {
  let sep = -1;
  for (let i = s.length - 1; i >= 0; i--) {
    if ('0123456789. '.includes(s[i]!)) {
      sep = i;
      break;
    }
  }
  if (sep < 0) throw new InvalidParameterError(`invalid size: '${s}'`);
  const num = s[sep] === ' ' ? s.slice(0, sep) : s.slice(0, sep + 1);
  const rawSfx = s.slice(sep + 1);
  // Go's strconv.ParseFloat (decimal forms; Docker never documents more)
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(num)) {
    throw new InvalidParameterError(`strconv.ParseFloat: parsing ${JSON.stringify(num)}: invalid syntax`);
  }
  let size = Number(num);
  if (size < 0) throw new InvalidParameterError(`invalid size: '${s}'`);
  if (rawSfx !== '') {
    const sfx = rawSfx.toLowerCase();
    const badSuffix = () => new InvalidParameterError(`invalid suffix: '${sfx}'`);
    if (sfx.length > 3) throw badSuffix();
    if (sfx[0] === 'b') {
      if (sfx.length > 1) throw badSuffix();
    } else {
      const mul = STORAGE_UNITS[sfx[0]!];
      if (mul === undefined) throw badSuffix();
      if ((sfx.length === 2 && sfx[1] !== 'b') || (sfx.length === 3 && sfx.slice(1) !== 'ib')) throw badSuffix();
      size *= mul;
    }
  }
  if (!Number.isFinite(size) || size > Number.MAX_SAFE_INTEGER) throw new InvalidParameterError(`invalid size: '${s}'`);
  return Math.floor(size);
}

/** The smallest writable layer: our ext4 writer's smallest filesystem (src/disks/ext4/writer.ts). */
export const MIN_WRITABLE_LAYER_SIZE = 16 * 1024 * 1024;

/**
 * Per-container `--storage-opt`, Docker's overlay2 keys: only `size` (any case), parsed as
 * Docker does; anything else is `Unknown option <key>`. `size=0` means no limit, as in overlay2.
 *
 * --isolation=container: the overlay upper/work directories live on an ext4 filesystem of
 * `sizeBytes` usable bytes (a sparse file in the state dir, loop-mounted), so writes beyond it
 * fail with ENOSPC inside the container (src/runtime/host/writable-layer.ts).
 *
 * --isolation=vm (not built yet): the guest's root disk is a qcow2 overlay over the image's raw
 * base disk; `size` becomes that overlay's virtual size (Qcow2Image.create accepts a virtual
 * size larger than its backing file) and the guest agent runs resize2fs on the root filesystem
 * at boot so it fills the larger disk. A size smaller than the base disk is refused there (a
 * filesystem cannot shrink under data the image already holds).
 */
export function validateStorageOpt(hc: HostConfigBody): { sizeBytes: number } | undefined {
  let sizeBytes: number | undefined;
  for (const [rawKey, val] of Object.entries(hc.StorageOpt ?? {})) {
    const key = rawKey.toLowerCase();
    if (key !== 'size') throw new InvalidParameterError(`Unknown option ${key}`);
    if (typeof val !== 'string') throw new InvalidParameterError(`invalid size: '${String(val)}'`);
    sizeBytes = parseStorageSize(val);
    if (sizeBytes !== 0 && sizeBytes < MIN_WRITABLE_LAYER_SIZE) {
      throw new InvalidParameterError(
        `--storage-opt size=${val}: storage size cannot be less than 16MiB (the smallest ext4 writable layer tvm makes)`,
      );
    }
  }
  return sizeBytes ? { sizeBytes } : undefined;
}

/**
 * HostConfig.UsernsMode: '' (the daemon's choice: its --userns-remap, if any) or 'host' (the
 * host's user namespace); anything else is refused, as Docker does.
 */
export function validateUsernsMode(hc: HostConfigBody): 'host' | undefined {
  const mode = hc.UsernsMode ?? '';
  if (mode === '') return undefined;
  if (mode === 'host') return 'host';
  throw new InvalidParameterError(`invalid USER mode ${JSON.stringify(mode)}: --userns supports only "host"`);
}

export function validateNetwork(hc: HostConfigBody): 'none' | 'host' {
  const bindings = hc.PortBindings ? Object.keys(hc.PortBindings) : [];
  if (bindings.length > 0 || hc.PublishAllPorts) {
    throw new InvalidParameterError('port publishing is not supported yet: tvm containers run with --network none or host');
  }
  const mode = hc.NetworkMode ?? '';
  if (mode === '' || mode === 'default' || mode === 'none') return 'none';
  if (mode === 'host') return 'host';
  if (mode === 'bridge') throw new NotImplementedError('network mode "bridge" is not supported yet: use --network none or --network host');
  throw new InvalidParameterError(`network ${mode} not found (tvm supports --network none and host only)`);
}

/**
 * HostConfig.RestartPolicy (Docker's validation and messages) and the log driver; returns the
 * normalized policy the record keeps.
 */
export function validateRestartPolicy(hc: HostConfigBody): RestartPolicy {
  const policy = parseRestartPolicy(hc.RestartPolicy);
  if (hc.AutoRemove && policy.Name !== 'no') {
    throw new InvalidParameterError("can't create 'AutoRemove' container with restart policy");
  }
  const logType = hc.LogConfig?.Type ?? '';
  if (logType !== '' && logType !== 'json-file') {
    throw new InvalidParameterError(`logging driver "${logType}" is not supported: tvm writes json-file logs`);
  }
  return policy;
}

function asArgv(v: string[] | string | null | undefined): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  return typeof v === 'string' ? [v] : v;
}

/** Image env first, container env overrides by key; PATH is always present. */
export function mergeEnv(imageEnv: string[], userEnv: string[]): string[] {
  const order: string[] = [];
  const vals = new Map<string, string>();
  for (const e of [...imageEnv, ...userEnv]) {
    const eq = e.indexOf('=');
    const key = eq < 0 ? e : e.slice(0, eq);
    if (eq < 0) continue;
    if (!vals.has(key)) order.push(key);
    vals.set(key, e);
  }
  if (!vals.has('PATH')) {
    order.unshift('PATH');
    vals.set('PATH', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  }
  return order.map((k) => vals.get(k)!);
}

export interface EffectiveConfig {
  config: Record<string, unknown>;
  process: ProcessSpec;
  path: string;
  args: string[];
  hostname: string;
  stopSignal: string;
}

/** Docker's rules: a user Entrypoint resets the image Cmd; Cmd falls back to the image's. */
export function effectiveConfig(body: CreateBody, image: ImageRecord, id: string): EffectiveConfig {
  const ic = image.config ?? {};
  const userEntry = asArgv(body.Entrypoint);
  const userCmd = asArgv(body.Cmd);
  // An explicitly empty entrypoint (`--entrypoint ""`) clears the image's.
  const entrypoint = userEntry !== undefined ? (userEntry.length === 1 && userEntry[0] === '' ? [] : userEntry) : (ic.Entrypoint ?? []);
  const cmd = userCmd !== undefined && userCmd.length > 0 ? userCmd : userEntry !== undefined ? [] : (ic.Cmd ?? []);
  const argv = [...entrypoint, ...cmd];
  if (argv.length === 0) throw new InvalidParameterError('no command specified');
  const hostname = body.Hostname && body.Hostname !== '' ? body.Hostname : id.slice(0, 12);
  const tty = body.Tty === true;
  const userEnv = body.Env ?? [];
  const base = [`HOSTNAME=${hostname}`, ...(tty ? ['TERM=xterm'] : [])];
  const env = mergeEnv([...base, ...(ic.Env ?? [])], userEnv);
  const cwd = body.WorkingDir && body.WorkingDir !== '' ? body.WorkingDir : ic.WorkingDir && ic.WorkingDir !== '' ? ic.WorkingDir : '/';
  if (!path.posix.isAbsolute(cwd))
    throw new InvalidParameterError(`the working directory '${cwd}' is invalid, it needs to be an absolute path`);
  const user = body.User !== undefined && body.User !== '' ? body.User : (ic.User ?? '');
  const stopSignal =
    body.StopSignal && body.StopSignal !== '' ? body.StopSignal : ic.StopSignal && ic.StopSignal !== '' ? ic.StopSignal : 'SIGTERM';
  parseSignal(stopSignal);
  const labels = { ...(ic.Labels ?? {}), ...(body.Labels ?? {}) };
  const config: Record<string, unknown> = {
    Hostname: hostname,
    Domainname: body.Domainname ?? '',
    User: user,
    AttachStdin: body.AttachStdin ?? false,
    AttachStdout: body.AttachStdout ?? false,
    AttachStderr: body.AttachStderr ?? false,
    Tty: tty,
    OpenStdin: body.OpenStdin ?? false,
    StdinOnce: body.StdinOnce ?? false,
    Env: env,
    Cmd: cmd,
    Image: body.Image,
    Volumes: { ...(ic.Volumes ?? {}), ...(body.Volumes ?? {}) },
    // the image's EXPOSE and --expose: what -P publishes
    ...((ic.ExposedPorts || body.ExposedPorts) && { ExposedPorts: { ...(ic.ExposedPorts ?? {}), ...(body.ExposedPorts ?? {}) } }),
    WorkingDir: cwd === '/' && !body.WorkingDir && !ic.WorkingDir ? '' : cwd,
    Entrypoint: entrypoint.length > 0 ? entrypoint : null,
    Labels: labels,
    StopSignal: stopSignal,
    ...(body.StopTimeout !== undefined && body.StopTimeout !== null && { StopTimeout: body.StopTimeout }),
  };
  return {
    config,
    process: { args: argv, env, cwd, user, tty, openStdin: body.OpenStdin === true },
    path: argv[0]!,
    args: argv.slice(1),
    hostname,
    stopSignal,
  };
}

export interface MountRequest {
  mount: Mount;
  /** volume name to create or look up, for type 'volume' */
  volumeName?: string;
  anonymous?: boolean;
  mode: string;
}

/**
 * Docker's options for every tmpfs mount, before the user's (a later `exec`, `suid` or `dev`
 * overrides them; the agent applies the words in order).
 */
const TMPFS_DEFAULTS = ['noexec', 'nosuid', 'nodev'];

/** Parses `-v` binds (`/host:/ctr[:ro]`, `name:/ctr[:ro]`, `/ctr`), `--mount`, `--tmpfs`, image Volumes. */
export function parseMounts(hc: HostConfigBody, imageVolumes: Record<string, object> | null | undefined): MountRequest[] {
  const out: MountRequest[] = [];
  const seen = new Set<string>();
  const add = (m: MountRequest) => {
    const dest = path.posix.normalize(m.mount.destination);
    if (!path.posix.isAbsolute(dest))
      throw new InvalidParameterError(`invalid mount config: mount path must be absolute: ${m.mount.destination}`);
    if (dest === '/') throw new InvalidParameterError("invalid specification: destination can't be '/'");
    if (seen.has(dest)) throw new InvalidParameterError(`Duplicate mount point: ${dest}`);
    seen.add(dest);
    m.mount.destination = dest;
    out.push(m);
  };
  for (const b of hc.Binds ?? []) {
    const parts = b.split(':');
    if (parts.length < 1 || parts.length > 3 || parts.some((p) => p === ''))
      throw new InvalidParameterError(`invalid volume specification: '${b}'`);
    if (parts.length === 1) {
      add({ mount: { type: 'volume', source: '', destination: parts[0]!, readonly: false, copyUp: true }, anonymous: true, mode: '' });
      continue;
    }
    const [src, dst, modeStr = ''] = parts as [string, string, string?];
    const modes = modeStr === '' ? [] : modeStr.split(',');
    for (const m of modes) {
      if (!['ro', 'rw', 'z', 'Z', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave', 'nocopy'].includes(m)) {
        throw new InvalidParameterError(`invalid mode: ${m}`);
      }
    }
    const readonly = modes.includes('ro');
    if (src.startsWith('/')) {
      add({ mount: { type: 'bind', source: path.posix.normalize(src), destination: dst, readonly }, mode: modeStr });
    } else {
      add({
        mount: { type: 'volume', source: '', destination: dst, readonly, copyUp: !modes.includes('nocopy') },
        volumeName: src,
        mode: modeStr,
      });
    }
  }
  for (const m of hc.Mounts ?? []) {
    const type = m.Type ?? 'volume';
    if (!m.Target) throw new InvalidParameterError('invalid mount config: Target must not be empty');
    if (type === 'bind') {
      if (!m.Source || !m.Source.startsWith('/'))
        throw new InvalidParameterError(
          `invalid mount config for type "bind": invalid mount path: '${m.Source ?? ''}' mount path must be absolute`,
        );
      add({ mount: { type: 'bind', source: m.Source, destination: m.Target, readonly: m.ReadOnly === true }, mode: '' });
    } else if (type === 'volume') {
      add({
        mount: {
          type: 'volume',
          source: '',
          destination: m.Target,
          readonly: m.ReadOnly === true,
          copyUp: m.VolumeOptions?.NoCopy !== true,
        },
        ...(m.Source ? { volumeName: m.Source } : { anonymous: true }),
        mode: '',
      });
    } else if (type === 'tmpfs') {
      const opts: string[] = [];
      if (m.TmpfsOptions?.SizeBytes) opts.push(`size=${m.TmpfsOptions.SizeBytes}`);
      if (m.TmpfsOptions?.Mode) opts.push(`mode=${m.TmpfsOptions.Mode.toString(8)}`);
      add({
        mount: {
          type: 'tmpfs',
          source: 'tmpfs',
          destination: m.Target,
          readonly: m.ReadOnly === true,
          options: [...TMPFS_DEFAULTS, ...opts],
        },
        mode: '',
      });
    } else {
      throw new InvalidParameterError(`invalid mount config: mount type unknown: "${type}"`);
    }
  }
  for (const [dst, opts] of Object.entries(hc.Tmpfs ?? {})) {
    add({
      mount: {
        type: 'tmpfs',
        source: 'tmpfs',
        destination: dst,
        readonly: false,
        options: [...TMPFS_DEFAULTS, ...(opts === '' ? [] : opts.split(','))],
      },
      mode: '',
    });
  }
  for (const dst of Object.keys(imageVolumes ?? {})) {
    if (seen.has(path.posix.normalize(dst))) continue;
    add({ mount: { type: 'volume', source: '', destination: dst, readonly: false, copyUp: true }, anonymous: true, mode: '' });
  }
  return out;
}

/**
 * `--volumes-from CTR[:ro|:rw]`: the other container's volumes and binds, at the same
 * destinations, as `-v` entries (read-only as the suffix says, else as they are there). A
 * destination this container mounts itself keeps its own mount, as with dockerd.
 */
export function volumesFromBinds(
  hc: HostConfigBody,
  find: (ref: string) => { mounts: { Type: string; Name?: string; Source: string; Destination: string; RW: boolean }[] } | undefined,
): string[] {
  const own = new Set<string>([
    ...(hc.Binds ?? []).map((b) => path.posix.normalize(b.split(':').length === 1 ? b : b.split(':')[1]!)),
    ...(hc.Mounts ?? []).map((m) => path.posix.normalize(m.Target ?? '')),
    ...Object.keys(hc.Tmpfs ?? {}).map((d) => path.posix.normalize(d)),
  ]);
  const out: string[] = [];
  for (const entry of hc.VolumesFrom ?? []) {
    const m = /^(.+?)(?::(ro|rw))?$/.exec(entry);
    if (!m || m[1] === '') throw new InvalidParameterError(`invalid volumes-from specification: '${entry}'`);
    const src = find(m[1]!);
    if (!src) throw new NotFoundError(`No such container: ${m[1]}`);
    for (const p of src.mounts) {
      if ((p.Type !== 'volume' && p.Type !== 'bind') || own.has(p.Destination)) continue;
      own.add(p.Destination);
      const rw = m[2] === undefined ? p.RW : m[2] === 'rw';
      out.push(`${p.Type === 'volume' ? p.Name : p.Source}:${p.Destination}${rw ? '' : ':ro'}`);
    }
  }
  return out;
}

/** Normalizes a user's image reference for messages (`busybox` -> `busybox:latest`). */
export function displayRef(ref: string): string {
  if (ref.includes('@') || /^(sha256:)?[0-9a-f]{12,64}$/.test(ref)) return ref;
  const lastSlash = ref.lastIndexOf('/');
  return ref.slice(lastSlash + 1).includes(':') ? ref : `${ref}:latest`;
}
