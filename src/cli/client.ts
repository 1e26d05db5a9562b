/**
 * The tvm CLI's API client: node:http over the daemon's unix socket (or TCP), honouring
 * TVM_HOST then DOCKER_HOST. Hijacked endpoints (attach, exec start) use a raw connection
 * so the socket is ours after `101 UPGRADED`. Not undici: loading it costs a CLI call more than
 * its whole round trips to the daemon (about 80 ms of a 200 ms `tvm run`); node:http is built in.
 */
import http from 'node:http';
import net from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { TvmError } from '../errors.js';
import { API_VERSION } from '../api/version.js';

export const DEFAULT_DAEMON_HOST = 'unix:///run/tvm/tvm.sock';

export function daemonHost(env: NodeJS.ProcessEnv = process.env): string {
  return env.TVM_HOST || env.DOCKER_HOST || DEFAULT_DAEMON_HOST;
}

/** The daemon answered with an error status: its `{"message"}` and the status. */
export class ApiError extends TvmError {
  constructor(status: number, message: string) {
    super(`HTTP_${status}`, message, status);
  }
}

export class DaemonUnreachableError extends TvmError {
  constructor(host: string, cause: unknown) {
    super('ERR_DAEMON_UNREACHABLE', `Cannot connect to the tvm daemon at ${host}. Is the daemon running? Start one with: tvm daemon`, 500, {
      cause,
    });
  }
}

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';

/** A response whose status is below 400; read its body once. */
export interface ApiResponse {
  statusCode: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

async function bodyText(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | string[] | undefined>;
  body?: unknown;
  /** a raw body (tar); sent as application/x-tar unless contentType says otherwise */
  stream?: Readable;
  contentType?: string;
  headers?: Record<string, string>;
}

function buildQuery(q: RequestOptions['query']): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  }
  const s = p.toString();
  return s === '' ? '' : `?${s}`;
}

export class TvmClient {
  readonly host: string;
  /** keep-alive, several sockets: `run` holds a wait request open while it starts the container on another */
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly unixPath: string | undefined;
  private readonly tcp: { host: string; port: number } | undefined;

  constructor(host = daemonHost()) {
    this.host = host;
    if (host.startsWith('unix://')) {
      this.unixPath = host.slice('unix://'.length);
    } else if (host.startsWith('tcp://') || host.startsWith('http://')) {
      const u = new URL(host.replace(/^tcp:/, 'http:'));
      this.tcp = { host: u.hostname, port: Number(u.port || 2375) };
    } else {
      throw new TvmError('ERR_BAD_HOST', `unsupported daemon host ${host}: use unix:///path or tcp://host:port`, 400);
    }
  }

  path(p: string, q?: RequestOptions['query']): string {
    return `/v${API_VERSION}${p}${buildQuery(q)}`;
  }

  private send(
    method: HttpMethod,
    p: string,
    headers: Record<string, string>,
    body: string | Readable | undefined,
  ): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const where = this.unixPath !== undefined ? { socketPath: this.unixPath } : { host: this.tcp!.host, port: this.tcp!.port };
      const req = http.request({ ...where, agent: this.agent, method, path: p, headers: { host: 'docker', ...headers } }, resolve);
      req.once('error', reject);
      if (typeof body === 'string') req.end(body);
      else if (body) {
        // the upload failing (a tar being read) ends the request with its error
        body.once('error', (e) => req.destroy(e));
        body.pipe(req);
      } else req.end();
    });
  }

  async request(method: HttpMethod, p: string, o: RequestOptions = {}): Promise<ApiResponse> {
    let res: http.IncomingMessage;
    const headers: Record<string, string> = { ...o.headers };
    let body: string | Readable | undefined;
    if (o.stream) {
      body = o.stream;
      headers['content-type'] = o.contentType ?? 'application/x-tar';
    } else if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['content-type'] = 'application/json';
    }
    try {
      res = await this.send(method, this.path(p, o.query), headers, body);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'EACCES') throw new DaemonUnreachableError(this.host, e);
      throw e;
    }
    const statusCode = res.statusCode ?? 0;
    if (statusCode >= 400) {
      const text = await bodyText(res);
      let msg = text;
      try {
        msg = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // not JSON
      }
      throw new ApiError(statusCode, msg.trim());
    }
    return { statusCode, headers: res.headers, body: res };
  }

  async json<T>(method: HttpMethod, p: string, o: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, p, o);
    const text = await bodyText(res.body);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  async ok(method: HttpMethod, p: string, o: RequestOptions = {}): Promise<number> {
    const res = await this.request(method, p, o);
    // read to the end, so that the keep-alive socket is free for the next request
    await bodyText(res.body);
    return res.statusCode;
  }

  /** Newline-delimited JSON stream (events, pull progress). */
  async *jsonStream<T>(method: HttpMethod, p: string, o: RequestOptions = {}): AsyncGenerator<T> {
    const res = await this.request(method, p, o);
    let rest = '';
    for await (const chunk of res.body) {
      rest += (chunk as Buffer).toString('utf8');
      const lines = rest.split(/\r?\n/);
      rest = lines.pop()!;
      for (const l of lines) if (l.trim() !== '') yield JSON.parse(l) as T;
    }
    if (rest.trim() !== '') yield JSON.parse(rest) as T;
  }

  /** POST with `Upgrade: tcp`; resolves with the raw socket after `101`, or throws the API error. */
  hijack(p: string, o: { query?: RequestOptions['query']; body?: unknown } = {}): Promise<{ socket: Duplex; contentType: string }> {
    const body = o.body === undefined ? '' : JSON.stringify(o.body);
    const sock = this.unixPath ? net.connect(this.unixPath) : net.connect(this.tcp!.port, this.tcp!.host);
    return new Promise((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const onError = (e: NodeJS.ErrnoException) =>
        reject(e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? new DaemonUnreachableError(this.host, e) : e);
      sock.once('error', onError);
      sock.once('connect', () => {
        sock.write(
          `POST ${this.path(p, o.query)} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        );
      });
      const onData = (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        sock.off('data', onData);
        sock.pause();
        const head = buf.subarray(0, end).toString('latin1');
        const rest = buf.subarray(end + 4);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
        const ct = /\r\ncontent-type:\s*([^\r]*)/i.exec(head)?.[1] ?? '';
        if (status === 101 || status === 200) {
          if (rest.length > 0) sock.unshift(rest);
          sock.off('error', onError);
          resolve({ socket: sock, contentType: ct });
          return;
        }
        const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? rest.length);
        const finish = (b: Buffer) => {
          let msg = b.toString('utf8');
          try {
            msg = (JSON.parse(msg) as { message?: string }).message ?? msg;
          } catch {
            // not JSON
          }
          sock.destroy();
          reject(new ApiError(status, msg.trim()));
        };
        if (rest.length >= len) return finish(rest.subarray(0, len));
        let acc = rest;
        sock.on('data', (d: Buffer) => {
          acc = Buffer.concat([acc, d]);
          if (acc.length >= len) finish(acc.subarray(0, len));
        });
        sock.on('end', () => finish(acc));
        sock.resume();
      };
      sock.on('data', onData);
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

/** Runs fn with a client for the configured daemon and closes it afterwards. */
export async function withClient<T>(fn: (c: TvmClient) => Promise<T>): Promise<T> {
  const c = new TvmClient();
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}
