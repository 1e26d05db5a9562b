/**
 * The body of one blob GET, read from a socket of its own into memory we own (net/tls
 * `onread`): a pull's layers are most of its bytes, and reading them through undici cost four
 * times the CPU of the bytes themselves (64 KiB reads into fresh buffers, each through the
 * HTTP parser, a Readable and a promise; garbage the GC must then collect). Here a read takes
 * up to READ_BYTES into one reused buffer and its bytes go straight to the consumer.
 *
 * Only the plain case is done here: a 200 answer framed by Content-Length. Anything else (a
 * redirect, 401, an error status, chunked or encoded bodies) is handed back as `other`, and the
 * caller repeats the request through the registry client, which knows auth, redirects and
 * Docker's error wording.
 */
import net from 'node:net';
import tls from 'node:tls';
import { RegistryError, goNetError } from './registry-errors.js';

/** A rejection passed on as an Error: a consumer's promise may reject with anything. */
const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

/** bytes one read may return */
export const READ_BYTES = 1 << 20;
/** an answer's status line and headers may not exceed this */
export const MAX_HEADER_BYTES = 64 * 1024;
/** no byte for this long: the connection is given up (and the download retried) */
export const IDLE_TIMEOUT_MS = 60_000;

/** bytes a read may return while the head is awaited: body bytes that come with it are copied */
export const HEAD_READ_BYTES = 16 * 1024;

/**
 * The reads of all blob sockets of this thread land in these, one after another (each read is
 * consumed before the next): a small one for heads, a large one for bodies.
 */
let headBuffer: Buffer | undefined;
let readBuffer: Buffer | undefined;

export interface BlobBodyRequest {
  url: URL;
  /** lower-case names; Host, Connection and Accept-Encoding are set here */
  headers: Record<string, string>;
}

export type OpenedBody =
  | {
      kind: 'body';
      /** Content-Length */
      length: number;
      /**
       * Streams the body to `onData` (views valid during the call; a promise returned holds
       * reading until it settles). Resolves after the last byte, rejects on a cut connection
       * (transient: worth a retry), a timeout, or the first error onData throws or rejects with.
       */
      pipe(onData: (chunk: Buffer) => Promise<void> | undefined | void): Promise<void>;
      /** Drops the connection (the body will not be read). */
      destroy(): void;
    }
  | { kind: 'other'; status: number; reason: string };

/** An HTTP/1.1 status line and headers; names lower-cased, repeated headers joined by ", ". */
export function parseResponseHead(head: string): { status: number; headers: Map<string, string> } {
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!m) throw new Error(`malformed HTTP status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0 || /^\s/.test(line)) throw new Error(`malformed HTTP header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  return { status: Number(m[1]), headers };
}

