/**
 * Agent protocol messages (docs/agent-protocol.md) as TypeScript types, with encoding and
 * validating decoding. Anything malformed or of an unknown type is a FormatError.
 */
import { FormatError, TvmError } from '../errors.js';
import { encodeFrame } from './framing.js';

export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS = [1] as const;

export type StreamName = 'stdin' | 'stdout' | 'stderr';

export interface AgentProcess {
  args: string[];
  env: string[];
  cwd: string;
  user: string;
  tty: boolean;
  stdin: boolean;
}

export interface AgentMount {
  type: 'bind' | 'volume' | 'tmpfs';
  source?: string;
  destination: string;
  readonly: boolean;
  options?: string[];
}

/** cgroup limits, in the create spec and in `update` (there, only the keys to change). */
export interface AgentResources {
  memory?: number;
  /** memory + swap; 0/unset: twice the memory, -1: unlimited */
  memorySwap?: number;
  /** soft limit (v1 memory.soft_limit_in_bytes, v2 memory.low) */
  memoryReservation?: number;
  nanoCpus?: number;
  cpuShares?: number;
  /** <= 0 in an update: unlimited */
  pidsLimit?: number;
  cpusetCpus?: string;
}

/** The `create` spec: what the agent needs, with every path resolved by the host side. */
export interface AgentSpec {
  id: string;
  hostname: string;
  privileged: boolean;
  readonlyRootfs: boolean;
  /** none: a new namespace with lo; host: the agent's; path: join a namespace the daemon prepared */
  network: 'none' | 'host' | { path: string };
  /** without upper and work, lower itself is bound as the writable root (the microVM guest's disk) */
  rootfs: { lower: string; upper?: string; work?: string; target: string };
  process: AgentProcess;
  mounts: AgentMount[];
  resources: AgentResources;
  capAdd: string[];
  capDrop: string[];
  cgroup?: { version: 1 | 2; root: string; path: string };
  logPath: string;
  /** json-file rotation: before a record would take the file past maxSize bytes (maxFiles kept) */
  logRotate?: { maxSize: number; maxFiles: number };
  /** own user namespace with these maps (`--userns-remap`); absent: the host's */
  userns?: {
    uidMap: { containerID: number; hostID: number; size: number }[];
    gidMap: { containerID: number; hostID: number; size: number }[];
  };
  /** the compiled filter (base64 struct sock_filter[]); absent: none */
  seccomp?: { filter: string; flags: number };
  noNewPrivileges?: boolean;
  ulimits?: { name: string; soft: number; hard: number }[];
  sysctls?: Record<string, string>;
  shmSize?: number;
  init?: boolean;
  groupAdd?: string[];
  oomScoreAdj?: number;
  devices?: { path: string; containerPath: string; permissions: string }[];
  memoryReservation?: number;
  oomKillDisable?: boolean;
  maskedPaths?: string[];
  readonlyPaths?: string[];
}

export interface AgentExitStatus {
  exitCode: number;
  finishedAt: string;
  oomKilled: boolean;
  error?: string;
}

export interface HelloRequest {
  v: 1;
  type: 'hello';
  versions: number[];
  kind: 'control' | 'stream' | 'extract';
  stream?: StreamName;
  exec?: string;
  /** kind `extract`: the directory in the container the entries land in */
  path?: string;
}

/**
 * What follows an `extract` hello, one frame each: the entries of `docker cp`'s tar, already
 * parsed and checked by the daemon (file data follows its entry raw), then `end`.
 */
export interface ExtractEntry {
  v: 1;
  type: 'entry';
  /** relative to the destination, normalized; `.` is the destination itself */
  path: string;
  kind: 'file' | 'dir' | 'symlink' | 'link';
  mode: number;
  uid: number;
  gid: number;
  /** seconds since the epoch */
  mtime?: number;
  /** symlink: its target as written; link: the linked entry's path, relative to the destination */
  linkname?: string;
  /** file: the bytes that follow this frame */
  size: number;
}
export interface ExtractEnd {
  v: 1;
  type: 'end';
}

export type RequestType =
  | 'create'
  | 'start'
  | 'wait'
  | 'signal'
  | 'resize'
  | 'exec'
  | 'start-exec'
  | 'pause'
  | 'resume'
  | 'stats'
  | 'ps'
  | 'state'
  | 'shutdown'
  | 'update'
  | 'freeze-fs'
  | 'thaw-fs'
  | 'net-up'
  | 'net-down'
  | 'resolv-conf';

export const REQUEST_TYPES: readonly RequestType[] = [
  'create',
  'start',
  'wait',
  'signal',
  'resize',
  'exec',
  'start-exec',
  'pause',
  'resume',
  'stats',
  'ps',
  'state',
  'shutdown',
  'update',
  'freeze-fs',
  'thaw-fs',
  'net-up',
  'net-down',
  'resolv-conf',
];

export interface Request {
  v: 1;
  type: RequestType;
  id: number;
  [field: string]: unknown;
}

