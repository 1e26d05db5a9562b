/**
 * AgentClient: the host side of the agent protocol. One control connection with request/response
 * correlation; stream connections opened on demand. How bytes reach the agent is a pluggable
 * `Connector`: a unix socket (host supervisor) or the VMM's vsock proxy
 * (`CONNECT <port>\n` -> `OK <port>\n`).
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { FormatError, TvmError } from '../errors.js';
import { FrameDecoder } from './framing.js';
import {
  AgentError,
  decodeReply,
  encodeMessage,
  parseExitStatus,
  PROTOCOL_VERSION,
  SUPPORTED_VERSIONS,
  type AgentExitStatus,
  type AgentProcess,
  type AgentResources,
  type AgentSpec,
  type HelloReply,
  type OkReply,
  type RequestType,
  type HelloRequest,
  type StreamName,
} from './protocol.js';

export type Connector = () => Promise<net.Socket>;

function connected(sock: net.Socket): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const onErr = (e: Error) => reject(new TvmError('ERR_AGENT_UNREACHABLE', `cannot reach the agent: ${e.message}`, 500, { cause: e }));
    sock.once('error', onErr);
    sock.once('connect', () => {
      sock.off('error', onErr);
      resolve(sock);
    });
  });
}

/** A unix socket path (the host supervisor's STATE/agent.sock). */
export function unixConnector(path: string): Connector {
  return () => connected(net.createConnection({ path }));
}

/** The VMM's vsock proxy: a unix socket where `CONNECT <port>\n` is answered `OK <hostport>\n`. */
export function vsockConnector(udsPath: string, port: number): Connector {
  return async () => {
    const sock = await connected(net.createConnection({ path: udsPath }));
    sock.write(`CONNECT ${port}\n`);
    const line = await new Promise<{ line: string; rest: Buffer }>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const onData = (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const nl = buf.indexOf(0x0a);
        if (nl >= 0) {
          cleanup();
          resolve({ line: buf.subarray(0, nl).toString('latin1'), rest: buf.subarray(nl + 1) });
        } else if (buf.length > 64) {
          cleanup();
          reject(new FormatError('vsock proxy: handshake line too long', 'ERR_AGENT_HANDSHAKE'));
        }
      };
      const onEnd = () => {
        cleanup();
        reject(new TvmError('ERR_AGENT_UNREACHABLE', `vsock proxy closed during CONNECT ${port}`));
      };
      const cleanup = () => {
        sock.off('data', onData);
        sock.off('end', onEnd);
        sock.off('error', onEnd);
      };
      sock.on('data', onData);
      sock.on('end', onEnd);
      sock.on('error', onEnd);
    });
    if (!/^OK \d+$/.test(line.line)) {
      sock.destroy();
      throw new TvmError('ERR_AGENT_UNREACHABLE', `vsock proxy refused CONNECT ${port}: ${JSON.stringify(line.line)}`);
    }
    if (line.rest.length) sock.unshift(line.rest);
    return sock;
  };
}

/**
 * Reads one whole frame: the hello's answer, or the one answer of an extract connection. The
 * socket is left paused with the bytes that followed the frame returned; `closed` names a
 * connection that ended first.
 */
export function readFrame(sock: net.Socket, closed: () => Error): Promise<{ frame: Buffer; rest: Buffer }> {
  const dec = new FrameDecoder();
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('error', onEnd);
    };
    const onData = (d: Buffer) => {
      let frame: Buffer | undefined;
      try {
        dec.append(d);
        frame = dec.next();
      } catch (e) {
        cleanup();
        reject(e);
        return;
      }
      if (!frame) return;
      cleanup();
      sock.pause();
      resolve({ frame, rest: dec.remainder() });
    };
    const onEnd = () => {
      cleanup();
      reject(closed());
    };
    sock.on('data', onData);
    sock.on('end', onEnd);
    sock.on('error', onEnd);
    sock.resume();
  });
}

