/**
 * The daemon's side of the agent protocol for one isolation: finding the supervisor's agent
 * (after a daemon restart too), requests on a running workload, attachments made before a start,
 * exit watching and the mapping of agent errors to Docker's. Both isolations use it; they differ
 * only in how they reach their agent (`SessionTransport`) and how they build a root filesystem.
 * (containerd's shim API is the model: one client protocol whatever runs the container.)
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConflictError, InvalidParameterError, NotFoundError, TvmError } from '../errors.js';
import { parseSignal } from './signals.js';
import type { AgentClient } from '../guest-agent/client.js';
import { AgentError, parseExitStatus, type AgentExitStatus } from '../guest-agent/protocol.js';
import { attachStreams } from './host/stdio.js';
import { agentProcess, agentResourceChanges, validateProcess } from './host/spec.js';
import type {
  Attachment,
  ContainerSpec,
  ExecHandle,
  ExecSpec,
  ExitStatus,
  Isolation,
  Resources,
  RunningInfo,
  Stats,
  StdioStreams,
} from './types.js';

export function toExit(s: AgentExitStatus): ExitStatus {
  const out: ExitStatus = { exitCode: s.exitCode, finishedAt: s.finishedAt, oomKilled: s.oomKilled };
  if (s.error) out.error = s.error;
  return out;
}

export const SIGKILL = 9;

/** An isolation's record of a container (STATE/<name>); NotFoundError when there is none. */
export async function readStateRecord<T>(spec: ContainerSpec, name: string): Promise<T> {
  try {
    return JSON.parse(await readFile(path.join(spec.stateDir, name), 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`No such container: ${spec.id}`);
    throw e;
  }
}

/** The exit status a supervisor persisted (STATE/exit.json), if it has. */
export async function readExitStatus(spec: ContainerSpec): Promise<ExitStatus | undefined> {
  try {
    return toExit(parseExitStatus(JSON.parse(await readFile(path.join(spec.stateDir, 'exit.json'), 'utf8'))));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** How an isolation reaches its containers' agents. */
export interface SessionTransport {
  /** a connected client if the container's supervisor is alive, else undefined (never throws for "gone") */
  connect(spec: ContainerSpec): Promise<AgentClient | undefined>;
  /** the exit status the supervisor persisted, if any */
  readExitFile(spec: ContainerSpec): Promise<ExitStatus | undefined>;
  /** throws NotFoundError when the isolation has no record of the container */
  checkRecord(spec: ContainerSpec): Promise<void>;
  /** what the supervisor's lifetime needs once the daemon has collected the exit (host: shutdown) */
  afterExit?(spec: ContainerSpec, client: AgentClient): Promise<void>;
}

interface PendingAttach {
  stdio: StdioStreams;
  resolve: (a: Attachment) => void;
  reject: (e: unknown) => void;
  detached: boolean;
}

/** What this process knows about a container; all of it can be rebuilt. */
export interface Live {
  client?: AgentClient;
  exited?: Promise<ExitStatus>;
  pending: PendingAttach[];
  startWaiters: (() => void)[];
}

export class AgentSessions {
  private readonly lives = new Map<string, Live>();

  constructor(private readonly transport: SessionTransport) {}

  live(id: string): Live {
    let l = this.lives.get(id);
    if (!l) {
      l = { pending: [], startWaiters: [] };
      this.lives.set(id, l);
    }
    return l;
  }

  /** The supervisor's client if one is alive (connecting after a daemon restart). */
  async agent(spec: ContainerSpec): Promise<AgentClient | undefined> {
    const l = this.live(spec.id);
    if (l.client && !l.client.closed) return l.client;
    l.client = await this.transport.connect(spec);
    return l.client;
  }

  async running(spec: ContainerSpec): Promise<AgentClient> {
    const c = await this.agent(spec);
    if (c) {
      const st = await c.state();
      if (st.status === 'running' || st.status === 'paused') return c;
    }
    await this.transport.checkRecord(spec);
    throw new ConflictError(`Container ${spec.id} is not running`);
  }

  /** Resolves with the exit status once the main process has exited; then lets the supervisor go. */
  watchExit(spec: ContainerSpec, client: AgentClient): Promise<ExitStatus> {
    const p = client.wait().then(
      async (s) => {
        await this.transport.afterExit?.(spec, client);
        client.close();
        return toExit(s);
      },
      async (e) => {
        // connection lost: the supervisor wrote the status before it went away, or it crashed
        const f = await this.transport.readExitFile(spec);
        if (f) return f;
        throw e instanceof TvmError ? e : new TvmError('ERR_SUPERVISOR_LOST', `supervisor of ${spec.id} lost`, 500, { cause: e });
      },
    );
    // observed only so an early rejection is not 'unhandled': it is awaited, and its error reported, where it is used
    p.catch(() => {});
    return p;
  }

  /** Connects the attachments made before the start; call between the agent's create and start. */
  async connectPending(spec: ContainerSpec, client: AgentClient): Promise<void> {
    const l = this.live(spec.id);
    for (const p of l.pending.splice(0)) {
      if (p.detached) continue;
      try {
        p.resolve(await attachStreams(client, p.stdio, { tty: spec.process.tty, openStdin: spec.process.openStdin }));
      } catch (e) {
        p.reject(e);
      }
    }
  }

  /** Starts the created workload and watches its exit; Docker's 127/126 start errors as 400. */
  async startWorkload(spec: ContainerSpec, client: AgentClient): Promise<RunningInfo> {
    const l = this.live(spec.id);
    l.exited = undefined;
    try {
      const info = await client.start();
      l.exited = this.watchExit(spec, client);
      return info;
    } catch (e) {
      l.exited = this.watchExit(spec, client);
      if (e instanceof AgentError && e.agentCode === 'ERR_EXEC') {
        // Docker: the start fails, and the container records exit 127/126 with the message
        throw new TvmError('ERR_EXEC', e.message, 400, { cause: e });
      }
      throw e;
    } finally {
      for (const w of l.startWaiters.splice(0)) w();
    }
  }

  async attach(spec: ContainerSpec, stdio: StdioStreams): Promise<Attachment> {
    await this.transport.checkRecord(spec);
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

  /** The container is gone: pending attachments end, nothing is kept. */
  forget(spec: ContainerSpec, why: Error): void {
    const l = this.lives.get(spec.id);
    if (!l) return;
    for (const p of l.pending.splice(0)) p.reject(why);
    this.lives.delete(spec.id);
  }

  async resize(spec: ContainerSpec, rows: number, cols: number): Promise<void> {
    const c = await this.running(spec);
    await c.resize(rows, cols);
  }

  async wait(spec: ContainerSpec): Promise<ExitStatus> {
    await this.transport.checkRecord(spec);
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
      const f = await this.transport.readExitFile(spec);
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
      // no state (the agent went away meanwhile) means no frozen cgroup to thaw
      const st = await c.state().catch(() => undefined);
      // only a frozen container needs the thaw; on a running one it fails, which changes nothing
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
    // observed only so an early rejection is not 'unhandled': it is awaited, and its error reported, where it is used
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

  /** `memoryTotal`: what "unlimited" shows as (the host's memory, or the guest's) */
  async stats(spec: ContainerSpec, memoryTotal = os.totalmem()): Promise<Stats> {
    const c = await this.running(spec);
    const r = await c.stats();
    const mem = r.memory as { usage: number; limit: number; maxUsage: number };
    const cpu = r.cpu as { totalUsageNs: number; systemUsageNs: number; onlineCpus: number };
    const pids = r.pids as { current: number; limit: number };
    // v1 reports "unlimited" as a huge number, v2 as max (-1): Docker shows the machine's memory
    const limit = mem.limit < 0 || mem.limit > memoryTotal ? memoryTotal : mem.limit;
    const out: Stats = {
      read: new Date().toISOString(),
      memory: { usage: mem.usage, limit, maxUsage: mem.maxUsage },
      cpu: { totalUsageNs: cpu.totalUsageNs, systemUsageNs: cpu.systemUsageNs, onlineCpus: cpu.onlineCpus },
      pids: { current: pids.current },
    };
    if (pids.limit > 0) out.pids.limit = pids.limit;
    return out;
  }
}

/**
 * An isolation whose containers run under an agent: everything after "reach the agent" is the
 * shared session. A subclass says how it reaches the agent and keeps its record; it builds the
 * root filesystem and the supervisor (create, start, remove, recover, archive, ...).
 */
export abstract class AgentSessionIsolation implements Pick<
  Isolation,
  'attach' | 'resize' | 'wait' | 'kill' | 'pause' | 'resume' | 'exec' | 'update' | 'top' | 'stats'
> {
  protected readonly sessions: AgentSessions;

  constructor() {
    this.sessions = new AgentSessions({
      connect: (spec) => this.connectAgent(spec),
      readExitFile: (spec) => readExitStatus(spec),
      checkRecord: (spec) => this.checkRecord(spec),
      afterExit: (spec, client) => this.afterExit(spec, client),
    });
  }

  /** a client of the container's agent if its supervisor is alive, else undefined */
  protected abstract connectAgent(spec: ContainerSpec): Promise<AgentClient | undefined>;
  /** NotFoundError when the isolation has no record of the container */
  protected abstract checkRecord(spec: ContainerSpec): Promise<void>;
  /** Has the isolation a record of the container? (recover: none means the container is lost) */
  protected async recorded(spec: ContainerSpec): Promise<boolean> {
    try {
      await this.checkRecord(spec);
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }

  /** After a daemon restart: watch the exit of a workload found running. */
  protected adopt(spec: ContainerSpec, client: AgentClient): void {
    const l = this.sessions.live(spec.id);
    if (!l.exited) l.exited = this.sessions.watchExit(spec, client);
  }

  /** once the daemon has the exit status (default: nothing) */
  protected async afterExit(_spec: ContainerSpec, _client: AgentClient): Promise<void> {}

  attach(spec: ContainerSpec, stdio: StdioStreams): Promise<Attachment> {
    return this.sessions.attach(spec, stdio);
  }
  resize(spec: ContainerSpec, rows: number, cols: number): Promise<void> {
    return this.sessions.resize(spec, rows, cols);
  }
  wait(spec: ContainerSpec): Promise<ExitStatus> {
    return this.sessions.wait(spec);
  }
  kill(spec: ContainerSpec, signal: string | number): Promise<void> {
    return this.sessions.kill(spec, signal);
  }
  pause(spec: ContainerSpec): Promise<void> {
    return this.sessions.pause(spec);
  }
  resume(spec: ContainerSpec): Promise<void> {
    return this.sessions.resume(spec);
  }
  exec(spec: ContainerSpec, exec: ExecSpec, stdio: StdioStreams): Promise<ExecHandle> {
    return this.sessions.exec(spec, exec, stdio);
  }
  update(spec: ContainerSpec, changes: Resources): Promise<void> {
    return this.sessions.update(spec, changes);
  }
  top(spec: ContainerSpec): Promise<{ pid: number; ppid: number; cmd: string }[]> {
    return this.sessions.top(spec);
  }
  stats(spec: ContainerSpec): Promise<Stats> {
    return this.sessions.stats(spec);
  }
}
