/**
 * The direct blob body read (blob-fetch.ts) against real sockets: a node:http server (and a
 * raw TCP one for answers node:http would not send) answering as registries do, and as they
 * should not.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type AddressInfo } from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { openBlobBody, parseResponseHead, requestHead, READ_BYTES, type OpenedBody } from '../../../src/images/blob-fetch.js';

const payload = randomBytes(3 * READ_BYTES + 12345);
let http: Server;
let raw: NetServer;
let base: string;
let rawBase: string;
let seenHeaders: IncomingMessage['headers'] | undefined;
/** what the raw server writes for a request, by path */
const rawAnswers = new Map<string, (sock: import('node:net').Socket) => void>();

function handler(req: IncomingMessage, res: ServerResponse): void {
  seenHeaders = req.headers;
  const u = req.url ?? '';
  if (u === '/blob') {
    res.writeHead(200, { 'content-length': payload.length });
    res.end(payload);
  } else if (u === '/empty') {
    res.writeHead(200, { 'content-length': 0 }).end();
  } else if (u === '/chunked') {
    res.writeHead(200);
    res.write(payload.subarray(0, 100));
    res.end(payload.subarray(100, 200));
  } else if (u === '/redirect') {
    res.writeHead(307, { location: '/blob' }).end();
  } else if (u === '/unauthorized') {
    res.writeHead(401, { 'www-authenticate': 'Bearer realm="x"' }).end('{"errors":[]}');
  } else if (u === '/cut') {
    res.writeHead(200, { 'content-length': payload.length });
    res.write(payload.subarray(0, READ_BYTES + 7), () => res.socket?.destroy());
  } else res.writeHead(404).end();
}