/** Sends hello and reads the agent's hello; returns it plus bytes that followed it. */
async function handshake(
  sock: net.Socket,
  hello: Pick<HelloRequest, 'kind' | 'stream' | 'exec' | 'path'>,
): Promise<{ reply: HelloReply; rest: Buffer }> {
  sock.write(encodeMessage({ v: PROTOCOL_VERSION, type: 'hello', versions: [...SUPPORTED_VERSIONS], ...hello }));
  try {
    const { frame, rest } = await readFrame(sock, () => new TvmError('ERR_AGENT_CLOSED', 'agent closed the connection during hello'));
    const r = decodeReply(frame);
    if (r.type === 'error') throw AgentError.of(r);
    if (r.type !== 'hello') throw new FormatError(`agent answered hello with ${r.type}`, 'ERR_AGENT_MESSAGE');
    if (r.version !== PROTOCOL_VERSION) throw new FormatError(`agent chose protocol version ${r.version}`, 'ERR_AGENT_MESSAGE');
    return { reply: r, rest };
  } catch (e) {
    sock.destroy();
    throw e;
  }
}

interface Pending {
  resolve: (r: OkReply) => void;
  reject: (e: Error) => void;
}

export class AgentClient {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private closedError: Error | undefined;
  readonly agentPid: number;

  private constructor(
    private readonly sock: net.Socket,
    private readonly connector: Connector,
    hello: HelloReply,
    rest: Buffer,
  ) {
    this.agentPid = hello.pid;
    const dec = new FrameDecoder();
    const onFrames = (d: Buffer) => {
      try {
        for (const f of dec.push(d)) this.dispatch(f);
      } catch (e) {
        this.fail(e as Error);
      }
    };
    sock.on('data', onFrames);
    sock.on('error', (e) => this.fail(new TvmError('ERR_AGENT_CLOSED', `agent connection failed: ${e.message}`, 500, { cause: e })));
    sock.on('close', () => this.fail(new TvmError('ERR_AGENT_CLOSED', 'agent connection closed')));
    if (rest.length) onFrames(rest);
    sock.resume();
  }

  static async connect(connector: Connector): Promise<AgentClient> {
    const sock = await connector();
    const { reply, rest } = await handshake(sock, { kind: 'control' });
    return new AgentClient(sock, connector, reply, rest);
  }

  private dispatch(frame: Buffer): void {
    const r = decodeReply(frame);
    if (r.type === 'hello') throw new FormatError('unexpected hello on the control connection', 'ERR_AGENT_MESSAGE');
    const id = r.id ?? 0;
    if (id === 0) {
      // an error without id: the agent refused the connection as a whole
      throw r.type === 'error' ? AgentError.of(r) : new FormatError('reply without id', 'ERR_AGENT_MESSAGE');
    }
    const p = this.pending.get(id);
    if (!p) throw new FormatError(`reply to unknown request id ${id}`, 'ERR_AGENT_MESSAGE');
    this.pending.delete(id);
    if (r.type === 'error') p.reject(AgentError.of(r));
    else p.resolve(r);
  }