export interface HelloReply {
  v: 1;
  type: 'hello';
  version: number;
  agent: string;
  pid: number;
}
export interface OkReply {
  v: 1;
  type: 'ok';
  id: number;
  [field: string]: unknown;
}
export interface ErrorReply {
  v: 1;
  type: 'error';
  id?: number;
  code: string;
  message: string;
  /** ERR_EXEC: the exit status the failed start stands for (127 not found, 126 not executable) */
  exitCode?: number;
}
export type AgentReply = HelloReply | OkReply | ErrorReply;

/** An error the agent answered with; `agentCode` is its ERR_* code. */
export class AgentError extends TvmError {
  readonly agentCode: string;
  /** with ERR_EXEC: the exit status the agent gave the failed start */
  readonly exitCode: number | undefined;
  constructor(agentCode: string, message: string, exitCode?: number) {
    const status = agentCode === 'ERR_NOT_FOUND' ? 404 : agentCode === 'ERR_STATE' ? 409 : agentCode === 'ERR_BAD_SPEC' ? 400 : 500;
    super(agentCode === 'ERR_EXEC' ? 'ERR_EXEC' : `ERR_AGENT_${agentCode.replace(/^ERR_/, '')}`, message, status);
    this.agentCode = agentCode;
    this.exitCode = exitCode;
  }

  static of(r: ErrorReply): AgentError {
    return new AgentError(r.code, r.message, typeof r.exitCode === 'number' && Number.isInteger(r.exitCode) ? r.exitCode : undefined);
  }
}

/**
 * The exit status of a start or exec that failed: the agent's typed code (it saw the errno of
 * execve: 127 not found, 126 not executable), never a guess from the message's words (a path
 * named "not found" is not ENOENT). `fallback` for failures before the agent ran anything.
 */
export function failedStartExitCode(e: unknown, fallback: number): number {
  // isolations wrap the agent's error (a 400 for the API): its cause still carries the code
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 5; cur = cur.cause, depth++) {
    if (cur instanceof AgentError && cur.exitCode !== undefined) return cur.exitCode;
  }
  return fallback;
}

export function encodeMessage(msg: HelloRequest | Request | ExtractEntry | ExtractEnd): Buffer {
  return encodeFrame(Buffer.from(JSON.stringify(msg), 'utf8'));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(what: string): never {
  throw new FormatError(`malformed agent message: ${what}`, 'ERR_AGENT_MESSAGE');
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Decodes and validates one frame payload from the agent. */
export function decodeReply(payload: Uint8Array): AgentReply {
  let text: string;
  let msg: unknown;
  try {
    text = decoder.decode(payload);
    msg = JSON.parse(text);
  } catch (e) {
    throw new FormatError(`malformed agent message: not UTF-8 JSON (${(e as Error).message})`, 'ERR_AGENT_MESSAGE', { cause: e });
  }
  if (!isObject(msg)) bad('not an object');
  if (msg.v !== PROTOCOL_VERSION) bad(`unsupported version ${JSON.stringify(msg.v)}`);
  const id = msg.id;
  if (id !== undefined && (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0xffffffff)) bad('bad id');
  switch (msg.type) {
    case 'hello':
      if (typeof msg.version !== 'number' || typeof msg.agent !== 'string' || typeof msg.pid !== 'number') bad('hello fields');
      return msg as unknown as HelloReply;
    case 'ok':
      if (typeof id !== 'number' || id === 0) bad('ok without id');
      return msg as unknown as OkReply;
    case 'error':
      if (typeof msg.code !== 'string' || typeof msg.message !== 'string') bad('error without code/message');
      return msg as unknown as ErrorReply;
    default:
      return bad(`unknown type ${JSON.stringify(msg.type)}`);
  }
}

/** Validates a request as the agent will (used by the fake agent in tests and by the client). */
export function decodeRequest(payload: Uint8Array): HelloRequest | Request {
  let msg: unknown;
  try {
    msg = JSON.parse(decoder.decode(payload));
  } catch (e) {
    throw new FormatError(`malformed agent request: ${(e as Error).message}`, 'ERR_AGENT_MESSAGE', { cause: e });
  }
  if (!isObject(msg) || msg.v !== PROTOCOL_VERSION || typeof msg.type !== 'string') bad('request envelope');
  if (msg.type === 'hello') {
    if (!Array.isArray(msg.versions) || (msg.kind !== 'control' && msg.kind !== 'stream' && msg.kind !== 'extract')) bad('hello fields');
    return msg as unknown as HelloRequest;
  }
  if (!(REQUEST_TYPES as readonly string[]).includes(msg.type)) bad(`unknown type ${JSON.stringify(msg.type)}`);
  if (typeof msg.id !== 'number' || !Number.isInteger(msg.id) || msg.id < 1 || msg.id > 0xffffffff) bad('request id');
  return msg as unknown as Request;
}

export function parseExitStatus(v: unknown): AgentExitStatus {
  if (!isObject(v) || typeof v.exitCode !== 'number' || typeof v.finishedAt !== 'string' || typeof v.oomKilled !== 'boolean') {
    bad('exit status');
  }
  const s: AgentExitStatus = { exitCode: v.exitCode, finishedAt: v.finishedAt, oomKilled: v.oomKilled };
  if (typeof v.error === 'string') s.error = v.error;
  return s;
}