beforeAll(async () => {
  http = createServer(handler);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  raw = createNetServer((sock) => {
    let got = '';
    sock.on('data', (d) => {
      got += d.toString('latin1');
      if (!got.includes('\r\n\r\n')) return;
      const p = got.split(' ')[1]!;
      (rawAnswers.get(p) ?? ((s) => s.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n')))(sock);
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  rawBase = `http://127.0.0.1:${(raw.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => http.close(() => r()));
  await new Promise<void>((r) => raw.close(() => r()));
});

async function collect(b: Extract<OpenedBody, { kind: 'body' }>, slow = false): Promise<Buffer> {
  const parts: Buffer[] = [];
  await b.pipe((c) => {
    // views are only valid during the call
    parts.push(Buffer.from(c));
    return slow ? new Promise<void>((r) => setTimeout(r, 2)) : undefined;
  });
  return Buffer.concat(parts);
}

async function body(url: string, headers: Record<string, string> = {}): Promise<Extract<OpenedBody, { kind: 'body' }>> {
  const o = await openBlobBody({ url: new URL(url), headers });
  if (o.kind !== 'body') throw new Error(`expected a body, got ${o.status} (${o.reason})`);
  return o;
}

describe('parsing and writing HTTP/1.1 heads', () => {
  it('parses a status line and headers, lower-casing names and joining repeats', () => {
    const h = parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A: 1\r\nx-a: 2');
    expect(h.status).toBe(200);
    expect(h.headers.get('content-length')).toBe('10');
    expect(h.headers.get('x-a')).toBe('1, 2');
    expect(parseResponseHead('HTTP/1.0 307\r\nLocation: /x').status).toBe(307);
    expect(() => parseResponseHead('SPDY/3 200 OK')).toThrow(/malformed HTTP status line/);
    expect(() => parseResponseHead('HTTP/1.1 200 OK\r\nno colon here')).toThrow(/malformed HTTP header line/);
    expect(() => parseResponseHead('HTTP/1.1 200 OK\r\n folded: continuation')).toThrow(/malformed HTTP header line/);
  });

  it('writes a GET that asks for the identity encoding and a closed connection, refusing line breaks in values', () => {
    const head = requestHead(new URL('http://reg:5000/v2/a/blobs/sha256:ab?x=1'), { authorization: 'Bearer t' });
    expect(head).toBe(
      'GET /v2/a/blobs/sha256:ab?x=1 HTTP/1.1\r\nauthorization: Bearer t\r\nhost: reg:5000\r\naccept-encoding: identity\r\nconnection: close\r\n\r\n',
    );
    expect(() => requestHead(new URL('http://reg/x'), { authorization: 'Bearer t\r\nx-evil: 1' })).toThrow(/line break/);
  });
});

describe('openBlobBody', () => {
  it('reads a Content-Length body exactly, sending the headers given, also with a slow consumer', async () => {
    const b = await body(`${base}/blob`, { authorization: 'Bearer tok', 'user-agent': 'tvm-test' });
    expect(b.length).toBe(payload.length);
    expect((await collect(b)).equals(payload)).toBe(true);
    expect(seenHeaders).toMatchObject({
      authorization: 'Bearer tok',
      'user-agent': 'tvm-test',
      'accept-encoding': 'identity',
      connection: 'close',
    });
    expect((await collect(await body(`${base}/blob`), true)).equals(payload)).toBe(true);
    expect((await collect(await body(`${base}/empty`))).length).toBe(0);
  });

  it('hands back everything but a plain 200: redirects, 401, 404, chunked bodies', async () => {
    for (const [p, status] of [
      ['/redirect', 307],
      ['/unauthorized', 401],
      ['/missing', 404],
      ['/chunked', 200],
    ] as const) {
      const o = await openBlobBody({ url: new URL(base + p), headers: {} });
      expect(o).toMatchObject({ kind: 'other', status });
    }
  });

  it('a cut connection is a transient error naming how much arrived', async () => {
    const b = await body(`${base}/cut`);
    const err = await collect(b).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_REGISTRY_UNREACHABLE', status: 500 });
    expect((err as Error).message).toMatch(/unexpected EOF after \d+ of \d+ bytes/);
  });

  it('refuses bytes past Content-Length, a huge head, and a garbled status line', async () => {
    rawAnswers.set('/extra', (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nabcdEXTRA'));
    const extra = await collect(await body(`${rawBase}/extra`)).catch((e: unknown) => e);
    expect(extra).toMatchObject({ code: 'ERR_SIZE_MISMATCH' });
    rawAnswers.set('/huge', (s) => s.write('HTTP/1.1 200 OK\r\n' + 'x-pad: y\r\n'.repeat(10_000)));
    await expect(openBlobBody({ url: new URL(`${rawBase}/huge`), headers: {} })).rejects.toThrow(/response headers larger than/);
    rawAnswers.set('/garbled', (s) => s.end('ICY 200 OK\r\n\r\n'));
    await expect(openBlobBody({ url: new URL(`${rawBase}/garbled`), headers: {} })).rejects.toThrow(/malformed HTTP status line/);
  });

  it('an error thrown or rejected by the consumer ends the read with that error', async () => {
    const b = await body(`${base}/blob`);
    await expect(
      b.pipe(() => {
        throw new Error('no more');
      }),
    ).rejects.toThrow('no more');
    const b2 = await body(`${base}/blob`);
    await expect(b2.pipe(() => Promise.reject(new Error('later no more')))).rejects.toThrow('later no more');
  });

  it('connection refused reads as Go words it, as a transient error', async () => {
    const s = createNetServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const err = await openBlobBody({ url: new URL(`http://127.0.0.1:${port}/x`), headers: {} }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_REGISTRY_UNREACHABLE' });
    expect((err as Error).message).toBe(`Get "http://127.0.0.1:${port}/x": dial tcp 127.0.0.1:${port}: connect: connection refused`);
  });

  it('reads over TLS, verifying the certificate (an unknown CA is refused)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tvm-blobtls-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=DNS:localhost',
          '-keyout',
          path.join(dir, 'key.pem'),
          '-out',
          path.join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
      const cert = readFileSync(path.join(dir, 'cert.pem'));
      const srv = createTlsServer({ key: readFileSync(path.join(dir, 'key.pem')), cert }, handler);
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      const port = (srv.address() as AddressInfo).port;
      try {
        const err = await openBlobBody({ url: new URL(`https://localhost:${port}/blob`), headers: {} }).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'ERR_REGISTRY_UNREACHABLE' });
        expect((err as Error).message).toMatch(/tls: failed to verify certificate/);
        // trusted the way Node trusts extra CAs
        const { execa } = await import('execa');
        const script = `import('${path.resolve('src/images/blob-fetch.ts')}').then(async (m) => { const o = await m.openBlobBody({ url: new URL('https://localhost:${port}/blob'), headers: {} }); let n = 0; await o.pipe((c) => { n += c.length; }); console.log(n); })`;
        const r = await execa(process.execPath, ['--import', 'tsx', '-e', script], {
          env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(dir, 'cert.pem') },
        });
        expect(Number(r.stdout.trim())).toBe(payload.length);
      } finally {
        await new Promise<void>((r) => srv.close(() => r()));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