/** The request bytes; a header value that would split the request is refused. */
export function requestHead(url: URL, headers: Record<string, string>): string {
  const all: Record<string, string> = { ...headers, host: url.host, 'accept-encoding': 'identity', connection: 'close' };
  let out = `GET ${url.pathname}${url.search} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(all)) {
    if (/[\r\n]/.test(k) || /[\r\n]/.test(v))
      throw new RegistryError(`header ${k} of a blob request contains a line break`, 'ERR_BAD_HEADER', 400);
    out += `${k}: ${v}\r\n`;
  }
  return out + '\r\n';
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * Sends the GET and reads the answer's head. A 200 with a Content-Length gives a body to pipe;
 * any other answer is `other` (its connection closed, nothing of it read).
 */
export function openBlobBody(req: BlobBodyRequest): Promise<OpenedBody> {
  const { url } = req;
  const op = `Get ${JSON.stringify(url.href)}`;
  const unreachable = (e: unknown) => new RegistryError(`${op}: ${goNetError(e, url)}`, 'ERR_REGISTRY_UNREACHABLE', 500);
  // a body that stops early: transient, as undici's 'other side closed' is
  const cut = (got: number, want: number) =>
    new RegistryError(`${op}: unexpected EOF after ${got} of ${want} bytes`, 'ERR_REGISTRY_UNREACHABLE', 500);
  const heads = (headBuffer ??= Buffer.allocUnsafeSlow(HEAD_READ_BYTES));
  const bodies = (readBuffer ??= Buffer.allocUnsafeSlow(READ_BYTES));

  return new Promise<OpenedBody>((resolveOpen, rejectOpen) => {
    let phase: 'head' | 'held' | 'body' | 'done' = 'head';
    const head: Buffer[] = [];
    let headLen = 0;
    /** body bytes that came with the head, before pipe() was called */
    let early: Buffer | undefined;
    let length = 0;
    let received = 0;
    let onData: ((chunk: Buffer) => Promise<void> | undefined | void) | undefined;
    let finish: ((e?: unknown) => void) | undefined;
    let failure: unknown;
    let settled = false;

    /** Ends it all: the connection goes, and pipe() (or open, before it) learns the outcome. */
    const settle = (e?: unknown) => {
      if (settled) return;
      settled = true;
      phase = 'done';
      sock.destroy();
      if (e !== undefined) failure ??= e;
      // before pipe() a failure is kept for it (open itself may have resolved already)
      if (finish) finish(failure);
      else if (failure !== undefined) rejectOpen(asError(failure));
    };
    const fail = (e: unknown) => settle(e);

    /** Hands body bytes on; false: stop reading until the consumer's promise settles. */
    const deliver = (chunk: Buffer): boolean => {
      received += chunk.length;
      if (received > length) {
        fail(new RegistryError(`${op}: more than the ${length} bytes of Content-Length`, 'ERR_SIZE_MISMATCH', 400));
        return false;
      }
      let wait;
      try {
        wait = onData!(chunk);
      } catch (e) {
        fail(e);
        return false;
      }
      const complete = received === length;
      // all bytes are here: what the connection does now (close, reset) no longer matters
      if (complete) phase = 'done';
      if (wait) {
        wait.then(
          () => (complete ? settle() : phase === 'body' && sock.resume()),
          (e: unknown) => fail(e),
        );
        return false;
      }
      if (complete) settle();
      return true;
    };

    const onRead = (n: number, buf: Buffer): boolean => {
      if (phase === 'body') return deliver(buf.subarray(0, n));
      if (phase !== 'head') return false;
      head.push(Buffer.from(buf.subarray(0, n)));
      headLen += n;
      const all = head.length === 1 ? head[0]! : Buffer.concat(head, headLen);
      const end = all.indexOf(HEADER_END);
      if (end < 0) {
        if (headLen > MAX_HEADER_BYTES)
          fail(new RegistryError(`${op}: response headers larger than ${MAX_HEADER_BYTES} bytes`, 'ERR_REGISTRY', 502));
        return true;
      }
      let parsed;
      try {
        parsed = parseResponseHead(all.subarray(0, end).toString('latin1'));
      } catch (e) {
        fail(new RegistryError(`${op}: ${(e as Error).message}`, 'ERR_REGISTRY', 502));
        return false;
      }
      const cl = parsed.headers.get('content-length');
      const plain =
        parsed.status === 200 &&
        cl !== undefined &&
        /^\d+$/.test(cl) &&
        !parsed.headers.has('transfer-encoding') &&
        (parsed.headers.get('content-encoding') ?? 'identity') === 'identity';
      if (!plain) {
        settled = true;
        phase = 'done';
        sock.destroy();
        resolveOpen({
          kind: 'other',
          status: parsed.status,
          reason: parsed.status === 200 ? 'not framed by Content-Length' : `status ${parsed.status}`,
        });
        return false;
      }
      length = Number(cl);
      const rest = all.subarray(end + HEADER_END.length);
      early = rest.length ? Buffer.from(rest) : undefined;
      phase = 'held';
      resolveOpen({
        kind: 'body',
        length,
        pipe: (fn) =>
          new Promise<void>((resolve, reject) => {
            if (onData) throw new Error('blob body piped twice');
            onData = fn;
            finish = (e?: unknown) => (e === undefined ? resolve() : reject(asError(e)));
            if (settled) {
              reject(
                failure !== undefined
                  ? asError(failure)
                  : new RegistryError(`${op}: connection gone before the body was read`, 'ERR_REGISTRY_UNREACHABLE', 500),
              );
              return;
            }
            phase = 'body';
            if (length === 0) {
              settle();
              return;
            }
            const first = early;
            early = undefined;
            if (first && !deliver(first)) return;
            if (phase === 'body') sock.resume();
          }),
        destroy: () => {
          if (!settled) {
            settled = true;
            phase = 'done';
            sock.destroy();
          }
        },
      });
      // nothing more is read until pipe() is called
      return false;
    };

    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const onread = { buffer: () => (phase === 'head' ? heads : bodies), callback: onRead };
    const sock: net.Socket =
      url.protocol === 'https:'
        ? tls.connect({
            host,
            port,
            ...(net.isIP(host) === 0 && { servername: host }),
            ALPNProtocols: ['http/1.1'],
            onread,
          } as tls.ConnectionOptions)
        : net.connect({ host, port, onread } as net.NetConnectOpts);
    sock.setNoDelay(true);
    sock.setTimeout(IDLE_TIMEOUT_MS, () => fail(unreachable(Object.assign(new Error('i/o timeout'), { code: 'ETIMEDOUT' }))));
    sock.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      try {
        sock.write(requestHead(url, req.headers));
      } catch (e) {
        fail(e);
      }
    });
    sock.on('error', (e) => {
      if (phase !== 'done') fail(phase === 'head' ? unreachable(e) : cut(received, length));
    });
    sock.on('close', () => {
      if (phase === 'done') return;
      fail(
        phase === 'head'
          ? unreachable(Object.assign(new Error('connection closed before an answer'), { code: 'ECONNRESET' }))
          : cut(received, length),
      );
    });
  });
}