  private fail(e: Error): void {
    if (!this.closedError) this.closedError = e;
    for (const p of this.pending.values()) p.reject(this.closedError);
    this.pending.clear();
    this.sock.destroy();
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  request(type: RequestType, fields: Record<string, unknown> = {}): Promise<OkReply> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    if (this.nextId > 0xffffffff) this.nextId = 1;
    return new Promise<OkReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.sock.write(encodeMessage({ v: PROTOCOL_VERSION, type, id, ...fields }));
    });
  }

  async create(spec: AgentSpec): Promise<void> {
    await this.request('create', { spec });
  }
  async start(): Promise<{ pid: number; startedAt: string }> {
    const r = await this.request('start');
    return { pid: r.pid as number, startedAt: r.startedAt as string };
  }
  async wait(exec?: string): Promise<AgentExitStatus> {
    const r = await this.request('wait', exec ? { exec } : {});
    return parseExitStatus(r.status);
  }
  async signal(signal: number, exec?: string): Promise<void> {
    await this.request('signal', exec ? { signal, exec } : { signal });
  }
  async resize(rows: number, cols: number, exec?: string): Promise<void> {
    await this.request('resize', exec ? { rows, cols, exec } : { rows, cols });
  }
  async exec(exec: string, process: AgentProcess, privileged: boolean): Promise<void> {
    await this.request('exec', { exec, process, privileged });
  }
  async startExec(exec: string): Promise<{ pid: number }> {
    const r = await this.request('start-exec', { exec });
    return { pid: r.pid as number };
  }
  async pause(): Promise<void> {
    await this.request('pause');
  }
  async resume(): Promise<void> {
    await this.request('resume');
  }
  async stats(): Promise<OkReply> {
    return this.request('stats');
  }
  async ps(): Promise<{ pid: number; ppid: number; cmd: string }[]> {
    const r = await this.request('ps');
    return r.processes as { pid: number; ppid: number; cmd: string }[];
  }
  async state(): Promise<{ status: string; pid?: number; startedAt?: string; exit?: AgentExitStatus }> {
    const r = await this.request('state');
    const out: { status: string; pid?: number; startedAt?: string; exit?: AgentExitStatus } = { status: r.status as string };
    if (typeof r.pid === 'number') out.pid = r.pid;
    if (typeof r.startedAt === 'string') out.startedAt = r.startedAt;
    if (r.exit !== undefined) out.exit = parseExitStatus(r.exit);
    return out;
  }
  async shutdown(): Promise<void> {
    await this.request('shutdown');
  }
  /**
   * The guest agent only: FIFREEZE on the container's disk (flushed, journal checkpointed) so
   * the host can read it offline while the VM runs; thawed by thawFs, shutdown, or when this
   * connection closes.
   */
  /** The guest agent only: puts the guest's `ifname` on a network (`nic`: "ADDR/PREFIX,GATEWAY,MAC"). */
  async netUp(ifname: string, nic: string): Promise<void> {
    await this.request('net-up', { ifname, nic });
  }
  /** The guest agent only: rewrites the container's /etc/resolv.conf in place. */
  async resolvConf(content: string): Promise<void> {
    await this.request('resolv-conf', { content });
  }
  /** The guest agent only: takes the guest's `ifname` off its network. */
  async netDown(ifname: string): Promise<void> {
    await this.request('net-down', { ifname });
  }
  async freezeFs(): Promise<void> {
    await this.request('freeze-fs');
  }
  async thawFs(): Promise<void> {
    await this.request('thaw-fs');
  }
  /** docker update: the agent writes the cgroup limits given (only those) */
  async update(resources: AgentResources): Promise<void> {
    await this.request('update', { resources });
  }

  /**
   * A stream connection: after the hello the socket carries raw bytes (stdout/stderr: from the
   * agent until EOF; stdin: to the agent, end() closes the process's stdin).
   */
  async openStream(stream: StreamName, exec?: string): Promise<Duplex> {
    const sock = await this.connector();
    const { rest } = await handshake(sock, exec ? { kind: 'stream', stream, exec } : { kind: 'stream', stream });
    // left paused: the consumer's pipe()/iteration starts the flow, so no byte is lost
    if (rest.length) sock.unshift(rest);
    return sock;
  }

  /**
   * An extract connection (`docker cp` into the running container): after the hello the caller
   * writes entry frames and reads one answer frame. The hello fails with the agent's error when
   * `dest` is missing or not a directory in the container.
   */
  async openExtract(dest: string): Promise<net.Socket> {
    const sock = await this.connector();
    const { rest } = await handshake(sock, { kind: 'extract', path: dest });
    if (rest.length) sock.unshift(rest);
    return sock;
  }

  close(): void {
    this.fail(new TvmError('ERR_AGENT_CLOSED', 'agent client closed'));
  }
}
