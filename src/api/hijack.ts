/**
 * Hijacked connections (attach, exec start): the client sends `Connection: Upgrade` +
 * `Upgrade: tcp`, we answer `101 UPGRADED` and the socket becomes a raw bidirectional pipe —
 * stdin from the client, stdout/stderr to it (multiplexed without a TTY). Node hands upgrade
 * requests to the server's 'upgrade' event with the socket detached from the HTTP parser, so
 * stdin bytes are never mistaken for a next request.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { PassThrough, type Readable } from 'node:stream';
import { NotFoundError, InvalidParameterError } from '../errors.js';
import { mapError, errorBody } from './errors.js';
import { splitVersion, versionError, effectiveVersion } from './version.js';

export const RAW_STREAM = 'application/vnd.docker.raw-stream';
export const MULTIPLEXED_STREAM = 'application/vnd.docker.multiplexed-stream';

export interface HijackContext {
  method: string;
  params: string[];
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: Buffer;
  version: string;
  socket: Duplex;
  /** the client's bytes after the request body; ends when the client half-closes */
  stdin: Readable;
  /** sends `101 UPGRADED`; after this, errors can only close the stream */
  upgrade(contentType: string): void;
  readonly upgraded: boolean;
}

export interface HijackRoute {
  method: 'POST' | 'GET';
  path: RegExp;
  handle(ctx: HijackContext): Promise<void>;
}

const MAX_BODY = 1 << 20;

function httpError(socket: Duplex, status: number, message: string): void {
  const body = errorBody(message);
  const reason =
    status === 404
      ? 'Not Found'
      : status === 409
        ? 'Conflict'
        : status === 400
          ? 'Bad Request'
          : status === 501
            ? 'Not Implemented'
            : status === 304
              ? 'Not Modified'
              : 'Error';
  if (status === 304) {
    socket.end(`HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n`);
    return;
  }
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Reads the request body (Content-Length) from `head` and the socket; returns it and what follows. */
function readBody(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<{ body: Buffer; rest: Buffer }> {
  const len = Number(req.headers['content-length'] ?? 0);
  if (!Number.isInteger(len) || len < 0 || len > MAX_BODY)
    return Promise.reject(new InvalidParameterError('bad Content-Length on hijacked request'));
  if (head.length >= len) return Promise.resolve({ body: head.subarray(0, len), rest: head.subarray(len) });
  return new Promise((resolve, reject) => {
    let buf = head;
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= len) {
        cleanup();
        resolve({ body: buf.subarray(0, len), rest: buf.subarray(len) });
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new InvalidParameterError('connection closed before the request body was complete'));
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
  });
}

export function installHijack(server: Server, routes: HijackRoute[], log: (msg: string) => void): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    (async () => {
      socket.on('error', () => {});
      const { version, url } = splitVersion(req.url ?? '/');
      const verr = versionError(version);
      if (verr) return httpError(socket, 400, verr.message);
      const u = new URL(url, 'http://docker');
      const method = req.method ?? 'GET';
      let params: string[] | undefined;
      let route: HijackRoute | undefined;
      for (const r of routes) {
        const m = r.method === method ? r.path.exec(u.pathname) : null;
        if (m) {
          params = m.slice(1).map((s) => decodeURIComponent(s));
          route = r;
          break;
        }
      }
      if (!route || !params) return httpError(socket, 404, new NotFoundError(`page not found`).message);
      let body: Buffer;
      const stdin = new PassThrough();
      try {
        const r = await readBody(req, socket, head);
        body = r.body;
        if (r.rest.length > 0) stdin.write(r.rest);
      } catch (e) {
        const m = mapError(e);
        return httpError(socket, m.status, m.message);
      }
      socket.on('data', (c: Buffer) => stdin.write(c));
      socket.on('end', () => stdin.end());
      socket.on('close', () => {
        if (!stdin.writableEnded) stdin.end();
      });
      const base = { method, params, query: u.searchParams, headers: req.headers, body, version: effectiveVersion(version), socket, stdin };
      await serveHijacked(route, base, true, log, url);
    })().catch((e: unknown) => {
      // past the answer's head there is no status left to send: log it and hang up
      log(`${req.method ?? 'GET'} ${req.url ?? '/'} (hijacked): ${e instanceof Error ? e.message : String(e)}`);
      socket.destroy();
    });
  });
}

/**
 * Runs a hijack route on a connection that is now the route's. With `Upgrade: tcp` the stream
 * starts with `101 UPGRADED`; without it (dockerode's docker.run() attaches with a plain POST)
 * dockerd answers `200 OK` and streams on the same connection until it closes, as here.
 */
export async function serveHijacked(
  route: HijackRoute,
  base: Omit<HijackContext, 'upgrade' | 'upgraded'>,
  upgrade: boolean,
  log: (msg: string) => void,
  where: string,
): Promise<void> {
  const { socket } = base;
  let upgraded = false;
  const ctx: HijackContext = {
    ...base,
    upgrade(contentType: string) {
      if (upgraded) return;
      upgraded = true;
      socket.write(
        upgrade
          ? `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`
          : `HTTP/1.1 200 OK\r\nContent-Type: ${contentType}\r\nConnection: close\r\n\r\n`,
      );
    },
    get upgraded() {
      return upgraded;
    },
  };
  try {
    await route.handle(ctx);
  } catch (e) {
    const m = mapError(e);
    if (m.status >= 500) log(`${base.method} ${where}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    if (!upgraded) httpError(socket, m.status, m.message);
    else socket.destroy();
  }
}

/** Parses Docker's boolean query values: absent, '', '0', 'false', 'no', 'none' are false. */
export function qbool(v: string | null | undefined, dflt = false): boolean {
  if (v === null || v === undefined) return dflt;
  return !['', '0', 'false', 'no', 'none', 'False', 'FALSE'].includes(v);
}
